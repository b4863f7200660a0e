//! Tampering, truncation, hostile Datalog and limits: every bad input is a
//! typed error, never a panic and never an allow.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use biscuit_auth::builder::{Algorithm, BlockBuilder};
use biscuit_auth::{KeyPair, UnverifiedBiscuit};
use mcpvault::{
    attenuate, inspect, mint, verify, verify_with_limits, Grant, Limits, Request, Restriction,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE;

fn setup() -> (ChaCha20Rng, mcpvault::KeyPairHex, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant::new(["db_query", "file_read"], 3600, "auth-server", "agent-a");
    let token = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    (rng, keys, token)
}

fn hostile(rng: &mut ChaCha20Rng, token: &str, code: &str) -> String {
    hostile_block(rng, token, BlockBuilder::new().code(code).unwrap())
}

/// `token` with `block` appended by plain biscuit-auth.
fn hostile_block(rng: &mut ChaCha20Rng, token: &str, block: BlockBuilder) -> String {
    let t = UnverifiedBiscuit::from_base64(token).unwrap();
    let kp = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    t.append_with_keypair(&kp, block)
        .unwrap()
        .to_base64()
        .unwrap()
}

/// `token` narrowed to db_query by an honest attenuation.
fn only_db_query(rng: &mut ChaCha20Rng, token: &str) -> String {
    let r = Restriction {
        tools: Some(vec!["db_query".into()]),
        ..Default::default()
    };
    attenuate(token, &r, NOW, rng).unwrap().token
}

fn hops(n: usize) -> (mcpvault::KeyPairHex, String) {
    let (mut rng, keys, mut token) = setup();
    for ttl in [3000, 2000, 1000].into_iter().take(n) {
        token = attenuate(
            &token,
            &Restriction {
                ttl: Some(ttl),
                ..Default::default()
            },
            NOW,
            &mut rng,
        )
        .unwrap()
        .token;
    }
    (keys, token)
}

fn three_hops() -> (mcpvault::KeyPairHex, String) {
    hops(3)
}

/// Every single-bit flip of the token's bytes, for tokens of 0, 1 and 3
/// hops, is refused as `bad_signature` or `malformed_token`. (The same sweep
/// runs through the npm build in npm/mcpvault/test/tamper.test.mjs.)
#[test]
fn every_single_bit_flip_is_refused() {
    for n in [0, 1, 3] {
        let (keys, token) = hops(n);
        let bytes = B64.decode(&token).unwrap();
        let mut codes = std::collections::BTreeMap::<&str, usize>::new();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let err = verify(
                    &B64.encode(&b),
                    &keys.public_key,
                    &Request::tool("db_query"),
                    NOW,
                )
                .expect_err("a tampered token verified");
                common::assert_refused_opaquely(&err, &format!("{n} hops, byte {i} bit {bit}"));
                *codes.entry(err.code()).or_default() += 1;
            }
        }
        println!(
            "{} bit flips of a {}-byte {n}-hop token: {codes:?}",
            bytes.len() * 8,
            bytes.len()
        );
    }
}

