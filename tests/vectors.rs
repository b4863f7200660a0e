//! Runs every case in `tests/vectors/` against the Rust core and prints
//! `N passed, M failed`. Every other host runs the same files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;

use mcpvault::audit::{audit_append, audit_verify, call_key, AuditEntry, AuditRecord};
use mcpvault::state::{check_replay, check_revocation, Spend};
use mcpvault::verify;
use serde_json::{json, Value};

/// A `state/` case: verify, then revocation against `revoked`, then replay
/// against `spent` (or no replay store).
fn run_state_case(case: &Value) -> Value {
    let (token, key, request, now) = common::case_call(case);
    let strings =
        |k: &str| -> Vec<String> { serde_json::from_value(case["state"][k].clone()).unwrap() };
    let (revoked, spent) = (strings("revoked"), strings("spent"));
    let has_store = case["state"]["replay_store"].as_bool().unwrap();
    let result = verify(&token, &key, &request, now).and_then(|f| {
        check_revocation(&f, |id| Ok(revoked.iter().any(|r| r == id)))?;
        let spend = has_store.then(|| match f.nonces.iter().find(|n| spent.contains(n)) {
            Some(n) => Spend::Replayed(n.clone()),
            None => Spend::Fresh,
        });
        check_replay(&f, spend)?;
        Ok(f)
    });
    common::answer(result)
}

/// An `audit/` case: appending records, verifying a chain, or a call key.
fn run_audit_case(case: &Value) -> Value {
    match case["operation"].as_str().unwrap() {
        "audit_append" => {
            let records: Vec<AuditRecord> =
                serde_json::from_value(case["records"].clone()).unwrap();
            let mut entries: Vec<AuditEntry> = Vec::new();
            for r in records {
                let e = audit_append(entries.last(), r).unwrap();
                entries.push(e);
            }
            json!({ "entries": entries })
        }
        "audit_verify" => {
            let entries: Vec<Value> = serde_json::from_value(case["entries"].clone()).unwrap();
            match audit_verify(&entries) {
                Ok(s) => json!({ "ok": s }),
                Err(b) => json!({ "break": b }),
            }
        }
        "call_key" => {
            let args = case["arguments"].as_object().unwrap();
            json!(call_key(
                case["request_id"].as_str().unwrap(),
                case["method"].as_str().unwrap(),
                case["tool"].as_str(),
                args
            ))
        }
        other => panic!("unknown operation {other}"),
    }
}

#[test]
fn state_and_audit_vectors() {
    let (mut passed, mut failed) = (0, 0);
    let mut codes = BTreeSet::new();
    for (sub, run) in [
        ("state", run_state_case as fn(&Value) -> Value),
        ("audit", run_audit_case),
    ] {
        let cases = common::cases_in(sub);
        assert!(cases.len() >= 8, "only {} {sub} vectors", cases.len());
        for (name, case) in &cases {
            if let Some(code) = case["expect"]["error"].as_str() {
                codes.insert(code.to_string());
            }
            let got = run(case);
            if got == case["expect"] {
                passed += 1;
            } else {
                failed += 1;
                eprintln!("FAIL {sub}/{name}: expected {}, got {got}", case["expect"]);
            }
        }
    }
    println!("state and audit vectors: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
    for code in ["revoked", "replayed"] {
        assert!(codes.contains(code), "no state vector expects {code}");
    }
}

fn run_case(case: &Value) -> Result<(), String> {
    let (token, key, request, now) = common::case_call(case);
    let result = verify(&token, &key, &request, now);
    // a plain mcpvault chain is evaluated directly; the Datalog engine must
    // give the very same answer (facts, or code, block and check text)
    let datalog = mcpvault::Limits {
        always_datalog: true,
        ..Default::default()
    };
    let engine = mcpvault::verify_with_limits(&token, &key, &request, now, &datalog);
    if engine != result {
        return Err(format!(
            "direct evaluation {result:?} differs from the Datalog engine {engine:?}"
        ));
    }
    if let Err(e) = &result {
        // the message contract: lowercase, one line, no final period
        let msg = e.to_string();
        if msg.is_empty()
            || msg.contains('\n')
            || msg.ends_with('.')
            || msg.starts_with(char::is_uppercase)
        {
            return Err(format!("badly formed message {msg:?}"));
        }
    }
    let got = common::answer(result);
    if got == case["expect"] {
        Ok(())
    } else {
        Err(format!("expected {}, got {}", case["expect"], got))
    }
}

#[test]
fn shared_vectors() {
    let cases = common::vector_cases();
    let (mut passed, mut failed) = (0, 0);
    let mut codes = BTreeSet::new();
    for (name, case) in &cases {
        assert_eq!(case["operation"], "verify", "{name}");
        if let Some(code) = case["expect"]["error"].as_str() {
            codes.insert(code.to_string());
        }
        match run_case(case) {
            Ok(()) => passed += 1,
            Err(msg) => {
                failed += 1;
                eprintln!("FAIL {name}: {msg}");
            }
        }
    }
    println!("vectors: {passed} passed, {failed} failed");
    assert!(cases.len() >= 40, "only {} vectors", cases.len());
    assert_eq!(failed, 0);
    // every error code a token or request can produce has a vector (what
    // the verifier remembers, revoked and replayed, in state/)
    for code in mcpvault::ERROR_CODES
        .iter()
        .filter(|c| !["internal_error", "revoked", "replayed"].contains(*c))
    {
        assert!(codes.contains(*code), "no vector expects {code}");
    }
}
