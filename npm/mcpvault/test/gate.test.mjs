import test from "node:test";
import assert from "node:assert";
import {
  MCPVault, McpVaultError, extractToken, findToken, authorizeCall, authorizeWithState, authorizeBody, challenge,
  challengeResponse, authorizeFetch, assertPublicKey, statusOf, CHECK_TOOL, Guard,
} from "mcpvault";
import { MemoryStore } from "mcpvault-store";

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const token = vault.mint(keys.privateKey, {
  tools: ["db_query", "file_read"], ttl: 600, issuer: "auth-server", subject: "agent-a", audience: "db-server",
  argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }],
});
const opts = { publicKey: keys.publicKey, audience: "db-server", vault };
const callMsg = (name, args, meta) => ({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name, arguments: args, ...(meta && { _meta: meta }) } });

test("extractToken: X-MCPVault-Token, then Bearer, then _meta.token, then _meta[mcpvault/token]", () => {
  const body = callMsg("db_query", {}, { token: "meta" });
  assert.strictEqual(extractToken({ headers: { "x-mcpvault-token": "own", authorization: "Bearer bearer" }, body }), "own");
  assert.strictEqual(extractToken({ headers: { authorization: "Bearer bearer" }, body }), "bearer");
  assert.strictEqual(extractToken({ headers: { Authorization: "bearer  spaced " } }), "spaced");
  assert.strictEqual(extractToken({ headers: { authorization: "Basic abc" }, body }), "meta");
  assert.strictEqual(extractToken({ headers: {} }, callMsg("x", {}, { "mcpvault/token": "ns" })), "ns");
  assert.strictEqual(extractToken({ headers: {} }, [{ jsonrpc: "2.0", method: "a" }, callMsg("x", {}, { token: "second" })]), "second");
  // a repeated header is its values joined, as Node joins them (the guard refuses it: two tokens)
  assert.strictEqual(extractToken({ headers: { "x-mcpvault-token": ["first", "second"] } }), "first, second");
  assert.strictEqual(extractToken({ headers: {} }, callMsg("x", {}, { token: 5 })), null);
  assert.strictEqual(extractToken({ headers: {} }), null);
  assert.strictEqual(extractToken(undefined), null);
  assert.deepStrictEqual(findToken({ headers: {} }, callMsg("x", {}, { token: "m" })), { token: "m", source: "_meta.token" });
  // fetch Request: Headers with get()
  const req = new Request("http://127.0.0.1/mcp", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  assert.strictEqual(extractToken(req), token);
});

test("authorizeCall returns facts or an McpVaultError, never throws", () => {
  const facts = authorizeCall(token, callMsg("db_query", { max_rows: 5 }), opts);
  assert.strictEqual(facts.verified, true);
  assert.strictEqual(facts.tool, "db_query");
  assert.strictEqual(authorizeCall(token, { tool: "file_read" }, opts).tool, "file_read");
  assert.strictEqual(authorizeCall(token, { jsonrpc: "2.0", id: 1, method: "tools/list" }, opts).tool, undefined);
  const cases = [
    [null, callMsg("db_query", {}), "missing_token"],
    ["", { tool: "db_query" }, "missing_token"],
    ["garbage", { tool: "db_query" }, "malformed_token"],
    [token, callMsg("admin_delete", {}), "tool_not_allowed"],
    [token, callMsg("db_query", { max_rows: 101 }), "argument_not_allowed"],
    [token, callMsg("db_query", []), "invalid_request"],
    [token, { jsonrpc: "2.0", id: 1, method: "tools/call", params: {} }, "invalid_request"],
    [token, { jsonrpc: "2.0", id: 1 }, "invalid_request"],
    [token, "not an object", "invalid_request"],
  ];
  for (const [t, call, code] of cases) {
    const out = authorizeCall(t, call, opts);
    assert.ok(out instanceof McpVaultError, code);
    assert.strictEqual(out.code, code);
  }
  assert.strictEqual(authorizeCall(token, { tool: "db_query", arguments: { max_rows: 1 } }, { ...opts, audience: "other" }).code, "wrong_audience");
  assert.strictEqual(authorizeCall(token, { tool: "db_query", arguments: { max_rows: 1 } }, { ...opts, now: NOW + 600 }).code, "expired");
  assert.strictEqual(authorizeCall(token, { tool: "db_query" }, { ...opts, publicKey: vault.generateKeypair().publicKey }).code, "bad_signature");
  // the reserved dry-run tool: authorizeCall does not answer it, so a valid token's call of it is refused (the
  // server's own handler would run it); a bad token is still told as such first
  assert.strictEqual(authorizeCall(token, callMsg(CHECK_TOOL, { tool: "x" }), opts).code, "invalid_request");
  assert.strictEqual(authorizeCall("garbage", callMsg(CHECK_TOOL, { tool: "x" }), opts).code, "malformed_token");
});

test("authorizeCall / authorizeWithState decide the token passed in: another in the message's _meta is two tokens", async () => {
  // the README's authorizeCall(extractToken(req), req.body): a header token A and a _meta token B were decided as B
  const other = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "tenant-b", audience: "db-server" });
  const msg = callMsg("db_query", { max_rows: 1 }, { token: other });
  assert.strictEqual(authorizeCall(token, msg, opts).code, "invalid_request");
  assert.strictEqual((await authorizeWithState(token, msg, { ...opts, store: new MemoryStore() })).code, "invalid_request");
  // the same token in both is one token; a message's own token alone is still read
  assert.strictEqual(authorizeCall(token, callMsg("db_query", { max_rows: 1 }, { token }), opts).subject, "agent-a");
  assert.strictEqual(authorizeCall(null, msg, opts).subject, "tenant-b");
});

