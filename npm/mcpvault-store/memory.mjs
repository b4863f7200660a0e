// The in-memory store: one process, nothing kept. For tests and single-process servers that accept losing
// revocations, spent nonces and the audit log on restart. Each step runs without an await, so it is atomic.
import { auditAppend, revocationId, storeDecide } from "mcpvault";

// The fewest audit entries kept (the core's `state::MEMORY_AUDIT_KEEP`): a process's memory is no audit log, so at
// twice this the oldest half goes and the chain goes on from the newest entry. A log that keeps everything is
// SQLite's or Redis's.
export const MEMORY_AUDIT_KEEP = 10_000;

export class MemoryStore {
  constructor() {
    this.kind = "memory";
    this.revoked = new Set();
    this.nonces = new Map(); // nonce -> { call_key, at, until }
    this.recorded = new Map(); // call key -> { response, until }
    this.counts = new Map(); // quota counter -> { used, until }
    this.entries = [];
    // when the spent rows and the counters were last swept: a sweep is O(rows), so once per second at most (a row
    // written since has `until` after the time of its writing)
    this.sweptAt = -Infinity;
    this.countedAt = -Infinity;
  }

  async revoke(id) {
    this.revoked.add(revocationId(id));
  }

  async check(ask) {
    const s = ask.spend;
    // due by the guard's `now` and by this process's clock (a `now` set far ahead sweeps nothing still due)
    const due = s ? Math.min(s.now, Math.floor(Date.now() / 1000)) : -Infinity;
    if (s && due > this.sweptAt) {
      for (const [n, v] of this.nonces) if (v.until <= due) this.nonces.delete(n);
      for (const [k, v] of this.recorded) if (v.until <= due) this.recorded.delete(k);
      this.sweptAt = due;
    }
    const read = {
      revoked: ask.revocation_ids.filter((id) => this.revoked.has(id)),
      held: s ? s.nonces.map((n) => {
        const v = this.nonces.get(n);
        return v ? { call_key: v.call_key, at: v.at } : null;
      }) : [],
      recorded: s ? this.recorded.get(s.call_key)?.response ?? null : null,
      used: (ask.quotas ?? []).map((q) => this.counts.get(q.key)?.used ?? 0),
    };
    const d = storeDecide(ask, read);
    for (const row of d.write) this.nonces.set(row.nonce, { call_key: row.call_key, at: row.at, until: row.until });
    for (const row of d.counts) this.counts.set(row.key, { used: row.used, until: row.until });
    if (ask.quotas?.length > 0) {
      const now = Math.min(...ask.quotas.map((q) => q.until - q.ttl), Math.floor(Date.now() / 1000));
      if (now > this.countedAt) {
        for (const [k, v] of this.counts) if (v.until <= now) this.counts.delete(k);
        this.countedAt = now;
      }
    }
    return d.answer;
  }

  async complete(callKey, response, until) {
    this.recorded.set(callKey, { response, until });
  }

  async appendAudit(record) {
    const entry = auditAppend(this.entries.at(-1) ?? null, record);
    this.entries.push(entry);
    if (this.entries.length >= 2 * MEMORY_AUDIT_KEEP) this.entries.splice(0, MEMORY_AUDIT_KEEP);
    return entry;
  }

  async auditEntries() {
    return this.entries.map((e) => ({ ...e }));
  }

  async close() {}
}
