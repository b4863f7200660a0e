//! What a verifier remembers between calls, and the decision a store makes
//! on it in one atomic step. The stores themselves (memory, SQLite, Redis)
//! live in the hosts; they only read and write. The rules are here:
//!
//! 1. **Revocation**: if any of the token's revocation ids is revoked, the
//!    call is refused with `revoked`. A token attenuated from a revoked one
//!    carries its id, so revoking a token revokes all its descendants.
//! 2. **Spend** (single-use tokens, one execution): a `tools/call` with a
//!    token carrying nonces spends them all, atomically, under the call key
//!    ([`crate::audit::call_key`]). Unspent → spent now (`fresh`: the handler
//!    runs once). Spent by the same call key within the retry window → a
//!    retry: answered with the first execution's recorded response (`done`)
//!    or refused with `in_flight` while none is recorded. Spent otherwise →
//!    `replayed`.
//!
//! 3. **Quotas** ([`crate::quota`]): a call that runs (not a retry answered
//!    from the record, not a replay) adds its charges to the counters of the
//!    current windows. If any counter would pass its max, the request is
//!    refused (`rate_limited`, `budget_exceeded`) and nothing is written —
//!    neither counters nor nonces.
//!
//! A host asks the core for a [`StoreAsk`] (from [`crate::guard`]), reads
//! what its store holds for it inside one transaction, calls [`decide`], and
//! writes the rows it returns in the same transaction. Redis runs the same
//! rules in `spend.lua` (its one atomic copy), held to the same vectors.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Seconds within which the same request sent again is a retry, not a replay.
pub const RETRY_WINDOW: u64 = 30;

/// Length of a revocation id in hex: Biscuit's is the block's 64-byte signature.
pub const REVOCATION_ID_HEX_LEN: usize = 128;

/// A revocation id as stores keep it (128 lowercase hex characters), or
/// `invalid_request`: a prefix or any other hex would revoke nothing.
pub fn revocation_id(id: &str) -> Result<String> {
    let id = id.trim();
    if id.len() == REVOCATION_ID_HEX_LEN && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(Error::invalid(format!(
            "a revocation id is {REVOCATION_ID_HEX_LEN} hex characters (see `mcpvault revocation-ids`)"
        )))
    }
}

/// What a store is asked to check and do, atomically, for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreAsk {
    /// The token's revocation ids: is any revoked?
    pub revocation_ids: Vec<String>,
    /// A single-use call to spend, when the token carries nonces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<SpendAsk>,
    /// Quota counters to add to (absent when the token carries no quota
    /// that counts this request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<crate::quota::Charge>,
}

/// Spend `nonces` for the call `call_key` at `now`; keep them until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendAsk {
    /// Every nonce of the token, authority first.
    pub nonces: Vec<String>,
    /// The call key of this request.
    pub call_key: String,
    /// Unix seconds.
    pub now: u64,
    /// Keep the spent nonces (and the recorded response) until then: the token's expiry.
    pub until: u64,
    /// The retry window, seconds.
    pub window: u64,
    /// Only read: what would spending find? (a dry run's call; nothing is
    /// written, and a spent nonce does not refuse the request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// How many of `nonces`, at their end, are proofs': spent even when a quota refuses the call (by no call:
    /// every later use is `replayed`). A proof is used once, whatever became of its call; a logged copy of a refused
    /// call's proof ran that call once more when the quota allowed it again. A single-use token's nonces and the
    /// approvals (a human's, for a call that did not run) stay unspent then.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub proofs: usize,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The call key a proof or an approval is spent by when its call did not run (a refused request's, or one a quota
/// refused): no request has it (call keys are SHA-256 hex), so every later use of the nonce is `replayed`.
pub const REFUSED_CALL: &str = "refused";

/// What a store holds for one spent nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// The call key that spent it.
    pub call_key: String,
    /// When, unix seconds.
    pub at: u64,
}

/// A nonce row to write: spent by `call_key` at `at`, kept until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceRow {
    /// The nonce (hex).
    pub nonce: String,
    /// The call key that spent it.
    pub call_key: String,
    /// Unix seconds.
    pub at: u64,
    /// Unix seconds: the row may be dropped from then on.
    pub until: u64,
}

