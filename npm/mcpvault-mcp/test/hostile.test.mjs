// An outside tester's attack on withMcpVault and mcpvault-proxy, over real HTTP on 127.0.0.1: mangled tokens on every
// method, two tokens in one message, notifications, a single-use token raced against two servers (middleware +
// withMcpVault) sharing one SQLite file, a holder-bound token stolen from a log, and the HTTP proxy's sessions.
// Refusals must be typed (data.code), never an execution, never the token echoed.
import test from "node:test";
import assert from "node:assert";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { request as httpRequest } from "node:http";
import express from "express5";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CompleteRequestSchema, SetLevelRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { MCPVault } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault, startProxy, checkConfig } from "mcpvault-mcp";
import { openStore } from "mcpvault-store";

const here = dirname(fileURLToPath(import.meta.url));
const vault = new MCPVault();
const keys = vault.generateKeypair();
const J = JSON.stringify;
const mint = (extra = {}) => vault.mint(keys.privateKey, {
  tools: ["db_query", "file_read"], prompts: ["greeting"], ttl: 600, issuer: "auth-server", subject: "agent-a",
  argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }], ...extra,
});
const token = mint();
const other = vault.mint(keys.privateKey, { tools: ["db_query", "file_read", "admin_delete"], ttl: 600, issuer: "auth-server", subject: "agent-z" });
const call = (name, args = {}, id = 1, meta) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, ...(meta && { _meta: meta }) } });
const HEADERS = { "Content-Type": "application/json", Accept: "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18" };

/** An McpServer whose tool handlers count their executions (`state.ran`) and record what they saw. */
function mcpServer(state, options) {
  const server = new McpServer({ name: "hostile", version: "1.0.0" });
  const tool = (name) => async (args, extra) => {
    state.ran++;
    state.seen.push(J({ args, meta: extra._meta ?? null, headers: extra.requestInfo?.headers ?? null, auth: extra.authInfo ?? null }));
    if (state.delay) await new Promise((r) => setTimeout(r, state.delay));
    return { content: [{ type: "text", text: `${name} #${state.ran}` }] };
  };
  server.registerTool("db_query", { inputSchema: { sql: z.string().optional(), max_rows: z.number().optional() } }, tool("db_query"));
  server.registerTool("file_read", { inputSchema: { path: z.string().optional() } }, tool("file_read"));
  server.registerTool("admin_delete", { inputSchema: { id: z.string().optional() } }, tool("admin_delete"));
  server.registerPrompt("greeting", { description: "a prompt" }, () => ({ messages: [{ role: "user", content: { type: "text", text: "hi" } }] }));
  server.registerResource("doc", "file:///docs/a", {}, async () => ({ contents: [{ uri: "file:///docs/a", text: "a" }] }));
  // completion and logging handlers of the low-level server (guarded too); they count as executions
  server.server.registerCapabilities({ logging: {}, completions: {} });
  server.server.setRequestHandler(CompleteRequestSchema, async () => { state.ran++; return { completion: { values: [] } }; });
  server.server.setRequestHandler(SetLevelRequestSchema, async () => { state.ran++; return {}; });
  withMcpVault(server, { publicKeyHex: keys.publicKey, ...options });
  return server;
}

/**
 * A stateless Streamable HTTP server on 127.0.0.1:0: a fresh McpServer (with withMcpVault) per request, behind the
 * Express middleware when `front` is given (its options).
 */
async function serve({ front, inner = {}, state = { ran: 0, seen: [] } } = {}) {
  const app = express();
  app.use(express.json({ limit: "10mb" }));
  const handlers = [];
  if (front) handlers.push(createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, innerGuard: true, ...front })());
  app.post("/mcp", ...handlers, async (req, res) => {
    const server = mcpServer(state, inner);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => { transport.close(); server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });
  const listener = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
  return {
    state,
    url: `http://127.0.0.1:${listener.address().port}/mcp`,
    close: () => new Promise((r) => { listener.closeAllConnections?.(); listener.close(() => r()); }),
  };
}

