// The delegation demo (`make demo`): an issuer mints a token for agent A; agent A narrows it, offline, for agent B;
// agent B, a real MCP SDK client over Streamable HTTP, uses it against an MCP server that checks every call.
// The transcript goes to the terminal; the exit status is 0 only if every call was decided as expected.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { MCPVault, auditVerify } from "mcpvault";
import { openStore } from "mcpvault-store";
import { startServer } from "./server.mjs";

// --store memory (default) | sqlite:FILE | redis://HOST:PORT — where the server keeps revocations, spent
// single-use nonces and the audit log.
const argv = process.argv.slice(2);
const storeSpec = argv[0] === "--store" && argv[1] ? argv[1] : argv[0]?.startsWith("--store=") ? argv[0].slice(8) : "memory";
if (argv.length > 0 && storeSpec === "memory" && argv.join(" ") !== "--store memory") {
  console.error("usage: node demo.mjs [--store memory|sqlite:FILE|redis://HOST:PORT]");
  process.exit(2);
}

const tty = process.stdout.isTTY;
const bold = (s) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const green = (s) => (tty ? `\x1b[32m${s}\x1b[0m` : s);
const red = (s) => (tty ? `\x1b[31m${s}\x1b[0m` : s);
const say = (s = "") => console.log(s);
const short = (t) => `${t.slice(0, 24)}…${t.slice(-8)} (${t.length} chars)`;
const failures = [];
const expect = (what, ok) => ok || failures.push(what);

const vault = new MCPVault();

say(bold("1. Issuer (auth-server) mints a token for agent A"));
const { privateKey, publicKey } = vault.generateKeypair();
const root = vault.mint(privateKey, {
  tools: ["db_query", "file_read", "admin_delete"], ttl: 3600, issuer: "auth-server", subject: "agent-a",
});
say(`   tools db_query, file_read, admin_delete; ttl 1 h; public key ${publicKey.slice(0, 16)}…`);
say(`   token ${short(root)}`);

say(bold("\n2. Agent A attenuates it for agent B — offline, no call to the issuer"));
const delegated = vault.attenuate(root, {
  tools: ["db_query"], ttl: 300, argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }],
});
for (const b of vault.inspect(delegated).blocks) {
  const limits = b.arg_limits.map((l) => `${l.tool}.${l.arg} ${l.op} ${l.value}`);
  say(`   block ${b.index}${b.index === 0 ? " (issuer)" : " (agent A)"}: tools ${b.tools.join(", ")}; ` +
    `expires ${new Date(b.expires_at * 1000).toISOString()}${limits.length ? `; ${limits.join(", ")}` : ""}`);
}
say(`   token ${short(delegated)}`);

say(bold("\n3. The MCP server: Express + mcpvault-express + withMcpVault, knows only the issuer's public key"));
const decisions = [];
const store = await openStore(storeSpec);
// the server's policy: a query of more than 80 rows needs the on-call operator's signed approval
const operator = vault.generateKeypair();
const rules = [{ id: "bulk-read", tool: "db_query", when: { max_rows: { gt: 80 } }, enforcement: "approval",
  approvers: [operator.publicKey] }];
const server = await startServer({ publicKeyHex: publicKey, onDecision: (d) => decisions.push(d), store, rules });
say(`   listening on ${server.url}; revocations, single-use nonces and the audit log in the ${store.kind} store (${storeSpec})`);
say(`   policy: db_query with max_rows > 80 needs an approval signed by the operator (${operator.publicKey.slice(0, 16)}…)`);

