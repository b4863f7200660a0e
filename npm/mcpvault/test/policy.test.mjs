// Scopes in grants, restrictions and facts; the server's policy (mappings, toolMappings, rules) in the Guard and the
// function API; bad policies refused when the guard is built. Every decision is the core's (SCHEMA.md, "Server policy").
import test from "node:test";
import assert from "node:assert";
import { MCPVault, McpVaultError, Guard, authorizeCall } from "mcpvault";

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const mint = (grant) => vault.mint(keys.privateKey, { ttl: 600, issuer: "auth-server", subject: "agent-a", ...grant });
const callMsg = (name, args = {}, id = 1) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } });
const decide = (g, token, name, args) => g.decide({ headers: { authorization: `Bearer ${token}` }, body: callMsg(name, args), now: NOW });

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

const throwsCode = (f, code, re) => assert.throws(f, (e) => e instanceof McpVaultError && e.code === code && (!re || re.test(e.message)));

test("mint with scopes: a call the server maps to a granted scope verifies; facts name scopes and the scope", () => {
  const token = mint({ scopes: ["filesystem:files:read"] });
  const facts = vault.verify(token, keys.publicKey, { tool: "read_file", scope: "filesystem:files:read" });
  assert.deepStrictEqual([facts.tools, facts.scopes, facts.scope, facts.tool], [[], ["filesystem:files:read"], "filesystem:files:read", "read_file"]);
  throwsCode(() => vault.verify(token, keys.publicKey, { tool: "read_file", scope: "filesystem:files:write" }), "tool_not_allowed");
  throwsCode(() => vault.verify(token, keys.publicKey, { tool: "read_file" }), "tool_not_allowed");
  // tools and scopes together; no scopes key when none is granted, no scope key when none is asked
  const both = mint({ tools: ["db_query"], scopes: ["filesystem:files:read"] });
  const f = vault.verify(both, keys.publicKey, { tool: "db_query" });
  assert.deepStrictEqual([f.tools, f.scopes, "scope" in f], [["db_query"], ["filesystem:files:read"], false]);
  assert.ok(!("scopes" in vault.verify(mint({ tools: ["db_query"] }), keys.publicKey, { tool: "db_query" })));
  // a grant needs a tool or a scope; scopes are checked names
  throwsCode(() => mint({}), "invalid_request", /at least one tool or scope/);
  throwsCode(() => mint({ scopes: ["has space"] }), "invalid_request", /1-128 characters/);
});

test("attenuate narrows scopes; a tools restriction without scopes keeps none", () => {
  const root = mint({ tools: ["db_query"], scopes: ["filesystem:files:read", "filesystem:files:write"] });
  const warnings = [];
  const narrow = vault.attenuate(root, { scopes: ["filesystem:files:read", "mail:send"] }, { onWarning: (w) => warnings.push(w) });
  assert.deepStrictEqual(vault.verify(narrow, keys.publicKey, { tool: "read_file", scope: "filesystem:files:read" }).scopes, ["filesystem:files:read"]);
  for (const scope of ["filesystem:files:write", "mail:send"]) {
    throwsCode(() => vault.verify(narrow, keys.publicKey, { tool: "write_file", scope }), "tool_not_allowed");
  }
  const toolsOnly = vault.attenuate(root, { tools: ["db_query"] });
  assert.deepStrictEqual(vault.verify(toolsOnly, keys.publicKey, { tool: "db_query" }).tools, ["db_query"]);
  throwsCode(() => vault.verify(toolsOnly, keys.publicKey, { tool: "read_file", scope: "filesystem:files:read" }), "tool_not_allowed");
});

test("Guard with mappings and toolMappings: by the mapped scope, the highest priority first, else TOOL:call", async () => {
  const g = new Guard({ publicKey: keys.publicKey, ...POLICY });
  const token = mint({ scopes: ["filesystem:files:read", "filesystem:files:write:sandbox", "db_query:call"] });
  const cases = [
    ["read_file", { path: "/srv/a" }, true, "filesystem:files:read"],
    ["write_file", { path: "/tmp/a" }, true, "filesystem:files:write:sandbox"],
    ["write_file", { path: "/home/a" }, false, undefined], // maps to filesystem:files:write, not granted
    ["db_query", { sql: "select 1" }, true, "db_query:call"], // unmapped: TOOL:call
    ["admin_delete", {}, false, undefined],
  ];
  for (const [tool, args, allowed, scope] of cases) {
    const out = await decide(g, token, tool, args);
    const [d] = g.decisionsOf(out);
    assert.strictEqual(out.allowed, allowed, tool);
    assert.strictEqual(d.scope, scope, tool);
    if (!allowed) assert.deepStrictEqual([d.code, out.status], ["tool_not_allowed", 403], tool);
    else assert.strictEqual(g.factsOf(out).scope, scope);
  }
  // the tool itself still passes whatever its mapping
  assert.ok((await decide(g, mint({ tools: ["write_file"] }), "write_file", { path: "/home/a" })).allowed);
});

