// Runs every vector through the package's browser entry (plain ES module, `await init()`).
import { init, MCPVault, McpVaultError } from "/npm/mcpvault/dist/web.mjs";

function coreShape(f) {
  const out = { verified: f.verified, tools: f.tools, issuer: f.issuer, subject: f.subject,
    expires_at: f.expiresAt, depth: f.depth, audience: f.audience, max_depth: f.maxDepth,
    revocation_ids: f.revocationIds };
  if (f.tool !== undefined) out.tool = f.tool;
  return out;
}

// Key-order-insensitive JSON equality.
const canon = (v) => Array.isArray(v) ? v.map(canon)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));

let result;
try {
  let early = null;
  try { new MCPVault(); } catch (e) { early = e.message; }
  await init();
  const cases = await (await fetch("/vectors.json")).json();
  let passed = 0, failed = 0;
  const failures = [];
  for (const vault of [new MCPVault(), new MCPVault({ cache: 256 })]) {
    for (const c of cases) {
      let got;
      try {
        got = { ok: coreShape(vault.verify(c.token, c.public_key, { ...c.request, now: c.now })) };
      } catch (e) {
        if (!(e instanceof McpVaultError)) throw e;
        got = { error: e.code };
      }
      if (same(got, c.expect)) passed++; else { failed++; failures.push(c.name); }
    }
  }
  result = { passed, failed, failures, early };
} catch (e) {
  result = { passed: 0, failed: 1, failures: [String(e && e.stack || e)] };
}
document.getElementById("out").textContent = JSON.stringify(result, null, 2);
window.__mcpvault = result;
