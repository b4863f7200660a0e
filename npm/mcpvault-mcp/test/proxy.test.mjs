// mcpvault-proxy in front of servers that know nothing of mcpvault: a real SDK client over stdio (the proxy
// spawned as a child, the upstream spawned by the proxy), over Streamable HTTP, and the registry's
// @modelcontextprotocol/server-everything.
import test from "node:test";
import assert from "node:assert";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import express from "express5";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport, getDefaultEnvironment } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { startProxy, checkConfig } from "mcpvault-mcp";
import { vault, keys, tokens, now, mcpError } from "./fixtures/servers.mjs";
import { makeUpstream } from "./fixtures/upstream.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, "..", "bin", "mcpvault-proxy.mjs");
const UPSTREAM = join(here, "fixtures", "upstream.mjs");
const EVERYTHING = join(here, "..", "..", "..", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");

function configFile(config) {
  const dir = mkdtempSync(join(tmpdir(), "mcpvault-proxy-"));
  const file = join(dir, "proxy.json");
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/** An SDK client that spawns `mcpvault-proxy --config FILE` and talks to it over stdio. */
async function stdioClient(config, env = {}) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, "--config", configFile(config)],
    env: { ...getDefaultEnvironment(), ...env },
    stderr: "pipe",
  });
  const log = [];
  transport.stderr?.on("data", (d) => log.push(String(d)));
  const client = new Client({ name: "agent-b", version: "1.0.0" });
  await client.connect(transport);
  return { client, log };
}


const upstreamCommand = { command: process.execPath, args: [UPSTREAM] };

test("stdio: tools/call authorized and stripped, tools/list filtered, every other method decided too", async (t) => {
  const { narrow } = tokens();
  const { client, log } = await stdioClient({ publicKey: keys.publicKey, upstream: upstreamCommand, checkTool: true },
    { MCPVAULT_TOKEN: narrow });
  t.after(() => client.close());
  const meta = { token: narrow };
  assert.deepStrictEqual((await client.listTools({ _meta: meta })).tools.map((x) => x.name), ["db_query", "mcpvault.check"]);
  const ok = await client.callTool({ name: "db_query", arguments: { sql: "select 1", max_rows: 7, copy: narrow }, _meta: { ...meta, progressToken: 5 } });
  const seen = JSON.parse(ok.content[0].text);
  assert.deepStrictEqual(seen.args, { sql: "select 1", max_rows: 7 });
  assert.deepStrictEqual(seen.meta, { progressToken: 5 });
  assert.ok(!ok.content[0].text.includes(narrow), "the token reached the upstream");
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "db_query", arguments: { sql: "x", max_rows: 1000 }, _meta: meta })),
    { rpc: -32013, code: "argument_not_allowed" });
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "admin_delete", arguments: { id: "1" }, _meta: meta })),
    { rpc: -32013, code: "tool_not_allowed" });
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "db_query", arguments: { sql: "x" }, _meta: { token: "garbage" } })),
    { rpc: -32011, code: "malformed_token" });
  assert.deepStrictEqual(await mcpError(client.listTools({ _meta: { token: "garbage" } })), { rpc: -32011, code: "malformed_token" });
  const expired = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" }, { now: now() - 61 });
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "db_query", arguments: { sql: "x" }, _meta: { token: expired } })),
    { rpc: -32011, code: "expired" });
  const dry = await client.callTool({ name: "mcpvault.check", arguments: { tool: "admin_delete" }, _meta: meta });
  assert.deepStrictEqual([dry.structuredContent.allowed, dry.structuredContent.code, dry.structuredContent.failedBlock],
    [false, "tool_not_allowed", 1]);
  // every other method needs a valid token too (here the one in MCPVAULT_TOKEN)
  assert.deepStrictEqual((await client.listPrompts()).prompts.map((p) => p.name), ["greeting"]);
  assert.deepStrictEqual(await client.ping(), {});
  assert.deepStrictEqual(await mcpError(client.listPrompts({ _meta: { token: "garbage" } })), { rpc: -32011, code: "malformed_token" });
  // one decision line per tools/call and tools/list on stderr, without the token
  const lines = log.join("").split("\n").filter((l) => l.startsWith("mcpvault-proxy: {"));
  assert.ok(lines.length >= 7, lines.join("\n"));
  assert.ok(lines.every((l) => !l.includes(narrow)));
  assert.ok(lines.some((l) => l.includes('"code":"tool_not_allowed"')));
});

