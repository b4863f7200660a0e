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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreAsk {
    /// The token's revocation ids: is any revoked?
    pub revocation_ids: Vec<String>,
    /// A single-use call to spend, when the token carries nonces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<SpendAsk>,
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
}

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
    /// The store failed (server-side detail): the request is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The decision of a store's transaction, and the rows to write in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreDecision {
    /// What to hand back to the guard.
    pub answer: StoreAnswer,
    /// Nonce rows to write (all of the token's, or none).
    pub write: Vec<NonceRow>,
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
}

/// The decision a store makes inside its transaction: revocation first, then
/// the spend (see the module documentation).
pub fn decide(ask: &StoreAsk, read: &StoreRead) -> StoreDecision {
    let none = StoreDecision {
        answer: StoreAnswer::default(),
        write: Vec::new(),
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
    let Some(spend) = &ask.spend else {
        return none;
    };
    let outcome = spend_outcome(spend, read);
    let write = if outcome == SpendOutcome::Fresh {
        spend
            .nonces
            .iter()
            .map(|n| NonceRow {
                nonce: n.clone(),
                call_key: spend.call_key.clone(),
                at: spend.now,
                until: spend.until.max(spend.now + 1),
            })
            .collect()
    } else {
        Vec::new()
    };
    StoreDecision {
        answer: StoreAnswer {
            spend: Some(outcome),
            ..StoreAnswer::default()
        },
        write,
    }
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

/// A store in memory: one process, nothing kept across restarts. Pure data
/// (no clock, no I/O), so it is the reference every host's store is tested
/// against, and a working store for single-process Rust servers.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    revoked: std::collections::BTreeSet<String>,
    nonces: std::collections::BTreeMap<String, NonceRow>,
    recorded: std::collections::BTreeMap<String, (Value, u64)>,
    audit: Vec<crate::audit::AuditEntry>,
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
    pub fn check(&mut self, ask: &StoreAsk) -> StoreAnswer {
        let now = ask.spend.as_ref().map(|s| s.now);
        if let Some(now) = now {
            self.nonces.retain(|_, r| r.until > now);
            self.recorded.retain(|_, (_, until)| *until > now);
        }
        let read = StoreRead {
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
        };
        let d = decide(ask, &read);
        for row in d.write {
            self.nonces.insert(row.nonce.clone(), row);
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
        Ok(e)
    }

    /// The audit chain, in order.
    pub fn audit_entries(&self) -> &[crate::audit::AuditEntry] {
        &self.audit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(nonces: &[&str], key: &str, now: u64) -> StoreAsk {
        StoreAsk {
            revocation_ids: vec!["r".into()],
            spend: Some(SpendAsk {
                nonces: nonces.iter().map(|n| n.to_string()).collect(),
                call_key: key.into(),
                now,
                until: now + 100,
                window: 30,
            }),
        }
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