/// What spending found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SpendOutcome {
    /// Unspent: spent now by this call, which runs.
    Fresh,
    /// A retry of a call whose response is not recorded (yet).
    InFlight,
    /// A retry of a call whose response was recorded: answer with it.
    Done {
        /// The recorded `{"result": …}` or `{"error": …}`.
        response: Value,
    },
    /// Spent by another call, or by this one longer ago than the window.
    Replayed {
        /// The nonce found spent.
        nonce: String,
    },
}

/// What the store answers the guard.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreAnswer {
    /// The first of the ids found revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// What spending found (when a spend was asked and nothing was revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<SpendOutcome>,
    /// A quota the request would pass (nothing was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaExceeded>,
    /// A quota a probe charge (a dry run's call) would pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_quota: Option<QuotaExceeded>,
    /// The store failed (server-side detail): the request is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The first quota a request would pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaExceeded {
    /// Its counter.
    pub key: String,
    /// `rate` or `budget`.
    pub kind: crate::quota::QuotaKind,
    /// Most per window.
    pub max: f64,
    /// Already spent in this window.
    pub used: f64,
    /// What the request would add.
    pub amount: f64,
    /// When the window ends (unix seconds): retry then.
    pub until: u64,
}

/// A quota counter to write: `used` in the window ending at `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountRow {
    /// The counter.
    pub key: String,
    /// Spent in this window, this request included.
    pub used: f64,
    /// Unix seconds: the row may be dropped from then on.
    pub until: u64,
    /// The same as seconds from the decision.
    pub ttl: u64,
}

/// The decision of a store's transaction, and the rows to write in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreDecision {
    /// What to hand back to the guard.
    pub answer: StoreAnswer,
    /// Nonce rows to write (all of the token's, or none).
    pub write: Vec<NonceRow>,
    /// Quota counters to write (all of the request's, or none).
    #[serde(default)]
    pub counts: Vec<CountRow>,
}

/// What a store read for `ask`, in one transaction.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreRead {
    /// Which of `ask.revocation_ids` are revoked (any order).
    #[serde(default)]
    pub revoked: Vec<String>,
    /// For each of `ask.spend.nonces`, in order: the row held, unexpired
    /// (`keep_until > now`), or null.
    #[serde(default)]
    pub held: Vec<Option<Held>>,
    /// The response recorded under `ask.spend.call_key`, if any.
    #[serde(default)]
    pub recorded: Option<Value>,
    /// For each of `ask.quotas`, in order: what its counter holds (0 when
    /// the store has none).
    #[serde(default)]
    pub used: Vec<f64>,
}

