//! The mcpvault core for JavaScript, through wasm-bindgen.
//!
//! A JSON-in / JSON-out boundary: every function takes and returns JSON text,
//! and a result is a tagged value `{"ok": …}` or `{"error": {code, message,
//! failed_block, failed_check, detail}}` (`detail` is for server-side logs). Nothing throws across the boundary; the JS
//! wrapper (`npm/mcpvault`) turns an error into a thrown `McpVaultError`.
//! Time is passed in by the wrapper (`Date.now()`); randomness is
//! `crypto.getRandomValues` through getrandom's `js` feature.

use rand_core::OsRng;
use serde::Serialize;
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;

fn ok<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(v) => json!({ "ok": v }).to_string(),
        Err(e) => err(mcpvault::Error::Internal {
            detail: e.to_string(),
        }),
    }
}

fn err(e: mcpvault::Error) -> String {
    let failed = e.failed_check();
    json!({ "error": {
        "code": e.code(),
        "message": e.to_string(),
        "failed_block": failed.map(|(b, _)| b),
        "failed_check": failed.map(|(_, c)| c),
        "detail": e.detail(),
    }})
    .to_string()
}

fn answer<T: Serialize>(r: Result<T, mcpvault::Error>) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => err(e),
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, mcpvault::Error> {
    serde_json::from_str(json).map_err(|e| mcpvault::Error::InvalidRequest {
        reason: format!("{what}: {e}"),
    })
}

/// `{"ok": {"private_key", "public_key"}}`.
#[wasm_bindgen]
pub fn keygen() -> String {
    ok(mcpvault::keygen(&mut OsRng))
}

/// `grant_json` is the core's `Grant` as JSON; `now` is unix seconds.
#[wasm_bindgen]
pub fn mint(private_key: &str, grant_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Grant>("grant", grant_json)
            .and_then(|g| mcpvault::mint(private_key, &g, now as u64, &mut OsRng)),
    )
}

/// `restriction_json` is the core's `Restriction` as JSON.
#[wasm_bindgen]
pub fn attenuate(token: &str, restriction_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Restriction>("restriction", restriction_json)
            .and_then(|r| mcpvault::attenuate(token, &r, now as u64, &mut OsRng)),
    )
}

/// `request_json` is the core's `Request` as JSON.
#[wasm_bindgen]
pub fn verify(token: &str, public_key: &str, request_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Request>("request", request_json)
            .and_then(|r| mcpvault::verify(token, public_key, &r, now as u64)),
    )
}

/// The token's content; no key, no signature check.
#[wasm_bindgen]
pub fn inspect(token: &str) -> String {
    answer(mcpvault::inspect(token))
}

/// A verifier that caches verified signature chains (see `mcpvault::Verifier`).
#[wasm_bindgen]
pub struct CachedVerifier {
    inner: mcpvault::Verifier,
}

#[wasm_bindgen]
impl CachedVerifier {
    /// Keeps up to `capacity` verified chains.
    #[wasm_bindgen(constructor)]
    pub fn new(capacity: u32) -> CachedVerifier {
        CachedVerifier {
            inner: mcpvault::Verifier::with_cache(
                mcpvault::Limits::default(),
                usize::try_from(capacity).unwrap_or(usize::MAX),
            ),
        }
    }

    /// As the free `verify`, reusing cached chains.
    pub fn verify(
        &mut self,
        token: &str,
        public_key: &str,
        request_json: &str,
        now: f64,
    ) -> String {
        answer(
            parse::<mcpvault::Request>("request", request_json)
                .and_then(|r| self.inner.verify(token, public_key, &r, now as u64)),
        )
    }

    /// `{"hits", "misses", "entries", "capacity"}`.
    pub fn stats(&self) -> String {
        let s = self.inner.cache_stats();
        json!({ "hits": s.hits, "misses": s.misses, "entries": s.entries, "capacity": s.capacity })
            .to_string()
    }
}
