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
            .and_then(|g| mcpvault::mint(private_key, &g, mcpvault::unix_time(now)?, &mut OsRng)),
    )
}

/// `restriction_json` is the core's `Restriction` as JSON.
#[wasm_bindgen]
pub fn attenuate(token: &str, restriction_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Restriction>("restriction", restriction_json)
            .and_then(|r| mcpvault::attenuate(token, &r, mcpvault::unix_time(now)?, &mut OsRng)),
    )
}

/// `request_json` is the core's `Request` as JSON.
#[wasm_bindgen]
pub fn verify(token: &str, public_key: &str, request_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Request>("request", request_json)
            .and_then(|r| mcpvault::verify(token, public_key, &r, mcpvault::unix_time(now)?)),
    )
}

/// The token's content; no key, no signature check.
#[wasm_bindgen]
pub fn inspect(token: &str) -> String {
    answer(mcpvault::inspect(token))
}

/// The audit entry after `prev_json` (`""` for the first) for `record_json`
/// (the core's `AuditRecord`).
#[wasm_bindgen]
pub fn audit_append(prev_json: &str, record_json: &str) -> String {
    let prev = if prev_json.is_empty() {
        Ok(None)
    } else {
        parse::<mcpvault::audit::AuditEntry>("prev", prev_json).map(Some)
    };
    answer(prev.and_then(|p| {
        parse::<mcpvault::audit::AuditRecord>("record", record_json)
            .and_then(|r| mcpvault::audit::audit_append(p.as_ref(), r))
    }))
}

/// `{"ok": {"entries", "head"}}`, or `{"ok": {"break": {index, seq, kind, detail}}}`
/// for the first broken entry of `entries_json` (a JSON array).
#[wasm_bindgen]
pub fn audit_verify(entries_json: &str) -> String {
    answer(
        parse::<Vec<serde_json::Value>>("entries", entries_json).map(|entries| {
            match mcpvault::audit::audit_verify(&entries) {
                Ok(summary) => json!(summary),
                Err(b) => json!({ "break": b }),
            }
        }),
    )
}

/// The retry/replay key of a call (see `mcpvault::audit::call_key`).
#[wasm_bindgen]
pub fn call_key(request_id: &str, method: &str, tool: &str, arguments_json: &str) -> String {
    answer(
        mcpvault::Request::arguments_from_json(arguments_json).map(|args| {
            mcpvault::audit::call_key(
                request_id,
                method,
                (!tool.is_empty()).then_some(tool),
                &args,
            )
        }),
    )
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
            parse::<mcpvault::Request>("request", request_json).and_then(|r| {
                self.inner
                    .verify(token, public_key, &r, mcpvault::unix_time(now)?)
            }),
        )
    }

    /// `{"hits", "misses", "entries", "capacity"}`.
    pub fn stats(&self) -> String {
        let s = self.inner.cache_stats();
        json!({ "hits": s.hits, "misses": s.misses, "entries": s.entries, "capacity": s.capacity })
            .to_string()
    }
}

/// Benchmarks only (`make bench`): runs the per-signature floor `rounds`
/// times in this module (see `mcpvault::signature_floor`); returns how many
/// verified.
#[wasm_bindgen(js_name = "__benchSignatureFloor")]
pub fn bench_signature_floor(rounds: u32) -> u32 {
    mcpvault::signature_floor(rounds)
}