test("stdio: every message needs a valid token; a garbage token gets nothing through, nor a tools/call notification", async (t) => {
  const { narrow } = tokens();
  const upstreamLog = join(mkdtempSync(join(tmpdir(), "mcpvault-up-")), "seen.jsonl");
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, "--config", configFile({ publicKey: keys.publicKey, upstream: { ...upstreamCommand, env: { UPSTREAM_LOG: upstreamLog } }, log: false })],
    env: getDefaultEnvironment(),
    stderr: "pipe",
  });
  const answers = new Map();
  const waiters = new Map();
  transport.onmessage = (m) => {
    answers.set(m.id, m);
    waiters.get(m.id)?.(m);
  };
  await transport.start();
  t.after(() => transport.close());
  const ask = (m) => new Promise((resolve) => {
    waiters.set(m.id, resolve);
    transport.send(m);
  });
  const meta = (token) => (token ? { _meta: { token } } : {});
  const init = (id, token) => ({ jsonrpc: "2.0", id, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {},
    clientInfo: { name: "raw", version: "1" }, ...meta(token) } });
  assert.strictEqual((await ask(init(1))).error.data.code, "missing_token");
  assert.strictEqual((await ask(init(2, "garbage"))).error.data.code, "malformed_token");
  for (const [id, method, params] of [
    [3, "resources/read", { uri: "file:///etc/passwd" }], [4, "prompts/get", { name: "greeting" }],
    [5, "completion/complete", { ref: { type: "ref/prompt", name: "greeting" }, argument: { name: "a", value: "b" } }],
    [6, "resources/list", {}], [7, "logging/setLevel", { level: "debug" }], [8, "ping", {}],
  ]) {
    const a = await ask({ jsonrpc: "2.0", id, method, params: { ...params, ...meta("garbage") } });
    assert.strictEqual(a.error?.data?.code, "malformed_token", method);
  }
  // a tools/call sent as a notification, with a valid token: refused, never forwarded
  await transport.send({ jsonrpc: "2.0", method: "tools/call", params: { name: "db_query", arguments: { sql: "x" }, ...meta(narrow) } });
  assert.ok((await ask(init(9, narrow))).result, "a valid token opens the session");
  const seen = readFileSync(upstreamLog, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepStrictEqual(seen.map((m) => m.method), ["initialize"], "only the valid initialize reached the upstream");
  assert.ok(!JSON.stringify(seen).includes(narrow), "without its token");
});

test("stdio: a repeated request id never gets an unfiltered list; answers are matched by the proxy's own ids", async (t) => {
  const { narrow } = tokens();
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [BIN, "--config", configFile({ publicKey: keys.publicKey, upstream: upstreamCommand, log: false })],
    env: { ...getDefaultEnvironment(), MCPVAULT_TOKEN: narrow },
    stderr: "pipe",
  });
  const answers = [];
  let waiter;
  transport.onmessage = (m) => {
    answers.push(m);
    waiter?.();
  };
  await transport.start();
  t.after(() => transport.close());
  const until = async (n) => {
    const deadline = Date.now() + 10_000;
    while (answers.length < n && Date.now() < deadline) await new Promise((r) => { waiter = r; setTimeout(r, 200); });
    assert.ok(answers.length >= n, `${answers.length} answers of ${n}: ${JSON.stringify(answers)}`);
  };
  await transport.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
  await until(1);
  await transport.send({ jsonrpc: "2.0", method: "notifications/initialized" });
  // the same id twice in flight, and a tools/call and a tools/list sharing an id
  const list = (id) => ({ jsonrpc: "2.0", id, method: "tools/list" });
  await Promise.all([
    transport.send(list(7)), transport.send(list(7)), transport.send(list(7)),
    transport.send({ jsonrpc: "2.0", id: 8, method: "tools/call", params: { name: "db_query", arguments: { sql: "s", max_rows: 1 } } }),
    transport.send(list(8)),
  ]);
  await until(6);
  const lists = answers.filter((m) => Array.isArray(m.result?.tools));
  assert.strictEqual(lists.length, 4, JSON.stringify(answers));
  for (const m of lists) assert.deepStrictEqual(m.result.tools.map((x) => x.name), ["db_query"], `answer ${m.id}: an unfiltered list`);
  assert.deepStrictEqual(lists.map((m) => m.id).sort(), [7, 7, 7, 8]);
  const called = answers.find((m) => m.id === 8 && m.result?.content);
  assert.ok(called, "the tools/call got its own answer");
  assert.ok(answers.every((m) => m.id === 1 || m.id === 7 || m.id === 8), "the client sees its own ids only");
});

