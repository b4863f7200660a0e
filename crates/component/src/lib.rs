//! The mcpvault core as a WebAssembly component (world `mcpvault:authz/authorizer`).
//!
//! A thin guest: every function converts WIT values into the core's types,
//! calls the core, and converts back. Time is the call's `now` when given,
//! else the WASI wall clock; randomness is WASI's. The `guard` interface
//! takes and returns the core's serde JSON (`guard::Check`, `state::decide`):
//! hosts do the store's I/O, the core decides.

mod bindings {
    wit_bindgen::generate!({
        world: "authorizer",
        path: "../../wit",
    });
}

use bindings::exports::mcpvault::authz::authorize::{self as authorize, Guest, GuestVerifier};
use bindings::exports::mcpvault::authz::guard::Guest as GuardGuest;
use bindings::exports::mcpvault::authz::types as wit;
use mcpvault::audit::{self, AuditEntry, AuditRecord};
use mcpvault::text::{self, GuardHost};
use mcpvault::{Limits, Verifier};
use rand_core::{OsRng, RngCore};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Mutex;

struct Component;

bindings::export!(Component with_types_in bindings);

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `CODES`: every core code and its WIT case.
macro_rules! codes {
    ($($code:literal => $case:ident,)*) => {
        const CODES: &[(&str, wit::ErrorCode)] = &[$(($code, wit::ErrorCode::$case),)*];
    };
}

// Every core code and its WIT case, in the order of `mcpvault::ERROR_CODES`
// (and of the WIT enum): checked when the component compiles, so a code the
// core adds cannot silently become `internal-error`.
codes! {
    "missing_token" => MissingToken,
    "malformed_token" => MalformedToken,
    "invalid_key" => InvalidKey,
    "bad_signature" => BadSignature,
    "expired" => Expired,
    "tool_not_allowed" => ToolNotAllowed,
    "argument_not_allowed" => ArgumentNotAllowed,
    "resource_not_allowed" => ResourceNotAllowed,
    "prompt_not_allowed" => PromptNotAllowed,
    "wrong_audience" => WrongAudience,
    "depth_exceeded" => DepthExceeded,
    "check_failed" => CheckFailed,
    "limits_exceeded" => LimitsExceeded,
    "revoked" => Revoked,
    "replayed" => Replayed,
    "in_flight" => InFlight,
    "session_mismatch" => SessionMismatch,
    "rate_limited" => RateLimited,
    "budget_exceeded" => BudgetExceeded,
    "proof_required" => ProofRequired,
    "bad_proof" => BadProof,
    "proof_expired" => ProofExpired,
    "tool_definition_changed" => ToolDefinitionChanged,
    "approval_required" => ApprovalRequired,
    "rule_violation" => RuleViolation,
    "invalid_request" => InvalidRequest,
    "internal_error" => InternalError,
}

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of bounds fails the build"
)]
const fn codes_match_the_core() -> bool {
    let core = mcpvault::ERROR_CODES;
    if CODES.len() != core.len() {
        return false;
    }
    let mut i = 0;
    while i < CODES.len() {
        let (ours, theirs) = (CODES[i].0.as_bytes(), core[i].as_bytes());
        if ours.len() != theirs.len() || CODES[i].1 as usize != i {
            return false;
        }
        let mut j = 0;
        while j < ours.len() {
            if ours[j] != theirs[j] {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    codes_match_the_core(),
    "the WIT error-code enum must list mcpvault::ERROR_CODES, in order"
);

/// The WIT code of a core code; `None` for a code the core does not have.
fn code_of(code: &str) -> Option<wit::ErrorCode> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, w)| *w)
}

fn code(e: &mcpvault::Error) -> wit::ErrorCode {
    code_of(e.code()).unwrap_or(wit::ErrorCode::InternalError)
}

fn error(e: mcpvault::Error) -> wit::Error {
    let failed = e.failed_check();
    wit::Error {
        code: code(&e),
        message: e.to_string(),
        failed_block: failed.and_then(|(b, _)| u32::try_from(b).ok()),
        failed_check: failed.map(|(_, c)| c.to_string()),
        approval: e
            .approval()
            .map(|(request_hash, approvers, needed)| wit::ApprovalAsk {
                request_hash: request_hash.to_string(),
                approvers: approvers.to_vec(),
                needed,
            }),
    }
}

