//! The HTTP layer (`McpVault::http_layer`) in front of rmcp's
//! StreamableHttpService on 127.0.0.1: refusals are HTTP answers with the
//! core guard's status, `WWW-Authenticate` and JSON-RPC error (as
//! mcpvault-express and Python's McpVaultMiddleware answer), read with a
//! plain HTTP client (reqwest) and with rmcp's own client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{refusal, tokens, Db};
use mcpvault::{Grant, Restriction};
use mcpvault_rmcp::{GuardOptions, McpVault, REDACTED};
use rand_core::SeedableRng;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::ServiceExt;
use serde_json::{json, Value};

const AUDIENCE: &str = "db-server";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Tokens for this server (audience `db-server`): root (three tools),
/// narrow (db_query, `max_rows <= 100`), expired, another audience's, one
/// signed by another key, a single-use one.
struct Http {
    keys: mcpvault::KeyPairHex,
    root: String,
    narrow: String,
    expired: String,
    elsewhere: String,
    foreign: String,
    single: String,
}

fn http_tokens() -> Http {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let keys = mcpvault::keygen(&mut rng);
    let t = now();
    let mut grant = Grant::new(
        ["db_query", "file_read", "admin_delete"],
        3600,
        "auth-server",
        "agent-a",
    );
    grant.audience = Some(AUDIENCE.into());
    let root = mcpvault::mint(&keys.private_key, &grant, t, &mut rng).unwrap();
    let narrow = mcpvault::attenuate(
        &root,
        &Restriction {
            tools: Some(vec!["db_query".into()]),
            arg_limits: vec![from(
                json!({"tool": "db_query", "arg": "max_rows", "op": "max", "value": 100}),
            )],
            ..Restriction::default()
        },
        t,
        &mut rng,
    )
    .unwrap()
    .token;
    let mut short = grant.clone();
    short.ttl = 60;
    let expired = mcpvault::mint(&keys.private_key, &short, t - 7200, &mut rng).unwrap();
    let elsewhere = mcpvault::attenuate(
        &root,
        &Restriction {
            audience: Some("mail-server".into()),
            ..Restriction::default()
        },
        t,
        &mut rng,
    )
    .unwrap()
    .token;
    let other = mcpvault::keygen(&mut rng);
    let foreign = mcpvault::mint(&other.private_key, &grant, t, &mut rng).unwrap();
    let mut once = grant.clone();
    once.single_use = true;
    let single = mcpvault::mint(&keys.private_key, &once, t, &mut rng).unwrap();
    Http {
        keys,
        root,
        narrow,
        expired,
        elsewhere,
        foreign,
        single,
    }
}

/// (allowed, code, status) of each decision.
type Decisions = Arc<Mutex<Vec<(bool, Option<String>, u16)>>>;

struct Server {
    url: String,
    vault: McpVault,
    db: Db,
    decisions: Decisions,
}

/// A guarded Db behind the HTTP layer at /mcp on 127.0.0.1.
async fn serve(public_key: &str, max_body: Option<usize>) -> Server {
    let mut options = GuardOptions::new(public_key);
    options.audience = Some(AUDIENCE.into());
    options.check_tool = true;
    let decisions: Decisions = Arc::default();
    let seen = decisions.clone();
    let vault = McpVault::new(options).unwrap().on_decision(move |d| {
        seen.lock()
            .unwrap()
            .push((d.allowed, d.code.clone(), d.status))
    });
    let db = Db::default();
    let (v, d) = (vault.clone(), db.clone());
    let service = StreamableHttpService::new(
        move || Ok(v.guard(d.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let mut layer = vault.http_layer();
    if let Some(max) = max_body {
        layer = layer.max_body_bytes(max);
    }
    // the layer on an axum Router (`vault.guard_http(service)` with nest_service works as well)
    let app = axum::Router::new()
        .route_service("/mcp", service)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        url,
        vault,
        db,
        decisions,
    }
}

/// What a plain HTTP client gets: status, `WWW-Authenticate`, `Connection`,
/// the body as JSON (null when it is not).
struct Answer {
    status: u16,
    challenge: Option<String>,
    connection: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn post(url: &str, token: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    answer(r.body(body).send().await.unwrap()).await
}

async fn answer(r: reqwest::Response) -> Answer {
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (challenge, connection, content_type) = (
        header("www-authenticate"),
        header("connection"),
        header("content-type"),
    );
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    Answer {
        status,
        challenge,
        connection,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

fn call(tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": args}})
    .to_string()
}

/// A `tools/call` carrying `token` in `_meta`.
fn meta_call(token: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "db_query", "arguments": {"max_rows": 1}, "_meta": {"token": token}}})
    .to_string()
}

fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "reqwest", "version": "1"}}})
    .to_string()
}