test("authorizeBody: batches, a fixed tool, REST bodies and body-less requests", async () => {
  const batch = [{ jsonrpc: "2.0", id: 1, method: "tools/list" }, callMsg("db_query", { max_rows: 1 })];
  assert.strictEqual((await authorizeBody(token, batch, opts)).facts.tool, "db_query");
  const bad = await authorizeBody(token, [...batch, { ...callMsg("admin_delete", {}), id: 9 }], opts);
  assert.strictEqual(bad.error.code, "tool_not_allowed");
  assert.strictEqual(bad.id, 9);
  assert.deepStrictEqual(bad.outcome.response.map((r) => r.id), [1, 7, 9], "a refused batch answers every request");
  // a fixed tool: a JSON-RPC call must name it; a plain body is its arguments
  assert.strictEqual((await authorizeBody(token, callMsg("file_read", {}), { ...opts, tool: "db_query" })).error.code, "invalid_request");
  assert.strictEqual((await authorizeBody(token, { max_rows: 100 }, { ...opts, tool: "db_query" })).facts.tool, "db_query");
  assert.strictEqual((await authorizeBody(token, { max_rows: 101 }, { ...opts, tool: "db_query" })).error.code, "argument_not_allowed");
  assert.strictEqual((await authorizeBody(token, undefined, { ...opts, tool: "db_query" })).error.code, "argument_not_allowed");
  assert.strictEqual((await authorizeBody(token, undefined, { ...opts, tool: "file_read" })).facts.tool, "file_read");
  assert.strictEqual((await authorizeBody(token, [1, 2], { ...opts, tool: "db_query" })).error.code, "invalid_request");
  // no tool: the body must be JSON-RPC; none at all needs a valid token
  assert.strictEqual((await authorizeBody(token, { max_rows: 1 }, opts)).error.code, "invalid_request");
  assert.strictEqual((await authorizeBody(token, undefined, { ...opts, httpMethod: "GET" })).facts.verified, true);
  assert.strictEqual((await authorizeBody(undefined, undefined, opts)).error.code, "missing_token");
});

test("the guard strips the token from _meta and from argument values in what it hands on", async () => {
  const m = callMsg("db_query", { sql: "x", leaked: token, max_rows: 1 }, { token, progressToken: 3 });
  const out = await authorizeBody(undefined, m, opts);
  assert.deepStrictEqual(out.outcome.forward.params, { name: "db_query", arguments: { sql: "x", max_rows: 1 }, _meta: { progressToken: 3 } });
  assert.strictEqual(m.params._meta.token, token, "the caller's message is left as it is");
  const n = await authorizeBody(undefined, callMsg("db_query", { max_rows: 1 }, { "mcpvault/token": token }), opts);
  assert.strictEqual(n.outcome.forward.params._meta, undefined);
});