fn scalar(s: wit::Scalar) -> mcpvault::Scalar {
    match s {
        wit::Scalar::Boolean(b) => mcpvault::Scalar::Bool(b),
        wit::Scalar::Integer(i) => mcpvault::Scalar::Int(i),
        wit::Scalar::Text(t) => mcpvault::Scalar::Str(t),
    }
}

fn rate(r: wit::Rate) -> mcpvault::quota::Rate {
    mcpvault::quota::Rate {
        tool: r.tool,
        max: r.max,
        period: r.period,
    }
}

fn budget(b: wit::Budget) -> mcpvault::quota::Budget {
    mcpvault::quota::Budget {
        tool: b.tool,
        arg: b.arg,
        max: b.max,
        period: b.period,
    }
}

fn arg_limit(l: wit::ArgLimit) -> mcpvault::ArgLimit {
    use mcpvault::{ArgRule as R, Bound, Float};
    let rule = match l.rule {
        wit::ArgRule::Prefix(p) => R::Prefix(p),
        wit::ArgRule::Eq(v) => R::Eq(scalar(v)),
        wit::ArgRule::OneOf(vs) => R::OneOf(vs.into_iter().map(scalar).collect()),
        wit::ArgRule::Max(m) => R::Max(Bound::Int(m)),
        wit::ArgRule::Min(m) => R::Min(Bound::Int(m)),
        // a NaN or an infinity is refused by the core's validation
        wit::ArgRule::MaxNum(f) => R::Max(Bound::Float(Float(f))),
        wit::ArgRule::MinNum(f) => R::Min(Bound::Float(Float(f))),
        wit::ArgRule::Under(d) => R::Under(d),
        wit::ArgRule::Url(p) => R::Url(p),
        wit::ArgRule::Cidr(n) => R::Cidr(n),
        wit::ArgRule::Glob(g) => R::Glob(g),
        wit::ArgRule::Matches(p) => R::Matches(p),
        wit::ArgRule::MaxItems(n) => R::MaxItems(n),
        wit::ArgRule::MinItems(n) => R::MinItems(n),
    };
    mcpvault::ArgLimit {
        tool: l.tool,
        arg: l.arg,
        rule,
    }
}

/// The pins of a grant or restriction as the core's map: one entry per tool (the core checks names and hashes).
fn pins(pins: Vec<wit::ToolPin>) -> Result<BTreeMap<String, String>, wit::Error> {
    let mut out = BTreeMap::new();
    for p in pins {
        if out.contains_key(&p.tool) {
            return Err(invalid("pin", format!("two pins of tool {:?}", p.tool)));
        }
        out.insert(p.tool, p.hash);
    }
    Ok(out)
}

/// An approval requirement of a grant or restriction (the core checks the keys and `needed`).
fn requirement(r: wit::ApprovalRequirement) -> mcpvault::approval::Requirement {
    mcpvault::approval::Requirement {
        tool: Some(r.tool),
        approvers: r.approvers,
        needed: r.needed,
    }
}

fn request(r: wit::Request) -> Result<mcpvault::Request, wit::Error> {
    mcpvault::text::RequestText {
        method: r.method,
        tool: r.tool,
        arguments: r.arguments,
        audience: r.audience,
        scope: r.scope,
        resource: r.resource,
        prompt: r.prompt,
        now: r.now,
        tool_definition: r.tool_definition,
        approvals: Some(r.approvals),
        proof: r.proof,
    }
    .into_request()
    .map_err(error)
}

fn facts(f: mcpvault::AuthorizedFacts) -> wit::AuthorizedFacts {
    wit::AuthorizedFacts {
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
        pins: f
            .pins
            .into_iter()
            .map(|(tool, hashes)| wit::ToolPins { tool, hashes })
            .collect(),
        approvals: f
            .approvals
            .into_iter()
            .map(|u| wit::ApprovalUsed {
                approver: u.approver,
                nonce: u.nonce,
                expires_at: u.expires_at,
            })
            .collect(),
        holder: f.holder,
        proof_nonce: f.proof_nonce,
        quotas: f
            .quotas
            .into_iter()
            .map(|q| wit::Quota {
                kind: match q.kind {
                    mcpvault::quota::QuotaKind::Rate => wit::QuotaKind::Rate,
                    mcpvault::quota::QuotaKind::Budget => wit::QuotaKind::Budget,
                },
                block: u32::try_from(q.block).unwrap_or(u32::MAX),
                revocation_id: q.revocation_id,
                tool: q.tool,
                arg: q.arg,
                max: q.max,
                period: q.period,
            })
            .collect(),
    }
}

