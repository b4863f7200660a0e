//! The core as text: every argument and answer is JSON, for hosts whose boundary passes strings (the WIT
//! component's `verify-json` and `guard` interface, the Python extension). Each function is a typed core call
//! between one parse and one print, so those hosts share one translation instead of each writing its own; a host
//! adds only its clock and its error type. Bad text is `invalid_request` naming what it was.

use crate::audit::{self, AuditEntry, AuditRecord};
use crate::guard::{Guard, GuardInput, GuardOptions, Outcome, Pending};
use crate::state::{StoreAnswer, StoreAsk, StoreRead};
use crate::{AuthorizedFacts, Error, Limits, Request, Result, Verifier, TOOLS_CALL};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Verified chains a [`GuardHost`] keeps across checks.
pub const GUARD_CACHE: usize = 1024;

/// The WIT `request` record as text (`verify-json`): `arguments` is the arguments object as JSON text; `proof` is
/// the call's proof for a holder-bound token.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestText {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Unix seconds; `None`: the host's clock.
    #[serde(default)]
    pub now: Option<u64>,
    #[serde(default)]
    pub tool_definition: Option<String>,
    /// `null` or absent: none.
    #[serde(default)]
    pub approvals: Option<Vec<String>>,
    #[serde(default)]
    pub proof: Option<String>,
}

impl RequestText {
    /// The core's request (`arguments` parsed; `""` or absent is no arguments).
    pub fn into_request(self) -> Result<Request> {
        let arguments = Request::arguments_from_json(self.arguments.as_deref().unwrap_or(""))?;
        Ok(Request {
            method: self.method.unwrap_or_else(|| TOOLS_CALL.to_string()),
            tool: self.tool,
            arguments,
            audience: self.audience,
            scope: self.scope,
            resource: self.resource,
            prompt: self.prompt,
            tool_definition: self.tool_definition,
            approvals: self.approvals.unwrap_or_default(),
            proof: self.proof,
            // servers open resources and prompts, require approvals and defer pins through the guard's options
            ..Request::default()
        })
    }
}

/// The WIT `authorized-facts` record as `verify-json` writes it: every field of the record, in its order.
#[derive(Debug, Clone, Serialize)]
pub struct FactsText {
    pub tool: Option<String>,
    pub tools: Vec<String>,
    pub issuer: String,
    pub subject: String,
    pub expires_at: u64,
    pub depth: u32,
    pub audience: Option<String>,
    pub max_depth: Option<u64>,
    pub revocation_ids: Vec<String>,
    pub nonces: Vec<String>,
    pub scopes: Vec<String>,
    pub scope: Option<String>,
    pub resources: Vec<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    /// `{"TOOL": ["HASH", ...]}`.
    pub pins: BTreeMap<String, Vec<String>>,
    pub approvals: Vec<crate::approval::Used>,
    pub holder: Option<String>,
    pub proof_nonce: Option<String>,
    pub quotas: Vec<crate::quota::Quota>,
}

impl From<AuthorizedFacts> for FactsText {
    fn from(f: AuthorizedFacts) -> Self {
        FactsText {
            tool: f.tool,
            tools: f.tools,
            issuer: f.issuer,
            subject: f.subject,
            expires_at: f.expires_at,
            depth: u32::try_from(f.depth).unwrap_or(u32::MAX),
            audience: f.audience,
            max_depth: f.max_depth,
            revocation_ids: f.revocation_ids,
            nonces: f.nonces,
            scopes: f.scopes,
            scope: f.scope,
            resources: f.resources,
            prompts: f.prompts,
            pins: f.pins,
            approvals: f.approvals,
            holder: f.holder,
            proof_nonce: f.proof_nonce,
            quotas: f.quotas,
        }
    }
}

/// `text` as `T`, or `invalid_request` naming `what`.
pub fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::InvalidRequest {
        reason: format!("{what}: {e}"),
    })
}

/// `value` as JSON text.
pub fn print<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal {
        detail: e.to_string(),
    })
}

/// `verify-json`: `request` is a [`RequestText`]; the answer a [`FactsText`]. The time is the request's `now`,
/// else `clock()`.
pub fn verify(
    verifier: &mut Verifier,
    token: &str,
    public_key: &str,
    request: &str,
    clock: impl FnOnce() -> u64,
) -> Result<String> {
    print(&verify_facts(verifier, token, public_key, request, clock)?)
}

/// [`verify`]'s facts before they are printed, for a host that builds its own values from them.
pub fn verify_facts(
    verifier: &mut Verifier,
    token: &str,
    public_key: &str,
    request: &str,
    clock: impl FnOnce() -> u64,
) -> Result<FactsText> {
    let request: RequestText = parse("request", request)?;
    let now = request.now.unwrap_or_else(clock);
    let facts = verifier.verify(token, public_key, &request.into_request()?, now)?;
    Ok(FactsText::from(facts))
}