/// A refusal as the guard writes it: the status is the core's for the code
/// (`mcpvault::status_of_code`), the body the JSON-RPC error of the request.
fn assert_refused(a: &Answer, code: &str, id: Value) {
    assert_eq!(
        a.status,
        mcpvault::status_of_code(code),
        "{code}: {:?}",
        a.body
    );
    assert_eq!(a.body["jsonrpc"], "2.0");
    assert_eq!(a.body["id"], id);
    assert_eq!(a.body["error"]["data"]["code"], code);
    assert_eq!(a.body["error"]["data"]["status"], a.status);
    assert_eq!(
        a.body["error"]["code"],
        mcpvault::rpc_code_of_status(a.status)
    );
    assert_eq!(a.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn refusals_are_http_statuses_with_the_challenge() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, None).await;

    // no token: 401 and the bare challenge, on initialize as on every request
    let a = post(&s.url, None, initialize()).await;
    assert_refused(&a, "missing_token", json!(1));
    assert_eq!(a.challenge.as_deref(), Some(r#"Bearer realm="mcpvault""#));
    let a = post(&s.url, None, call("db_query", json!({"max_rows": 1}))).await;
    assert_refused(&a, "missing_token", json!(7));

    // a token that cannot be used at all: 401 invalid_token
    for (token, code) in [
        ("garbage", "malformed_token"),
        (t.expired.as_str(), "expired"),
        (t.elsewhere.as_str(), "wrong_audience"),
        (t.foreign.as_str(), "bad_signature"),
    ] {
        for body in [initialize(), call("db_query", json!({"max_rows": 1}))] {
            let a = post(&s.url, Some(token), body).await;
            let id = a.body["id"].clone();
            assert_refused(&a, code, id);
            let challenge = a.challenge.unwrap();
            assert!(
                challenge.starts_with(&format!(
                    r#"Bearer realm="mcpvault", error="invalid_token", error_description="{code}: "#
                )),
                "{challenge}"
            );
        }
    }

    // a valid token that does not allow the call: 403 insufficient_scope, naming the tool
    let a = post(&s.url, Some(&t.narrow), call("file_read", json!({}))).await;
    assert_refused(&a, "tool_not_allowed", json!(7));
    assert_eq!(a.body["error"]["data"]["failedBlock"], 1);
    assert_eq!(
        a.challenge.as_deref(),
        Some(
            r#"Bearer realm="mcpvault", error="insufficient_scope", error_description="tool_not_allowed: tool \"file_read\" is not allowed (refused by block 1)", scope="file_read""#
        )
    );
    let a = post(
        &s.url,
        Some(&t.narrow),
        call("db_query", json!({"max_rows": 101})),
    )
    .await;
    assert_refused(&a, "argument_not_allowed", json!(7));
    assert!(a
        .challenge
        .unwrap()
        .contains(r#"error="insufficient_scope""#));

    // a request the client got wrong: 400, no challenge
    let a = post(&s.url, Some(&t.root), "{").await;
    assert_refused(&a, "invalid_request", Value::Null);
    assert_eq!(a.challenge, None);
    let a = post(&s.url, Some(&t.root), vec![0xff_u8, 0xfe]).await;
    assert_refused(&a, "invalid_request", Value::Null);
    // a _meta token that differs from the header's
    let two = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "db_query", "arguments": {}, "_meta": {"token": t.narrow}}});
    let a = post(&s.url, Some(&t.root), two.to_string()).await;
    assert_refused(&a, "invalid_request", json!(3));

    // a header sent twice reaches the guard as every value it carried (joined as Node joins them): two tokens,
    // whichever comes first; a credential that is not UTF-8 is still presented (never "no token")
    for (first, second) in [(&t.root, &t.narrow), (&t.narrow, &t.root)] {
        for name in ["x-mcpvault-token", "authorization"] {
            let value = |t: &str| {
                if name == "authorization" {
                    format!("Bearer {t}")
                } else {
                    t.to_string()
                }
            };
            let r = reqwest::Client::new()
                .post(&s.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header(name, value(first))
                .header(name, value(second))
                .body(call("db_query", json!({"max_rows": 1})))
                .send()
                .await
                .unwrap();
            assert_refused(&answer(r).await, "invalid_request", json!(7));
        }
    }
    let bytes = reqwest::header::HeaderValue::from_bytes(b"Bearer tok\xe9n").unwrap();
    let r = reqwest::Client::new()
        .post(&s.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", bytes)
        .body(meta_call(&t.root))
        .send()
        .await
        .unwrap();
    assert_refused(&answer(r).await, "invalid_request", json!(7));

    // a body-less GET (the SSE stream) needs a valid token too
    let get = reqwest::Client::new()
        .get(&s.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let a = answer(get).await;
    assert_refused(&a, "missing_token", Value::Null);
    let get = reqwest::Client::new()
        .get(&s.url)
        .header("accept", "text/event-stream")
        .bearer_auth(&t.root)
        .send()
        .await
        .unwrap();
    // allowed: rmcp answers it (no session id: not the guard's refusal)
    let a = answer(get).await;
    assert_ne!(a.status, 401);
    assert_eq!(a.challenge, None);
    assert!(a.body["error"]["data"]["code"].is_null());

    // a valid token's initialize goes on to rmcp
    let a = post(&s.url, Some(&t.root), initialize()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.challenge, None);

    // nothing refused reached a handler; every decision was the HTTP layer's
    assert!(s.db.seen().is_empty());
    let decisions = s.decisions.lock().unwrap().clone();
    assert!(decisions.iter().all(|(allowed, code, status)| {
        *allowed == code.is_none()
            && (*allowed || mcpvault::status_of_code(code.as_deref().unwrap()) == *status)
    }));
    let audit = s.vault.store().unwrap().audit_entries();
    assert!(audit
        .iter()
        .any(|e| e.record.code.as_deref() == Some("wrong_audience")));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_the_connection_closed() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, Some(1024)).await;
    let big = call("db_query", json!({"sql": "x".repeat(2048)}));
    let a = post(&s.url, Some(&t.root), big).await;
    assert_refused(&a, "invalid_request", Value::Null);
    assert_eq!(a.connection.as_deref(), Some("close"));
    let a = post(&s.url, Some(&t.root), initialize()).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn rmcp_client_through_the_layer() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, None).await;
    let connect = |token: &str| {
        let config =
            StreamableHttpClientTransportConfig::with_uri(s.url.clone()).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
    };

    // allowed requests go on to the guarded handler, which strips and redacts the token
    let client = connect(&t.narrow).await.unwrap();
    let list = client.list_tools(None).await.unwrap();
    let names: Vec<_> = list.tools.iter().map(|x| x.name.to_string()).collect();
    assert_eq!(names, ["db_query", mcpvault_rmcp::CHECK_TOOL]);
    let ok = client
        .call_tool(from(
            json!({"name": "db_query", "arguments": {"max_rows": 5}}),
        ))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&ok.content).unwrap()[0]["text"],
        r#"db_query ok {"max_rows":5}"#
    );
    // the dry run passes the layer and is answered by the handler's guard
    let dry = client
        .call_tool(from(
            json!({"name": mcpvault_rmcp::CHECK_TOOL, "arguments": {"tool": "file_read"}}),
        ))
        .await
        .unwrap();
    let dry = serde_json::to_value(&dry).unwrap();
    assert_eq!(dry["structuredContent"]["code"], "tool_not_allowed");
    // a refused call is an HTTP 403 the client reports with the challenge
    let refused = client
        .call_tool(from(
            json!({"name": "file_read", "arguments": {"path": "/"}}),
        ))
        .await
        .unwrap_err();
    let text = format!("{refused:?}");
    assert!(text.contains("insufficient_scope"), "{text}");
    assert!(text.contains("tool_not_allowed"), "{text}");
    // the session goes on
    assert!(client
        .call_tool(from(
            json!({"name": "db_query", "arguments": {"max_rows": 6}})
        ))
        .await
        .is_ok());
    let calls: Vec<_> =
        s.db.seen()
            .into_iter()
            .filter(|x| x.method == "tools/call")
            .collect();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert!(!format!("{c:?}").contains(&t.narrow));
        assert!(c
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && *v == format!("Bearer {REDACTED}")));
    }
    client.cancel().await.unwrap();

    // a garbage token: the client cannot even initialize, and is told why
    let err = connect("garbage").await.unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("invalid_token"), "{text}");
    assert!(text.contains("malformed_token"), "{text}");
}