test("stdio: the token can come from MCPVAULT_TOKEN; audience is enforced", async (t) => {
  const token = tokens({ audience: "db-server" }).narrow;
  const { client } = await stdioClient({ publicKey: keys.publicKey, audience: "db-server", upstream: upstreamCommand, log: false },
    { MCPVAULT_TOKEN: token });
  t.after(() => client.close());
  assert.deepStrictEqual((await client.listTools()).tools.map((x) => x.name), ["db_query"]);
  const ok = await client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } });
  assert.ok(!ok.content[0].text.includes(token));
  const elsewhere = tokens({ audience: "mail-server" }).narrow;
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 }, _meta: { token: elsewhere } })),
    { rpc: -32011, code: "wrong_audience" });
});

test("stdio: @modelcontextprotocol/server-everything behind the proxy shows and runs only the granted tools", async (t) => {
  const root = vault.mint(keys.privateKey, { tools: ["echo", "get-sum"], ttl: 600, issuer: "auth-server", subject: "agent-a" });
  const { client } = await stdioClient({ publicKey: keys.publicKey, upstream: { command: process.execPath, args: [EVERYTHING, "stdio"] }, log: false },
    { MCPVAULT_TOKEN: root });
  t.after(() => client.close());
  assert.deepStrictEqual((await client.listTools()).tools.map((x) => x.name).sort(), ["echo", "get-sum"]);
  const echo = await client.callTool({ name: "echo", arguments: { message: "hi" } });
  assert.match(echo.content[0].text, /hi/);
  const sum = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
  assert.match(sum.content[0].text, /5/);
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "get-env", arguments: {} })), { rpc: -32013, code: "tool_not_allowed" });
  // attenuated for a sub-agent: echo only
  const sub = vault.attenuate(root, { tools: ["echo"] });
  assert.deepStrictEqual((await client.listTools({ _meta: { token: sub } })).tools.map((x) => x.name), ["echo"]);
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "get-sum", arguments: { a: 1, b: 1 }, _meta: { token: sub } })),
    { rpc: -32013, code: "tool_not_allowed" });
  // pinned: the proxy asks the upstream for its current definitions before each call
  const { toolHashes } = await import("mcpvault");
  const hashes = toolHashes(await client.listTools());
  const pinned = vault.attenuate(root, { pin: { echo: hashes.echo } });
  assert.match((await client.callTool({ name: "echo", arguments: { message: "pinned" }, _meta: { token: pinned } })).content[0].text, /pinned/);
  const elsewhere = vault.attenuate(root, { pin: { echo: "0".repeat(64) } });
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "echo", arguments: { message: "x" }, _meta: { token: elsewhere } })),
    { rpc: -32013, code: "tool_definition_changed" });
  assert.deepStrictEqual((await client.listTools({ _meta: { token: elsewhere } })).tools.map((x) => x.name), ["get-sum"]);
});

