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
use mcpvault::guard::{Guard, GuardInput, GuardOptions};
use mcpvault::state::MemoryStore;
use mcpvault::verify;
use serde_json::{json, Value};

/// A `state/` case: the guard runs every step on one fresh store holding
/// the case's revoked ids, recording a response where the step says the
/// handler completed; every outcome must be the recorded one, in full.
fn run_state_case(case: &Value) -> Value {
    let options: GuardOptions = serde_json::from_value(case["options"].clone()).unwrap();
    // a cached and an uncached guard must agree
    let mut outcomes = Vec::new();
    for cache in [0, 16] {
        let mut store = MemoryStore::new();
        for id in case["revoked"].as_array().unwrap() {
            store.revoke(id.as_str().unwrap()).unwrap();
        }
        let mut guard = Guard::new(options.clone(), cache).unwrap();
        let mut got = Vec::new();
        for step in case["steps"].as_array().unwrap() {
            let input: GuardInput = serde_json::from_value(step["input"].clone()).unwrap();
            let outcome = guard.run(&mut store, &input, step["now"].as_u64().unwrap());
            if let (Some(k), Some(r)) = (&outcome.call_key, step.get("complete")) {
                store.complete(k, r.clone(), outcome.keep_until.unwrap());
            }
            got.push(without_cache_hits(serde_json::to_value(outcome).unwrap()));
        }
        assert_eq!(
            store.audit_entries().len() as u64,
            case["audit_entries"].as_u64().unwrap(),
            "{}",
            case["name"]
        );
        outcomes.push(Value::Array(got));
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "cached and uncached guards differ"
    );
    outcomes.pop().unwrap()
}

/// An outcome without its decisions' `cache_hit` (which depends on the
/// cache's size and history: the vectors never hold it).
fn without_cache_hits(mut outcome: Value) -> Value {
    if let Some(ds) = outcome["decisions"].as_array_mut() {
        for d in ds {
            if let Some(o) = d.as_object_mut() {
                o.remove("cache_hit");
            }
        }
    }
    outcome
}

fn expected(case: &Value) -> Value {
    match case["operation"].as_str() {
        Some("guard") => Value::Array(
            case["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["expect"].clone())
                .collect(),
        ),
        _ => case["expect"].clone(),
    }
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
            let want = expected(case);
            for step in want.as_array().into_iter().flatten() {
                for d in step["decisions"].as_array().into_iter().flatten() {
                    if let Some(code) = d["code"].as_str() {
                        codes.insert(code.to_string());
                    }
                }
            }
            let got = run(case);
            if got == want {
                passed += 1;
            } else {
                failed += 1;
                eprintln!("FAIL {sub}/{name}: expected {want}, got {got}");
            }
        }
    }
    println!("state and audit vectors: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
    for code in [
        "revoked",
        "replayed",
        "in_flight",
        "missing_token",
        "session_mismatch",
        "invalid_request",
        "malformed_token",
    ] {
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
    // the guard decides around a token, in state/)
    let guard_codes = [
        "internal_error",
        "revoked",
        "replayed",
        "in_flight",
        "session_mismatch",
        "missing_token",
        "rule_violation",
        "resource_not_allowed",
        "prompt_not_allowed",
        "rate_limited",
        "budget_exceeded",
        "bad_proof",
        "proof_expired",
    ];
    for code in mcpvault::ERROR_CODES
        .iter()
        .filter(|c| !guard_codes.contains(*c))
    {
        assert!(codes.contains(*code), "no vector expects {code}");
    }
}
