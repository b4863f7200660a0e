// The server's policy (mappings, toolMappings, rules) and onSoftRule in the middleware, on Express 4 and 5.
import test from "node:test";
import assert from "node:assert";
import request from "supertest";
import express4 from "express4";
import express5 from "express5";
import { MCPVault } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";

const vault = new MCPVault();
const keys = vault.generateKeypair();
const mint = (grant) => vault.mint(keys.privateKey, { ttl: 600, issuer: "auth-server", subject: "agent-a", ...grant });
const call = (name, args = {}, id = 1) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });

const POLICY = {
  mappings: { read_file: "filesystem:files:read" },
  toolMappings: [
    { tool: "write_file", service: "filesystem", scope: "files:write:sandbox", when: { path: { startsWith: "/tmp/" } }, priority: 10 },
    { tool: "write_file", service: "filesystem", scope: "files:write" },
  ],
  rules: [
    { id: "no-etc", tool: "read_file", when: { path: { startsWith: "/etc/" } }, enforcement: "hard", message: "system files are off limits" },
    { id: "big-write", tool: "write_file", when: { size: { gt: 1000 } }, enforcement: "soft" },
    { id: "log-file", when: { path: { glob: "*.log" } }, enforcement: "soft" },
  ],
};

function app(express, options = {}) {
  const a = express();
  a.use(express.json());
  const decisions = [];
  const soft = [];
  const seen = [];
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, ...POLICY, onDecision: (d) => decisions.push(d),
    onSoftRule: (d) => soft.push(d), ...options });
  a.post("/mcp", auth(), (req, res) => {
    seen.push({ body: req.body, facts: req.mcpvaultFacts, auth: req.auth });
    res.json({ ok: true });
  });
  a.post("/write", auth("write_file"), (req, res) => res.json({ ok: true, scope: req.mcpvaultFacts.scope }));
  return { app: a, decisions, soft, seen };
}

for (const [name, express] of [["Express 4", express4], ["Express 5", express5]]) {
  test(`${name}: allowed by the mapped scope, refused by an unmapped one; req.auth.scopes has the granted scopes`, async () => {
    const { app: a, seen, decisions } = app(express);
    const token = mint({ tools: ["db_query"], scopes: ["filesystem:files:read", "filesystem:files:write:sandbox"] });
    const post = (body) => request(a).post("/mcp").set("Authorization", `Bearer ${token}`).send(body);
    assert.strictEqual((await post(call("read_file", { path: "/srv/a" }))).status, 200);
    assert.strictEqual((await post(call("write_file", { path: "/tmp/a" }))).status, 200);
    assert.deepStrictEqual(seen.map((s) => s.facts.scope), ["filesystem:files:read", "filesystem:files:write:sandbox"]);
    assert.deepStrictEqual(seen[0].auth.scopes, ["db_query", "filesystem:files:read", "filesystem:files:write:sandbox"]);
    const refused = await post(call("write_file", { path: "/home/a" }));
    assert.strictEqual(refused.status, 403);
    assert.strictEqual(refused.body.error.data.code, "tool_not_allowed");
    assert.match(refused.headers["www-authenticate"], /insufficient_scope/);
    assert.deepStrictEqual(decisions.map((d) => [d.allowed, d.scope]),
      [[true, "filesystem:files:read"], [true, "filesystem:files:write:sandbox"], [false, undefined]]);
    // a one-tool route maps its plain body the same way
    const w = await request(a).post("/write").set("Authorization", `Bearer ${token}`).send({ path: "/tmp/b" });
    assert.deepStrictEqual([w.status, w.body.scope], [200, "filesystem:files:write:sandbox"]);
  });

  test(`${name}: a hard rule is a 403 with a JSON-RPC rule_violation error and no WWW-Authenticate`, async () => {
    const { app: a, seen, decisions, soft } = app(express);
    const token = mint({ tools: ["read_file", "write_file"] });
    const res = await request(a).post("/mcp").set("Authorization", `Bearer ${token}`).send(call("read_file", { path: "/etc/passwd" }, 9));
    assert.strictEqual(res.status, 403);
    assert.strictEqual(res.headers["www-authenticate"], undefined);
    assert.deepStrictEqual([res.body.jsonrpc, res.body.id, res.body.error.code, res.body.error.data.code], ["2.0", 9, -32013, "rule_violation"]);
    assert.match(res.body.error.message, /no-etc.*system files are off limits/);
    assert.strictEqual(seen.length, 0);
    assert.deepStrictEqual(decisions.map((d) => [d.allowed, d.code]), [[false, "rule_violation"]]);
    assert.strictEqual(soft.length, 0);
  });

  test(`${name}: soft rules allow; onDecision and onSoftRule hear them, once per allowed decision`, async () => {
    const { app: a, seen, decisions, soft } = app(express);
    const token = mint({ tools: ["write_file"] });
    const post = (body) => request(a).post("/mcp").set("Authorization", `Bearer ${token}`).send(body);
    assert.strictEqual((await post(call("write_file", { path: "/tmp/app.log", size: 5000 }))).status, 200);
    assert.strictEqual((await post(call("write_file", { path: "/tmp/app.txt", size: 1 }))).status, 200);
    assert.strictEqual(seen.length, 2);
    assert.deepStrictEqual(decisions.map((d) => d.softRules), [["big-write", "log-file"], undefined]);
    assert.deepStrictEqual(soft, [decisions[0]]);
    // a batch: one call per message, onSoftRule for each allowed one whose soft rules fired
    const batch = await post([call("write_file", { path: "/tmp/a.log" }, 1), call("write_file", { path: "/tmp/b" }, 2),
      call("write_file", { path: "/tmp/c", size: 2000 }, 3)]);
    assert.strictEqual(batch.status, 200);
    assert.deepStrictEqual(soft.slice(1).map((d) => [d.requestId, d.softRules]), [["1", ["log-file"]], ["3", ["big-write"]]]);
  });
}