test("HTTP downstream, HTTP upstream: bearer tokens, HTTP refusals, no token at the upstream", async (t) => {
  // the unmodified upstream over Streamable HTTP (stateless)
  const app = express();
  app.use(express.json());
  let lists = 0; // the tools/list requests the upstream received (the proxy's own, for pinned tools, included)
  app.post("/mcp", async (req, res) => {
    if (req.body?.method === "tools/list") lists += 1;
    const server = makeUpstream();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => transport.close());
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  app.get("/mcp", (req, res) => res.status(405).set("Allow", "POST").end());
  const upstream = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
  t.after(() => new Promise((r) => { upstream.closeAllConnections(); upstream.close(r); }));
  const config = checkConfig({
    publicKey: keys.publicKey,
    upstream: { url: `http://127.0.0.1:${upstream.address().port}/mcp` },
    downstream: { http: { host: "127.0.0.1", port: 0 } },
    log: false,
  });
  const proxy = await startProxy(config);
  t.after(() => proxy.close());
  const { narrow } = tokens();
  const connect = async (token) => {
    const client = new Client({ name: "agent-b", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: token ? { Authorization: `Bearer ${token}` } : {} } }));
    return client;
  };
  const client = await connect(narrow);
  t.after(() => client.close());
  assert.deepStrictEqual((await client.listTools()).tools.map((x) => x.name), ["db_query"]);
  const ok = await client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 2 } });
  const seen = JSON.parse(ok.content[0].text);
  assert.deepStrictEqual(seen.args, { sql: "s", max_rows: 2 });
  assert.ok(!ok.content[0].text.includes(narrow), "the token reached the upstream");
  for (const [call, status, code] of [
    [{ name: "admin_delete", arguments: { id: "1" } }, 403, "tool_not_allowed"],
    [{ name: "db_query", arguments: { sql: "s", max_rows: 101 } }, 403, "argument_not_allowed"],
  ]) {
    await assert.rejects(client.callTool(call), (e) => e instanceof StreamableHTTPError && e.code === status && e.message.includes(`"code":"${code}"`));
  }
  await assert.rejects(connect(undefined), (e) => e instanceof StreamableHTTPError && e.code === 401 && e.message.includes("missing_token"));
  // the proxy asks the upstream for its tool definitions only for a pinned call of a valid token: not for calls
  // without a token, with a garbage one, or with a token that pins nothing (a flood of them costs no upstream request)
  const before = lists;
  for (const token of [undefined, "EvQBgarbage", narrow]) {
    await fetch(proxy.url, { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: 80, method: "tools/call", params: { name: "db_query", arguments: { sql: "s", max_rows: 1 } } }),
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "mcp-session-id": client.transport.sessionId, "mcp-protocol-version": "2025-06-18",
        "content-type": "application/json", accept: "application/json, text/event-stream" } });
  }
  assert.strictEqual(lists, before, "the proxy asked the upstream for tool definitions nobody needed");
  const pinnedToken = vault.attenuate(narrow, { pin: { db_query: "0".repeat(64) } });
  const pinnedCall = await fetch(proxy.url, { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: 81, method: "tools/call", params: { name: "db_query", arguments: { sql: "s", max_rows: 1 } } }),
    headers: { authorization: `Bearer ${pinnedToken}`, "mcp-session-id": client.transport.sessionId, "mcp-protocol-version": "2025-06-18",
      "content-type": "application/json", accept: "application/json, text/event-stream" } });
  assert.ok((await pinnedCall.text()).includes("tool_definition_changed"));
  assert.strictEqual(lists, before + 1, "a pinned call: the proxy asks the upstream once");
  // the session is bound to the subject that opened it: another agent's valid token cannot ride on it
  const other = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-z" });
  const post = (token, body) => fetch(proxy.url, { method: "POST", body: JSON.stringify(body), headers: {
    authorization: `Bearer ${token}`, "mcp-session-id": client.transport.sessionId, "mcp-protocol-version": "2025-06-18",
    "content-type": "application/json", accept: "application/json, text/event-stream" } });
  const hijack = await (await post(other, { jsonrpc: "2.0", id: 90, method: "tools/list" })).text();
  assert.ok(hijack.includes('"code":"session_mismatch"'), hijack);
  const own = await (await post(narrow, { jsonrpc: "2.0", id: 91, method: "tools/list" })).text();
  assert.ok(own.includes('"name":"db_query"'), own);
  // headers that disagree with the body are refused at the HTTP layer
  const lying = await fetch(proxy.url, { method: "POST", body: JSON.stringify({ jsonrpc: "2.0", id: 92, method: "tools/call", params: { name: "admin_delete", arguments: { id: "1" } } }),
    headers: { authorization: `Bearer ${narrow}`, "mcp-session-id": client.transport.sessionId, "mcp-method": "tools/call", "mcp-name": "db_query",
      "content-type": "application/json", accept: "application/json, text/event-stream" } });
  assert.deepStrictEqual([lying.status, (await lying.json()).error.data.code], [400, "invalid_request"]);
});

test("the command line and the config are checked before anything starts", () => {
  const run = (...args) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  assert.strictEqual(run().status, 2);
  assert.strictEqual(run("--config").status, 2);
  assert.strictEqual(run("--help").status, 0);
  const bad = [
    [{}, /publicKey is required/],
    [{ publicKey: keys.publicKey }, /upstream must be/],
    [{ publicKey: "abcd", upstream: upstreamCommand }, /publicKeyHex: invalid key/],
    [{ publicKey: keys.publicKey, upstream: { command: "x", url: "http://y" } }, /exactly one of command or url/],
    [{ publicKey: keys.publicKey, upstream: upstreamCommand, downstream: "tcp" }, /downstream must be/],
    [{ publicKey: keys.publicKey, upstream: upstreamCommand, extra: 1 }, /unknown key "extra"/],
  ];
  for (const [config, message] of bad) {
    const r = run("--config", configFile(config));
    assert.strictEqual(r.status, 2, JSON.stringify(config));
    assert.match(r.stderr, message);
  }
  const missing = run("--config", "/nonexistent/proxy.json");
  assert.strictEqual(missing.status, 2);
  assert.match(missing.stderr, /cannot read/);
});