say(bold("\n4. Agent B connects with the MCP SDK client (Streamable HTTP, token as Bearer)"));
const client = new Client({ name: "agent-b", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(server.url, {
  requestInit: { headers: { Authorization: `Bearer ${delegated}` } },
}));

const tools = (await client.listTools()).tools.map((t) => t.name);
say(`   tools/list → ${tools.join(", ")}    (the server has db_query, file_read, admin_delete)`);
expect("tools/list shows only db_query (and the dry-run tool)", tools.join() === "db_query,mcpvault.check");

/** Calls a tool; resolves to the refusal's `error.data` (or null when allowed). */
async function call(name, args, expected, meta) {
  const label = `tools/call ${name} ${JSON.stringify(args)}${meta ? " + approval" : ""}`.padEnd(62);
  try {
    const r = await client.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) });
    say(`   ${label} → ${green("allowed")}: ${r.content[0].text}`);
    expect(`${name} ${JSON.stringify(args)} allowed`, expected === "allowed");
    return null;
  } catch (e) {
    if (!(e instanceof StreamableHTTPError)) throw e;
    const body = JSON.parse(e.message.slice(e.message.indexOf("{")));
    if (!body.error) throw e;
    say(`   ${label} → ${red("refused")}: HTTP ${e.code} ${body.error.data.code} — ${body.error.message}`);
    expect(`${name} ${JSON.stringify(args)} refused with ${expected}`, body.error.data.code === expected);
    return body.error.data;
  }
}
await call("db_query", { sql: "select * from parts", max_rows: 50 }, "allowed");
await call("db_query", { sql: "select * from parts", max_rows: 1000 }, "argument_not_allowed");
await call("admin_delete", { id: "42" }, "tool_not_allowed");

const dry = await client.callTool({ name: "mcpvault.check", arguments: { tool: "admin_delete", arguments: { id: "42" } } });
const why = dry.structuredContent;
say(`   mcpvault.check admin_delete (dry run) → allowed: ${why.allowed}, ${why.code}, block ${why.failedBlock}:`);
say(`      ${why.failedCheck}`);
expect("dry run names the refusing block", why.allowed === false && why.failedBlock === 1);

say(bold("\n5. A bulk read needs a human: agent B asks, the operator approves that one call, agent B sends it again"));
const bulk = { sql: "select * from parts", max_rows: 90 };
const asked = await call("db_query", bulk, "approval_required");
const hash = asked?.approval?.requestHash;
say(`   the refusal names the request hash ${String(hash).slice(0, 24)}… and who may approve (the operator)`);
expect("approval_required names the request hash and the operator", hash === vault.requestHash(delegated, { tool: "db_query", arguments: bulk })
  && asked.approval.approvers[0] === operator.publicKey);
const approval = vault.approve(operator.privateKey, hash, { ttl: 120 });
say(`   operator signs an approval of that hash, valid 120 s: ${approval.slice(0, 28)}…`);
await call("db_query", bulk, "allowed", { "mcpvault/approvals": [approval] });
await call("db_query", bulk, "replayed", { "mcpvault/approvals": [approval] });
await call("db_query", { ...bulk, max_rows: 99 }, "approval_required", { "mcpvault/approvals": [approval] });

say(bold("\n6. The issuer revokes agent A's token (its revocation id) — agent B's token was derived from it"));
const rootId = vault.inspect(root).revocation_ids[0];
await store.revoke(rootId);
say(`   revoked ${rootId.slice(0, 24)}…`);
await call("db_query", { sql: "select * from parts", max_rows: 50 }, "revoked");

await client.close();
await server.close();

say(bold("\n7. The server's decisions (onDecision) and its audit log"));
for (const d of decisions) {
  say(`   ${d.allowed ? green("allow") : red("deny ")} ${d.status} ${d.method}${d.tool ? ` ${d.tool}` : ""}` +
    `${d.code ? ` ${d.code}` : ""}${d.facts ? ` (subject ${d.subject}, depth ${d.facts.depth})` : ""} token via ${d.tokenSource}` +
    `${d.approvers?.length ? `, approved by ${d.approvers.map((a) => a.slice(0, 8)).join(", ")}…` : ""}`);
}

const entries = await store.auditEntries();
const check = auditVerify(entries);
say(`   audit log: ${entries.length} entries, hash chain ${check.break ? red(`BROKEN at ${check.break.index}`) : green("verifies")}` +
  ` (head ${String(check.head ?? "").slice(0, 16)}…)`);
expect("the audit chain verifies and holds every decision", !check.break && entries.length >= decisions.length);
expect("the audit log names the operator on the approved call", entries.some((e) => e.approvers?.includes(operator.publicKey)));
await store.close();

if (failures.length) {
  say(red(`\ndemo FAILED: ${failures.join("; ")}`));
  process.exit(1);
}
say(green("\ndemo ok: agent B's db_query allowed; max_rows 1000 and admin_delete refused, with codes; the bulk read ran once with the operator's approval; refused once A's token was revoked"));