async function post(url, body, headers = {}, method = "POST") {
  const res = await fetch(url, { method, headers: { ...HEADERS, ...headers }, body: body === undefined ? undefined : typeof body === "string" ? body : J(body) });
  const text = await res.text();
  let json;
  try {
    // a JSON answer, or the first JSON-RPC message of an SSE stream
    const sse = text.split("\n").find((l) => l.startsWith("data: "));
    json = JSON.parse(sse !== undefined && !text.trimStart().startsWith("{") && !text.trimStart().startsWith("[") ? sse.slice(6) : text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

/** The mcpvault code of a JSON-RPC error answer (whatever the HTTP status), or "allowed" for a result. */
function codeOf(r, what) {
  assert.ok(r.json !== undefined || r.status === 202, `${what}: JSON answer (${r.status} ${r.text.slice(0, 200)})`);
  const m = Array.isArray(r.json) ? r.json[0] : r.json;
  if (m?.result !== undefined) return "allowed";
  return m?.error?.data?.code ?? `untyped ${m?.error?.code} ${m?.error?.message}`;
}

function noEcho(r, secrets, what) {
  for (const s of secrets) {
    if (typeof s !== "string" || s.length < 24) continue;
    for (let i = 0; i + 24 <= s.length; i += 24) assert.ok(!r.text.includes(s.slice(i, i + 24)), `${what}: the answer echoes a token`);
  }
}

const METHODS = [
  { jsonrpc: "2.0", id: 3, method: "tools/list" },
  call("db_query", { max_rows: 1 }, 4),
  { jsonrpc: "2.0", id: 5, method: "resources/read", params: { uri: "file:///docs/a" } },
  { jsonrpc: "2.0", id: 6, method: "prompts/get", params: { name: "greeting" } },
  { jsonrpc: "2.0", id: 7, method: "completion/complete", params: { ref: { type: "ref/prompt", name: "greeting" }, argument: { name: "a", value: "b" } } },
  { jsonrpc: "2.0", id: 8, method: "logging/setLevel", params: { level: "debug" } },
  { jsonrpc: "2.0", id: 9, method: "resources/list" },
  { jsonrpc: "2.0", id: 10, method: "prompts/list" },
];
const flip = (t, i) => t.slice(0, i) + (t[i] === "A" ? "B" : "A") + t.slice(i + 1);
const MANGLED = () => ({
  garbage: "garbage",
  truncated: token.slice(0, -10),
  "a flipped character": flip(token, 12),
  "a flipped signature character": flip(token, token.length - 20),
  "standard base64 alphabet": token.replace(/-/g, "+").replace(/_/g, "/"),
  twice: token + token,
});

test("withMcpVault alone over HTTP: a mangled _meta token on every guarded method is a typed 401-class error, nothing runs", async (t) => {
  const s = await serve();
  t.after(s.close);
  for (const [kind, bad] of Object.entries(MANGLED())) {
    for (const m of METHODS) {
      const body = { ...m, params: { ...m.params, _meta: { token: bad } } };
      const r = await post(s.url, body);
      const what = `${kind} token, ${m.method}`;
      assert.match(codeOf(r, what), /^(malformed_token|bad_signature|limits_exceeded)$/, what);
      assert.strictEqual(r.json.error.code, -32011, `${what}: JSON-RPC code`);
      assert.match(r.json.error.message, /^token (signature is not valid|is malformed)/, `${what}: opaque`);
      noEcho(r, [token, bad], what);
    }
    // no token at all
  }
  for (const m of METHODS) assert.strictEqual(codeOf(await post(s.url, m), m.method), "missing_token", `${m.method} without a token`);
  assert.strictEqual(s.state.ran, 0, "a handler ran");
  // a method the server does not implement is decided on its token first: without a valid one the caller learns
  // nothing of which methods exist (the SDK alone answers -32601 before any token is read)
  for (const method of ["x/unknown", "sampling/createMessage", "tasks/list", "elicitation/create"]) {
    const garbage = await post(s.url, { jsonrpc: "2.0", id: 12, method, params: { _meta: { token: "garbage" } } });
    assert.strictEqual(codeOf(garbage, `${method}, garbage token`), "malformed_token");
    assert.strictEqual(codeOf(await post(s.url, { jsonrpc: "2.0", id: 13, method }), `${method}, no token`), "missing_token");
    const valid = await post(s.url, { jsonrpc: "2.0", id: 14, method, params: { _meta: { token } } });
    assert.strictEqual(valid.json?.error?.code, -32601, `${method}, valid token: ${valid.text}`);
  }
  // a tools/call notification (no id) is never run
  const note = await post(s.url, { jsonrpc: "2.0", method: "tools/call", params: { name: "db_query", arguments: {}, _meta: { token } } });
  assert.ok(note.status === 202 || note.status === 400, `notification: ${note.status}`);
  assert.strictEqual(s.state.ran, 0, "a tools/call notification ran");
  // the valid token works, and its handler never sees it
  assert.strictEqual(codeOf(await post(s.url, call("db_query", { max_rows: 1 }, 1, { token })), "valid"), "allowed");
  assert.ok(!s.state.seen.join("").includes(token), "the handler saw the token");
});

test("withMcpVault alone over HTTP: _meta.token and _meta[\"mcpvault/token\"] naming two tokens are invalid_request", async (t) => {
  // SCHEMA.md: one request carries one token; two different ones are invalid_request. withMcpVault reads only _meta.
  const s = await serve();
  t.after(s.close);
  const r = await post(s.url, call("admin_delete", {}, 1, { token, "mcpvault/token": other }));
  assert.strictEqual(codeOf(r, "token vs mcpvault/token"), "invalid_request", "not decided by the first token alone");
  const r2 = await post(s.url, call("db_query", { max_rows: 1 }, 2, { token, "mcpvault/token": other }));
  assert.strictEqual(codeOf(r2, "two tokens in _meta"), "invalid_request");
  const r3 = await post(s.url, call("admin_delete", {}, 3, { token: other, "mcpvault/token": token }));
  assert.strictEqual(codeOf(r3, "two tokens in _meta, the wider first"), "invalid_request");
  assert.strictEqual(s.state.ran, 0, "a message carrying two tokens ran");
});

test("middleware (deferSpend) + withMcpVault, two servers sharing one SQLite file: a single-use token runs once in 50 parallel calls", async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), "mcpvault-hostile-")), "vault.db");
  const stores = [await openStore(`sqlite:${file}`), await openStore(`sqlite:${file}`)];
  t.after(() => Promise.all(stores.map((x) => x.close())));
  const state = { ran: 0, seen: [], delay: 30 };
  const servers = await Promise.all(stores.map((store) => serve({ front: { store, deferSpend: true }, inner: { store }, state })));
  t.after(() => Promise.all(servers.map((x) => x.close())));
  const auth = (tk) => ({ Authorization: `Bearer ${tk}` });

  // 50 different requests
  const once = mint({ singleUse: true });
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => post(servers[i % 2].url, call("db_query", { max_rows: 1 }, i), auth(once))));
  assert.strictEqual(state.ran, 1, "exactly one execution");
  const codes = rs.map((r, i) => codeOf(r, `call ${i}`));
  assert.strictEqual(codes.filter((c) => c === "allowed").length, 1, J(codes));
  assert.ok(codes.every((c) => c === "allowed" || c === "replayed"), J(codes));
  for (const r of rs) noEcho(r, [once], "single-use");

  // the same request 50 times: one execution; the retries get the recorded response or in_flight, never a second run
  const once2 = mint({ singleUse: true });
  const same = await Promise.all(Array.from({ length: 50 }, (_, i) => post(servers[i % 2].url, call("db_query", { max_rows: 1 }, 7), auth(once2))));
  assert.strictEqual(state.ran, 2, "exactly one execution of the retried request");
  const results = same.map((r) => r.json?.result?.content?.[0]?.text ?? codeOf(r, "retry"));
  assert.ok(results.every((x) => x === "db_query #2" || x === "in_flight"), J(results));
  // after it finished, a retry within the window gets the first execution's response
  const late = await post(servers[0].url, call("db_query", { max_rows: 1 }, 7), auth(once2));
  assert.strictEqual(late.json?.result?.content?.[0]?.text, "db_query #2", late.text);
  assert.strictEqual(state.ran, 2);
  // another request with the spent token
  assert.strictEqual(codeOf(await post(servers[1].url, call("db_query", { max_rows: 1 }, 8), auth(once2)), "spent"), "replayed");
  assert.strictEqual(state.ran, 2);
});

