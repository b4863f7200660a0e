// Shared by the CJS and ESM vector tests: runs every tests/vectors file.
const { readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");

const dir = join(__dirname, "..", "..", "..", "tests", "vectors");

function vectors() {
  return readdirSync(dir).filter((f) => f.endsWith(".json")).sort()
    .map((f) => ({ file: f, ...JSON.parse(readFileSync(join(dir, f), "utf8")) }));
}

/** The core's JSON shape, so answers compare with the vector files as-is. */
function coreShape(f) {
  const out = { verified: f.verified, tools: f.tools, issuer: f.issuer, subject: f.subject,
    expires_at: f.expiresAt, depth: f.depth, audience: f.audience, max_depth: f.maxDepth,
    revocation_ids: f.revocationIds };
  if (f.tool !== undefined) out.tool = f.tool;
  return out;
}

function run(api, label, assert, vault = new api.MCPVault()) {
  let passed = 0, failed = 0;
  for (const c of vectors()) {
    let got;
    try {
      got = { ok: coreShape(vault.verify(c.token, c.public_key, { ...c.request, now: c.now })) };
    } catch (e) {
      if (!(e instanceof api.McpVaultError)) throw e;
      got = { error: e.code };
    }
    try {
      assert.deepStrictEqual(got, c.expect);
      passed++;
    } catch (e) {
      failed++;
      console.error(`FAIL ${c.file}: expected ${JSON.stringify(c.expect)}, got ${JSON.stringify(got)}`);
    }
  }
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  return { passed, failed };
}

module.exports = { run, vectors, coreShape };