#[tokio::test]
async fn single_use_is_spent_behind_the_layer_and_revocation_refused_in_front() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, None).await;
    let config =
        StreamableHttpClientTransportConfig::with_uri(s.url.clone()).auth_header(t.single.clone());
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    let args = || from(json!({"name": "db_query", "arguments": {"max_rows": 1}}));
    client.call_tool(args()).await.unwrap();
    // the HTTP layer spends nothing: the handler's guard refuses the second call as an MCP error
    assert_eq!(
        refusal(client.call_tool(args()).await),
        (-32011, "replayed".into())
    );
    client.cancel().await.unwrap();
    let ran =
        s.db.seen()
            .iter()
            .filter(|x| x.method == "tools/call")
            .count();
    assert_eq!(ran, 1);

    // a revoked token is refused in front of rmcp: 401 revoked
    let id = mcpvault::inspect(&t.root).unwrap().revocation_ids[0].clone();
    s.vault.store().unwrap().revoke(&id).unwrap();
    let a = post(&s.url, Some(&t.root), initialize()).await;
    assert_refused(&a, "revoked", json!(1));
    assert!(a.challenge.unwrap().contains(r#"error="invalid_token""#));
}

/// Opens a Streamable HTTP session with `headers` (the token's): its id.
async fn open_session(url: &str, headers: &[(&str, String)]) -> String {
    let mut r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    let opened = r.body(initialize()).send().await.unwrap();
    assert_eq!(opened.status(), 200);
    opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string()
}

/// An HTTP request with `token` (bearer) in the session `sid`: (status, body).
async fn in_session(
    verb: reqwest::Method,
    url: &str,
    token: &str,
    sid: &str,
    body: Option<String>,
) -> Answer {
    let mut r = reqwest::Client::new()
        .request(verb, url)
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", sid);
    if let Some(b) = body {
        r = r.header("content-type", "application/json").body(b);
    }
    // an SSE GET that is allowed streams until the server ends it: its status is enough
    let resp = r.send().await.unwrap();
    if resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return Answer {
            status: resp.status().as_u16(),
            challenge: None,
            connection: None,
            content_type: None,
            body: Value::Null,
        };
    }
    answer(resp).await
}

