import type { AuditEntry, AuditRecord, Store as GuardStore, StoreAnswer, StoreAsk } from "mcpvault";

/** What every store does (SCHEMA.md, "The guard"): it reads and writes; the core decides. */
export interface Store extends GuardStore {
  readonly kind: "memory" | "sqlite" | "redis";
  /** Revokes a full revocation id (128 hex; anything else throws `invalid_request`): every token whose chain holds
   * it is refused. */
  revoke(id: string): Promise<void>;
  /** The guard's atomic step: revocation, then the single-use spend, in one transaction. */
  check(ask: StoreAsk): Promise<StoreAnswer>;
  /** Records the response of a single-use call for its retries, until `until` (unix seconds). */
  complete(callKey: string, response: unknown, until: number): Promise<void>;
  /** Appends the next entry of the hash chain. */
  appendAudit(record: AuditRecord): Promise<AuditEntry>;
  /** The chain, in order. */
  auditEntries(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export const MemoryStore: { new (): Store & { readonly kind: "memory" } };

/** "memory", "sqlite:FILE" (better-sqlite3, WAL) or "redis://HOST:PORT[/DB]" (ioredis). */
export function openStore(spec: string): Promise<Store>;
