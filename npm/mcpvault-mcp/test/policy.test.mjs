// The server's policy (issue 15) through withMcpVault and mcpvault-proxy, driven by the MCP SDK's real Client:
// calls allowed by the scope the server maps them to, refused by an unmapped one, hard rules as MCP errors
// (rule_violation), soft rules in onDecision and onSoftRule; bad policies refused at construction.
import test from "node:test";
import assert from "node:assert";
import express from "express5";
import { z } from "zod";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { withMcpVault, startProxy, checkConfig, ConfigError } from "mcpvault-mcp";
import { vault, keys, mcpError } from "./fixtures/servers.mjs";
import { makeUpstream } from "./fixtures/upstream.mjs";

/** The policy of the example, as @apoa/mcp writes it. */
export const POLICY = {
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

const mint = (grant) => vault.mint(keys.privateKey, { ttl: 600, issuer: "auth-server", subject: "agent-a", ...grant });

function fileServer(options) {
  const server = new McpServer({ name: "files", version: "1.0.0" });
  const ran = [];
  const tool = (name) => async (args, extra) => {
    ran.push({ name, args, scopes: extra.authInfo?.scopes, scope: extra.authInfo?.extra?.mcpvault?.scope });
    return { content: [{ type: "text", text: `${name} ok` }] };
  };
  server.registerTool("read_file", { inputSchema: { path: z.string() } }, tool("read_file"));
  server.registerTool("write_file", { inputSchema: { path: z.string(), size: z.number().optional() } }, tool("write_file"));
  server.registerTool("db_query", { inputSchema: { sql: z.string() } }, tool("db_query"));
  withMcpVault(server, options);
  return { server, ran };
}

async function connect(server) {
  const [c, s] = InMemoryTransport.createLinkedPair();
  await server.connect(s);
  const client = new Client({ name: "agent-b", version: "1.0.0" });
  await client.connect(c);
  return client;
}

test("withMcpVault with mappings, toolMappings and rules: a real SDK client sees the policy's answers", async (t) => {
  const decisions = [];
  const soft = [];
  const { server, ran } = fileServer({ publicKeyHex: keys.publicKey, ...POLICY, checkTool: true,
    onDecision: (d) => decisions.push(d), onSoftRule: (d) => soft.push(d) });
  const client = await connect(server);
  t.after(() => client.close());
  const token = mint({ scopes: ["filesystem:files:read", "filesystem:files:write:sandbox"] });
  const call = (name, args) => client.callTool({ name, arguments: args, _meta: { token } });

  // allowed by the mapped scope: simple mapping, then the conditional mapping with the higher priority
  assert.strictEqual((await call("read_file", { path: "/srv/a.txt" })).content[0].text, "read_file ok");
  assert.strictEqual((await call("write_file", { path: "/tmp/a.txt" })).content[0].text, "write_file ok");
  assert.deepStrictEqual(ran.map((r) => [r.name, r.scope]),
    [["read_file", "filesystem:files:read"], ["write_file", "filesystem:files:write:sandbox"]]);
  // the handler's authInfo.scopes: the granted tools (none), then the granted scopes
  assert.deepStrictEqual(ran[0].scopes, ["filesystem:files:read", "filesystem:files:write:sandbox"]);
  // refused by an unmapped (or not granted) scope: write_file outside /tmp maps to filesystem:files:write; db_query
  // has no mapping and maps to db_query:call
  assert.deepStrictEqual(await mcpError(call("write_file", { path: "/home/a.txt" })), { rpc: -32013, code: "tool_not_allowed" });
  assert.deepStrictEqual(await mcpError(call("db_query", { sql: "select 1" })), { rpc: -32013, code: "tool_not_allowed" });
  // a hard rule refuses a call the token allows, as an MCP error naming the rule
  const e = await call("read_file", { path: "/etc/passwd" }).then(() => assert.fail("allowed"), (x) => x);
  assert.deepStrictEqual([e.code, e.data?.code], [-32013, "rule_violation"]);
  assert.match(e.message, /no-etc.*system files are off limits/);
  assert.strictEqual(ran.length, 2, "a refused call reached its handler");
  // soft rules allow, and the decision names them: onDecision hears every decision, onSoftRule only these
  assert.strictEqual((await call("write_file", { path: "/tmp/app.log", size: 5000 })).content[0].text, "write_file ok");
  const last = decisions.at(-1);
  assert.deepStrictEqual([last.allowed, last.scope, last.softRules], [true, "filesystem:files:write:sandbox", ["big-write", "log-file"]]);
  assert.strictEqual(soft.length, 1);
  assert.strictEqual(soft[0], last);
  const calls = decisions.filter((d) => d.method === "tools/call");
  assert.deepStrictEqual(calls.map((d) => d.code ?? "ok"), ["ok", "ok", "tool_not_allowed", "tool_not_allowed", "rule_violation", "ok"]);
  // the dry run answers what the call would
  const dry = await call("mcpvault.check", { tool: "read_file", arguments: { path: "/etc/shadow" } });
  assert.deepStrictEqual([dry.structuredContent.allowed, dry.structuredContent.code, dry.structuredContent.rule],
    [false, "rule_violation", "no-etc"]);
  const dryOk = await call("mcpvault.check", { tool: "write_file", arguments: { path: "/tmp/x.log" } });
  assert.deepStrictEqual([dryOk.structuredContent.allowed, dryOk.structuredContent.scope, dryOk.structuredContent.mapping,
    dryOk.structuredContent.softRules], [true, "filesystem:files:write:sandbox", "tool_mappings[0]", ["log-file"]]);
  assert.strictEqual(soft.length, 1, "a dry run fired onSoftRule");
});

test("onSoftRule observes only: what it throws is logged and the call runs", async (t) => {
  const { server, ran } = fileServer({ publicKeyHex: keys.publicKey, rules: [{ id: "watch", enforcement: "soft" }],
    onSoftRule: () => { throw new Error("hook failed"); } });
  const client = await connect(server);
  t.after(() => client.close());
  const logged = [];
  const error = console.error;
  console.error = (...a) => logged.push(a.map(String).join(" "));
  try {
    const out = await client.callTool({ name: "db_query", arguments: { sql: "s" }, _meta: { token: mint({ tools: ["db_query"] }) } });
    assert.strictEqual(out.content[0].text, "db_query ok");
  } finally {
    console.error = error;
  }
  assert.strictEqual(ran.length, 1);
  assert.ok(logged.some((l) => l.includes("onSoftRule threw") && l.includes("hook failed")), logged.join("\n"));
});

test("tools/list shows a tool the token reaches only through its mapped scope", async (t) => {
  const { server } = fileServer({ publicKeyHex: keys.publicKey, ...POLICY });
  const client = await connect(server);
  t.after(() => client.close());
  const listed = await client.listTools({ _meta: { token: mint({ scopes: ["filesystem:files:read"] }) } });
  assert.deepStrictEqual(listed.tools.map((x) => x.name), ["read_file"]);
});

/** The bad policies every host refuses when it is built, and what the message names. */
export const BAD_POLICIES = [
  [{ rules: [{ id: "r", enforcement: "hard", when: { path: { startswith: "/" } } }] }, /unknown field `startswith`/],
  [{ rules: [{ id: "r", enforcement: "hard", when: { path: { glob: "a[b" } } }] }, /glob|\[/],
  [{ rules: [{ id: "r", enforcement: "hard" }, { id: "r", enforcement: "soft" }] }, /two rules have the id "r"/],
  [{ rules: [{ id: "r", enforcement: "always" }] }, /always/],
  [{ toolMappings: [{ tool: "write_file", scope: "bad scope" }] }, /scope "filesystem|scope "bad scope"/],
];

test("a bad policy throws when withMcpVault is applied, naming what is wrong", () => {
  for (const [policy, re] of BAD_POLICIES) {
    assert.throws(() => withMcpVault(new McpServer({ name: "x", version: "1" }), { publicKeyHex: keys.publicKey, ...policy }),
      (e) => e instanceof TypeError && e.message.startsWith("withMcpVault: ") && re.test(e.message), JSON.stringify(policy));
  }
  assert.throws(() => withMcpVault(new McpServer({ name: "x", version: "1" }), { publicKeyHex: keys.publicKey, onSoftRule: 1 }),
    /withMcpVault: onSoftRule must be a function/);
});

test("a bad policy in the proxy's config is a ConfigError", () => {
  const base = { publicKey: keys.publicKey, upstream: { command: "node", args: ["s.js"] } };
  for (const [policy, re] of BAD_POLICIES) {
    assert.throws(() => checkConfig({ ...base, ...policy }), (e) => e instanceof ConfigError && e.message.startsWith("config: ") && re.test(e.message),
      JSON.stringify(policy));
  }
  const ok = checkConfig({ ...base, ...POLICY });
  assert.deepStrictEqual([ok.mappings, ok.toolMappings, ok.rules], [POLICY.mappings, POLICY.toolMappings, POLICY.rules]);
});

test("the proxy with mappings and rules in its config: an HTTP client through the proxy to an unchanged server", async (t) => {
  // the upstream knows nothing of mcpvault: db_query, file_read, admin_delete
  const app = express();
  app.use(express.json());
  app.post("/mcp", async (req, res) => {
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
    mappings: { file_read: "filesystem:files:read" },
    rules: [
      { id: "no-etc", tool: "file_read", when: { path: { startsWith: "/etc/" } }, enforcement: "hard" },
      { id: "big-query", tool: "db_query", when: { max_rows: { gt: 50 } }, enforcement: "soft" },
    ],
  });
  const decisions = [];
  const soft = [];
  const proxy = await startProxy(config, { onDecision: (d) => decisions.push(d), onSoftRule: (d) => soft.push(d) });
  t.after(() => proxy.close());
  const token = mint({ tools: ["db_query"], scopes: ["filesystem:files:read"] });
  const client = new Client({ name: "agent-b", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(proxy.url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  t.after(() => client.close());
  // file_read by its mapped scope (through the HTTP layer and the relay alike)
  const read = await client.callTool({ name: "file_read", arguments: { path: "/srv/a" } });
  assert.deepStrictEqual(JSON.parse(read.content[0].text).args, { path: "/srv/a" });
  // admin_delete maps to admin_delete:call: refused; a hard rule: refused with rule_violation, 403
  for (const [call, code] of [
    [{ name: "admin_delete", arguments: { id: "1" } }, "tool_not_allowed"],
    [{ name: "file_read", arguments: { path: "/etc/passwd" } }, "rule_violation"],
  ]) {
    await assert.rejects(client.callTool(call), (e) => e instanceof StreamableHTTPError && e.code === 403 && e.message.includes(`"code":"${code}"`));
  }
  // a soft rule: allowed, reported once (by the relay, not again by the HTTP layer)
  const big = await client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 80 } });
  assert.deepStrictEqual(JSON.parse(big.content[0].text).args, { sql: "s", max_rows: 80 });
  assert.strictEqual(soft.length, 1);
  assert.deepStrictEqual([soft[0].tool, soft[0].softRules, soft[0].scope], ["db_query", ["big-query"], "db_query:call"]);
  assert.ok(decisions.some((d) => d.code === "rule_violation"));
});

test("the root README's \"Coming from @apoa/mcp\" block runs as written, and its table names every withAPOA option", async (t) => {
  const { readFileSync } = await import("node:fs");
  const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("### Coming from @apoa/mcp"));
  const block = section.match(/```js\n([\s\S]*?)```/)[1];
  // every option of @apoa/mcp 0.1.1's WithAPOAOptions (src/guard.ts) has a row
  const table = section.slice(0, section.indexOf("\n## "));
  for (const option of ["key", "mappings", "revocationStore", "auditStore", "replayStore", "denyUnmapped", "autoMapping",
    "clockSkewSeconds", "enableCheckTool"]) {
    assert.ok(new RegExp(`^\\| [^|]*\`${option}\``, "m").test(table), `no row for withAPOA's ${option}`);
  }
  const server = new McpServer({ name: "apoa-migrant", version: "1.0.0" });
  const ran = [];
  for (const name of ["read_file", "write_file"]) {
    server.registerTool(name, { inputSchema: { path: z.string(), size: z.number().optional() } }, async (args) => {
      ran.push(name);
      return { content: [{ type: "text", text: `${name} ok` }] };
    });
  }
  const warned = [];
  const console = { warn: (...a) => warned.push(a) };
  const body = block.replace(/^import .*$/m, "");
  new Function("withMcpVault", "server", "publicKeyHex", "console", body)(withMcpVault, server, keys.publicKey, console);
  const client = await connect(server);
  t.after(() => client.close());
  const token = mint({ scopes: ["filesystem:files:read", "filesystem:files:write:sandbox"] });
  const call = (name, args) => client.callTool({ name, arguments: args, _meta: { token } });
  assert.strictEqual((await call("read_file", { path: "/srv/a" })).content[0].text, "read_file ok");
  assert.strictEqual((await call("write_file", { path: "/tmp/a", size: 5000 })).content[0].text, "write_file ok");
  assert.deepStrictEqual(warned, [["soft rules", ["big"]]]);
  assert.deepStrictEqual(await mcpError(call("write_file", { path: "/srv/a" })), { rpc: -32013, code: "tool_not_allowed" });
  assert.deepStrictEqual(await mcpError(call("read_file", { path: "/etc/passwd" })), { rpc: -32013, code: "rule_violation" });
  const dry = await call("mcpvault.check", { tool: "write_file", arguments: { path: "/tmp/b" } });
  assert.deepStrictEqual([dry.structuredContent.allowed, dry.structuredContent.scope], [true, "filesystem:files:write:sandbox"]);
  assert.deepStrictEqual(ran, ["read_file", "write_file"]);
});

function contentServer(options) {
  const server = new McpServer({ name: "content", version: "1.0.0" });
  const read = (uri) => async () => ({ contents: [{ uri, text: `${uri} read` }] });
  server.registerResource("doc", "file:///docs/a.md", { mimeType: "text/plain" }, read("file:///docs/a.md"));
  server.registerResource("secret", "file:///secret", { mimeType: "text/plain" }, read("file:///secret"));
  for (const name of ["greeting", "other"]) {
    server.registerPrompt(name, { description: name }, () => ({ messages: [{ role: "user", content: { type: "text", text: name } }] }));
  }
  server.registerTool("db_query", { inputSchema: { sql: z.string() } }, async () => ({ content: [{ type: "text", text: "ok" }] }));
  withMcpVault(server, options);
  return server;
}

test("withMcpVault: resources and prompts are granted, lists filtered; openResources/openPrompts open them", async (t) => {
  const client = await connect(contentServer({ publicKeyHex: keys.publicKey }));
  t.after(() => client.close());
  const granted = { token: mint({ tools: ["db_query"], resources: ["file:///docs/"], prompts: ["greeting"] }) };
  assert.deepStrictEqual((await client.listResources({ _meta: granted })).resources.map((r) => r.uri), ["file:///docs/a.md"]);
  assert.strictEqual((await client.readResource({ uri: "file:///docs/a.md", _meta: granted })).contents[0].text, "file:///docs/a.md read");
  assert.deepStrictEqual(await mcpError(client.readResource({ uri: "file:///secret", _meta: granted })), { rpc: -32013, code: "resource_not_allowed" });
  assert.deepStrictEqual((await client.listPrompts({ _meta: granted })).prompts.map((p) => p.name), ["greeting"]);
  assert.deepStrictEqual(await mcpError(client.getPrompt({ name: "other", _meta: granted })), { rpc: -32013, code: "prompt_not_allowed" });
  // a token that grants none lists and reads none
  const none = { token: mint({ tools: ["db_query"] }) };
  assert.deepStrictEqual((await client.listResources({ _meta: none })).resources, []);
  assert.deepStrictEqual((await client.listPrompts({ _meta: none })).prompts, []);
  assert.deepStrictEqual(await mcpError(client.readResource({ uri: "file:///docs/a.md", _meta: none })), { rpc: -32013, code: "resource_not_allowed" });
  // a server that opens them
  const open = await connect(contentServer({ publicKeyHex: keys.publicKey, openResources: true, openPrompts: true }));
  t.after(() => open.close());
  assert.deepStrictEqual((await open.listResources({ _meta: none })).resources.map((r) => r.uri).sort(), ["file:///docs/a.md", "file:///secret"]);
  assert.strictEqual((await open.getPrompt({ name: "other", _meta: none })).messages[0].content.text, "other");
  // ... yet a token that names resources is still held to them
  assert.deepStrictEqual(await mcpError(open.readResource({ uri: "file:///secret", _meta: granted })), { rpc: -32013, code: "resource_not_allowed" });
  assert.throws(() => withMcpVault(new McpServer({ name: "x", version: "1" }), { publicKeyHex: keys.publicKey, openResources: "yes" }),
    /withMcpVault: openResources must be true or false/);
});

test("withMcpVault: a call over the body limits is refused invalid_request; maxBodyContainers / maxBodyValues raise them", async (t) => {
  const token = mint({ tools: ["db_query"] });
  const rows = Array.from({ length: 10_001 }, (_, i) => String(i));
  for (const [options, refused] of [[{}, true], [{ maxBodyContainers: 20_000, maxBodyValues: 200_000 }, false]]) {
    const server = new McpServer({ name: "bulk", version: "1.0.0" });
    let ran = 0;
    server.registerTool("db_query", { inputSchema: { rows: z.array(z.array(z.string())) } }, async () => {
      ran++;
      return { content: [{ type: "text", text: "ok" }] };
    });
    withMcpVault(server, { publicKeyHex: keys.publicKey, ...options });
    const client = await connect(server);
    t.after(() => client.close());
    const result = client.callTool({ name: "db_query", arguments: { rows: rows.map((r) => [r]) }, _meta: { token } });
    if (refused) {
      assert.deepStrictEqual(await mcpError(result), { rpc: -32600, code: "invalid_request" });
      assert.strictEqual(ran, 0);
    } else {
      await result;
      assert.strictEqual(ran, 1);
    }
  }
});

test("the proxy's config takes maxBodyContainers / maxBodyValues (whole numbers) for the guard it builds", () => {
  const base = { publicKey: keys.publicKey, upstream: { command: "node", args: ["s.js"] } };
  const ok = checkConfig({ ...base, maxBodyContainers: 20_000, maxBodyValues: 200_000 });
  assert.deepStrictEqual([ok.maxBodyContainers, ok.maxBodyValues], [20_000, 200_000]);
  assert.deepStrictEqual([checkConfig(base).maxBodyContainers, checkConfig(base).maxBodyValues], [undefined, undefined]);
  for (const bad of ["many", -1, 1.5]) {
    assert.throws(() => checkConfig({ ...base, maxBodyValues: bad }), (e) => e instanceof ConfigError && /maxBodyValues must be a whole number/.test(e.message));
  }
});
