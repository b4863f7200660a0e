//! The CLI's stores: SQLite (rusqlite) and Redis, with the same tables and
//! keys as the npm package `mcpvault-store`, so `mcpvault revoke --store …`
//! acts on the store a Node server reads. Part of the binary only: the
//! library stays pure.

use mcpvault::audit::{audit_append, AuditEntry, AuditRecord};
use mcpvault::state::{decide, Held, StoreAnswer, StoreAsk, StoreRead};
use serde_json::Value;

/// The tables, shared with mcpvault-store's sqlite.mjs.
const SCHEMA: &str = include_str!("../schema.sql");
/// When a row is swept: due by the guard's `now` and by SQLite's own clock (a `now` set far ahead — `--now`, a
/// host clock that jumped — must not delete spent nonces and counters still due when time comes back).
const DUE: &str = "keep_until <= MIN(?1, CAST(strftime('%s', 'now') AS INTEGER))";

const P: &str = "mcpvault:";

/// The atomic spend, shared with mcpvault-store's redis.mjs.
const SPEND: &str = include_str!("../spend.lua");
/// The audit append (Redis): entry and head written together, only on the head the entry follows.
const AUDIT: &str = include_str!("../audit.lua");

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

fn none_if_missing<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        other => Err(other),
    }
}

impl Store {
    pub fn open(spec: &str) -> Result<Store, String> {
        if let Some(file) = spec.strip_prefix("sqlite:") {
            let db = rusqlite::Connection::open(file).map_err(err)?;
            // the wait first: switching a new file to WAL takes a lock that another process opening it may hold
            db.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(err)?;
            db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
            db.pragma_update(None, "synchronous", "FULL").map_err(err)?;
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

    /// Performs the guard's ask atomically: what the store holds is read,
    /// the core decides (`state::decide`; Redis: `spend.lua`), and the rows it
    /// returns are written, in one transaction.
    pub fn check(&mut self, ask: &StoreAsk) -> Result<StoreAnswer, String> {
        match self {
            Store::Sqlite(db) => {
                let tx = db
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(err)?;
                let mut read = StoreRead::default();
                for id in &ask.revocation_ids {
                    let n: i64 = tx
                        .query_row(
                            "SELECT COUNT(*) FROM mcpvault_revoked WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )
                        .map_err(err)?;
                    if n > 0 {
                        read.revoked.push(id.clone());
                    }
                }
                if let Some(spend) = &ask.spend {
                    let now = int(spend.now);
                    tx.execute(&format!("DELETE FROM mcpvault_nonces WHERE {DUE}"), [now])
                        .map_err(err)?;
                    tx.execute(&format!("DELETE FROM mcpvault_results WHERE {DUE}"), [now])
                        .map_err(err)?;
                    for n in &spend.nonces {
                        let held = tx
                            .query_row(
                                "SELECT call_key, spent_at FROM mcpvault_nonces WHERE nonce = ?1",
                                [n],
                                |r| {
                                    Ok(Held {
                                        call_key: r.get(0)?,
                                        at: r.get::<_, i64>(1)?.max(0) as u64,
                                    })
                                },
                            )
                            .map(Some)
                            .or_else(none_if_missing)
                            .map_err(err)?;
                        read.held.push(held);
                    }
                    let recorded: Option<String> = tx
                        .query_row(
                            "SELECT response FROM mcpvault_results WHERE call_key = ?1",
                            [&spend.call_key],
                            |r| r.get(0),
                        )
                        .map(Some)
                        .or_else(none_if_missing)
                        .map_err(err)?;
                    read.recorded = recorded
                        .map(|t| serde_json::from_str(&t))
                        .transpose()
                        .map_err(err)?;
                }
                for q in &ask.quotas {
                    let used: Option<f64> = tx
                        .query_row(
                            "SELECT used FROM mcpvault_quotas WHERE key = ?1",
                            [&q.key],
                            |r| r.get(0),
                        )
                        .map(Some)
                        .or_else(none_if_missing)
                        .map_err(err)?;
                    read.used.push(used.unwrap_or(0.0));
                }
                let d = decide(ask, &read);
                for row in &d.counts {
                    tx.execute(
                        "INSERT OR REPLACE INTO mcpvault_quotas (key, used, keep_until) VALUES (?1, ?2, ?3)",
                        rusqlite::params![row.key, row.used, int(row.until)],
                    )
                    .map_err(err)?;
                }
                if let Some(now) = d.counts.iter().map(|r| r.until.saturating_sub(r.ttl)).min() {
                    tx.execute(
                        &format!("DELETE FROM mcpvault_quotas WHERE {DUE}"),
                        [int(now)],
                    )
                    .map_err(err)?;
                }
                for row in &d.write {
                    tx.execute(
                        "INSERT OR REPLACE INTO mcpvault_nonces (nonce, call_key, spent_at, keep_until) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![row.nonce, row.call_key, int(row.at), int(row.until)],
                    )
                    .map_err(err)?;
                }
                tx.commit().map_err(err)?;
                Ok(d.answer)
            }
            Store::Redis(c) => {
                // the call and the meaning of its reply are the core's (mcpvault::redis): this only sends it
                let call = mcpvault::redis::redis_call(ask);
                let script = redis::Script::new(SPEND);
                let mut inv = script.prepare_invoke();
                for k in &call.keys {
                    inv.key(k);
                }
                for a in &call.args {
                    inv.arg(a);
                }
                let reply: Vec<String> = inv.invoke(c).map_err(err)?;
                Ok(mcpvault::redis::redis_answer(ask, &reply))
            }
        }
    }

    /// Records the response of the single-use call `call_key` for its retries:
    /// until `until` (SQLite, the guard's clock), for `keep_for` seconds (Redis, its own clock).
    pub fn complete(
        &mut self,
        call_key: &str,
        response: &Value,
        until: u64,
        keep_for: u64,
    ) -> Result<(), String> {
        let text = response.to_string();
        match self {
            Store::Sqlite(db) => db
                .execute(
                    "INSERT OR REPLACE INTO mcpvault_results (call_key, response, keep_until) VALUES (?1, ?2, ?3)",
                    rusqlite::params![call_key, text, int(until)],
                )
                .map(|_| ())
                .map_err(err),
            Store::Redis(c) => redis::cmd("SET")
                .arg(format!("{P}result:{call_key}"))
                .arg(text)
                .arg("EX")
                .arg(keep_for.max(1))
                .query::<()>(c)
                .map_err(err),
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
                    .or_else(none_if_missing)
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
            Store::Redis(c) => {
                // the entry is the core's, on the head read here; audit.lua writes it only if the head did not
                // move (0: read it again) and fails, writing nothing, when Redis refuses the list
                let head_key = format!("{P}audit:head");
                let script = redis::Script::new(AUDIT);
                for _ in 0..1000 {
                    let head: Option<String> =
                        redis::cmd("GET").arg(&head_key).query(c).map_err(err)?;
                    let prev: Option<AuditEntry> = head
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()
                        .map_err(err)?;
                    let entry = audit_append(prev.as_ref(), record.clone()).map_err(err)?;
                    let text = serde_json::to_string(&entry).map_err(err)?;
                    let appended: i64 = script
                        .key(format!("{P}audit"))
                        .key(&head_key)
                        .arg(head.as_deref().unwrap_or(""))
                        .arg(&text)
                        .invoke(c)
                        .map_err(err)?;
                    if appended == 1 {
                        return Ok(entry);
                    }
                }
                Err("audit append kept conflicting".into())
            }
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
