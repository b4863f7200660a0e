//! `needs_tool_definitions`: the guard tells a host when to read the server's tool definitions (a pinned call, or a
//! dry run of one, that lacked them), before the store was asked; never for a request without a valid token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::guard::{Check, Guard, GuardInput, GuardOptions};
use mcpvault::{keygen, mint, Grant};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn input(token: Option<&str>, body: serde_json::Value, defs: Option<&str>) -> GuardInput {
    GuardInput {
        body: Some(body.to_string()),
        fallback_token: token.map(str::to_string),
        tool_definitions: defs.map(|h| [("db_query".to_string(), h.to_string())].into()),
        ..GuardInput::default()
    }
}

#[test]
fn asked_before_the_store_and_only_for_a_pinned_call_of_a_valid_token() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let issuer = keygen(&mut rng);
    let hash = "ab".repeat(32);
    let pinned = mint(
        &issuer.private_key,
        &Grant {
            pin: [("db_query".to_string(), hash.clone())].into(),
            ..Grant::new(["db_query", "file_read"], 600, "i", "s")
        },
        NOW,
        &mut rng,
    )
    .unwrap();
    let mut options = GuardOptions::new(issuer.public_key.clone());
    options.store = true;
    options.check_tool = true;
    let mut guard = Guard::new(options, 8).unwrap();
    let call = |id: i64, tool: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let dry = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "mcpvault.check", "arguments": {"tool": "db_query"}}});
    let flags = |c: &Check| match c {
        Check::Done { outcome } => ("done", outcome.needs_tool_definitions),
        Check::Ask {
            needs_tool_definitions,
            pending: _,
            ..
        } => ("ask", *needs_tool_definitions),
    };
    // a pinned call without definitions: refused before the store, and the host is told to read them
    assert_eq!(
        flags(&guard.check(&input(Some(&pinned), call(1, "db_query"), None), NOW)),
        ("done", true)
    );
    // with them: no flag (allowed: on to the store)
    assert_eq!(
        flags(&guard.check(&input(Some(&pinned), call(2, "db_query"), Some(&hash)), NOW)),
        ("ask", false)
    );
    // a dry run of the pinned tool goes to the store (its probe): the flag comes with the ask, before anything is done
    assert_eq!(
        flags(&guard.check(&input(Some(&pinned), dry.clone(), None), NOW)),
        ("ask", true)
    );
    assert_eq!(
        flags(&guard.check(&input(Some(&pinned), dry, Some(&hash)), NOW)),
        ("ask", false)
    );
    // no token, a garbage token, an unpinned tool: never
    assert_eq!(
        flags(&guard.check(&input(None, call(3, "db_query"), None), NOW)),
        ("done", false)
    );
    assert_eq!(
        flags(&guard.check(&input(Some("EvQB"), call(4, "db_query"), None), NOW)),
        ("done", false)
    );
    assert_eq!(
        flags(&guard.check(&input(Some(&pinned), call(5, "file_read"), None), NOW)),
        ("ask", false)
    );
    // after the store step the outcome never asks (a retry then would run the store step twice)
    let Check::Ask { pending, .. } = guard.check(
        &input(
            Some(&pinned),
            json!({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": {"name": "mcpvault.check", "arguments": {"tool": "db_query"}}}),
            None,
        ),
        NOW,
    ) else {
        panic!()
    };
    let outcome = guard.resume(*pending, &mcpvault::state::StoreAnswer::default());
    assert!(!outcome.needs_tool_definitions);
}
