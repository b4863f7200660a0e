// make test-cross: the same tokens through the three MCP guards, each asked by its own SDK's client, must get the
// same answers (issue 19 item 3).
//
// Tokens are minted by the CLI (`mcpvault mint`) and attenuated in JS (the npm package `mcpvault`). Each case (a
// token and an MCP call) goes to
//   - Node: an McpServer guarded by withMcpVault (mcpvault-mcp), the SDK's Client      (node_host.mjs, in this process)
//   - Python: an MCPServer guarded by with_mcpvault (mcpvault.mcp), the SDK's Client   (python_host.py)
//   - Rust: an rmcp ServerHandler guarded by McpVault::guard, rmcp's client            (crates/rmcp/tests/cross.rs)
// with the token in `_meta`, and each HTTP case (a token in `Authorization: Bearer` and a body) to the same servers
// over Streamable HTTP on 127.0.0.1 behind their HTTP layers (mcpvault-express, McpVaultMiddleware,
// McpVault::http_layer). An MCP answer is the result (normalised: a tool's text, a list's names) or the MCP error's
// JSON-RPC code, message and data; an HTTP answer is the status, `WWW-Authenticate` and, for a refusal, the body. The
// three answers to a case must be equal, and equal to what the case expects (so three hosts agreeing on a wrong answer
// fail too). Any difference fails with the case, the hosts and their answers.
//
// Environment: MCPVAULT_CLI (default target/debug/mcpvault), MCPVAULT_PYTHON (default build/venv/bin/python: wasmtime,
// mcp 2.x and uvicorn), MCPVAULT_PYTHON_SRC (where the package is imported from: default ./python, with the
// component `make component` copies there), MCPVAULT_RMCP_TARGET_DIR (default crates/rmcp/target), CARGO.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { MCPVault } from "mcpvault";
import { answers as nodeAnswers } from "./node_host.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
const CLI = process.env.MCPVAULT_CLI ?? path.join(ROOT, "target/debug/mcpvault");
const PYTHON = process.env.MCPVAULT_PYTHON ?? path.join(ROOT, "build/venv/bin/python");
const PYTHON_SRC = process.env.MCPVAULT_PYTHON_SRC ?? path.join(ROOT, "python");
const RMCP_TARGET = process.env.MCPVAULT_RMCP_TARGET_DIR ?? path.join(ROOT, "crates/rmcp/target");
const CARGO = process.env.CARGO ?? "cargo";
const AUDIENCE = "cross.example";
const HOSTS = ["node", "python", "rmcp"];

