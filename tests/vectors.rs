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

use mcpvault::verify;
use serde_json::Value;

fn run_case(case: &Value) -> Result<(), String> {
    let (token, key, request, now) = common::case_call(case);
    let result = verify(&token, &key, &request, now);
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
    // every error code a token or request can produce has a vector
    for code in mcpvault::ERROR_CODES
        .iter()
        .filter(|c| **c != "internal_error")
    {
        assert!(codes.contains(*code), "no vector expects {code}");
    }
}