/// The decision a store makes inside its transaction: revocation first, then
/// the spend (see the module documentation).
pub fn decide(ask: &StoreAsk, read: &StoreRead) -> StoreDecision {
    let none = StoreDecision {
        answer: StoreAnswer::default(),
        write: Vec::new(),
        counts: Vec::new(),
    };
    if let Some(id) = ask
        .revocation_ids
        .iter()
        .find(|id| read.revoked.iter().any(|r| r == *id))
    {
        return StoreDecision {
            answer: StoreAnswer {
                revoked: Some(id.clone()),
                ..StoreAnswer::default()
            },
            ..none
        };
    }
    let real = ask.spend.as_ref().filter(|s| !s.probe);
    let outcome = real.map(|s| spend_outcome(s, read));
    if outcome.as_ref().is_some_and(|o| *o != SpendOutcome::Fresh) {
        // a retry or a replay runs nothing: it spends no quota
        return StoreDecision {
            answer: StoreAnswer {
                spend: outcome,
                ..StoreAnswer::default()
            },
            ..none
        };
    }
    let mut counts = Vec::with_capacity(ask.quotas.len());
    let mut probe_quota = None;
    for (i, c) in ask.quotas.iter().enumerate() {
        let used = read.used.get(i).copied().unwrap_or(0.0);
        // a counter the store cannot vouch for refuses (never an allow)
        let sound = used.is_finite() && used >= 0.0;
        let used = if sound { used } else { c.max };
        if c.probe {
            if (!sound || used + c.amount > c.max) && probe_quota.is_none() {
                probe_quota = Some(QuotaExceeded {
                    key: c.key.clone(),
                    kind: c.kind,
                    max: c.max,
                    used,
                    amount: c.amount,
                    until: c.until,
                });
            }
            continue;
        }
        if !sound || used + c.amount > c.max {
            // the call does not run, and its proof is spent all the same
            let write = real.map_or_else(Vec::new, |s| {
                let from = s.nonces.len().saturating_sub(s.proofs);
                let refused = SpendAsk {
                    call_key: REFUSED_CALL.into(),
                    ..s.clone()
                };
                nonce_rows(&refused, s.nonces.get(from..).unwrap_or_default())
            });
            return StoreDecision {
                answer: StoreAnswer {
                    quota: Some(QuotaExceeded {
                        key: c.key.clone(),
                        kind: c.kind,
                        max: c.max,
                        used,
                        amount: c.amount,
                        until: c.until,
                    }),
                    ..StoreAnswer::default()
                },
                write,
                ..none
            };
        }
        counts.push(CountRow {
            key: c.key.clone(),
            used: used + c.amount,
            until: c.until,
            ttl: c.ttl.max(1),
        });
    }
    let Some(spend) = real else {
        // a probe reads what spending would find, and writes nothing
        return StoreDecision {
            answer: StoreAnswer {
                spend: ask.spend.as_ref().map(|s| spend_outcome(s, read)),
                probe_quota,
                ..StoreAnswer::default()
            },
            counts,
            ..none
        };
    };
    let write = nonce_rows(spend, &spend.nonces);
    StoreDecision {
        answer: StoreAnswer {
            spend: Some(SpendOutcome::Fresh),
            probe_quota,
            ..StoreAnswer::default()
        },
        write,
        counts,
    }
}

/// The rows of `nonces` spent by `spend`'s call.
fn nonce_rows(spend: &SpendAsk, nonces: &[String]) -> Vec<NonceRow> {
    nonces
        .iter()
        .map(|n| NonceRow {
            nonce: n.clone(),
            call_key: spend.call_key.clone(),
            at: spend.now,
            until: spend.until.max(spend.now + 1),
        })
        .collect()
}

fn spend_outcome(spend: &SpendAsk, read: &StoreRead) -> SpendOutcome {
    let mut retry = false;
    let mut unspent = false;
    for (i, nonce) in spend.nonces.iter().enumerate() {
        match read.held.get(i).cloned().flatten() {
            None => unspent = true,
            Some(h)
                if h.call_key == spend.call_key
                    && spend.now.saturating_sub(h.at) <= spend.window =>
            {
                retry = true
            }
            Some(_) => {
                return SpendOutcome::Replayed {
                    nonce: nonce.clone(),
                }
            }
        }
    }
    if retry && unspent {
        // part of the chain spent by this very call, part not: it cannot be a retry of it
        let first_held = spend
            .nonces
            .iter()
            .zip(&read.held)
            .find(|(_, h)| h.is_some())
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        return SpendOutcome::Replayed { nonce: first_held };
    }
    if !retry {
        return SpendOutcome::Fresh;
    }
    match &read.recorded {
        Some(response) => SpendOutcome::Done {
            response: response.clone(),
        },
        None => SpendOutcome::InFlight,
    }
}

/// The fewest audit entries a [`MemoryStore`] keeps (it holds at most
/// twice as many: a long-running server's memory does not grow with its
/// requests).
pub const MEMORY_AUDIT_KEEP: usize = 10_000;