test("challenge: status, WWW-Authenticate and a JSON-RPC body per code", () => {
  const expected = {
    missing_token: [401, "invalid_token"], malformed_token: [401, "invalid_token"], bad_signature: [401, "invalid_token"],
    expired: [401, "invalid_token"], revoked: [401, "invalid_token"], limits_exceeded: [401, "invalid_token"],
    tool_not_allowed: [403, "insufficient_scope"], argument_not_allowed: [403, "insufficient_scope"],
    wrong_audience: [401, "invalid_token"], depth_exceeded: [403, "insufficient_scope"],
    check_failed: [403, "insufficient_scope"], session_mismatch: [403, "insufficient_scope"], in_flight: [409, null],
    invalid_request: [400, null], invalid_key: [500, null], internal_error: [500, null],
  };
  for (const [code, [status, scheme]] of Object.entries(expected)) {
    const c = challenge(new McpVaultError(code, `m ${code}`, 1, "check if secret"), { id: 9 });
    assert.strictEqual(c.status, status, code);
    assert.strictEqual(statusOf(code), status);
    assert.strictEqual(c.headers["Content-Type"], "application/json");
    if (code === "missing_token") assert.strictEqual(c.headers["WWW-Authenticate"], 'Bearer realm="mcpvault"', "RFC 6750: no error without a token");
    else if (scheme) assert.match(c.headers["WWW-Authenticate"], new RegExp(`^Bearer realm="mcpvault", error="${scheme}", error_description="${code}: `));
    else assert.strictEqual(c.headers["WWW-Authenticate"], undefined);
    assert.strictEqual(c.body.jsonrpc, "2.0");
    assert.strictEqual(c.body.id, 9);
    assert.strictEqual(c.body.error.data.code, code);
    assert.ok(Number.isInteger(c.body.error.code));
    assert.ok(!JSON.stringify(c).includes("check if secret"), "no token internals");
  }
  assert.strictEqual(challenge(new McpVaultError("internal_error", "secret detail")).body.error.message, "internal error");
  assert.strictEqual(challenge(new Error("boom")).status, 500);
  assert.strictEqual(challenge(new McpVaultError("no_such_code", "x")).body.error.data.code, "internal_error");
  // quoted-string escaping: quotes and backslashes escaped, control and non-ASCII characters replaced
  const h = challenge(new McpVaultError("tool_not_allowed", 'tool "a\\b"\r\nX: é'), { resourceMetadata: "https://x/.well-known" }).headers["WWW-Authenticate"];
  assert.ok(h.includes('error_description="tool_not_allowed: tool \\"a\\\\b\\"??X: ?"'), h);
  assert.ok(h.endsWith('resource_metadata="https://x/.well-known"'));
  const scoped = challenge(new McpVaultError("tool_not_allowed", "no"), { tool: "db_query" }).headers["WWW-Authenticate"];
  assert.ok(scoped.includes('scope="db_query"'), scoped);
  assert.ok(!/[\r\n]/.test(h));
  const r = challengeResponse(new McpVaultError("expired", "token expired (block 0)"));
  assert.strictEqual(r.status, 401);
  assert.ok(r.headers.get("www-authenticate").includes('error="invalid_token"'));
});