test("Guard rules: hard refuses with rule_violation (403, no challenge); soft allows and is named", async () => {
  const g = new Guard({ publicKey: keys.publicKey, ...POLICY });
  const token = mint({ tools: ["read_file", "write_file"] });
  const hard = await decide(g, token, "read_file", { path: "/etc/passwd" });
  const [d] = g.decisionsOf(hard);
  assert.deepStrictEqual([hard.allowed, hard.status, d.code, hard.headers], [false, 403, "rule_violation", {}]);
  assert.match(d.message, /no-etc.*system files are off limits/);
  assert.strictEqual(hard.response.error.data.code, "rule_violation");
  const err = g.errorOf(hard);
  assert.ok(err instanceof McpVaultError && err.code === "rule_violation");
  const soft = await decide(g, token, "write_file", { path: "/tmp/app.log", size: 5000 });
  assert.deepStrictEqual([soft.allowed, g.decisionsOf(soft)[0].softRules], [true, ["big-write", "log-file"]]);
  const quiet = await decide(g, token, "write_file", { path: "/tmp/app.txt", size: 5 });
  assert.ok(quiet.allowed && !("softRules" in g.decisionsOf(quiet)[0]));
  // the token's refusal comes first
  const refused = await decide(g, mint({ tools: ["db_query"] }), "read_file", { path: "/etc/passwd" });
  assert.strictEqual(g.decisionsOf(refused)[0].code, "tool_not_allowed");
});

test("the function API takes the policy: authorizeCall by mapped scope and rule", () => {
  const token = mint({ scopes: ["filesystem:files:read"] });
  const opts = { publicKey: keys.publicKey, vault, ...POLICY };
  const facts = authorizeCall(token, { tool: "read_file", arguments: { path: "/srv/a" } }, opts);
  assert.ok(!(facts instanceof McpVaultError), String(facts?.message));
  assert.strictEqual(facts.scope, "filesystem:files:read");
  assert.strictEqual(authorizeCall(token, { tool: "read_file", arguments: { path: "/etc/x" } }, opts).code, "rule_violation");
  assert.strictEqual(authorizeCall(token, { tool: "read_file", arguments: { path: "/srv/a" } }, { publicKey: keys.publicKey, vault }).code, "tool_not_allowed");
});

test("the dry run names the scope, the mapping, the soft rules and the refusing rule", async () => {
  const g = new Guard({ publicKey: keys.publicKey, checkTool: true, ...POLICY });
  const token = mint({ tools: ["read_file"], scopes: ["filesystem:files:write:sandbox"] });
  const ask = async (tool, args) => {
    const out = await decide(g, token, "mcpvault.check", { tool, arguments: args });
    return out.answers[0].result.structuredContent;
  };
  const a = await ask("write_file", { path: "/tmp/a.log" });
  assert.deepStrictEqual([a.allowed, a.scope, a.mapping, a.softRules], [true, "filesystem:files:write:sandbox", "tool_mappings[0]", ["log-file"]]);
  const b = await ask("read_file", { path: "/etc/shadow" });
  assert.deepStrictEqual([b.allowed, b.code, b.rule], [false, "rule_violation", "no-etc"]);
});

test("a bad policy throws when the Guard is built, naming what is wrong", () => {
  const bad = [
    [{ rules: [{ id: "r", enforcement: "hard", when: { path: { startswith: "/" } } }] }, /startswith/],
    [{ rules: [{ id: "r", enforcement: "hard", when: { path: { glob: "a[b" } } }] }, /glob|\[/],
    [{ rules: [{ id: "r", enforcement: "hard" }, { id: "r", enforcement: "soft" }] }, /two rules have the id "r"/],
    [{ rules: [{ id: "r", enforcement: "maybe" }] }, /maybe/],
    [{ rules: [{ id: "r", enforcement: "hard", when: { path: {} } }] }, /empty/],
    [{ mappings: { read_file: "not a scope" } }, /scope/],
    [{ toolMappings: [{ tool: "write_file" }] }, /scope/],
  ];
  for (const [policy, re] of bad) {
    assert.throws(() => new Guard({ publicKey: keys.publicKey, ...policy }),
      (e) => e instanceof McpVaultError && e.code === "invalid_request" && re.test(e.message), JSON.stringify(policy));
  }
});

test("resources and prompts: granted by name or prefix, never open by default; a server may open them", async () => {
  const token = mint({ tools: ["db_query"], resources: ["file:///docs/"], prompts: ["summarize"] });
  const f = vault.verify(token, keys.publicKey, { method: "resources/read", resource: "file:///docs/a.md" });
  assert.deepStrictEqual([f.resources, f.prompts], [[["file:///docs/*"]], ["summarize"]]);
  assert.ok(vault.verify(token, keys.publicKey, { method: "prompts/get", prompt: "summarize" }).verified);
  throwsCode(() => vault.verify(token, keys.publicKey, { method: "resources/read", resource: "file:///secret" }), "resource_not_allowed");
  throwsCode(() => vault.verify(token, keys.publicKey, { method: "prompts/get", prompt: "translate" }), "prompt_not_allowed");
  const narrow = vault.attenuate(token, { resources: ["file:///docs/public/"] });
  throwsCode(() => vault.verify(narrow, keys.publicKey, { method: "resources/read", resource: "file:///docs/a.md" }), "resource_not_allowed");
  const plain = mint({ tools: ["db_query"] });
  const f2 = vault.verify(plain, keys.publicKey, { tool: "db_query" });
  assert.ok(!("resources" in f2) && !("prompts" in f2));
  const read = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri: "file:///any" } });
  const input = { headers: { authorization: `Bearer ${plain}` }, body: read, now: NOW };
  assert.strictEqual((await new Guard({ publicKey: keys.publicKey }).decide(input)).decisions[0].code, "resource_not_allowed");
  assert.ok((await new Guard({ publicKey: keys.publicKey, openResources: true }).decide(input)).allowed);
});
