//! A verifier with an optional verified-chain cache.
//!
//! Agents present the same token on every tool call, and checking the
//! signature chain is most of the cost of a verification. The cache remembers,
//! under SHA-256 of (the root key, the token's text), that the chain verified,
//! together with what was read from it. On a hit only the authorizer runs, with
//! the current time and request.
//!
//! Why a hit can never accept what a cold verify would refuse:
//! - The key covers every byte of the token and the root key, so a token that
//!   differs in any byte, or the same token under another key, misses and gets
//!   the full cold verification (SHA-256 collisions aside).
//! - Only what does not depend on the time or the request is cached: that the
//!   signatures verified, and the parsed blocks. Expiry, tools, arguments,
//!   audience and depth are Datalog checks, evaluated on every call against
//!   the current facts, exactly as on a cold verify.
//! - Only successes of the signature stage are cached; a token that failed is
//!   checked in full every time.
//! - Entries are evicted least-recently-used; capacity bounds memory.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::model::{AuthorizedFacts, Request};
use crate::ops::{self, Limits, Loaded};

/// Counters of a verifier's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Verifications that reused a verified chain.
    pub hits: u64,
    /// Verifications that checked the signatures.
    pub misses: u64,
    /// Chains held now.
    pub entries: usize,
    /// Most chains held.
    pub capacity: usize,
}

struct Entry {
    loaded: Arc<Loaded>,
    last_used: u64,
}

/// Verifies tokens under fixed [`Limits`], optionally caching verified chains.
pub struct Verifier {
    limits: Limits,
    capacity: usize,
    entries: HashMap<[u8; 32], Entry>,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(Limits::default())
    }
}

fn cache_key(root: &[u8], token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mcpvault verified chain v1\0");
    h.update(root);
    h.update(token.trim().as_bytes());
    h.finalize().into()
}

impl Verifier {
    /// A verifier without a cache: every call checks the signatures.
    pub fn new(limits: Limits) -> Self {
        Verifier::with_cache(limits, 0)
    }

    /// A verifier that keeps up to `capacity` verified chains (0: no cache).
    pub fn with_cache(limits: Limits, capacity: usize) -> Self {
        Verifier {
            limits,
            capacity,
            entries: HashMap::new(),
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The cache's counters.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            entries: self.entries.len(),
            capacity: self.capacity,
        }
    }

    /// Verifies `token` for one request, as [`crate::verify`] does.
    pub fn verify(
        &mut self,
        token: &str,
        public_key_hex: &str,
        request: &Request,
        now: u64,
    ) -> Result<AuthorizedFacts> {
        ops::check_call(request, now)?;
        let root = ops::parse_public_key(public_key_hex)?;
        if self.capacity == 0 {
            let loaded = ops::load(token, root, &self.limits)?;
            return ops::authorize(&loaded, request, now, &self.limits);
        }
        self.clock += 1;
        let key = cache_key(&root.to_bytes(), token);
        let loaded = match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.last_used = self.clock;
                self.hits += 1;
                Arc::clone(&entry.loaded)
            }
            None => {
                self.misses += 1;
                let loaded = Arc::new(ops::load(token, root, &self.limits)?);
                self.insert(key, Arc::clone(&loaded));
                loaded
            }
        };
        ops::authorize(&loaded, request, now, &self.limits)
    }

    fn insert(&mut self, key: [u8; 32], loaded: Arc<Loaded>) {
        if self.entries.len() >= self.capacity {
            // O(capacity), and only on a miss, which costs a full signature check anyway.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                loaded,
                last_used: self.clock,
            },
        );
    }
}
