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
  if (f.pins !== undefined) out.pins = f.pins;
  if (f.holder !== undefined) out.holder = f.holder;
  if (f.proofNonce !== undefined) out.proof_nonce = f.proofNonce;
  if (f.approvals !== undefined) out.approvals = f.approvals.map(({ expiresAt, ...a }) => ({ ...a, expires_at: expiresAt }));
  if (f.quotas !== undefined) out.quotas = f.quotas.map(({ revocationId, ...q }) => ({ ...q, revocation_id: revocationId }));
  return out;
}

/** A vector's request (the core's snake_case JSON) as the API takes it. */
function apiRequest(c) {
  const { tool_definition, ...r } = c.request;
  return { ...r, ...(tool_definition === undefined ? {} : { toolDefinition: tool_definition }), now: c.now };
}

/** One case through a vault: `{ ok: facts }` (the API's shape) or `{ error: code }`. */
function answer(api, vault, c) {
  try {
    return { ok: vault.verify(c.token, c.public_key, apiRequest(c)) };
  } catch (e) {
    if (!(e instanceof api.McpVaultError)) throw e;
    return { error: e.code };
  }
}

/** Compares answers (however a host produced them) with the cases' expectations. */
function check(label, cases, answers, assert) {
  let passed = 0, failed = 0;
  cases.forEach((c, i) => {
    const a = answers[i];
    const got = a && a.ok ? { ok: coreShape(a.ok) } : a;
    try {
      assert.deepStrictEqual(got, c.expect);
      passed++;
    } catch {
      failed++;
      console.error(`FAIL ${label} ${c.file}: expected ${JSON.stringify(c.expect)}, got ${JSON.stringify(got)}`);
    }
  });
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  return { passed, failed };
}

function run(api, label, assert, vault = new api.MCPVault()) {
  const cases = vectors();
  return check(label, cases, cases.map((c) => answer(api, vault, c)), assert);
}

/** Every expressible case through the fetch gate (see gate-answers.mjs), compared with the core's answer. */
async function runGate(api, label, assert, vault = new api.MCPVault()) {
  const { gateCases, gateAnswers } = await import("./gate-answers.mjs");
  const cases = gateCases(vectors());
  return check(label, cases, await gateAnswers(api, cases, vault), assert);
}

module.exports = { run, runGate, check, answer, vectors };
