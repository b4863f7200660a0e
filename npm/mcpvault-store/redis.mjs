// The Redis store (ioredis), for fleets of servers: revocations in a set, each spent nonce a key written by one
// Lua script (all of a token's nonces or none, with an expiry at the token's), the audit log a list whose head is
// appended under WATCH (a conflicting append retries).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { auditAppend } from "mcpvault";

const P = "mcpvault:";
// The spend script, shared with the CLI (src/store.rs includes the same file).
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
    client.defineCommand("mcpvaultSpend", { lua: SPEND });
    // WATCH belongs to the connection: appends of this process go one at a time.
    this.appending = Promise.resolve();
  }

  async revoke(id) {
    await this.redis.sadd(`${P}revoked`, id);
  }

  async firstRevoked(ids) {
    if (ids.length === 0) return null;
    const member = await this.redis.smismember(`${P}revoked`, ...ids);
    const i = member.findIndex((m) => m === 1);
    return i < 0 ? null : ids[i];
  }

  async spend(nonces, callKey, { now, until, retryWindow }) {
    if (nonces.length === 0) return { result: "fresh" };
    const keys = nonces.map((n) => `${P}nonce:${n}`);
    const out = await this.redis.mcpvaultSpend(keys.length, ...keys, callKey, now, Math.max(until, now + 1), retryWindow);
    return out[0] === "replayed" ? { result: "replayed", nonce: out[1].slice(`${P}nonce:`.length) } : { result: out[0] };
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
