-- The SQLite store's tables: mcpvault-store's sqlite.mjs, the CLI's crates/cli/src/store.rs and Python's mcpvault.store all run
-- this file, so a store written by one is read by the others.
CREATE TABLE IF NOT EXISTS mcpvault_revoked (id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mcpvault_nonces (nonce TEXT PRIMARY KEY, call_key TEXT NOT NULL, spent_at INTEGER NOT NULL, keep_until INTEGER NOT NULL);
-- The response of a single-use call's one execution, for its retries (the guard's `complete`).
CREATE TABLE IF NOT EXISTS mcpvault_results (call_key TEXT PRIMARY KEY, response TEXT NOT NULL, keep_until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mcpvault_audit (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL);
-- Quota counters (SCHEMA.md, "Quotas"): the amount spent in one window of one quota, kept until the window ends.
CREATE TABLE IF NOT EXISTS mcpvault_quotas (key TEXT PRIMARY KEY, used REAL NOT NULL, keep_until INTEGER NOT NULL);
