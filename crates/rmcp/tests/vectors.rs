//! Parity: the guard vectors (`tests/vectors/state`, operation `guard`) that
//! an MCP server can receive, sent as JSON-RPC lines to a guarded rmcp server
//! over an in-process stream. Every decision (the core's, reported to
//! `on_decision`), every refusal's JSON-RPC error, every answer the guard
//! gives itself, the arguments the handler got and the audit chain's length
//! must be the vector's.
//!
//! The vectors' token is in a header (the HTTP gate's view); here it travels
//! in `params._meta.token` (where an MCP client puts it), so the decisions'
//! `token_source` is `_meta.token`. Left out, each for a reason `skip` names:
//! batches, body-less and unreadable HTTP requests, notifications,
//! client responses, header-only checks (`Mcp-Method`), two tokens (a header
//! and `_meta`), outer layers (`transport_token`, `replay_checked`,
//! `defer_spend`, sessions, one-tool routes), the lifecycle, methods rmcp or
//! the test server does not serve, and a first execution that records no
//! response (this wrapper always records one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::Db;
use mcpvault_rmcp::{GuardOptions, McpVault, MemoryStore};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TOKEN_HEADERS: [&str; 2] = ["authorization", "x-mcpvault-token"];

/// Why a case cannot reach an MCP server's handler as sent, if it cannot.
fn skip(case: &Value) -> Option<String> {
    let o = &case["options"];
    if o.get("tool").is_some_and(|t| !t.is_null()) {
        return Some("a one-tool route".into());
    }
    if o["defer_spend"] == true {
        return Some("defer_spend (an outer layer)".into());
    }
    for step in case["steps"].as_array().unwrap() {
        let input = &step["input"];
        if input.get("http_method").is_some_and(|m| m != "POST") {
            return Some("a body-less HTTP request".into());
        }
        for k in [
            "body_error",
            "transport_token",
            "fallback_token",
            "session_subject",
        ] {
            if input.get(k).is_some_and(|v| !v.is_null()) {
                return Some(format!("{k} (an outer layer or the HTTP gate)"));
            }
        }
        if input.get("tool_definitions").is_some_and(|v| !v.is_null()) {
            return Some(
                "tool_definitions (the handler's get_tool gives them: tests/pins.rs)".into(),
            );
        }
        if input["replay_checked"] == true {
            return Some("replay_checked (an outer layer)".into());
        }
        let headers = input["headers"].as_object().cloned().unwrap_or_default();
        if headers
            .keys()
            .any(|k| !TOKEN_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Some("headers other than the token's".into());
        }
        let body: Value = match input["body"].as_str().map(serde_json::from_str) {
            Some(Ok(b)) => b,
            _ => return Some("no JSON body".into()),
        };
        if !body.is_object() {
            return Some("a batch".into());
        }
        if body.get("id").is_none() || body.get("method").is_none() {
            return Some("a notification or a client response".into());
        }
        if ["initialize", "ping"].contains(&body["method"].as_str().unwrap_or("")) {
            return Some("the lifecycle".into());
        }
        if body["method"] == "subscriptions/listen" {
            return Some(
                "subscriptions/listen, which this layer does not offer (method not found)".into(),
            );
        }
        if body["method"]
            .as_str()
            .is_some_and(|m| m.starts_with("skills/"))
        {
            return Some("skills/*, which this layer does not offer (method not found)".into());
        }
        if body["method"] == "x-acme/report" {
            return Some("a server's own method, which the test server does not serve".into());
        }
        let meta = &body["params"]["_meta"];
        if !headers.is_empty()
            && (meta.get("token").is_some() || meta.get("mcpvault/token").is_some())
        {
            return Some("two tokens (a header and _meta)".into());
        }
        if step["expect"]["decisions"][0]["code"] == "in_flight" {
            return Some("a first execution that records no response (in_flight)".into());
        }
    }
    None
}

