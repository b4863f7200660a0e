//! Tokens stay standard Biscuit: plain `biscuit-auth`, with the authorizer
//! printed in SCHEMA.md and no mcpvault code, verifies them. Also checks that
//! the authority statements SCHEMA.md shows are exactly what `mint` writes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use biscuit_auth::{AuthorizerBuilder, Biscuit, PublicKey};
use mcpvault::{attenuate, mint, ArgLimit, ArgRule, Grant, Restriction};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z, the time in SCHEMA.md

fn schema_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SCHEMA.md")).unwrap()
}

fn verifier_block() -> String {
    let md = schema_md();
    let start = md
        .find("```datalog verifier\n")
        .expect("SCHEMA.md has a ```datalog verifier block");
    let body = &md[start + "```datalog verifier\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

fn token() -> (String, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant {
        max_depth: Some(2),
        arg_limits: vec![ArgLimit {
            tool: "db_query".into(),
            arg: "max_rows".into(),
            rule: ArgRule::Max(mcpvault::Bound::Int(100)),
        }],
        ..Grant::new(["db_query", "file_read"], 3600, "auth-server", "agent-a")
    };
    let t = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    let r = Restriction {
        tools: Some(vec!["db_query".into()]),
        ttl: Some(600),
        ..Default::default()
    };
    (
        attenuate(&t, &r, NOW, &mut rng).unwrap().token,
        keys.public_key.clone(),
    )
}

fn stock_authorize(
    token: &str,
    public_key: &str,
    code: &str,
) -> Result<usize, biscuit_auth::error::Token> {
    let root: PublicKey = format!("ed25519/{public_key}").parse().unwrap();
    let biscuit = Biscuit::from_base64(token, root).unwrap();
    AuthorizerBuilder::new()
        .code(code)
        .unwrap()
        .build(&biscuit)
        .unwrap()
        .authorize()
}

#[test]
fn stock_biscuit_verifies_with_the_documented_authorizer() {
    let (token, pk) = token();
    let code = verifier_block();
    assert!(stock_authorize(&token, &pk, &code).is_ok());
    // the same authorizer refuses a tool the attenuation dropped, a big max_rows, and a late clock
    for (from, to) in [
        ("request_tool(\"db_query\")", "request_tool(\"file_read\")"),
        (
            "request_arg_int(\"max_rows\", 10)",
            "request_arg_int(\"max_rows\", 1000)",
        ),
        ("time(2027-01-15T08:00:00Z)", "time(2027-01-15T09:00:00Z)"),
        ("depth(1)", "depth(3)"),
        ("allow if mcpvault(1)", "allow if mcpvault(2)"),
    ] {
        assert!(code.contains(from), "{from}");
        assert!(
            stock_authorize(&token, &pk, &code.replace(from, to)).is_err(),
            "{to}"
        );
    }
}

#[test]
fn blocks_are_datalog_3_1_and_print_with_stock_biscuit() {
    let (token, pk) = token();
    let root: PublicKey = format!("ed25519/{pk}").parse().unwrap();
    let biscuit = Biscuit::from_base64(&token, root).unwrap();
    for i in 0..biscuit.block_count() {
        assert_eq!(biscuit.block_version(i).unwrap(), 4, "block {i}");
    }
    assert!(biscuit.print().contains("mcpvault(1)"));
}

#[test]
fn schema_md_shows_what_mint_writes() {
    let (token, _) = token();
    let authority = mcpvault::inspect(&token).unwrap().blocks[0].source.clone();
    let md = schema_md();
    let section =
        &md[md.find("## Authority block").unwrap()..md.find("## Attenuation blocks").unwrap()];
    let mut shown = 0;
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let stmt = &line[3..line[3..].find('`').unwrap() + 3];
        if stmt.contains("audience") || stmt.contains("request_scope") {
            continue; // this grant has no audience and no scope (tests/contract.rs mints one with scopes)
        }
        assert!(
            authority.contains(stmt),
            "SCHEMA.md shows `{stmt}` but mint wrote:\n{authority}"
        );
        shown += 1;
    }
    assert_eq!(shown, 6);
    let limit_row = md
        .lines()
        .find(|l| l.starts_with("| `db_query.max_rows<=100`"))
        .unwrap();
    let check = limit_row
        .rsplit("| `")
        .next()
        .unwrap()
        .trim_end_matches(['`', '|', ' ']);
    assert!(authority.contains(check), "SCHEMA.md shows `{check}`");
}
