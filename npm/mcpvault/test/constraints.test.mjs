// Argument constraints (issue 20) minted through the npm build: every limit type, the hostile inputs each must refuse,
// nested paths and arrays, number limits, attenuation, inspect, and limits the core refuses at mint and attenuate.
import test from "node:test";
import assert from "node:assert";
import { createRequire } from "node:module";
import { MCPVault, McpVaultError } from "mcpvault";

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const { privateKey, publicKey } = vault.generateKeypair();
const TOOLS = ["file_read", "fetch", "net", "deploy", "tool", "pay", "batch"];
const LIMITS = [
  { tool: "file_read", arg: "path", op: "under", value: "/srv/public/" },
  { tool: "fetch", arg: "url", op: "url", value: "https://*.example.com" },
  { tool: "net", arg: "ip", op: "cidr", value: "10.0.0.0/8" },
  { tool: "deploy", arg: "cluster", op: "glob", value: "staging-*" },
  { tool: "deploy", arg: "config.mode", op: "eq", value: "ro" },
  { tool: "tool", arg: "name", op: "matches", value: "^[a-z]+$" },
  { tool: "pay", arg: "amount", op: "max", value: 99.5 },
  { tool: "pay", arg: "amount", op: "min", value: 0, number: true },
  { tool: "batch", arg: "items[*]", op: "one_of", value: ["a", "b"] },
  { tool: "batch", arg: "items", op: "max_items", value: 3 },
  { tool: "batch", arg: "items", op: "min_items", value: 1 },
];
const OTHER = { deploy: { cluster: "staging-eu", config: { mode: "ro" } } };
const token = vault.mint(privateKey, { tools: TOOLS, ttl: 600, issuer: "i", subject: "s", argLimits: LIMITS });

// [tool, argument, value, allowed]
const CASES = [
  ["file_read", "path", "/srv/public/docs/a.txt", true],
  ["file_read", "path", "/srv/public", true],
  ["file_read", "path", "/srv/public/a/../b//c/", true],
  ["file_read", "path", "/srv/public/../../etc/passwd", false],
  ["file_read", "path", "/srv/publicity/x", false],
  ["file_read", "path", "/srv/public/%2e%2e/%2e%2e/etc/passwd", false],
  ["file_read", "path", "/srv/public/\u0000/x", false],
  ["file_read", "path", "/srv/public/\uff0e\uff0e/\uff0e\uff0e/etc/passwd", false],
  ["file_read", "path", "/srv/public\u2215..\u2215etc", false],
  ["file_read", "path", "/srv/public\\..\\..\\etc", false],
  ["file_read", "path", "srv/public/x", false],
  ["fetch", "url", "https://api.example.com/v1/users", true],
  ["fetch", "url", "HTTPS://API.Example.COM:443/x", true],
  ["fetch", "url", "https://api.example.com@evil.net/", false],
  ["fetch", "url", "https://user:pw@api.example.com/", false],
  ["fetch", "url", "https://evil.net\\@api.example.com/", false],
  ["fetch", "url", "https://api.example.com.evil.net/", false],
  ["fetch", "url", "https://evilexample.com/", false],
  ["fetch", "url", "https://example.com/", false],
  ["fetch", "url", "http://api.example.com/", false],
  ["fetch", "url", "https://api.example.com:8443/", false],
  ["fetch", "url", "https://ex%61mple.example.com/", false],
  ["fetch", "url", "https://b\u00fccher.example.com/", false],
  ["net", "ip", "10.1.2.3", true],
  ["net", "ip", "::ffff:10.0.0.1", true],
  ["net", "ip", "11.0.0.1", false],
  ["net", "ip", "010.0.0.1", false],
  ["net", "ip", "0x0a.0.0.1", false],
  ["net", "ip", "10.1", false],
  ["net", "ip", "::10.0.0.1", false],
  ["net", "ip", "10.0.0.1%eth0", false],
  ["deploy", "cluster", "staging-eu", true],
  ["deploy", "cluster", "prod-staging-eu", false],
  ["deploy", "cluster", "Staging-eu", false],
  ["deploy", "cluster", "staging", false],
  ["tool", "name", "abc", true],
  ["tool", "name", "abc1", false],
  ["tool", "name", "abc\n", false],
  ["pay", "amount", 99.5, true],
  ["pay", "amount", 0, true],
  ["pay", "amount", -0, true],
  ["pay", "amount", 99.51, false],
  ["pay", "amount", 100, false],
  ["pay", "amount", -0.01, false],
  ["pay", "amount", "50", false],
  ["batch", "items", ["a", "b", "a"], true],
  ["batch", "items", [], false],
  ["batch", "items", ["a", "b", "a", "b"], false],
  ["batch", "items", ["a", "c"], false],
  ["batch", "items", ["a", 1], false],
  ["batch", "items", "a", false],
];

