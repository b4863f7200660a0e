//! A small rmcp server to guard (tools, resources, prompts) that records what
//! its handlers saw, and tokens for it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use mcpvault::{AuthorizedFacts, Grant, KeyPairHex, Restriction};
use rand_core::SeedableRng;
#[allow(deprecated)]
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{json, Value};

/// What a handler saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub params: Value,
    pub meta: Value,
    pub subject: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// The server: three tools, two resources, two prompts.
#[derive(Clone, Default)]
pub struct Db {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// What the initialize handler (not decided by the guard) was handed.
    pub inits: Arc<Mutex<Vec<Seen>>>,
    /// The next tools/call response (`{"result": …}` or `{"error": …}`).
    pub respond: Arc<Mutex<Option<Value>>>,
}

impl Db {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn see(&self, method: &str, params: Value, context: &RequestContext<RoleServer>) {
        self.seen
            .lock()
            .unwrap()
            .push(Self::seen_of(method, params, context));
    }

    fn seen_of(method: &str, params: Value, context: &RequestContext<RoleServer>) -> Seen {
        let headers = context
            .extensions
            .get::<http::request::Parts>()
            .map(|p| {
                p.headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Seen {
            method: method.into(),
            params,
            meta: serde_json::to_value(&context.meta).unwrap(),
            subject: context
                .extensions
                .get::<AuthorizedFacts>()
                .map(|f| f.subject.clone()),
            headers,
        }
    }
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[allow(deprecated)]
impl ServerHandler for Db {
    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, ErrorData> {
        self.inits
            .lock()
            .unwrap()
            .push(Self::seen_of("initialize", json!({}), &context));
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::default();
        info.capabilities = from(json!({
            "tools": {}, "resources": {"subscribe": true}, "prompts": {}, "completions": {}, "logging": {}
        }));
        info
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.see(
            "tools/list",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        let tools: Vec<Value> = ["db_query", "file_read", "admin_delete"]
            .iter()
            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
            .collect();
        Ok(from(json!({ "tools": tools })))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.see(
            "tools/call",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        if let Some(r) = self.respond.lock().unwrap().take() {
            if let Some(e) = r.get("error") {
                return Err(from(e.clone()));
            }
            return Ok(CallToolResponse::Complete(from(r["result"].clone())));
        }
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let text = format!("{} ok {args}", request.name);
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            rmcp::model::ContentBlock::text(text),
        ])))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.see(
            "resources/list",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(from(json!({"resources": [
            {"uri": "file:///docs/a.md", "name": "a"},
            {"uri": "file:///etc/passwd", "name": "passwd"}
        ]})))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.see(
            "resources/read",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(ReadResourceResponse::Complete(from(json!({
            "contents": [{"uri": request.uri, "text": "contents"}]
        }))))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.see(
            "resources/subscribe",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(())
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.see(
            "prompts/list",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(from(
            json!({"prompts": [{"name": "summarize"}, {"name": "secret"}]}),
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.see(
            "prompts/get",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(GetPromptResponse::Complete(from(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}]
        }))))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.see(
            "completion/complete",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(CompleteResult::default())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.see(
            "logging/setLevel",
            serde_json::to_value(&request).unwrap(),
            &context,
        );
        Ok(())
    }
}

pub struct Tokens {
    pub keys: KeyPairHex,
    /// db_query, file_read, admin_delete; file:///docs/*; the summarize prompt
    pub root: String,
    /// root narrowed to db_query
    pub narrow: String,
    /// db_query, single use
    pub single: String,
}

pub fn tokens() -> Tokens {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(19);
    let keys = mcpvault::keygen(&mut rng);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut grant = Grant::new(
        ["db_query", "file_read", "admin_delete"],
        3600,
        "auth-server",
        "agent-a",
    );
    grant.resources = vec!["file:///docs/*".into()];
    grant.prompts = vec!["summarize".into()];
    let root = mcpvault::mint(&keys.private_key, &grant, now, &mut rng).unwrap();
    let narrow = mcpvault::attenuate(
        &root,
        &Restriction {
            tools: Some(vec!["db_query".into()]),
            ..Restriction::default()
        },
        now,
        &mut rng,
    )
    .unwrap()
    .token;
    let mut once = Grant::new(["db_query"], 3600, "auth-server", "agent-a");
    once.single_use = true;
    let single = mcpvault::mint(&keys.private_key, &once, now, &mut rng).unwrap();
    Tokens {
        keys,
        root,
        narrow,
        single,
    }
}

/// The mcpvault code and JSON-RPC code of a refusal the client got.
pub fn refusal<T: std::fmt::Debug>(r: Result<T, rmcp::ServiceError>) -> (i32, String) {
    match r {
        Err(rmcp::ServiceError::McpError(e)) => (
            e.code.0,
            e.data
                .as_ref()
                .and_then(|d| d.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        other => panic!("expected an MCP error, got {other:?}"),
    }
}
