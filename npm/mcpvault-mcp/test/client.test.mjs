// withMcpVaultClient: the MCP SDK's Client sends a holder-bound token's calls with a fresh proof of each, against
// withMcpVault over an in-memory transport and over Streamable HTTP on 127.0.0.1 (withMcpVault alone, and behind
// mcpvault-express); the same token without the key is refused proof_required, another key's proofs bad_proof.
import test from "node:test";
import assert from "node:assert";
import { createServer } from "node:http";
import express from "express5";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault, withMcpVaultClient, mcpVaultFetch, proofTarget, PROOF_META_KEY, TOKEN_META_KEY } from "mcpvault-mcp";
import { MemoryStore } from "mcpvault-store";
import { vault, keys, makeMcpServer } from "./fixtures/servers.mjs";

const holder = vault.generateKeypair();
const thief = vault.generateKeypair();
const ARGS = { sql: "select 1", max_rows: 5 };

/** A holder-bound token for db_query (max_rows <= 100), the prompt greeting and the resources under file:///docs/. */
function boundToken(extra = {}) {
  return vault.mint(keys.privateKey, {
    tools: ["db_query"], prompts: ["greeting"], resources: ["file:///docs/*"], ttl: 600, issuer: "auth-server",
    subject: "agent-a", holder: holder.publicKey, argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }],
    ...extra,
  });
}

/** The fixture's McpServer with a resource too, guarded by withMcpVault on `store` (a proof is spent in a store). */
function guardedServer({ seen = [], store = new MemoryStore(), audience } = {}) {
  const server = makeMcpServer({ wrap: false, seen });
  server.registerResource("doc", "file:///docs/a.md", { mimeType: "text/plain" }, async (uri, extra) => {
    seen.push({ name: "doc", text: JSON.stringify(extra?._meta ?? null) });
    return { contents: [{ uri: uri.href, text: "the doc" }] };
  });
  return withMcpVault(server, { publicKeyHex: keys.publicKey, store, checkTool: true, audience });
}

/** The mcpvault code of a refusal (an MCP error, or an HTTP one), or "allowed". */
async function codeOf(promise) {
  try {
    await promise;
  } catch (e) {
    if (e instanceof McpError) return e.data?.code;
    const at = e?.message?.indexOf("{") ?? -1;
    if (at >= 0) return JSON.parse(e.message.slice(at)).error?.data?.code;
    throw e;
  }
  return "allowed";
}

/** Every call a holder-bound token's client makes, each with its own proof; the limits of the token still hold. */
async function exercise(client) {
  for (let i = 0; i < 3; i++) {
    const r = await client.callTool({ name: "db_query", arguments: { ...ARGS, max_rows: i + 1 } });
    assert.strictEqual(r.content[0].text, `db_query ok ${JSON.stringify({ ...ARGS, max_rows: i + 1 })}`);
  }
  assert.deepStrictEqual((await client.listTools()).tools.map((t) => t.name), ["db_query", "mcpvault.check"]);
  assert.strictEqual((await client.getPrompt({ name: "greeting" })).messages[0].content.text, "hello");
  assert.strictEqual((await client.readResource({ uri: "file:///docs/a.md" })).contents[0].text, "the doc");
  const dry = await client.callTool({ name: "mcpvault.check", arguments: { tool: "db_query", arguments: ARGS } });
  // the dry run is authorized with the check's own proof; the call it asks about carries none
  assert.strictEqual(dry.structuredContent.code, "proof_required");
  assert.strictEqual(await codeOf(client.callTool({ name: "db_query", arguments: { ...ARGS, max_rows: 1000 } })), "argument_not_allowed");
  assert.strictEqual(await codeOf(client.callTool({ name: "admin_delete", arguments: { id: "1" } })), "tool_not_allowed");
  assert.strictEqual(await codeOf(client.readResource({ uri: "file:///secret" })), "resource_not_allowed");
}

async function inMemory(server, options, sent) {
  const [ct, st] = InMemoryTransport.createLinkedPair();
  await server.connect(st);
  if (sent) {
    const send = ct.send.bind(ct);
    ct.send = (m, o) => (sent.push(structuredClone(m)), send(m, o));
  }
  const client = new Client({ name: "agent-a", version: "1" });
  if (options) withMcpVaultClient(client, options);
  await client.connect(ct);
  return client;
}

