//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mcpvault::{AuthorizedFacts, Error, Request};
use serde_json::{json, Value};

/// Every case in tests/vectors, sorted by file name.
pub fn vector_cases() -> Vec<(String, Value)> {
    cases_in("")
}

/// Every case in tests/vectors/`sub` (`state`, `audit`), sorted by file name.
pub fn cases_in(sub: &str) -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(sub);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// A case's request, token, key and clock.
pub fn case_call(case: &Value) -> (String, String, Request, u64) {
    (
        case["token"].as_str().unwrap().to_string(),
        case["public_key"].as_str().unwrap().to_string(),
        serde_json::from_value(case["request"].clone()).unwrap(),
        case["now"].as_u64().unwrap(),
    )
}

/// A verification result in the vectors' `expect` shape.
pub fn answer(result: Result<AuthorizedFacts, Error>) -> Value {
    match result {
        Ok(facts) => json!({ "ok": facts }),
        Err(e) => json!({ "error": e.code() }),
    }
}

/// A token that is not a valid token must be refused opaquely.
pub fn assert_refused_opaquely(err: &Error, context: &str) {
    assert!(
        ["bad_signature", "malformed_token"].contains(&err.code()),
        "{context}: {}",
        err.code()
    );
}
