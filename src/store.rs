//! The CLI's stores: SQLite (rusqlite) and Redis, with the same tables and
//! keys as the npm package `mcpvault-store`, so `mcpvault revoke --store …`
//! acts on the store a Node server reads. Part of the binary only: the
//! library stays pure.

use mcpvault::audit::{audit_append, AuditEntry, AuditRecord};
use mcpvault::state::Spend;
use serde_json::Value;

/// Seconds a retry of the same request is not a replay (as in mcpvault-store).
pub const RETRY_WINDOW: u64 = 30;

/// The tables, shared with mcpvault-store's sqlite.mjs.
const SCHEMA: &str = include_str!("../npm/mcpvault-store/schema.sql");

const P: &str = "mcpvault:";

/// The atomic spend, shared with mcpvault-store's redis.mjs.
const SPEND: &str = include_str!("../npm/mcpvault-store/spend.lua");

/// A store opened from `sqlite:FILE` or `redis://HOST:PORT[/DB]`.
pub enum Store {
    Sqlite(rusqlite::Connection),
    Redis(redis::Connection),
}

/// SQLite integers are i64; times past i64::MAX do not occur.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn err(e: impl std::fmt::Display) -> String {
    format!("store: {e}")
}

impl Store {
    pub fn open(spec: &str) -> Result<Store, String> {
        if let Some(file) = spec.strip_prefix("sqlite:") {
            let db = rusqlite::Connection::open(file).map_err(err)?;
            db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
            db.pragma_update(None, "synchronous", "FULL").map_err(err)?;
            db.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(err)?;
            db.execute_batch(SCHEMA).map_err(err)?;
            Ok(Store::Sqlite(db))
        } else if spec.starts_with("redis://") || spec.starts_with("rediss://") {
            let client = redis::Client::open(spec).map_err(err)?;
            Ok(Store::Redis(client.get_connection().map_err(err)?))
        } else {
            Err(format!(
                "unknown store {spec:?}: sqlite:FILE or redis://HOST:PORT"
            ))
        }
    }

    pub fn revoke(&mut self, id: &str, now: u64) -> Result<(), String> {
        match self {
            Store::Sqlite(db) => db
                .execute(
                    "INSERT OR IGNORE INTO mcpvault_revoked (id, revoked_at) VALUES (?1, ?2)",
                    rusqlite::params![id, int(now)],
                )
                .map(|_| ())
                .map_err(err),
            Store::Redis(c) => redis::cmd("SADD")
                .arg(format!("{P}revoked"))
                .arg(id)
                .query::<i64>(c)
                .map(|_| ())
                .map_err(err),
        }
    }

    pub fn is_revoked(&mut self, id: &str) -> Result<bool, String> {
        match self {
            Store::Sqlite(db) => db
                .query_row(
                    "SELECT COUNT(*) FROM mcpvault_revoked WHERE id = ?1",
                    [id],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)
                .map_err(err),
            Store::Redis(c) => redis::cmd("SISMEMBER")
                .arg(format!("{P}revoked"))
                .arg(id)
                .query::<i64>(c)
                .map(|n| n == 1)
                .map_err(err),
        }
    }