test("middleware + withMcpVault: a holder-bound token stolen from a log is refused without its proof or with another call's", async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), "mcpvault-hostile-")), "vault.db");
  const stores = [await openStore(`sqlite:${file}`), await openStore(`sqlite:${file}`)];
  t.after(() => Promise.all(stores.map((x) => x.close())));
  const state = { ran: 0, seen: [] };
  const [a, b] = await Promise.all(stores.map((store) => serve({ front: { store }, inner: { store }, state })));
  t.after(() => Promise.all([a.close(), b.close()]));
  const holder = vault.generateKeypair();
  const thief = vault.generateKeypair();
  const bound = mint({ holder: holder.publicKey, tools: ["db_query", "admin_delete"], argLimits: [] });
  const args = { max_rows: 1 };
  const T = { "X-MCPVault-Token": bound };
  const sign = (key, target) => vault.signCall(key, bound, target);

  const statusCode = (r) => [r.status, r.json?.error?.data?.code];
  assert.deepStrictEqual(statusCode(await post(a.url, call("db_query", args), T)), [401, "proof_required"], "no proof");
  assert.deepStrictEqual(statusCode(await post(a.url, { jsonrpc: "2.0", id: 1, method: "tools/list" }, T)), [401, "proof_required"], "tools/list, no proof");
  for (const [what, proof] of [
    ["other arguments", sign(holder.privateKey, { tool: "db_query", arguments: { max_rows: 2 } })],
    ["another tool", sign(holder.privateKey, { tool: "admin_delete", arguments: args })],
    ["tools/list", sign(holder.privateKey, { method: "tools/list" })],
    ["the thief's key", sign(thief.privateKey, { tool: "db_query", arguments: args })],
  ]) {
    const h = await post(a.url, call("db_query", args), { ...T, "X-MCPVault-Proof": proof });
    assert.deepStrictEqual(statusCode(h), [401, "bad_proof"], `header proof for ${what}`);
    const m = await post(a.url, call("db_query", args, 1, { "mcpvault/proof": proof }), T);
    assert.deepStrictEqual(statusCode(m), [401, "bad_proof"], `_meta proof for ${what}`);
    noEcho(h, [bound, proof], what);
  }
  assert.strictEqual(state.ran, 0, "nothing ran");
  const p = sign(holder.privateKey, { tool: "db_query", arguments: args });
  assert.strictEqual(codeOf(await post(a.url, call("db_query", args, 1, { "mcpvault/proof": p }), T), "holder"), "allowed");
  assert.strictEqual(state.ran, 1);
  // the logged request, another id, on the other server: the proof is spent
  assert.deepStrictEqual(statusCode(await post(b.url, call("db_query", args, 2, { "mcpvault/proof": p }), T)), [401, "replayed"]);
  // the logged request whole: a retry, answered with the recorded response, not run again
  const retry = await post(b.url, call("db_query", args, 1, { "mcpvault/proof": p }), T);
  assert.ok(codeOf(retry, "retry") !== "allowed" || retry.json.result.content[0].text === "db_query #1", retry.text);
  assert.strictEqual(state.ran, 1, "the stolen proof ran the call again");
  assert.ok(!state.seen.join("").includes(p) && !state.seen.join("").includes(bound), "the handler saw the token or the proof");
});