/// Replays the host's random bytes to the core (the nonce of `sign-call` and `approve`): the component reads no
/// random source there.
struct HostBytes(std::vec::IntoIter<u8>);

impl RngCore for HostBytes {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // `sign-call` and `approve` hand over exactly the 16 bytes the core draws; were it to ask for more, the rest
        // would come from WASI's random source, never a fixed value
        let mut given = 0;
        for (d, b) in dest.iter_mut().zip(self.0.by_ref()) {
            *d = b;
            given += 1;
        }
        if let Some(rest) = dest.get_mut(given..) {
            OsRng.fill_bytes(rest);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// the host's bytes come from its OS random source (the WIT contract of `sign-call` and `approve`)
impl rand_core::CryptoRng for HostBytes {}

/// The bytes of a proof's or an approval's nonce (`mcpvault::proof::sign_call` and
/// `mcpvault::approval::approve` draw 16).
const NONCE_BYTES: usize = 16;

/// The host's nonce bytes as the core's rng, or `invalid-request` for another length.
fn host_nonce(nonce: Vec<u8>) -> Result<HostBytes, wit::Error> {
    if nonce.len() != NONCE_BYTES {
        return Err(invalid(
            "nonce",
            format!("{NONCE_BYTES} random bytes, not {}", nonce.len()),
        ));
    }
    Ok(HostBytes(nonce.into_iter()))
}

/// One call of `token` as a proof and a request hash name it: the token's last revocation id (as the CLI's and
/// npm's `sign-call` and `request-hash` take it), and `f`'s answer for it.
fn with_call<T>(
    token: &str,
    method: &str,
    name: Option<&str>,
    arguments: Option<&str>,
    audience: Option<&str>,
    f: impl FnOnce(&mcpvault::proof::Call<'_>) -> Result<T, mcpvault::Error>,
) -> Result<T, wit::Error> {
    let arguments =
        mcpvault::Request::arguments_from_json(arguments.unwrap_or("")).map_err(error)?;
    let token_id = mcpvault::inspect(token)
        .map_err(error)?
        .revocation_ids
        .pop()
        .unwrap_or_default();
    f(&mcpvault::proof::Call {
        token_id: &token_id,
        method,
        name,
        arguments: &arguments,
        audience,
    })
    .map_err(error)
}

/// The `verifier` resource: the core's verifier, kept by the host across calls.
struct CachedVerifier {
    // a component instance runs one call at a time, and no call re-enters it
    inner: RefCell<Verifier>,
}

impl CachedVerifier {
    fn inner(&self) -> Result<std::cell::RefMut<'_, Verifier>, wit::Error> {
        self.inner.try_borrow_mut().map_err(|_| {
            error(mcpvault::Error::Internal {
                detail: "verifier re-entered".to_string(),
            })
        })
    }
}

impl GuestVerifier for CachedVerifier {
    fn new(cache: u32) -> Self {
        CachedVerifier {
            inner: RefCell::new(Verifier::with_cache(
                Limits::default(),
                usize::try_from(cache).unwrap_or(usize::MAX),
            )),
        }
    }

    fn verify(
        &self,
        token: String,
        public_key: String,
        req: wit::Request,
    ) -> Result<wit::AuthorizedFacts, wit::Error> {
        let now = req.now.unwrap_or_else(wall_clock);
        let req = request(req)?;
        self.inner()?
            .verify(&token, &public_key, &req, now)
            .map(facts)
            .map_err(error)
    }

    fn verify_json(
        &self,
        token: String,
        public_key: String,
        req: String,
    ) -> Result<String, wit::Error> {
        text::verify(&mut *self.inner()?, &token, &public_key, &req, wall_clock).map_err(error)
    }

    fn stats(&self) -> authorize::CacheStats {
        let s = self
            .inner
            .try_borrow()
            .map(|v| v.cache_stats())
            .unwrap_or_default();
        authorize::CacheStats {
            hits: s.hits,
            misses: s.misses,
            entries: u64::try_from(s.entries).unwrap_or(u64::MAX),
            capacity: u64::try_from(s.capacity).unwrap_or(u64::MAX),
        }
    }
}

impl Guest for Component {
    type Verifier = CachedVerifier;

    fn keygen() -> wit::Keypair {
        let k = mcpvault::keygen(&mut OsRng);
        wit::Keypair {
            private_key: k.private_key.clone(),
            public_key: k.public_key.clone(),
        }
    }

    fn mint(
        private_key: String,
        grant: wit::Grant,
        now: Option<u64>,
    ) -> Result<String, wit::Error> {
        let grant = mcpvault::Grant {
            tools: grant.tools,
            scopes: grant.scopes,
            resources: grant.resources,
            prompts: grant.prompts,
            ttl: grant.ttl,
            issuer: grant.issuer,
            subject: grant.subject,
            audience: grant.audience,
            max_depth: grant.max_depth,
            arg_limits: grant.arg_limits.into_iter().map(arg_limit).collect(),
            single_use: grant.single_use,
            rate: grant.rate.into_iter().map(rate).collect(),
            budget: grant.budget.into_iter().map(budget).collect(),
            holder: grant.holder,
            pin: pins(grant.pin)?,
            require_approval: grant
                .require_approval
                .into_iter()
                .map(requirement)
                .collect(),
        };
        mcpvault::mint(
            &private_key,
            &grant,
            now.unwrap_or_else(wall_clock),
            &mut OsRng,
        )
        .map_err(error)
    }

    fn attenuate(
        token: String,
        restriction: wit::Restriction,
        now: Option<u64>,
    ) -> Result<wit::Attenuated, wit::Error> {
        let r = mcpvault::Restriction {
            tools: restriction.tools,
            scopes: restriction.scopes,
            resources: restriction.resources,
            prompts: restriction.prompts,
            ttl: restriction.ttl,
            audience: restriction.audience,
            max_depth: restriction.max_depth,
            arg_limits: restriction.arg_limits.into_iter().map(arg_limit).collect(),
            single_use: restriction.single_use,
            rate: restriction.rate.into_iter().map(rate).collect(),
            budget: restriction.budget.into_iter().map(budget).collect(),
            holder: restriction.holder,
            pin: pins(restriction.pin)?,
            require_approval: restriction
                .require_approval
                .into_iter()
                .map(requirement)
                .collect(),
        };
        mcpvault::attenuate(&token, &r, now.unwrap_or_else(wall_clock), &mut OsRng)
            .map(|a| wit::Attenuated {
                token: a.token,
                warnings: a.warnings,
            })
            .map_err(error)
    }

    fn verify(
        token: String,
        public_key: String,
        req: wit::Request,
    ) -> Result<wit::AuthorizedFacts, wit::Error> {
        let now = req.now.unwrap_or_else(wall_clock);
        let req = request(req)?;
        mcpvault::verify(&token, &public_key, &req, now)
            .map(facts)
            .map_err(error)
    }

    fn inspect(token: String) -> Result<String, wit::Error> {
        let inspection = mcpvault::inspect(&token).map_err(error)?;
        text::print(&inspection).map_err(error)
    }

    fn audit_append(
        prev: Option<String>,
        decision: wit::AuditRecord,
    ) -> Result<String, wit::Error> {
        let record = decision;
        let prev: Option<AuditEntry> = prev
            .map(|p| text::parse("prev", &p))
            .transpose()
            .map_err(error)?;
        let record = AuditRecord {
            time: record.time,
            allowed: record.allowed,
            code: record.code,
            method: record.method,
            tool: record.tool,
            subject: record.subject,
            issuer: record.issuer,
            revocation_ids: record.revocation_ids,
            request_id: record.request_id,
            approvers: record.approvers,
            replayed_response: record.replayed_response,
        };
        let entry = audit::audit_append(prev.as_ref(), record).map_err(error)?;
        text::print(&entry).map_err(error)
    }

    fn audit_verify(entries: Vec<String>) -> Result<wit::AuditSummary, wit::AuditBreak> {
        let values = audit::entries_from_lines(entries.iter().map(String::as_str));
        match audit::audit_verify(&values) {
            Ok(s) => Ok(wit::AuditSummary {
                entries: s.entries as u64,
                head: s.head,
            }),
            Err(b) => Err(wit::AuditBreak {
                index: b.index as u64,
                seq: b.seq,
                kind: match b.kind {
                    audit::BreakKind::Edited => wit::AuditBreakKind::Edited,
                    audit::BreakKind::Deleted => wit::AuditBreakKind::Deleted,
                    audit::BreakKind::Reordered => wit::AuditBreakKind::Reordered,
                    audit::BreakKind::Broken => wit::AuditBreakKind::Broken,
                },
                detail: b.detail,
            }),
        }
    }

    fn call_key(request_id: String, req: wit::Request) -> Result<String, wit::Error> {
        let req = request(req)?;
        Ok(audit::call_key(
            &request_id,
            &req.method,
            req.tool.as_deref(),
            &req.arguments,
        ))
    }

    fn sign_call(
        token: String,
        holder_private_key: String,
        method: String,
        name: Option<String>,
        arguments: Option<String>,
        audience: Option<String>,
        now: u64,
        nonce: Vec<u8>,
    ) -> Result<String, wit::Error> {
        let mut rng = host_nonce(nonce)?;
        with_call(
            &token,
            &method,
            name.as_deref(),
            arguments.as_deref(),
            audience.as_deref(),
            |call| mcpvault::proof::sign_call(&holder_private_key, call, now, &mut rng),
        )
    }

    fn request_hash(
        token: String,
        method: String,
        name: Option<String>,
        arguments: Option<String>,
        audience: Option<String>,
    ) -> Result<String, wit::Error> {
        with_call(
            &token,
            &method,
            name.as_deref(),
            arguments.as_deref(),
            audience.as_deref(),
            |call| Ok(mcpvault::proof::request_hash(call)),
        )
    }

    fn approve(
        approver_private_key: String,
        request_hash: String,
        ttl: u64,
        now: u64,
        nonce: Vec<u8>,
    ) -> Result<String, wit::Error> {
        let mut rng = host_nonce(nonce)?;
        mcpvault::approval::approve(&approver_private_key, &request_hash, now, ttl, &mut rng)
            .map_err(error)
    }

    fn tool_hashes(list_json: String) -> Result<String, wit::Error> {
        let list: serde_json::Value =
            text::parse("tools/list result", &list_json).map_err(error)?;
        let hashes = mcpvault::pin::tool_hashes(&list).map_err(error)?;
        text::print(&hashes).map_err(error)
    }
}

/// The guard of this instance, shared by every `guard-check` (the core's [`GuardHost`]).
static SHARED: Mutex<GuardHost> = Mutex::new(GuardHost::new());

fn invalid(what: &str, e: impl std::fmt::Display) -> wit::Error {
    error(mcpvault::Error::InvalidRequest {
        reason: format!("{what}: {e}"),
    })
}

impl GuardGuest for Component {
    fn guard_check(options: String, input: String, now: Option<u64>) -> Result<String, wit::Error> {
        let now = now.unwrap_or_else(wall_clock);
        // a poisoned lock only means a call trapped half-way: the cache is still sound
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        shared.check(&options, &input, now).map_err(error)
    }

    fn guard_resume(
        options: String,
        pending: String,
        answer: String,
    ) -> Result<String, wit::Error> {
        text::guard_resume(&options, &pending, &answer).map_err(error)
    }

    fn store_decide(ask: String, read: String) -> Result<String, wit::Error> {
        text::store_decide(&ask, &read).map_err(error)
    }

    fn redis_call(ask: String) -> Result<String, wit::Error> {
        text::redis_call(&ask).map_err(error)
    }

    fn redis_answer(ask: String, reply: String) -> Result<String, wit::Error> {
        text::redis_answer(&ask, &reply).map_err(error)
    }

    fn revocation_id(id: String) -> Result<String, wit::Error> {
        mcpvault::state::revocation_id(&id).map_err(error)
    }

    fn audit_failed(
        options: String,
        outcome: String,
        detail: String,
    ) -> Result<String, wit::Error> {
        text::audit_failed(&options, &outcome, &detail).map_err(error)
    }

    fn guard_filter(
        options: String,
        method: String,
        answer: String,
        facts: String,
        first_page: bool,
    ) -> Result<String, wit::Error> {
        text::guard_filter(&options, &method, &answer, &facts, first_page).map_err(error)
    }

    fn call_target(message: String, token: Option<String>) -> Result<String, wit::Error> {
        text::call_target(&message, token.as_deref()).map_err(error)
    }
}
