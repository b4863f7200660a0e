// The Node side of tests/cross: the same server as python_host.py and crates/rmcp/tests/cross.rs (tools db_query,
// file_read, admin_delete; prompts greeting, secret), an McpServer of @modelcontextprotocol/sdk guarded by
// withMcpVault (mcpvault-mcp), asked each case by the SDK's own Client (in memory, the token in _meta), and the same
// server over Streamable HTTP behind mcpvault-express (deferSpend: withMcpVault behind it spends), asked each HTTP
// case with fetch. `answers(spec)` gives what each case got, in the shape the driver compares.
import express from "express";
import { z } from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault } from "mcpvault-mcp";

function makeServer(spec) {
  const server = new McpServer({ name: "cross", version: "1.0.0" });
  const ok = (name) => async () => ({ content: [{ type: "text", text: `${name} ok` }] });
  server.registerTool("db_query", { inputSchema: { sql: z.string().optional(), max_rows: z.number().optional() } }, ok("db_query"));
  server.registerTool("file_read", { inputSchema: { path: z.string().optional() } }, ok("file_read"));
  server.registerTool("admin_delete", { inputSchema: { id: z.string().optional() } }, ok("admin_delete"));
  const says = (text) => () => ({ messages: [{ role: "user", content: { type: "text", text } }] });
  server.registerPrompt("greeting", { description: "a prompt" }, says("hello"));
  server.registerPrompt("secret", { description: "another" }, says("secret"));
  return withMcpVault(server, { publicKeyHex: spec.public_key, audience: spec.audience });
}

/** One MCP case through the SDK client: `{ allowed, result }` or `{ allowed: false, rpc, message, data }`. */
async function ask(client, c) {
  const meta = c.token === null ? {} : { _meta: { token: c.token } };
  const p = c.params ?? {};
  try {
    switch (c.method) {
      case "tools/call": {
        const r = await client.callTool({ name: p.name, arguments: p.arguments, ...meta });
        return { allowed: true, result: { text: r.content[0].text, isError: Boolean(r.isError) } };
      }
      case "tools/list":
        return { allowed: true, result: { names: (await client.listTools(meta)).tools.map((t) => t.name) } };
      case "prompts/get": {
        const r = await client.getPrompt({ name: p.name, ...meta });
        return { allowed: true, result: { text: r.messages[0].content.text } };
      }
      case "prompts/list":
        return { allowed: true, result: { names: (await client.listPrompts(meta)).prompts.map((x) => x.name) } };
      default:
        throw new Error(`no such case method ${c.method}`);
    }
  } catch (e) {
    if (!(e instanceof McpError)) throw e;
    // the SDK prefixes the server's message with "MCP error CODE: "
    return { allowed: false, rpc: e.code, message: e.message.replace(/^MCP error -?\d+: /, ""), data: e.data ?? null };
  }
}

async function mcpAnswers(spec) {
  const [c, s] = InMemoryTransport.createLinkedPair();
  await makeServer(spec).connect(s);
  const client = new Client({ name: "cross", version: "1.0.0" });
  await client.connect(c);
  const out = {};
  try {
    for (const k of spec.mcp) out[k.name] = await ask(client, k);
  } finally {
    await client.close();
  }
  return out;
}

async function httpAnswers(spec) {
  const app = express();
  const auth = createMcpVaultMiddleware({ publicKeyHex: spec.public_key, audience: spec.audience, deferSpend: true });
  app.post("/mcp", auth(), async (req, res) => {
    // a fresh stateless server per request (the SDK's pattern for stateless Streamable HTTP)
    const server = makeServer(spec);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const listener = await new Promise((resolve) => {
    const l = app.listen(0, "127.0.0.1", () => resolve(l));
  });
  const url = `http://127.0.0.1:${listener.address().port}/mcp`;
  const out = {};
  try {
    for (const k of spec.http) {
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
      if (k.token !== null) headers.authorization = `Bearer ${k.token}`;
      const r = await fetch(url, { method: "POST", headers, body: k.body });
      out[k.name] = await httpAnswer(r);
    }
  } finally {
    listener.closeAllConnections?.();
    await new Promise((r) => listener.close(() => r()));
  }
  return out;
}

/** What an HTTP client got: the status and challenge, and for a refusal the body (JSON). */
export async function httpAnswer(r) {
  const text = await r.text();
  const a = { status: r.status, challenge: r.headers.get("www-authenticate") };
  if (r.status >= 400) {
    try {
      a.body = JSON.parse(text);
    } catch {
      a.body = text;
    }
  }
  return a;
}

export async function answers(spec) {
  return { mcp: await mcpAnswers(spec), http: await httpAnswers(spec) };
}