const call = (tok, tool, args) => vault.verify(tok, publicKey, { requestedTool: tool, arguments: args });
const refused = (fn, code, why) => assert.throws(fn, (e) => e instanceof McpVaultError && e.code === code, why);

test("every limit type allows what it should and refuses the hostile inputs", () => {
  for (const [tool, arg, value, allowed] of CASES) {
    const args = { ...(OTHER[tool] ?? {}), [arg]: value };
    const why = `${tool} ${JSON.stringify(value)}`;
    if (allowed) assert.strictEqual(call(token, tool, args).tool, tool, why);
    else {
      assert.throws(() => call(token, tool, args), (e) => e instanceof McpVaultError && e.code === "argument_not_allowed"
        && e.failedBlock === 0 && e.failedCheck.startsWith(`check if request_tool("${tool}")`), why);
    }
  }
});

test("a missing argument is refused; a nested path reads the nested value only", () => {
  for (const tool of TOOLS) refused(() => call(token, tool, {}), "argument_not_allowed", tool);
  for (const args of [{ cluster: "staging-eu", config: {} }, { cluster: "staging-eu", "config.mode": "ro" },
    { cluster: "staging-eu", config: { mode: "rw" } }]) {
    refused(() => call(token, "deploy", args), "argument_not_allowed", JSON.stringify(args));
  }
});

