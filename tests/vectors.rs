//! Runs every case in `tests/vectors/` against the Rust core and prints
//! `N passed, M failed`. Every other host runs the same files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;

use mcpvault::{verify, Request};
use serde_json::Value;

fn run_case(case: &Value) -> Result<(), String> {
    let token = case["token"].as_str().ok_or("token")?;
    let key = case["public_key"].as_str().ok_or("public_key")?;
    let now = case["now"].as_u64().ok_or("now")?;
    let request: Request =
        serde_json::from_value(case["request"].clone()).map_err(|e| e.to_string())?;
    let got = match verify(token, key, &request, now) {
        Ok(facts) => serde_json::json!({ "ok": facts }),
        Err(e) => {
            // the message contract: lowercase, one line, no final period
            let msg = e.to_string();
            if msg.is_empty()
                || msg.contains('\n')
                || msg.ends_with('.')
                || msg.starts_with(char::is_uppercase)
            {
                return Err(format!("badly formed message {msg:?}"));
            }
            serde_json::json!({ "error": e.code() })
        }
    };
    if got == case["expect"] {
        Ok(())
    } else {
        Err(format!("expected {}, got {}", case["expect"], got))
    }
}

#[test]
fn shared_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut passed, mut failed) = (0, 0);
    let mut codes = BTreeSet::new();
    for path in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(case["operation"], "verify", "{}", path.display());
        if let Some(code) = case["expect"]["error"].as_str() {
            codes.insert(code.to_string());
        }
        match run_case(&case) {
            Ok(()) => passed += 1,
            Err(msg) => {
                failed += 1;
                eprintln!(
                    "FAIL {}: {msg}",
                    path.file_name().unwrap().to_string_lossy()
                );
            }
        }
    }
    println!("vectors: {passed} passed, {failed} failed");
    assert!(files.len() >= 40, "only {} vectors", files.len());
    assert_eq!(failed, 0);
    // every error code a token or request can produce has a vector
    for code in mcpvault::ERROR_CODES
        .iter()
        .filter(|c| **c != "internal_error")
    {
        assert!(codes.contains(*code), "no vector expects {code}");
    }
}