    /// Spends `nonces` for `call_key` atomically (see mcpvault::state).
    pub fn spend(
        &mut self,
        nonces: &[String],
        call_key: &str,
        now: u64,
        until: u64,
    ) -> Result<Spend, String> {
        match self {
            Store::Sqlite(db) => {
                let tx = db
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(err)?;
                tx.execute(
                    "DELETE FROM mcpvault_nonces WHERE keep_until <= ?1",
                    [int(now)],
                )
                .map_err(err)?;
                let mut retry = false;
                let mut fresh = false;
                for n in nonces {
                    let held: Option<(String, i64)> = tx
                        .query_row(
                            "SELECT call_key, spent_at FROM mcpvault_nonces WHERE nonce = ?1 AND keep_until > ?2",
                            rusqlite::params![n, int(now)],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .map(Some)
                        .or_else(|e| match e {
                            rusqlite::Error::QueryReturnedNoRows => Ok(None),
                            other => Err(other),
                        })
                        .map_err(err)?;
                    match held {
                        None => fresh = true,
                        Some((k, at))
                            if k == call_key
                                && int(now).saturating_sub(at) <= int(RETRY_WINDOW) =>
                        {
                            retry = true
                        }
                        Some(_) => return Ok(Spend::Replayed(n.clone())),
                    }
                }
                if retry && fresh {
                    return Ok(Spend::Replayed(nonces.first().cloned().unwrap_or_default()));
                }
                if retry {
                    return Ok(Spend::Retry);
                }
                for n in nonces {
                    tx.execute(
                        "INSERT OR REPLACE INTO mcpvault_nonces (nonce, call_key, spent_at, keep_until) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![n, call_key, int(now), int(until)],
                    )
                    .map_err(err)?;
                }
                tx.commit().map_err(err)?;
                Ok(Spend::Fresh)
            }
            Store::Redis(c) => {
                if nonces.is_empty() {
                    return Ok(Spend::Fresh);
                }
                let script = redis::Script::new(SPEND);
                let mut inv = script.prepare_invoke();
                for n in nonces {
                    inv.key(format!("{P}nonce:{n}"));
                }
                inv.arg(call_key)
                    .arg(now)
                    .arg(until.max(now + 1))
                    .arg(RETRY_WINDOW);
                let out: Vec<String> = inv.invoke(c).map_err(err)?;
                match out.first().map(String::as_str) {
                    Some("fresh") => Ok(Spend::Fresh),
                    Some("retry") => Ok(Spend::Retry),
                    _ => Ok(Spend::Replayed(
                        out.get(1)
                            .and_then(|k| k.strip_prefix(&format!("{P}nonce:")))
                            .unwrap_or_default()
                            .to_string(),
                    )),
                }
            }
        }
    }

    pub fn append_audit(&mut self, record: AuditRecord) -> Result<AuditEntry, String> {
        match self {
            Store::Sqlite(db) => {
                let tx = db
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(err)?;
                let last: Option<String> = tx
                    .query_row(
                        "SELECT entry FROM mcpvault_audit ORDER BY seq DESC LIMIT 1",
                        [],
                        |r| r.get(0),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        other => Err(other),
                    })
                    .map_err(err)?;
                let prev: Option<AuditEntry> = last
                    .map(|t| serde_json::from_str(&t))
                    .transpose()
                    .map_err(err)?;
                let entry = audit_append(prev.as_ref(), record).map_err(err)?;
                let text = serde_json::to_string(&entry).map_err(err)?;
                tx.execute(
                    "INSERT INTO mcpvault_audit (seq, entry) VALUES (?1, ?2)",
                    rusqlite::params![int(entry.seq), text],
                )
                .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(entry)
            }
            Store::Redis(c) => loop {
                let head_key = format!("{P}audit:head");
                redis::cmd("WATCH")
                    .arg(&head_key)
                    .query::<()>(c)
                    .map_err(err)?;
                let head: Option<String> =
                    redis::cmd("GET").arg(&head_key).query(c).map_err(err)?;
                let prev: Option<AuditEntry> = head
                    .map(|t| serde_json::from_str(&t))
                    .transpose()
                    .map_err(err)?;
                let entry = audit_append(prev.as_ref(), record.clone()).map_err(err)?;
                let text = serde_json::to_string(&entry).map_err(err)?;
                let done: Option<(i64, String)> = redis::pipe()
                    .atomic()
                    .cmd("RPUSH")
                    .arg(format!("{P}audit"))
                    .arg(&text)
                    .cmd("SET")
                    .arg(&head_key)
                    .arg(&text)
                    .query(c)
                    .map_err(err)?;
                if done.is_some() {
                    return Ok(entry);
                }
            },
        }
    }

    /// The chain as stored, in order, as JSON values (unparsed beyond JSON).
    pub fn audit_entries(&mut self) -> Result<Vec<Value>, String> {
        let texts: Vec<String> = match self {
            Store::Sqlite(db) => {
                let mut q = db
                    .prepare("SELECT entry FROM mcpvault_audit ORDER BY seq")
                    .map_err(err)?;
                let rows = q.query_map([], |r| r.get(0)).map_err(err)?;
                rows.collect::<Result<_, _>>().map_err(err)?
            }
            Store::Redis(c) => redis::cmd("LRANGE")
                .arg(format!("{P}audit"))
                .arg(0)
                .arg(-1)
                .query(c)
                .map_err(err)?,
        };
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(err))
            .collect()
    }
}
