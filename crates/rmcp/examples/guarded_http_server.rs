//! A guarded rmcp server over Streamable HTTP: MCPVAULT_PUBLIC_KEY=<hex> cargo run --example guarded_http_server
use std::sync::Arc;

use mcpvault_rmcp::{GuardOptions, McpVault};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{model::*, service::RequestContext, ErrorData, RoleServer, ServerHandler};

struct Hello;

impl ServerHandler for Hello {
    async fn call_tool(
        &self,
        _: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("hello")]).into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vault = McpVault::new(GuardOptions::new(std::env::var("MCPVAULT_PUBLIC_KEY")?))?;
    let v = vault.clone();
    let service = StreamableHttpService::new(
        move || Ok(v.guard(Hello)), // every MCP request decided before Hello runs
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    // every HTTP request decided before rmcp: refusals are 401/403 with WWW-Authenticate
    let app = axum::Router::new().nest_service("/mcp", vault.guard_http(service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
