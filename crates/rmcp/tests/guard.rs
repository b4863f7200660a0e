//! A guarded rmcp server answering rmcp's own client: in process (a duplex
//! stream) and over Streamable HTTP on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::{refusal, tokens, Db};
use mcpvault_rmcp::{GuardOptions, McpVault, MemoryStore, CHECK_TOOL, REDACTED};
use rmcp::model::{ClientRequest, ServerResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::ServiceExt;
use serde_json::{json, Value};

type Client = RunningService<RoleClient, ()>;

async fn connect(vault: &McpVault, db: Db) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let server = vault.guard(db);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    ().serve(client_io).await.unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// A request as JSON (method, params with `_meta`), sent by the client.
async fn send(client: &Client, method: &str, params: Value) -> Result<Value, rmcp::ServiceError> {
    let request: ClientRequest = from(json!({"method": method, "params": params}));
    client
        .send_request(request)
        .await
        .map(|r: ServerResult| serde_json::to_value(r).unwrap())
}

fn names(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[field].as_str().unwrap().to_string())
        .collect()
}

fn vault(check_tool: bool) -> McpVault {
    let t = tokens();
    let mut options = GuardOptions::new(t.keys.public_key.clone());
    options.check_tool = check_tool;
    McpVault::new(options).unwrap()
}