test("authorizeFetch: the gate for fetch-style servers", async () => {
  const post = (body, headers = {}) => new Request("http://127.0.0.1/mcp", {
    method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body),
  });
  const ok = await authorizeFetch(post(callMsg("db_query", { max_rows: 3 }, { token })), opts);
  assert.strictEqual(ok.ok, true);
  assert.strictEqual(ok.facts.tool, "db_query");
  assert.strictEqual(ok.body.params._meta, undefined, "token removed from the body");
  const no = await authorizeFetch(post(callMsg("admin_delete", {}), { authorization: `Bearer ${token}` }), opts);
  assert.strictEqual(no.ok, false);
  assert.strictEqual(no.response.status, 403);
  assert.deepStrictEqual((await no.response.json()).error.data, { code: "tool_not_allowed", status: 403, failedBlock: 0 });
  const none = await authorizeFetch(post(callMsg("db_query", {})), opts);
  assert.strictEqual(none.response.status, 401);
  const garbage = await authorizeFetch(new Request("http://127.0.0.1/mcp", { method: "POST", body: "{not json" }), opts);
  assert.strictEqual(garbage.response.status, 400);
  const big = await authorizeFetch(post({ pad: "x".repeat(100) }), { ...opts, maxBodyBytes: 50 });
  assert.strictEqual(big.error.code, "invalid_request");
  const get = await authorizeFetch(new Request("http://127.0.0.1/mcp", { headers: { "x-mcpvault-token": token } }), opts);
  assert.strictEqual(get.ok, true);
  const notUtf8 = await authorizeFetch(new Request("http://127.0.0.1/mcp", { method: "POST", body: new Uint8Array([0x7b, 0xff, 0x7d]) }), opts);
  assert.deepStrictEqual([notUtf8.response.status, notUtf8.outcome.decisions[0].message], [400, "invalid request: body is not UTF-8"]);
  // a batch of one message the guard answers itself (the dry-run tool) is answered with an array of one answer
  const dry = callMsg(CHECK_TOOL, { tool: "db_query" }, { token });
  const one = await authorizeFetch(post([dry]), { ...opts, checkTool: true });
  assert.strictEqual(one.ok, true);
  const answered = await one.response.json();
  assert.ok(Array.isArray(answered) && answered.length === 1, JSON.stringify(answered));
  const alone = await (await authorizeFetch(post(dry), { ...opts, checkTool: true })).response.json();
  assert.ok(!Array.isArray(alone) && alone.result !== undefined, JSON.stringify(alone));
  // a batch of which the guard answers one message and hands on another: the answer is given (it was dropped, and
  // the client never got a reply for that id)
  const list = { jsonrpc: "2.0", id: 8, method: "tools/list", params: { _meta: { token } } };
  const mixed = await authorizeFetch(post([dry, list]), { ...opts, checkTool: true });
  assert.strictEqual(mixed.ok, true);
  assert.strictEqual(mixed.response, undefined);
  assert.deepStrictEqual(mixed.body.map((m) => m.id), [8]);
  assert.deepStrictEqual(mixed.answers.map((a) => a.id), [7]);
});

test("authorizeFetch stops reading a body at maxBodyBytes; toolDefinitions is read only when a pinned call needs it", async () => {
  const post = (body, headers = {}) => new Request("http://127.0.0.1/mcp", {
    method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body),
  });
  // a streamed body of 200 MB (no Content-Length): the read stops after the limit instead of buffering all of it
  let pulled = 0;
  let source;
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const stream = new ReadableStream({
    start(c) {
      source = c;
    },
    pull(c) {
      if (pulled >= 200 * 1024 * 1024) return c.close();
      pulled += chunk.byteLength;
      c.enqueue(chunk);
    },
  });
  const streamed = new Request("http://127.0.0.1/mcp", { method: "POST", body: stream, duplex: "half" });
  const big = await authorizeFetch(streamed, { ...opts, maxBodyBytes: 1024 });
  assert.deepStrictEqual([big.response.status, big.outcome.decisions[0].message], [400, "invalid request: body too large"]);
  assert.ok(pulled < 4 * 1024 * 1024, `read ${pulled} bytes`);
  // the connection ends after the refusal, as a server's would (Node 18 keeps a process alive while a partly read clone
  // of a request's body stream is pending)
  source.error(new Error("the client went away"));
  // a declared Content-Length over the limit is refused before any read
  const declared = new Request("http://127.0.0.1/mcp", { method: "POST", body: "x".repeat(2000), headers: { "content-length": "2000" } });
  assert.strictEqual((await authorizeFetch(declared, { ...opts, maxBodyBytes: 1024 })).error.code, "invalid_request");
  // a body at the limit passes
  const at = JSON.stringify(callMsg("db_query", { max_rows: 5 }));
  const fits = await authorizeFetch(post(callMsg("db_query", { max_rows: 5 }), { authorization: `Bearer ${token}` }), { ...opts, maxBodyBytes: at.length });
  assert.strictEqual(fits.ok, true);
  // toolDefinitions as a function: not called for a request that needs no definitions, and a throwing one is none
  let calls = 0;
  const defs = () => {
    calls += 1;
    throw new Error("upstream down");
  };
  const noToken = await authorizeFetch(post(callMsg("db_query", {})), { ...opts, toolDefinitions: defs });
  assert.strictEqual(noToken.error.code, "missing_token");
  const plainCall = await authorizeFetch(post(callMsg("db_query", { max_rows: 5 }), { authorization: `Bearer ${token}` }), { ...opts, toolDefinitions: defs });
  assert.strictEqual(plainCall.ok, true);
  assert.strictEqual(calls, 0);
  const pinned = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "i", subject: "s", audience: "db-server",
    pin: { db_query: "a".repeat(64) } });
  const refused = await authorizeFetch(post(callMsg("db_query", {}), { authorization: `Bearer ${pinned}` }), { ...opts, toolDefinitions: defs });
  assert.deepStrictEqual([calls, refused.error.code], [1, "tool_definition_changed"]);
  const array = await authorizeFetch(post(callMsg("db_query", {}), { authorization: `Bearer ${pinned}` }), { ...opts, toolDefinitions: ["x"] });
  assert.strictEqual(array.error.code, "tool_definition_changed");
});

