// The same suite on every store: memory, SQLite, Redis. Cascading revocation, single-use tokens and retries,
// the audit chain and its tampering, then the multi-process race and the SIGKILL durability test (SQLite, Redis).
import test from "node:test";
import assert from "node:assert";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Guard, MCPVault, McpVaultError, authorizeBody, authorizeWithState, auditVerify } from "mcpvault";
import { openStore } from "mcpvault-store";
import { freshStore, startRedis, tmp } from "./helpers.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const mint = (extra = {}) => vault.mint(keys.privateKey, { tools: ["db_query", "file_read"], ttl: 3600, issuer: "auth-server", subject: "agent-a", ...extra });
const call = (id, tool = "db_query", args = {}) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: args } });
const code = (out) => (out instanceof McpVaultError ? out.code : "allowed");

const redis = await startRedis();
test.after(() => redis.stop());

for (const kind of ["memory", "sqlite", "redis"]) {
  const open = () => freshStore(kind, redis.url);

  test(`${kind}: revoking a token refuses it and every token attenuated from it, 1 to 5 hops`, async () => {
    const { store } = await open();
    const opts = { publicKey: keys.publicKey, vault, store };
    const chain = [mint()];
    for (let i = 1; i <= 5; i++) chain.push(vault.attenuate(chain[i - 1], { ttl: 3600 - i }));
    for (const t of chain) assert.strictEqual(code(await authorizeWithState(t, call(1), opts)), "allowed");
    // revoke hop 2: hops 2..5 refused, root and hop 1 still allowed
    const hop2 = vault.inspect(chain[2]).revocation_ids[2];
    await store.revoke(hop2);
    assert.deepStrictEqual(await Promise.all(chain.map(async (t) => code(await authorizeWithState(t, call(1), opts)))),
      ["allowed", "allowed", "revoked", "revoked", "revoked", "revoked"]);
    // revoke the root: everything
    await store.revoke(vault.inspect(chain[0]).revocation_ids[0]);
    for (const t of chain) assert.strictEqual(code(await authorizeWithState(t, call(1), opts)), "revoked");
    // another root is untouched
    assert.strictEqual(code(await authorizeWithState(mint(), call(1), opts)), "allowed");
    const refused = await authorizeWithState(chain[3], call(1), opts);
    assert.strictEqual(refused.message, "token has been revoked");
    assert.match(refused.detail, /revocation id [0-9a-f]+ is revoked/);
    await store.close();
  });

  test(`${kind}: a single-use token lets one call through, once; the same request again is in_flight or gets the recorded response`, async () => {
    const { store } = await open();
    const opts = { publicKey: keys.publicKey, vault, store };
    const once = mint({ singleUse: true });
    assert.strictEqual(vault.verify(once, keys.publicKey, { tool: "db_query" }).nonces.length, 1);
    assert.strictEqual(code(await authorizeWithState(once, call(7, "db_query", { q: 1 }), opts)), "allowed");
    assert.strictEqual(code(await authorizeWithState(once, call(7, "db_query", { q: 1 }), opts)), "in_flight", "the same request again is not run twice");
    assert.strictEqual(code(await authorizeWithState(once, call(8, "db_query", { q: 1 }), opts)), "replayed");
    assert.strictEqual(code(await authorizeWithState(once, call(7, "db_query", { q: 2 }), opts)), "replayed", "same id, another call");
    assert.strictEqual(code(await authorizeWithState(once, call(7, "db_query", { q: 1 }), { ...opts, now: NOW + 31 })), "replayed", "after the retry window");
    // a derived token shares the use; a single-use hop on a reusable token is single-use itself
    assert.strictEqual(code(await authorizeWithState(vault.attenuate(once, { ttl: 60 }), call(9), opts)), "replayed");
    const reusable = mint();
    const hop = vault.attenuate(reusable, { singleUse: true });
    assert.strictEqual(code(await authorizeWithState(hop, call(1), opts)), "allowed");
    assert.strictEqual(code(await authorizeWithState(hop, call(2), opts)), "replayed");
    assert.strictEqual(code(await authorizeWithState(reusable, call(3), opts)), "allowed");
    assert.strictEqual(code(await authorizeWithState(reusable, call(3), opts)), "allowed");
    // with a Guard that records responses, the retry gets the first execution's response
    const g = new Guard({ publicKey: keys.publicKey, store, now: () => NOW });
    const twice = mint({ singleUse: true });
    const first = await g.decide({ body: call(1), fallbackToken: twice });
    assert.ok(first.allowed && first.call_key);
    await g.complete(first, { result: { content: [{ type: "text", text: "ran once" }] } });
    const retry = await g.decide({ body: call(1), fallbackToken: twice });
    assert.deepStrictEqual([retry.allowed, retry.forward, retry.answers], [true, null,
      [{ jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "ran once" }] } }]]);
    // the verify APIs cannot answer with that response: the retry is refused there, never allowed to run again
    // (helper 40: they answered it with the token's facts)
    assert.strictEqual(code(await authorizeWithState(twice, call(1), opts)), "replayed");
    const viaBody = await authorizeBody(twice, call(1), opts);
    assert.strictEqual(viaBody.error?.code, "replayed");
    assert.strictEqual(viaBody.facts, undefined);
    // a store whose answer says nothing of the spend it was asked lets nothing through
    const silent = { check: async () => ({}), complete: async () => {}, appendAudit: async (r) => store.appendAudit(r) };
    for (const id of [1, 2, 3]) {
      assert.strictEqual(code(await authorizeWithState(mint({ singleUse: true }), call(id), { ...opts, store: silent })), "internal_error");
    }
    // a prefix of a revocation id revokes nothing, so it is refused
    await assert.rejects(store.revoke(vault.inspect(twice).revocation_ids[0].slice(0, 16)), (e) => e.code === "invalid_request");
    // without a store a single-use token is refused
    assert.strictEqual(code(await authorizeWithState(mint({ singleUse: true }), call(1), { publicKey: keys.publicKey, vault })), "replayed");
    await store.close();
  });

  test(`${kind}: every decision goes into the audit chain; editing, deleting or swapping an entry is named`, async () => {
    const { store } = await open();
    const opts = { publicKey: keys.publicKey, vault, store };
    const t = mint();
    await authorizeWithState(t, call(1, "db_query"), opts);
    await authorizeWithState(t, call(2, "admin_delete"), opts);
    await authorizeWithState("garbage", call(3), opts);
    await authorizeWithState(null, call(4), opts);
    await authorizeWithState(t, call("five", "file_read"), opts);
    const entries = await store.auditEntries();
    assert.deepStrictEqual(entries.map((e) => [e.seq, e.allowed, e.code, e.tool, e.request_id]), [
      [1, true, null, "db_query", "1"], [2, false, "tool_not_allowed", "admin_delete", "2"],
      [3, false, "malformed_token", "db_query", "3"], [4, false, "missing_token", "db_query", "4"], [5, true, null, "file_read", "five"],
    ]);
    assert.deepStrictEqual(entries[0].revocation_ids, vault.inspect(t).revocation_ids);
    assert.strictEqual(entries[2].subject, null);
    assert.deepStrictEqual(auditVerify(entries), { entries: 5, head: entries[4].hash });
    const edited = structuredClone(entries);
    edited[1].allowed = true;
    assert.deepStrictEqual([auditVerify(edited).break.index, auditVerify(edited).break.kind], [1, "edited"]);
    const deleted = entries.filter((_, i) => i !== 2);
    assert.deepStrictEqual([auditVerify(deleted).break.index, auditVerify(deleted).break.kind], [2, "deleted"]);
    const swapped = [entries[0], entries[3], entries[2], entries[1], entries[4]];
    assert.deepStrictEqual([auditVerify(swapped).break.index, auditVerify(swapped).break.kind], [1, "reordered"]);
    await store.close();
  });
}

