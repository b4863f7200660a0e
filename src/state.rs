//! What a verifier remembers between calls, as the core sees it: revoked
//! revocation ids and spent nonces. The stores themselves (memory, SQLite,
//! Redis) live in the hosts; this is the order and meaning every host
//! applies after a successful `verify`:
//!
//! 1. **Revocation**: if any of the token's revocation ids is revoked, the
//!    call is refused with `revoked`. A token attenuated from a revoked one
//!    carries its id, so revoking a token revokes all its descendants.
//! 2. **Replay**: if the token carries nonces (single-use blocks), a
//!    `tools/call` spends them atomically in the store; if one was spent by
//!    another call, the call is refused with `replayed`. Other methods
//!    (`initialize`, `tools/list`, notifications) neither spend nor check. The same JSON-RPC request sent
//!    again ([`crate::audit::call_key`] equal) within the retry window is a
//!    retry, not a replay. A verifier without a replay store refuses every
//!    single-use token with `replayed`: it cannot keep the promise.

use crate::error::{Error, Result};
use crate::model::AuthorizedFacts;

/// What spending a token's nonces for one call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spend {
    /// The nonces were unspent and are now spent by this call.
    Fresh,
    /// The same call (same call key) spent them within the retry window.
    Retry,
    /// Another call spent this nonce.
    Replayed(String),
}

/// Refuses a token with a revoked id; `is_revoked` asks the store.
pub fn check_revocation(
    facts: &AuthorizedFacts,
    mut is_revoked: impl FnMut(&str) -> Result<bool>,
) -> Result<()> {
    for id in &facts.revocation_ids {
        if is_revoked(id)? {
            return Err(Error::Revoked {
                revocation_id: id.clone(),
            });
        }
    }
    Ok(())
}

/// Refuses a replayed single-use token, given what the store's spend found
/// (`None`: there is no replay store).
pub fn check_replay(facts: &AuthorizedFacts, spend: Option<Spend>) -> Result<()> {
    if facts.nonces.is_empty() {
        return Ok(());
    }
    match spend {
        Some(Spend::Fresh | Spend::Retry) => Ok(()),
        Some(Spend::Replayed(nonce)) => Err(Error::Replayed { nonce }),
        None => Err(Error::Replayed {
            nonce: facts.nonces.first().cloned().unwrap_or_default(),
        }),
    }
}
