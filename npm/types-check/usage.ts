// Compiled with `tsc --noEmit --strict` by `make test-mcp`: the published declarations type-check the documented
// usage of mcpvault, mcpvault-express and mcpvault-mcp.
import { MCPVault, McpVaultError, extractToken, authorizeCall, challenge, challengeResponse, authorizeFetch, Guard,
  revocationId, statusOf, CHECK_TOOL, type AuthorizedFacts, type Challenge, type GuardOutcome } from "mcpvault";
import { createMcpVaultMiddleware, type McpVaultDecision } from "mcpvault-express";
import { withMcpVault, checkConfig, startProxy, REDACTED } from "mcpvault-mcp";
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