/// The guard of a host that passes its options as text on every check: one verifier (and its verified-chain
/// cache, keyed by the root key and the whole token, so guards of different options share it safely) kept across
/// checks, and the last options text that passed [`Guard::new`]'s checks, so that unchanged options are not
/// checked again.
#[derive(Default)]
pub struct GuardHost {
    verifier: Option<Verifier>,
    checked: Option<String>,
}

impl GuardHost {
    pub const fn new() -> GuardHost {
        GuardHost {
            verifier: None,
            checked: None,
        }
    }

    /// `guard-check`: `options` a [`GuardOptions`], `input` a [`GuardInput`]; the answer the [`crate::guard::Check`].
    pub fn check(&mut self, options: &str, input: &str, now: u64) -> Result<String> {
        let parsed: GuardOptions = parse("options", options)?;
        let input: GuardInput = parse("input", input)?;
        if self.checked.as_deref() != Some(options) {
            Guard::new(parsed.clone(), 0)?;
            self.checked = Some(options.to_string());
        }
        let verifier = self
            .verifier
            .take()
            .unwrap_or_else(|| Verifier::with_cache(Limits::default(), GUARD_CACHE));
        let mut guard = Guard::from_parts(parsed, verifier);
        let check = guard.check(&input, now);
        self.verifier = Some(guard.into_verifier());
        print(&check)
    }
}

/// A guard that needs no verifier (resume, audit-failed, filter).
fn guard_without_cache(options: &str) -> Result<Guard> {
    let options: GuardOptions = parse("options", options)?;
    Ok(Guard::from_parts(options, Verifier::new(Limits::default())))
}

/// `guard-resume`: the outcome of a check that asked the store, given the store's answer.
pub fn guard_resume(options: &str, pending: &str, answer: &str) -> Result<String> {
    let guard = guard_without_cache(options)?;
    let pending: Pending = parse("pending", pending)?;
    let answer: StoreAnswer = parse("answer", answer)?;
    print(&guard.resume(pending, &answer))
}

/// `store-decide`: the store's atomic step on what it read.
pub fn store_decide(ask: &str, read: &str) -> Result<String> {
    let ask: StoreAsk = parse("ask", ask)?;
    // what the store read is the store's, not the caller's: one that does not parse is the server's failure
    let read: StoreRead = parse("read", read).map_err(|e| Error::Internal {
        detail: format!("store: {e}"),
    })?;
    print(&crate::state::decide(&ask, &read))
}

/// `redis-call`: `spend.lua`'s `KEYS` and `ARGV` for a store's ask (`{"keys": [...], "args": [...]}`).
pub fn redis_call(ask: &str) -> Result<String> {
    let ask: StoreAsk = parse("ask", ask)?;
    print(&crate::redis::redis_call(&ask))
}

/// `redis-answer`: the store's answer to `ask` from `spend.lua`'s `reply` (a JSON array of its elements as text).
pub fn redis_answer(ask: &str, reply: &str) -> Result<String> {
    let ask: StoreAsk = parse("ask", ask)?;
    let reply: serde_json::Value = parse("reply", reply)?;
    print(&crate::redis::redis_answer_json(&ask, &reply))
}

/// `audit-failed`: the outcome when the audit chain could not be written.
pub fn audit_failed(options: &str, outcome: &str, detail: &str) -> Result<String> {
    let guard = guard_without_cache(options)?;
    let outcome: Outcome = parse("outcome", outcome)?;
    print(&guard.audit_failed(outcome, detail))
}

/// `guard-filter`: a list answer keeping only what `facts` (JSON `null`: none) grant.
pub fn guard_filter(
    options: &str,
    method: &str,
    answer: &str,
    facts: &str,
    first_page: bool,
) -> Result<String> {
    let guard = guard_without_cache(options)?;
    let result: serde_json::Value = parse("answer", answer)?;
    let facts: Option<AuthorizedFacts> = parse("facts", facts)?;
    print(&guard.filter(method, &result, facts.as_ref(), first_page))
}

/// The audit entry after `prev` (the previous entry as stored; `None` for the first) for `record` (an
/// [`AuditRecord`]), as the text to store.
pub fn audit_append(prev: Option<&str>, record: &str) -> Result<String> {
    let prev: Option<AuditEntry> = prev.map(|p| parse("prev", p)).transpose()?;
    let record: AuditRecord = parse("record", record)?;
    print(&audit::audit_append(prev.as_ref(), record)?)
}

/// `call-target`: what a proof or an approval of `message` (one JSON-RPC request as a client sends it, with
/// `token`) signs, as a [`crate::guard::CallTarget`].
pub fn call_target(message: &str, token: Option<&str>) -> Result<String> {
    let message: serde_json::Value = parse("message", message)?;
    print(&crate::guard::call_target(&message, token)?)
}