test("onSoftRule observes only: what it throws is logged and the request goes on", async () => {
  const { app: a, seen } = app(express5, { onSoftRule: () => { throw new Error("hook failed"); } });
  const logged = [];
  const error = console.error;
  console.error = (...x) => logged.push(x.map(String).join(" "));
  try {
    const res = await request(a).post("/mcp").set("Authorization", `Bearer ${mint({ tools: ["write_file"] })}`)
      .send(call("write_file", { path: "/tmp/app.log" }));
    assert.strictEqual(res.status, 200);
  } finally {
    console.error = error;
  }
  assert.strictEqual(seen.length, 1);
  assert.ok(logged.some((l) => l.includes("mcpvault-express: onSoftRule threw") && l.includes("hook failed")), logged.join("\n"));
});

test("a bad policy throws when the middleware is created, naming what is wrong", () => {
  for (const [policy, re] of [
    [{ rules: [{ id: "r", enforcement: "hard", when: { path: { startswith: "/" } } }] }, /unknown field `startswith`/],
    [{ rules: [{ id: "r", enforcement: "hard", when: { path: { glob: "a[b" } } }] }, /glob|\[/],
    [{ rules: [{ id: "r", enforcement: "hard" }, { id: "r", enforcement: "soft" }] }, /two rules have the id "r"/],
    [{ mappings: { read_file: "no spaces allowed" } }, /scope/],
    [{ onSoftRule: "log" }, /onSoftRule must be a function/],
  ]) {
    assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, ...policy }),
      (e) => e instanceof TypeError && e.message.startsWith("mcpvault-express: ") && re.test(e.message), JSON.stringify(policy));
  }
  // a bad key is still named as the key
  assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: "abcd", ...POLICY }), /mcpvault-express: publicKeyHex: invalid key/);
});

test("resources and prompts: refused unless granted; openResources/openPrompts open them to tokens that grant none", async () => {
  const read = (uri) => ({ jsonrpc: "2.0", id: 3, method: "resources/read", params: { uri } });
  const get = (name) => ({ jsonrpc: "2.0", id: 4, method: "prompts/get", params: { name } });
  const plain = mint({ tools: ["db_query"] });
  const granted = mint({ tools: ["db_query"], resources: ["file:///docs/"], prompts: ["greeting"] });
  const closed = app(express5).app;
  const opened = app(express5, { openResources: true, openPrompts: true }).app;
  const post = (a, token, body) => request(a).post("/mcp").set("Authorization", `Bearer ${token}`).send(body);
  const r1 = await post(closed, plain, read("file:///docs/a"));
  assert.deepStrictEqual([r1.status, r1.body.error.data.code], [403, "resource_not_allowed"]);
  assert.strictEqual((await post(closed, granted, read("file:///docs/a"))).status, 200);
  assert.strictEqual((await post(closed, granted, read("file:///etc/passwd"))).body.error.data.code, "resource_not_allowed");
  assert.strictEqual((await post(closed, plain, get("greeting"))).body.error.data.code, "prompt_not_allowed");
  assert.strictEqual((await post(opened, plain, read("file:///anything"))).status, 200);
  assert.strictEqual((await post(opened, plain, get("anything"))).status, 200);
  assert.strictEqual((await post(opened, granted, read("file:///etc/passwd"))).status, 403);
  assert.throws(() => createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, openPrompts: 1 }), /mcpvault-express: openPrompts must be true or false/);
});