/// A store in memory: one process, nothing kept across restarts. Pure data
/// (no clock, no I/O), so it is the reference every host's store is tested
/// against, and a working store for single-process Rust servers.
/// It keeps the newest audit entries only ([`MEMORY_AUDIT_KEEP`] to twice
/// it): an audit log that must keep everything is SQLite's or Redis's.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    revoked: std::collections::BTreeSet<String>,
    nonces: std::collections::BTreeMap<String, NonceRow>,
    recorded: std::collections::BTreeMap<String, (Value, u64)>,
    counts: std::collections::BTreeMap<String, CountRow>,
    audit: Vec<crate::audit::AuditEntry>,
    /// The times the spent rows and the counters were last swept (each sweep is O(rows): once per second at most,
    /// since a row written since has `until` after the time of its writing).
    swept: (u64, u64),
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revokes a revocation id (checked with [`revocation_id`]).
    pub fn revoke(&mut self, id: &str) -> Result<()> {
        self.revoked.insert(revocation_id(id)?);
        Ok(())
    }

    /// Performs `ask` atomically.
    /// What the store holds for `ask`.
    fn read_of(&self, ask: &StoreAsk) -> StoreRead {
        StoreRead {
            revoked: ask
                .revocation_ids
                .iter()
                .filter(|id| self.revoked.contains(*id))
                .cloned()
                .collect(),
            held: ask.spend.as_ref().map_or_else(Vec::new, |s| {
                s.nonces
                    .iter()
                    .map(|n| {
                        self.nonces.get(n).map(|r| Held {
                            call_key: r.call_key.clone(),
                            at: r.at,
                        })
                    })
                    .collect()
            }),
            recorded: ask
                .spend
                .as_ref()
                .and_then(|s| self.recorded.get(&s.call_key))
                .map(|(v, _)| v.clone()),
            used: ask
                .quotas
                .iter()
                .map(|c| self.counts.get(&c.key).map_or(0.0, |r| r.used))
                .collect(),
        }
    }

    pub fn check(&mut self, ask: &StoreAsk) -> StoreAnswer {
        let now = ask.spend.as_ref().map(|s| s.now);
        if let Some(now) = now.filter(|n| *n > self.swept.0) {
            self.nonces.retain(|_, r| r.until > now);
            self.recorded.retain(|_, (_, until)| *until > now);
            self.swept.0 = now;
        }
        if let Some(now) = ask
            .quotas
            .iter()
            .map(|c| c.until - c.ttl.min(c.until))
            .min()
            .filter(|n| *n > self.swept.1)
        {
            self.counts.retain(|_, r| r.until > now);
            self.swept.1 = now;
        }
        let read = self.read_of(ask);
        let d = decide(ask, &read);
        for row in d.write {
            self.nonces.insert(row.nonce.clone(), row);
        }
        for row in d.counts {
            self.counts.insert(row.key.clone(), row);
        }
        d.answer
    }

    /// Records the response of the call `call_key` (kept until `until`).
    pub fn complete(&mut self, call_key: &str, response: Value, until: u64) {
        self.recorded
            .insert(call_key.to_string(), (response, until));
    }

    /// Appends an audit record to the hash chain.
    pub fn append_audit(
        &mut self,
        record: crate::audit::AuditRecord,
    ) -> Result<crate::audit::AuditEntry> {
        let e = crate::audit::audit_append(self.audit.last(), record)?;
        self.audit.push(e.clone());
        if self.audit.len() >= 2 * MEMORY_AUDIT_KEEP {
            // a process's memory is no audit log: the oldest half goes (the chain goes on from the newest entry)
            self.audit.drain(..MEMORY_AUDIT_KEEP);
        }
        Ok(e)
    }

    /// The newest entries of the audit chain, in order: all of them up to [`MEMORY_AUDIT_KEEP`], then between it
    /// and twice it (the oldest are dropped in halves; their `seq` says where the kept ones start).
    pub fn audit_entries(&self) -> &[crate::audit::AuditEntry] {
        &self.audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_store_keeps_the_newest_audit_entries_and_chains_on() {
        let mut s = MemoryStore::new();
        let record = |i: u64| crate::audit::AuditRecord {
            time: i,
            allowed: true,
            code: None,
            method: "tools/list".into(),
            tool: None,
            subject: None,
            issuer: None,
            revocation_ids: Vec::new(),
            request_id: None,
            approvers: Vec::new(),
            replayed_response: false,
        };
        for i in 0..(2 * MEMORY_AUDIT_KEEP as u64 + 5) {
            s.append_audit(record(i)).unwrap();
        }
        let kept = s.audit_entries();
        assert!(kept.len() >= MEMORY_AUDIT_KEEP && kept.len() < 2 * MEMORY_AUDIT_KEEP);
        assert_eq!(kept.last().unwrap().seq, 2 * MEMORY_AUDIT_KEEP as u64 + 5);
        assert!(kept
            .windows(2)
            .all(|w| w[1].prev == w[0].hash && w[1].seq == w[0].seq + 1));
    }

    fn ask(nonces: &[&str], key: &str, now: u64) -> StoreAsk {
        StoreAsk {
            revocation_ids: vec!["r".into()],
            spend: Some(SpendAsk {
                nonces: nonces.iter().map(|n| n.to_string()).collect(),
                call_key: key.into(),
                now,
                until: now + 100,
                window: 30,
                probe: false,
                proofs: 0,
            }),
            quotas: Vec::new(),
        }
    }

    fn charge(key: &str, max: f64, amount: f64) -> crate::quota::Charge {
        crate::quota::Charge {
            key: key.into(),
            kind: crate::quota::QuotaKind::Rate,
            max,
            amount,
            until: 1060,
            ttl: 60,
            probe: false,
        }
    }

    #[test]
    fn a_probe_reads_and_writes_nothing() {
        let mut s = MemoryStore::new();
        let mut spent = ask(&["n1"], "k", 1000);
        spent.quotas = vec![charge("q", 1.0, 1.0)];
        assert_eq!(s.check(&spent).spend, Some(SpendOutcome::Fresh));
        let mut probe = ask(&["n1", "n2"], "", 1000);
        if let Some(p) = probe.spend.as_mut() {
            p.probe = true;
        }
        probe.quotas = vec![crate::quota::Charge {
            probe: true,
            ..charge("q", 1.0, 1.0)
        }];
        let a = s.check(&probe);
        assert!(matches!(a.spend, Some(SpendOutcome::Replayed { .. })));
        assert_eq!(a.probe_quota.map(|q| q.used), Some(1.0));
        assert_eq!(a.quota, None);
        // nothing written: n2 unspent, and a probe of an unspent chain and a free counter finds both open
        let mut fresh = ask(&["n2"], "", 1000);
        if let Some(p) = fresh.spend.as_mut() {
            p.probe = true;
        }
        fresh.quotas = vec![crate::quota::Charge {
            probe: true,
            ..charge("other", 1.0, 1.0)
        }];
        let a = s.check(&fresh);
        assert_eq!((a.spend, a.probe_quota), (Some(SpendOutcome::Fresh), None));
        assert_eq!(
            s.check(&ask(&["n2"], "x", 1000)).spend,
            Some(SpendOutcome::Fresh)
        );
    }

    #[test]
    fn quotas_count_only_what_runs_and_write_all_or_nothing() {
        let mut s = MemoryStore::new();
        let mut a = ask(&["n1"], "k", 1000);
        a.quotas = vec![charge("q1", 2.0, 1.0), charge("q2", 1.0, 1.0)];
        assert_eq!(s.check(&a).spend, Some(SpendOutcome::Fresh));
        // the retry is answered from the record: it spends nothing more
        assert_eq!(s.check(&a).spend, Some(SpendOutcome::InFlight));
        let mut b = ask(&["n2"], "k2", 1000);
        b.quotas = vec![charge("q1", 2.0, 1.0), charge("q2", 1.0, 1.0)];
        let refused = s.check(&b);
        assert_eq!(refused.quota.as_ref().map(|q| q.key.as_str()), Some("q2"));
        assert_eq!(refused.spend, None);
        // nothing was written: n2 is unspent, q1 still has one left
        let mut c = ask(&["n2"], "k3", 1000);
        c.quotas = vec![charge("q1", 2.0, 1.0)];
        assert_eq!(s.check(&c).spend, Some(SpendOutcome::Fresh));
        let mut d = ask(&["n3"], "k4", 1000);
        d.quotas = vec![charge("q1", 2.0, 1.0)];
        assert!(s.check(&d).quota.is_some());
        // a counter the store cannot vouch for refuses
        let bad = decide(
            &StoreAsk {
                revocation_ids: vec![],
                spend: None,
                quotas: vec![charge("q", 5.0, 1.0)],
            },
            &StoreRead {
                used: vec![f64::NAN],
                ..StoreRead::default()
            },
        );
        assert!(bad.answer.quota.is_some() && bad.counts.is_empty());
    }

    #[test]
    fn a_quota_refusal_spends_the_proofs_and_nothing_else() {
        let mut s = MemoryStore::new();
        let mut first = ask(&["p0"], "k0", 1000);
        first.spend.as_mut().unwrap().proofs = 1;
        first.quotas = vec![charge("q", 1.0, 1.0)];
        assert_eq!(s.check(&first).spend, Some(SpendOutcome::Fresh));
        // a token nonce t1 and a proof p1: refused by the quota, the proof is spent (by no call), the token's not
        let mut refused = ask(&["t1", "p1"], "k1", 1001);
        refused.spend.as_mut().unwrap().proofs = 1;
        refused.quotas = vec![charge("q", 1.0, 1.0)];
        let d = decide(&refused, &s.read_of(&refused));
        assert!(d.answer.quota.is_some() && d.counts.is_empty());
        assert_eq!(
            d.write
                .iter()
                .map(|r| (r.nonce.as_str(), r.call_key.as_str()))
                .collect::<Vec<_>>(),
            [("p1", REFUSED_CALL)]
        );
        assert!(s.check(&refused).quota.is_some());
        // the same request again (a logged copy), even once the quota would allow it: replayed, by its proof
        let mut again = refused.clone();
        again.quotas = vec![];
        assert_eq!(
            s.check(&again).spend,
            Some(SpendOutcome::Replayed { nonce: "p1".into() })
        );
        // the token's nonce was not spent; a probe or a spend without proofs writes nothing when refused
        assert_eq!(
            s.check(&ask(&["t1"], "k2", 1002)).spend,
            Some(SpendOutcome::Fresh)
        );
        let mut plain = ask(&["t3"], "k3", 1003);
        plain.quotas = vec![charge("q", 1.0, 1.0)];
        assert!(decide(&plain, &s.read_of(&plain)).write.is_empty());
    }

    #[test]
    fn spend_fresh_retry_done_replayed_and_window() {
        let mut s = MemoryStore::new();
        let a = ask(&["n1"], "k", 1000);
        assert_eq!(s.check(&a).spend, Some(SpendOutcome::Fresh));
        assert_eq!(s.check(&a).spend, Some(SpendOutcome::InFlight));
        s.complete("k", serde_json::json!({"result": 1}), 1100);
        assert_eq!(
            s.check(&a).spend,
            Some(SpendOutcome::Done {
                response: serde_json::json!({"result": 1})
            })
        );
        let other = ask(&["n1"], "k2", 1001);
        assert_eq!(
            s.check(&other).spend,
            Some(SpendOutcome::Replayed { nonce: "n1".into() })
        );
        // past the window, the same call is a replay
        let late = ask(&["n1"], "k", 1031);
        assert!(matches!(
            s.check(&late).spend,
            Some(SpendOutcome::Replayed { .. })
        ));
        // part spent by this call, part not: replayed, nothing written
        let mixed = ask(&["n1", "n2"], "k", 1000);
        assert_eq!(
            s.check(&mixed).spend,
            Some(SpendOutcome::Replayed { nonce: "n1".into() })
        );
        assert_eq!(
            s.check(&ask(&["n2"], "x", 1000)).spend,
            Some(SpendOutcome::Fresh)
        );
    }

    #[test]
    fn revocation_comes_first_and_spends_nothing() {
        let mut s = MemoryStore::new();
        let id = "ab".repeat(64);
        s.revoke(&id).unwrap();
        let mut a = ask(&["n1"], "k", 1000);
        a.revocation_ids = vec!["cd".repeat(64), id.clone()];
        assert_eq!(s.check(&a).revoked, Some(id));
        a.revocation_ids = vec![];
        assert_eq!(s.check(&a).spend, Some(SpendOutcome::Fresh));
    }

    #[test]
    fn only_full_revocation_ids() {
        assert!(revocation_id(&"A".repeat(128)).is_ok());
        assert_eq!(revocation_id(&"A".repeat(128)).unwrap(), "a".repeat(128));
        for bad in [
            "",
            "abcd",
            &"a".repeat(16),
            &"a".repeat(127),
            &"g".repeat(128),
        ] {
            assert_eq!(revocation_id(bad).unwrap_err().code(), "invalid_request");
        }
    }
}
