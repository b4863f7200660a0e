import type { AuditEntry, AuditRecord } from "mcpvault";

/** What every store does (SCHEMA.md, "Revocation, replay, audit"). */
export interface Store {
  readonly kind: "memory" | "sqlite" | "redis";
  /** Revokes a revocation id (hex): every token whose chain holds it is refused. */
  revoke(id: string): Promise<void>;
  /** The first of `ids` that is revoked, or null. */
  firstRevoked(ids: string[]): Promise<string | null>;
  /** Atomically spends `nonces` for the call `callKey` (all or none). */
  spend(nonces: string[], callKey: string, o: { now: number; until: number; retryWindow: number }):
    Promise<{ result: "fresh" | "retry" | "replayed"; nonce?: string }>;
  /** Appends the next entry of the hash chain. */
  appendAudit(record: AuditRecord): Promise<AuditEntry>;
  /** The chain, in order. */
  auditEntries(): Promise<AuditEntry[]>;
  close(): Promise<void>;
}

export const MemoryStore: { new (): Store & { readonly kind: "memory" } };

/** "memory", "sqlite:FILE" (better-sqlite3, WAL) or "redis://HOST:PORT[/DB]" (ioredis). */
export function openStore(spec: string): Promise<Store>;
export const RETRY_WINDOW: number;
export function spendDecision(held: Array<[string, { callKey: string; at: number } | undefined | null]>, callKey: string, now: number,
  retryWindow?: number): { result: "fresh" | "retry" | "replayed"; nonce?: string };
