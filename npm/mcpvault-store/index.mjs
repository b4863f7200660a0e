// mcpvault-store: what a verifier remembers between calls — revoked ids, spent nonces, recorded responses, the audit
// log — behind one small interface, in memory, in SQLite (the embedded default, WAL) or in Redis (for fleets of
// servers). Stores only read and write: every decision is the core's (mcpvault's Guard and storeDecide; Redis runs
// spend.lua, held to the same vectors).
//
//   revoke(id)                                   a full revocation id (128 hex) is revoked from now on
//   check(ask) -> answer                         the guard's atomic step: is any of ask.revocation_ids revoked, then
//                                                spend ask.spend (fresh / in_flight / done with the recorded response /
//                                                replayed), in one transaction
//   complete(callKey, response, until)           records the response of a single-use call for its retries
//   appendAudit(record) -> entry                 the next entry of the hash chain (the core's auditAppend)
//   auditEntries() -> entry[]                    the chain, in order
//   close()
export { MemoryStore } from "./memory.mjs";

/**
 * Opens a store from a spec: "memory", "sqlite:FILE" (better-sqlite3) or "redis://host:port[/db]" (ioredis).
 */
export async function openStore(spec) {
  if (spec === "memory") {
    const { MemoryStore } = await import("./memory.mjs");
    return new MemoryStore();
  }
  if (typeof spec === "string" && spec.startsWith("sqlite:")) {
    const { SqliteStore } = await import("./sqlite.mjs");
    return SqliteStore.open(spec.slice("sqlite:".length));
  }
  if (typeof spec === "string" && /^rediss?:\/\//.test(spec)) {
    const { RedisStore } = await import("./redis.mjs");
    return RedisStore.open(spec);
  }
  throw new TypeError(`mcpvault-store: unknown store ${JSON.stringify(spec)} (memory, sqlite:FILE or redis://HOST:PORT)`);
}