test("in memory: the wrapped client calls a holder-bound token's tools, prompts and resources, a fresh proof each", async (t) => {
  const seen = [];
  const store = new MemoryStore();
  const token = boundToken();
  const sent = [];
  const client = await inMemory(guardedServer({ seen, store }), { token, holderKey: holder.privateKey }, sent);
  t.after(() => client.close());
  await exercise(client);
  // every message carried the token and a proof of its own, and each proof is one of that call: the core verifies it
  const calls = sent.filter((m) => m.method === "tools/call" && m.params.name === "db_query");
  assert.strictEqual(calls.length, 4);
  const proofs = new Set(sent.map((m) => m.params?._meta?.[PROOF_META_KEY]));
  assert.strictEqual(proofs.size, sent.length, "one proof per message");
  assert.ok(sent.every((m) => m.params._meta[TOKEN_META_KEY] === token));
  const first = calls[0].params;
  const facts = vault.verify(token, keys.publicKey, { tool: "db_query", arguments: first.arguments, proof: first._meta[PROOF_META_KEY] });
  assert.strictEqual(facts.holder, holder.publicKey);
  assert.throws(() => vault.verify(token, keys.publicKey, { tool: "db_query", arguments: { ...first.arguments, max_rows: 99 }, proof: first._meta[PROOF_META_KEY] }),
    (e) => e.code === "bad_proof");
  // the handlers never saw the token nor a proof
  assert.deepStrictEqual(seen.map((s) => s.name), ["db_query", "db_query", "db_query", "doc"]);
  for (const s of seen) assert.ok(!s.text.includes(token) && !s.text.includes("mvp1."), s.text);
  // a call the wrapper sent, sent again by another client (a copy from a log; another JSON-RPC id, so no retry): its
  // proof is spent
  const raw = new Client({ name: "thief", version: "1" });
  const [ct, st] = InMemoryTransport.createLinkedPair();
  await guardedServer({ store }).connect(st);
  await raw.connect(ct);
  t.after(() => raw.close());
  const last = calls[2];
  assert.notStrictEqual(last.id, 1);
  assert.strictEqual(await codeOf(raw.callTool({ name: "db_query", arguments: last.params.arguments, _meta: last.params._meta })), "replayed");
});

test("in memory: the same token without the key is refused proof_required; another key's proofs bad_proof", async (t) => {
  const token = boundToken();
  const server = guardedServer();
  const bare = await inMemory(server, { token });
  t.after(() => bare.close());
  assert.strictEqual(await codeOf(bare.callTool({ name: "db_query", arguments: ARGS })), "proof_required");
  assert.strictEqual(await codeOf(bare.listTools()), "proof_required");
  assert.strictEqual(await codeOf(bare.getPrompt({ name: "greeting" })), "proof_required");
  const stolen = await inMemory(guardedServer(), { token, holderKey: thief.privateKey });
  t.after(() => stolen.close());
  assert.strictEqual(await codeOf(stolen.callTool({ name: "db_query", arguments: ARGS })), "bad_proof");
  // the client unwrapped: no token at all
  const plain = await inMemory(guardedServer());
  t.after(() => plain.close());
  assert.strictEqual(await codeOf(plain.callTool({ name: "db_query", arguments: ARGS })), "missing_token");
  // a bearer token (no holder) needs no key: the wrapper only adds it
  const bearer = await inMemory(guardedServer(), { token: vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" }) });
  t.after(() => bearer.close());
  assert.strictEqual(await codeOf(bearer.callTool({ name: "db_query", arguments: ARGS })), "allowed");
});

test("in memory: a server with an audience: the proof binds it", async (t) => {
  const token = boundToken({ audience: "db-server" });
  const good = await inMemory(guardedServer({ audience: "db-server" }), { token, holderKey: holder.privateKey, audience: "db-server" });
  t.after(() => good.close());
  assert.strictEqual(await codeOf(good.callTool({ name: "db_query", arguments: ARGS })), "allowed");
  const unnamed = await inMemory(guardedServer({ audience: "db-server" }), { token, holderKey: holder.privateKey });
  t.after(() => unnamed.close());
  assert.strictEqual(await codeOf(unnamed.callTool({ name: "db_query", arguments: ARGS })), "bad_proof");
});

/** Streamable HTTP on 127.0.0.1: a fresh stateless guarded server per request; `front`: mcpvault-express before it. */
async function serve(t, { front = false, store = new MemoryStore() } = {}) {
  const handle = async (req, res, body) => {
    const server = guardedServer({ store });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };
  let listener;
  if (front) {
    const app = express();
    app.use(express.json());
    app.post("/mcp", createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, store, innerGuard: true })(), (req, res) => handle(req, res, req.body));
    listener = app.listen(0, "127.0.0.1");
  } else {
    listener = createServer((req, res) => void handle(req, res)).listen(0, "127.0.0.1");
  }
  await new Promise((r) => listener.once("listening", r));
  t.after(() => new Promise((r) => { listener.closeAllConnections(); listener.close(r); }));
  return new URL(`http://127.0.0.1:${listener.address().port}/mcp`);
}

