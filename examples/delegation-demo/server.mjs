// The MCP server of the demo: an ordinary McpServer (@modelcontextprotocol/sdk) with three tools, served over
// Streamable HTTP by Express, with mcpvault in two places: the middleware checks every HTTP request's token and
// call (401/403 before the MCP layer), and withMcpVault guards the tool handlers, strips the token and filters
// tools/list. `MCPVAULT_PUBLIC_KEY=... node server.mjs` runs it on its own (PORT, default 3000).
import { pathToFileURL } from "node:url";
import express from "express";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault } from "mcpvault-mcp";

function mcpServer(publicKeyHex) {
  const server = new McpServer({ name: "inventory-db", version: "1.0.0" });
  server.registerTool("db_query", {
    description: "Run a read-only SQL query",
    inputSchema: { sql: z.string(), max_rows: z.number().int().positive() },
  }, async ({ sql, max_rows }, extra) => {
    // The handler runs only for authorized calls and never sees the token.
    const who = extra.authInfo?.extra?.mcpvault?.subject;
    return { content: [{ type: "text", text: `${Math.min(max_rows, 3)} rows for ${JSON.stringify(sql)} (caller: ${who})` }] };
  });
  server.registerTool("file_read", { description: "Read a file", inputSchema: { path: z.string() } },
    async ({ path }) => ({ content: [{ type: "text", text: `contents of ${path}` }] }));
  server.registerTool("admin_delete", { description: "Delete a record", inputSchema: { id: z.string() } },
    async ({ id }) => ({ content: [{ type: "text", text: `deleted ${id}` }] }));
  return withMcpVault(server, { publicKeyHex, checkTool: true });
}

/**
 * Starts the server on 127.0.0.1; resolves to `{ url, close }`. `store` (an mcpvault-store) gives the middleware
 * revocation, replay protection (single-use tokens, proofs, approvals) and the audit log; `rules` the server's policy.
 */
export async function startServer({ publicKeyHex, port = 0, onDecision, store, rules }) {
  const app = express();
  // no body parser before the middleware: it reads the body itself (a body it cannot read is a refusal it decides and
  // records, and no parser's error page prints the raw body, token and all) and sets req.body
  const stores = store ? { store } : {};
  // `rules`: the server's policy (hard, soft and approval rules), applied where the store spends: the middleware
  const auth = createMcpVaultMiddleware({ publicKeyHex, innerGuard: true, onDecision, ...stores, ...(rules ? { rules } : {}) });
  app.post("/mcp", auth(), async (req, res) => {
    // Stateless Streamable HTTP: a server and transport per request.
    const server = mcpServer(publicKeyHex);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  app.get("/mcp", (req, res) => res.status(405).set("Allow", "POST").end());
  const listener = await new Promise((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
    s.on("error", reject);
  });
  return {
    url: new URL(`http://127.0.0.1:${listener.address().port}/mcp`),
    close: () => new Promise((r) => { listener.closeAllConnections?.(); listener.close(() => r()); }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const publicKeyHex = process.env.MCPVAULT_PUBLIC_KEY;
  const { openStore } = await import("mcpvault-store");
  const { url } = await startServer({
    publicKeyHex,
    store: await openStore(process.env.MCPVAULT_STORE ?? "memory"),
    port: Number(process.env.PORT ?? 3000),
    onDecision: (d) => console.log(`${d.allowed ? "allow" : "deny "} ${d.method} ${d.tool ?? ""} ${d.code ?? ""}`),
  });
  console.log(`MCP server on ${url}`);
}
