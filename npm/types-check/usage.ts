// Compiled with `tsc --noEmit --strict` by `make test-mcp`: the published declarations type-check the documented
// usage of mcpvault, mcpvault-express and mcpvault-mcp.
import { MCPVault, McpVaultError, extractToken, authorizeCall, challenge, challengeResponse, authorizeFetch, Guard,
  revocationId, statusOf, CHECK_TOOL, type AuthorizedFacts, type Challenge, type GuardOutcome, type ArgLimit,
  type ArgRule } from "mcpvault";
import { createMcpVaultMiddleware, type McpVaultDecision } from "mcpvault-express";
import { withMcpVault, checkConfig, startProxy, REDACTED, type ProxyConfig } from "mcpvault-mcp";
import { openStore, MemoryStore } from "mcpvault-store";
import { auditAppend, auditVerify, authorizeWithState, callKey } from "mcpvault";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";

const vault = new MCPVault({ cache: 16 });
const { privateKey, publicKey } = vault.generateKeypair();
const token: string = vault.mint(privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" });
const t: string | null = extractToken({ headers: { authorization: `Bearer ${token}` } });
const out = authorizeCall(t, { tool: "db_query" }, { publicKey, vault });
if (out instanceof McpVaultError) {
  const c: Challenge = challenge(out, { id: 1 });
  const status: number = c.status + statusOf(out.code);
  const r: Response = challengeResponse(out);
  console.log(status, r.status, out.detail, c.body.error.data.code);
} else {
  const facts: AuthorizedFacts = out;
  console.log(facts.tools, facts.expiresAt, CHECK_TOOL);
}
async function guarded(body: string): Promise<GuardOutcome> {
  const store = new MemoryStore();
  const guard = new Guard({ publicKey, store, retryWindow: 30, checkTool: true });
  const outcome = await guard.decide({ httpMethod: "POST", headers: { authorization: `Bearer ${token}` }, body });
  if (outcome.allowed && outcome.call_key) await guard.complete(outcome, { result: { content: [] } });
  await store.revoke(revocationId("ab".repeat(64)));
  return outcome;
}
function hot(body: string): boolean {
  const guard = new Guard({ publicKey });
  const now = guard.decideNow({ httpMethod: "POST", headers: { "x-mcpvault-token": token }, body });
  if (now instanceof Promise) return false;
  const error: McpVaultError | null = guard.errorOf(now);
  return now.allowed && error === null && guard.decisionsOf(now).length > 0 && guard.factsOf(now) !== null;
}
async function fetchGate(req: Request): Promise<Response> {
  const g = await authorizeFetch(req, { publicKey });
  return g.ok ? Response.json(g.facts) : g.response;
}

const decisions: McpVaultDecision[] = [];
const auth = createMcpVaultMiddleware({ publicKeyHex: publicKey, audience: "db", onDecision: (d) => decisions.push(d), cache: false,
  store: new MemoryStore(), retryWindow: 10, deferSpend: true });
const mw = auth("db_query");
const server = withMcpVault(new McpServer({ name: "x", version: "1" }), { publicKeyHex: publicKey, checkTool: true,
  store: new MemoryStore(), retryWindow: 30 });
const config = checkConfig({ publicKey, upstream: { command: "node", args: ["s.js"] }, store: "memory" });
async function proxy(): Promise<void> {
  const p = await startProxy(config);
  await p.close();
}
async function state(): Promise<void> {
  const store = await openStore("memory");
  const once = vault.mint(privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s", singleUse: true });
  const out = await authorizeWithState(once, { tool: "db_query" }, { publicKey, store });
  const nonces: string[] | undefined = out instanceof McpVaultError ? undefined : out.nonces;
  const e = auditAppend(null, { time: 1, allowed: true, code: null, method: "tools/call", tool: "x", subject: null, issuer: null, revocation_ids: [], request_id: null });
  const v = auditVerify([e]);
  console.log(nonces, v.break?.kind, callKey(1, "tools/call", "x", {}), new MemoryStore().kind);
}
console.log(mw, server, REDACTED, fetchGate, proxy, state, guarded);

// Every option the READMEs of mcpvault-express and mcpvault-mcp document, with the values they describe.
function logDecision(d: McpVaultDecision): void {
  const fields = [d.allowed, d.code, d.status, d.method, d.tool, d.requestId, d.tokenSource, d.subject, d.issuer,
    d.facts?.tools, d.message, d.detail];
  console.log(fields);
}
const clock = (): number => Math.floor(Date.now() / 1000);
const everyOption = createMcpVaultMiddleware({ publicKeyHex: publicKey, audience: "db", onDecision: logDecision,
  cache: true, now: clock, realm: "mcpvault", resourceMetadata: "https://db.example/.well-known/oauth-protected-resource",
  maxBodyBytes: 4 * 1024 * 1024, store: new MemoryStore(), retryWindow: 30, deferSpend: false, innerGuard: false,
  toolDefinitions: async () => ({ db_query: "0".repeat(64) }) });
const sized = createMcpVaultMiddleware({ publicKeyHex: publicKey, cache: 1024, innerGuard: true });
const wholeBody = everyOption();
const wrapped = withMcpVault(new McpServer({ name: "y", version: "1" }), { publicKeyHex: publicKey, audience: "db",
  onDecision: logDecision, cache: 64, now: clock, checkTool: false, store: new MemoryStore(), retryWindow: 10 });
const httpProxy = checkConfig({ publicKey, upstream: { url: "http://127.0.0.1:9000/mcp", headers: { "x-k": "v" } },
  downstream: { http: { host: "127.0.0.1", port: 8080, path: "/mcp" } }, audience: "db", checkTool: true,
  store: "sqlite:vault.db", log: false }, ".");
const stdioProxy = checkConfig({ publicKey, upstream: { command: "npx", args: ["@modelcontextprotocol/server-everything"],
  env: {}, cwd: "." }, downstream: "stdio", tokenEnv: "MY_TOKEN" }, ".", { MCPVAULT_PUBLIC_KEY: publicKey });
function describe(c: ProxyConfig): string {
  const up = "command" in c.upstream ? `${c.upstream.command} ${c.upstream.args.join(" ")} in ${c.upstream.cwd}`
    : `${c.upstream.url.href} ${Object.keys(c.upstream.headers)}`;
  const down = "http" in c.downstream ? `${c.downstream.http.host}:${c.downstream.http.port}${c.downstream.http.path}`
    : `stdio, token from $${c.tokenEnv}`;
  return [up, down, c.audience, c.checkTool, c.cache, c.log, c.store].join(" ");
}
async function proxyWithHooks(): Promise<void> {
  const p = await startProxy(httpProxy, { onDecision: logDecision, env: {} });
  console.log(p.url);
  await p.close();
}
console.log(sized, wholeBody, wrapped, describe(httpProxy), describe(stdioProxy), proxyWithHooks);

// Argument limits as the mcpvault README documents them: each op with the value type it takes.
const limits: ArgLimit[] = [
  { tool: "file_read", arg: "path", op: "under", value: "/srv/public" },
  { tool: "fetch", arg: "url", op: "url", value: "https://*.example.com" },
  { tool: "net", arg: "ip", op: "cidr", value: "10.0.0.0/8" },
  { tool: "deploy", arg: "cluster", op: "glob", value: "staging-*" },
  { tool: "deploy", arg: "config.mode", op: "eq", value: "ro" },
  { tool: "db_query", arg: "table", op: "matches", value: "^[a-z_]+$" },
  { tool: "db_query", arg: "dry_run", op: "eq", value: true },
  { tool: "db_query", arg: "max_rows", op: "max", value: 100 },
  { tool: "pay", arg: "amount", op: "max", value: 99.5 },
  { tool: "pay", arg: "amount", op: "min", value: 0, number: true },
  { tool: "batch", arg: "items[*]", op: "one_of", value: ["a", "b"] },
  { tool: "batch", arg: "ids[*]", op: "one_of", value: [1, 2] },
  { tool: "batch", arg: "items", op: "max_items", value: 10 },
  { tool: "batch", arg: "items", op: "min_items", value: 1 },
  { tool: "file_read", arg: "path", op: "prefix", value: "/srv/public/" },
];
const limited: string = vault.mint(privateKey, { tools: ["file_read", "fetch", "net", "deploy", "db_query", "pay", "batch"],
  ttl: 600, issuer: "auth-server", subject: "agent-a", argLimits: limits });
const rule: ArgRule = { op: "cidr", value: "2001:db8::/32" };
const narrower: string = vault.attenuate(limited, { argLimits: [{ tool: "net", arg: "ip", ...rule }] });
// @ts-expect-error: under takes a directory, not a number
const badUnder: ArgLimit = { tool: "t", arg: "a", op: "under", value: 5 };
// @ts-expect-error: max_items takes a count
const badItems: ArgLimit = { tool: "t", arg: "a", op: "max_items", value: "10" };
// @ts-expect-error: number: true goes with max and min only
const badNumber: ArgLimit = { tool: "t", arg: "a", op: "glob", value: "x*", number: true };
// @ts-expect-error: not an op
const badOp: ArgLimit = { tool: "t", arg: "a", op: "regex", value: "." };
console.log(narrower, badUnder, badItems, badNumber, badOp);
// Telemetry (issue 18): the OpenTelemetry API module in, Prometheus text out, the Express scrape handler.
import { useOpenTelemetry, metricsText } from "mcpvault";
import { metricsHandler } from "mcpvault-express";
import * as otelApi from "@opentelemetry/api";
useOpenTelemetry(otelApi);
useOpenTelemetry(null);
const scrape: string = metricsText();
const handler: (req: any, res: any) => void = metricsHandler();
const d0 = new Guard({ publicKey }).decide({});
d0.then((o) => console.log(scrape.length, handler.length, o.decisions[0]?.depth, o.decisions[0]?.cache_hit === true, o.decisions[0]?.session_id));

// Scopes and the server's policy (issue 15): grants, restrictions, facts, decisions, and the options of every host.
import type { PolicyOptions, ToolMapping, PolicyRule, Matcher } from "mcpvault";
const scoped: string = vault.mint(privateKey, { scopes: ["filesystem:files:read"], ttl: 60, issuer: "i", subject: "s" });
const scopedNarrow: string = vault.attenuate(scoped, { scopes: ["filesystem:files:read"], tools: ["read_file"] });
const scopedFacts: AuthorizedFacts = vault.verify(scopedNarrow, publicKey, { tool: "read_file", scope: "filesystem:files:read" });
const grantedScopes: string[] | undefined = scopedFacts.scopes;
const mappedScope: string | undefined = scopedFacts.scope;
const sandbox: Matcher = { startsWith: "/tmp/" };
const toolMappings: ToolMapping[] = [
  { tool: "write_file", service: "filesystem", scope: "files:write:sandbox", when: { path: sandbox }, priority: 10 },
  { tool: "write_file", service: "filesystem", scope: "files:write" },
];
const rules: PolicyRule[] = [
  { id: "no-etc", tool: "read_file", when: { path: { startsWith: "/etc/" } }, enforcement: "hard", message: "no" },
  { id: "big", when: { size: { gt: 1000 }, kind: { in: ["a", 1, true, null] }, name: { glob: "*.log" } }, enforcement: "soft" },
];
const policy: PolicyOptions = { mappings: { read_file: "filesystem:files:read" }, toolMappings, rules };
function onSoftRule(d: McpVaultDecision): void {
  const fired: string[] | undefined = d.softRules;
  const scope: string | undefined = d.scope;
  console.log(fired, scope);
}
const policed = createMcpVaultMiddleware({ publicKeyHex: publicKey, ...policy, onSoftRule });
const policedServer = withMcpVault(new McpServer({ name: "z", version: "1" }), { publicKeyHex: publicKey, ...policy,
  onSoftRule, checkTool: true });
const policedGuard = new Guard({ publicKey, ...policy });
const policedProxy = checkConfig({ publicKey, upstream: { command: "node", args: ["s.js"] }, ...policy });
async function proxyWithPolicy(): Promise<void> {
  const p = await startProxy(policedProxy, { onSoftRule });
  await p.close();
}
// @ts-expect-error: enforcement is "hard", "soft" or "approval"
const badEnforcement: PolicyRule = { id: "x", enforcement: "maybe" };
// @ts-expect-error: matchers are camelCase, as @apoa/mcp writes them
const badMatcher: Matcher = { starts_with: "/tmp" };
console.log(grantedScopes, mappedScope, policed, policedServer, policedGuard, proxyWithPolicy, badEnforcement, badMatcher);
// Resources and prompts (issue 15, item 3)
const content: string = vault.mint(privateKey, { tools: ["db_query"], resources: ["file:///docs/"], prompts: ["summarize"], ttl: 60,
  issuer: "i", subject: "s" });
const contentNarrow: string = vault.attenuate(content, { resources: ["file:///docs/public/"], prompts: [] });
const contentFacts: AuthorizedFacts = vault.verify(contentNarrow, publicKey, { method: "resources/read", resource: "file:///docs/public/a" });
const resourceSets: string[][] | undefined = contentFacts.resources;
const promptNames: string[] | undefined = vault.verify(content, publicKey, { method: "prompts/get", prompt: "summarize" }).prompts;
const openGuard = new Guard({ publicKey, openResources: true, openPrompts: false });
console.log(resourceSets, promptNames, openGuard);
// Proofs, pins and approvals (issue 16)
import { toolHashes } from "mcpvault";
import { withMcpVaultClient, mcpVaultFetch } from "mcpvault-mcp";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
const holderKeys = vault.generateKeypair();
const approverKeys = vault.generateKeypair();
const pins: Record<string, string> = toolHashes({ tools: [{ name: "pay", inputSchema: { type: "object" } }] });
const stepUp: string = vault.mint(privateKey, { tools: ["pay"], ttl: 60, issuer: "i", subject: "s", holder: holderKeys.publicKey,
  pin: pins, requireApproval: [{ tool: "pay", approvers: [approverKeys.publicKey], needed: 1 }] });
const stepUpNarrow: string = vault.attenuate(stepUp, { pin: { pay: pins.pay }, requireApproval: [{ tool: "pay", approvers: [approverKeys.publicKey] }] });
const proof: string = vault.signCall(holderKeys.privateKey, stepUp, { tool: "pay", arguments: { amount: 5 } });
const requestHash: string = vault.requestHash(stepUp, { tool: "pay", arguments: { amount: 5 } });
const approval: string = vault.approve(approverKeys.privateKey, requestHash, { ttl: 120 });
try {
  const stepFacts: AuthorizedFacts = vault.verify(stepUp, publicKey, { tool: "pay", arguments: { amount: 5 }, proof,
    toolDefinition: pins.pay, approvals: [approval] });
  const approvedBy: string[] | undefined = stepFacts.approvals?.map((a) => a.approver);
  const pinned: Record<string, string[]> | undefined = stepFacts.pins;
  console.log(approvedBy, pinned);
} catch (e) {
  if (e instanceof McpVaultError && e.code === "approval_required") console.log(e.approval?.requestHash, e.approval?.needed);
}
const approvalRule: PolicyRule = { id: "big", tool: "pay", when: { amount: { gt: 100 } }, enforcement: "approval",
  approvers: [approverKeys.publicKey], needed: 1 };
const twoLayers = new Guard({ publicKey, rules: [approvalRule], forwardProofs: true, deferPins: true });
const signedClient: Client = withMcpVaultClient(new Client({ name: "c", version: "1" }), { token: stepUp, holderKey: holderKeys.privateKey });
const signingFetch: typeof fetch = mcpVaultFetch();
console.log(stepUpNarrow, twoLayers, signedClient, signingFetch);