/// The same for every bit of the token's text (base64 characters).
#[test]
fn every_single_bit_flip_of_the_text_is_refused() {
    let (keys, token) = hops(1);
    for i in 0..token.len() {
        for bit in 0..8 {
            let mut b = token.clone().into_bytes();
            b[i] ^= 1 << bit;
            let Ok(text) = String::from_utf8(b) else {
                continue; // not UTF-8: no &str reaches verify
            };
            let err = verify(&text, &keys.public_key, &Request::tool("db_query"), NOW)
                .expect_err("a tampered token verified");
            common::assert_refused_opaquely(&err, &format!("char {i} bit {bit}"));
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    for n in [0, 1, 3] {
        let (keys, token) = hops(n);
        let bytes = B64.decode(&token).unwrap();
        for len in 0..bytes.len() {
            let err = verify(
                &B64.encode(&bytes[..len]),
                &keys.public_key,
                &Request::tool("db_query"),
                NOW,
            )
            .unwrap_err();
            common::assert_refused_opaquely(&err, &format!("{n} hops, len {len}"));
        }
    }
}

#[test]
fn cutting_characters_out_of_the_text_is_refused() {
    let (keys, token) = three_hops();
    let text = token.clone();
    for cut in [10usize, 100, 200, 300] {
        let mut t = text.clone();
        t.replace_range(cut..cut + 4, "");
        let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
        common::assert_refused_opaquely(&err, "token");
    }
}

#[test]
fn opaque_errors_keep_details_for_logs() {
    let (_, keys, token) = setup();
    let other = mcpvault::keygen(&mut ChaCha20Rng::seed_from_u64(9));
    let err = verify(&token, &other.public_key, &Request::tool("db_query"), NOW).unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    assert_eq!(err.to_string(), "token signature is not valid");
    assert!(err.detail().contains("signature"), "{}", err.detail());

    let err = verify(
        "not-a-token",
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "token is malformed");
    assert_ne!(err.detail(), err.to_string());
}

#[test]
fn expired_is_told_from_forbidden_by_the_failing_check() {
    let (_, keys, token) = setup();
    let err = verify(
        &token,
        &keys.public_key,
        &Request::tool("admin"),
        NOW + 3600,
    )
    .unwrap_err();
    assert_eq!(err.code(), "expired");
    let (block, check) = err.failed_check().unwrap();
    assert_eq!(block, 0);
    assert!(check.starts_with("check if time($time)"), "{check}");
    let err = verify(&token, &keys.public_key, &Request::tool("admin"), NOW).unwrap_err();
    assert_eq!(err.code(), "tool_not_allowed");
    assert!(err.failed_check().unwrap().1.contains("request_tool"));
}

#[test]
fn fact_explosion_is_limits_exceeded() {
    let (mut rng, keys, token) = setup();
    let code = (0..40).map(|i| format!("n({i});")).collect::<String>()
        + "p($a, $b, $c) <- n($a), n($b), n($c);";
    let t = hostile(&mut rng, &token, &code);
    let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
    assert_eq!(err.code(), "limits_exceeded", "{err}");
    assert!(
        err.detail().contains("units of work"),
        "refused before evaluation: {}",
        err.detail()
    );
}

#[test]
fn iteration_bomb_is_limits_exceeded() {
    // A 400-step chain needs 400 rounds of rule application to close.
    let (mut rng, keys, token) = setup();
    let code = (0..400)
        .map(|i| format!("edge({i}, {});", i + 1))
        .collect::<String>()
        + "path($a, $b) <- edge($a, $b); path($a, $c) <- path($a, $b), edge($b, $c);";
    let t = hostile(&mut rng, &token, &code);
    let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
    assert_eq!(err.code(), "limits_exceeded", "{err}");
    assert!(
        err.detail().contains("units of work"),
        "refused before evaluation: {}",
        err.detail()
    );
}

#[test]
fn time_limit_is_limits_exceeded() {
    // Within the fact and iteration limits but over a tiny time limit.
    let (mut rng, keys, token) = setup();
    let code = (0..20).map(|i| format!("n({i});")).collect::<String>()
        + "p($a, $b, $c) <- n($a), n($b), n($c), $a + $b + $c > 0;";
    let t = hostile(&mut rng, &token, &code);
    // By default the work bound refuses it before any evaluation (8,000
    // derived facts, each round scanning all of them per binding)…
    let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
    assert_eq!(err.code(), "limits_exceeded");
    assert!(err.detail().contains("units of work"), "{}", err.detail());
    // …so raise it, and only the clock can stop the evaluation.
    let tight = Limits {
        max_time: std::time::Duration::from_nanos(1),
        max_work: u64::MAX,
        ..Limits::default()
    };
    let err = verify_with_limits(
        &t,
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
        &tight,
    )
    .unwrap_err();
    assert_eq!(err.code(), "limits_exceeded", "{err}");
    // and the same token passes when the time limit is raised too: the
    // refusal above was the clock, not the facts or iterations. (Not the
    // default: 8,000 joins in a debug build on a loaded 2-core machine can
    // take long, and a test must not depend on the machine's speed.)
    let roomy = Limits {
        max_time: std::time::Duration::from_secs(30),
        max_work: u64::MAX,
        ..Limits::default()
    };
    verify_with_limits(
        &t,
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
        &roomy,
    )
    .unwrap();
}

#[test]
fn too_many_blocks_is_limits_exceeded() {
    let (mut rng, keys, mut token) = setup();
    for _ in 0..8 {
        token = attenuate(
            &token,
            &Restriction {
                ttl: Some(100),
                ..Default::default()
            },
            NOW,
            &mut rng,
        )
        .unwrap()
        .token;
    }
    let small = Limits {
        max_blocks: 8,
        ..Limits::default()
    };
    let err = verify_with_limits(
        &token,
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
        &small,
    )
    .unwrap_err();
    assert_eq!(err.code(), "limits_exceeded");
    verify(&token, &keys.public_key, &Request::tool("db_query"), NOW).unwrap();
}

#[test]
fn hostile_blocks_cannot_grant_across_all_predicates() {
    // Facts and rules for every predicate the verifier or authority uses.
    let (mut rng, keys, token) = setup();
    let narrow = only_db_query(&mut rng, &token);
    let code = r#"
        mcpvault(1); issuer("mallory"); subject("root");
        request_tool("admin"); request_method("tools/list"); depth(0); verifier_audience("any");
        time(2000-01-01T00:00:00Z);
        request_arg_int("max_rows", 1);
        request_tool($t) <- request_method($t);
        check if true trusting previous;
    "#;
    let t = hostile(&mut rng, &narrow, code);
    for tool in ["admin", "file_read"] {
        let err = verify(&t, &keys.public_key, &Request::tool(tool), NOW).unwrap_err();
        assert_eq!(err.code(), "tool_not_allowed", "{tool}");
    }
    let facts = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap();
    assert_eq!(
        (facts.issuer.as_str(), facts.subject.as_str()),
        ("auth-server", "agent-a")
    );
    assert_eq!(facts.tools, ["db_query"]);
    // expired stays expired despite the block's own time fact
    let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW + 4000).unwrap_err();
    assert_eq!(err.code(), "expired");
}

#[test]
fn sealed_and_garbage_inputs_never_panic() {
    let (_, keys, _) = setup();
    let inputs = [
        "",
        "=",
        "====",
        "A",
        "AA==",
        "-_-_",
        "\u{0}",
        "é",
        " \n\t",
        &"A".repeat(5000),
        "EgIKAA==",
        "CgIIAQ==",
    ];
    for input in inputs {
        let err = verify(input, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
        common::assert_refused_opaquely(&err, &format!("{input:?}"));
        assert_eq!(
            inspect(input).unwrap_err().code(),
            "malformed_token",
            "{input:?}"
        );
    }
}

#[test]
fn absurd_limits_do_not_panic() {
    let (_, keys, token) = setup();
    let huge = Limits {
        max_time: std::time::Duration::MAX,
        max_iterations: u64::MAX,
        max_facts: u64::MAX,
        ..Limits::default()
    };
    verify_with_limits(
        &token,
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
        &huge,
    )
    .unwrap();
    let zero = Limits {
        max_time: std::time::Duration::ZERO,
        max_iterations: 0,
        max_facts: 0,
        max_blocks: 0,
        max_token_len: 0,
        max_work: 0,
        always_datalog: true,
    };
    let err = verify_with_limits(
        &token,
        &keys.public_key,
        &Request::tool("db_query"),
        NOW,
        &zero,
    )
    .unwrap_err();
    assert_eq!(err.code(), "limits_exceeded");
}

#[test]
fn sealed_tokens_cannot_be_attenuated() {
    let (mut rng, keys, token) = setup();
    let root: biscuit_auth::PublicKey = format!("ed25519/{}", keys.public_key).parse().unwrap();
    let sealed = biscuit_auth::Biscuit::from_base64(&token, root)
        .unwrap()
        .seal()
        .unwrap()
        .to_base64()
        .unwrap();
    // a sealed token still verifies…
    verify(&sealed, &keys.public_key, &Request::tool("db_query"), NOW).unwrap();
    // …but attenuating it is the caller's mistake, not an internal error
    let err = attenuate(
        &sealed,
        &Restriction {
            ttl: Some(5),
            ..Default::default()
        },
        NOW,
        &mut rng,
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_request", "{err}");
}

#[test]
fn evaluation_errors_name_no_block() {
    let (mut rng, keys, token) = setup();
    let t = hostile(&mut rng, &token, "check if 1 + \"a\" == 2;");
    let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
    assert_eq!(err.code(), "check_failed");
    assert_eq!(err.to_string(), "evaluating a check of the token failed");
    assert!(err.failed_check().is_none());
}

/// Protobuf skips unknown fields: turning the `algorithm` tag (08) of a
/// PublicKey into an unknown field (18 by one bit, 38 by two) holding the
/// same default value decodes to the very same content. Found by the tamper
/// sweep; the verifier re-encodes what it decoded and refuses any difference,
/// so one token has one encoding (and one cache key per revocation id).
#[test]
fn non_canonical_encodings_are_refused() {
    let (keys, token) = three_hops();
    let bytes = B64.decode(&token).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == [0x08, 0x00, 0x12, 0x20])
        .expect("a PublicKey message");
    for tag in [0x18, 0x38] {
        let mut twin = bytes.clone();
        twin[at] = tag;
        let twin = B64.encode(&twin);
        let err = verify(&twin, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
        assert_eq!(err.code(), "malformed_token");
        assert!(err.detail().contains("canonical"), "{}", err.detail());
        assert_eq!(inspect(&twin).unwrap_err().code(), "malformed_token");
    }
    verify(&token, &keys.public_key, &Request::tool("db_query"), NOW).unwrap();
}

/// Key material: `Debug` never shows a private key, and the types holding one
/// wipe it on drop.
#[test]
fn private_keys_are_redacted_and_wiped() {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<mcpvault::KeyPairHex>();
    let keys = mcpvault::keygen(&mut ChaCha20Rng::seed_from_u64(11));
    let shown = format!("{keys:?} {keys:#?}");
    assert!(!shown.contains(&keys.private_key), "{shown}");
    assert!(shown.contains(&keys.public_key));
    // errors about a bad private key never echo it
    let bad = format!("{}zz", &keys.private_key[..62]);
    for e in [
        mcpvault::parse_private_key(&bad).unwrap_err(),
        mint(
            &bad,
            &Grant::new(["t"], 60, "i", "s"),
            NOW,
            &mut ChaCha20Rng::seed_from_u64(1),
        )
        .unwrap_err(),
    ] {
        let text = format!("{e} {e:?} {}", e.detail());
        assert!(!text.contains(&bad[..62]), "{text}");
    }
}

/// Adversarial chains built with biscuit-auth directly never allow a call
/// the honest chain refuses, and never report wider facts.
#[test]
fn adversarial_chains_never_grant_more_than_the_honest_chain() {
    let (mut rng, keys, root) = setup();
    let honest = only_db_query(&mut rng, &root);
    let root_pk: biscuit_auth::PublicKey = format!("ed25519/{}", keys.public_key).parse().unwrap();
    let mallory = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
    let grants = r#"
        mcpvault(1); issuer("mallory"); subject("root"); request_tool("admin"); tool("admin");
        request_method("tools/list"); time(2000-01-01T00:00:00Z);
        request_tool($t) <- request_method($t);
        check if true trusting previous;
    "#;

    let mut adversarial: Vec<(&str, String)> = Vec::new();
    // 1. a third-party block signed by mallory asserting grants and rules
    {
        let t = biscuit_auth::Biscuit::from_base64(&honest, root_pk).unwrap();
        let req = t.third_party_request().unwrap();
        let block = req
            .create_block(
                &mallory.private(),
                BlockBuilder::new().code(grants).unwrap(),
            )
            .unwrap();
        let t = t.append_third_party(mallory.public(), block).unwrap();
        adversarial.push(("third-party block", t.to_base64().unwrap()));
    }
    // 2. a block whose checks and rules trust mallory's key (`trusting`)
    {
        let code = format!(
            "{grants} allowed($t) <- tool($t) trusting ed25519/{pk}; check if allowed($t) trusting ed25519/{pk}, authority;",
            pk = hex::encode(mallory.public().to_bytes())
        );
        adversarial.push(("trusting annotations", hostile(&mut rng, &honest, &code)));
    }
    // 3. an authority block with every tool, re-signed with another key
    {
        let forged = mint(
            &hex::encode(mallory.private().to_bytes()),
            &Grant::new(
                ["db_query", "file_read", "admin"],
                3600,
                "auth-server",
                "agent-a",
            ),
            NOW,
            &mut rng,
        )
        .unwrap();
        adversarial.push(("re-signed authority", forged));
    }
    // 4. the honest token sealed
    {
        let sealed = biscuit_auth::Biscuit::from_base64(&honest, root_pk)
            .unwrap()
            .seal()
            .unwrap()
            .to_base64()
            .unwrap();
        adversarial.push(("sealed", sealed));
    }
    // 5. a plain block asserting the grants
    adversarial.push(("grant facts and rules", hostile(&mut rng, &honest, grants)));

    let tools = ["db_query", "file_read", "admin", "tools/list"];
    let mut allowed = std::collections::BTreeSet::new();
    for (what, token) in &adversarial {
        for tool in tools {
            for at in [NOW, NOW + 3599, NOW + 3600, NOW + 10_000] {
                let request = if tool == "tools/list" {
                    Request {
                        method: "tools/list".into(),
                        tool: None,
                        ..Request::tool("x")
                    }
                } else {
                    Request::tool(tool)
                };
                let adv = verify(token, &keys.public_key, &request, at);
                let fair = verify(&honest, &keys.public_key, &request, at);
                match (adv, fair) {
                    (Ok(a), Ok(h)) => {
                        allowed.insert(*what);
                        assert!(a.tools.iter().all(|t| h.tools.contains(t)), "{what}: {a:?}");
                        assert!(a.expires_at <= h.expires_at, "{what}");
                        assert_eq!((a.issuer, a.subject), (h.issuer, h.subject), "{what}");
                    }
                    (Ok(a), Err(e)) => {
                        panic!(
                            "{what}: allowed {tool} at {at} ({a:?}); the honest chain refuses: {e}"
                        )
                    }
                    (Err(_), _) => {}
                }
            }
        }
    }
    // not vacuous: chains that keep the honest blocks still allow what the
    // honest chain allows
    assert_eq!(
        allowed.into_iter().collect::<Vec<_>>(),
        [
            "grant facts and rules",
            "sealed",
            "third-party block",
            "trusting annotations"
        ]
    );
    // and the forged authority is refused as a signature failure
    let err = verify(
        &adversarial[2].1,
        &keys.public_key,
        &Request::tool("admin"),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.code(), "bad_signature");
}

/// An expression whose operations do not build one value (here a lone
/// binary operator, or two values and no operator) is malformed. Found by the
/// `inspect` fuzz target: biscuit-auth's builder prints such an expression
/// with `unwrap` and panicked. Every entry point refuses it now.
#[test]
fn malformed_expressions_are_refused_not_printed() {
    use biscuit_auth::builder::{Binary, Check, CheckKind, Expression, Op, Predicate, Rule, Term};
    let (mut rng, keys, token) = setup();
    for ops in [
        vec![Op::Binary(Binary::And)],
        vec![Op::Value(Term::Bool(true)), Op::Value(Term::Bool(true))],
        vec![Op::Unary(biscuit_auth::builder::Unary::Negate)],
    ] {
        let check = Check {
            queries: vec![Rule::new(
                Predicate::new("q".into(), vec![]),
                vec![],
                vec![Expression { ops }],
                vec![],
            )],
            kind: CheckKind::One,
        };
        let t = hostile_block(&mut rng, &token, BlockBuilder::new().check(check).unwrap());
        let err = verify(&t, &keys.public_key, &Request::tool("db_query"), NOW).unwrap_err();
        assert_eq!(err.code(), "malformed_token", "{}", err.detail());
        assert_eq!(inspect(&t).unwrap_err().code(), "malformed_token");
        let r = Restriction {
            ttl: Some(5),
            ..Default::default()
        };
        assert_eq!(
            attenuate(&t, &r, NOW, &mut rng).unwrap_err().code(),
            "malformed_token"
        );
    }
}

/// A block appended with stock Biscuit holds no more quotas, pins or approval requirements than mint and attenuate
/// write (16 quotas; 256 of each other): each quota is counted per message and per store key, each pin per message.
#[test]
fn blocks_over_the_step_up_limits_are_malformed() {
    let (mut rng, keys, token) = setup();
    let call = Request::tool("db_query");
    let rates = |n: u64| {
        (1..=n)
            .map(|p| format!("rate(5, {p});"))
            .collect::<String>()
    };
    let ok = hostile(&mut rng, &token, &rates(16));
    assert!(verify(&ok, &keys.public_key, &call, NOW).is_ok());
    let over = hostile(&mut rng, &token, &rates(17));
    let e = verify(&over, &keys.public_key, &call, NOW).unwrap_err();
    assert_eq!(e.code(), "malformed_token", "{e}");
    let pins = |n: usize| {
        (0..n)
            .map(|i| format!("pin(\"t{i}\", \"{}\");", "a".repeat(64)))
            .collect::<String>()
    };
    assert!(verify(
        &hostile(&mut rng, &token, &pins(256)),
        &keys.public_key,
        &call,
        NOW
    )
    .is_ok());
    let e = verify(
        &hostile(&mut rng, &token, &pins(257)),
        &keys.public_key,
        &call,
        NOW,
    )
    .unwrap_err();
    assert_eq!(e.code(), "malformed_token", "{e}");
}