/** Runs `node script args…`, resolves to its stdout. */
function run(script, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("exit", (c) => (c === 0 ? resolve(out) : reject(new Error(`${script} exited ${c}`))));
  });
}

for (const kind of ["sqlite", "redis"]) {
  test(`${kind}: two processes racing, 200 attempts each on 200 single-use tokens: exactly 200 allowed`, async () => {
    const { store, spec } = await freshStore(kind, redis.url);
    await store.close();
    const tokens = Array.from({ length: 200 }, () => mint({ singleUse: true }));
    const file = join(tmp(), "tokens.json");
    writeFileSync(file, JSON.stringify({ publicKey: keys.publicKey, now: NOW, tokens }));
    const start = String(Date.now() + 1500); // both racers start together, once their store is open
    const [a, b] = await Promise.all([run("race-worker.mjs", [spec, file, "a", start]), run("race-worker.mjs", [spec, file, "b", start])]);
    const [na, nb] = [JSON.parse(a), JSON.parse(b)];
    console.log(`${kind} race: a allowed ${na.allowed}, b allowed ${nb.allowed}`);
    assert.strictEqual(na.allowed + nb.allowed, 200, `a ${JSON.stringify(na)} b ${JSON.stringify(nb)}`);
    assert.strictEqual(na.replayed + nb.replayed, 200);
    assert.strictEqual(na.other + nb.other, 0);
  });

  test(`${kind}: the same request of a single-use token sent 50 times at once by two processes runs the handler once`, async () => {
    const { store, spec } = await freshStore(kind, redis.url);
    await store.close();
    const dir = tmp();
    const file = join(dir, "token.json");
    const runs = join(dir, "runs.txt");
    writeFileSync(file, JSON.stringify({ publicKey: keys.publicKey, now: NOW, token: mint({ singleUse: true }) }));
    writeFileSync(runs, "");
    const start = String(Date.now() + 1500);
    const outs = await Promise.all(["a", "b"].map(() => run("same-request-worker.mjs", [spec, file, "25", runs, start])));
    const [a, b] = outs.map((o) => JSON.parse(o));
    console.log(`${kind} same request x50: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
    assert.strictEqual(readFileSync(runs, "utf8").trim().split("\n").length, 1, "the handler ran exactly once");
    assert.strictEqual(a.allowed + b.allowed, 1);
    assert.strictEqual(a.in_flight + b.in_flight + a.answered + b.answered, 49);
    assert.strictEqual(a.other + b.other, 0);
  });

  test(`${kind}: two servers sharing the store, 200 concurrent calls against a rate of 50: exactly 50 allowed`, async () => {
    const { store, spec } = await freshStore(kind, redis.url);
    await store.close();
    const file = join(tmp(), "token.json");
    writeFileSync(file, JSON.stringify({ publicKey: keys.publicKey, now: NOW, token: mint({ rate: { max: 50, period: 3600 } }) }));
    const start = String(Date.now() + 1500);
    const outs = await Promise.all(["a", "b"].map((n) => run("quota-race-worker.mjs", [spec, file, n, "100", start])));
    const [a, b] = outs.map((o) => JSON.parse(o));
    console.log(`${kind} quota race: ${JSON.stringify(a)} ${JSON.stringify(b)}`);
    assert.strictEqual(a.allowed + b.allowed, 50, `a ${JSON.stringify(a)} b ${JSON.stringify(b)}`);
    assert.strictEqual(a.rate_limited + b.rate_limited, 150);
    assert.strictEqual(a.other + b.other, 0);
  });

  test(`${kind}: a request stolen from a log (a holder's proof, an approval) sent 50 times at once to two servers: one runs`, async () => {
    const { store, spec } = await freshStore(kind, redis.url);
    await store.close();
    const vault = new MCPVault({ now: () => NOW });
    const holder = vault.generateKeypair();
    const approver = vault.generateKeypair();
    const args = { sql: "select 1" };
    const bound = mint({ holder: holder.publicKey });
    const gated = mint({ requireApproval: [{ tool: "db_query", approvers: [approver.publicKey] }] });
    const cases = [
      { token: bound, meta: { "mcpvault/proof": vault.signCall(holder.privateKey, bound, { tool: "db_query", arguments: args }) } },
      { token: gated, meta: { "mcpvault/approvals": [vault.approve(approver.privateKey, vault.requestHash(gated, { tool: "db_query", arguments: args }))] } },
    ];
    for (const c of cases) {
      const file = join(tmp(), "token.json");
      writeFileSync(file, JSON.stringify({ publicKey: keys.publicKey, now: NOW, args, ...c }));
      const start = String(Date.now() + 1500);
      const outs = await Promise.all(["a", "b"].map((n) => run("quota-race-worker.mjs", [spec, file, n, "25", start])));
      const [a, b] = outs.map((o) => JSON.parse(o));
      console.log(`${kind} stolen request x50 (${Object.keys(c.meta)[0]}): ${JSON.stringify(a)} ${JSON.stringify(b)}`);
      assert.strictEqual(a.allowed + b.allowed, 1, `a ${JSON.stringify(a)} b ${JSON.stringify(b)}`);
      assert.strictEqual(a.replayed + b.replayed, 49);
      assert.strictEqual(a.other + b.other, 0);
    }
  });

  test(`${kind}: a writer killed with SIGKILL loses no acknowledged audit entry, and the chain verifies`, async () => {
    const { store, spec } = await freshStore(kind, redis.url);
    await store.close();
    const child = spawn(process.execPath, [join(here, "audit-writer.mjs"), spec], { stdio: ["ignore", "pipe", "inherit"] });
    let acked = 0;
    let buf = "";
    await new Promise((resolve) => {
      child.stdout.on("data", (d) => {
        buf += d;
        const lines = buf.split("\n");
        buf = lines.pop();
        for (const l of lines) if (l.startsWith("ack ")) acked = Math.max(acked, Number(l.slice(4)));
        if (acked >= 150) resolve();
      });
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const reopened = await openStore(spec);
    const entries = await reopened.auditEntries();
    await reopened.close();
    assert.ok(entries.length >= acked, `${entries.length} entries, ${acked} acknowledged`);
    assert.deepStrictEqual(entries.slice(0, acked).map((e) => e.seq), Array.from({ length: acked }, (_, i) => i + 1));
    assert.strictEqual(auditVerify(entries).entries, entries.length);
  });
}

for (const kind of ["sqlite", "redis"]) {
  test(`${kind}: the CLI and Node share a store: \`mcpvault revoke\` is seen by Node, Node's audit log passes \`mcpvault audit verify\``,
    { skip: !process.env.MCPVAULT_CLI && "MCPVAULT_CLI is not set (make test-store sets it)" }, async () => {
      const cli = (...args) => new Promise((resolve) => {
        const child = spawn(process.env.MCPVAULT_CLI, args, { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("exit", (status) => resolve({ status, out: out.trim() }));
      });
      const { store, spec } = await freshStore(kind, redis.url);
      const opts = { publicKey: keys.publicKey, vault, store };
      const root = mint();
      const child = vault.attenuate(root, { tools: ["db_query"] });
      assert.strictEqual(code(await authorizeWithState(child, call(1), opts)), "allowed");
      const ids = (await cli("revocation-ids", "--token", child)).out.split("\n");
      assert.deepStrictEqual(ids, vault.inspect(child).revocation_ids);
      assert.strictEqual((await cli("revoke", "--id", ids[0], "--store", spec)).status, 0);
      assert.strictEqual(code(await authorizeWithState(child, call(2), opts)), "revoked");
      const verdict = await cli("audit", "verify", "--store", spec);
      assert.deepStrictEqual([verdict.status, verdict.out.split(",")[0]], [0, "ok: 2 entries"]);
      await store.close();
    });
}

for (const kind of ["sqlite", "memory"]) test(`${kind}: a request decided at a clock set far ahead sweeps nothing still due by the store's own clock`, async () => {
  // a test clock, or a host clock that jumped ahead and came back: the spent nonce of a single-use token (and the
  // counters of quotas) must outlive it, or the token would run again when time comes back
  const { store } = await freshStore(kind, redis.url);
  const real = Math.floor(Date.now() / 1000); // the store's clock, which the sweep now also asks
  const clocked = new MCPVault({ now: () => real });
  const opts = { publicKey: keys.publicKey, vault: clocked, store };
  const grant = { tools: ["db_query"], ttl: 3600, issuer: "auth-server", subject: "agent-a", singleUse: true };
  const once = clocked.mint(keys.privateKey, grant);
  assert.strictEqual(code(await authorizeWithState(once, call(1), opts)), "allowed");
  const later = real + 10 * 365 * 86400;
  const far = clocked.mint(keys.privateKey, grant, { now: later });
  assert.strictEqual(code(await authorizeWithState(far, call(2), { ...opts, now: later })), "allowed");
  assert.strictEqual(code(await authorizeWithState(once, call(3), { ...opts, now: real + 5 })), "replayed", "the spent nonce was swept");
  await store.close();
});

test("a refused request cannot grow the audit log: what the caller chose is cut to 256 characters", async () => {
  const store = await openStore("memory");
  const huge = "x".repeat(100_000);
  const msg = { jsonrpc: "2.0", id: huge, method: "tools/call", params: { name: huge, arguments: {} } };
  assert.strictEqual(code(await authorizeWithState(mint(), msg, { publicKey: keys.publicKey, vault, store })), "invalid_request");
  const [e] = await store.auditEntries();
  assert.deepStrictEqual([e.tool.length, e.request_id.length, e.allowed], [256, 256, false]);
});

test("the memory store keeps the newest audit entries (the core's MEMORY_AUDIT_KEEP to twice it) and chains on", async () => {
  const { MemoryStore, MEMORY_AUDIT_KEEP } = await import("../memory.mjs");
  assert.strictEqual(MEMORY_AUDIT_KEEP, 10_000);
  const store = new MemoryStore();
  const n = 2 * MEMORY_AUDIT_KEEP + 5;
  for (let i = 0; i < n; i++) {
    await store.appendAudit({ time: i, allowed: true, code: null, method: "tools/list", tool: null, subject: null,
      issuer: null, revocation_ids: [], request_id: null });
  }
  const kept = await store.auditEntries();
  assert.ok(kept.length >= MEMORY_AUDIT_KEEP && kept.length < 2 * MEMORY_AUDIT_KEEP, `${kept.length} kept`);
  assert.strictEqual(kept.at(-1).seq, n);
  for (let i = 1; i < kept.length; i++) {
    assert.ok(kept[i].prev === kept[i - 1].hash && kept[i].seq === kept[i - 1].seq + 1, `link ${i}`);
  }
});

test("redis: a guard whose clock is ahead of Redis's keeps a spent nonce and a counter as long as Redis's clock needs", async () => {
  // keys expire on Redis's clock: a guard an hour ahead that spent a token 2 s before (its) expiry must not let the
  // key go after 2 s, or a server with a true clock runs the token again
  const { store } = await freshStore("redis", redis.url);
  const real = Math.floor(Date.now() / 1000);
  const ahead = real + 3598;
  const clocked = new MCPVault({ now: () => real });
  const grant = { tools: ["db_query"], ttl: 3600, issuer: "auth-server", subject: "agent-a", singleUse: true,
    rate: [{ tool: "db_query", max: 1, period: 86400 }] };
  const once = clocked.mint(keys.privateKey, grant);
  assert.strictEqual(code(await authorizeWithState(once, call(1), { publicKey: keys.publicKey, vault: clocked, store, now: ahead })), "allowed");
  const ttls = [];
  for (const key of await store.redis.keys("mcpvault:*")) {
    if (/^mcpvault:(nonce|quota):/.test(key)) ttls.push([key.split(":")[1], await store.redis.ttl(key)]);
  }
  assert.deepStrictEqual([...new Set(ttls.map(([k]) => k))].sort(), ["nonce", "quota"], JSON.stringify(ttls));
  // the nonce lives until the token's expiry (and the core's STORE_SKEW) on Redis's clock, the counter through its window
  for (const [kind, ttl] of ttls) assert.ok(ttl >= 3598, `${kind} expires in ${ttl} s`);
  await store.close();
});

test("redis: an audit append Redis refuses (the list key holds another type) refuses the request and moves no head", async () => {
  const { store } = await freshStore("redis", redis.url);
  const opts = { publicKey: keys.publicKey, vault, store, now: NOW };
  assert.strictEqual(code(await authorizeWithState(mint(), call(1), opts)), "allowed");
  const head = await store.redis.get("mcpvault:audit:head");
  await store.redis.del("mcpvault:audit");
  await store.redis.set("mcpvault:audit", "not a list");
  const refused = await authorizeWithState(mint(), call(2), opts);
  assert.strictEqual(code(refused), "internal_error");
  // nothing was written: the head is still the last entry the list took (EXEC used to move it regardless)
  assert.strictEqual(await store.redis.get("mcpvault:audit:head"), head);
  assert.strictEqual(await store.redis.get("mcpvault:audit"), "not a list");
  await store.close();
});
