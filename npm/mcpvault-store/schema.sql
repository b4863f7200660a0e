-- The SQLite store's tables: mcpvault-store's sqlite.mjs and the CLI's src/store.rs both run this file.
CREATE TABLE IF NOT EXISTS mcpvault_revoked (id TEXT PRIMARY KEY, revoked_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mcpvault_nonces (nonce TEXT PRIMARY KEY, call_key TEXT NOT NULL, spent_at INTEGER NOT NULL, keep_until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mcpvault_audit (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL);
