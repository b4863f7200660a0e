//! A verifier with an optional verified-chain cache.
//!
//! Agents present the same token on every tool call, and checking the
//! signature chain is most of the cost of a verification. The cache remembers,
//! under the exact text of (the root key, the token), that the chain verified,
//! together with what was read from it. On a hit only the authorizer runs, with
//! the current time and request; the key is not even parsed again.
//!
//! Why a hit can never accept what a cold verify would refuse:
//! - An entry holds the root key's and the token's text and a hit compares
//!   both in full (a 64-bit hash only picks the slot), so a token that differs
//!   in any byte, or the same token under another key, misses and gets the
//!   full cold verification. No hash collision can make a hit.
//! - Only what does not depend on the time or the request is cached: that the
//!   signatures verified, and the parsed blocks. Expiry, tools, arguments,
//!   audience and depth are Datalog checks, evaluated on every call against
//!   the current facts, exactly as on a cold verify.
//! - Only successes of the signature stage are cached; a token that failed is
//!   checked in full every time.
//! - Entries are evicted least-recently-used; capacity bounds memory.

use std::collections::HashMap;
use std::sync::Arc;

use biscuit_auth::PublicKey;

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
    /// The root key (normalised hex) and the token (trimmed), in full.
    root: Box<str>,
    token: Box<str>,
    loaded: Arc<Loaded>,
    last_used: u64,
}

/// Verifies tokens under fixed [`Limits`], optionally caching verified chains.
pub struct Verifier {
    limits: Limits,
    capacity: usize,
    entries: HashMap<u64, Entry>,
    /// The last root key parsed, under its text exactly as given: a server
    /// verifies under one issuer's key, and decompressing it was a few
    /// percent of every cold verify. Only a key that parsed is kept.
    root: Option<(Box<str>, PublicKey)>,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(Limits::default())
    }
}

/// The root key as the cache compares it: 64 lowercase hex characters, or
/// `None` for anything else (which then goes to the parser for its error).
fn root_text(public_key_hex: &str) -> Option<std::borrow::Cow<'_, str>> {
    let s = public_key_hex.trim();
    let s = s.strip_prefix("ed25519/").unwrap_or(s);
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(if s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(s.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    })
}

/// The slot of (root, token): SipHash with fixed keys. Only successes under
/// the issuer's key are cached, so nobody else can choose colliding entries,
/// and a collision is only a miss.
fn slot(root: &str, token: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    token.hash(&mut h);
    h.finish()
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
            root: None,
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
        let loaded = self.load(token, public_key_hex, true)?;
        ops::authorize(&loaded, request, now, &self.limits)
    }

    /// The revocation ids of `token`'s blocks, its signatures checked (or its
    /// chain found in the cache), whatever a request would be answered: a
    /// host asks its store whether a token refused for another reason is
    /// revoked (see [`crate::guard`]). Not counted in [`Self::cache_stats`],
    /// which counts verifications.
    pub fn revocation_ids(&mut self, token: &str, public_key_hex: &str) -> Result<Vec<String>> {
        Ok(ops::revocation_ids(&*self.load(
            token,
            public_key_hex,
            false,
        )?))
    }

    /// `token`'s chain under `public_key_hex`: from the cache, or its
    /// signatures checked (and kept, when this verifier has a cache);
    /// `count`: in the cache's hits and misses.
    fn load(&mut self, token: &str, public_key_hex: &str, count: bool) -> Result<Arc<Loaded>> {
        let root_hex = match root_text(public_key_hex) {
            Some(r) if self.capacity > 0 => r,
            _ => {
                let root = self.root_key(public_key_hex)?;
                return Ok(Arc::new(ops::load(token, root, &self.limits)?));
            }
        };
        self.clock += 1;
        let text = token.trim();
        let key = slot(&root_hex, text);
        let hit = self
            .entries
            .get_mut(&key)
            .filter(|e| *e.root == *root_hex && *e.token == *text);
        if let Some(entry) = hit {
            entry.last_used = self.clock;
            self.hits += u64::from(count);
            return Ok(Arc::clone(&entry.loaded));
        }
        self.misses += u64::from(count);
        let root = self.root_key(&root_hex)?;
        let loaded = Arc::new(ops::load(token, root, &self.limits)?);
        self.insert(
            key,
            Entry {
                root: root_hex.into(),
                token: text.into(),
                loaded: Arc::clone(&loaded),
                last_used: self.clock,
            },
        );
        Ok(loaded)
    }

    /// `public_key_hex` parsed, or the key parsed last from the same text.
    fn root_key(&mut self, public_key_hex: &str) -> Result<PublicKey> {
        if let Some((text, key)) = &self.root {
            if **text == *public_key_hex {
                return Ok(*key);
            }
        }
        let key = ops::parse_public_key(public_key_hex)?;
        self.root = Some((public_key_hex.into(), key));
        Ok(key)
    }

    fn insert(&mut self, key: u64, entry: Entry) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
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
        self.entries.insert(key, entry);
    }
}