test("the HTTP proxy: mangled tokens on every method, GET and DELETE; unknown sessions; a single-use token runs once upstream", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mcpvault-hostile-proxy-"));
  const log = join(dir, "upstream.log");
  const config = checkConfig({
    publicKey: keys.publicKey, store: `sqlite:${join(dir, "vault.db")}`, log: false,
    upstream: { command: process.execPath, args: [join(here, "fixtures", "upstream.mjs")], env: { UPSTREAM_LOG: log } },
    downstream: { http: { host: "127.0.0.1", port: 0 } },
  });
  const proxy = await startProxy(config);
  t.after(() => proxy.close());
  const init = { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } };
  const opened = await post(proxy.url, init, { Authorization: `Bearer ${token}` });
  assert.strictEqual(opened.status, 200, opened.text);
  const sid = opened.headers.get("mcp-session-id");
  assert.ok(sid);
  await post(proxy.url, { jsonrpc: "2.0", method: "notifications/initialized" }, { Authorization: `Bearer ${token}`, "Mcp-Session-Id": sid });
  const S = { "Mcp-Session-Id": sid };
  for (const [kind, bad] of Object.entries(MANGLED())) {
    for (const m of [init, ...METHODS, { jsonrpc: "2.0", id: 11, method: "ping" }, { jsonrpc: "2.0", id: 12, method: "x/unknown" }]) {
      const r = await post(proxy.url, m, { ...S, Authorization: `Bearer ${bad}` });
      const what = `proxy, ${kind} token, ${m.method}`;
      assert.strictEqual(r.status, 401, `${what}: ${r.text.slice(0, 200)}`);
      assert.match(codeOf(r, what), /^(malformed_token|bad_signature|limits_exceeded)$/, what);
      noEcho(r, [token, bad], what);
    }
    for (const verb of ["GET", "DELETE"]) {
      const r = await post(proxy.url, undefined, { ...S, Authorization: `Bearer ${bad}` }, verb);
      assert.strictEqual(r.status, 401, `proxy ${verb}, ${kind} token`);
      assert.match(codeOf(r, verb), /^(malformed_token|bad_signature|limits_exceeded)$/);
    }
  }
  // a valid token on a session nobody opened, and a request before initialize: refused, typed, never relayed
  const unknown = await post(proxy.url, METHODS[0], { Authorization: `Bearer ${token}`, "Mcp-Session-Id": "nope" });
  assert.strictEqual(unknown.status, 404, unknown.text);
  assert.deepStrictEqual(JSON.parse(unknown.text).error.data, { code: "invalid_request", status: 404 }, unknown.text);
  const early = await post(proxy.url, METHODS[0], { Authorization: `Bearer ${token}` });
  assert.strictEqual(early.status, 400, early.text);
  assert.deepStrictEqual(JSON.parse(early.text).error.data, { code: "invalid_request", status: 400 }, early.text);
  // a tools/call notification on the session: never relayed
  await post(proxy.url, { jsonrpc: "2.0", method: "tools/call", params: { name: "db_query", arguments: { sql: "n" } } }, { ...S, Authorization: `Bearer ${token}` });
  const relayed = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l)) : []);
  assert.ok(!relayed().some((m) => m.method === "tools/call"), "a tools/call notification or a refused call reached the upstream");
  // a single-use token, 20 different requests in parallel on the session: one reaches the upstream
  const once = mint({ singleUse: true });
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    post(proxy.url, call("db_query", { sql: "s", max_rows: 1 }, 100 + i), { ...S, Authorization: `Bearer ${once}` })));
  const codes = rs.map((r, i) => codeOf(r, `proxy single-use ${i}`));
  assert.strictEqual(codes.filter((c) => c === "allowed").length, 1, J(codes));
  assert.ok(codes.every((c) => c === "allowed" || c === "replayed"), J(codes));
  assert.strictEqual(relayed().filter((m) => m.method === "tools/call").length, 1, "the upstream ran the single-use call more than once");
  assert.ok(!readFileSync(log, "utf8").includes(once.slice(0, 40)), "the token reached the upstream");
});

/** A proxy over HTTP in front of the fixture upstream (stdio children), with a SQLite store a test can revoke in. */
async function httpProxy(t, extra = {}, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), "mcpvault-hostile-proxy-"));
  const files = { log: join(dir, "upstream.log"), started: join(dir, "started.log"), db: join(dir, "vault.db") };
  const config = checkConfig({
    publicKey: keys.publicKey, store: `sqlite:${files.db}`, log: false,
    upstream: { command: process.execPath, args: [join(here, "fixtures", "upstream.mjs")], env: { UPSTREAM_LOG: files.log, UPSTREAM_STARTED: files.started, ...env } },
    downstream: { http: { host: "127.0.0.1", port: 0 } },
    ...extra,
  });
  const proxy = await startProxy(config);
  t.after(() => proxy.close());
  const lines = (f) => (existsSync(f) ? readFileSync(f, "utf8").trim().split("\n").filter(Boolean) : []);
  return {
    ...proxy, files,
    relayed: () => lines(files.log).map((l) => JSON.parse(l)),
    started: () => lines(files.started).length,
    pids: () => lines(files.started).map(Number),
    open: async (tk) => {
      const r = await post(proxy.url, INIT, { Authorization: `Bearer ${tk}` });
      assert.strictEqual(r.status, 200, r.text);
      const sid = r.headers.get("mcp-session-id");
      await post(proxy.url, { jsonrpc: "2.0", method: "notifications/initialized" }, { Authorization: `Bearer ${tk}`, "Mcp-Session-Id": sid });
      return sid;
    },
  };
}

