// Revocation, replay and audit through the integrations: the Express middleware over HTTP with the MCP SDK client
// (SQLite), withMcpVault over an in-memory transport (memory store), and the stdio proxy with a store in its config.
import test from "node:test";
import assert from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import express from "express5";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { auditVerify } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault } from "mcpvault-mcp";
import { openStore, MemoryStore } from "mcpvault-store";
import { vault, keys, tokens, makeMcpServer, httpClient } from "./fixtures/servers.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const tmp = () => mkdtempSync(join(tmpdir(), "mcpvault-mcp-"));

async function refusedCode(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof McpError) return e.data?.code;
    const body = JSON.parse(e.message.slice(e.message.indexOf("{")));
    return `${e.code} ${body.error.data.code}`;
  }
  return "allowed";
}

test("middleware + SQLite: revoking agent A's token refuses agent B's derived token on the next call; audit", async (t) => {
  const store = await openStore(`sqlite:${join(tmp(), "vault.db")}`);
  t.after(() => store.close());
  const app = express();
  app.use(express.json());
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, store, innerGuard: true });
  app.post("/mcp", auth(), async (req, res) => {
    const server = makeMcpServer({});
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => transport.close());
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const listener = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
  t.after(() => new Promise((r) => { listener.closeAllConnections(); listener.close(r); }));
  const url = new URL(`http://127.0.0.1:${listener.address().port}/mcp`);

  const { root, narrow } = tokens();
  const b = await httpClient(url, narrow);
  t.after(() => b.close());
  assert.strictEqual(await refusedCode(b.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "allowed");
  await store.revoke(vault.inspect(root).revocation_ids[0]);
  assert.strictEqual(await refusedCode(b.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "401 revoked");

  // a single-use token over HTTP: initialize and tools/list do not spend it; one tool call does
  const once = vault.attenuate(tokens().root, { tools: ["db_query"], singleUse: true });
  const c = await httpClient(url, once);
  t.after(() => c.close());
  assert.deepStrictEqual((await c.listTools()).tools.map((x) => x.name), ["db_query", "mcpvault.check"]);
  assert.strictEqual(await refusedCode(c.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "allowed");
  assert.strictEqual(await refusedCode(c.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "401 replayed");
  assert.deepStrictEqual((await c.listTools()).tools.map((x) => x.name), ["db_query", "mcpvault.check"]);
  const entries = await store.auditEntries();
  assert.ok(entries.length >= 5);
  assert.strictEqual(auditVerify(entries).entries, entries.length);
  assert.ok(entries.some((e) => e.code === "revoked"));
  assert.ok(entries.some((e) => e.code === "replayed"));
});

test("withMcpVault + memory store: revoked and replayed are MCP errors with the code", async (t) => {
  const store = new MemoryStore();
  const server = makeMcpServer({ wrap: false });
  withMcpVault(server, { publicKeyHex: keys.publicKey, store });
  const [ct, st] = InMemoryTransport.createLinkedPair();
  await server.connect(st);
  const client = new Client({ name: "b", version: "1" });
  await client.connect(ct);
  t.after(() => client.close());
  const { root } = tokens();
  const once = vault.attenuate(root, { singleUse: true });
  const args = { sql: "s", max_rows: 1 };
  assert.strictEqual(await refusedCode(client.callTool({ name: "db_query", arguments: args, _meta: { token: once } })), "allowed");
  assert.strictEqual(await refusedCode(client.callTool({ name: "db_query", arguments: args, _meta: { token: once } })), "replayed");
  await store.revoke(vault.inspect(root).revocation_ids[0]);
  assert.strictEqual(await refusedCode(client.callTool({ name: "db_query", arguments: args, _meta: { token: root } })), "revoked");
  assert.deepStrictEqual((await store.auditEntries()).map((e) => e.code), [null, "replayed", "revoked"]);
});

test("the stdio proxy with \"store\": \"sqlite:FILE\" refuses a revoked token", async (t) => {
  const dir = tmp();
  const db = join(dir, "vault.db");
  const { root, narrow } = tokens();
  const file = join(dir, "proxy.json");
  writeFileSync(file, JSON.stringify({
    publicKey: keys.publicKey, store: `sqlite:${db}`, log: false,
    upstream: { command: process.execPath, args: [join(here, "fixtures", "upstream.mjs")] },
  }));
  const client = new Client({ name: "b", version: "1" });
  await client.connect(new StdioClientTransport({
    command: process.execPath, args: [join(here, "..", "bin", "mcpvault-proxy.mjs"), "--config", file],
    env: { ...getDefaultEnvironment(), MCPVAULT_TOKEN: narrow },
  }));
  t.after(() => client.close());
  assert.strictEqual(await refusedCode(client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "allowed");
  const admin = await openStore(`sqlite:${db}`);
  await admin.revoke(vault.inspect(root).revocation_ids[0]);
  await admin.close();
  assert.strictEqual(await refusedCode(client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } })), "revoked");
});

test("withMcpVault + a holder-bound token: the MCP SDK client with the holder's proof calls; the token copied without the key, a thief's proof and a replayed proof are refused", async (t) => {
  const store = new MemoryStore();
  const seen = [];
  const server = makeMcpServer({ wrap: false, seen });
  withMcpVault(server, { publicKeyHex: keys.publicKey, store });
  const [ct, st] = InMemoryTransport.createLinkedPair();
  await server.connect(st);
  const client = new Client({ name: "b", version: "1" });
  await client.connect(ct);
  t.after(() => client.close());
  const holder = vault.generateKeypair();
  const thief = vault.generateKeypair();
  const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a", holder: holder.publicKey });
  const args = { sql: "s", max_rows: 1 };
  const call = (meta) => refusedCode(client.callTool({ name: "db_query", arguments: args, _meta: { token, ...meta } }));
  const proof = vault.signCall(holder.privateKey, token, { tool: "db_query", arguments: args });
  assert.strictEqual(await call({ "mcpvault/proof": proof }), "allowed");
  assert.ok(!seen.some((s) => s.text.includes(proof)), "the handler never sees the proof");
  assert.strictEqual(await call({}), "proof_required");
  assert.strictEqual(await call({ "mcpvault/proof": vault.signCall(thief.privateKey, token, { tool: "db_query", arguments: args }) }), "bad_proof");
  // a proof for other arguments does not carry over
  const other = vault.signCall(holder.privateKey, token, { tool: "db_query", arguments: { sql: "drop", max_rows: 1 } });
  assert.strictEqual(await call({ "mcpvault/proof": other }), "bad_proof");
  // the logged request sent again (the SDK gives it a new id): the proof is spent
  assert.strictEqual(await call({ "mcpvault/proof": proof }), "replayed");
  assert.strictEqual(await call({ "mcpvault/proof": vault.signCall(holder.privateKey, token, { tool: "db_query", arguments: args }) }), "allowed");
  assert.throws(() => vault.attenuate(token, { holder: thief.publicKey }), (e) => e.code === "invalid_request");
  assert.strictEqual(vault.verify(token, keys.publicKey, { tool: "db_query", arguments: args, proof: vault.signCall(holder.privateKey, token, { tool: "db_query", arguments: args }) }).holder, holder.publicKey);
});