const tmp = mkdtempSync(path.join(tmpdir(), "mcpvault-cross-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const cli = (...args) => execFileSync(CLI, args, { encoding: "utf8" }).trim();

// --- tokens: minted by the CLI, attenuated in JS
const key = path.join(tmp, "issuer.json");
const otherKey = path.join(tmp, "other.json");
cli("keygen", "--out", key);
cli("keygen", "--out", otherKey);
const publicKey = JSON.parse(readFileSync(key, "utf8")).public_key;
const now = Math.floor(Date.now() / 1000);
const grant = ["--tools", "db_query,file_read,admin_delete", "--prompts", "greeting", "--issuer", "auth-server",
  "--subject", "agent-a"];
const mint = (k, ...more) => cli("mint", "--key", k, ...grant, ...more);
const root = mint(key, "--ttl", "3600", "--audience", AUDIENCE);
const expired = mint(key, "--ttl", "60", "--audience", AUDIENCE, "--now", String(now - 7200));
const elsewhere = mint(key, "--ttl", "3600", "--audience", "other.example");
const foreign = mint(otherKey, "--ttl", "3600", "--audience", AUDIENCE);
const shallow = mint(key, "--ttl", "3600", "--audience", AUDIENCE, "--max-depth", "0");

const js = new MCPVault();
const LIMIT = { tool: "db_query", arg: "max_rows", op: "max", value: 100 };
const narrow = js.attenuate(root, { tools: ["db_query"], ttl: 300, argLimits: [LIMIT] });
const T = {
  root, narrow, expired, elsewhere, foreign, garbage: "garbage", none: null,
  narrowExpired: js.attenuate(expired, { tools: ["db_query"] }),
  narrowElsewhere: js.attenuate(root, { tools: ["db_query"], audience: "other.example" }),
  narrowForeign: js.attenuate(foreign, { tools: ["db_query"] }),
  tooDeep: js.attenuate(shallow, { tools: ["db_query"] }),
};

// --- the cases: [token, method, params, expected] (expected: a result, or the refusal's code)
const call = (name, args) => ({ name, arguments: args });
const ALL_TOOLS = { names: ["db_query", "file_read", "admin_delete"] };
const MCP = [
  ["root", "tools/call", call("db_query", { sql: "s", max_rows: 500 }), { text: "db_query ok", isError: false }],
  ["root", "tools/call", call("admin_delete", { id: "1" }), { text: "admin_delete ok", isError: false }],
  ["root", "tools/list", {}, ALL_TOOLS],
  ["root", "prompts/get", { name: "greeting" }, { text: "hello" }],
  ["root", "prompts/get", { name: "secret" }, "prompt_not_allowed"],
  ["root", "prompts/list", {}, { names: ["greeting"] }],
  ["narrow", "tools/call", call("db_query", { sql: "s", max_rows: 100 }), { text: "db_query ok", isError: false }],
  ["narrow", "tools/call", call("db_query", { sql: "s", max_rows: 101 }), "argument_not_allowed"],
  ["narrow", "tools/call", call("db_query", { sql: "s" }), "argument_not_allowed"],
  ["narrow", "tools/call", call("db_query", { sql: "s", max_rows: "5" }), "argument_not_allowed"],
  ["narrow", "tools/call", call("admin_delete", { id: "1" }), "tool_not_allowed"],
  ["narrow", "tools/call", call("file_read", { path: "/etc/passwd" }), "tool_not_allowed"],
  ["narrow", "tools/list", {}, { names: ["db_query"] }],
  ["narrow", "prompts/get", { name: "greeting" }, { text: "hello" }],
  ["expired", "tools/call", call("db_query", { max_rows: 1 }), "expired"],
  ["narrowExpired", "tools/call", call("db_query", { max_rows: 1 }), "expired"],
  ["elsewhere", "tools/call", call("db_query", { max_rows: 1 }), "wrong_audience"],
  ["narrowElsewhere", "tools/call", call("db_query", { max_rows: 1 }), "wrong_audience"],
  ["narrowElsewhere", "tools/list", {}, "wrong_audience"],
  ["foreign", "tools/call", call("db_query", { max_rows: 1 }), "bad_signature"],
  ["narrowForeign", "tools/call", call("db_query", { max_rows: 1 }), "bad_signature"],
  ["tooDeep", "tools/call", call("db_query", { max_rows: 1 }), "depth_exceeded"],
  ["garbage", "tools/call", call("db_query", { max_rows: 1 }), "malformed_token"],
  ["garbage", "tools/list", {}, "malformed_token"],
  ["none", "tools/call", call("db_query", { max_rows: 1 }), "missing_token"],
  ["none", "tools/list", {}, "missing_token"],
  ["none", "prompts/get", { name: "greeting" }, "missing_token"],
].map(([token, method, params, expect], i) => ({
  name: `mcp ${String(i + 1).padStart(2, "0")} ${token} ${method} ${params.name ?? ""} ${JSON.stringify(params.arguments ?? "")}`.trim(),
  token: T[token], method, params, expect,
}));

const rpc = (id, method, params) => JSON.stringify({ jsonrpc: "2.0", ...(id === null ? {} : { id }), method, params });
const INIT = rpc(1, "initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "cross", version: "1" } });
const HTTP = [
  ["none", INIT, [401, "missing_token"]],
  ["none", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [401, "missing_token"]],
  ["garbage", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [401, "malformed_token"]],
  ["expired", INIT, [401, "expired"]],
  ["narrowExpired", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [401, "expired"]],
  ["elsewhere", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [401, "wrong_audience"]],
  ["narrowElsewhere", INIT, [401, "wrong_audience"]],
  ["foreign", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [401, "bad_signature"]],
  ["narrow", rpc(2, "tools/call", call("admin_delete", { id: "1" })), [403, "tool_not_allowed"]],
  ["narrow", rpc(2, "tools/call", call("db_query", { max_rows: 101 })), [403, "argument_not_allowed"]],
  ["tooDeep", rpc(2, "tools/call", call("db_query", { max_rows: 1 })), [403, "depth_exceeded"]],
  ["narrow", `[${rpc(2, "tools/call", call("db_query", { max_rows: 1 }))},${rpc(3, "tools/call", call("file_read", {}))}]`,
    [403, "tool_not_allowed"]],
  ["root", "{", [400, "invalid_request"]],
  ["root", rpc(null, "tools/call", call("db_query", { max_rows: 1 })), [400, "invalid_request"]],
  ["root", rpc(2, "tools/call", { ...call("db_query", { max_rows: 1 }), _meta: { token: narrow } }), [400, "invalid_request"]],
  ["root", INIT, [200]],
  ["narrow", INIT, [200]],
].map(([token, body, expect], i) => ({
  name: `http ${String(i + 1).padStart(2, "0")} ${token} ${body.length > 60 ? `${body.slice(0, 57)}...` : body}`,
  token: T[token], body, expect,
}));

const spec = { public_key: publicKey, audience: AUDIENCE, lister: root, mcp: MCP, http: HTTP };
const casesFile = path.join(tmp, "cases.json");
writeFileSync(casesFile, JSON.stringify(spec));

// --- the three hosts, side by side
function run(command, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited with ${code}:\n${output}`))));
  });
}

async function timed(host, f) {
  const start = performance.now();
  const answers = await f();
  return { host, answers, seconds: (performance.now() - start) / 1000 };
}

const out = (host) => path.join(tmp, `${host}.json`);
const results = await Promise.all([
  timed("node", () => nodeAnswers(spec)),
  timed("python", async () => {
    await run(PYTHON, [path.join(HERE, "python_host.py"), casesFile, out("python")], {
      PYTHONPATH: [PYTHON_SRC, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
    });
    return JSON.parse(readFileSync(out("python"), "utf8"));
  }),
  timed("rmcp", async () => {
    await run(CARGO, ["test", "-q", "--manifest-path", "crates/rmcp/Cargo.toml", "--test", "cross", "--", "--ignored", "--exact", "cross_host"], {
      CARGO_TARGET_DIR: RMCP_TARGET, MCPVAULT_CROSS_CASES: casesFile, MCPVAULT_CROSS_ANSWERS: out("rmcp"),
    });
    return JSON.parse(readFileSync(out("rmcp"), "utf8"));
  }),
]);
const byHost = Object.fromEntries(results.map((r) => [r.host, r.answers]));

/** What the case expects of an answer, or null when it holds. */
function unexpected(c, a, leg) {
  if (a === undefined) return "no answer";
  if (leg === "mcp") {
    if (typeof c.expect === "string") {
      return a.allowed === false && a.data?.code === c.expect ? null : `expected refusal ${c.expect}`;
    }
    return a.allowed === true && isDeepStrictEqual(a.result, c.expect) ? null : `expected ${JSON.stringify(c.expect)}`;
  }
  const [status, code] = c.expect;
  if (a.status !== status) return `expected HTTP ${status}`;
  // a batch is refused whole: every message's error names the code
  const codes = (Array.isArray(a.body) ? a.body : [a.body]).map((b) => b?.error?.data?.code);
  if (code !== undefined && !codes.every((x) => x === code)) return `expected ${code}`;
  return null;
}

/** Every case whose answers differ between hosts or from the expectation. */
function compare(answers) {
  const problems = [];
  for (const [leg, cases] of [["mcp", MCP], ["http", HTTP]]) {
    for (const c of cases) {
      const got = Object.fromEntries(HOSTS.map((h) => [h, answers[h]?.[leg]?.[c.name]]));
      const diverging = HOSTS.filter((h) => !isDeepStrictEqual(got[h], got.node));
      const wrong = HOSTS.map((h) => [h, unexpected(c, got[h], leg)]).filter(([, w]) => w !== null);
      if (diverging.length > 0 || wrong.length > 0) problems.push({ case: c.name, diverging, wrong, got });
    }
  }
  return problems;
}

function summary(a) {
  if (a === undefined) return "-";
  if ("status" in a) {
    if (a.status < 400) return `${a.status}`;
    return `${a.status} ${(Array.isArray(a.body) ? a.body : [a.body]).map((b) => b?.error?.data?.code).join(", ")}`;
  }
  return a.allowed ? `allowed ${JSON.stringify(a.result)}` : `${a.rpc} ${a.data?.code}`;
}

const problems = compare(byHost);
for (const [leg, cases] of [["mcp", MCP], ["http", HTTP]]) {
  for (const c of cases) {
    const a = byHost.node[leg][c.name];
    const mark = problems.some((p) => p.case === c.name) ? "DIFF" : "same";
    console.log(`${mark}  ${c.name.padEnd(78)} ${summary(a)}`);
  }
}
console.log(results.map((r) => `${r.host} ${r.seconds.toFixed(1)} s`).join(", "));

// The comparison itself must catch one host that answers differently: a copy with one refusal changed in one host.
const mutated = structuredClone(byHost);
const victim = MCP.find((c) => typeof c.expect === "string").name;
mutated.python.mcp[victim].data.code = "tool_not_allowed_elsewhere";
if (compare(mutated).filter((p) => p.case === victim && p.diverging.includes("python")).length !== 1) {
  console.error("test-cross: the comparison did not catch a diverging host");
  process.exit(1);
}

if (problems.length > 0) {
  for (const p of problems) {
    console.error(`\n${p.case}: ${p.diverging.length ? `${p.diverging.join(", ")} differ${p.diverging.length === 1 ? "s" : ""} from node` : ""}` +
      `${p.wrong.length ? `${p.diverging.length ? "; " : ""}${p.wrong.map(([h, w]) => `${h}: ${w}`).join(", ")}` : ""}`);
    for (const h of HOSTS) console.error(`  ${h.padEnd(6)} ${JSON.stringify(p.got[h])}`);
  }
  console.error(`\ntest-cross: ${problems.length} of ${MCP.length + HTTP.length} cases differ`);
  process.exit(1);
}
console.log(`test-cross: ${MCP.length} MCP and ${HTTP.length} HTTP cases, the same answers from node, python and rmcp`);