#[tokio::test]
async fn a_session_is_its_openers_subject() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, None).await;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    let mut grant = Grant::new(["db_query"], 3600, "auth-server", "agent-b");
    grant.audience = Some(AUDIENCE.into());
    let other = mcpvault::mint(&t.keys.private_key, &grant, now(), &mut rng).unwrap();
    let sid = open_session(&s.url, &[("authorization", format!("Bearer {}", t.root))]).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let a = in_session(reqwest::Method::POST, &s.url, &t.root, &sid, Some(note)).await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    // another subject's token naming the session: session_mismatch on every verb, nothing runs
    let hijack = call("db_query", json!({"max_rows": 1}));
    let a = in_session(reqwest::Method::POST, &s.url, &other, &sid, Some(hijack)).await;
    assert_refused(&a, "session_mismatch", json!(7));
    for verb in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let a = in_session(verb.clone(), &s.url, &other, &sid, None).await;
        assert_refused(&a, "session_mismatch", Value::Null);
    }
    // a session the layer never saw opened: 404 invalid_request, decided (and reported) by the core
    let before = s.decisions.lock().unwrap().len();
    for i in 0..20 {
        let made_up = format!("made-up-{i}");
        let a = in_session(
            reqwest::Method::POST,
            &s.url,
            &other,
            &made_up,
            Some(call("db_query", json!({}))),
        )
        .await;
        assert_eq!(a.status, 404, "{:?}", a.body);
        assert_eq!(a.body["error"]["data"]["code"], "invalid_request");
        assert_eq!(a.body["error"]["code"], -32600);
    }
    let heard = s.decisions.lock().unwrap()[before..].to_vec();
    assert_eq!(
        heard,
        vec![(false, Some("invalid_request".to_string()), 404); 20]
    );
    assert!(s.db.seen().iter().all(|x| x.method != "tools/call"));
    // the opener's session is whole: its call runs, its DELETE ends it, and then it is unknown
    let own = call("db_query", json!({"max_rows": 1}));
    let a = in_session(
        reqwest::Method::POST,
        &s.url,
        &t.root,
        &sid,
        Some(own.clone()),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let a = in_session(reqwest::Method::DELETE, &s.url, &t.root, &sid, None).await;
    assert!(a.status < 300, "{}", a.status);
    let a = in_session(reqwest::Method::POST, &s.url, &t.root, &sid, Some(own)).await;
    assert_eq!(a.status, 404, "{:?}", a.body);
    assert_eq!(
        s.db.seen()
            .iter()
            .filter(|x| x.method == "tools/call")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_handler_sees_neither_the_proof_nor_the_token() {
    let t = http_tokens();
    let s = serve(&t.keys.public_key, None).await;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let holder = mcpvault::keygen(&mut rng);
    let mut grant = Grant::new(["db_query"], 3600, "auth-server", "agent-a");
    grant.audience = Some(AUDIENCE.into());
    grant.holder = Some(holder.public_key.clone());
    let bound = mcpvault::mint(&t.keys.private_key, &grant, now(), &mut rng).unwrap();
    let id = mcpvault::inspect(&bound)
        .unwrap()
        .revocation_ids
        .last()
        .cloned()
        .unwrap();
    let mut prove = |method: &str, name: Option<&str>, args: Value| {
        mcpvault::proof::sign_call(
            &holder.private_key,
            &mcpvault::proof::Call {
                token_id: &id,
                method,
                name,
                arguments: args.as_object().unwrap(),
                audience: Some(AUDIENCE),
            },
            now(),
            &mut rng,
        )
        .unwrap()
    };
    let send = |proof: String, sid: Option<String>, body: String| {
        let mut r = reqwest::Client::new()
            .post(&s.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {bound}"))
            .header("x-mcpvault-proof", proof);
        if let Some(sid) = sid {
            r = r.header("mcp-session-id", sid);
        }
        r.body(body).send()
    };
    let sid = open_session(
        &s.url,
        &[
            ("authorization", format!("Bearer {bound}")),
            ("x-mcpvault-proof", prove("initialize", None, json!({}))),
        ],
    )
    .await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let a = send(
        prove("notifications/initialized", None, json!({})),
        Some(sid.clone()),
        note,
    )
    .await
    .unwrap();
    assert_eq!(a.status(), 202);
    let args = json!({"max_rows": 1});
    let proof = prove("tools/call", Some("db_query"), args.clone());
    let a = send(proof.clone(), Some(sid), call("db_query", args))
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    let _ = a.text().await;
    let seen: Vec<_> =
        s.db.seen()
            .into_iter()
            .filter(|x| x.method == "tools/call")
            .collect();
    assert_eq!(seen.len(), 1);
    let text = format!("{:?}", seen[0]);
    assert!(!text.contains(&proof) && !text.contains(&bound), "{text}");
    // nor does the initialize handler, which the guard does not decide in the handler (the layer did, in front)
    let inits = s.db.inits.lock().unwrap().clone();
    assert_eq!(inits.len(), 1);
    let text = format!("{:?}", inits[0]);
    assert!(
        !text.contains(&bound) && !text.contains("x-mcpvault-proof\", \"ey"),
        "{text}"
    );
    assert!(inits[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && *v == format!("Bearer {REDACTED}")));
    assert!(inits[0]
        .headers
        .iter()
        .any(|(k, v)| k == "x-mcpvault-proof" && v == REDACTED));
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "x-mcpvault-proof" && v == REDACTED));
}

#[tokio::test]
async fn guard_http_wraps_a_service_for_nest_service() {
    let t = tokens();
    let vault = McpVault::new(GuardOptions::new(t.keys.public_key.clone())).unwrap();
    let v = vault.clone();
    let service = StreamableHttpService::new(
        move || Ok(v.guard(Db::default())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", vault.guard_http(service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let a = post(&url, Some("garbage"), initialize()).await;
    assert_refused(&a, "malformed_token", json!(1));
    let a = post(&url, Some(&t.narrow), initialize()).await;
    assert_eq!(a.status, 200);
}

/// crates/rmcp/README.md's HTTP snippet is the example, verbatim.
#[test]
fn crate_readme_snippet_is_the_http_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/guarded_http_server.rs");
    let start = readme
        .find("<!-- rmcp-http-example -->")
        .expect("the README marks the HTTP example");
    let body = &readme[start..];
    let fence = body.find("```rust").expect("a rust block");
    let open = fence + body[fence..].find('\n').unwrap() + 1;
    let close = open + body[open..].find("```").expect("the block ends");
    assert_eq!(&body[open..close], example);
}
