//! `guard::call_target` is the client's half of the guard's rule: a proof signed over what it answers for a message
//! is the proof the guard wants for that message. Random messages of every kind (tools with random arguments, the
//! dry-run tool, resources, prompts, lists, notifications), each signed by the holder over `call_target` and sent
//! through the guard: never `proof_required` nor `bad_proof`; the same proof on the message with one thing changed
//! (its tool, URI, prompt, an argument, its method) is `bad_proof`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::guard::{call_target, Check, Guard, GuardInput, GuardOptions};
use mcpvault::proof::{sign_call, Call};
use mcpvault::{inspect, keygen, mint, Grant};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;

fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        "[a-z]{1,4}",
        prop_oneof![
            any::<i32>().prop_map(|n| json!(n)),
            "[ -~]{0,8}".prop_map(|s| json!(s)),
            any::<bool>().prop_map(|b| json!(b)),
            prop::collection::vec(0u8..9, 0..3).prop_map(|v| json!(v)),
            // floats of every size: a client reads and prints the arguments once more than the server
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            (1.0f64..10.0, -300i32..300).prop_map(|(m, e)| json!(m * 10f64.powi(e))),
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

/// Whether a `tools/call`'s arguments hold a number of magnitude 2^53 or more (SCHEMA.md, "Holder-bound tokens").
fn unsignable(message: &Value) -> bool {
    fn big(v: &Value) -> bool {
        match v {
            Value::Number(n) => n
                .as_f64()
                .is_some_and(|x| x.abs() >= 9_007_199_254_740_992.0),
            Value::Array(a) => a.iter().any(big),
            Value::Object(m) => m.values().any(big),
            _ => false,
        }
    }
    // (the dry-run tool's arguments name a call it does not make)
    message["method"] == "tools/call"
        && message["params"]["name"] != "mcpvault.check"
        && big(&message["params"]["arguments"])
}

/// A message a client sends (no `jsonrpc`, as an SDK hands it over before framing; the id added later).
fn message() -> impl Strategy<Value = Value> {
    prop_oneof![
        ("[a-c]{1,3}", arguments()).prop_map(
            |(t, a)| json!({"method": "tools/call", "params": {"name": t, "arguments": a}})
        ),
        ("[a-c]{1,3}", arguments()).prop_map(|(t, a)| json!({"method": "tools/call",
            "params": {"name": "mcpvault.check", "arguments": {"tool": t, "arguments": a}}})),
        ("(resources/read|resources/subscribe)", "file:///[a-z]{1,6}")
            .prop_map(|(m, u)| json!({"method": m, "params": {"uri": u}})),
        ("[a-z]{1,6}", arguments()).prop_map(
            |(p, a)| json!({"method": "prompts/get", "params": {"name": p, "arguments": a}})
        ),
        "(tools/list|resources/list|prompts/list|logging/setLevel)"
            .prop_map(|m| json!({"method": m, "params": {}})),
        "[a-z]{1,6}".prop_map(|p| json!({"method": "completion/complete",
            "params": {"ref": {"type": "ref/prompt", "name": p}, "argument": {"name": "a", "value": "b"}}})),
    ]
}

/// The message as sent: framed, with the token and the proof in `_meta`.
fn framed(message: &Value, token: &str, proof: &str) -> String {
    let mut m = message.clone();
    let params = m["params"].as_object_mut().unwrap();
    params.insert(
        "_meta".into(),
        json!({"mcpvault/token": token, "mcpvault/proof": proof}),
    );
    m["jsonrpc"] = json!("2.0");
    m["id"] = json!(7);
    m.to_string()
}

fn decide(guard: &mut Guard, body: String) -> (bool, Option<String>) {
    let input = GuardInput {
        body: Some(body),
        ..GuardInput::default()
    };
    match guard.check(&input, NOW) {
        Check::Done { outcome } => {
            let refused = outcome.decisions.iter().find(|d| !d.allowed);
            (outcome.allowed, refused.and_then(|d| d.code.clone()))
        }
        Check::Ask { .. } => panic!("no store: the guard asks nothing"),
    }
}

/// The same message with one signed thing changed.
fn changed(message: &Value) -> Value {
    let mut m = message.clone();
    let p = m["params"].as_object_mut().unwrap();
    match message["method"].as_str().unwrap() {
        "tools/call" if p["name"] == "mcpvault.check" => {
            // the dry run is signed as mcpvault/check alone: another method is what changes it
            m = json!({"method": "tools/list", "params": {}});
        }
        "tools/call" => {
            let args = p["arguments"].as_object_mut().unwrap();
            args.insert("zz_added".into(), json!(1));
        }
        "resources/read" | "resources/subscribe" => {
            p.insert("uri".into(), json!("file:///other"));
        }
        "prompts/get" => {
            p.insert("name".into(), json!("other_prompt"));
        }
        _ => m["method"] = json!("ping/other"),
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_proof_of_the_call_target_is_the_proof_the_guard_wants(message in message(), seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let issuer = keygen(&mut rng);
        let holder = keygen(&mut rng);
        let mut grant = Grant::new(["a", "b", "c", "aa", "ab", "ac", "ba", "bb", "bc", "ca", "cb", "cc"], 600, "i", "s");
        grant.resources = vec!["file:///".into()];
        grant.holder = Some(holder.public_key.clone());
        let token = mint(&issuer.private_key, &grant, NOW, &mut rng).unwrap();
        let token_id = inspect(&token).unwrap().revocation_ids.pop().unwrap();
        let mut options = GuardOptions::new(issuer.public_key.clone());
        options.check_tool = true;
        options.open_prompts = true;
        let mut guard = Guard::new(options, 0).unwrap();

        // as a client does: the target read from the message's text, printed, and read again by the signer
        // now and then the token itself as an argument: the guard removes it, and so does call_target
        let mut message = message;
        if seed % 4 == 0 && message["method"] == "tools/call" && message["params"]["name"] != "mcpvault.check" {
            message["params"]["arguments"]["zz_token"] = json!(token);
        }
        let read: Value = serde_json::from_str(&message.to_string()).unwrap();
        let target = call_target(&read, Some(&token)).unwrap();
        let target: mcpvault::guard::CallTarget =
            serde_json::from_str(&serde_json::to_string(&target).unwrap()).unwrap();
        let call = Call {
            token_id: &token_id,
            method: &target.method,
            name: target.name.as_deref(),
            arguments: &target.arguments,
            audience: None,
        };
        let proof = sign_call(&holder.private_key, &call, NOW, &mut rng).unwrap();
        let (_, code) = decide(&mut guard, framed(&message, &token, &proof));
        if unsignable(&message) {
            // a number of magnitude 2^53 or more cannot be signed exactly: refused wherever a proof signs it
            prop_assert_eq!(code.as_deref(), Some("invalid_request"), "{}", message);
            return Ok(());
        }
        prop_assert!(
            !matches!(code.as_deref(), Some("proof_required" | "bad_proof" | "invalid_request")),
            "{message} refused {code:?}"
        );
        let (allowed, code) = decide(&mut guard, framed(&changed(&message), &token, &proof));
        prop_assert!(!allowed);
        prop_assert_eq!(code.as_deref(), Some("bad_proof"), "{}", message);
    }
}

#[test]
fn malformed_messages_are_invalid_requests_as_the_guard_refuses_them() {
    for m in [
        json!("tools/call"),
        json!({"params": {}}),
        json!({"method": "tools/call", "params": {}}),
        json!({"method": "tools/call", "params": {"name": "a", "arguments": [1]}}),
        json!({"method": "resources/read", "params": {}}),
        json!({"method": "prompts/get", "params": {"name": ""}}),
        json!({"method": "", "params": {}}),
        json!({"method": "tools/list", "params": 5}),
    ] {
        let e = call_target(&m, None).unwrap_err();
        assert_eq!(e.code(), "invalid_request", "{m}");
    }
    // id and jsonrpc are not signed: present or not, the same target
    let bare = json!({"method": "tools/call", "params": {"name": "a", "arguments": {"x": 1}}});
    let framed = json!({"jsonrpc": "2.0", "id": "q", "method": "tools/call", "params": {"name": "a", "arguments": {"x": 1}}});
    assert_eq!(
        call_target(&bare, None).unwrap(),
        call_target(&framed, None).unwrap()
    );
    let t = call_target(&bare, None).unwrap();
    assert_eq!(
        (t.method.as_str(), t.name.as_deref()),
        ("tools/call", Some("a"))
    );
    let check = call_target(&json!({"method": "tools/call", "params": {"name": "mcpvault.check", "arguments": {"tool": "a"}}}), None).unwrap();
    // an argument that is the token is not signed: the guard removes it before the tool sees the call
    let with_token = json!({"method": "tools/call", "params": {"name": "a", "arguments": {"x": 1, "t": "TOKEN"}}});
    assert_eq!(
        call_target(&with_token, Some("TOKEN")).unwrap().arguments,
        *json!({"x": 1}).as_object().unwrap()
    );
    assert_eq!(call_target(&with_token, None).unwrap().arguments.len(), 2);
    assert_eq!(
        (check.method.as_str(), check.name, check.arguments.len()),
        ("mcpvault/check", None, 0)
    );
}
