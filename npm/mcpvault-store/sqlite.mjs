// The SQLite store (better-sqlite3): the embedded default. WAL journal, synchronous=FULL (an acknowledged write
// survives a killed process and a power loss), busy_timeout so several processes can share the file. Spends and
// audit appends run in BEGIN IMMEDIATE transactions, so two servers racing on one file serialize.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { auditAppend } from "mcpvault";
import { spendDecision } from "./spend.mjs";

// The tables, shared with the CLI (src/store.rs includes the same file).
const SCHEMA = readFileSync(new URL("./schema.sql", import.meta.url), "utf8");

export class SqliteStore {
  /** Opens (creating) the database file. */
  static open(file) {
    const Database = createRequire(import.meta.url)("better-sqlite3");
    return new SqliteStore(new Database(file));
  }

  constructor(db) {
    this.kind = "sqlite";
    this.db = db;
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 10000");
    db.exec(SCHEMA);
    this.q = {
      revoke: db.prepare("INSERT OR IGNORE INTO mcpvault_revoked (id, revoked_at) VALUES (?, ?)"),
      isRevoked: db.prepare("SELECT 1 FROM mcpvault_revoked WHERE id = ?"),
      nonce: db.prepare("SELECT call_key AS callKey, spent_at AS at FROM mcpvault_nonces WHERE nonce = ? AND keep_until > ?"),
      spend: db.prepare("INSERT OR REPLACE INTO mcpvault_nonces (nonce, call_key, spent_at, keep_until) VALUES (?, ?, ?, ?)"),
      expire: db.prepare("DELETE FROM mcpvault_nonces WHERE keep_until <= ?"),
      last: db.prepare("SELECT entry FROM mcpvault_audit ORDER BY seq DESC LIMIT 1"),
      append: db.prepare("INSERT INTO mcpvault_audit (seq, entry) VALUES (?, ?)"),
      all: db.prepare("SELECT entry FROM mcpvault_audit ORDER BY seq"),
    };
    this.spendTx = db.transaction((nonces, callKey, now, until, retryWindow) => {
      this.q.expire.run(now);
      const d = spendDecision(nonces.map((n) => [n, this.q.nonce.get(n, now)]), callKey, now, retryWindow);
      if (d.result === "fresh") for (const n of nonces) this.q.spend.run(n, callKey, now, until);
      return d;
    });
    this.appendTx = db.transaction((record) => {
      const last = this.q.last.get();
      const entry = auditAppend(last ? JSON.parse(last.entry) : null, record);
      this.q.append.run(entry.seq, JSON.stringify(entry));
      return entry;
    });
  }

  async revoke(id) {
    this.q.revoke.run(id, Math.floor(Date.now() / 1000));
  }

  async firstRevoked(ids) {
    return ids.find((id) => this.q.isRevoked.get(id) !== undefined) ?? null;
  }

  async spend(nonces, callKey, { now, until, retryWindow }) {
    return this.spendTx.immediate(nonces, callKey, now, until, retryWindow);
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
