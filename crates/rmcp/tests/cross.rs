//! The rmcp side of tests/cross (`make test-cross`): the same server as
//! tests/cross/node_host.mjs and python_host.py (tools db_query, file_read,
//! admin_delete; prompts greeting, secret), guarded by `McpVault::guard`,
//! asked each MCP case by rmcp's own client (in process, the token in
//! `_meta`), and each HTTP case over Streamable HTTP on 127.0.0.1 behind
//! `McpVault::http_layer` with reqwest. Reads the cases from the file
//! `MCPVAULT_CROSS_CASES`, writes the answers to `MCPVAULT_CROSS_ANSWERS`.
//! Ignored unless asked for: tests/cross/run.mjs runs it with `--ignored`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcpvault_rmcp::{GuardOptions, McpVault};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientRequest, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, ServerConfig, ServerResult,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{json, Map, Value};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[derive(Clone)]
struct Cross;

impl ServerHandler for Cross {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::default();
        info.capabilities = from(json!({"tools": {}, "prompts": {}}));
        info
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools: Vec<Value> = ["db_query", "file_read", "admin_delete"]
            .iter()
            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
            .collect();
        Ok(from(json!({ "tools": tools })))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = format!("{} ok", request.name);
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(from(
            json!({"prompts": [{"name": "greeting"}, {"name": "secret"}]}),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let text = if request.name == "greeting" {
            "hello"
        } else {
            "secret"
        };
        Ok(GetPromptResponse::Complete(from(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}]
        }))))
    }
}

fn vault(spec: &Value) -> McpVault {
    let mut options = GuardOptions::new(spec["public_key"].as_str().unwrap());
    options.audience = spec["audience"].as_str().map(str::to_string);
    McpVault::new(options).unwrap()
}

/// The names of a list answer's items.
fn names(v: &Value, list: &str) -> Value {
    let names: Vec<Value> = v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    json!({ "names": names })
}

/// One MCP case through rmcp's client: `{allowed, result}` or
/// `{allowed: false, rpc, message, data}`.
async fn ask(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>, case: &Value) -> Value {
    let method = case["method"].as_str().unwrap();
    let mut params = match &case["params"] {
        Value::Object(p) => p.clone(),
        _ => Map::new(),
    };
    if let Some(token) = case["token"].as_str() {
        params.insert("_meta".into(), json!({ "token": token }));
    }
    let request: ClientRequest = from(json!({"method": method, "params": params}));
    match client.send_request(request).await {
        Ok(r) => {
            let r = serde_json::to_value::<ServerResult>(r).unwrap();
            let result = match method {
                "tools/call" => json!({
                    "text": r["content"][0]["text"],
                    "isError": r["isError"].as_bool().unwrap_or(false),
                }),
                "tools/list" => names(&r, "tools"),
                "prompts/get" => json!({"text": r["messages"][0]["content"]["text"]}),
                "prompts/list" => names(&r, "prompts"),
                other => panic!("no such case method {other}"),
            };
            json!({"allowed": true, "result": result})
        }
        Err(rmcp::ServiceError::McpError(e)) => json!({
            "allowed": false, "rpc": e.code.0, "message": e.message, "data": e.data,
        }),
        Err(other) => panic!("{}: not an MCP answer: {other:?}", case["name"]),
    }
}

async fn mcp_answers(spec: &Value) -> Map<String, Value> {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let server = vault(spec).guard(Cross);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    let mut out = Map::new();
    for case in spec["mcp"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap().to_string();
        out.insert(name, ask(&client, case).await);
    }
    client.cancel().await.unwrap();
    out
}

async fn http_answers(spec: &Value) -> Map<String, Value> {
    let vault = vault(spec);
    let v = vault.clone();
    let service = StreamableHttpService::new(
        move || Ok(v.guard(Cross)),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", vault.guard_http(service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let mut out = Map::new();
    for case in spec["http"].as_array().unwrap() {
        let mut r = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(case["body"].as_str().unwrap().to_string());
        if let Some(token) = case["token"].as_str() {
            r = r.header("authorization", format!("Bearer {token}"));
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        let mut answer = json!({"status": status, "challenge": challenge});
        if status >= 400 {
            answer["body"] = serde_json::from_str(&text).unwrap_or(Value::String(text));
        }
        out.insert(case["name"].as_str().unwrap().to_string(), answer);
    }
    out
}

#[tokio::test]
#[ignore = "run by make test-cross (tests/cross/run.mjs), which writes the cases"]
async fn cross_host() {
    let cases =
        std::env::var("MCPVAULT_CROSS_CASES").expect("MCPVAULT_CROSS_CASES: the cases file");
    let out =
        std::env::var("MCPVAULT_CROSS_ANSWERS").expect("MCPVAULT_CROSS_ANSWERS: where to write");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(cases).unwrap()).unwrap();
    let answers = json!({
        "mcp": mcp_answers(&spec).await,
        "http": http_answers(&spec).await,
    });
    std::fs::write(out, answers.to_string()).unwrap();
}
