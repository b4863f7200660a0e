// The Redis store (ioredis), for fleets of servers: revocations in a set, each spent nonce a key written by one
// Lua script (revocation checked first; all of a token's nonces or none, with an expiry at the token's), recorded
// responses a key per call, the audit log a list appended by a second script only while its head is the one the entry
// was computed from (a conflicting append retries).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { auditAppend, redisAnswer, redisCall, revocationId } from "mcpvault";

const P = "mcpvault:";
// The store's atomic step, shared with the CLI (crates/cli/src/store.rs) and Python: the one copy of the core's rules in Lua.
const SPEND = readFileSync(new URL("./spend.lua", import.meta.url), "utf8");
// The audit append: the entry and the head written together, only on the head the entry follows.
const AUDIT = readFileSync(new URL("./audit.lua", import.meta.url), "utf8");

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
    client.defineCommand("mcpvaultAppend", { numberOfKeys: 2, lua: AUDIT });
    // appends of this process go one at a time (each would otherwise retry on the other's head)
    this.appending = Promise.resolve();
  }

  async revoke(id) {
    await this.redis.sadd(`${P}revoked`, revocationId(id));
  }

  async check(ask) {
    // what spend.lua is sent and what its reply means are the core's (redisCall, redisAnswer)
    const { keys, args } = redisCall(ask);
    return redisAnswer(ask, await this.redis.mcpvaultCheck(keys.length, ...keys, ...args));
  }

  /** `until` is on the guard's clock; Redis expires by `keepFor` seconds on its own (a caller that passes only
   * `until`, as the Store interface once read: until it on this clock, not 1 s). */
  async complete(callKey, response, until, keepFor) {
    const ttl = keepFor ?? (Number.isFinite(until) ? until - Math.floor(Date.now() / 1000) : 1);
    await this.redis.set(`${P}result:${callKey}`, JSON.stringify(response), "EX", Math.max(1, Math.ceil(ttl)));
  }

  appendAudit(record) {
    const next = this.appending.then(() => this.appendOnce(record));
    this.appending = next.catch(() => {});
    return next;
  }

  async appendOnce(record) {
    // Optimistic: read the head, compute the entry in the core, append if the head did not move (audit.lua). A list
    // key of another type is an error from the script, with nothing written: the guard refuses what it would record.
    for (let attempt = 0; attempt < 1000; attempt++) {
      const head = await this.redis.get(`${P}audit:head`);
      const entry = auditAppend(head ? JSON.parse(head) : null, record);
      const text = JSON.stringify(entry);
      if ((await this.redis.mcpvaultAppend(`${P}audit`, `${P}audit:head`, head ?? "", text)) === 1) return entry;
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
