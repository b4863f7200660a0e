// The plain middleware on Express 4 and 5, through supertest.
import test from "node:test";
import assert from "node:assert";
import http from "node:http";
import request from "supertest";
import express4 from "express4";
import express5 from "express5";
import { MCPVault, toolHashes } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";

const vault = new MCPVault();
const keys = vault.generateKeypair();
const now = () => Math.floor(Date.now() / 1000);
const mint = (extra = {}, at = now()) => vault.mint(keys.privateKey, {
  tools: ["db_query", "file_read"], ttl: 600, issuer: "auth-server", subject: "agent-a",
  argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }], ...extra,
}, { now: at });
const token = mint();
const call = (name, args = {}, meta) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args, ...(meta && { _meta: meta }) } });

function app(express, { options = {}, tool, parser = true } = {}) {
  const a = express();
  if (parser) a.use(express.json());
  const decisions = [];
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, onDecision: (d) => decisions.push(d), ...options });
  const seen = [];
  const answer = (req, res) => {
    seen.push({ body: req.body, facts: req.mcpvaultFacts, auth: req.auth });
    res.json({ ok: true, facts: req.mcpvaultFacts });
  };
  a.post("/mcp", auth(tool), answer);
  a.get("/mcp", auth(tool), answer);
  return { app: a, decisions, seen };
}

