//! Property tests of the guard, as an attacker would try it: random bodies (one message, batches of 0 to 120, plain
//! values, broken JSON), random ids (strings, integers, floats, null, none), every method, tokens in every place
//! (headers, bearer, `_meta` of any message, arguments, the fallback) — valid, narrowed, from another issuer, garbage —
//! and `Mcp-Method`/`Mcp-Name` headers that may disagree. Whatever arrives, the guard:
//! - never panics, and answers a refusal with a status of 400/401/403/409/500, a JSON-RPC error (an array for a
//!   batch) and exactly one decision and one audit record, and hands nothing on;
//! - allows only when every message is allowed, with a token the issuer signed, each `tools/call` of a tool that token
//!   grants; hands on every message (a batch in order) without the token it authorized with, anywhere in it;
//! - never allows a batch of more than 100 messages, a `tools/call` without an id, or a request whose only token is
//!   garbage or another issuer's.
//!
//! 2,000 requests by default; MCPVAULT_GUARD_CASES changes it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::guard::{BodyError, Guard, GuardInput, GuardOptions};
use mcpvault::state::MemoryStore;
use mcpvault::{attenuate, keygen, mint, Grant, Restriction};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000;
const METHODS: [&str; 9] = [
    "tools/call",
    "tools/call",
    "tools/list",
    "resources/read",
    "prompts/get",
    "completion/complete",
    "initialize",
    "notifications/initialized",
    "ping",
];
const TOOL_NAMES: [&str; 4] = ["db_query", "file_read", "admin_delete", "mcpvault.check"];

struct Tokens {
    public_key: String,
    /// db_query and file_read
    root: String,
    /// db_query only
    narrow: String,
    /// another issuer's
    foreign: String,
}

fn tokens() -> Tokens {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let keys = keygen(&mut rng);
    let other = keygen(&mut rng);
    let grant = Grant::new(["db_query", "file_read"], 3600, "auth-server", "agent-a");
    let root = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    let narrow = attenuate(
        &root,
        &Restriction {
            tools: Some(vec!["db_query".into()]),
            ..Default::default()
        },
        NOW,
        &mut rng,
    )
    .unwrap()
    .token;
    let foreign = mint(&other.private_key, &grant, NOW, &mut rng).unwrap();
    Tokens {
        public_key: keys.public_key.clone(),
        root,
        narrow,
        foreign,
    }
}

/// Which token a place carries: none, root, narrow, foreign, garbage.
fn pick(t: &Tokens, which: u8) -> Option<String> {
    match which % 5 {
        0 => None,
        1 => Some(t.root.clone()),
        2 => Some(t.narrow.clone()),
        3 => Some(t.foreign.clone()),
        _ => Some("not-a-token".into()),
    }
}

#[derive(Debug, Clone)]
struct Msg {
    method: usize,
    tool: usize,
    id: u8,
    meta_token: u8,
    arg_token: bool,
    params_kind: u8,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        0..METHODS.len(),
        0..TOOL_NAMES.len(),
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(
            |(method, tool, id, meta_token, arg_token, params_kind)| Msg {
                method,
                tool,
                id,
                meta_token,
                arg_token,
                params_kind,
            },
        )
}

fn message(t: &Tokens, m: &Msg) -> Value {
    let method = METHODS[m.method];
    let mut params = json!({});
    if method == "tools/call" {
        params = json!({"name": TOOL_NAMES[m.tool], "arguments": {"sql": "select 1"}});
        if m.arg_token {
            params["arguments"]["copy"] = json!(t.root);
        }
        if m.params_kind % 7 == 0 {
            params["arguments"] = json!([1, 2]);
        }
    }
    if let Some(tok) = pick(t, m.meta_token) {
        params["_meta"] = json!({ if m.meta_token % 2 == 0 { "token" } else { "mcpvault/token" }: tok, "progressToken": 1 });
    }
    let mut v = json!({"jsonrpc": "2.0", "method": method, "params": params});
    match m.id % 6 {
        0 => {}
        1 => v["id"] = json!(format!("r{}", m.id)),
        2 => v["id"] = json!(m.id),
        3 => v["id"] = json!(1.5),
        4 => v["id"] = Value::Null,
        _ => v["id"] = json!(-(i64::from(m.id))),
    }
    if m.params_kind % 11 == 1 {
        v["jsonrpc"] = json!("1.0");
    }
    v
}

#[derive(Debug, Clone)]
struct Req {
    msgs: Vec<Msg>,
    batch: bool,
    header: u8,
    bearer: u8,
    fallback: u8,
    mcp_method: Option<usize>,
    mcp_name: Option<usize>,
    body: u8,
    many: usize,
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::collection::vec(msg(), 0..6),
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::option::of(0..METHODS.len()),
        prop::option::of(0..TOOL_NAMES.len()),
        any::<u8>(),
        0usize..130,
    )
        .prop_map(
            |(msgs, batch, header, bearer, fallback, mcp_method, mcp_name, body, many)| Req {
                msgs,
                batch,
                header,
                bearer,
                fallback,
                mcp_method,
                mcp_name,
                body,
                many,
            },
        )
}