/// The token of a header, as the guard reads it.
fn header_token(headers: &serde_json::Map<String, Value>) -> Option<String> {
    headers.iter().find_map(|(k, v)| {
        let v = v.as_str()?;
        match k.to_ascii_lowercase().as_str() {
            "x-mcpvault-token" => Some(v.trim().to_string()),
            "authorization" => v
                .trim()
                .strip_prefix("Bearer ")
                .map(|t| t.trim().to_string()),
            _ => None,
        }
    })
}

/// The decision as the vector expects it once the token moved to `_meta`.
fn expected_decision(mut d: Value) -> Value {
    if let Some(o) = d.as_object_mut() {
        if matches!(
            o.get("token_source").and_then(Value::as_str),
            Some("bearer" | "header")
        ) {
            o.insert("token_source".into(), json!("_meta.token"));
        }
    }
    d
}

fn without_cache_hit(mut d: Value) -> Value {
    if let Some(o) = d.as_object_mut() {
        o.remove("cache_hit");
    }
    d
}

async fn run_case(name: &str, case: &Value) -> Result<(), String> {
    let options: GuardOptions = serde_json::from_value(case["options"].clone()).unwrap();
    let clock = Arc::new(AtomicU64::new(0));
    let decisions = Arc::new(Mutex::new(Vec::<Value>::new()));
    let store = MemoryStore::new();
    for id in case["revoked"].as_array().unwrap() {
        store.revoke(id.as_str().unwrap()).unwrap();
    }
    let vault = if options.store {
        McpVault::with_store(options.clone(), store.clone())
    } else {
        McpVault::without_store(options.clone())
    }
    .unwrap();
    let (c, d) = (clock.clone(), decisions.clone());
    let vault = vault
        .with_clock(move || c.load(Ordering::SeqCst))
        .on_decision(move |x| d.lock().unwrap().push(serde_json::to_value(x).unwrap()));
    let db = Db::default();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = vault.guard(db.clone());
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let (read, mut write) = tokio::io::split(client_io);
    let mut lines = BufReader::new(read).lines();
    let init = json!({"jsonrpc": "2.0", "id": "vectors-init", "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "vectors", "version": "1"}}});
    write
        .write_all(format!("{init}\n").as_bytes())
        .await
        .unwrap();
    lines.next_line().await.unwrap().unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    write
        .write_all(format!("{initialized}\n").as_bytes())
        .await
        .unwrap();

    for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
        let at = format!("{name} step {i}");
        let input = &step["input"];
        let expect = &step["expect"];
        clock.store(step["now"].as_u64().unwrap(), Ordering::SeqCst);
        decisions.lock().unwrap().clear();
        *db.respond.lock().unwrap() = step.get("complete").cloned();
        let seen_before = db.seen().len();

        let mut body: Value = serde_json::from_str(input["body"].as_str().unwrap()).unwrap();
        let headers = input["headers"].as_object().cloned().unwrap_or_default();
        if let Some(token) = header_token(&headers) {
            let params = body
                .as_object_mut()
                .unwrap()
                .entry("params")
                .or_insert_with(|| json!({}));
            let meta = params
                .as_object_mut()
                .unwrap()
                .entry("_meta")
                .or_insert_with(|| json!({}));
            meta.as_object_mut()
                .unwrap()
                .insert("token".into(), json!(token));
        }
        write
            .write_all(format!("{body}\n").as_bytes())
            .await
            .unwrap();
        let reply: Value = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .ok_or(format!("{at}: no reply"))?;
            let v: Value = serde_json::from_str(&line).unwrap();
            if v.get("id").is_some() {
                break v;
            }
        };

        let got: Vec<Value> = decisions
            .lock()
            .unwrap()
            .drain(..)
            .map(without_cache_hit)
            .collect();
        let want: Vec<Value> = expect["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(expected_decision)
            .collect();
        if got != want {
            return Err(format!("{at}: decisions\n  want {want:?}\n  got  {got:?}"));
        }
        if expect["allowed"] == false {
            let want = &expect["response"]["error"];
            if reply.get("error") != Some(want) {
                return Err(format!("{at}: error\n  want {want}\n  got  {reply}"));
            }
        } else if let Some(answer) = expect["answers"].as_array().unwrap().first() {
            let matches = match (answer.get("result"), answer.get("error")) {
                (Some(r), _) => reply.get("result") == Some(r),
                (_, Some(e)) => reply.get("error") == Some(e),
                _ => false,
            };
            if !matches || db.seen().len() != seen_before {
                return Err(format!("{at}: answer\n  want {answer}\n  got  {reply}"));
            }
        } else {
            // the handler ran, with the forwarded params (no token)
            let seen = db.seen();
            let Some(s) = seen.get(seen_before) else {
                return Err(format!("{at}: the handler did not run: {reply}"));
            };
            let fwd = &expect["forward"]["params"];
            for k in ["arguments", "name", "uri"] {
                if fwd.get(k).is_some() && s.params.get(k) != fwd.get(k) {
                    return Err(format!("{at}: the handler got {}, want {fwd}", s.params));
                }
            }
            let want_meta = fwd.get("_meta").cloned().unwrap_or(json!({}));
            if s.meta != want_meta {
                return Err(format!(
                    "{at}: the handler got _meta {}, want {want_meta}",
                    s.meta
                ));
            }
            // the handler's answer, as the vector records it when it gives one
            let answered = match step.get("complete") {
                Some(c) if c.get("error").is_some() => reply.get("error") == c.get("error"),
                Some(c) => {
                    // a list answer reaches the client as the token may see it: the core's filter of the handler's
                    let method = body["method"].as_str().unwrap_or_default();
                    let want = if mcpvault::guard::LIST_METHODS.contains(&method) {
                        let facts = serde_json::from_value(expect["facts"].clone()).ok();
                        let first = body["params"].get("cursor").is_none_or(Value::is_null);
                        mcpvault::guard::Guard::new(options.clone(), 0)
                            .unwrap()
                            .filter(method, &c["result"], facts.as_ref(), first)
                    } else {
                        c["result"].clone()
                    };
                    reply.get("result") == Some(&want)
                }
                None => reply.get("result").is_some(),
            };
            if !answered {
                return Err(format!(
                    "{at}: the handler's answer is not {:?}: {reply}",
                    step.get("complete")
                ));
            }
        }
    }
    let entries = store.audit_entries().len() as u64;
    if entries != case["audit_entries"].as_u64().unwrap() {
        return Err(format!(
            "{name}: {entries} audit entries, want {}",
            case["audit_entries"]
        ));
    }
    Ok(())
}

#[tokio::test]
async fn guard_vectors_through_rmcp() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/state");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut ran, mut skipped, mut failed) = (0, 0, Vec::new());
    let mut codes = std::collections::BTreeSet::new();
    for path in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = case["name"].as_str().unwrap().to_string();
        if case["operation"] != "guard" {
            continue;
        }
        if let Some(why) = skip(&case) {
            println!("skip {name}: {why}");
            skipped += 1;
            continue;
        }
        for step in case["steps"].as_array().unwrap() {
            if let Some(c) = step["expect"]["decisions"][0]["code"].as_str() {
                codes.insert(c.to_string());
            }
        }
        match run_case(&name, &case).await {
            Ok(()) => ran += 1,
            Err(e) => failed.push(e),
        }
    }
    println!(
        "guard vectors through rmcp: {ran} passed, {} failed, {skipped} skipped",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(ran >= 30, "only {ran} vectors ran");
    // the vectors that ran cover what an MCP server refuses
    for code in [
        "missing_token",
        "malformed_token",
        "tool_not_allowed",
        "resource_not_allowed",
        "prompt_not_allowed",
        "revoked",
        "replayed",
        "rule_violation",
    ] {
        assert!(
            codes.contains(code),
            "no vector that ran expects {code}: {codes:?}"
        );
    }
}