for (const [name, express] of [["Express 4", express4], ["Express 5", express5]]) {
  test(`${name}: allowed, with req.mcpvaultFacts and req.auth in the MCP SDK's AuthInfo shape`, async () => {
    const { app: a, seen, decisions } = app(express);
    const res = await request(a).post("/mcp").set("Authorization", `Bearer ${token}`).send(call("db_query", { max_rows: 100 }));
    assert.strictEqual(res.status, 200);
    assert.strictEqual(res.body.facts.verified, true);
    assert.strictEqual(res.body.facts.tool, "db_query");
    const { auth, facts } = seen[0];
    assert.deepStrictEqual(
      { token: auth.token, clientId: auth.clientId, scopes: auth.scopes, expiresAt: auth.expiresAt },
      { token, clientId: "agent-a", scopes: ["db_query", "file_read"], expiresAt: facts.expiresAt },
    );
    assert.strictEqual(auth.extra.mcpvault, facts);
    assert.deepStrictEqual(decisions.map((d) => [d.allowed, d.code, d.status, d.method, d.tool, d.requestId, d.tokenSource, d.subject]),
      [[true, null, 200, "tools/call", "db_query", "1", "bearer", "agent-a"]]);
  });

  test(`${name}: refusals carry the HTTP status, the challenge and a JSON-RPC error`, async () => {
    const { app: a, decisions, seen } = app(express, { options: { audience: "db-server" } });
    const aud = mint({ audience: "db-server" });
    const cases = [
      ["no token", undefined, call("db_query", { max_rows: 1 }), 401, "missing_token", "invalid_token"],
      ["garbage", "garbage", call("db_query", { max_rows: 1 }), 401, "malformed_token", "invalid_token"],
      ["expired", mint({ audience: "db-server" }, now() - 3600), call("db_query", { max_rows: 1 }), 401, "expired", "invalid_token"],
      ["other key", new MCPVault().mint(new MCPVault().generateKeypair().privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" }),
        call("db_query", { max_rows: 1 }), 401, "bad_signature", "invalid_token"],
      ["wrong tool", aud, call("admin_delete"), 403, "tool_not_allowed", "insufficient_scope"],
      ["argument", aud, call("db_query", { max_rows: 1000 }), 403, "argument_not_allowed", "insufficient_scope"],
      ["wrong audience", mint({ audience: "mail-server" }), call("db_query", { max_rows: 1 }), 401, "wrong_audience", "invalid_token"],
      ["no audience", token, call("db_query", { max_rows: 1 }), 200, null, null],
      ["not JSON-RPC", aud, { sql: "x" }, 400, "invalid_request", null],
      ["arguments not an object", aud, call("db_query", [1]), 400, "invalid_request", null],
    ];
    for (const [what, t, body, status, code, scheme] of cases) {
      let r = request(a).post("/mcp");
      if (t) r = r.set("X-MCPVault-Token", t);
      const res = await r.send(body);
      assert.strictEqual(res.status, status, what);
      if (status === 200) continue;
      assert.deepStrictEqual([res.body.jsonrpc, res.body.id, res.body.error.data.code], ["2.0", body.id ?? null, code], what);
      const www = res.headers["www-authenticate"];
      if (code === "missing_token") assert.strictEqual(www, 'Bearer realm="mcpvault"', "RFC 6750: no error without a token");
      else if (scheme) assert.match(www, new RegExp(`^Bearer realm="mcpvault", error="${scheme}"`), what);
      else assert.strictEqual(www, undefined, what);
      if (scheme === "insufficient_scope") assert.ok(www.includes(`scope="${body.params.name}"`), what);
      if (t) assert.ok(!res.text.includes(t), `${what}: no token in the answer`);
    }
    assert.strictEqual(seen.length, 1, "only the allowed request reached the route");
    assert.strictEqual(decisions.filter((d) => !d.allowed).length, cases.length - 1);
    assert.ok(decisions.every((d) => !JSON.stringify(d).includes("facts") || d.allowed));
  });

  test(`${name}: token order: X-MCPVault-Token, Bearer, _meta.token, _meta["mcpvault/token"]; removed from the body`, async () => {
    const { app: a, seen, decisions } = app(express);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).set("Authorization", "Bearer garbage").send(call("file_read")).expect(200);
    // a header token and another one in _meta: refused, whichever would have passed
    await request(a).post("/mcp").set("Authorization", "Bearer garbage").send(call("file_read", {}, { token })).expect(400);
    await request(a).post("/mcp").send(call("file_read", {}, { token, progressToken: 1 })).expect(200);
    await request(a).post("/mcp").send(call("file_read", {}, { "mcpvault/token": token })).expect(200);
    assert.deepStrictEqual(decisions.map((d) => d.tokenSource), ["header", null, "_meta.token", "_meta.mcpvault/token"]);
    assert.deepStrictEqual(seen[1].body.params._meta, { progressToken: 1 });
    assert.strictEqual(seen[2].body.params._meta, undefined);
    for (const s of seen.slice(1)) assert.ok(!JSON.stringify(s.body).includes(token));
  });

  test(`${name}: other MCP methods need a valid token, no tool grant; GET streams too`, async () => {
    const { app: a } = app(express);
    const init = { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "c", version: "1" } } };
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send(init).expect(200);
    await request(a).post("/mcp").send(init).expect(401);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send({ jsonrpc: "2.0", method: "notifications/initialized" }).expect(200);
    await request(a).get("/mcp").set("X-MCPVault-Token", token).expect(200);
    await request(a).get("/mcp").expect(401);
    const batch = [init, call("admin_delete")];
    const res = await request(a).post("/mcp").set("X-MCPVault-Token", token).send(batch);
    assert.strictEqual(res.status, 403, "a batch is refused when any message is");
  });

  test(`${name}: auth("tool") serves one tool; a plain body is its arguments`, async () => {
    const { app: a } = app(express, { tool: "db_query" });
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send({ max_rows: 50 }).expect(200);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send({ max_rows: 500 }).expect(403);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send(call("db_query", { max_rows: 5 })).expect(200);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send(call("file_read")).expect(400);
    const narrow = vault.attenuate(token, { tools: ["file_read"] });
    await request(a).post("/mcp").set("X-MCPVault-Token", narrow).send({ max_rows: 5 }).expect(403);
  });

  test(`${name}: without a body parser the middleware reads the body itself; unreadable bodies are decided and reported`, async () => {
    const { app: a, seen, decisions } = app(express, { parser: false });
    await request(a).post("/mcp").set("X-MCPVault-Token", token).set("Content-Type", "application/json")
      .send(JSON.stringify(call("db_query", { max_rows: 2 }))).expect(200);
    assert.strictEqual(seen[0].body.params.name, "db_query");
    await request(a).post("/mcp").set("X-MCPVault-Token", token).set("Content-Type", "application/json").send("{oops").expect(400);
    const small = app(express, { parser: false, options: { maxBodyBytes: 64 } }).app;
    await request(small).post("/mcp").set("X-MCPVault-Token", token).set("Content-Type", "application/json")
      .send(JSON.stringify(call("db_query", { max_rows: 2, pad: "x".repeat(200) }))).expect(400);
    // bytes that are not UTF-8, and arguments that are not an object: 400 invalid_request, the handler never runs
    const before = seen.length;
    const body = Buffer.from(JSON.stringify(call("file_read", { path: "/srv/Z" })));
    body[body.indexOf("Z")] = 0xff;
    const r = await request(a).post("/mcp").set("X-MCPVault-Token", token).set("Content-Type", "application/json")
      .serialize((b) => b).send(body).expect(400);
    assert.strictEqual(r.body.error.data.code, "invalid_request");
    assert.match(r.body.error.message, /UTF-8/);
    for (const args of [[1], "x", 5]) {
      const r2 = await request(a).post("/mcp").set("X-MCPVault-Token", token).set("Content-Type", "application/json")
        .send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "file_read", arguments: args } }));
      assert.strictEqual(r2.status, 400, JSON.stringify(args));
      assert.strictEqual(r2.body.error.data.code, "invalid_request");
    }
    assert.strictEqual(seen.length, before);
    // every refusal reached onDecision, the unreadable bodies too: not JSON, not UTF-8 (the too-large one is another app)
    const refused = decisions.filter((d) => !d.allowed).map((d) => d.message);
    assert.ok(refused.includes("invalid request: body is not JSON"), refused.join("; "));
    assert.ok(refused.includes("invalid request: body is not UTF-8"), refused.join("; "));
  });
}