test("the relay keeps nothing of a request the client cancelled or the upstream could not be sent", async () => {
  const { Relay } = await import("../proxy.mjs");
  const transport = () => ({ sent: [], async start() {}, async close() {}, async send(m) { this.sent.push(m); } });
  const down = transport();
  const up = transport();
  // the policy allows every message as it came (the relay's bookkeeping is what is tested)
  const policy = { decide: async (m) => ({ allowed: true, answers: [], forward: m, facts: { subject: "s" } }) };
  const relay = new Relay(policy, down, up, undefined);
  await relay.start();
  await down.onmessage({ jsonrpc: "2.0", id: 5, method: "tools/call", params: { name: "slow", arguments: {} } });
  assert.strictEqual(relay.waiting, 2);
  const upstreamId = up.sent[0].id;
  await down.onmessage({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 5 } });
  assert.deepStrictEqual(up.sent[1].params, { requestId: upstreamId }, "the upstream is told by its own id");
  assert.strictEqual(relay.waiting, 0, "a cancelled request is not kept");
  // a late answer to it goes nowhere
  await up.onmessage({ jsonrpc: "2.0", id: upstreamId, result: { content: [] } });
  assert.strictEqual(down.sent.length, 0);
  // an upstream that cannot be sent to: the client gets a typed error, nothing is kept
  up.send = async () => { throw new Error("upstream gone"); };
  await down.onmessage({ jsonrpc: "2.0", id: 6, method: "tools/call", params: { name: "x", arguments: {} } });
  assert.strictEqual(relay.waiting, 0);
  assert.deepStrictEqual([down.sent[0].id, down.sent[0].error.data.code], [6, "internal_error"]);
});

test("the relay: a cancel of no request of the client's is dropped; waiting requests are capped; an unfilterable list is answered", async () => {
  const { Relay, MAX_WAITING } = await import("../proxy.mjs");
  const transport = () => ({ sent: [], async start() {}, async close() {}, async send(m) { this.sent.push(m); } });
  const down = transport();
  const up = transport();
  let decided = 0;
  const policy = {
    decide: async (m) => { decided += 1; return { allowed: true, answers: [], forward: m, facts: { subject: "s" } }; },
    filterResult: () => { throw new Error("nested too deeply"); },
  };
  const relay = new Relay(policy, down, up, undefined);
  await relay.start();
  await down.onmessage({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "slow", arguments: {} } });
  const upstreamId = up.sent[0].id;
  // the upstream's id of the client's own request (they count up): cancelling by it would leave the request waiting
  for (const requestId of [upstreamId, "mcpvault-99", 3, null]) {
    await down.onmessage({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId } });
  }
  assert.strictEqual(up.sent.length, 1, "a cancel of no request of the client's reached the upstream");
  assert.strictEqual(relay.waiting, 2);
  await up.onmessage({ jsonrpc: "2.0", id: upstreamId, result: { content: [] } });
  assert.strictEqual(relay.waiting, 0);
  // past MAX_WAITING requests waiting for the upstream, a request is refused, typed
  for (let i = 0; i < MAX_WAITING; i++) await down.onmessage({ jsonrpc: "2.0", id: 100 + i, method: "ping" });
  assert.strictEqual(up.sent.length, 1 + MAX_WAITING);
  const before = decided;
  await down.onmessage({ jsonrpc: "2.0", id: "one-more", method: "ping" });
  assert.strictEqual(up.sent.length, 1 + MAX_WAITING);
  assert.strictEqual(decided, before, "refused after it was decided (and spent)");
  const refused = down.sent.at(-1);
  assert.deepStrictEqual([refused.id, refused.error.data.code, refused.error.code], ["one-more", "rate_limited", -32029]);
  // a list answer the policy cannot filter: internal_error to the client, never silence
  for (const m of up.sent.slice(1)) await up.onmessage({ jsonrpc: "2.0", id: m.id, result: {} });
  await down.onmessage({ jsonrpc: "2.0", id: "list", method: "tools/list" });
  await up.onmessage({ jsonrpc: "2.0", id: up.sent.at(-1).id, result: { tools: [] } });
  const listed = down.sent.at(-1);
  assert.deepStrictEqual([listed.id, listed.error?.data?.code], ["list", "internal_error"]);
  assert.strictEqual(relay.waiting, 0);
});
