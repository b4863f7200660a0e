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

/// Every row of SCHEMA.md's argument-limit table: the `--arg` text parses, its JSON is the limit the core
/// writes, and every piece of the check column (split at `…`) is in the check a minted token carries.
#[test]
fn schema_argument_limit_table_is_what_the_core_writes() {
    let schema = read("SCHEMA.md");
    let from = schema.find("## Argument limits").unwrap();
    let table = &schema[from..schema[from..].find("(`…` stands").unwrap() + from];
    let mut rows = 0;
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
    let keys = mcpvault::keygen(&mut rng);
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let spec = cells[0].trim_start_matches("| ").trim_matches('`');
        let limit = mcpvault::ArgLimit::from_spec(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let json: serde_json::Value = serde_json::from_str(cells[1].trim_matches('`')).unwrap();
        let written = serde_json::to_value(&limit).unwrap();
        for (k, v) in json.as_object().unwrap() {
            assert_eq!(&written[k], v, "{spec}: {k}");
        }
        let mut grant = mcpvault::Grant::new([limit.tool.clone()], 60, "i", "s");
        grant.arg_limits = vec![limit];
        let token = mcpvault::mint(&keys.private_key, &grant, 1_800_000_000, &mut rng).unwrap();
        let checks = mcpvault::inspect(&token).unwrap().blocks[0]
            .checks
            .join("\n");
        let expected = cells[2]
            .trim_end_matches(" |")
            .split(" (")
            .next()
            .unwrap()
            .trim_matches('`')
            .replace("\\|", "|");
        for piece in expected.split('…').map(str::trim).filter(|p| !p.is_empty()) {
            let piece = piece.trim_end_matches(';');
            // the cidr row abbreviates its 104 bits
            if piece.contains("0000…") || piece.contains("\" + \"") {
                continue;
            }
            assert!(checks.contains(piece), "{spec}: {piece:?} not in\n{checks}");
        }
        rows += 1;
    }
    assert!(rows >= 16, "{rows} rows");
}

/// SCHEMA.md's row for a grant with tools and scopes is what mint writes.
#[test]
fn schema_scopes_row_is_what_mint_writes() {
    let schema = read("SCHEMA.md");
    let row = schema
        .lines()
        .find(|l| {
            l.starts_with(
                "| `check if request_tool($tool), {\"db_query\"}.contains($tool) or request_scope",
            )
        })
        .unwrap();
    let stmt = &row[3..row[3..].find('`').unwrap() + 3];
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(8);
    let keys = mcpvault::keygen(&mut rng);
    let mut grant = mcpvault::Grant::new(["db_query"], 60, "i", "s");
    grant.scopes = vec!["filesystem:files:read".into()];
    let token = mcpvault::mint(&keys.private_key, &grant, 1_800_000_000, &mut rng).unwrap();
    let source = mcpvault::inspect(&token).unwrap().blocks[0].source.clone();
    assert!(source.contains(stmt), "{stmt}\n{source}");
}
