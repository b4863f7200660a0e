//! A guarded rmcp server on stdio: MCPVAULT_PUBLIC_KEY=<hex> cargo run --example guarded_server
use mcpvault_rmcp::{GuardOptions, McpVault};
use rmcp::{model::*, service::RequestContext, ErrorData, RoleServer, ServerHandler, ServiceExt};

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
    vault
        .guard(Hello)
        .serve(rmcp::transport::stdio())
        .await?
        .waiting()
        .await?;
    Ok(())
}