test("authorizeFetch applies the stores: a single-use token is not reusable, a revoked one is refused", async () => {
  // It once went through a path that skipped them, so a fetch-style server let a single-use token through every time.
  const once = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s", singleUse: true });
  const post = () => new Request("http://127.0.0.1/mcp", {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${once}` },
    body: JSON.stringify(callMsg("db_query", {})),
  });
  const o = { publicKey: keys.publicKey, vault };
  const noStore = await authorizeFetch(post(), o);
  assert.deepStrictEqual([noStore.ok, noStore.error?.code, noStore.response?.status], [false, "replayed", 401]);
  const store = new MemoryStore();
  assert.strictEqual((await authorizeFetch(post(), { ...o, store })).ok, true);
  assert.strictEqual((await authorizeFetch(post(), { ...o, store })).error.code, "in_flight", "the same request again is not run twice");
  const other = new Request("http://127.0.0.1/mcp", {
    method: "POST", headers: { authorization: `Bearer ${once}` }, body: JSON.stringify({ ...callMsg("db_query", {}), id: 8 }),
  });
  assert.strictEqual((await authorizeFetch(other, { ...o, store })).error.code, "replayed");
  await store.revoke(vault.inspect(once).revocation_ids[0]);
  assert.strictEqual((await authorizeFetch(post(), { ...o, store })).error.code, "revoked");
  assert.strictEqual((await store.auditEntries()).length, 4, "every decision recorded");
});

test("a batch of 100,000 notifications with a valid token is refused before any verification, with one audit entry", async () => {
  const store = new MemoryStore();
  const g = new Guard({ publicKey: keys.publicKey, audience: "db-server", store, now: () => NOW });
  const batch = Array.from({ length: 100_000 }, () => ({ jsonrpc: "2.0", method: "notifications/progress", params: { _meta: { token } } }));
  const before = g.cacheStats();
  const out = await g.decide({ httpMethod: "POST", body: JSON.stringify(batch) });
  assert.deepStrictEqual([out.allowed, out.status, out.decisions[0].code], [false, 400, "invalid_request"]);
  assert.deepStrictEqual(g.cacheStats(), before, "nothing was verified");
  assert.strictEqual((await store.auditEntries()).length, 1);
  assert.deepStrictEqual(out.response, [{ jsonrpc: "2.0", id: null, error: { code: -32600,
    message: "invalid request: a batch of more than 100 messages is over the limit", data: { code: "invalid_request", status: 400 } } }]);
});

test("100,000-level nested arguments are a 400 invalid_request, never a 500", async () => {
  let deep = {};
  for (let i = 0; i < 100_000; i++) deep = { a: deep };
  const out = await authorizeBody(token, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: deep } }, opts);
  assert.deepStrictEqual([out.error.code, out.outcome.status], ["invalid_request", 400]);
  const text = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`;
  const t = await authorizeBody(token, text, opts);
  assert.deepStrictEqual([t.error.code, t.outcome.status], ["invalid_request", 400]);
});

test("assertPublicKey accepts an Ed25519 key and refuses anything else", () => {
  assertPublicKey(keys.publicKey);
  for (const bad of ["", "abcd", "zz".repeat(32), 42, undefined]) {
    assert.throws(() => assertPublicKey(bad), (e) => e instanceof McpVaultError && e.code === "invalid_key", String(bad));
  }
});

test("McpVaultError.detail is for logs and not serialised", () => {
  try {
    vault.verify("garbage", keys.publicKey, { tool: "db_query" });
    assert.fail("verified garbage");
  } catch (e) {
    assert.strictEqual(e.message, "token is malformed");
    assert.ok(e.detail.length > 0 && e.detail !== e.message, e.detail);
    assert.ok(!JSON.stringify(e).includes(e.detail));
  }
});

test("SCHEMA.md's HTTP table is the gate's mapping", async () => {
  const { readFileSync } = await import("node:fs");
  const schema = readFileSync(new URL("../../../SCHEMA.md", import.meta.url), "utf8");
  const rows = schema.split("\n").filter((l) => /^\| `[a-z_]+`.*\| (400|401|403|409|429|500) \|/.test(l));
  const documented = {};
  for (const row of rows) {
    const cells = row.split("|").map((c) => c.trim());
    for (const code of cells[1].match(/`[a-z_]+`/g)) documented[code.slice(1, -1)] = Number(cells[2]);
    const rpc = Number(cells[4]);
    const code = cells[1].match(/`([a-z_]+)`/)[1];
    assert.strictEqual(challenge(new McpVaultError(code, "m")).body.error.code, rpc, code);
  }
  const all = ["missing_token", "malformed_token", "invalid_key", "bad_signature", "expired", "tool_not_allowed",
    "argument_not_allowed", "wrong_audience", "depth_exceeded", "check_failed", "limits_exceeded", "invalid_request",
    "internal_error", "revoked", "replayed", "in_flight", "session_mismatch", "rule_violation", "resource_not_allowed",
    "prompt_not_allowed", "rate_limited", "budget_exceeded", "proof_required", "bad_proof", "proof_expired",
    "tool_definition_changed", "approval_required"];
  assert.deepStrictEqual(Object.keys(documented).sort(), all.sort());
  for (const [code, status] of Object.entries(documented)) assert.strictEqual(statusOf(code), status, code);
});

test("a store that fails, or answers nothing, refuses with internal_error and never allows", async () => {
  const t = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" });
  const base = { complete: async () => {}, appendAudit: async () => ({}) };
  for (const check of [async () => { throw new Error("connection reset"); }, async () => undefined, async () => "fresh"]) {
    const g = new Guard({ publicKey: keys.publicKey, store: { ...base, check }, now: () => NOW });
    const out = await g.decide({ body: callMsg("db_query", {}), fallbackToken: t });
    assert.deepStrictEqual([out.allowed, out.status, out.decisions[0].code], [false, 500, "internal_error"]);
  }
  // an allow whose audit record cannot be written is refused
  const g = new Guard({ publicKey: keys.publicKey, now: () => NOW,
    store: { check: async () => ({}), complete: async () => {}, appendAudit: async () => { throw new Error("disk full"); } } });
  const out = await g.decide({ body: callMsg("db_query", {}), fallbackToken: t });
  assert.deepStrictEqual([out.allowed, out.status, out.response.id], [false, 500, 7]);
});

test("strings of every shape cross into the module intact (long ones take encodeInto, short ones the loop)", async () => {
  const g = new Guard({ publicKey: keys.publicKey, audience: "db-server", now: () => NOW });
  const pieces = ["é", "€", "😀", "\u{10FFFF}", "\uFFFD", "a"];
  const values = ["", "x".repeat(32), "x".repeat(33)];
  for (const p of pieces) {
    // the character at the start, after 32 and after 200 ASCII characters, alone and repeated
    values.push(p, p + "y".repeat(40), "y".repeat(33) + p, "y".repeat(200) + p + "z".repeat(50), p.repeat(100));
  }
  for (const v of values) {
    const body = callMsg("db_query", { max_rows: 5, note: v });
    const out = await g.decide({ httpMethod: "POST", headers: { "x-mcpvault-token": token }, body });
    assert.strictEqual(out.allowed, true, JSON.stringify(v));
    assert.strictEqual(out.token, token);
    assert.strictEqual(out.forward.params.arguments.note, v, JSON.stringify(v));
    // as text too (the body a server read itself)
    const text = await g.decide({ httpMethod: "POST", headers: { "x-mcpvault-token": token }, body: JSON.stringify(body) });
    assert.strictEqual(text.forward.params.arguments.note, v);
  }
  // a lone surrogate is no Unicode text: JSON.stringify writes it as an escape (refused by the parser), and one raw
  // in a body's text is refused before it crosses (it would arrive as U+FFFD: the guard would decide another body)
  for (const lone of ["y".repeat(40) + "\uD800" + "z", "\uDC00", "y".repeat(40) + "\uDFFF"]) {
    const escaped = await g.decide({ httpMethod: "POST", headers: { "x-mcpvault-token": token }, body: callMsg("db_query", { max_rows: 5, note: lone }) });
    assert.strictEqual(g.errorOf(escaped).code, "invalid_request");
    const raw = JSON.stringify(callMsg("db_query", { max_rows: 5, note: "LONE" })).replace("LONE", lone);
    const refused = await g.decide({ httpMethod: "POST", headers: { "x-mcpvault-token": token }, body: raw });
    assert.strictEqual(refused.allowed, false);
    assert.strictEqual(g.errorOf(refused).code, "invalid_request");
  }
  // a token with a character beyond ASCII in its header is presented (and malformed), never dropped
  const bad = await g.decide({ httpMethod: "POST", headers: { "x-mcpvault-token": token.slice(0, 40) + "é" + token.slice(40) }, body: callMsg("db_query", {}) });
  assert.strictEqual(g.errorOf(bad).code, "malformed_token");
});

test("the guard reads a plain header object's keys in any case: lowercase first, then the first other spelling", async () => {
  const g = new Guard({ publicKey: keys.publicKey, audience: "db-server", now: () => NOW });
  const body = callMsg("db_query", { max_rows: 5 });
  const decide = (headers) => g.decide({ httpMethod: "POST", headers, body });
  assert.strictEqual((await decide({ "X-MCPVault-Token": token })).allowed, true);
  assert.strictEqual((await decide({ AUTHORIZATION: `Bearer ${token}` })).token_source, "bearer");
  // the lowercase key is the header; another spelling of it is not read
  assert.strictEqual((await decide({ "X-Mcpvault-Token": "garbage", "x-mcpvault-token": token })).allowed, true);
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": "garbage", "X-Mcpvault-Token": token })).code, "malformed_token");
  // two other spellings: the first
  assert.strictEqual(g.errorOf(await decide({ "X-MCPVAULT-TOKEN": "garbage", "X-Mcpvault-Token": token })).code, "malformed_token");
  // an array is the values joined (two tokens: refused); a value that is no string is no header
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": [token, token] })).code, "invalid_request");
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": 5 })).code, "missing_token");
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": 5, "X-MCPVault-Token": token })).code, "missing_token");
  // Mcp-Method in another case is still held to the body
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": token, "MCP-Method": "tools/list" })).code, "invalid_request");
  // a fetch Headers object
  assert.strictEqual((await decide(new Headers({ "X-MCPVault-Token": token }))).allowed, true);
  // a header a getter or the prototype holds is read, as one property of its name is
  class Getter {
    get ["x-mcpvault-token"]() {
      return token;
    }
  }
  assert.strictEqual((await decide(new Getter())).allowed, true);
  assert.strictEqual((await decide(Object.create({ "x-mcpvault-token": token }))).allowed, true);
  // the name itself holding undefined, before another spelling: the first spelling decides (no header)
  assert.strictEqual(g.errorOf(await decide({ "x-mcpvault-token": undefined, "X-MCPVault-Token": token })).code, "missing_token");
  assert.strictEqual((await decide({ "X-MCPVault-Token": token, "x-mcpvault-token": undefined })).allowed, true);
});

test("decideNow answers without a promise when nothing asynchronous is needed; decisions are read on demand", async () => {
  const g = new Guard({ publicKey: keys.publicKey, audience: "db-server", now: () => NOW });
  const headers = { "x-mcpvault-token": token };
  const now = g.decideNow({ httpMethod: "POST", headers, body: callMsg("db_query", { max_rows: 5 }) });
  assert.strictEqual(typeof now.then, "undefined");
  assert.strictEqual(now.allowed, true);
  assert.strictEqual(now.token, token);
  assert.strictEqual(now.decisions, undefined);
  assert.strictEqual(g.decisionsOf(now)[0].tool, "db_query");
  assert.strictEqual(now.decisions[0].allowed, true);
  // a refusal: errorOf reads them
  const no = g.decideNow({ httpMethod: "POST", headers, body: callMsg("admin_delete", {}) });
  assert.strictEqual(g.errorOf(no).code, "tool_not_allowed");
  // decide() resolves to the same outcome with its decisions read
  const full = await g.decide({ httpMethod: "POST", headers, body: callMsg("db_query", { max_rows: 5 }) });
  // the same outcome (the first decision verified the chain, this one found it cached)
  assert.deepStrictEqual(full.decisions.map((d) => ({ ...d, cache_hit: true })), now.decisions.map((d) => ({ ...d, cache_hit: true })));
  assert.deepStrictEqual({ ...full, decisions: null }, { ...now, decisions: null });
  // with a store: a promise, and the decisions are there
  const stored = new Guard({ publicKey: keys.publicKey, audience: "db-server", now: () => NOW, store: new MemoryStore() });
  const pending = stored.decideNow({ httpMethod: "POST", headers, body: callMsg("db_query", { max_rows: 5 }) });
  assert.strictEqual(typeof pending.then, "function");
  assert.strictEqual((await pending).allowed, true);
  assert.strictEqual(stored.decisionsOf(await pending).length, 1);
  // a copy of an outcome whose decisions were not read: reading them fails, never "no refusal"
  const copy = structuredClone(g.decideNow({ httpMethod: "POST", headers, body: callMsg("admin_delete", {}) }));
  assert.throws(() => g.errorOf(copy), TypeError);
  // a bad clock throws now, and rejects from decide()
  assert.throws(() => g.decideNow({ headers, body: callMsg("db_query", {}), now: -1 }), (e) => e.code === "invalid_request");
  await assert.rejects(g.decide({ headers, body: callMsg("db_query", {}), now: -1 }), (e) => e.code === "invalid_request");
});

test("without the runtime's own TextEncoder.encodeInto, long strings take wasm-bindgen's path and arrive intact", async () => {
  const { spawnSync } = await import("node:child_process");
  const script = `
    delete TextEncoder.prototype.encodeInto;
    const { MCPVault, Guard } = require("mcpvault");
    const vault = new MCPVault();
    const keys = vault.generateKeypair();
    const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "i", subject: "s" });
    const g = new Guard({ publicKey: keys.publicKey });
    const notes = ["é".repeat(40), "y".repeat(40) + "😀" + "€", "z".repeat(5000) + "é"];
    for (const note of notes) {
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: { note } } });
      const o = g.decideNow({ headers: { "x-mcpvault-token": token }, body });
      if (!o.allowed || o.forward.params.arguments.note !== note || o.token !== token) throw new Error("changed: " + note.slice(0, 20));
    }
    console.log("ok");
  `;
  const r = spawnSync(process.execPath, ["-e", script], { cwd: new URL("..", import.meta.url), encoding: "utf8" });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(r.stdout.trim(), "ok");
});

test("authorizeCall keeps nothing, so it allows nothing that must be kept: a single-use token, a proof and a quota are refused", () => {
  const plain = { publicKey: keys.publicKey, vault };
  const grant = { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a" };
  const once = vault.mint(keys.privateKey, { ...grant, singleUse: true });
  for (let i = 0; i < 3; i++) {
    assert.strictEqual(authorizeCall(once, { tool: "db_query", arguments: {} }, plain).code, "replayed", `single use, try ${i}`);
  }
  const holder = vault.generateKeypair();
  const bound = vault.mint(keys.privateKey, { ...grant, holder: holder.publicKey });
  const proof = vault.signCall(holder.privateKey, bound, { tool: "db_query", arguments: {} });
  const proved = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: {}, _meta: { "mcpvault/proof": proof } } };
  assert.strictEqual(authorizeCall(bound, proved, plain).code, "replayed");
  const rated = vault.mint(keys.privateKey, { ...grant, rate: { max: 5, period: 60 } });
  assert.strictEqual(authorizeCall(rated, { tool: "db_query", arguments: {} }, plain).code, "rate_limited");
  // a plain token: allowed
  assert.ok(!(authorizeCall(vault.mint(keys.privateKey, grant), { tool: "db_query", arguments: {} }, plain) instanceof McpVaultError));
});