const INIT = { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } };

/** A request without a body (GET, DELETE, …): an SSE stream is only noted (and closed), never read to its end. */
async function bodiless(url, method, headers) {
  const res = await fetch(url, { method, headers: { ...HEADERS, ...headers }, signal: AbortSignal.timeout(10_000) });
  if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
    await res.body?.cancel();
    return { status: res.status, sse: true, text: "", json: undefined, headers: res.headers };
  }
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, sse: false, text, json, headers: res.headers };
}

/** A raw HTTP request (any Host header, any body bytes). */
function raw(url, { method = "POST", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers: { ...HEADERS, ...headers } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** What the process writes to stderr while `fn` runs (and still writes it). */
async function stderrOf(fn) {
  const seen = [];
  const write = process.stderr.write;
  process.stderr.write = function (chunk, ...rest) {
    seen.push(String(chunk));
    return write.call(this, chunk, ...rest);
  };
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return seen.join("");
}

const statusCode = (r) => [r.status, r.json?.error?.data?.code];

test("the HTTP proxy: a session's GET and DELETE are decided by the core with the session's subject and the store", async (t) => {
  const p = await httpProxy(t);
  const sid = await p.open(token);
  const S = { "Mcp-Session-Id": sid };
  const bearer = (tk) => ({ ...S, Authorization: `Bearer ${tk}` });
  const owns = async () => codeOf(await post(p.url, { jsonrpc: "2.0", id: 50, method: "tools/list" }, bearer(token)), "the owner's tools/list");
  // another subject's valid token: not the session's stream, nor its end
  for (const verb of ["GET", "DELETE"]) {
    const r = await bodiless(p.url, verb, bearer(other));
    assert.deepStrictEqual(statusCode(r), [403, "session_mismatch"], `${verb} with another subject's token: ${r.status} ${r.text}`);
    assert.match(r.headers.get("www-authenticate") ?? "", /insufficient_scope/);
    noEcho(r, [token, other], verb);
  }
  assert.strictEqual(await owns(), "allowed", "the session survived another subject's DELETE");
  // the same subject's token, revoked: refused with the store
  const revoked = mint();
  const admin = await openStore(`sqlite:${p.files.db}`);
  await admin.revoke(vault.inspect(revoked).revocation_ids[0]);
  await admin.close();
  for (const verb of ["GET", "DELETE"]) {
    const r = await bodiless(p.url, verb, bearer(revoked));
    assert.deepStrictEqual(statusCode(r), [401, "revoked"], `${verb} with a revoked token: ${r.status} ${r.text}`);
  }
  assert.strictEqual(await owns(), "allowed", "the session survived a revoked token's DELETE");
  // the owner: its stream, then the end of its session
  const stream = await bodiless(p.url, "GET", bearer(token));
  assert.deepStrictEqual([stream.status, stream.sse], [200, true]);
  const ended = await bodiless(p.url, "DELETE", bearer(token));
  assert.strictEqual(ended.status, 200, ended.text);
  assert.deepStrictEqual(statusCode(await post(p.url, { jsonrpc: "2.0", id: 51, method: "tools/list" }, bearer(token))), [404, "invalid_request"]);
});

test("the HTTP proxy: an initialize is decided before a session or an upstream child is made for it", async (t) => {
  const p = await httpProxy(t);
  const revoked = mint();
  const admin = await openStore(`sqlite:${p.files.db}`);
  await admin.revoke(vault.inspect(revoked).revocation_ids[0]);
  await admin.close();
  for (const [what, tk, expected] of [["revoked", revoked, [401, "revoked"]], ["garbage", "garbage", [401, "malformed_token"]]]) {
    const r = await post(p.url, INIT, { Authorization: `Bearer ${tk}` });
    assert.deepStrictEqual(statusCode(r), expected, `${what}: ${r.status} ${r.text}`);
    assert.strictEqual(r.headers.get("mcp-session-id"), null, `${what}: a session was opened`);
  }
  // a valid initialize the SDK's transport refuses (it does not accept SSE): no session, its child ended
  const refused = await post(p.url, INIT, { Authorization: `Bearer ${token}`, Accept: "application/json" });
  assert.deepStrictEqual(statusCode(refused), [406, "invalid_request"], refused.text);
  assert.strictEqual(refused.headers.get("mcp-session-id"), null);
  // the transport refuses it after its relay started its child (closed then): wait for that child's line, which a
  // loaded machine writes late (counted as the valid initialize's otherwise)
  for (let i = 0; i < 50 && p.started() < 1; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(p.started() <= 1, `upstream children spawned for refused initializes: ${p.started()}`);
  const before = p.started();
  await p.open(token);
  for (let i = 0; i < 50 && p.started() === before; i++) await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(p.started(), before + 1, "a valid initialize starts its upstream");
  assert.deepStrictEqual(p.relayed().filter((m) => m.method === "initialize").length, 1);
});

test("the HTTP proxy's sessions: at most `max`, `perSubject` of one subject, each closed (its child too) once idle", async (t) => {
  const p = await httpProxy(t, { sessions: { max: 3, perSubject: 2, idleSeconds: 1 } }, { UPSTREAM_SLOW_MS: "2500" });
  const A = (tk) => ({ Authorization: `Bearer ${tk}` });
  const first = await p.open(token);
  // agent-a's first session is kept active by its client throughout (a request every 200 ms, each allowed)
  const kept = [];
  const keeper = setInterval(() => {
    kept.push(post(p.url, { jsonrpc: "2.0", id: 60, method: "tools/list" }, { ...A(token), "Mcp-Session-Id": first }).then((r) => codeOf(r, "active")));
  }, 200);
  t.after(() => clearInterval(keeper));
  await p.open(token);
  // a third of agent-a's, and 20 more at once: 429 rate_limited, typed, no session, no child
  const more = await Promise.all(Array.from({ length: 21 }, () => post(p.url, INIT, A(token))));
  for (const r of more) {
    assert.deepStrictEqual(statusCode(r), [429, "rate_limited"], r.text);
    assert.deepStrictEqual([r.headers.get("mcp-session-id"), r.headers.get("retry-after"), r.json.id, r.json.error.data.retryAfter], [null, "1", 0, 1]);
  }
  // another subject gets the last one; then the proxy is full for everyone
  const z = await p.open(other);
  const third = mint({ subject: "agent-q" });
  assert.deepStrictEqual(statusCode(await post(p.url, INIT, A(third))), [429, "rate_limited"]);
  // agent-z's session waits for a slow call (longer than the idle time): it is not closed under it
  const slow = mint({ subject: "agent-z", tools: ["slow"], argLimits: [] });
  assert.strictEqual(codeOf(await post(p.url, call("slow", {}, 7), { ...A(slow), "Mcp-Session-Id": z }), "the slow call"), "allowed",
    "a session was closed under its waiting request");
  assert.strictEqual(p.started(), 3, "children spawned past the caps");
  // agent-a's second session, left alone, was closed once idle, its child ended: agent-a may open one again
  await p.open(token);
  const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  for (let i = 0; i < 50 && p.pids().filter(alive).length > 3; i++) await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(p.pids().filter(alive).length, 3, "an idle session's child still runs");
  assert.deepStrictEqual(statusCode(await post(p.url, INIT, A(third))), [429, "rate_limited"], "the proxy had room past max");
  // agent-z's (idle since its slow call) and agent-a's newest are closed in time: agent-q gets one
  let opened = 0;
  for (let i = 0; i < 60 && opened !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    opened = (await post(p.url, INIT, A(third))).status;
  }
  assert.strictEqual(opened, 200);
  assert.deepStrictEqual(statusCode(await post(p.url, { jsonrpc: "2.0", id: 1, method: "tools/list" }, { ...A(other), "Mcp-Session-Id": z })), [404, "invalid_request"]);
  clearInterval(keeper);
  const codes = await Promise.all(kept);
  assert.ok(codes.length > 10 && codes.every((c) => c === "allowed"), `the active session: ${J(codes)}`);
});

test("the HTTP proxy reads bodies itself: unreadable ones are typed invalid_request, never repaired, never logged", async (t) => {
  const p = await httpProxy(t);
  const sid = await p.open(token);
  const A = { Authorization: `Bearer ${token}` };
  const S = { ...A, "Mcp-Session-Id": sid };
  const results = [];
  const err = await stderrOf(async () => {
    const cut = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{"token":"${token}"},"x":`;
    for (const [what, options] of [
      ["not JSON, quoting the token", { body: cut }],
      ["not JSON", { body: "not json" }],
      ["a bare number", { body: "123" }],
      ["latin1 bytes", { headers: { "Content-Type": "application/json; charset=latin1" }, body: Buffer.from(J(call("db_query", { sql: "caf\u00e9" }, 2)), "latin1") }],
      ["gzip garbage", { headers: { "Content-Encoding": "gzip" }, body: Buffer.from(`garbage ${token}`) }],
      ["over 4 MiB", { body: J({ ...INIT, params: { ...INIT.params, pad: "x".repeat(4 * 1024 * 1024 + 10) } }) }],
    ]) {
      results.push([what, await raw(p.url, { headers: { ...S, ...options.headers }, body: options.body })]);
    }
    // bytes that are not UTF-8 inside an argument: refused, not turned into U+FFFD and run
    const bad = Buffer.concat([Buffer.from(J(call("db_query", { sql: "AB" }, 3)).split("AB")[0]), Buffer.from([0x41, 0xff, 0x42]), Buffer.from(J(call("db_query", { sql: "AB" }, 3)).split("AB")[1])]);
    results.push(["not UTF-8", await raw(p.url, { headers: S, body: bad })]);
  });
  for (const [what, r] of results) {
    assert.deepStrictEqual(statusCode(r), [400, "invalid_request"], `${what}: ${r.status} ${r.text.slice(0, 300)}`);
    assert.strictEqual(r.json.error.code, -32600, what);
    noEcho(r, [token], what);
  }
  assert.ok(!p.relayed().some((m) => m.method === "tools/call"), "a body that is not UTF-8 ran upstream");
  noEcho({ text: err }, [token], "stderr");
  // a body over the 100 KB of a default JSON parser, under the middleware's 4 MiB: decided like any other
  const big = await post(p.url, { ...INIT, params: { ...INIT.params, pad: "x".repeat(200 * 1024) } }, A);
  assert.strictEqual(codeOf(big, "200 KB initialize"), "allowed");
});

test("the HTTP proxy types the answers its transport gives itself: verbs, Content-Type, Accept, Host, other paths, a failing upstream", async (t) => {
  const p = await httpProxy(t);
  const sid = await p.open(token);
  const S = { Authorization: `Bearer ${token}`, "Mcp-Session-Id": sid };
  const typedAs = (r, status, what) => {
    assert.strictEqual(r.status, status, `${what}: ${r.status} ${r.text}`);
    assert.deepStrictEqual(r.json?.error?.data, { code: status >= 500 ? "internal_error" : "invalid_request", status }, `${what}: ${r.text}`);
    assert.strictEqual(r.json.error.code, status >= 500 ? -32603 : -32600, what);
  };
  for (const verb of ["PUT", "PATCH"]) typedAs(await raw(p.url, { method: verb, headers: S, body: J(METHODS[0]) }), 405, verb);
  typedAs(await raw(p.url, { method: "OPTIONS", headers: S }), 405, "OPTIONS");
  const head = await raw(p.url, { method: "HEAD", headers: S });
  assert.strictEqual(head.status, 405);
  assert.strictEqual(head.headers["content-type"], "application/json");
  typedAs(await raw(p.url, { headers: { ...S, "Content-Type": "text/plain" }, body: J(METHODS[0]) }), 415, "text/plain");
  typedAs(await raw(p.url, { headers: { ...S, Accept: "application/json" }, body: J(METHODS[0]) }), 406, "Accept without SSE");
  typedAs(await raw(p.url, { headers: { ...S, "Mcp-Protocol-Version": "1999-01-01" }, body: J(METHODS[0]) }), 400, "unknown protocol version");
  typedAs(await raw(p.url, { headers: { ...S, Host: "evil.example" }, body: J(METHODS[0]) }), 403, "DNS rebinding");
  typedAs(await raw(p.url.replace(/\/mcp$/, "/other"), { headers: S, body: J(METHODS[0]) }), 404, "another path");
  // an upstream that cannot start: the catch-all answer is typed too
  const broken = await startProxy(checkConfig({ publicKey: keys.publicKey, log: false, upstream: { command: join(here, "no-such-upstream") },
    downstream: { http: { host: "127.0.0.1", port: 0 } } }));
  t.after(() => broken.close());
  let r;
  await stderrOf(async () => { r = await post(broken.url, INIT, { Authorization: `Bearer ${token}` }); });
  typedAs(r, 500, "failing upstream");
  assert.strictEqual(r.json.error.message, "internal error");
});

test("mcpvault-express in front of a stateful server: a session is its opener's; another subject's token with its id is session_mismatch on every verb", async (t) => {
  const { randomUUID } = await import("node:crypto");
  const state = { ran: 0, seen: [] };
  const app = express();
  const heard = [];
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, innerGuard: true, onDecision: (d) => heard.push(d) });
  const transports = new Map();
  app.all("/mcp", auth(), async (req, res) => {
    const sid = req.headers["mcp-session-id"];
    let transport = typeof sid === "string" ? transports.get(sid) : undefined;
    if (!transport) {
      if (sid !== undefined) return void res.status(404).json({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "unknown session" } });
      transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => transports.set(id, transport) });
      transport.onclose = () => transports.delete(transport.sessionId);
      await mcpServer(state, {}).connect(transport);
    }
    await transport.handleRequest(req, res, req.body);
  });
  const listener = await new Promise((r) => { const s = app.listen(0, "127.0.0.1", () => r(s)); });
  t.after(() => new Promise((r) => { listener.closeAllConnections?.(); listener.close(() => r()); }));
  const url = `http://127.0.0.1:${listener.address().port}/mcp`;
  const opened = await post(url, INIT, { Authorization: `Bearer ${token}` });
  const sid = opened.headers.get("mcp-session-id");
  assert.ok(sid, opened.text);
  const as = (tk) => ({ Authorization: `Bearer ${tk}`, "Mcp-Session-Id": sid });
  // before the owner sends anything else: the session is already the opener's
  const early = await post(url, call("db_query", {}, 2), as(other));
  assert.deepStrictEqual(statusCode(early), [403, "session_mismatch"], early.text);
  await post(url, { jsonrpc: "2.0", method: "notifications/initialized" }, as(token));
  for (const verb of ["GET", "DELETE"]) {
    const r = await bodiless(url, verb, as(other));
    assert.deepStrictEqual(statusCode(r), [403, "session_mismatch"], `${verb}: ${r.status} ${r.text}`);
  }
  // made-up session ids bind nothing (404: unknown session), however many: the victim's binding stays
  for (let i = 0; i < 50; i++) {
    const r = await post(url, call("db_query", { max_rows: 1 }, 100 + i), { Authorization: `Bearer ${other}`, "Mcp-Session-Id": `made-up-${i}` });
    assert.deepStrictEqual(statusCode(r), [404, "invalid_request"], r.text);
  }
  // the core decided them (sessionBook): onDecision hears each, with the session it named
  const unknown = heard.filter((d) => d.sessionId?.startsWith("made-up-"));
  assert.deepStrictEqual(unknown.map((d) => [d.code, d.status, d.sessionId]), Array.from({ length: 50 }, (_, i) => ["invalid_request", 404, `made-up-${i}`]));
  const hijack = await post(url, call("admin_delete", { id: "1" }, 3), as(other));
  assert.deepStrictEqual(statusCode(hijack), [403, "session_mismatch"], hijack.text);
  assert.strictEqual(state.ran, 0, "another subject's call ran in the session");
  // the owner's session is whole: its calls run, its DELETE ends it
  assert.strictEqual(codeOf(await post(url, call("db_query", { max_rows: 1 }, 4), as(token)), "the owner's call"), "allowed");
  assert.strictEqual(state.ran, 1);
  assert.strictEqual((await bodiless(url, "DELETE", as(token))).status, 200);
  assert.deepStrictEqual(statusCode(await post(url, call("db_query", { max_rows: 1 }, 6), as(token))), [404, "invalid_request"]);
  // another session, opened by agent-z: its own
  const z = await post(url, INIT, { Authorization: `Bearer ${other}` });
  const zid = z.headers.get("mcp-session-id");
  const mine = await post(url, call("db_query", { max_rows: 1 }, 5), { Authorization: `Bearer ${token}`, "Mcp-Session-Id": zid });
  assert.deepStrictEqual(statusCode(mine), [403, "session_mismatch"], mine.text);
});

test("withMcpVault alone over HTTP decides the headers an HTTP layer would have: a second token, Mcp-Method/Mcp-Name; no proof reaches the handler", async (t) => {
  const state = { ran: 0, seen: [] };
  const s = await serve({ state, inner: { store: await openStore("memory") } });
  t.after(() => s.close());
  const args = { max_rows: 1 };
  // a header token that differs from the _meta token: invalid_request, nothing runs
  for (const h of [{ "X-MCPVault-Token": other }, { Authorization: `Bearer ${other}` }]) {
    const r = await post(s.url, call("db_query", args, 1, { token }), h);
    assert.strictEqual(codeOf(r, "two tokens"), "invalid_request", r.text);
  }
  // Mcp-Name / Mcp-Method that disagree with the message
  for (const h of [{ "Mcp-Name": "file_read" }, { "Mcp-Method": "tools/list" }]) {
    const r = await post(s.url, call("db_query", args, 2, { token }), h);
    assert.strictEqual(codeOf(r, "headers that disagree"), "invalid_request", r.text);
  }
  assert.strictEqual(state.ran, 0);
  // a holder-bound call with its proof in the header: allowed; the handler sees neither the proof nor the token
  const holder = vault.generateKeypair();
  const bound = mint({ holder: holder.publicKey, tools: ["db_query"], argLimits: [] });
  const proof = vault.signCall(holder.privateKey, bound, { tool: "db_query", arguments: args });
  const ok = await post(s.url, call("db_query", args, 3), { "X-MCPVault-Token": bound, "X-MCPVault-Proof": proof });
  assert.strictEqual(codeOf(ok, "holder"), "allowed", ok.text);
  assert.strictEqual(state.ran, 1);
  const seen = state.seen.join("");
  assert.ok(!seen.includes(proof) && !seen.includes(bound), "the handler saw the proof or the token");
});

test("skills answers through withMcpVault's and the proxy's policy keep only what the token may read", async () => {
  // helper 42: the list of filtered methods was a copy without skills/list and skills/get; it is the core's now
  const { Policy, LISTS } = await import("../policy.mjs");
  assert.ok(LISTS.has("skills/list") && LISTS.has("skills/get") && LISTS.has("tools/list"));
  const policy = new Policy({ publicKeyHex: keys.publicKey }, "test");
  const reader = mint({ resources: ["skill://public/*"] });
  const skill = (name, files) => ({ uri: `skill://${name}/SKILL.md`, frontmatter: { name },
    resources: files.map((f) => ({ uri: `skill://${f}`, digest: "sha256:00", size: 1 })) });
  const list = { skills: [skill("public", ["public/SKILL.md", "payroll/creds.md"]), skill("payroll", ["payroll/SKILL.md"])] };
  const message = { jsonrpc: "2.0", id: 1, method: "skills/list", params: { _meta: { token: reader } } };
  const outcome = await policy.decide(message, undefined, undefined, undefined, undefined);
  assert.ok(outcome.allowed);
  assert.deepStrictEqual(policy.filterResult("skills/list", list, outcome, message),
    { skills: [skill("public", ["public/SKILL.md"])] });
  const get = { jsonrpc: "2.0", id: 2, method: "skills/get", params: { uri: "skill://payroll/SKILL.md", _meta: { token: reader } } };
  const refused = await policy.decide(get, undefined, undefined, undefined, undefined);
  assert.strictEqual(refused.decisions[0].code, "resource_not_allowed");
});
