// The SQLite store (better-sqlite3): the embedded default. WAL journal, synchronous=FULL (an acknowledged write
// survives a killed process and a power loss), busy_timeout so several processes can share the file. The guard's
// step and audit appends run in BEGIN IMMEDIATE transactions, so servers racing on one file serialize.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { auditAppend, revocationId, storeDecide } from "mcpvault";

// The tables, shared with the CLI (crates/cli/src/store.rs) and Python (mcpvault/store.py).
const SCHEMA = readFileSync(new URL("./schema.sql", import.meta.url), "utf8");

// A row is swept once due by the guard's `now` and by SQLite's own clock: a `now` set far ahead (a test clock, a
// host clock that jumped) must not delete spent nonces and counters that are still due when time comes back.
const DUE = "keep_until <= MIN(?, CAST(strftime('%s', 'now') AS INTEGER))";

export class SqliteStore {
  /** Opens (creating) the database file. */
  static open(file) {
    const Database = createRequire(import.meta.url)("better-sqlite3");
    return new SqliteStore(new Database(file));
  }

  constructor(db) {
    this.kind = "sqlite";
    this.db = db;
    // the wait first: switching a new file to WAL takes a lock that another process opening it may hold
    db.pragma("busy_timeout = 10000");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.exec(SCHEMA);
    this.q = {
      revoke: db.prepare("INSERT OR IGNORE INTO mcpvault_revoked (id, revoked_at) VALUES (?, ?)"),
      isRevoked: db.prepare("SELECT 1 FROM mcpvault_revoked WHERE id = ?"),
      nonce: db.prepare("SELECT call_key, spent_at AS at FROM mcpvault_nonces WHERE nonce = ?"),
      spend: db.prepare("INSERT OR REPLACE INTO mcpvault_nonces (nonce, call_key, spent_at, keep_until) VALUES (?, ?, ?, ?)"),
      expire: db.prepare(`DELETE FROM mcpvault_nonces WHERE ${DUE}`),
      expireResults: db.prepare(`DELETE FROM mcpvault_results WHERE ${DUE}`),
      recorded: db.prepare("SELECT response FROM mcpvault_results WHERE call_key = ?"),
      record: db.prepare("INSERT OR REPLACE INTO mcpvault_results (call_key, response, keep_until) VALUES (?, ?, ?)"),
      last: db.prepare("SELECT entry FROM mcpvault_audit ORDER BY seq DESC LIMIT 1"),
      append: db.prepare("INSERT INTO mcpvault_audit (seq, entry) VALUES (?, ?)"),
      all: db.prepare("SELECT entry FROM mcpvault_audit ORDER BY seq"),
      used: db.prepare("SELECT used FROM mcpvault_quotas WHERE key = ?"),
      count: db.prepare("INSERT OR REPLACE INTO mcpvault_quotas (key, used, keep_until) VALUES (?, ?, ?)"),
      expireCounts: db.prepare(`DELETE FROM mcpvault_quotas WHERE ${DUE}`),
    };
    this.checkTx = db.transaction((ask) => {
      const s = ask.spend;
      if (s) {
        this.q.expire.run(s.now);
        this.q.expireResults.run(s.now);
      }
      const recorded = s ? this.q.recorded.get(s.call_key) : undefined;
      const read = {
        revoked: ask.revocation_ids.filter((id) => this.q.isRevoked.get(id) !== undefined),
        held: s ? s.nonces.map((n) => this.q.nonce.get(n) ?? null) : [],
        recorded: recorded ? JSON.parse(recorded.response) : null,
        used: (ask.quotas ?? []).map((q) => this.q.used.get(q.key)?.used ?? 0),
      };
      const d = storeDecide(ask, read);
      for (const r of d.write) this.q.spend.run(r.nonce, r.call_key, r.at, r.until);
      for (const r of d.counts) this.q.count.run(r.key, r.used, r.until);
      if (d.counts.length > 0) this.q.expireCounts.run(Math.min(...d.counts.map((r) => r.until - r.ttl)));
      return d.answer;
    });
    this.appendTx = db.transaction((record) => {
      const last = this.q.last.get();
      const entry = auditAppend(last ? JSON.parse(last.entry) : null, record);
      this.q.append.run(entry.seq, JSON.stringify(entry));
      return entry;
    });
  }

  async revoke(id) {
    this.q.revoke.run(revocationId(id), Math.floor(Date.now() / 1000));
  }

  async check(ask) {
    return this.checkTx.immediate(ask);
  }

  async complete(callKey, response, until) {
    this.q.record.run(callKey, JSON.stringify(response), until);
  }

  async appendAudit(record) {
    return this.appendTx.immediate(record);
  }

  async auditEntries() {
    return this.q.all.all().map((r) => JSON.parse(r.entry));
  }

  async close() {
    this.db.close();
  }
}
