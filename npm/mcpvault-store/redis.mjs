// The Redis store (ioredis), for fleets of servers: revocations in a set, each spent nonce a key written by one
// Lua script (revocation checked first; all of a token's nonces or none, with an expiry at the token's), recorded
// responses a key per call, the audit log a list whose head is appended under WATCH (a conflicting append retries).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { auditAppend, revocationId } from "mcpvault";

const P = "mcpvault:";
// The store's atomic step, shared with the CLI (crates/cli/src/store.rs) and Python: the one copy of the core's rules in Lua.
const SPEND = readFileSync(new URL("./spend.lua", import.meta.url), "utf8");

export class RedisStore {
  /** Connects to `url` (redis://host:port[/db]). */
  static async open(url) {
    const Redis = createRequire(import.meta.url)("ioredis");
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false });
    await client.connect();
    return new RedisStore(client);
  }

  constructor(client) {
    this.kind = "redis";
    this.redis = client;
    client.defineCommand("mcpvaultCheck", { lua: SPEND });
    // WATCH belongs to the connection: appends of this process go one at a time.
    this.appending = Promise.resolve();
  }

  async revoke(id) {
    await this.redis.sadd(`${P}revoked`, revocationId(id));
  }

  async check(ask) {
    const s = ask.spend;
    const nonces = s ? s.nonces : [];
    const quotas = ask.quotas ?? [];
    const keys = [`${P}revoked`, ...nonces.map((n) => `${P}nonce:${n}`)];
    if (nonces.length > 0) keys.push(`${P}result:${s.call_key}`);
    keys.push(...quotas.map((q) => `${P}quota:${q.key}`));
    const charges = quotas.flatMap((q) => [q.max, q.amount, q.ttl, q.probe ? 1 : 0]);
    const out = await this.redis.mcpvaultCheck(keys.length, ...keys, s?.call_key ?? "", s?.now ?? 0, s?.until ?? 0,
      s?.window ?? 0, nonces.length, quotas.length, s?.probe ? 1 : 0, ...charges, ...ask.revocation_ids);
    const quota = (j, used) => {
      const q = quotas[Number(j) - 1];
      return { key: q.key, kind: q.kind, max: q.max, used: Number(used), amount: q.amount, until: q.until };
    };
    switch (out[0]) {
      case "revoked": return { revoked: out[1] };
      case "none":
      case "fresh": {
        const answer = {};
        if (out[0] === "fresh") answer.spend = { result: "fresh" };
        // a dry run's probe: what spending would find, and the first charge that would not fit
        if (s?.probe) answer.spend = out[1] ? { result: "replayed", nonce: out[1].slice(`${P}nonce:`.length) } : { result: "fresh" };
        if (out[2] && out[2] !== "0") answer.probe_quota = quota(out[2], out[3]);
        return answer;
      }
      case "in_flight": return { spend: { result: "in_flight" } };
      case "done": return { spend: { result: "done", response: JSON.parse(out[1]) } };
      case "replayed": return { spend: { result: "replayed", nonce: out[1].slice(`${P}nonce:`.length) } };
      case "quota": return { quota: quota(out[1], out[2]) };
      default: throw new Error(`mcpvault-store: unexpected answer ${out[0]}`);
    }
  }

  /** `until` is on the guard's clock; Redis expires by `keepFor` seconds on its own. */
  async complete(callKey, response, until, keepFor) {
    await this.redis.set(`${P}result:${callKey}`, JSON.stringify(response), "EX", Math.max(1, keepFor ?? 1));
  }

  appendAudit(record) {
    const next = this.appending.then(() => this.appendOnce(record));
    this.appending = next.catch(() => {});
    return next;
  }

  async appendOnce(record) {
    // Optimistic: read the head, compute the entry in the core, append if the head did not move.
    for (let attempt = 0; attempt < 1000; attempt++) {
      await this.redis.watch(`${P}audit:head`);
      const head = await this.redis.get(`${P}audit:head`);
      const entry = auditAppend(head ? JSON.parse(head) : null, record);
      const text = JSON.stringify(entry);
      const done = await this.redis.multi().rpush(`${P}audit`, text).set(`${P}audit:head`, text).exec();
      if (done !== null) return entry;
    }
    throw new Error("mcpvault-store: audit append kept conflicting");
  }

  async auditEntries() {
    return (await this.redis.lrange(`${P}audit`, 0, -1)).map((t) => JSON.parse(t));
  }

  async close() {
    await this.redis.quit();
  }
}