fn input(t: &Tokens, r: &Req) -> (GuardInput, usize) {
    let mut i = GuardInput {
        http_method: Some("POST".into()),
        ..GuardInput::default()
    };
    if let Some(tok) = pick(t, r.header) {
        if r.header % 3 == 0 {
            i.headers.insert("X-MCPVault-Token".into(), tok);
        }
    }
    if let Some(tok) = pick(t, r.bearer) {
        i.headers
            .insert("Authorization".into(), format!("Bearer {tok}"));
    }
    i.fallback_token = pick(t, r.fallback);
    if let Some(m) = r.mcp_method {
        i.headers.insert("Mcp-Method".into(), METHODS[m].into());
    }
    if let Some(n) = r.mcp_name {
        i.headers.insert("Mcp-Name".into(), TOOL_NAMES[n].into());
    }
    let messages: Vec<Value> = r.msgs.iter().map(|m| message(t, m)).collect();
    let (body, count) = match r.body % 10 {
        0 => (None, 0),
        1 => (Some("{\"jsonrpc\": ".to_string()), 0),
        2 => {
            // a big batch of notifications
            let n: Vec<Value> = (0..r.many)
                .map(|_| json!({"jsonrpc": "2.0", "method": "notifications/progress"}))
                .collect();
            (Some(Value::Array(n).to_string()), r.many)
        }
        3 => (Some(json!({"plain": 1}).to_string()), 1),
        _ if r.batch || messages.len() != 1 => {
            let n = messages.len();
            (Some(Value::Array(messages).to_string()), n)
        }
        _ => (Some(messages[0].to_string()), 1),
    };
    i.body = body;
    if r.body == 255 {
        i.body_error = Some(BodyError::TooLarge);
    }
    (i, count)
}

fn cases() -> u32 {
    std::env::var("MCPVAULT_GUARD_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn whatever_arrives_the_guard_refuses_cleanly_or_allows_only_what_a_valid_token_grants(r in req()) {
        let t = tokens();
        let (inp, count) = input(&t, &r);
        let options = GuardOptions { store: true, ..GuardOptions::new(t.public_key.clone()) };
        let mut guard = Guard::new(options, 4).unwrap();
        let mut store = MemoryStore::new();
        let out = guard.run(&mut store, &inp, NOW);
        let texts = [&t.root, &t.narrow, &t.foreign];
        if out.allowed {
            prop_assert_eq!(out.status, 200);
            prop_assert!(out.decisions.iter().all(|d| d.allowed));
            prop_assert!(count <= 100, "a batch of {} allowed", count);
            let token = out.token.clone().unwrap();
            prop_assert!(token == t.root || token == t.narrow, "allowed with {}", token);
            let facts = out.facts.clone().unwrap();
            for d in &out.decisions {
                if d.method.as_deref() == Some("tools/call") {
                    let tool = d.tool.clone().unwrap();
                    prop_assert!(facts.tools.contains(&tool), "{} not granted", tool);
                }
            }
            // the presented token is handed on nowhere (a different token the caller put in an argument is data it
            // chose to send: the guard cannot know every token, and promises only the one it authorized with)
            let fwd = out.forward.clone().map(|f| f.to_string()).unwrap_or_default();
            prop_assert!(!fwd.contains(token.as_str()), "the presented token was handed on: {}", fwd);
            // every tools/call handed on has an id; a batch keeps its messages in order
            if let Some(Value::Array(a)) = &out.forward {
                prop_assert_eq!(a.len(), count);
            }
            prop_assert_eq!(store.audit_entries().len(), out.decisions.len());
        } else {
            prop_assert!([400, 401, 403, 409, 500].contains(&out.status), "status {}", out.status);
            prop_assert!(out.forward.is_none() && out.facts.is_none() && out.call_key.is_none());
            prop_assert_eq!(out.decisions.len(), 1);
            prop_assert_eq!(store.audit_entries().len(), 1);
            let resp = out.response.clone().unwrap();
            let first = match &resp { Value::Array(a) => a[0].clone(), v => v.clone() };
            prop_assert_eq!(&first["jsonrpc"], "2.0");
            prop_assert!(first["error"]["data"]["code"].is_string());
            let text = resp.to_string();
            for tok in texts {
                prop_assert!(!text.contains(tok.as_str()), "a token in the answer");
            }
        }
        if count > 100 {
            prop_assert!(!out.allowed);
        }
    }
}
