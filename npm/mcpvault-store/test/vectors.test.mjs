// tests/vectors/state (the guard: revocation, single use and retries, batches, every method) through the npm
// build's Guard on every store — memory, SQLite, Redis (spend.lua) — and tests/vectors/audit (chain, tampering,
// call keys): the same answers as the Rust core, step by step, outcome by outcome.
import test from "node:test";
import assert from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import { Guard, auditAppend, auditVerify, callKey } from "mcpvault";
import { freshStore, startRedis } from "./helpers.mjs";

const dir = new URL("../../../tests/vectors/", import.meta.url);
const cases = (sub) => readdirSync(new URL(`${sub}/`, dir)).filter((f) => f.endsWith(".json")).sort()
  .map((f) => JSON.parse(readFileSync(new URL(`${sub}/${f}`, dir), "utf8")));

const redis = await startRedis();
test.after(() => redis.stop());

/** The Guard options of a vector's core options. */
function guardOptions(o, store) {
  return {
    publicKey: o.public_key, audience: o.audience, retryWindow: o.retry_window, tool: o.tool, checkTool: o.check_tool,
    deferSpend: o.defer_spend, realm: o.realm, resourceMetadata: o.resource_metadata, store: o.store ? store : undefined,
    mappings: o.mappings, toolMappings: o.tool_mappings, rules: o.rules, openResources: o.open_resources,
    openPrompts: o.open_prompts, forwardProofs: o.forward_proofs, deferPins: o.defer_pins,
    maxBodyContainers: o.max_body_containers, maxBodyValues: o.max_body_values, verifyOnly: o.verify_only,
  };
}

/** A vector's input (the core's GuardInput) as Guard.decide parts. */
function parts(i, now) {
  return {
    now, httpMethod: i.http_method, headers: i.headers ?? {}, body: i.body, bodyError: i.body_error,
    transportToken: i.transport_token, fallbackToken: i.fallback_token, replayChecked: i.replay_checked,
    sessionSubject: i.session_subject, sessionBook: i.session_book, toolDefinitions: i.tool_definitions,
  };
}

for (const kind of ["memory", "sqlite", "redis"]) {
  test(`state vectors through the Guard on ${kind}: every outcome, step by step`, async () => {
    const all = cases("state");
    assert.ok(all.length >= 40);
    let passed = 0;
    for (const c of all) {
      const { store } = await freshStore(kind, redis.url);
      // every store is closed, a failing case's too: an open Redis client would keep the test process alive
      const open = [store];
      try {
        for (const id of c.revoked) await store.revoke(id);
        for (const cache of [0, 16]) {
          if (cache === 16 && kind !== "memory") continue;
          const { store: s } = cache === 0 ? { store } : await freshStore(kind, redis.url);
          if (s !== store) open.push(s);
          if (cache === 16) for (const id of c.revoked) await s.revoke(id);
          const guard = new Guard({ ...guardOptions(c.options, s), cache });
          for (const [i, step] of c.steps.entries()) {
            const outcome = await guard.decide(parts(step.input, step.now));
            if (step.complete !== undefined) await guard.complete(outcome, step.complete);
            // `cache_hit` depends on the cache's size and history: the vectors never hold it
            for (const d of outcome.decisions) delete d.cache_hit;
            assert.deepStrictEqual(outcome, step.expect, `${c.name} step ${i} (cache ${cache})`);
          }
          assert.strictEqual((await s.auditEntries()).length, c.audit_entries, `${c.name}: audit entries`);
        }
      } finally {
        await Promise.allSettled(open.map((s) => s.close()));
      }
      passed++;
    }
    console.log(`state vectors on ${kind}: ${passed} passed, 0 failed`);
  });
}

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