async function httpClient(t, url, options, transportOptions = {}) {
  const client = new Client({ name: "agent-a", version: "1" });
  if (options) withMcpVaultClient(client, options);
  t.after(() => client.close());
  await client.connect(new StreamableHTTPClientTransport(url, transportOptions));
  return client;
}

test("Streamable HTTP, withMcpVault: the wrapped client's calls are allowed; without the key, proof_required", async (t) => {
  const url = await serve(t);
  const token = boundToken();
  await exercise(await httpClient(t, url, { token, holderKey: holder.privateKey }));
  const bare = await httpClient(t, url, { token });
  assert.strictEqual(await codeOf(bare.callTool({ name: "db_query", arguments: ARGS })), "proof_required");
});

test("Streamable HTTP, mcpvault-express in front of withMcpVault: the proof reaches the inner layer in _meta or the header", async (t) => {
  const url = await serve(t, { front: true });
  const token = boundToken();
  // the middleware hands the _meta proof on (forwardProofs); mcpVaultFetch also sends it as X-MCPVault-Proof, which
  // withMcpVault reads from the SDK's requestInfo
  await exercise(await httpClient(t, url, { token, holderKey: holder.privateKey }));
  await exercise(await httpClient(t, url, { token, holderKey: holder.privateKey }, { fetch: mcpVaultFetch() }));
  // the HTTP layer refuses a request without a proof before anything runs (the SDK's initialize, here)
  assert.strictEqual(await codeOf(httpClient(t, url, { token })), "proof_required");
  assert.strictEqual(await codeOf(httpClient(t, url, { token, holderKey: thief.privateKey })), "bad_proof");
});

test("proofTarget: what the guard authorizes each message as, answered by the core", () => {
  assert.deepStrictEqual(proofTarget("tools/call", { name: "db_query", arguments: ARGS }), { method: "tools/call", name: "db_query", arguments: ARGS });
  assert.deepStrictEqual(proofTarget("tools/call", { name: "db_query" }), { method: "tools/call", name: "db_query", arguments: {} });
  assert.deepStrictEqual(proofTarget("tools/call", { name: "mcpvault.check", arguments: { tool: "x" } }), { method: "mcpvault/check", arguments: {} });
  assert.deepStrictEqual(proofTarget("resources/read", { uri: "file:///a" }), { method: "resources/read", name: "file:///a", arguments: {} });
  assert.deepStrictEqual(proofTarget("resources/subscribe", { uri: "file:///a" }), { method: "resources/subscribe", name: "file:///a", arguments: {} });
  assert.deepStrictEqual(proofTarget("prompts/get", { name: "greeting", arguments: { a: "b" } }), { method: "prompts/get", name: "greeting", arguments: {} });
  assert.deepStrictEqual(proofTarget("tools/list", { cursor: "c" }), { method: "tools/list", arguments: {} });
  assert.deepStrictEqual(proofTarget("notifications/initialized"), { method: "notifications/initialized", arguments: {} });
  for (const [m, p] of [["tools/call", {}], ["resources/read", {}], ["", {}], ["tools/call", { name: "a", arguments: [1] }]]) {
    assert.throws(() => proofTarget(m, p), (e) => e.code === "invalid_request", `${m} ${JSON.stringify(p)}`);
  }
  // a proof of the message is a proof of its call
  const t = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s", holder: holder.publicKey });
  const message = { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "db_query", arguments: ARGS } };
  assert.strictEqual(vault.requestHash(t, { message }), vault.requestHash(t, { tool: "db_query", arguments: ARGS }));
  const proof = vault.signCall(holder.privateKey, t, { message });
  assert.strictEqual(vault.verify(t, keys.publicKey, { tool: "db_query", arguments: ARGS, proof }).holder, holder.publicKey);
  assert.throws(() => vault.signCall(holder.privateKey, t, { message, tool: "db_query" }), (e) => e.code === "invalid_request");
});

test("withMcpVaultClient checks its options", () => {
  const client = () => new Client({ name: "c", version: "1" });
  for (const [options, re] of [
    [undefined, /options must be an object/],
    [{}, /token must be/],
    [{ token: "" }, /token must be/],
    [{ token: "t", holderKey: 7 }, /holderKey/],
    [{ token: "t", audience: "" }, /audience/],
    [{ token: "t", vault: {} }, /vault/],
    [{ token: "t", tokn: "t" }, /unknown option "tokn"/],
  ]) assert.throws(() => withMcpVaultClient(client(), options), re);
  assert.throws(() => withMcpVaultClient({}, { token: "t" }), /expected a Client/);
  const c = withMcpVaultClient(client(), { token: "t" });
  assert.throws(() => withMcpVaultClient(c, { token: "t" }), /already applied/);
});
