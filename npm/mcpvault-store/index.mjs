// mcpvault-store: what a verifier remembers between calls — revoked ids, spent nonces, the audit log — behind one
// small interface, in memory, in SQLite (the embedded default, WAL) or in Redis (for fleets of servers).
//
//   revoke(id)                                   a revocation id (hex) is revoked from now on
//   firstRevoked(ids) -> id | null               the first of a token's ids that is revoked
//   spend(nonces, callKey, { now, until, retryWindow }) -> { result: "fresh" | "retry" | "replayed", nonce? }
//                                                atomically: all nonces unspent -> spent by this call ("fresh");
//                                                spent by the same call key within retryWindow seconds -> "retry";
//                                                otherwise "replayed"
//   appendAudit(record) -> entry                 the next entry of the hash chain (the core's auditAppend)
//   auditEntries() -> entry[]                    the chain, in order
//   close()
export { MemoryStore } from "./memory.mjs";

export { RETRY_WINDOW, spendDecision } from "./spend.mjs";

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
