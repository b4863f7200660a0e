// The in-memory store: one process, nothing kept. For tests and single-process servers that accept losing
// revocations, spent nonces and the audit log on restart.
import { auditAppend } from "mcpvault";
import { spendDecision } from "./spend.mjs";

export class MemoryStore {
  constructor() {
    this.kind = "memory";
    this.revoked = new Set();
    this.nonces = new Map(); // nonce -> { callKey, at, until }
    this.entries = [];
  }

  async revoke(id) {
    this.revoked.add(id);
  }

  async firstRevoked(ids) {
    return ids.find((id) => this.revoked.has(id)) ?? null;
  }

  async spend(nonces, callKey, { now, until, retryWindow }) {
    for (const [n, v] of this.nonces) if (v.until <= now) this.nonces.delete(n);
    const decision = spendDecision(nonces.map((n) => [n, this.nonces.get(n)]), callKey, now, retryWindow);
    if (decision.result === "fresh") for (const n of nonces) this.nonces.set(n, { callKey, at: now, until });
    return decision;
  }

  async appendAudit(record) {
    const entry = auditAppend(this.entries.at(-1) ?? null, record);
    this.entries.push(entry);
    return entry;
  }

  async auditEntries() {
    return this.entries.map((e) => ({ ...e }));
  }

  async close() {}
}
