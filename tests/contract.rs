//! One error contract: the code list lives in `src/error.rs` (`ERROR_CODES`); every other place that names codes is
//! checked against it here, so a new code cannot silently become `internal_error` in one host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn codes() -> BTreeSet<String> {
    mcpvault::ERROR_CODES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// The quoted snake_case words between `start` and the next `end`.
fn quoted_between(text: &str, start: &str, end: &str) -> BTreeSet<String> {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"));
    let rest = &text[from + start.len()..];
    let body = &rest[..rest.find(end).unwrap()];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn wit_error_code_enum_is_the_core_list_in_order() {
    let wit = read("wit/types.wit");
    let start = wit.find("enum error-code {").unwrap();
    let body = &wit[start..start + wit[start..].find('}').unwrap()];
    let cases: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("///") && l.ends_with(','))
        .map(|l| l.trim_end_matches(',').replace('-', "_"))
        .collect();
    let want: Vec<String> = mcpvault::ERROR_CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(cases, want);
}

#[test]
fn typescript_error_code_union_is_the_core_list() {
    let dts = read("npm/mcpvault/index.d.ts");
    assert_eq!(
        quoted_between(&dts, "export type ErrorCode =", ";"),
        codes()
    );
}

#[test]
fn the_component_maps_every_code() {
    let lib = read("crates/component/src/lib.rs");
    for code in mcpvault::ERROR_CODES {
        assert!(
            lib.contains(&format!("\"{code}\" =>")),
            "crates/component does not map {code}"
        );
    }
}

#[test]
fn schema_documents_every_code_with_its_http_status() {
    let schema = read("SCHEMA.md");
    let table = &schema[schema.find("## Error codes").unwrap()..];
    let table = &table[..table.find("\n## ").unwrap()];
    let http = &schema[schema.find("| code | HTTP |").unwrap()..];
    let http = &http[..http.find("\n\n").unwrap()];
    for code in mcpvault::ERROR_CODES {
        assert!(
            table.contains(&format!("| `{code}` |")),
            "SCHEMA.md's error table lacks {code}"
        );
        let row = http
            .lines()
            .find(|l| l.contains(&format!("`{code}`")))
            .unwrap_or_else(|| panic!("SCHEMA.md's HTTP table lacks {code}"));
        let status = mcpvault::status_of_code(code).to_string();
        assert!(
            row.contains(&format!("| {status} |")),
            "{code}: {row} (core: {status})"
        );
    }
}
