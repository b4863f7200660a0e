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
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};

/// `{"ok": value}`, written straight into the text (no `serde_json::Value` in between: building and sorting that tree
/// was most of what a guard decision cost at the boundary), into one buffer sized for a guard's outcome (growing
/// serde_json's 128 bytes by doubling, then copying behind the prefix, was a tenth of writing one).
fn ok<T: Serialize>(value: T) -> String {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"ok\":");
    match serde_json::to_writer(&mut out, &value) {
        Ok(()) => {
            out.push(b'}');
            // serde_json writes UTF-8 only
            String::from_utf8(out).unwrap_or_else(|e| {
                err(mcpvault::Error::Internal {
                    detail: e.to_string(),
                })
            })
        }
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
        "approval": mcpvault::guard::ApprovalAsk::of(&e).map(|a| a.data()),
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

/// `{"ok": {"private_key", "public_key"}}`: a JavaScript string copied out of the module's memory, whose text there
/// is wiped before it is freed (a `String` result would be freed as it is, the private key readable until the memory
/// is reused).
#[wasm_bindgen]
pub fn keygen() -> JsValue {
    let text = zeroize::Zeroizing::new(ok(mcpvault::keygen(&mut OsRng)));
    JsValue::from_str(&text)
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

thread_local! {
    /// The verifier of the free `verify`: no cache of tokens (every call checks the whole chain), but it keeps the
    /// last root key it parsed, as a caller of biscuit-wasm keeps its `PublicKey`.
    static COLD: std::cell::RefCell<mcpvault::Verifier> = std::cell::RefCell::new(mcpvault::Verifier::default());
}

/// `{"ok": proof}`: the proof of one call of a holder-bound token (`mcpvault::proof::sign_call`), signed by
/// `holder_private_key` at `now`; `call_json` is `{"method", "name", "arguments", "audience"}`.
#[wasm_bindgen]
pub fn sign_call(holder_private_key: &str, token: &str, call_json: &str, now: f64) -> String {
    answer(with_call(token, call_json, |call| {
        mcpvault::proof::sign_call(
            holder_private_key,
            call,
            mcpvault::unix_time(now)?,
            &mut OsRng,
        )
    }))
}

/// `{"ok": {"method", "name"?, "arguments"}}`: what a proof or an approval of `message_json` (one JSON-RPC message
/// as a client sends it) signs, by the guard's rule (`mcpvault::guard::call_target`).
/// `token`: the token sent with the message (`""`: none).
#[wasm_bindgen]
pub fn call_target(message_json: &str, token: &str) -> String {
    answer(
        parse::<serde_json::Value>("message", message_json)
            .and_then(|m| mcpvault::guard::call_target(&m, Some(token))),
    )
}

/// One call as `sign_call` and `request_hash` read it, for `token`.
fn with_call<T>(
    token: &str,
    call_json: &str,
    f: impl FnOnce(&mcpvault::proof::Call<'_>) -> Result<T, mcpvault::Error>,
) -> Result<T, mcpvault::Error> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CallJson {
        method: String,
        name: Option<String>,
        #[serde(default)]
        arguments: serde_json::Map<String, serde_json::Value>,
        audience: Option<String>,
    }
    let c = parse::<CallJson>("call", call_json)?;
    let info = mcpvault::inspect(token)?;
    let token_id = info.revocation_ids.last().cloned().unwrap_or_default();
    f(&mcpvault::proof::Call {
        token_id: &token_id,
        method: &c.method,
        name: c.name.as_deref(),
        arguments: &c.arguments,
        audience: c.audience.as_deref(),
    })
}

/// `{"ok": hash}`: the request hash of one call of `token` (`mcpvault::proof::request_hash`): what an approver
/// signs; `call_json` as for `sign_call`.
#[wasm_bindgen]
pub fn request_hash(token: &str, call_json: &str) -> String {
    answer(with_call(token, call_json, |call| {
        Ok(mcpvault::proof::request_hash(call))
    }))
}

/// `{"ok": approval}`: an approval of `request_hash` by the approver's private key, valid `ttl` seconds from `now`.
#[wasm_bindgen]
pub fn approve(approver_private_key: &str, request_hash: &str, ttl: f64, now: f64) -> String {
    answer(mcpvault::unix_time(now).and_then(|now| {
        if !(ttl.is_finite() && (1.0..=3600.0).contains(&ttl) && ttl.fract() == 0.0) {
            return Err(mcpvault::Error::InvalidRequest {
                reason: "an approval lives 1 to 3600 whole seconds".into(),
            });
        }
        let ttl = ttl as u64;
        mcpvault::approval::approve(approver_private_key, request_hash, now, ttl, &mut OsRng)
    }))
}

/// `{"ok": {name: hash}}`: the definition hash of every tool of a `tools/list` result (`mcpvault::pin::tool_hashes`).
#[wasm_bindgen]
pub fn tool_hashes(list_json: &str) -> String {
    answer(
        parse::<serde_json::Value>("tools/list result", list_json)
            .and_then(|v| mcpvault::pin::tool_hashes(&v)),
    )
}

/// `request_json` is the core's `Request` as JSON.
#[wasm_bindgen]
pub fn verify(token: &str, public_key: &str, request_json: &str, now: f64) -> String {
    answer(
        parse::<mcpvault::Request>("request", request_json).and_then(|r| {
            let now = mcpvault::unix_time(now)?;
            COLD.with(|cold| match cold.try_borrow_mut() {
                Ok(mut v) => v.verify(token, public_key, &r, now),
                Err(_) => mcpvault::verify(token, public_key, &r, now),
            })
        }),
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

/// The server-side guard (see `mcpvault::guard`): options as JSON, a
/// verified-chain cache of `cache` entries. Options that are not valid are
/// reported by `error()` and by every call.
#[wasm_bindgen]
pub struct Guard {
    inner: Result<mcpvault::guard::Guard, mcpvault::Error>,
    /// The token and the decisions (as JSON) of the outcome the last `check_request` decided, for `take_token`
    /// and `take_decisions`.
    token: Option<String>,
    decisions: Option<String>,
}

#[wasm_bindgen]
impl Guard {
    #[wasm_bindgen(constructor)]
    pub fn new(options_json: &str, cache: u32) -> Guard {
        let inner = parse::<mcpvault::guard::GuardOptions>("options", options_json).and_then(|o| {
            mcpvault::guard::Guard::new(o, usize::try_from(cache).unwrap_or(usize::MAX))
        });
        Guard {
            inner,
            token: None,
            decisions: None,
        }
    }

    /// `""`, or the error of the options as `{"error": …}`.
    pub fn error(&self) -> String {
        match &self.inner {
            Ok(_) => String::new(),
            Err(e) => err(e.clone()),
        }
    }

    /// `{"ok": Check}` for a request at `now` (the core's `Guard::check`), its parts as arguments: the headers the
    /// guard reads (`mcpvault::guard::READ_HEADERS`, in that order), the body's text, and the rest of the core's
    /// `GuardInput` as JSON (`""`: none). JSON written by the host and
    /// read here would copy and escape the token and the body once more each way. A decided outcome comes without
    /// its `token` and `decisions` (`[]`): `take_token()` hands the token over as a plain string, `take_decisions()`
    /// the decisions as JSON (a host reads them only for its hooks and telemetry).
    #[allow(clippy::too_many_arguments)]
    pub fn check_request(
        &mut self,
        http_method: Option<String>,
        token: Option<String>,
        proof: Option<String>,
        approval: Option<String>,
        authorization: Option<String>,
        mcp_method: Option<String>,
        mcp_name: Option<String>,
        session_id: Option<String>,
        body: Option<String>,
        rest_json: &str,
        now: f64,
    ) -> String {
        self.token = None;
        self.decisions = None;
        let g = match &mut self.inner {
            Ok(g) => g,
            Err(e) => return err(e.clone()),
        };
        let input = if rest_json.is_empty() {
            Ok(mcpvault::guard::GuardInput::default())
        } else {
            parse::<mcpvault::guard::GuardInput>("input", rest_json)
        };
        let check = input.and_then(|mut i| {
            let values = [
                token,
                proof,
                approval,
                authorization,
                mcp_method,
                mcp_name,
                session_id,
            ];
            i.headers = mcpvault::guard::READ_HEADERS
                .into_iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect();
            i.http_method = http_method;
            i.body = body;
            Ok(g.check(&i, mcpvault::unix_time(now)?))
        });
        match check {
            Ok(mcpvault::guard::Check::Done { mut outcome }) => {
                let decisions = match serde_json::to_string(&std::mem::take(&mut outcome.decisions))
                {
                    Ok(d) => d,
                    Err(e) => {
                        return err(mcpvault::Error::Internal {
                            detail: e.to_string(),
                        })
                    }
                };
                self.token = outcome.token.take();
                self.decisions = Some(decisions);
                ok(mcpvault::guard::Check::Done { outcome })
            }
            other => answer(other),
        }
    }

    /// The token of the outcome the last `check_request` returned (`undefined`: none), once.
    pub fn take_token(&mut self) -> Option<String> {
        self.token.take()
    }

    /// The decisions (JSON) of the outcome the last `check_request` returned (`undefined`: none), once.
    pub fn take_decisions(&mut self) -> Option<String> {
        self.decisions.take()
    }

    /// `{"ok": Outcome}` once the store answered `answer_json` for the ask of `pending_json`.
    pub fn resume(&self, pending_json: &str, answer_json: &str) -> String {
        let g = match &self.inner {
            Ok(g) => g,
            Err(e) => return err(e.clone()),
        };
        answer(
            parse::<mcpvault::guard::Pending>("pending", pending_json).and_then(|p| {
                parse::<mcpvault::state::StoreAnswer>("answer", answer_json)
                    .map(|a| g.resume(p, &a))
            }),
        )
    }

    /// `{"ok": Outcome}`: `outcome_json` refused because its audit records could not be written.
    pub fn audit_failed(&self, outcome_json: &str, detail: &str) -> String {
        let g = match &self.inner {
            Ok(g) => g,
            Err(e) => return err(e.clone()),
        };
        answer(
            parse::<mcpvault::guard::Outcome>("outcome", outcome_json)
                .map(|o| g.audit_failed(o, detail)),
        )
    }

    /// `{"ok": result}`: a list answer with only what `facts_json` (or `null`: no token verified) may see, by this
    /// guard's options (`mcpvault::guard::Guard::filter`: tools granted by name or reached through a mapped scope,
    /// the dry-run tool on the first page; resources, templates and prompts).
    pub fn filter(
        &self,
        method: &str,
        result_json: &str,
        facts_json: &str,
        first_page: bool,
    ) -> String {
        let g = match &self.inner {
            Ok(g) => g,
            Err(e) => return err(e.clone()),
        };
        answer(
            parse::<serde_json::Value>("result", result_json).and_then(|r| {
                parse::<Option<mcpvault::AuthorizedFacts>>("facts", facts_json)
                    .map(|f| g.filter(method, &r, f.as_ref(), first_page))
            }),
        )
    }

    /// `{"hits", "misses", "entries", "capacity"}`.
    pub fn stats(&self) -> String {
        let s = self
            .inner
            .as_ref()
            .map(|g| g.cache_stats())
            .unwrap_or_default();
        json!({ "hits": s.hits, "misses": s.misses, "entries": s.entries, "capacity": s.capacity })
            .to_string()
    }
}

/// `{"ok": StoreDecision}`: a store's decision on `ask_json` given what it read (`read_json`).
#[wasm_bindgen]
pub fn store_decide(ask_json: &str, read_json: &str) -> String {
    answer(
        parse::<mcpvault::state::StoreAsk>("ask", ask_json).and_then(|a| {
            parse::<mcpvault::state::StoreRead>("read", read_json)
                .map(|r| mcpvault::state::decide(&a, &r))
        }),
    )
}

/// `{"ok": [name, ...]}`: the headers the guard reads, in the order `Guard.check_request` takes them.
#[wasm_bindgen]
pub fn read_headers() -> String {
    ok(mcpvault::guard::READ_HEADERS)
}

/// `{"ok": {keys, args}}`: `spend.lua`'s KEYS and ARGV for a store's `ask_json` (Redis stores).
#[wasm_bindgen]
pub fn redis_call(ask_json: &str) -> String {
    answer(
        parse::<mcpvault::state::StoreAsk>("ask", ask_json)
            .map(|a| mcpvault::redis::redis_call(&a)),
    )
}

/// `{"ok": StoreAnswer}`: the answer to `ask_json` from `spend.lua`'s reply (`reply_json`, an array of its elements).
#[wasm_bindgen]
pub fn redis_answer(ask_json: &str, reply_json: &str) -> String {
    answer(
        parse::<mcpvault::state::StoreAsk>("ask", ask_json).and_then(|a| {
            parse::<serde_json::Value>("reply", reply_json)
                .map(|r| mcpvault::redis::redis_answer_json(&a, &r))
        }),
    )
}

/// `{"ok": id}`: a full revocation id, lowercased, or `invalid_request`.
#[wasm_bindgen]
pub fn revocation_id(id: &str) -> String {
    answer(mcpvault::state::revocation_id(id))
}

/// The methods whose answers the guard's `filter` narrows to what a token may see (`mcpvault::guard::LIST_METHODS`),
/// as a JSON array: hosts filter these answers and hand every other one on as it is.
#[wasm_bindgen]
pub fn list_methods() -> String {
    json!(mcpvault::guard::LIST_METHODS).to_string()
}

/// `{"ok": {token, source} | null}`: the token `input_json` presents.
#[wasm_bindgen]
pub fn find_token(input_json: &str) -> String {
    answer(
        parse::<mcpvault::guard::GuardInput>("input", input_json).map(|i| {
            mcpvault::guard::find_token(&i)
                .map(|(token, source)| json!({ "token": token, "source": source }))
        }),
    )
}

/// `{"ok": {status, headers, body}}`: the answer to a refusal with `code`.
#[wasm_bindgen]
pub fn refusal(
    code: &str,
    message: &str,
    failed_block: i32,
    tool: &str,
    id_json: &str,
    options_json: &str,
) -> String {
    answer(
        parse::<mcpvault::guard::GuardOptions>("options", options_json).map(|o| {
            mcpvault::guard::refusal_answer(
                code,
                message,
                usize::try_from(failed_block).ok(),
                (!tool.is_empty()).then_some(tool),
                serde_json::from_str(id_json).ok(),
                &o,
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
