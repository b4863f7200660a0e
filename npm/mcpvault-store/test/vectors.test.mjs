// tests/vectors/state (revocation, replay) through the gate's authorizeWithState and a MemoryStore, and
// tests/vectors/audit (chain, tampering, call keys) through the npm build: the same answers as the Rust core.
import test from "node:test";
import assert from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import { MCPVault, McpVaultError, authorizeWithState, auditAppend, auditVerify, callKey } from "mcpvault";
import { MemoryStore } from "mcpvault-store";

const dir = new URL("../../../tests/vectors/", import.meta.url);
const cases = (sub) => readdirSync(new URL(`${sub}/`, dir)).filter((f) => f.endsWith(".json")).sort()
  .map((f) => JSON.parse(readFileSync(new URL(`${sub}/${f}`, dir), "utf8")));

/** The core's facts shape, as in the vector files. */
function coreShape(f) {
  const out = { verified: f.verified, tools: f.tools, issuer: f.issuer, subject: f.subject, expires_at: f.expiresAt,
    depth: f.depth, audience: f.audience, max_depth: f.maxDepth, revocation_ids: f.revocationIds };
  if (f.tool !== undefined) out.tool = f.tool;
  if (f.nonces !== undefined) out.nonces = f.nonces;
  return out;
}

test("state vectors: revocation and replay through authorizeWithState and a MemoryStore", async () => {
  const all = cases("state");
  assert.ok(all.length >= 8);
  const vault = new MCPVault();
  for (const c of all) {
    const store = new MemoryStore();
    for (const id of c.state.revoked) await store.revoke(id);
    for (const n of c.state.spent) await store.spend([n], "another call", { now: c.now, until: c.now + 86400, retryWindow: 0 });
    const message = { jsonrpc: "2.0", id: "vector", method: "tools/call", params: { name: c.request.tool, arguments: c.request.arguments ?? {} } };
    const out = await authorizeWithState(c.token, message, {
      publicKey: c.public_key, now: c.now, vault, revocationStore: store, replayStore: c.state.replay_store ? store : undefined,
    });
    const got = out instanceof McpVaultError ? { error: out.code } : { ok: coreShape(out) };
    assert.deepStrictEqual(got, c.expect, c.name);
  }
});

test("audit vectors: the npm build writes and checks the same chain, and the same call keys", () => {
  const all = cases("audit");
  assert.ok(all.length >= 8);
  for (const c of all) {
    if (c.operation === "audit_append") {
      const entries = [];
      for (const r of c.records) entries.push(auditAppend(entries.at(-1) ?? null, r));
      assert.deepStrictEqual({ entries }, c.expect, c.name);
    } else if (c.operation === "audit_verify") {
      const out = auditVerify(c.entries);
      assert.deepStrictEqual(out.break ? { break: out.break } : { ok: out }, c.expect, c.name);
    } else if (c.operation === "call_key") {
      assert.strictEqual(callKey(c.request_id, c.method, c.tool, c.arguments), c.expect, c.name);
    } else assert.fail(`unknown operation ${c.operation}`);
  }
});