test("options are checked when the middleware is created", () => {
  const ok = { publicKeyHex: keys.publicKey };
  assert.strictEqual(typeof createMcpVaultMiddleware(ok), "function");
  const bad = [
    undefined, {}, { publicKeyHex: "abcd" }, { publicKeyHex: "zz".repeat(32) }, { ...ok, audience: "" },
    { ...ok, onDecision: "log" }, { ...ok, cache: -1 }, { ...ok, now: 5 }, { ...ok, maxBodyBytes: 0 }, { ...ok, publicKey: "x" },
    { ...ok, store: {} }, { ...ok, store: { check() {}, complete() {}, appendAudit: 1 } }, { ...ok, retryWindow: -1 },
    { ...ok, replayStore: {} }, { ...ok, deferSpend: "yes" },
  ];
  for (const o of bad) assert.throws(() => createMcpVaultMiddleware(o), /^TypeError: mcpvault-express: /, JSON.stringify(o));
  assert.throws(() => createMcpVaultMiddleware(ok)(""), /tool must be a non-empty string/);
});

test("a throwing onDecision hook cannot change a decision", async () => {
  const a = express5();
  a.use(express5.json());
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, onDecision: () => { throw new Error("hook"); } });
  a.post("/mcp", auth(), (req, res) => res.json({ ok: true }));
  const orig = console.error;
  console.error = () => {};
  try {
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send(call("db_query", { max_rows: 1 })).expect(200);
    await request(a).post("/mcp").set("X-MCPVault-Token", token).send(call("admin_delete")).expect(403);
  } finally {
    console.error = orig;
  }
});

test("plain node:http works too", async () => {
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey })();
  const server = http.createServer((req, res) => auth(req, res, () => res.end(JSON.stringify(req.mcpvaultFacts))));
  await request(server).post("/").set("X-MCPVault-Token", token).set("Content-Type", "application/json")
    .send(JSON.stringify(call("file_read"))).expect(200);
  await request(server).post("/").set("Content-Type", "application/json").send(JSON.stringify(call("file_read"))).expect(401);
});

test("alone (no innerGuard) the middleware is the last guard: the dry-run tool is refused, pinned tools are checked against toolDefinitions; with innerGuard both go on to withMcpVault", async () => {
  const def = { name: "db_query", description: "Run a query", inputSchema: { type: "object" } };
  const hash = toolHashes({ tools: [def] }).db_query;
  const pinned = mint({ pin: { db_query: hash } });
  const dry = call("mcpvault.check", { tool: "db_query" });
  const alone = app(express5);
  const r1 = await request(alone.app).post("/mcp").set("Authorization", `Bearer ${token}`).send(dry);
  assert.deepStrictEqual([r1.status, r1.body.error.data.code], [400, "invalid_request"]);
  // no definitions given: a pinned call is refused (deny by default), never handed on unchecked
  const r2 = await request(alone.app).post("/mcp").set("Authorization", `Bearer ${pinned}`).send(call("db_query", { max_rows: 1 }));
  assert.deepStrictEqual([r2.status, r2.body.error.data.code], [403, "tool_definition_changed"]);
  assert.strictEqual(alone.seen.length, 0);
  // the server's definitions: the pinned call passes as pinned, not once the tool changed
  let current = { db_query: hash };
  const withDefs = app(express5, { options: { toolDefinitions: async () => current } });
  const r3 = await request(withDefs.app).post("/mcp").set("Authorization", `Bearer ${pinned}`).send(call("db_query", { max_rows: 1 }));
  assert.strictEqual(r3.status, 200);
  current = { db_query: "0".repeat(64) };
  const r4 = await request(withDefs.app).post("/mcp").set("Authorization", `Bearer ${pinned}`).send(call("db_query", { max_rows: 1 }));
  assert.deepStrictEqual([r4.status, r4.body.error.data.code], [403, "tool_definition_changed"]);
  // innerGuard: withMcpVault behind decides the dry run and the pins
  const paired = app(express5, { options: { innerGuard: true } });
  const r5 = await request(paired.app).post("/mcp").set("Authorization", `Bearer ${token}`).send(dry);
  const r6 = await request(paired.app).post("/mcp").set("Authorization", `Bearer ${pinned}`).send(call("db_query", { max_rows: 1 }));
  assert.deepStrictEqual([r5.status, r6.status, paired.seen.length], [200, 200, 2]);
  // options that contradict each other are refused at start-up
  assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, deferSpend: true, innerGuard: false }), /innerGuard/);
  assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, innerGuard: true, toolDefinitions: {} }), /toolDefinitions/);
  assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, toolDefinitions: [] }), /toolDefinitions/);
});