#[tokio::test]
async fn allowed_refused_stripped_filtered_in_process() {
    let t = tokens();
    let vault = vault(true);
    let db = Db::default();
    let client = connect(&vault, db.clone()).await;

    for key in ["token", "mcpvault/token"] {
        let meta = json!({ key: t.narrow, "progressToken": 42 });
        let list = send(&client, "tools/list", json!({ "_meta": meta }))
            .await
            .unwrap();
        assert_eq!(names(&list, "tools", "name"), ["db_query", CHECK_TOOL]);
        let ok = send(
            &client,
            "tools/call",
            json!({"name": "db_query", "arguments": {"sql": "s", "leak": t.narrow}, "_meta": meta}),
        )
        .await
        .unwrap();
        assert_eq!(ok["content"][0]["text"], r#"db_query ok {"sql":"s"}"#);
        let refused = send(
            &client,
            "tools/call",
            json!({"name": "admin_delete", "arguments": {}, "_meta": meta}),
        )
        .await;
        assert_eq!(refusal(refused), (-32013, "tool_not_allowed".into()));
    }
    // the handler ran twice, never saw the token, kept the rest of _meta, got the facts
    let seen: Vec<_> = db
        .seen()
        .into_iter()
        .filter(|s| s.method == "tools/call")
        .collect();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(
            !format!("{s:?}").contains(&t.narrow),
            "token reached the handler: {s:?}"
        );
        assert_eq!(s.params["arguments"], json!({"sql": "s"}));
        // the rest of _meta is kept (rmcp's client sets its own progress token)
        let keys: Vec<_> = s.meta.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["progressToken"]);
        assert_eq!(s.subject.as_deref(), Some("agent-a"));
    }

    // no token, a garbage token: refused on every method
    let none = send(
        &client,
        "tools/call",
        json!({"name": "db_query", "arguments": {}}),
    )
    .await;
    assert_eq!(refusal(none), (-32011, "missing_token".into()));
    assert_eq!(
        refusal(send(&client, "tools/list", json!({})).await),
        (-32011, "missing_token".into())
    );
    let garbage = json!({"uri": "file:///docs/a.md", "_meta": {"token": "garbage"}});
    assert_eq!(
        refusal(send(&client, "resources/read", garbage).await),
        (-32011, "malformed_token".into())
    );
    assert_eq!(
        refusal(send(&client, "prompts/list", json!({})).await),
        (-32011, "missing_token".into())
    );

    // resources and prompts: decided, and lists filtered
    let meta = json!({ "token": t.root });
    let read = send(
        &client,
        "resources/read",
        json!({"uri": "file:///docs/a.md", "_meta": meta}),
    );
    assert_eq!(read.await.unwrap()["contents"][0]["text"], "contents");
    let secret = send(
        &client,
        "resources/read",
        json!({"uri": "file:///etc/passwd", "_meta": meta}),
    );
    assert_eq!(
        refusal(secret.await),
        (-32013, "resource_not_allowed".into())
    );
    let resources = send(&client, "resources/list", json!({ "_meta": meta }))
        .await
        .unwrap();
    assert_eq!(names(&resources, "resources", "uri"), ["file:///docs/a.md"]);
    let prompts = send(&client, "prompts/list", json!({ "_meta": meta }))
        .await
        .unwrap();
    assert_eq!(names(&prompts, "prompts", "name"), ["summarize"]);
    let tools = send(&client, "tools/list", json!({ "_meta": meta }))
        .await
        .unwrap();
    assert_eq!(
        names(&tools, "tools", "name"),
        ["db_query", "file_read", "admin_delete", CHECK_TOOL]
    );

    // the dry run: answered by the guard, nothing runs
    let calls = |db: &Db| {
        db.seen()
            .iter()
            .filter(|s| s.method == "tools/call")
            .count()
    };
    let before = calls(&db);
    let dry = send(
        &client,
        "tools/call",
        json!({"name": CHECK_TOOL, "arguments": {"tool": "file_read"}, "_meta": {"token": t.narrow}}),
    )
    .await
    .unwrap();
    assert_eq!(dry["structuredContent"]["allowed"], false);
    assert_eq!(dry["structuredContent"]["code"], "tool_not_allowed");
    let dry_ok = send(
        &client,
        "tools/call",
        json!({"name": CHECK_TOOL, "arguments": {"tool": "db_query"}, "_meta": {"token": t.narrow}}),
    )
    .await
    .unwrap();
    assert_eq!(dry_ok["structuredContent"]["allowed"], true);
    let dry_none = send(
        &client,
        "tools/call",
        json!({"name": CHECK_TOOL, "arguments": {"tool": "db_query"}}),
    );
    assert_eq!(refusal(dry_none.await), (-32011, "missing_token".into()));
    assert_eq!(calls(&db), before);

    // every decision went to the store's audit chain
    let audit = vault.store().unwrap().audit_entries();
    assert!(audit
        .iter()
        .any(|e| !e.record.allowed && e.record.code.as_deref() == Some("missing_token")));
    assert!(audit
        .iter()
        .any(|e| e.record.allowed && e.record.tool.as_deref() == Some("db_query")));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn rmcp_client_typed_calls_and_single_use() {
    let t = tokens();
    let vault = vault(false);
    let db = Db::default();
    let client = connect(&vault, db.clone()).await;
    let mut params: rmcp::model::CallToolRequestParams = from(
        json!({"name": "db_query", "arguments": {"sql": "one"}, "_meta": {"token": t.single}}),
    );
    let first = client.call_tool(params.clone()).await.unwrap();
    assert_eq!(first.content.len(), 1);
    // the same token again (a new request): spent
    assert_eq!(
        refusal(client.call_tool(params.clone()).await),
        (-32011, "replayed".into())
    );
    params.arguments = Some(from(json!({"sql": "two"})));
    assert_eq!(
        refusal(client.call_tool(params).await),
        (-32011, "replayed".into())
    );
    assert_eq!(db.seen().len(), 1, "the single-use call ran once");
    // without the dry-run tool, tools/list lists the granted tools only
    let list = client
        .list_tools(Some(from(json!({"_meta": {"token": t.narrow}}))))
        .await
        .unwrap();
    let got: Vec<_> = list.tools.iter().map(|x| x.name.to_string()).collect();
    assert_eq!(got, ["db_query"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn without_a_store_single_use_is_refused() {
    let t = tokens();
    let vault = McpVault::without_store(GuardOptions::new(t.keys.public_key.clone())).unwrap();
    let db = Db::default();
    let client = connect(&vault, db.clone()).await;
    let params = json!({"name": "db_query", "arguments": {}, "_meta": {"token": t.single}});
    assert_eq!(
        refusal(send(&client, "tools/call", params).await),
        (-32011, "replayed".into())
    );
    let ok = send(
        &client,
        "tools/call",
        json!({"name": "db_query", "_meta": {"token": t.narrow}}),
    );
    assert!(ok.await.is_ok());
    assert_eq!(db.seen().len(), 1);
    client.cancel().await.unwrap();
}

#[test]
fn a_bad_key_or_policy_is_refused_when_built() {
    assert!(McpVault::new(GuardOptions::new("abcd")).is_err());
    let t = tokens();
    let mut options = GuardOptions::new(t.keys.public_key.clone());
    options.rules =
        from(json!([{"id": "r", "enforcement": "hard"}, {"id": "r", "enforcement": "soft"}]));
    assert!(McpVault::new(options).is_err());
}

/// Streamable HTTP: the token in the Authorization header (rmcp's client
/// `auth_header`), redacted in the headers the handler sees.
#[tokio::test]
async fn streamable_http_header_token() {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{
        StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
    };

    let t = tokens();
    let vault = vault(true);
    let db = Db::default();
    let (v, d) = (vault.clone(), db.clone());
    let service = StreamableHttpService::new(
        move || Ok(v.guard(d.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let connect = |token: &str| {
        let config = StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token);
        ().serve(StreamableHttpClientTransport::from_config(config))
    };
    let client = connect(&t.narrow).await.unwrap();
    let list = client.list_tools(None).await.unwrap();
    let got: Vec<_> = list.tools.iter().map(|x| x.name.to_string()).collect();
    assert_eq!(got, ["db_query", CHECK_TOOL]);
    let ok = client
        .call_tool(from(json!({"name": "db_query", "arguments": {"sql": "x"}})))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&ok.content).unwrap()[0]["text"],
        r#"db_query ok {"sql":"x"}"#
    );
    let refused = client
        .call_tool(from(json!({"name": "file_read", "arguments": {}})))
        .await;
    assert_eq!(refusal(refused), (-32013, "tool_not_allowed".into()));
    let seen: Vec<_> = db
        .seen()
        .into_iter()
        .filter(|s| s.method == "tools/call")
        .collect();
    assert_eq!(seen.len(), 1);
    let auth: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].1, format!("Bearer {REDACTED}"));
    assert!(!format!("{:?}", seen[0]).contains(&t.narrow));
    client.cancel().await.unwrap();

    // a garbage header token: every request refused with the core's code
    let garbage = connect("garbage").await.unwrap();
    let read = garbage
        .read_resource(from(json!({"uri": "file:///docs/a.md"})))
        .await;
    assert_eq!(refusal(read), (-32011, "malformed_token".into()));
    garbage.cancel().await.unwrap();
}

/// The README's snippet is the example, verbatim.
#[test]
fn readme_snippet_is_the_example() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/guarded_server.rs");
    let start = readme
        .find("<!-- rmcp-example -->")
        .expect("README marks the rmcp example");
    let body = &readme[start..];
    let open = body.find("```rust").expect("a rust block")
        + body[body.find("```rust").unwrap()..].find('\n').unwrap()
        + 1;
    let close = open + body[open..].find("```").expect("the block ends");
    assert_eq!(&body[open..close], example);
}

#[test]
fn memory_store_is_shared_by_clones() {
    let store = MemoryStore::new();
    assert!(store.clone().revoke("00").is_err());
    assert!(store.audit_entries().is_empty());
}

/// Without `check_tool` the guard is the innermost layer: nothing behind it answers the dry-run tool, so a valid
/// token's call of it is refused (before, it reached the handler's `call_tool`, which runs a tool of that name).
#[tokio::test]
async fn dry_run_tool_without_check_tool_never_reaches_the_handler() {
    let t = tokens();
    let vault = vault(false);
    let db = Db::default();
    let client = connect(&vault, db.clone()).await;
    let dry = send(
        &client,
        "tools/call",
        json!({"name": CHECK_TOOL, "arguments": {"tool": "db_query"}, "_meta": {"token": t.narrow}}),
    );
    assert_eq!(refusal(dry.await), (-32600, "invalid_request".into()));
    let none = send(
        &client,
        "tools/call",
        json!({"name": CHECK_TOOL, "arguments": {"tool": "db_query"}}),
    );
    assert_eq!(refusal(none.await), (-32011, "missing_token".into()));
    assert!(db.seen().iter().all(|s| s.method != "tools/call"));
    client.cancel().await.unwrap();
}
