//! Native benchmarks of the core (criterion): keygen, mint, attenuate,
//! inspect, verify at 0/1/3/10 attenuation blocks cold (direct evaluation and
//! the Datalog engine) and cached, the per-signature floor, and the time to
//! refuse hostile tokens, and each argument-constraint type on a cached
//! verify. `make bench` runs them and writes BENCHMARKS.md (bench/report.mjs
//! reads criterion's estimates).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use biscuit_auth::builder::{Algorithm, BlockBuilder};
use biscuit_auth::{KeyPair, UnverifiedBiscuit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ed25519_dalek::{Signer, SigningKey};
use mcpvault::{
    attenuate, inspect, mint, verify, verify_with_limits, Limits, Request, Restriction, Verifier,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const DEPTHS: [usize; 4] = [0, 1, 3, 10];

mod fixture;
use fixture::{Fixture, NOW};

fn fixture() -> Fixture {
    fixture::fixture(&DEPTHS)
}

fn floor(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let data = [0x5au8; 256];
    let sig = key.sign(&data);
    let public = key.verifying_key();
    c.bench_function("floor/ed25519_verify_strict", |b| {
        b.iter(|| public.verify_strict(&data, &sig).unwrap())
    });
    // the same check through biscuit-auth, 100 per iteration (the key and the
    // signature are made once per call): the report divides by 100
    assert_eq!(mcpvault::signature_floor(3), 3);
    c.bench_function("floor/signature_floor_x100", |b| {
        b.iter(|| assert_eq!(mcpvault::signature_floor(100), 100))
    });
}

fn operations(c: &mut Criterion) {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    c.bench_function("keygen", |b| b.iter(|| mcpvault::keygen(&mut rng)));
    c.bench_function("mint", |b| {
        b.iter(|| mint(&f.private_key, &f.grant, NOW, &mut rng).unwrap())
    });
    let root = &f.tokens[0].1;
    let narrow = Restriction {
        tools: Some(vec!["db_query".into()]),
        ttl: Some(300),
        ..Default::default()
    };
    c.bench_function("attenuate", |b| {
        b.iter(|| attenuate(root, &narrow, NOW, &mut rng).unwrap())
    });
    let three = &f.tokens[2].1;
    c.bench_function("inspect/3", |b| b.iter(|| inspect(three).unwrap()));
}

fn verification(c: &mut Criterion) {
    let f = fixture();
    let datalog = Limits {
        always_datalog: true,
        ..Limits::default()
    };
    let mut group = c.benchmark_group("verify");
    for (n, token) in &f.tokens {
        group.bench_with_input(BenchmarkId::new("cold", n), token, |b, t| {
            b.iter(|| verify(t, &f.public_key, &f.request, NOW).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("datalog", n), token, |b, t| {
            b.iter(|| verify_with_limits(t, &f.public_key, &f.request, NOW, &datalog).unwrap())
        });
        let mut cached = Verifier::with_cache(Limits::default(), 16);
        cached
            .verify(token, &f.public_key, &f.request, NOW)
            .unwrap();
        group.bench_with_input(BenchmarkId::new("cached", n), token, |b, t| {
            b.iter(|| cached.verify(t, &f.public_key, &f.request, NOW).unwrap())
        });
    }
    group.finish();
}

/// The cost of each argument-constraint type (issue 20) on a cached verify:
/// one limit on a 0-block token, and a call that satisfies it. `none` is the
/// same token and call without a limit.
pub const CONSTRAINTS: &[(&str, &str)] = &[
    ("none", ""),
    ("prefix", "t.p^=/srv/public/"),
    ("under", "t.p under /srv/public"),
    ("url", "t.u url https://*.example.com/v1"),
    ("cidr", "t.ip cidr 10.0.0.0/8"),
    ("glob", "t.c glob staging-*"),
    ("matches", "t.c matches ^[a-z-]+$"),
    ("number", "t.n<=99.5"),
    ("nested", "t.cfg.mode=ro"),
    ("each_one_of_10", "t.items[*] in a,b"),
    ("length", "t.items.length<=10"),
];

fn constraints(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let keys = mcpvault::keygen(&mut rng);
    let args = serde_json::json!({
        "p": "/srv/public/docs/a.txt", "u": "https://api.example.com/v1/users", "ip": "10.1.2.3",
        "c": "staging-eu", "n": 42.5, "cfg": {"mode": "ro"},
        "items": ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"],
    });
    let request = Request::tool("t").with_arguments(args.as_object().cloned().unwrap());
    let mut group = c.benchmark_group("constraint");
    for (name, spec) in CONSTRAINTS {
        let mut grant = mcpvault::Grant::new(["t"], 3600, "iss", "sub");
        if !spec.is_empty() {
            grant.arg_limits = vec![mcpvault::ArgLimit::from_spec(spec).unwrap()];
        }
        let token = mcpvault::mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
        for (kind, limits) in [
            ("cached", Limits::default()),
            (
                "cached_datalog",
                Limits {
                    always_datalog: true,
                    ..Limits::default()
                },
            ),
        ] {
            let mut v = Verifier::with_cache(limits, 4);
            v.verify(&token, &keys.public_key, &request, NOW).unwrap();
            group.bench_function(BenchmarkId::new(kind, name), |b| {
                b.iter(|| v.verify(&token, &keys.public_key, &request, NOW).unwrap())
            });
        }
    }
    group.finish();
}

/// How long refusing a hostile token takes (all `limits_exceeded` before
/// evaluation; SECURITY.md).
fn hostile(c: &mut Criterion) {
    let f = fixture();
    let root = &f.tokens[0].1;
    let append = |code: String| {
        let t = UnverifiedBiscuit::from_base64(root).unwrap();
        let kp = KeyPair::new_with_rng(Algorithm::Ed25519, &mut ChaCha20Rng::seed_from_u64(4));
        t.append_with_keypair(&kp, BlockBuilder::new().code(&code).unwrap())
            .unwrap()
            .to_base64()
            .unwrap()
    };
    let facts = |n: usize| (0..n).map(|i| format!("n({i});")).collect::<String>();
    let cases = [
        (
            "join_3000",
            append(facts(3000) + "p($a, $b) <- n($a), n($b);"),
        ),
        (
            "recursive_400",
            append(
                (0..400)
                    .map(|i| format!("edge({i}, {});", i + 1))
                    .collect::<String>()
                    + "path($a, $b) <- edge($a, $b); path($a, $c) <- path($a, $b), edge($b, $c);",
            ),
        ),
        (
            "check_join_200x4",
            append(facts(200) + "check if n($a), n($b), n($c), n($d);"),
        ),
    ];
    let mut group = c.benchmark_group("hostile");
    for (name, token) in &cases {
        let code = verify(token, &f.public_key, &f.request, NOW).unwrap_err();
        assert_eq!(code.code(), "limits_exceeded");
        group.bench_function(*name, |b| {
            b.iter(|| verify(token, &f.public_key, &f.request, NOW).unwrap_err())
        });
    }
    group.finish();
}

/// A verify with a holder's proof next to the same call by a bearer token (issue 16): 0 and 3 blocks, cold and
/// cached; and with one and two signed approvals. A proof is one more Ed25519 signature (the report puts it next to
/// the floor); a cached verify still checks the proof, which is per call.
fn proofs(c: &mut Criterion) {
    use mcpvault::approval::{approve, Requirement};
    use mcpvault::proof::{request_hash, sign_call, Call};
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let issuer = mcpvault::keygen(&mut rng);
    let holder = mcpvault::keygen(&mut rng);
    let approvers = [mcpvault::keygen(&mut rng), mcpvault::keygen(&mut rng)];
    let base = mcpvault::Grant::new(["db_query"], 3600, "auth-server", "agent-a");
    let deepen = |mut t: String, n: usize, rng: &mut ChaCha20Rng| {
        for hop in 0..n {
            let r = Restriction {
                ttl: Some(3000 - hop as u64 * 60),
                ..Default::default()
            };
            t = attenuate(&t, &r, NOW, rng).unwrap().token;
        }
        t
    };
    let args = serde_json::json!({"sql": "select 1"})
        .as_object()
        .cloned()
        .unwrap();
    let plain_request = Request::tool("db_query").with_arguments(args.clone());
    let tid = |t: &str| inspect(t).unwrap().revocation_ids.last().cloned().unwrap();
    let mut group = c.benchmark_group("proof");
    for n in [0usize, 3] {
        let bearer = deepen(
            mint(&issuer.private_key, &base, NOW, &mut rng).unwrap(),
            n,
            &mut rng,
        );
        let bound_grant = mcpvault::Grant {
            holder: Some(holder.public_key.clone()),
            ..base.clone()
        };
        let bound = deepen(
            mint(&issuer.private_key, &bound_grant, NOW, &mut rng).unwrap(),
            n,
            &mut rng,
        );
        let id = tid(&bound);
        let call = Call {
            token_id: &id,
            method: "tools/call",
            name: Some("db_query"),
            arguments: &args,
            audience: None,
        };
        let with_proof = Request {
            proof: Some(sign_call(&holder.private_key, &call, NOW, &mut rng).unwrap()),
            ..plain_request.clone()
        };
        group.bench_function(BenchmarkId::new("bearer_cold", n), |b| {
            b.iter(|| verify(&bearer, &issuer.public_key, &plain_request, NOW).unwrap())
        });
        group.bench_function(BenchmarkId::new("holder_cold", n), |b| {
            b.iter(|| verify(&bound, &issuer.public_key, &with_proof, NOW).unwrap())
        });
        let mut cached = Verifier::with_cache(Limits::default(), 16);
        group.bench_function(BenchmarkId::new("bearer_cached", n), |b| {
            b.iter(|| {
                cached
                    .verify(&bearer, &issuer.public_key, &plain_request, NOW)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("holder_cached", n), |b| {
            b.iter(|| {
                cached
                    .verify(&bound, &issuer.public_key, &with_proof, NOW)
                    .unwrap()
            })
        });
    }
    for needed in [1usize, 2] {
        let grant = mcpvault::Grant {
            require_approval: vec![Requirement {
                tool: Some("db_query".into()),
                approvers: approvers.iter().map(|k| k.public_key.clone()).collect(),
                needed: needed as u32,
            }],
            ..base.clone()
        };
        let token = mint(&issuer.private_key, &grant, NOW, &mut rng).unwrap();
        let id = tid(&token);
        let hash = request_hash(&Call {
            token_id: &id,
            method: "tools/call",
            name: Some("db_query"),
            arguments: &args,
            audience: None,
        });
        let approved = Request {
            approvals: approvers[..needed]
                .iter()
                .map(|k| approve(&k.private_key, &hash, NOW, 300, &mut rng).unwrap())
                .collect(),
            ..plain_request.clone()
        };
        let mut cached = Verifier::with_cache(Limits::default(), 16);
        group.bench_function(BenchmarkId::new("approvals_cached", needed), |b| {
            b.iter(|| {
                cached
                    .verify(&token, &issuer.public_key, &approved, NOW)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = floor, operations, verification, hostile, constraints, proofs
}
criterion_main!(benches);