test("number limits: 99.5 is a number limit, 100 an integer one, number: true a number limit on 100", () => {
  const mint = (l) => vault.mint(privateKey, { tools: ["pay"], ttl: 60, issuer: "i", subject: "s",
    argLimits: [{ tool: "pay", arg: "amount", op: "max", ...l }] });
  const integer = mint({ value: 100 });
  const number = mint({ value: 100, number: true });
  refused(() => call(integer, "pay", { amount: 99.5 }), "argument_not_allowed");
  assert.ok(call(number, "pay", { amount: 99.5 }));
  assert.ok(call(number, "pay", { amount: 100 }));
  refused(() => call(number, "pay", { amount: 100.01 }), "argument_not_allowed");
  // the two read back differently in the Datalog
  assert.match(vault.inspect(integer).blocks[0].checks.join("\n"), /request_arg_int\("amount"/);
  assert.match(vault.inspect(number).blocks[0].checks.join("\n"), /request_arg_num\("amount"/);
  // magnitudes of 2^53 or more are refused whatever the bound (SCHEMA.md, "Numbers")
  refused(() => call(mint({ value: 1e21, number: true }), "pay", { amount: 1e20 }), "argument_not_allowed");
  assert.ok(call(mint({ value: 1e21, number: true }), "pay", { amount: Number.MAX_SAFE_INTEGER }));
  refused(() => call(mint({ value: 1e21, number: true }), "pay", { amount: 2 ** 53 }), "argument_not_allowed");
  for (const bad of [{ value: NaN, number: true }, { value: Infinity, number: true }, { value: "5", number: true },
    { value: 5, number: "yes" }, { value: 5.5, op: "max_items", number: true }, { value: NaN }]) {
    refused(() => mint(bad), "invalid_request", JSON.stringify(bad));
  }
});

test("inspect reads every limit back in canonical form", () => {
  const got = vault.inspect(token).blocks[0].arg_limits;
  const want = LIMITS.map(({ number, ...l }) => l);
  want[0] = { ...want[0], value: "/srv/public" };
  const key = (l) => JSON.stringify([l.tool, l.arg, l.op, l.value]);
  assert.deepStrictEqual(got.map(key).sort(), want.map(key).sort());
});

test("attenuation adds limits; every block's still holds", () => {
  const narrow = vault.attenuate(token, { argLimits: [
    { tool: "file_read", arg: "path", op: "under", value: "/srv/public/docs" },
    { tool: "fetch", arg: "url", op: "url", value: "https://api.example.com/v1/" },
    { tool: "net", arg: "ip", op: "cidr", value: "10.1.0.0/16" },
    { tool: "batch", arg: "items", op: "max_items", value: 2 },
  ] });
  for (const [tool, args] of [["file_read", { path: "/srv/public/docs/a" }], ["fetch", { url: "https://api.example.com/v1/x" }],
    ["net", { ip: "10.1.0.9" }], ["batch", { items: ["a", "b"] }]]) {
    assert.strictEqual(call(narrow, tool, args).depth, 1);
  }
  for (const [tool, args, block] of [
    ["file_read", { path: "/srv/public/other" }, 1],
    ["file_read", { path: "/srv/public/docs/../../../etc/passwd" }, 0],
    ["fetch", { url: "https://www.example.com/v1/x" }, 1],
    ["fetch", { url: "https://api.example.com/v1/../admin" }, 1],
    ["net", { ip: "10.2.0.1" }, 1],
    ["batch", { items: ["a", "b", "a"] }, 1],
    ["batch", { items: ["a", "z"] }, 0],
  ]) {
    assert.throws(() => call(narrow, tool, args),
      (e) => e.code === "argument_not_allowed" && e.failedBlock === block, JSON.stringify(args));
  }
});

test("a limit on a tool the token does not grant is refused at mint and attenuate", () => {
  assert.throws(() => vault.mint(privateKey, { tools: ["deploy"], ttl: 60, issuer: "i", subject: "s",
    argLimits: [{ tool: "deploy.config", arg: "mode", op: "eq", value: "ro" }] }),
  (e) => e.code === "invalid_request" && /does not grant/.test(e.message));
  assert.throws(() => vault.attenuate(token, { argLimits: [{ tool: "admin", arg: "x", op: "glob", value: "a*" }] }),
    (e) => e.code === "invalid_request" && /does not grant/.test(e.message));
  refused(() => vault.attenuate(token, { tools: ["net"],
    argLimits: [{ tool: "fetch", arg: "url", op: "url", value: "https://a.example.com" }] }), "invalid_request");
});

test("limits the core cannot decide on are refused at mint", () => {
  for (const l of [
    { op: "under", value: "srv/public" }, { op: "under", value: "/srv/../../etc" },
    { op: "url", value: "https://user@api.example.com" }, { op: "url", value: "https://api.*.com" },
    { op: "cidr", value: "10.0.0.1/8" }, { op: "cidr", value: "10.0.0.0/33" },
    { op: "glob", value: "staging-[ab]" }, { op: "matches", value: "(a" }, { op: "matches", value: "\\d+" },
    { op: "max_items", value: -1 }, { op: "max_items", value: 1.5 }, { op: "regex", value: "." },
    { op: "under", value: "/srv", arg: "paths[*]" }, { op: "max", value: 1.5, arg: "amounts[*]" },
    { op: "eq", value: "x", arg: "a..b" },
  ]) {
    refused(() => vault.mint(privateKey, { tools: ["t"], ttl: 60, issuer: "i", subject: "s",
      argLimits: [{ tool: "t", arg: "a", ...l }] }), "invalid_request", JSON.stringify(l));
  }
});

test("require() and import() share the same answers", () => {
  const { MCPVault: Cjs } = createRequire(import.meta.url)("mcpvault");
  const v = new Cjs({ now: () => NOW });
  assert.strictEqual(v.verify(token, publicKey, { tool: "net", arguments: { ip: "::ffff:10.0.0.1" } }).tool, "net");
  assert.throws(() => v.verify(token, publicKey, { tool: "fetch", arguments: { url: "https://api.example.com@evil.net/" } }),
    (e) => e.code === "argument_not_allowed");
});

test("the README's argument-limits block runs as written, and its comments hold", async () => {
  const { readFileSync } = await import("node:fs");
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const block = /```js\n(const limited = [\s\S]*?)```/.exec(readme)[1];
  const limited = new Function("vault", "privateKey", `${block}\nreturn limited;`)(vault, privateKey);
  refused(() => call(limited, "file_read", { path: "/srv/public/../../etc/passwd" }), "argument_not_allowed");
  refused(() => call(limited, "fetch", { url: "https://api.example.com@evil.net" }), "argument_not_allowed");
  assert.strictEqual(call(limited, "net", { ip: "::ffff:10.0.0.1" }).tool, "net");
  assert.strictEqual(call(limited, "deploy", { cluster: "staging-1", config: { mode: "ro" } }).tool, "deploy");
  assert.strictEqual(call(limited, "pay", { amount: 12.25 }).tool, "pay");
  assert.strictEqual(vault.inspect(limited).blocks[0].arg_limits.length, 8);
});
