//! The guard: what an MCP server decides around a token, for every host.
//!
//! Sans-IO, in the shape of rustls or quinn-proto: a host hands the guard
//! what arrived (HTTP method and headers, the body or JSON-RPC message) and
//! the time; the guard finds the token, verifies it once for the whole
//! request, decides every message, and says what it needs from the store
//! ([`Check::Ask`]). The host performs that ask atomically (see
//! [`crate::state`]) and hands the answer back to [`Guard::resume`]; the
//! [`Outcome`] says what to answer or forward, and what to write (audit
//! records, and after the handler ran, its response for retries).
//!
//! Every host (the npm gate and its adapters, the CLI, Python, the wasmtime
//! host) calls this; none carries a rule of its own. SCHEMA.md, "At an MCP
//! server", documents the rules; `tests/vectors/state` holds every host to
//! them.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::audit::AuditRecord;
use crate::error::{rpc_code_of_status, Error, Result};
use crate::model::{AuthorizedFacts, Request, TOOLS_CALL};
use crate::policy::{Policy, Rule as PolicyRule, ToolMapping, Verdict};
use crate::state::{SpendAsk, SpendOutcome, StoreAnswer, StoreAsk, RETRY_WINDOW};
use crate::Verifier;

/// Most messages in one JSON-RPC batch (the MCP SDK's own limit); a larger
/// batch is refused before any verification.
pub const MAX_BATCH: usize = 100;
/// Most objects and arrays one body holds, and most values (strings, object
/// keys included, objects, arrays, and the values commas separate): a body
/// is counted before it is parsed, since each parsed object costs hundreds of
/// bytes, copied as the guard reads it — 4 MiB of `{"":0}` held 1.2 GB and 17 s
/// of the npm guard (its WebAssembly memory never shrinks) before any token
/// was looked at.
pub const MAX_BODY_CONTAINERS: usize = 10_000;
/// See [`MAX_BODY_CONTAINERS`].
pub const MAX_BODY_VALUES: usize = 100_000;
/// What the caller chose (method, tool, request id) is cut to this many
/// characters in decisions and audit records: a refused request cannot grow
/// the log.
pub const MAX_RECORDED: usize = 256;
/// The reserved dry-run tool.
pub const CHECK_TOOL: &str = "mcpvault.check";
/// The method a dry run is authorized as (a valid token, no grant).
pub const CHECK_METHOD: &str = "mcpvault/check";
/// The method a JSON-RPC response from the client is authorized as.
pub const RESPONSE_METHOD: &str = "jsonrpc/response";
/// MCP's completion method: it completes a prompt's or resource template's
/// argument only for a token that sees that prompt or template.
pub const COMPLETION_METHOD: &str = "completion/complete";
/// MCP's (2026-07-28) notification stream: `params.notifications.resourceSubscriptions` subscribes to resources,
/// each of which the token must be allowed to read ([`MAX_LISTENED`] at most).
pub const LISTEN_METHOD: &str = "subscriptions/listen";
/// The skills extension's read of one skill (fastmcp 4's `SkillCatalogProvider`): `params.uri`, its `SKILL.md`.
pub const SKILL_GET_METHOD: &str = "skills/get";
/// The skills extension's list: every skill's URI and the URIs, digests and sizes of its files.
pub const SKILL_LIST_METHOD: &str = "skills/list";
/// The most resource URIs one `subscriptions/listen` subscribes to.
pub const MAX_LISTENED: usize = 100;
/// Seconds the clocks of servers sharing one store may differ by: what a
/// request spends (a single-use token's nonces, a proof, approvals) is kept
/// that long past the last second this server would accept it, so a server
/// whose clock is behind cannot accept it again (SCHEMA.md, "Single use").
pub const STORE_SKEW: u64 = 300;
/// The list methods whose answers the guard filters to what a token may see
/// ([`Guard::filter`]).
pub const LIST_METHODS: [&str; 6] = [
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "prompts/list",
    SKILL_LIST_METHOD,
    SKILL_GET_METHOD,
];
/// Where a token may be in a message's `params._meta`.
pub const META_KEYS: [&str; 2] = ["token", "mcpvault/token"];
/// The header that carries the token (before `Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-mcpvault-token";
/// Where a message carries the proof of a holder-bound token's call.
pub const PROOF_META_KEY: &str = "mcpvault/proof";
/// The header that carries it for a request of one message (plain HTTP routes).
pub const PROOF_HEADER: &str = "x-mcpvault-proof";
/// Where a message carries signed approvals of its call (an array of strings).
pub const APPROVALS_META_KEY: &str = "mcpvault/approvals";
/// The header that carries them for a request of one message (comma-separated).
pub const APPROVAL_HEADER: &str = "x-mcpvault-approval";

/// Every header the guard reads (lowercase names); a host may hand over only these.
pub const READ_HEADERS: [&str; 7] = [
    TOKEN_HEADER,
    PROOF_HEADER,
    APPROVAL_HEADER,
    "authorization",
    "mcp-method",
    "mcp-name",
    "mcp-session-id",
];

fn default_window() -> u64 {
    RETRY_WINDOW
}

/// A server's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardOptions {
    /// The issuer's public key, 64 hex characters.
    pub public_key: String,
    /// Most objects and arrays one body may hold (default [`MAX_BODY_CONTAINERS`]): a server whose tools take
    /// bulk rows raises it, at the memory each parsed object costs (hundreds of bytes, several times over).
    #[serde(
        default = "max_body_containers",
        skip_serializing_if = "is_max_body_containers"
    )]
    pub max_body_containers: usize,
    /// Most values one body may hold (default [`MAX_BODY_VALUES`]).
    #[serde(
        default = "max_body_values",
        skip_serializing_if = "is_max_body_values"
    )]
    pub max_body_values: usize,
    /// This server's audience name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Seconds a retry of the same single-use call is one (default 30).
    #[serde(default = "default_window")]
    pub retry_window: u64,
    /// A store is attached: revocation, single-use spends, audit records.
    #[serde(default)]
    pub store: bool,
    /// The route serves this one tool: a plain JSON body is its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Answer the dry-run tool `mcpvault.check`.
    #[serde(default)]
    pub check_tool: bool,
    /// The host verifies and runs an allowed call itself, and has no way to answer with a recorded response (the
    /// verify APIs over a store: npm `authorizeWithState` and `authorizeBody`, Python `MCPVault.verify` with a
    /// store, the CLI's `verify --store`): the retry of a call whose response is recorded is `replayed`, never
    /// allowed (it would run a second time).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_only: bool,
    /// An inner layer spends single-use tokens (and records results): this one
    /// checks revocation only.
    #[serde(default)]
    pub defer_spend: bool,
    /// The `realm` of `WWW-Authenticate` (default `mcpvault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// An OAuth protected-resource metadata URL to advertise in challenges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<String>,
    /// Tools mapped to scopes: `{"read_file": "filesystem:files:read"}`. A
    /// call is allowed when the token grants its tool or its scope; a tool
    /// with no mapping maps to `TOOL:call`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<String, String>,
    /// Conditional mappings (the highest priority that matches wins, then
    /// declaration order; before `mappings`).
    #[serde(default, alias = "toolMappings", skip_serializing_if = "Vec::is_empty")]
    pub tool_mappings: Vec<ToolMapping>,
    /// Rules: hard ones refuse (`rule_violation`), soft ones are reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
    /// Open resources to every valid token that grants none (a token naming
    /// resources is still held to them). Default: a token reads only the
    /// resources it grants.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_resources: bool,
    /// The same for prompts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_prompts: bool,
    /// This guard is an outer layer, an inner mcpvault layer decides each
    /// message again (HTTP middlewares in front of `withMcpVault`): hand on
    /// the proof and approvals of each allowed message that counted them
    /// (this layer spent them), others are stripped, and a call of the
    /// dry-run tool when `check_tool` is off (the inner layer answers it).
    /// Default: strip them all, and refuse the dry-run tool unless this guard
    /// answers it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_proofs: bool,
    /// An inner layer, which knows the server's tool definitions, checks the
    /// pins of pinned tools (HTTP middlewares in front of the MCP server);
    /// this one does not refuse for them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defer_pins: bool,
}

fn max_body_containers() -> usize {
    MAX_BODY_CONTAINERS
}
fn is_max_body_containers(n: &usize) -> bool {
    *n == MAX_BODY_CONTAINERS
}
fn max_body_values() -> usize {
    MAX_BODY_VALUES
}
fn is_max_body_values(n: &usize) -> bool {
    *n == MAX_BODY_VALUES
}

impl GuardOptions {
    /// Options for `public_key` with every default.
    pub fn new(public_key: impl Into<String>) -> Self {
        GuardOptions {
            public_key: public_key.into(),
            max_body_containers: MAX_BODY_CONTAINERS,
            max_body_values: MAX_BODY_VALUES,
            audience: None,
            retry_window: RETRY_WINDOW,
            store: false,
            tool: None,
            check_tool: false,
            verify_only: false,
            defer_spend: false,
            realm: None,
            resource_metadata: None,
            mappings: BTreeMap::new(),
            tool_mappings: Vec::new(),
            rules: Vec::new(),
            open_resources: false,
            open_prompts: false,
            forward_proofs: false,
            defer_pins: false,
        }
    }
}

/// Why a host could not read a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyError {
    /// Over the host's size limit.
    TooLarge,
    /// Not UTF-8.
    NotUtf8,
    /// Not JSON, or nested deeper than the host's parser goes.
    NotJson,
}

/// What arrived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardInput {
    /// The HTTP method, for a request that came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// HTTP headers (any case); only the ones the guard reads matter.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body or message as JSON text (none or blank: no body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The host could not read the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_error: Option<BodyError>,
    /// A token an outer mcpvault layer already took from this request (its
    /// header): read first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_token: Option<String>,
    /// A token to use when the request presents none (the stdio proxy's
    /// environment, another layer's `authInfo.token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_token: Option<String>,
    /// An outer layer already spent this request's single-use nonces.
    #[serde(default)]
    pub replay_checked: bool,
    /// The subject that opened the MCP session this request belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_subject: Option<String>,
    /// The host keeps the MCP sessions it saw opened (its session book,
    /// SCHEMA.md "Sessions"): a request naming a session (`Mcp-Session-Id`)
    /// without `session_subject` names one the host does not know, refused
    /// `invalid_request` with status 404 (the client opens another); an
    /// allowed outcome says which session to keep (`opens_session`) or forget
    /// (`ends_session`) once the server's answer succeeds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session_book: bool,
    /// The hashes of the server's current tool definitions by name
    /// ([`crate::pin::tool_hashes`] of its `tools/list`), for tokens that pin
    /// tools: a pinned tool the map does not name is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_definitions: Option<BTreeMap<String, String>>,
}

/// One decision: a message allowed or refused, or a whole request refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Allowed (the message goes on, or is answered by the guard).
    pub allowed: bool,
    /// The refusal code; null when allowed.
    pub code: Option<String>,
    /// HTTP status: 200 when allowed.
    pub status: u16,
    /// The refusal's message, safe to show the caller.
    pub message: Option<String>,
    /// The refusal's detail, for server logs only.
    pub detail: Option<String>,
    /// The block and check that refused, when a check did.
    pub failed_block: Option<usize>,
    /// The Datalog of that check.
    pub failed_check: Option<String>,
    /// The message's method (cut to 256 characters).
    pub method: Option<String>,
    /// The tool of a `tools/call` (cut).
    pub tool: Option<String>,
    /// The JSON-RPC id as text (cut).
    pub request_id: Option<String>,
    /// Where the token was found: header, bearer, transport, _meta.token,
    /// _meta.mcpvault/token, fallback.
    pub token_source: Option<String>,
    /// The token's subject, when it verified.
    pub subject: Option<String>,
    /// The token's issuer, when it verified.
    pub issuer: Option<String>,
    /// The token's revocation ids, when it verified.
    pub revocation_ids: Vec<String>,
    /// Answered from the recorded response of the first execution.
    #[serde(default)]
    pub replayed_response: bool,
    /// The scope the server's policy mapped a `tools/call` to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The soft rules of the server's policy that fired on an allowed call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_rules: Vec<String>,
    /// The token's delegation depth (attenuation blocks), when it verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// The token's chain came from the verifier's cache (its signatures were
    /// not checked again); absent when they were, or no token was verified.
    /// Depends on the cache's size and history, so `tests/vectors/state`
    /// never holds it (runners with a cache remove it before comparing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_hit: bool,
    /// The prompt of a `prompts/get` (`params.name`, cut), or of a
    /// `completion/complete` of a prompt (`params.ref.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The resource URI of a `resources/read`, `resources/subscribe`,
    /// `resources/unsubscribe` or `notifications/resources/updated` (cut), or
    /// the template of a `completion/complete` of a resource (`params.ref.uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// The `Mcp-Session-Id` header of the request (cut).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The W3C trace context the message carries in `params._meta`
    /// (`traceparent`, `tracestate`; cut), for the host's span parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// See `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// Seconds until a spent quota's window ends (`rate_limited`,
    /// `budget_exceeded`): the `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// What an `approval_required` refusal asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalAsk>,
    /// The approvers whose approvals counted for an allowed call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
}

/// The approvals a refused call needs: sign `request_hash` (SCHEMA.md,
/// "Signed approvals").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsk {
    /// The call's request hash.
    pub request_hash: String,
    /// Who may approve (Ed25519 public keys, hex).
    pub approvers: Vec<String>,
    /// How many of them must.
    pub needed: u32,
}

impl ApprovalAsk {
    /// What `e` asks for, when it is `approval_required`.
    pub fn of(e: &Error) -> Option<ApprovalAsk> {
        e.approval().map(|(h, a, n)| ApprovalAsk {
            request_hash: h.to_string(),
            approvers: a.to_vec(),
            needed: n,
        })
    }

    /// The ask as `error.data.approval` writes it: `{requestHash, approvers, needed}`.
    pub fn data(&self) -> Value {
        json!({"requestHash": self.request_hash, "approvers": self.approvers, "needed": self.needed})
    }
}

impl Decision {
    fn blank() -> Decision {
        Decision {
            allowed: false,
            code: None,
            status: 500,
            message: None,
            detail: None,
            failed_block: None,
            failed_check: None,
            method: None,
            tool: None,
            request_id: None,
            token_source: None,
            subject: None,
            issuer: None,
            revocation_ids: Vec::new(),
            replayed_response: false,
            depth: None,
            cache_hit: false,
            prompt: None,
            resource_uri: None,
            session_id: None,
            traceparent: None,
            tracestate: None,
            scope: None,
            soft_rules: Vec::new(),
            retry_after: None,
            approval: None,
            approvers: Vec::new(),
        }
    }

    /// This decision with what `from` knew of the request and the message
    /// (where the token was found, the cache, the target, the session and the
    /// trace context): a refusal that replaces an earlier decision keeps them.
    fn with_context_of(mut self, from: &Decision) -> Decision {
        self.token_source.clone_from(&from.token_source);
        self.cache_hit = from.cache_hit;
        self.prompt.clone_from(&from.prompt);
        self.resource_uri.clone_from(&from.resource_uri);
        self.session_id.clone_from(&from.session_id);
        self.traceparent.clone_from(&from.traceparent);
        self.tracestate.clone_from(&from.tracestate);
        self
    }

    /// The audit record of this decision at `time`.
    pub fn record(&self, time: u64) -> AuditRecord {
        AuditRecord {
            time,
            allowed: self.allowed,
            code: self.code.clone(),
            method: self.method.clone().unwrap_or_default(),
            tool: self.tool.clone(),
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            revocation_ids: self.revocation_ids.clone(),
            request_id: self.request_id.clone(),
            approvers: self.approvers.clone(),
            replayed_response: self.replayed_response,
        }
    }
}

/// What to do with the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Every message allowed.
    pub allowed: bool,
    /// The HTTP status to answer with when refused (200 when allowed).
    pub status: u16,
    /// Headers of the refusal (`WWW-Authenticate`).
    pub headers: BTreeMap<String, String>,
    /// The answer when refused: a JSON-RPC error response, or an array of them
    /// for a batch.
    pub response: Option<Value>,
    /// The body or message to hand on, without the token; null when nothing
    /// is left to hand on, and on a one-tool route when its plain body goes
    /// on as it came (else its arguments without the one that was the token).
    pub forward: Option<Value>,
    /// Responses the guard gives itself (dry runs, recorded responses of
    /// retries), for messages not in `forward`.
    pub answers: Vec<Value>,
    /// The token (for the host's `authInfo`; never log it).
    pub token: Option<String>,
    /// Where it was found.
    pub token_source: Option<String>,
    /// The facts of the first `tools/call`, else of the first message.
    pub facts: Option<AuthorizedFacts>,
    /// The decisions, one per message (one for a refused request).
    pub decisions: Vec<Decision>,
    /// Audit records to append (when a store is attached).
    pub audit: Vec<AuditRecord>,
    /// A single-use call spent now: after the handler ran, record its
    /// response under this key (`complete`) so a retry gets it.
    pub call_key: Option<String>,
    /// Keep that response until then (unix seconds, on the guard's clock).
    pub keep_until: Option<u64>,
    /// The same as seconds from the decision: stores with a clock of their own
    /// (Redis) expire by it, so a skew between clocks cannot shorten it.
    pub keep_for: Option<u64>,
    /// Refused `tool_definition_changed` only because the input gave no tool
    /// definitions (`tool_definitions` absent) for a tool the token pins: a
    /// host that can read the server's definitions reads them now and decides
    /// the request again with them, discarding this outcome. A host reads
    /// them only when this says so: never for a request without a valid
    /// token, nor for a token that pins nothing it calls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_tool_definitions: bool,
    /// With `session_book`, an allowed `initialize` went on to the server:
    /// the subject of its token, to keep for the session id the server's
    /// answer gives (its `Mcp-Session-Id`) once that answer succeeds (status
    /// below 300). Never from an id the client names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_session: Option<String>,
    /// With `session_book`, an allowed `DELETE` ends this session: forget it
    /// once the server's answer succeeds (status below 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_session: Option<String>,
}

/// The guard's first answer: done, or it needs the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Check {
    /// Decided.
    Done {
        /// The outcome.
        outcome: Box<Outcome>,
    },
    /// Perform `ask` atomically in the store, then call [`Guard::resume`]
    /// with `pending` and the answer.
    Ask {
        /// What to check and do.
        ask: StoreAsk,
        /// The guard's state, handed back as it is.
        pending: Box<Pending>,
        /// As [`Outcome::needs_tool_definitions`], before the store was asked:
        /// a host that can read the server's tool definitions reads them and
        /// checks again instead of performing `ask` (nothing was done yet).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_tool_definitions: bool,
    },
}

/// A request waiting for the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    now: u64,
    msgs: Vec<Msg>,
    batch: bool,
    /// Index of the message that spends, if any.
    spender: Option<usize>,
    /// What the request spends of the token's quotas (and what a dry run's
    /// call would, as probes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    charges: Vec<crate::quota::Charge>,
    /// The dry run whose call the store is probed for (its message index),
    /// and that probe's spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<(usize, Option<SpendAsk>)>,
    /// The input's `session_book`: the session a `DELETE` ends (if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<SessionNote>,
    /// The store was asked to spend the spender's nonces: its answer must say what it found.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    spend_asked: bool,
    /// The request is refused, and the store was asked only to spend its proofs (and whether its
    /// token is revoked): what it found of the spend changes nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    burn: bool,
    outcome: Outcome,
}

/// What a host keeping sessions learns from an allowed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionNote {
    /// The session a `DELETE` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ends: Option<String>,
    /// A POST (or a message without HTTP): an `initialize` request in it opens a session.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    may_open: bool,
}

impl SessionNote {
    /// The note for `input`, when its host keeps sessions.
    fn of(input: &GuardInput) -> Option<SessionNote> {
        let verb = input.http_method.as_deref();
        input.session_book.then(|| SessionNote {
            ends: verb
                .filter(|m| m.eq_ignore_ascii_case("DELETE"))
                .and(session_header(input))
                .map(str::to_string),
            may_open: verb.map_or(true, |m| m.eq_ignore_ascii_case("POST")),
        })
    }

    /// Tells the host what to keep or forget: an allowed request's outcome.
    fn apply(self, outcome: &mut Outcome) {
        outcome.ends_session = self.ends;
        if !self.may_open {
            return;
        }
        // an initialize request (not a notification) the server runs
        outcome.opens_session = outcome
            .decisions
            .iter()
            .find(|d| {
                d.allowed
                    && !d.replayed_response
                    && d.request_id.is_some()
                    && d.method.as_deref() == Some("initialize")
            })
            .and_then(|d| d.subject.clone());
    }
}

/// The session a request names (its `Mcp-Session-Id` without the spaces
/// and tabs HTTP allows around a value, as hosts read it), if any.
fn session_header(input: &GuardInput) -> Option<&str> {
    header(&input.headers, "mcp-session-id")
        .map(|v| v.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty())
}

/// One JSON-RPC message as the guard decided it before the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    id: Option<Value>,
    method: Option<String>,
    tool: Option<String>,
    /// Its decision so far.
    decision: Decision,
    /// The guard's own answer (dry run).
    answer: Option<Value>,
    /// Kept out of `forward` (answered by the guard).
    answered: bool,
    /// A list request for a later page (`params.cursor`): a recorded list
    /// answer is filtered as that page (no dry-run tool).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    later_page: bool,
}

/// The guard of one server: its options and a verifier with a cache.
pub struct Guard {
    options: GuardOptions,
    verifier: Verifier,
    /// The options' policy, checked; an error refuses every message.
    policy: std::result::Result<Policy, Error>,
}

/// A message refused before its token is looked at.
struct Refused {
    error: Error,
    method: Option<String>,
    tool: Option<String>,
    id: Option<Value>,
}

/// What one message asks.
struct Call {
    id: Option<Value>,
    request: Request,
    dry_run: Option<Result<Request>>,
    /// The message's params, as sent (its spend key's part: [`crate::audit::spend_key`]).
    params: Option<Value>,
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_RECORDED).collect()
}

/// Most characters of a decision's `message`, `detail` and `failed_check` (and so of an error answer's message):
/// they quote what the caller sent (a tool name, a scope, an argument), which [`MAX_RECORDED`] does not bound.
pub const MAX_TEXT: usize = 1024;

/// `s`, or its first [`MAX_TEXT`] characters and "…" after them.
fn cut_text(s: String) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        None => s,
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

fn id_text(id: &Option<Value>) -> Option<String> {
    match id {
        Some(Value::String(s)) => Some(cut(s)),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn header<'a>(h: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether an `Authorization` value holds several credentials (headers joined by `", "`) of which one is a Bearer
/// credential: which one the client meant is not known, so none is taken. A value of another scheme alone (Digest's
/// parameters hold commas too) is not the guard's.
fn several_with_bearer(value: &str) -> bool {
    value.contains(',') && value.split(',').any(|part| is_bearer(scheme_of(part).0))
}

/// An `Authorization` credential's scheme and the rest, trimmed (`"Bearer"` alone: the scheme and `""`).
fn scheme_of(credential: &str) -> (&str, &str) {
    let c = credential.trim();
    c.split_once(' ')
        .map_or((c, ""), |(s, rest)| (s, rest.trim()))
}

fn is_bearer(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("bearer")
}

/// The token of a Bearer credential. One with whitespace inside is still the one presented (it verifies as
/// malformed_token), never "no token" that a `_meta` token could then stand in for.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, t) = scheme_of(value);
    (is_bearer(scheme) && !t.is_empty()).then_some(t)
}

/// A message's `_meta` token and where, the first of [`META_KEYS`]; `Err` when its two keys name two different
/// tokens (one message, two tokens: the guard would authorize one and hand the other on).
fn meta_token(m: &Value) -> std::result::Result<Option<(String, String)>, ()> {
    let first = meta_first(m);
    if let Some((t, _)) = &first {
        let meta = m.get("params").and_then(|p| p.get("_meta"));
        let other = |k: &str| {
            meta.and_then(|x| x.get(k))
                .and_then(Value::as_str)
                .is_some_and(|o| !o.is_empty() && o != t)
        };
        if META_KEYS.iter().any(|k| other(k)) {
            return Err(());
        }
    }
    Ok(first)
}

/// A message's first `_meta` token (of [`META_KEYS`]) and where.
fn meta_first(m: &Value) -> Option<(String, String)> {
    let meta = m.get("params")?.get("_meta")?;
    META_KEYS.iter().find_map(|k| {
        meta.get(*k)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_string(), format!("_meta.{k}")))
    })
}

/// The token a request presents and where: the `X-MCPVault-Token` header,
/// `Authorization: Bearer`, the transport's token, a message's `_meta`,
/// then the fallback. A `_meta` token that differs from one found before is
/// an error (the message carrying it).
fn token_of<'a>(
    input: &GuardInput,
    messages: &'a [Value],
    strict: bool,
) -> std::result::Result<Option<(String, String)>, &'a Value> {
    let mut found = header(&input.headers, TOKEN_HEADER)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_string(), "header".to_string()))
        .or_else(|| {
            header(&input.headers, "authorization")
                .and_then(bearer)
                .map(|t| (t.to_string(), "bearer".to_string()))
        })
        .or_else(|| {
            input
                .transport_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| (t.to_string(), "transport".to_string()))
        });
    for m in messages {
        let meta = match meta_token(m) {
            Ok(meta) => meta,
            Err(()) if strict => return Err(m),
            // not strict (finding the token, not deciding): the first key's
            Err(()) => meta_first(m),
        };
        if let Some((t, source)) = meta {
            match &found {
                None => found = Some((t, source)),
                Some((f, _)) if strict && *f != t => return Err(m),
                _ => {}
            }
        }
    }
    if found.is_none() {
        found = input
            .fallback_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| (t.to_string(), "fallback".to_string()));
    }
    Ok(found)
}

/// What a proof (or an approval) of `message` signs: the method, target and
/// arguments the guard authorizes the message as, by the guard's own rule
/// (a `tools/call` names its tool and carries its arguments, the dry-run tool
/// is `mcpvault/check` with neither, a resource method names its URI,
/// `prompts/get` its prompt, every other method names nothing). A client
/// signs this before it sends the message, so hosts do not each write the
/// rule again. `message` is one JSON-RPC request or notification as a client
/// builds it: only its `method` and `params` are read (its `id` and
/// `jsonrpc` are not signed, and may be absent). A message the guard would
/// refuse as malformed is `invalid_request` here too. `token`: the token the
/// client sends with the message: as the guard does, an argument that is the
/// token is removed before anything is signed (no tool gets the token).
pub fn call_target(message: &Value, token: Option<&str>) -> Result<CallTarget> {
    let Some(obj) = message.as_object() else {
        return Err(Error::invalid("a message is a JSON object"));
    };
    let mut m = Map::new();
    m.insert("jsonrpc".into(), json!("2.0"));
    for key in ["method", "params"] {
        if let Some(v) = obj.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    if !m.contains_key("method") {
        return Err(Error::invalid("a message to sign needs a method"));
    }
    let mut m = Value::Object(m);
    strip(&mut m, token.filter(|t| !t.is_empty()), (true, true));
    let request = call_of(&m, &GuardOptions::new(""), true)
        .map_err(|r| r.error)?
        .request;
    let name = if request.method == TOOLS_CALL {
        request.tool
    } else {
        request.resource.or(request.prompt)
    };
    Ok(CallTarget {
        method: request.method,
        name,
        arguments: request.arguments,
    })
}

/// What [`call_target`] answers: `sign-call`'s and `request-hash`'s method,
/// name and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTarget {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Map<String, Value>,
}

/// The token `input` presents and where it was found (see SCHEMA.md), or
/// none; a body that is not JSON is searched for nothing. A lookup, not a
/// decision: the first by precedence, even where the guard would refuse
/// two different tokens.
/// A body over the default limits ([`MAX_BODY_CONTAINERS`], [`MAX_BODY_VALUES`]) is searched for nothing, as one
/// that is not JSON: it is counted, never parsed.
pub fn find_token(input: &GuardInput) -> Option<(String, String)> {
    let parsed = input
        .body
        .as_deref()
        .map(|b| parse_body(b, MAX_BODY_CONTAINERS, MAX_BODY_VALUES));
    let messages = match parsed {
        Some(Ok(Value::Array(a))) => a,
        Some(Ok(v)) => vec![v],
        _ => Vec::new(),
    };
    token_of(input, &messages, false).ok().flatten()
}

/// The answer to a refusal `code` with `message` (and the refusing block),
/// as the guard gives it: `{status, headers, body}` with `body` a JSON-RPC
/// error response for `id`. An unknown code is `internal_error`.
pub fn refusal_answer(
    code: &str,
    message: &str,
    failed_block: Option<usize>,
    tool: Option<&str>,
    id: Option<Value>,
    options: &GuardOptions,
) -> Value {
    let known = crate::ERROR_CODES.contains(&code);
    let status = if known {
        crate::status_of_code(code)
    } else {
        500
    };
    let d = Decision {
        allowed: false,
        code: Some(if known { code } else { "internal_error" }.to_string()),
        status,
        message: Some(if status == 500 {
            "internal error".to_string()
        } else {
            cut_text(message.to_string())
        }),
        detail: None,
        failed_block,
        failed_check: None,
        method: None,
        tool: tool.map(cut),
        request_id: None,
        token_source: None,
        subject: None,
        issuer: None,
        revocation_ids: Vec::new(),
        replayed_response: false,
        ..Decision::blank()
    };
    let id = match id {
        Some(v @ (Value::String(_) | Value::Number(_))) => v,
        _ => Value::Null,
    };
    json!({
        "status": status,
        "headers": challenge_of(&d, options),
        "body": {"jsonrpc": "2.0", "id": id, "error": rpc_error_of(&d)},
    })
}

/// Removes the token from a message's `_meta` (and any argument equal to it),
/// and its proof and approvals unless `keep` says to hand them on.
fn strip(m: &mut Value, token: Option<&str>, keep: (bool, bool)) {
    let Some(params) = m.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
        for k in META_KEYS {
            meta.remove(k);
        }
        if !keep.0 {
            meta.remove(PROOF_META_KEY);
        }
        if !keep.1 {
            meta.remove(APPROVALS_META_KEY);
        }
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    if let (Some(t), Some(args)) = (
        token,
        params.get_mut("arguments").and_then(Value::as_object_mut),
    ) {
        args.retain(|_, v| v.as_str() != Some(t));
    }
}

fn quoted(v: &str) -> String {
    let s: String = v
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn rpc_error_of(d: &Decision) -> Value {
    let mut data = Map::new();
    data.insert("code".into(), json!(d.code));
    data.insert("status".into(), json!(d.status));
    if let (403, Some(b)) = (d.status, d.failed_block) {
        data.insert("failedBlock".into(), json!(b));
    }
    if let Some(r) = d.retry_after {
        data.insert("retryAfter".into(), json!(r));
    }
    if let Some(a) = &d.approval {
        data.insert("approval".into(), a.data());
    }
    json!({"code": rpc_code_of_status(d.status), "message": d.message, "data": data})
}

fn challenge_of(d: &Decision, options: &GuardOptions) -> BTreeMap<String, String> {
    let mut headers = BTreeMap::new();
    let status = d.status;
    if let Some(r) = d.retry_after {
        headers.insert("Retry-After".into(), r.to_string());
    }
    // a hard rule is the server's policy, and approvals are asked of people: no other token would pass them
    if status != 401 && status != 403
        || matches!(
            d.code.as_deref(),
            Some("rule_violation" | "approval_required")
        )
    {
        return headers;
    }
    let mut params = vec![(
        "realm",
        options.realm.clone().unwrap_or_else(|| "mcpvault".into()),
    )];
    if d.code.as_deref() != Some("missing_token") {
        let error = if status == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        params.push(("error", error.into()));
        params.push((
            "error_description",
            format!(
                "{}: {}",
                d.code.as_deref().unwrap_or_default(),
                d.message.as_deref().unwrap_or_default()
            ),
        ));
        if status == 403 {
            if let Some(t) = &d.tool {
                params.push(("scope", t.clone()));
            }
        }
    }
    if let Some(r) = &options.resource_metadata {
        params.push(("resource_metadata", r.clone()));
    }
    let text = params
        .iter()
        .map(|(k, v)| format!("{k}={}", quoted(v)))
        .collect::<Vec<_>>()
        .join(", ");
    headers.insert("WWW-Authenticate".into(), format!("Bearer {text}"));
    headers
}

/// A dry run's answer turned into the refusal `e` (what the store holds
/// would refuse the real call); an answer already refusing is kept.
fn refuse_dry_run(answer: &mut Option<Value>, e: &Error) {
    let Some(a) = answer.as_mut() else { return };
    let Some(sc) = a
        .pointer_mut("/result/structuredContent")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if sc.get("allowed") != Some(&Value::Bool(true)) {
        return;
    }
    sc.remove("facts");
    sc.insert("allowed".into(), json!(false));
    sc.insert("code".into(), json!(e.code()));
    sc.insert("message".into(), json!(e.to_string()));
    let failed = e.failed_check();
    sc.insert("failedBlock".into(), json!(failed.map(|(b, _)| b)));
    sc.insert("failedCheck".into(), json!(failed.map(|(_, c)| c)));
    if let Some(r) = e.retry_after() {
        sc.insert("retryAfter".into(), json!(r));
    }
    if let Some(a) = ApprovalAsk::of(e) {
        sc.insert("approval".into(), a.data());
    }
    let text = Value::Object(sc.clone()).to_string();
    if let Some(t) = a.pointer_mut("/result/content/0/text") {
        *t = json!(text);
    }
}

/// The refusal of a request that would pass a quota.
fn quota_error(q: &crate::state::QuotaExceeded, now: u64) -> Error {
    let retry_after = q.until.saturating_sub(now).max(1);
    match q.kind {
        crate::quota::QuotaKind::Rate => Error::RateLimited {
            reason: format!("{} of {} calls spent in this window", q.used, q.max),
            retry_after,
        },
        crate::quota::QuotaKind::Budget => Error::BudgetExceeded {
            // neither what this request asks nor what earlier ones spent: both are argument values, which no
            // decision (so no span, no log) carries
            reason: format!(
                "the request would pass the budget of {} for this window",
                q.max
            ),
            retry_after,
        },
    }
}

fn refusal(e: &Error, method: Option<&str>, tool: Option<&str>, id: &Option<Value>) -> Decision {
    let failed = e.failed_check();
    Decision {
        allowed: false,
        code: Some(e.code().to_string()),
        status: e.http_status(),
        message: Some(if e.http_status() == 500 {
            "internal error".into()
        } else {
            cut_text(e.to_string())
        }),
        detail: Some(cut_text(e.detail())),
        failed_block: failed.map(|(b, _)| b),
        failed_check: failed.map(|(_, c)| cut_text(c.to_string())),
        method: method.map(cut),
        tool: tool.map(cut),
        request_id: id_text(id),
        token_source: None,
        subject: None,
        issuer: None,
        revocation_ids: Vec::new(),
        replayed_response: false,
        retry_after: e.retry_after(),
        approval: ApprovalAsk::of(e),
        ..Decision::blank()
    }
}

fn allowed(
    f: &AuthorizedFacts,
    method: Option<&str>,
    tool: Option<&str>,
    id: &Option<Value>,
) -> Decision {
    Decision {
        allowed: true,
        code: None,
        status: 200,
        message: None,
        detail: None,
        failed_block: None,
        failed_check: None,
        method: method.map(cut),
        tool: tool.map(cut),
        request_id: id_text(id),
        token_source: None,
        subject: Some(f.subject.clone()),
        issuer: Some(f.issuer.clone()),
        revocation_ids: f.revocation_ids.clone(),
        replayed_response: false,
        depth: Some(f.depth),
        approvers: f.approvals.iter().map(|a| a.approver.clone()).collect(),
        ..Decision::blank()
    }
}

/// What a JSON-RPC message asks: its id, and the request to verify.
fn call_of(
    m: &Value,
    options: &GuardOptions,
    plain: bool,
) -> std::result::Result<Call, Box<Refused>> {
    let bad = |reason: &str, method: Option<String>, tool: Option<String>, id: Option<Value>| {
        Box::new(Refused {
            error: Error::invalid(reason),
            method,
            tool,
            id,
        })
    };
    let Some(obj) = m.as_object() else {
        return Err(bad("not a JSON-RPC 2.0 message", None, None, None));
    };
    let id = obj.get("id").cloned();
    let id_ok = match &id {
        None => true,
        Some(Value::String(_)) => true,
        // below 2^53 in magnitude, as argument numbers: a JavaScript host holds a larger one rounded, so the id it
        // hands on (and answers with) would not be the one decided and recorded
        Some(Value::Number(n)) => n
            .as_i64()
            .map(i64::unsigned_abs)
            .or(n.as_u64())
            .is_some_and(|m| m < crate::args::EXACT_INT),
        _ => false,
    };
    if obj.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(bad("not a JSON-RPC 2.0 message", None, None, id));
    }
    if !id_ok {
        return Err(bad(
            "id must be a string or an integer of magnitude below 2^53",
            None,
            None,
            None,
        ));
    }
    let Some(method) = obj.get("method") else {
        if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) {
            return Ok(Call {
                id,
                request: Request {
                    method: RESPONSE_METHOD.into(),
                    audience: options.audience.clone(),
                    ..Request::default()
                },
                dry_run: None,
                params: None,
            });
        }
        return Err(bad(
            "a JSON-RPC message needs a method, or an id and a result",
            None,
            None,
            id,
        ));
    };
    let method = match method.as_str() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return Err(bad("method must be a non-empty string", None, None, id)),
    };
    let params = obj.get("params");
    if params.is_some_and(|p| !p.is_object() && !p.is_array()) {
        return Err(bad("params must be an object", Some(method), None, id));
    }
    let mut request = Request {
        method: method.clone(),
        audience: options.audience.clone(),
        open_resources: options.open_resources,
        open_prompts: options.open_prompts,
        defer_pins: options.defer_pins,
        ..Request::default()
    };
    if method != TOOLS_CALL {
        // what a resource or prompt method asks for; the token's grants decide
        let named = |key: &str| {
            params
                .and_then(|p| p.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        // what listen and completion name is read now (a malformed one is the request's fault), decided once the
        // token verifies (`check_listen`, `check_completion`)
        let read = match method.as_str() {
            _ if request.reads_resource() => match named("uri") {
                Some(uri) => {
                    request.resource = Some(uri);
                    Ok(())
                }
                None => Err(Error::invalid("a resource method needs params.uri")),
            },
            "prompts/get" => match named("name") {
                Some(name) => {
                    request.prompt = Some(name);
                    Ok(())
                }
                None => Err(Error::invalid("prompts/get needs params.name")),
            },
            LISTEN_METHOD => listened_uris(params).map(drop),
            SKILL_GET_METHOD => skill_uri(params).map(drop),
            COMPLETION_METHOD => completion_ref(params).map(drop),
            _ => Ok(()),
        };
        if let Err(error) = read {
            return Err(Box::new(Refused {
                error,
                method: Some(method),
                tool: None,
                id,
            }));
        }
        return Ok(Call {
            id,
            request,
            dry_run: None,
            params: params.cloned(),
        });
    }
    let name = params
        .and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let Some(name) = name else {
        return Err(bad("tools/call needs params.name", Some(method), None, id));
    };
    if id.is_none() && !plain {
        return Err(bad(
            "tools/call is a request: it needs an id (a notification is never run)",
            Some(method),
            Some(name),
            None,
        ));
    }
    let args = params.and_then(|p| p.get("arguments"));
    let arguments = match args {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => {
            return Err(bad(
                "tools/call arguments must be an object",
                Some(method),
                Some(name),
                id,
            ))
        }
    };
    // A one-tool route serves its tool (and the dry-run tool only when the guard answers it: its handler would take
    // an `mcpvault/check` for its own call)
    if let Some(only) = &options.tool {
        if *only != name && !(name == CHECK_TOOL && options.check_tool) {
            return Err(bad(
                &format!("this endpoint serves tool {only:?} only"),
                Some(method),
                Some(name),
                id,
            ));
        }
    }
    // The dry-run tool is reserved: a valid token, no grant. With `check_tool` the guard answers it; otherwise it
    // goes on as method `mcpvault/check` to the layer that answers it (withMcpVault behind a middleware).
    if name == CHECK_TOOL {
        // `{ tool, arguments }`, or APOA's flat `{ tool, ...arguments }`
        let nested =
            arguments.len() == 2 && arguments.get("arguments").is_some_and(Value::is_object);
        let ask = match arguments.get("tool") {
            Some(Value::String(t)) if !t.is_empty() => Ok(Request {
                method: TOOLS_CALL.into(),
                tool: Some(t.clone()),
                arguments: if nested {
                    arguments
                        .get("arguments")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    arguments
                        .iter()
                        .filter(|(k, _)| k.as_str() != "tool")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                },
                audience: options.audience.clone(),
                ..Request::default()
            }),
            _ => Err(Error::invalid(
                "mcpvault.check takes { tool: string, arguments?: object } or { tool: string, ...arguments }",
            )),
        };
        request.method = CHECK_METHOD.into();
        return Ok(Call {
            id,
            request,
            dry_run: options.check_tool.then_some(ask),
            params: params.cloned(),
        });
    }
    request.tool = Some(name);
    request.arguments = arguments;
    Ok(Call {
        id,
        request,
        dry_run: None,
        params: params.cloned(),
    })
}

/// What the server's policy refuses of a call the token allowed (`result`), or that lacks only approvals (nobody is
/// asked to approve what the server refuses anyway; the token's own refusal comes first): a hard rule, or a scope a
/// conditional mapping cannot decide — unless the token grants the tool by name, which allows it whatever its scope.
/// The real call and its dry run alike.
fn policy_refusal(
    verdict: Option<&Verdict>,
    result: &Result<AuthorizedFacts>,
    tool: Option<&str>,
) -> Option<Error> {
    let v = verdict?;
    let by_name = matches!((result, tool), (Ok(f), Some(t)) if f.tools.iter().any(|x| x == t));
    match (&v.hard, &v.unknown_scope) {
        (Some((rule, message)), _) => Some(Error::RuleViolation {
            rule: rule.clone(),
            message: message.clone(),
        }),
        (None, Some((rule, message))) if !by_name => Some(Error::RuleViolation {
            rule: rule.clone(),
            message: message.clone(),
        }),
        _ => None,
    }
}

/// Whether `text` holds at most [`MAX_BODY_CONTAINERS`] objects and arrays and [`MAX_BODY_VALUES`] values, counted
/// on its bytes (outside strings: `{`, `[` and `,`; every string once), so that what a body costs to parse is bounded
/// by what it is allowed to hold; and, for a top-level array, at most [`MAX_BATCH`] messages. Not a JSON check: the
/// parse comes next. The refusal, if any.
fn body_over_limits(text: &str, max_containers: usize, max_values: usize) -> Option<String> {
    let (mut containers, mut values, mut depth, mut top_commas) = (0usize, 0usize, 0usize, 0usize);
    let batch = text.trim_start().starts_with('[');
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => {
                values += 1;
                let mut escaped = false;
                for c in bytes.by_ref() {
                    match (escaped, c) {
                        (true, _) => escaped = false,
                        (false, b'\\') => escaped = true,
                        (false, b'"') => break,
                        _ => {}
                    }
                }
            }
            b'{' | b'[' => {
                containers += 1;
                values += 1;
                depth += 1;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => {
                values += 1;
                // a batch's messages are separated by its top-level commas
                if batch && depth == 1 {
                    top_commas += 1;
                }
            }
            _ => continue,
        }
        if top_commas >= MAX_BATCH {
            return Some(OVER_BATCH.to_string());
        }
        if containers > max_containers || values > max_values {
            return Some(format!(
                "body holds more than {max_containers} objects and arrays or {max_values} values (the server's \
                 max_body_containers, max_body_values)"
            ));
        }
    }
    None
}

const OVER_BATCH: &str = "a batch of more than 100 messages is over the limit";

/// Parses a body, once [`body_over_limits`] has counted it: a batch (a top-level array) of more than [`MAX_BATCH`]
/// messages, or a body over `max_containers` objects and arrays or `max_values` values, is refused before any of it
/// is parsed, so a huge body costs its scan.
fn parse_body(
    text: &str,
    max_containers: usize,
    max_values: usize,
) -> std::result::Result<Value, String> {
    if let Some(refusal) = body_over_limits(text, max_containers, max_values) {
        return Err(refusal);
    }
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            "body is nested too deeply".to_string()
        } else {
            "body is not JSON".to_string()
        }
    })
}

/// The `id` of one message whose body [`body_over_limits`] refused: read with nothing else of the body kept (every
/// other value skipped as serde_json skips, without building it), so that the error answers the request it refuses.
/// A batch, an `id` that is not a number or a string, or a body that is not JSON: none (the error's id is `null`, as
/// JSON-RPC answers a request whose id it cannot read).
fn refused_message_id(text: &str) -> Option<Value> {
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;
    struct Id(Option<Value>);
    struct Message(Option<Value>);
    struct IdVisitor;
    struct MessageVisitor;
    impl<'de> Visitor<'de> for IdVisitor {
        type Value = Id;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON-RPC id")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Id, E> {
            Ok(Id(Some(v.into())))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Id, E> {
            Ok(Id(Some(v.into())))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Id, E> {
            Ok(Id(serde_json::Number::from_f64(v).map(Value::Number)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Id, E> {
            Ok(Id(Some(Value::String(v.to_owned()))))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<Id, E> {
            Ok(Id(None))
        }
        fn visit_unit<E: de::Error>(self) -> std::result::Result<Id, E> {
            Ok(Id(None))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Id, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Id(None))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Id, A::Error> {
            while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Id(None))
        }
    }
    impl<'de> Deserialize<'de> for Id {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_any(IdVisitor)
        }
    }
    impl<'de> Visitor<'de> for MessageVisitor {
        type Value = Message;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON-RPC message")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Message, A::Error> {
            // the last `id` wins, as when the body is parsed whole
            let mut id = None;
            while let Some(key) = a.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "id" {
                    id = a.next_value::<Id>()?.0;
                } else {
                    a.next_value::<IgnoredAny>()?;
                }
            }
            Ok(Message(id))
        }
    }
    impl<'de> Deserialize<'de> for Message {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            d.deserialize_map(MessageVisitor)
        }
    }
    serde_json::from_str::<Message>(text).ok().and_then(|m| m.0)
}

/// What a message names for traces: the prompt of `prompts/get`, the URI of
/// a resource request, and the W3C trace context in `params._meta`.
fn message_context(d: &mut Decision, m: &Value) {
    let params = m.get("params");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(cut);
    match m.get("method").and_then(Value::as_str) {
        Some("prompts/get") => d.prompt = text(params.and_then(|p| p.get("name"))),
        Some(
            "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "notifications/resources/updated",
        ) => d.resource_uri = text(params.and_then(|p| p.get("uri"))),
        Some(COMPLETION_METHOD) => match completion_ref(params) {
            Ok(Completes::Prompt(name)) => d.prompt = Some(cut(name)),
            Ok(Completes::Template(uri)) => d.resource_uri = Some(cut(uri)),
            Err(_) => {}
        },
        _ => {}
    }
    let meta = params.and_then(|p| p.get("_meta"));
    d.traceparent = text(meta.and_then(|x| x.get("traceparent")));
    d.tracestate = text(meta.and_then(|x| x.get("tracestate")));
}

/// An `Mcp-Method` or `Mcp-Name` header's value as the client meant it (MCP 2026-07-28): verbatim, or the UTF-8 text
/// of a `=?base64?PAYLOAD?=` sentinel (what the SDKs send for a value that is not printable ASCII without edge
/// spaces: a URI or a name with `é` in it). A sentinel whose payload is not canonical base64 of UTF-8: none, which
/// matches no body.
fn header_value(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(std::borrow::Cow::Borrowed(value));
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(payload).ok()?;
    // the encoder only writes the canonical form: another one is refused, as the SDK's reader refuses it
    if engine.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned)
}

/// The `Mcp-Name` a message names: a tool or prompt name, or a resource URI.
fn mcp_name(m: &Value) -> Option<&str> {
    let p = m.get("params")?;
    match m.get("method")?.as_str()? {
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            p.get("uri")?.as_str()
        }
        _ => p.get("name")?.as_str(),
    }
}

impl Guard {
    /// A guard for `options`, caching up to `cache` verified chains (0: none).
    /// Refuses a public key that is not one (`invalid_key`).
    pub fn new(options: GuardOptions, cache: usize) -> Result<Guard> {
        crate::parse_public_key(&options.public_key)?;
        if let Some(a) = &options.audience {
            crate::model::check_name("audience", a)?;
        }
        if let Some(t) = &options.tool {
            crate::model::check_tool_name(t)?;
        }
        let policy = Policy::new(&options.mappings, &options.tool_mappings, &options.rules)?;
        Ok(Guard {
            options,
            verifier: Verifier::with_cache(crate::Limits::default(), cache),
            policy: Ok(policy),
        })
    }

    /// A guard over an existing verifier (no checks of the options: a bad
    /// key is refused on every call with `invalid_key`).
    pub fn from_parts(options: GuardOptions, verifier: Verifier) -> Guard {
        let policy = Policy::new(&options.mappings, &options.tool_mappings, &options.rules)
            .map_err(|e| Error::Internal {
                detail: format!("the guard's policy: {e}"),
            });
        Guard {
            options,
            verifier,
            policy,
        }
    }

    /// The verifier back, with its cache.
    pub fn into_verifier(self) -> Verifier {
        self.verifier
    }

    /// Runs one request through `store` to its outcome: the check, the
    /// store's atomic step, and the audit records appended. For Rust servers
    /// and tests; hosts with their own stores do the same steps.
    pub fn run(
        &mut self,
        store: &mut crate::state::MemoryStore,
        input: &GuardInput,
        now: u64,
    ) -> Outcome {
        let mut outcome = match self.check(input, now) {
            Check::Done { outcome } => *outcome,
            Check::Ask { ask, pending, .. } => {
                let answer = store.check(&ask);
                self.resume(*pending, &answer)
            }
        };
        for r in outcome.audit.clone() {
            if let Err(e) = store.append_audit(r) {
                if outcome.allowed {
                    outcome = self.audit_failed(outcome, &e.to_string());
                }
            }
        }
        outcome
    }

    /// An allowed outcome whose audit records could not be written: refused
    /// (`internal_error`); a refusal stays a refusal.
    pub fn audit_failed(&self, outcome: Outcome, detail: &str) -> Outcome {
        if !outcome.allowed {
            return outcome;
        }
        let e = Error::Internal {
            detail: format!("audit store: {detail}"),
        };
        let first = outcome.decisions.first();
        let mut d = refusal(
            &e,
            first.and_then(|d| d.method.as_deref()),
            first.and_then(|d| d.tool.as_deref()),
            &None,
        );
        if let Some(f) = first {
            d = d.with_context_of(f);
        }
        d.request_id = first.and_then(|d| d.request_id.clone());
        d.token_source = outcome.token_source.clone();
        // the id as the request had it (a number stays a number); a batch answers with null
        let id = outcome
            .forward
            .as_ref()
            .and_then(|f| f.get("id"))
            .cloned()
            .unwrap_or(Value::Null);
        Outcome {
            allowed: false,
            status: d.status,
            headers: BTreeMap::new(),
            response: Some(json!({"jsonrpc": "2.0", "id": id, "error": rpc_error_of(&d)})),
            forward: None,
            answers: Vec::new(),
            token: outcome.token,
            token_source: outcome.token_source,
            facts: None,
            decisions: vec![d],
            audit: Vec::new(),
            call_key: None,
            keep_until: None,
            keep_for: None,
            needs_tool_definitions: false,
            // refused: nothing to keep or forget
            opens_session: None,
            ends_session: None,
        }
    }

    /// The options.
    pub fn options(&self) -> &GuardOptions {
        &self.options
    }

    /// The verifier's cache counters.
    pub fn cache_stats(&self) -> crate::CacheStats {
        self.verifier.cache_stats()
    }

    /// Decides what arrived at `now` (unix seconds).
    pub fn check(&mut self, input: &GuardInput, now: u64) -> Check {
        let mut step = self.decide(input, now);
        // decide marks the outcome when a call or a dry run lacked a definition the input did not give; it matters
        // unless another refusal refuses the request anyway
        match &mut step {
            Check::Done { outcome } => {
                outcome.needs_tool_definitions = outcome.needs_tool_definitions
                    && (outcome.allowed
                        || outcome.decisions.first().and_then(|d| d.code.as_deref())
                            == Some("tool_definition_changed"));
            }
            Check::Ask {
                pending,
                needs_tool_definitions,
                ..
            } => {
                // asked before the store: the outcome resumed after it never asks (the store step is done)
                *needs_tool_definitions =
                    std::mem::take(&mut pending.outcome.needs_tool_definitions);
            }
        }
        // the MCP session the request belongs to, on every decision (for traces)
        if let Some(session) = session_header(input).map(cut) {
            let decisions: Vec<&mut Decision> = match &mut step {
                Check::Done { outcome } => outcome.decisions.iter_mut().collect(),
                Check::Ask { pending, .. } => {
                    pending.msgs.iter_mut().map(|m| &mut m.decision).collect()
                }
            };
            for d in decisions {
                d.session_id = Some(session.clone());
            }
        }
        step
    }

    fn decide(&mut self, input: &GuardInput, now: u64) -> Check {
        let mut out = Outcome {
            allowed: false,
            status: 200,
            headers: BTreeMap::new(),
            response: None,
            forward: None,
            answers: Vec::new(),
            token: None,
            token_source: None,
            facts: None,
            decisions: Vec::new(),
            audit: Vec::new(),
            call_key: None,
            keep_until: None,
            keep_for: None,
            needs_tool_definitions: false,
            opens_session: None,
            ends_session: None,
        };
        // A session the host keeps no subject for: unknown (never opened here, or forgotten), 404 as MCP's
        // Streamable HTTP answers it, before anything else is read (the client opens another session)
        if input.session_book && input.session_subject.is_none() && session_header(input).is_some()
        {
            let e = Error::invalid("unknown session");
            let mut d = refusal(&e, None, None, &None);
            d.status = 404;
            return self.refuse_decided(out, d, &None, None, now);
        }
        // The body: what the host could not read is refused, and recorded.
        if let Some(e) = input.body_error {
            let reason = match e {
                BodyError::TooLarge => "body too large",
                BodyError::NotUtf8 => "body is not UTF-8",
                BodyError::NotJson => "body is not JSON",
            };
            return self.refuse_whole(out, &Error::invalid(reason), None, None, &None, now);
        }
        let text = input.body.as_deref().unwrap_or("");
        let mut body: Option<Value> = None;
        if !text.trim().is_empty() {
            match parse_body(
                text,
                self.options.max_body_containers,
                self.options.max_body_values,
            ) {
                Ok(v) => body = Some(v),
                Err(e) => {
                    let batch = e.contains("batch");
                    // one message refused for its size is answered under its own id
                    let id = if batch || text.trim_start().starts_with('[') {
                        None
                    } else {
                        refused_message_id(text)
                    };
                    return self.refuse_whole(
                        out,
                        &Error::invalid(e),
                        batch.then_some("batch"),
                        None,
                        &id,
                        now,
                    );
                }
            }
        }
        // The messages: one, a batch (capped before anything is verified), or a plain body.
        let is_rpc = |v: &Value| v.get("jsonrpc").is_some();
        let (mut messages, batch, plain) = match body {
            Some(Value::Array(a)) => {
                if a.is_empty() {
                    return self.refuse_whole(
                        out,
                        &Error::invalid("empty batch"),
                        None,
                        None,
                        &None,
                        now,
                    );
                }
                (a, true, false)
            }
            Some(v) if is_rpc(&v) => (vec![v], false, false),
            other => {
                let req = if let Some(tool) = &self.options.tool {
                    let args = match other {
                        None => Map::new(),
                        Some(Value::Object(a)) => a,
                        Some(_) => {
                            let e =
                                Error::invalid("the body must be a JSON object of tool arguments");
                            return self.refuse_whole(
                                out,
                                &e,
                                Some(TOOLS_CALL),
                                Some(tool),
                                &None,
                                now,
                            );
                        }
                    };
                    json!({"jsonrpc": "2.0", "method": TOOLS_CALL,
                        "params": {"name": tool, "arguments": args}})
                } else if other.is_none() {
                    let method = format!(
                        "http/{}",
                        input
                            .http_method
                            .as_deref()
                            .unwrap_or("POST")
                            .to_ascii_uppercase()
                    );
                    json!({"jsonrpc": "2.0", "method": method})
                } else {
                    let e = Error::invalid("the body is not a JSON-RPC 2.0 message");
                    return self.refuse_whole(out, &e, None, None, &None, now);
                };
                (vec![req], false, true)
            }
        };
        // A one-tool route serves one `tools/call` of its tool: a JSON-RPC body there is that request and nothing
        // else (no batch, no other method, no notification or response, no member beside jsonrpc/id/method/params
        // that a handler reading its body as the arguments would take for one)
        if let (Some(tool), false) = (&self.options.tool, plain) {
            let only = format!("this endpoint serves one tools/call of tool {tool:?}");
            if batch {
                return self.refuse_whole(
                    out,
                    &Error::invalid(only),
                    Some("batch"),
                    None,
                    &None,
                    now,
                );
            }
            let call = |m: &Value| {
                m.get("method").and_then(Value::as_str) == Some(TOOLS_CALL)
                    && m.as_object().is_some_and(|o| {
                        o.keys()
                            .all(|k| matches!(k.as_str(), "jsonrpc" | "id" | "method" | "params"))
                    })
            };
            if let Some(m) = messages.iter().find(|m| !call(m)) {
                return self.refuse_for(out, &Error::invalid(only), Some(m), None, now);
            }
        }
        // Mcp-Method / Mcp-Name must agree with the body, or with what a request without a JSON-RPC body is
        // decided as (`http/GET`, a one-tool route's call)
        // (a value a client could not send as it is comes as `=?base64?…?=`: compared decoded, and one that does not
        // decode matches nothing)
        let hm = header(&input.headers, "mcp-method").map(|h| header_value(h.trim()));
        let hn = header(&input.headers, "mcp-name").map(|h| header_value(h.trim()));
        if hm.is_some() || hn.is_some() {
            for m in &messages {
                let method = m.get("method").and_then(Value::as_str);
                let wrong = hm
                    .as_ref()
                    .is_some_and(|h| h.as_deref().is_none() || h.as_deref() != method)
                    || hn
                        .as_ref()
                        .is_some_and(|h| h.as_deref().is_none() || h.as_deref() != mcp_name(m));
                if wrong {
                    let e =
                        Error::invalid("the Mcp-Method or Mcp-Name header does not match the body");
                    return self.refuse_for(out, &e, Some(m), batch.then_some(&messages), now);
                }
            }
        }
        // The token: one per request. Two X-MCPVault-Token headers (or, when there is none, two Authorization:
        // Bearer headers) arrive joined by a comma (Node, fetch, the Python and rmcp hosts), which no token contains.
        let token_header = header(&input.headers, TOKEN_HEADER)
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let joined = match token_header {
            Some(t) => t
                .contains(',')
                .then_some("the request carries two X-MCPVault-Token headers"),
            None => header(&input.headers, "authorization")
                .filter(|v| several_with_bearer(v))
                .map(|_| "the Authorization header carries more than one credential, a Bearer one among them"),
        };
        if let Some(reason) = joined {
            // a header's fault: no one message's, unless the request is one message
            let m = messages.first().filter(|_| !batch);
            let e = Error::invalid(reason);
            return self.refuse_for(out, &e, m, batch.then_some(&messages), now);
        }
        let found = match token_of(input, &messages, true) {
            Ok(f) => f,
            Err(m) => {
                let e = Error::invalid("the request carries two different mcpvault tokens");
                return self.refuse_for(out, &e, Some(m), batch.then_some(&messages), now);
            }
        };
        // The proofs (holder-bound tokens): each message's own, or the header's for a request of one message.
        let header_proof = header(&input.headers, PROOF_HEADER).map(str::trim);
        let proofs: Vec<Option<String>> = messages
            .iter()
            .map(|m| {
                m.get("params")
                    .and_then(|p| p.get("_meta"))
                    .and_then(|meta| meta.get(PROOF_META_KEY))
                    .and_then(Value::as_str)
                    .or(header_proof.filter(|_| messages.len() == 1))
                    .map(str::to_string)
            })
            .collect();
        // Signed approvals: each message's own (an array of strings), or the header's for a request of one message.
        let header_approvals: Option<Vec<String>> = header(&input.headers, APPROVAL_HEADER)
            .filter(|_| messages.len() == 1)
            .map(|h| {
                h.split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .take(crate::approval::MAX_APPROVALS + 1)
                    .map(str::to_string)
                    .collect()
            });
        let approvals: Vec<Vec<String>> = messages
            .iter()
            .map(|m| {
                match m
                    .get("params")
                    .and_then(|p| p.get("_meta"))
                    .and_then(|meta| meta.get(APPROVALS_META_KEY))
                {
                    Some(Value::Array(a)) => a
                        .iter()
                        .take(crate::approval::MAX_APPROVALS + 1)
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect(),
                    Some(Value::String(one)) => vec![one.clone()],
                    _ => header_approvals.clone().unwrap_or_default(),
                }
            })
            .collect();
        // an outer layer hands on the proofs and approvals it counts (and spends), for an inner layer to check again
        let hand_on = self.options.forward_proofs;
        // how many arguments a one-tool route's body has, to tell whether stripping the token removed one
        let plain_args = |messages: &[Value]| {
            messages
                .first()
                .filter(|_| plain)
                .and_then(|m| m.pointer("/params/arguments"))
                .and_then(Value::as_object)
                .map_or(0, Map::len)
        };
        let plain_before = plain_args(&messages);
        for m in messages.iter_mut() {
            strip(
                m,
                found.as_ref().map(|(t, _)| t.as_str()),
                (hand_on, hand_on),
            );
        }
        // per message: its proof counted, and the nonces of the approvals that counted
        let mut counted: Vec<(bool, Vec<String>)> = vec![(false, Vec::new()); messages.len()];
        out.token = found.as_ref().map(|(t, _)| t.clone());
        out.token_source = found.as_ref().map(|(_, s)| s.clone());
        // Each message: what it asks, then the token for it (verified once per request).
        let mut msgs: Vec<Msg> = Vec::with_capacity(messages.len());
        let mut batch_verifier = (self.verifier.cache_stats().capacity == 0)
            .then(|| Verifier::with_cache(crate::Limits::default(), 1));
        let mut spender: Option<usize> = None;
        // A request reads at most MAX_APPROVALS approvals in all, a batch included (it spends one set of approvals
        // at most anyway): a batch of 100 calls, each with 16 approvals by listed approvers, would otherwise cost
        // 1,600 signature checks.
        let mut approvals_left = crate::approval::MAX_APPROVALS;
        // what matching the token's resource patterns may cost the whole request (subscriptions/listen)
        let glob_steps = Cell::new(crate::args::GLOB_STEPS);
        let mut spend_nonces: Vec<String> = Vec::new();
        // how many of spend_nonces, at their end, are the spender's proof (0 or 1)
        let mut spend_proofs = 0usize;
        // the proof every message that verified carries: spent even if the request is refused (a batch refused for
        // one message: a logged copy of another's proof would run that call alone), until then
        let mut burn: Vec<String> = Vec::new();
        let mut burn_until = 0u64;
        let mut charges: Vec<crate::quota::Charge> = Vec::new();
        let mut probe_target: Option<(usize, AuthorizedFacts, Request)> = None;
        // the revocation ids of a token whose call was refused for lack of approvals
        let mut ask_revoked: Vec<String> = Vec::new();
        // the host gave no tool definitions (it reads them only when the outcome says so)
        let lacks_definitions = input.tool_definitions.is_none() && !self.options.defer_pins;
        for (i, m) in messages.iter().enumerate() {
            let call = match call_of(m, &self.options, plain) {
                Ok(c) => c,
                Err(r) => {
                    let Refused {
                        error,
                        method,
                        tool,
                        id,
                    } = *r;
                    let mut d = refusal(&error, method.as_deref(), tool.as_deref(), &id);
                    d.token_source = out.token_source.clone();
                    message_context(&mut d, m);
                    msgs.push(Msg {
                        id,
                        method,
                        tool,
                        decision: d,
                        answer: None,
                        answered: false,
                        later_page: false,
                    });
                    continue;
                }
            };
            let mut call = call;
            call.request.proof = proofs.get(i).cloned().flatten();
            let mut given = approvals.get(i).cloned().unwrap_or_default();
            let cut = given.len() > approvals_left;
            given.truncate(approvals_left);
            approvals_left -= given.len();
            call.request.approvals = given;
            if let Some(defs) = &input.tool_definitions {
                if let Some(t) = &call.request.tool {
                    call.request.tool_definition = defs.get(t).cloned();
                }
                if let Some(Ok(ask)) = call.dry_run.as_mut() {
                    if let Some(t) = &ask.tool {
                        ask.tool_definition = defs.get(t).cloned();
                    }
                }
            }
            let method = Some(call.request.method.clone());
            let tool = call.request.tool.clone();
            // the server's policy: the call's scope, and its rules
            let verdict = match (&self.policy, &call.request.tool) {
                (Err(e), _) => Err(e.clone()),
                (Ok(p), Some(t)) if call.request.method == TOOLS_CALL => {
                    Ok(Some(p.judge(t, &call.request.arguments)))
                }
                _ => Ok(None),
            };
            if let Ok(Some(v)) = &verdict {
                call.request.scope = Some(v.scope.clone());
                call.request.required_approvals = v.approvals.clone();
            }
            // a hit of the server's cache (a batch without one reuses its chain, but is no hit)
            let hits = self.verifier.cache_stats().hits;
            let verifier = batch_verifier.as_mut().unwrap_or(&mut self.verifier);
            let result = match (&out.token, &verdict) {
                (_, Err(e)) => Err(e.clone()),
                (None, _) => Err(Error::MissingToken),
                (Some(t), _) => verifier.verify(t, &self.options.public_key, &call.request, now),
            };
            let cache_hit = self.verifier.cache_stats().hits > hits;
            let hard = policy_refusal(
                verdict.as_ref().ok().and_then(Option::as_ref),
                &result,
                tool.as_deref(),
            );
            let result = match (result, hard) {
                (Ok(_) | Err(Error::ApprovalRequired { .. }), Some(e)) => Err(e),
                (
                    Err(Error::ApprovalRequired {
                        request_hash,
                        approvers,
                        needed,
                        detail,
                    }),
                    None,
                ) if cut => Err(Error::ApprovalRequired {
                    request_hash,
                    approvers,
                    needed,
                    detail: format!(
                        "{detail}; approvals after the request's first {} (its messages' together) are not read",
                        crate::approval::MAX_APPROVALS
                    ),
                }),
                (r, _) => r,
            };
            if lacks_definitions && matches!(result, Err(Error::ToolDefinitionChanged { .. })) {
                out.needs_tool_definitions = true;
            }
            // the dry-run tool that this guard does not answer goes on only to an inner mcpvault layer (one that
            // answers it); an innermost guard would hand it to the server's own tools/call
            let result = result.and_then(|f| {
                if call.request.method == CHECK_METHOD
                    && call.dry_run.is_none()
                    && !self.options.forward_proofs
                {
                    Err(Error::invalid(format!(
                        "this server does not answer {CHECK_TOOL} (the dry-run tool)"
                    )))
                } else {
                    Ok(f)
                }
            });
            let result = result.and_then(|f| {
                if call.request.method == COMPLETION_METHOD {
                    check_completion(call.params.as_ref(), &f, &self.options)?;
                }
                if call.request.method == LISTEN_METHOD {
                    check_listen(call.params.as_ref(), &f, &self.options, &glob_steps)?;
                }
                if call.request.method == SKILL_GET_METHOD {
                    check_skill(call.params.as_ref(), &f, &self.options, &glob_steps)?;
                }
                Ok(f)
            });
            let result = result.and_then(|f| match &input.session_subject {
                Some(s) if *s != f.subject => Err(Error::SessionMismatch {
                    detail: format!("session of subject {s:?}, token of subject {:?}", f.subject),
                }),
                _ => Ok(f),
            });
            if let (true, Err(Error::ApprovalRequired { .. }), Some(t)) = (
                self.options.store && ask_revoked.is_empty(),
                &result,
                &out.token,
            ) {
                let verifier = batch_verifier.as_mut().unwrap_or(&mut self.verifier);
                // verified a moment ago (the cache, if any, holds it): only a bug could make this fail
                ask_revoked = verifier
                    .revocation_ids(t, &self.options.public_key)
                    .unwrap_or_default();
            }
            let mut answer = None;
            let mut answered = false;
            let mut d = match result {
                Err(e) => refusal(&e, method.as_deref(), tool.as_deref(), &call.id),
                Ok(f) => {
                    let mut d = allowed(&f, method.as_deref(), tool.as_deref(), &call.id);
                    if let Ok(Some(v)) = &verdict {
                        d.scope = Some(v.scope.clone());
                        d.soft_rules = v.soft.clone();
                    }
                    if let Some(ask) = &call.dry_run {
                        answered = true;
                        let (a, target, lacked) =
                            self.dry_run(out.token.as_deref(), ask, &call.id, now);
                        if lacks_definitions && lacked {
                            out.needs_tool_definitions = true;
                        }
                        answer = Some(a);
                        if let (None, Some((tf, treq))) = (&probe_target, target) {
                            probe_target = Some((i, tf, treq));
                        }
                    }
                    let single_use = call.request.method == TOOLS_CALL && !f.nonces.is_empty();
                    // a proof and an approval are spent like a nonce: once, a retry of the same request excepted
                    let spends = single_use || f.proof_nonce.is_some() || !f.approvals.is_empty();
                    let first_nonce = f
                        .nonces
                        .first()
                        .or(f.proof_nonce.as_ref())
                        .or(f.approvals.first().map(|a| &a.nonce))
                        .cloned()
                        .unwrap_or_default();
                    if spends && !input.replay_checked && !self.options.defer_spend {
                        if self.options.store {
                            // spent even if the request is refused (below): a proof is used once
                            if let Some(proof) = proof_spend(&f) {
                                burn_until = burn_until.max(keep_spent_until(&f, false, now));
                                burn.push(proof);
                            }
                        }
                        if !self.options.store {
                            d = refusal(
                                &Error::Replayed { nonce: first_nonce },
                                method.as_deref(),
                                tool.as_deref(),
                                &call.id,
                            );
                            d.detail = Some(if single_use {
                                "no replay store: a single-use token is refused".into()
                            } else {
                                "no replay store: a proof or an approval cannot be spent".into()
                            });
                        } else if spender.is_some() {
                            let e = Error::Replayed { nonce: first_nonce };
                            d = refusal(&e, method.as_deref(), tool.as_deref(), &call.id);
                            d.detail = Some(if single_use {
                                "a batch may spend a single-use token once".into()
                            } else {
                                "a request spends one proof or set of approvals: send such calls one by one, each \
                                 with a new proof (the proofs of a refused request are spent)"
                                    .into()
                            });
                        } else {
                            spender = Some(i);
                            // what this message spends: its own proof and approvals (another message's facts
                            // may be the request's, in a batch)
                            spend_nonces = if f.tool.is_some() {
                                token_spends(&f)
                            } else {
                                Vec::new()
                            };
                            // the proof last: the one nonce a quota's refusal spends
                            spend_proofs = usize::from(proof_spend(&f).is_some());
                            spend_nonces.extend(proof_spends(&f));
                            out.call_key = Some(crate::audit::spend_key(
                                call.id.as_ref(),
                                &call.request.method,
                                call.params.as_ref(),
                                &spend_nonces,
                                &f.revocation_ids,
                            ));
                            let keep = keep_spent_until(&f, single_use, now);
                            out.keep_until = Some(keep);
                            out.keep_for = Some(keep.saturating_sub(now).max(1));
                        }
                    }
                    // quotas are counted by the layer that spends: not by an outer one that defers to a guard
                    // behind it (defer_spend), nor by that guard when the outer one counted (replay_checked)
                    if d.allowed
                        && !answered
                        && !f.quotas.is_empty()
                        && !input.replay_checked
                        && !self.options.defer_spend
                    {
                        let spent = crate::quota::charges(
                            &f.quotas,
                            &call.request.method,
                            call.request.tool.as_deref(),
                            &call.request.arguments,
                            now,
                        );
                        match spent {
                            Err(e) => {
                                d = refusal(&e, method.as_deref(), tool.as_deref(), &call.id);
                            }
                            Ok(c) if !c.is_empty() && !self.options.store => {
                                let e = Error::RateLimited {
                                    reason: "the token has quotas and this server has no store to count them".into(),
                                    retry_after: 0,
                                };
                                d = refusal(&e, method.as_deref(), tool.as_deref(), &call.id);
                                d.retry_after = None;
                            }
                            Ok(c) => crate::quota::merge(&mut charges, c),
                        }
                    }
                    if let (true, Some(c)) = (d.allowed, counted.get_mut(i)) {
                        *c = (
                            f.proof_nonce.is_some(),
                            f.approvals.iter().map(|a| a.nonce.clone()).collect(),
                        );
                    }
                    if d.allowed {
                        let better = match &out.facts {
                            None => true,
                            Some(prev) => prev.tool.is_none() && f.tool.is_some(),
                        };
                        if better {
                            out.facts = Some(f);
                        }
                    }
                    d
                }
            };
            d.token_source = out.token_source.clone();
            d.cache_hit = cache_hit;
            message_context(&mut d, m);
            let later_page = call
                .params
                .as_ref()
                .and_then(|p| p.get("cursor"))
                .is_some_and(|c| !c.is_null());
            msgs.push(Msg {
                id: call.id,
                method,
                tool,
                decision: d,
                answer,
                answered,
                later_page,
            });
        }
        // The lists this request's answers will be filtered to: what matching the token's globs may still cost
        // the request (after subscriptions/listen) is shared among its resources/list messages, so that a batch
        // of 100 lists costs what one does.
        let lists = msgs
            .iter()
            .filter(|m| {
                m.decision.allowed
                    && matches!(
                        m.method.as_deref(),
                        Some("resources/list" | SKILL_LIST_METHOD | SKILL_GET_METHOD)
                    )
            })
            .count() as u64;
        if let Some(f) = out.facts.as_mut() {
            let left = glob_steps.get();
            if lists > 1 || (lists == 1 && left < crate::args::GLOB_STEPS) {
                f.list_steps = Some(left / lists);
            }
        }
        // A dry run answers what the real call would: what the store holds for its nonces and quotas is read
        // (never written) along with the request's own ask.
        let mut probe = None;
        if let Some((i, tf, treq)) = probe_target {
            let mut refuse = |e: Error| {
                if let Some(m) = msgs.get_mut(i) {
                    refuse_dry_run(&mut m.answer, &e);
                }
            };
            match crate::quota::charges(
                &tf.quotas,
                TOOLS_CALL,
                treq.tool.as_deref(),
                &treq.arguments,
                now,
            ) {
                Err(e) => refuse(e),
                Ok(c) if !c.is_empty() && !self.options.store => refuse(Error::RateLimited {
                    reason: "the token has quotas and this server has no store to count them"
                        .into(),
                    retry_after: 0,
                }),
                Ok(c) => charges.extend(
                    c.into_iter()
                        .map(|c| crate::quota::Charge { probe: true, ..c }),
                ),
            }
            let spend = if tf.nonces.is_empty() || spender.is_some() {
                None
            } else if !self.options.store {
                refuse(Error::Replayed {
                    nonce: tf.nonces.first().cloned().unwrap_or_default(),
                });
                None
            } else {
                Some(SpendAsk {
                    nonces: token_spends(&tf),
                    call_key: String::new(),
                    now,
                    until: tf.expires_at,
                    window: 0,
                    probe: true,
                    proofs: 0,
                })
            };
            probe = Some((i, spend));
        }
        if hand_on {
            // what was counted goes on in the message itself, wherever it came from (a header, for one message)
            for (i, (m, (proof_counted, nonces))) in messages.iter_mut().zip(&counted).enumerate() {
                strip(m, None, (false, false));
                let proof = proofs.get(i).cloned().flatten().filter(|_| *proof_counted);
                // only the approvals that counted (and are spent here): another one would reach the inner layer
                // unspent
                let given: Option<Vec<&String>> = approvals
                    .get(i)
                    .map(|all| {
                        all.iter()
                            .filter(|a| {
                                a.split('.')
                                    .nth(3)
                                    .is_some_and(|n| nonces.iter().any(|c| c == n))
                            })
                            .collect::<Vec<_>>()
                    })
                    .filter(|a| !a.is_empty());
                if let Some(meta) = m
                    .get_mut("params")
                    .and_then(Value::as_object_mut)
                    .filter(|_| proof.is_some() || given.is_some())
                    .map(|p| p.entry("_meta").or_insert_with(|| json!({})))
                    .and_then(Value::as_object_mut)
                {
                    if let Some(p) = proof {
                        meta.insert(PROOF_META_KEY.into(), json!(p));
                    }
                    if let Some(a) = given {
                        meta.insert(APPROVALS_META_KEY.into(), json!(a));
                    }
                }
            }
        }
        let all_allowed = msgs.iter().all(|m| m.decision.allowed);
        let mut pending = Pending {
            now,
            msgs,
            batch,
            spender,
            charges,
            probe,
            session: SessionNote::of(input),
            spend_asked: false,
            burn: false,
            outcome: out,
        };
        let stripped_plain = plain_args(&messages) != plain_before;
        let forward: Vec<Value> = messages;
        pending.outcome.forward = if !plain {
            Some(if batch {
                Value::Array(forward)
            } else {
                forward.into_iter().next().unwrap_or(Value::Null)
            })
        } else if stripped_plain {
            // a one-tool route's arguments without the one that was the token (no tool gets the token)
            forward
                .into_iter()
                .next()
                .and_then(|m| m.pointer("/params/arguments").cloned())
        } else {
            // the route's own body (arguments or none) is handed on as it came
            None
        };
        // A call refused for lack of approvals asks the store whether its token is revoked: a revoked token is
        // `revoked` then, nobody is asked to approve its call (its other refusals stand: verify decides first).
        if !all_allowed && self.options.store && (!ask_revoked.is_empty() || !burn.is_empty()) {
            // a refused request spends the proofs that verified, by no call (a logged copy of one
            // is `replayed`)
            let burn_len = burn.len();
            pending.burn = burn_len > 0;
            let spend = pending.burn.then(|| SpendAsk {
                nonces: burn,
                call_key: crate::state::REFUSED_CALL.into(),
                now,
                until: burn_until,
                window: 0,
                probe: false,
                proofs: burn_len,
            });
            return Check::Ask {
                ask: StoreAsk {
                    revocation_ids: ask_revoked,
                    spend,
                    quotas: Vec::new(),
                },
                pending: Box::new(pending),
                needs_tool_definitions: false,
            };
        }
        if all_allowed && self.options.store {
            let facts = pending.outcome.facts.clone();
            let spend = pending.spender.and(facts.as_ref()).and_then(|f| {
                pending.outcome.call_key.clone().map(|k| SpendAsk {
                    nonces: spend_nonces,
                    call_key: k,
                    now,
                    until: pending.outcome.keep_until.unwrap_or(f.expires_at),
                    window: self.options.retry_window,
                    probe: false,
                    proofs: spend_proofs,
                })
            });
            pending.spend_asked = spend.is_some();
            let spend = spend.or_else(|| pending.probe.as_ref().and_then(|(_, s)| s.clone()));
            let ask = StoreAsk {
                revocation_ids: facts.map(|f| f.revocation_ids).unwrap_or_default(),
                spend,
                quotas: std::mem::take(&mut pending.charges),
            };
            return Check::Ask {
                ask,
                pending: Box::new(pending),
                needs_tool_definitions: false,
            };
        }
        Check::Done {
            outcome: Box::new(self.finish(pending, None)),
        }
    }

    /// `result` of a list method with only what `facts` may see, by this
    /// guard's options: `tools/list` keeps the tools the token grants by name
    /// or through a scope its policy maps them to (and adds the dry-run tool
    /// on the first page when `check_tool`); resources, resource templates and
    /// prompts as [`filter_list`]. No facts (no token verified): empty lists.
    /// Other methods: `result` as it is.
    pub fn filter(
        &self,
        method: &str,
        result: &Value,
        facts: Option<&AuthorizedFacts>,
        first_page: bool,
    ) -> Value {
        if method != "tools/list" {
            let o = &self.options;
            return filter_list(method, result, facts, o.open_resources, o.open_prompts);
        }
        let Some(facts) = facts else {
            return filter_list_of(result, "tools", |_| false);
        };
        let reachable = |name: &str| {
            facts.tools.iter().any(|g| g == name)
                || !facts.scopes.is_empty()
                    && self.policy.as_ref().is_ok_and(|p| {
                        p.reachable_scopes(name)
                            .iter()
                            .any(|s| facts.scopes.contains(s))
                    })
        };
        // a pinned tool is shown only as it was pinned
        let as_pinned = |name: &str, tool: &Value| match facts.pins.get(name) {
            None => true,
            Some(pins) => crate::pin::passes(pins, crate::pin::tool_hash(tool).ok().as_deref()),
        };
        filter_tools_by(
            result,
            |name, tool| reachable(name) && as_pinned(name, tool),
            self.options.check_tool,
            first_page,
        )
    }

    /// Finishes a request after the store answered `answer` for its ask.
    pub fn resume(&self, pending: Pending, answer: &StoreAnswer) -> Outcome {
        self.finish(pending, Some(answer))
    }

    fn dry_run(
        &mut self,
        token: Option<&str>,
        ask: &Result<Request>,
        id: &Option<Value>,
        now: u64,
    ) -> (Value, Option<(AuthorizedFacts, Request)>, bool) {
        let mut target = None;
        // refused only for want of the tool's definition (the host gave none)
        let lacked_definition;
        let structured = match ask {
            Err(e) => {
                let a = json!({"jsonrpc": "2.0", "id": id, "result": {"isError": true,
                    "content": [{"type": "text", "text": e.to_string()}]}});
                return (a, None, false);
            }
            Ok(req) => {
                let tool = req.tool.clone().unwrap_or_default();
                let mut req = req.clone();
                let verdict = match &self.policy {
                    Ok(p) => Some(p.judge(&tool, &req.arguments)),
                    Err(_) => None,
                };
                req.scope = verdict.as_ref().map(|v| v.scope.clone());
                // the policy's approval rules, as the real call gets them
                req.required_approvals = verdict
                    .as_ref()
                    .map(|v| v.approvals.clone())
                    .unwrap_or_default();
                let result = self.verifier.verify(
                    token.unwrap_or_default(),
                    &self.options.public_key,
                    &req,
                    now,
                );
                // as the real call: a hard rule (or a scope the policy cannot decide) before the token's approvals
                let refusal = policy_refusal(verdict.as_ref(), &result, Some(&tool));
                let result = match (result, refusal) {
                    (Ok(_) | Err(Error::ApprovalRequired { .. }), Some(e)) => Err(e),
                    (r, _) => r,
                };
                lacked_definition = req.tool_definition.is_none()
                    && matches!(result, Err(Error::ToolDefinitionChanged { .. }));
                let mut answer = match result {
                    Ok(f) => {
                        let a = json!({"allowed": true, "tool": tool, "facts": f});
                        target = Some((f, req));
                        a
                    }
                    Err(e) => {
                        let failed = e.failed_check();
                        let mut a = json!({"allowed": false, "tool": tool, "code": e.code(), "message": e.to_string(),
                            "failedBlock": failed.map(|(b, _)| b), "failedCheck": failed.map(|(_, c)| c)});
                        if let (Error::RuleViolation { rule, .. }, Some(o)) =
                            (&e, a.as_object_mut())
                        {
                            o.insert("rule".into(), json!(rule));
                        }
                        if let (Some(ask), Some(o)) = (ApprovalAsk::of(&e), a.as_object_mut()) {
                            o.insert("approval".into(), ask.data());
                        }
                        a
                    }
                };
                if let (Some(v), Some(o)) = (&verdict, answer.as_object_mut()) {
                    o.insert("scope".into(), json!(v.scope));
                    o.insert("mapping".into(), json!(v.mapping));
                    o.insert("softRules".into(), json!(v.soft));
                }
                answer
            }
        };
        let a = json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": structured.to_string()}],
            "structuredContent": structured}});
        (a, target, lacked_definition)
    }

    fn refuse_whole(
        &self,
        out: Outcome,
        e: &Error,
        method: Option<&str>,
        tool: Option<&str>,
        id: &Option<Value>,
        now: u64,
    ) -> Check {
        // a batch that cannot be read as messages (over the cap): one error in an array
        let batch = (method == Some("batch")).then_some(&[][..]);
        self.refuse_request(out, e, (method, tool, id), batch, now)
    }

    /// Refuses the whole request for the fault of message `m` (its method and id; none: the request's), of the
    /// batch `batch` when it is one.
    fn refuse_for(
        &self,
        out: Outcome,
        e: &Error,
        m: Option<&Value>,
        batch: Option<&Vec<Value>>,
        now: u64,
    ) -> Check {
        let method = m.and_then(|m| m.get("method")).and_then(Value::as_str);
        let id = m.and_then(|m| m.get("id")).cloned();
        self.refuse_request(out, e, (method, None, &id), batch.map(Vec::as_slice), now)
    }

    /// Refuses the whole request for one message's (`method`, `tool`, `id`) fault. `batch`: the request is a batch
    /// of these messages, answered with an array (JSON-RPC 2.0, "Batch") of the error for every request in it (one
    /// with a null id when it has none), as a batch refused after its messages were decided.
    fn refuse_request(
        &self,
        out: Outcome,
        e: &Error,
        (method, tool, id): (Option<&str>, Option<&str>, &Option<Value>),
        batch: Option<&[Value]>,
        now: u64,
    ) -> Check {
        self.refuse_decided(out, refusal(e, method, tool, id), id, batch, now)
    }

    /// Refuses the whole request with the decision `d` (see [`Guard::refuse_request`]).
    fn refuse_decided(
        &self,
        mut out: Outcome,
        d: Decision,
        id: &Option<Value>,
        batch: Option<&[Value]>,
        now: u64,
    ) -> Check {
        out.status = d.status;
        out.headers = challenge_of(&d, &self.options);
        let body = |id: Value| json!({"jsonrpc": "2.0", "id": id, "error": rpc_error_of(&d)});
        out.response = Some(match batch {
            Some(messages) => {
                let ids: Vec<Value> = messages
                    .iter()
                    .filter_map(|m| m.get("id").cloned())
                    .collect();
                Value::Array(if ids.is_empty() {
                    vec![body(Value::Null)]
                } else {
                    ids.into_iter().map(body).collect()
                })
            }
            None => body(id.clone().unwrap_or(Value::Null)),
        });
        if self.options.store {
            out.audit.push(d.record(now));
        }
        out.decisions.push(d);
        Check::Done {
            outcome: Box::new(out),
        }
    }

    fn finish(&self, p: Pending, answer: Option<&StoreAnswer>) -> Outcome {
        let Pending {
            now,
            mut msgs,
            batch,
            spender,
            charges: _,
            probe,
            session,
            spend_asked,
            burn,
            mut outcome,
        } = p;
        // What the store found applies to every message (revocation), or to the spender.
        if let Some(a) = answer {
            let whole = if let (Some(_), true) = (&a.error, burn) {
                // the request is refused already: a store that failed to spend its proofs changes no answer
                None
            } else if let Some(detail) = &a.error {
                Some(Error::Internal {
                    detail: format!("store: {detail}"),
                })
            } else if let Some(id) = &a.revoked {
                Some(Error::Revoked {
                    revocation_id: id.clone(),
                })
            } else if let Some(q) = &a.quota {
                Some(quota_error(q, now))
            } else if a.spend.is_none() && spend_asked {
                // a spend was asked and the store says nothing of it (a custom store that ignores it): nothing
                // says the call is this one's to run, so it is not allowed
                Some(Error::Internal {
                    detail: "store: the answer says nothing of the spend it was asked".into(),
                })
            } else {
                None
            };
            if let Some(e) = whole {
                for m in msgs.iter_mut() {
                    m.decision = refusal(&e, m.method.as_deref(), m.tool.as_deref(), &m.id)
                        .with_context_of(&m.decision);
                }
            } else if let Some((i, _)) = probe.as_ref().filter(|_| spender.is_none()) {
                // what the store holds for a dry run's call: the answer it would get
                let e = match (&a.spend, &a.probe_quota) {
                    (Some(SpendOutcome::Replayed { nonce }), _) => Some(Error::Replayed {
                        nonce: nonce.clone(),
                    }),
                    (_, Some(q)) => Some(quota_error(q, now)),
                    _ => None,
                };
                if let (Some(e), Some(m)) = (e, msgs.get_mut(*i)) {
                    refuse_dry_run(&mut m.answer, &e);
                }
            } else if let (Some(i), Some(s), false) = (spender, &a.spend, burn) {
                // a recorded response answers its request only when that call is the whole request: the other
                // messages of a batch sent again would run again, their quotas uncounted (a retry spends nothing)
                let alone = msgs.len() == 1;
                if let Some(m) = msgs.get_mut(i) {
                    let e = match s {
                        SpendOutcome::Done { .. } if !alone || self.options.verify_only => {
                            // the public message of every replay; what happened is the detail (as a batch's
                            // second spender's)
                            let e = Error::Replayed {
                                nonce: String::new(),
                            };
                            m.decision = refusal(&e, m.method.as_deref(), m.tool.as_deref(), &m.id)
                                .with_context_of(&m.decision);
                            m.decision.detail = Some(
                                if alone {
                                    // a host that runs what is allowed cannot answer with the record: allowed,
                                    // the call would run a second time
                                    "a call that already ran, its response recorded: this host verifies calls \
                                     and runs them itself, and cannot answer with it"
                                } else {
                                    "a batch holding a call that already ran: send its retry alone to get its \
                                     recorded response"
                                }
                                .into(),
                            );
                            None
                        }
                        SpendOutcome::Fresh => None,
                        SpendOutcome::InFlight => Some(Error::InFlight {
                            call_key: outcome.call_key.clone().unwrap_or_default(),
                        }),
                        SpendOutcome::Replayed { nonce } => Some(Error::Replayed {
                            nonce: nonce.clone(),
                        }),
                        SpendOutcome::Done { response } => {
                            let mut r = json!({"jsonrpc": "2.0", "id": m.id});
                            if let (Some(o), Some(rm)) = (r.as_object_mut(), response.as_object()) {
                                for k in ["result", "error"] {
                                    if let Some(v) = rm.get(k) {
                                        o.insert(k.into(), v.clone());
                                    }
                                }
                                // a list answer as this token may see it, whatever the host recorded (hosts
                                // filter after their handler, and record before)
                                if let (Some(method), Some(result)) =
                                    (m.method.as_deref(), o.get_mut("result"))
                                {
                                    if LIST_METHODS.contains(&method) {
                                        *result = self.filter(
                                            method,
                                            result,
                                            outcome.facts.as_ref(),
                                            !m.later_page,
                                        );
                                    }
                                }
                            }
                            m.answer = Some(r);
                            m.answered = true;
                            m.decision.replayed_response = true;
                            None
                        }
                    };
                    if let Some(e) = e {
                        m.decision = refusal(&e, m.method.as_deref(), m.tool.as_deref(), &m.id)
                            .with_context_of(&m.decision);
                    }
                }
                if !matches!(s, SpendOutcome::Fresh) {
                    outcome.call_key = None;
                    outcome.keep_until = None;
                    outcome.keep_for = None;
                }
            }
        }
        let refused = msgs.iter().position(|m| !m.decision.allowed);
        if let Some(r) = refused {
            // One refusal refuses the whole request: one decision, one audit record.
            let first = msgs.get(r).map(|m| m.decision.clone());
            let Some(d) = first else { return outcome };
            let ids: Vec<Value> = msgs.iter().filter_map(|m| m.id.clone()).collect();
            let body = |id: Value| json!({"jsonrpc": "2.0", "id": id, "error": rpc_error_of(&d)});
            outcome.response = Some(if batch {
                let all: Vec<Value> = if ids.is_empty() {
                    vec![body(Value::Null)]
                } else {
                    ids.into_iter().map(body).collect()
                };
                Value::Array(all)
            } else {
                body(
                    msgs.get(r)
                        .and_then(|m| m.id.clone())
                        .unwrap_or(Value::Null),
                )
            });
            outcome.status = d.status;
            outcome.headers = challenge_of(&d, &self.options);
            outcome.forward = None;
            outcome.facts = None;
            outcome.call_key = None;
            outcome.keep_until = None;
            outcome.keep_for = None;
            outcome.allowed = false;
            if self.options.store {
                outcome.audit.push(d.record(now));
            }
            outcome.decisions.push(d);
            return outcome;
        }
        outcome.allowed = true;
        outcome.status = 200;
        // What the guard answered itself is not handed on.
        if let Some(fwd) = outcome.forward.take() {
            let kept: Vec<Value> = match fwd {
                Value::Array(a) => a
                    .into_iter()
                    .zip(msgs.iter())
                    .filter(|(_, m)| !m.answered)
                    .map(|(v, _)| v)
                    .collect(),
                v => {
                    if msgs.first().is_some_and(|m| m.answered) {
                        Vec::new()
                    } else {
                        vec![v]
                    }
                }
            };
            outcome.forward = if kept.is_empty() {
                None
            } else if batch {
                Some(Value::Array(kept))
            } else {
                kept.into_iter().next()
            };
        }
        for m in msgs {
            if let Some(a) = m.answer {
                outcome.answers.push(a);
            }
            if self.options.store {
                outcome.audit.push(m.decision.record(now));
            }
            outcome.decisions.push(m.decision);
        }
        if let Some(note) = session {
            note.apply(&mut outcome);
        }
        outcome
    }
}

/// `result` of a `tools/list` with only the tools `keep` accepts, and the
/// dry-run tool on the first page (no cursor) when `check_tool`; hosts go
/// through [`Guard::filter`], which knows the policy's scopes.
fn filter_tools_by(
    result: &Value,
    keep: impl Fn(&str, &Value) -> bool,
    check_tool: bool,
    first_page: bool,
) -> Value {
    let mut out = if result.is_object() {
        result.clone()
    } else {
        json!({})
    };
    let mut tools: Vec<Value> = result
        .get("tools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|t| {
                    t.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| keep(n, t))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if check_tool && first_page {
        tools.push(check_tool_definition());
    }
    if let Some(o) = out.as_object_mut() {
        o.insert("tools".into(), Value::Array(tools));
    }
    out
}

/// Whether the token behind `facts` may read `uri` (every granting block has
/// a pattern matching it; with no grant, only when the server opened
/// resources): the same answer `resources/read` gets. `facts` must come from
/// a request made with the same `open` (the guard's options).
pub fn resource_allowed(facts: &AuthorizedFacts, uri: &str, open: bool) -> bool {
    resource_allowed_within(facts, uri, open, &Cell::new(crate::args::GLOB_STEPS)) == Some(true)
}

/// [`resource_allowed`], its globs matched within `steps` ([`crate::args::GLOB_STEPS`] for a whole request): none
/// when they ran out.
fn resource_allowed_within(
    facts: &AuthorizedFacts,
    uri: &str,
    open: bool,
    steps: &Cell<u64>,
) -> Option<bool> {
    if facts.resources.is_empty() {
        return Some(open);
    }
    let uri = crate::ops::granted_part(uri);
    for set in &facts.resources {
        let mut any = false;
        for g in set {
            if crate::args::glob_match_within(g, uri, steps)? {
                any = true;
                break;
            }
        }
        if !any {
            return Some(false);
        }
    }
    Some(true)
}

/// A list result with only what `keep` accepts in its `field` array.
fn filter_list_of(result: &Value, field: &str, keep: impl Fn(&Value) -> bool) -> Value {
    let mut out = if result.is_object() {
        result.clone()
    } else {
        json!({})
    };
    let kept: Vec<Value> = result
        .get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| keep(v)).cloned().collect())
        .unwrap_or_default();
    if let Some(o) = out.as_object_mut() {
        o.insert(field.into(), Value::Array(kept));
    }
    out
}

/// What matching the token's globs may cost one list answer filtered with `facts`: its share of the request's steps.
fn list_steps(facts: &AuthorizedFacts) -> Cell<u64> {
    Cell::new(
        facts
            .list_steps
            .map_or(crate::args::GLOB_STEPS, |s| s.min(crate::args::GLOB_STEPS)),
    )
}

/// A `resources/list` result with only the resources the token may read.
/// What the token's globs cost is bounded for the whole list ([`crate::args::GLOB_STEPS`]): once spent, the rest of
/// the list is left out.
pub fn filter_resources(result: &Value, facts: &AuthorizedFacts, open: bool) -> Value {
    let steps = list_steps(facts);
    filter_list_of(result, "resources", |r| {
        r.get("uri")
            .and_then(Value::as_str)
            .is_some_and(|u| resource_allowed_within(facts, u, open, &steps) == Some(true))
    })
}

/// A `resources/templates/list` result with the templates some URI of which
/// the token may read: the template's text before its first `{` and every
/// granting block's pattern (before its first wildcard) extend one another.
/// Advisory, like every list: each read is still decided on its URI.
pub fn filter_resource_templates(result: &Value, facts: &AuthorizedFacts, open: bool) -> Value {
    filter_list_of(result, "resourceTemplates", |t| {
        t.get("uriTemplate")
            .and_then(Value::as_str)
            .is_some_and(|template| template_visible(facts, template, open))
    })
}

/// Whether the token behind `facts` sees the resource template `template`
/// (its fixed part before the first `{` and a granted pattern's literal
/// prefix are one under the other; with no grant, only when the server
/// opened resources): `resources/templates/list` shows it, and
/// `completion/complete` completes its arguments.
fn template_visible(facts: &AuthorizedFacts, template: &str, open: bool) -> bool {
    if facts.resources.is_empty() {
        return open;
    }
    let fixed = template.split('{').next().unwrap_or("");
    facts.resources.iter().all(|set| {
        set.iter().any(|g| {
            let p = crate::args::glob_literal_prefix(g);
            fixed.starts_with(p) || p.starts_with(fixed)
        })
    })
}

/// Whether the token behind `facts` may get the prompt `name` (granted by
/// name; with no grant, only when the server opened prompts): `prompts/list`
/// shows it, and `completion/complete` completes its arguments.
fn prompt_visible(facts: &AuthorizedFacts, name: &str, open: bool) -> bool {
    match &facts.prompts {
        Some(names) => names.iter().any(|x| x == name),
        None => open,
    }
}

/// What a `completion/complete` completes (`params.ref`).
enum Completes<'a> {
    /// An argument of this prompt (`ref/prompt`, `name`).
    Prompt(&'a str),
    /// An argument of this resource template (`ref/resource`, `uri`).
    Template(&'a str),
}

/// What a `completion/complete` completes, or `invalid_request`.
fn completion_ref(params: Option<&Value>) -> Result<Completes<'_>> {
    let r = params.and_then(|p| p.get("ref"));
    let field = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let missing = |what: &str| {
        Error::invalid(format!(
            "completion/complete of a {what} needs params.ref.{}",
            if what == "prompt" { "name" } else { "uri" }
        ))
    };
    match field("type") {
        Some("ref/prompt") => field("name")
            .map(Completes::Prompt)
            .ok_or_else(|| missing("prompt")),
        Some("ref/resource") => field("uri")
            .map(Completes::Template)
            .ok_or_else(|| missing("resource")),
        _ => Err(Error::invalid(
            "completion/complete needs params.ref of type ref/prompt or ref/resource",
        )),
    }
}

/// A `completion/complete` the token behind `facts` may make: it completes
/// an argument of a prompt or resource template the token sees (as its
/// lists show them), else completion would name what the token cannot read.
fn check_completion(
    params: Option<&Value>,
    facts: &AuthorizedFacts,
    options: &GuardOptions,
) -> Result<()> {
    let check = |what: &str| format!("completion of a {what} the token does not see");
    match completion_ref(params)? {
        Completes::Prompt(name) if !prompt_visible(facts, name, options.open_prompts) => {
            Err(Error::PromptNotAllowed {
                prompt: name.to_string(),
                block: 0,
                check: check("prompt"),
            })
        }
        Completes::Template(uri) if !template_visible(facts, uri, options.open_resources) => {
            Err(Error::ResourceNotAllowed {
                resource: uri.to_string(),
                block: 0,
                check: check("resource template"),
            })
        }
        _ => Ok(()),
    }
}

/// The key a spent nonce is kept under: the nonce bound to what owns it (SHA-256 of `owner:nonce`, hex, after
/// `kind`). Any block may carry a nonce its holder chose, and any holder or approver may sign one it saw: bound to
/// the block that carries it (its revocation id, which every token attenuated from it shares and no other token
/// has), the holder key a proof is signed with, the approver — a nonce copied elsewhere is another key, and can
/// neither spend (burn) the original nor be handed its recorded response.
fn spent_as(kind: &str, owner: &str, nonce: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "{kind}{}",
        hex::encode(Sha256::digest(format!("{owner}:{nonce}").as_bytes()))
    )
}

/// What a single-use token's nonces are spent as ([`spent_as`], each owned by the block that carries it).
/// The proof's and the approvals' nonces a call carries, as a store keeps them.
/// The approvals first, the proof last: the proof alone is spent when its call is refused ([`proof_spend`]).
fn proof_spends(f: &AuthorizedFacts) -> Vec<String> {
    let mut spends: Vec<String> = f
        .approvals
        .iter()
        .map(|a| spent_as("approval:", &a.approver, &a.nonce))
        .collect();
    spends.extend(proof_spend(f));
    spends
}

/// The proof's nonce a call carries, as a store keeps it: what a refusal of the call spends. Not its approvals: a
/// human gave them, for a call that did not run (a holder retries with a new proof and the same approvals; a logged
/// copy of the request dies with its proof).
fn proof_spend(f: &AuthorizedFacts) -> Option<String> {
    match (&f.proof_nonce, &f.holder) {
        (Some(n), Some(h)) => Some(spent_as("proof:", h, n)),
        _ => None,
    }
}

/// Until when a store keeps what the call of `f` spends: a proof's nonce while the proof could be fresh, an
/// approval's while it could be, a single-use token's nonces until the token expires (a proof is fresh through
/// second iat + PROOF_WINDOW, iat up to now + PROOF_SKEW; stores sweep a row at its `until`: kept one second past
/// the last fresh one) — and STORE_SKEW more: a server sharing the store whose clock is behind still accepts the
/// token (or proof) that long after this server's clock says it expired.
fn keep_spent_until(f: &AuthorizedFacts, single_use: bool, now: u64) -> u64 {
    let fresh = if f.proof_nonce.is_some() {
        now + crate::proof::PROOF_WINDOW + crate::proof::PROOF_SKEW + 1
    } else {
        now
    };
    let approved = f
        .approvals
        .iter()
        .map(|a| a.expires_at + crate::proof::PROOF_SKEW)
        .max()
        .unwrap_or(now);
    if single_use {
        f.expires_at.max(approved)
    } else {
        fresh.max(approved)
    }
    .saturating_add(STORE_SKEW)
}

fn token_spends(f: &AuthorizedFacts) -> Vec<String> {
    // facts come from this crate's verification, which fills both; were one short, its nonces would be the root's
    let root = f.revocation_ids.first().map_or("", String::as_str);
    f.nonces
        .iter()
        .enumerate()
        .map(|(i, n)| spent_as("", f.nonce_blocks.get(i).map_or(root, String::as_str), n))
        .collect()
}

/// The resource URIs a `subscriptions/listen` subscribes to (`params.notifications.resourceSubscriptions`, none
/// when absent or null), each held to what `resources/subscribe` holds its URI to, or `invalid_request`.
fn listened_uris(params: Option<&Value>) -> Result<Vec<&str>> {
    let uris = params
        .and_then(|p| p.get("notifications"))
        .and_then(|n| n.get("resourceSubscriptions"));
    let list = match uris {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= MAX_LISTENED => a,
        Some(_) => {
            return Err(Error::invalid(format!(
                "subscriptions/listen: notifications.resourceSubscriptions is an array of at most {MAX_LISTENED} URIs"
            )))
        }
    };
    list.iter()
        .map(|u| match screened_uri(Some(u)) {
            Some(uri) => Ok(uri),
            None => Err(Error::invalid(
                "subscriptions/listen: each resource subscription is a URI a server reads as written (1 to 4096 \
                 bytes, no '.' or '..' segment, encoded '.', '/' or '\\', '\\' or control character)",
            )),
        })
        .collect()
}

/// A URI a server reads as written (1 to 4096 bytes, none of what [`crate::ops::confinable_uri`] refuses), if `v`
/// is one.
fn screened_uri(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|uri| {
        !uri.is_empty()
            && uri.len() <= crate::model::MAX_VALUE_LEN
            && crate::ops::confinable_uri(uri)
    })
}

/// The skill `skills/get` reads (`params.uri`, screened as a resource URI is), or `invalid_request`.
fn skill_uri(params: Option<&Value>) -> Result<&str> {
    match screened_uri(params.and_then(|p| p.get("uri"))) {
        Some(uri) => Ok(uri),
        None => Err(Error::invalid(
            "skills/get needs params.uri, a URI a server reads as written (1 to 4096 bytes, no '.' or '..' \
             segment, encoded '.', '/' or '\\', '\\' or control character)",
        )),
    }
}

/// A `skills/get` the token behind `facts` may make: the skill's `SKILL.md` is a resource the token may read (as
/// `resources/read` of it would be decided), else `resource_not_allowed`; what the answer lists of the skill's
/// other files is filtered ([`filter_skills`]).
fn check_skill(
    params: Option<&Value>,
    facts: &AuthorizedFacts,
    options: &GuardOptions,
    steps: &Cell<u64>,
) -> Result<()> {
    let uri = skill_uri(params)?;
    may_read(
        facts,
        uri,
        options,
        steps,
        "a skill whose SKILL.md the token may not read",
    )
}

/// Whether the token behind `facts` may read `uri` (its globs matched within `steps`): `resource_not_allowed`
/// (saying `why`) if not, `limits_exceeded` past the steps.
fn may_read(
    facts: &AuthorizedFacts,
    uri: &str,
    options: &GuardOptions,
    steps: &Cell<u64>,
    why: &str,
) -> Result<()> {
    match resource_allowed_within(facts, uri, options.open_resources, steps) {
        Some(true) => Ok(()),
        Some(false) => Err(Error::ResourceNotAllowed {
            resource: uri.to_string(),
            block: 0,
            check: why.into(),
        }),
        None => Err(Error::LimitsExceeded {
            detail: format!(
                "matching the token's resource patterns took more than {} steps",
                crate::args::GLOB_STEPS
            ),
        }),
    }
}

/// A `skills/list` result with only the skills whose `SKILL.md` the token may read, and of each only the files it
/// may read (`resources`, when a list); a `skills/get` result's skill likewise. A listed file tells its URI, digest
/// and size: of a small secret, enough to guess it offline.
pub fn filter_skills(method: &str, result: &Value, facts: &AuthorizedFacts, open: bool) -> Value {
    let steps = list_steps(facts);
    let readable = |v: &Value| {
        v.get("uri")
            .and_then(Value::as_str)
            .is_some_and(|u| resource_allowed_within(facts, u, open, &steps) == Some(true))
    };
    let files_of = |skill: &Value| {
        let mut skill = skill.clone();
        if let Some(files) = skill.get_mut("resources").and_then(Value::as_array_mut) {
            files.retain(|f| readable(f));
        }
        skill
    };
    if method == SKILL_GET_METHOD {
        let mut out = result.clone();
        if let Some(skill) = out.get_mut("skill") {
            *skill = if readable(skill) {
                files_of(skill)
            } else {
                Value::Null
            };
        }
        return out;
    }
    let mut out = filter_list_of(result, "skills", |s| readable(s));
    if let Some(skills) = out.get_mut("skills").and_then(Value::as_array_mut) {
        for s in skills.iter_mut() {
            *s = files_of(s);
        }
    }
    out
}

/// A `subscriptions/listen` the token behind `facts` may make: every resource it subscribes to is one the token may
/// read (as `resources/subscribe` of it would be decided), else `resource_not_allowed`: an update to a resource
/// tells of what the token cannot read.
/// The token's globs are matched within `steps`, the request's ([`crate::args::GLOB_STEPS`]): past them the request
/// is `limits_exceeded`.
fn check_listen(
    params: Option<&Value>,
    facts: &AuthorizedFacts,
    options: &GuardOptions,
    steps: &Cell<u64>,
) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for uri in listened_uris(params)?
        .into_iter()
        .filter(|u| seen.insert(*u))
    {
        may_read(
            facts,
            uri,
            options,
            steps,
            "a subscription to a resource the token may not read",
        )?;
    }
    Ok(())
}

/// A list answer as the token behind `facts` may see it: `resources/list`,
/// `resources/templates/list` and `prompts/list` filtered (under the
/// server's `open_resources` / `open_prompts`), emptied when no token
/// verified (`facts` absent); any other method's result as it is.
pub(crate) fn filter_list(
    method: &str,
    result: &Value,
    facts: Option<&AuthorizedFacts>,
    open_resources: bool,
    open_prompts: bool,
) -> Value {
    let field = match method {
        "resources/list" => "resources",
        "resources/templates/list" => "resourceTemplates",
        "prompts/list" => "prompts",
        SKILL_LIST_METHOD => "skills",
        SKILL_GET_METHOD => "skill",
        _ => return result.clone(),
    };
    let Some(facts) = facts else {
        if method == SKILL_GET_METHOD {
            return json!({});
        }
        return filter_list_of(result, field, |_| false);
    };
    match method {
        SKILL_LIST_METHOD | SKILL_GET_METHOD => {
            filter_skills(method, result, facts, open_resources)
        }
        "resources/list" => filter_resources(result, facts, open_resources),
        "resources/templates/list" => filter_resource_templates(result, facts, open_resources),
        _ => filter_prompts(result, facts, open_prompts),
    }
}

/// A `prompts/list` result with only the prompts the token may get.
pub fn filter_prompts(result: &Value, facts: &AuthorizedFacts, open: bool) -> Value {
    filter_list_of(result, "prompts", |p| {
        p.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| prompt_visible(facts, n, open))
    })
}

/// The dry-run tool's definition.
pub fn check_tool_definition() -> Value {
    json!({
        "name": CHECK_TOOL,
        "title": "mcpvault: would this call be allowed?",
        "description": "Dry run: says whether the presented mcpvault token allows calling `tool` with `arguments`, and which check refused it. Nothing is called.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "description": "The tool to ask about."},
                "arguments": {"type": "object", "description": "The arguments of the call (default {})."}
            },
            "required": ["tool"]
        },
        "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::state::MemoryStore;
    use rand_core::SeedableRng;

    fn setup() -> (Guard, String, u64) {
        setup_with(crate::Grant::new(["db_query"], 600, "i", "s"), true)
    }

    /// A guard (with a store or not) and a token of `grant`, at `now`.
    fn setup_with(grant: crate::Grant, store: bool) -> (Guard, String, u64) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let keys = crate::keygen(&mut rng);
        let now = 1_800_000_000;
        let token = crate::mint(&keys.private_key, &grant, now, &mut rng).unwrap();
        let options = GuardOptions {
            store,
            ..GuardOptions::new(keys.public_key.clone())
        };
        (Guard::new(options, 8).unwrap(), token, now)
    }

    #[test]
    fn decisions_quote_at_most_max_text_of_what_the_caller_sent() {
        let (mut g, token, now) = setup();
        let long = "a".repeat(100_000);
        let wide = "é".repeat(3_000);
        let bodies = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": long}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": wide}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": format!("{}{long}", "b".repeat(127))}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": long, "params": {}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "db_query", "arguments": {long.clone(): 1}}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": long}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": wide}}),
        ];
        for body in bodies {
            let input = GuardInput {
                body: Some(body.to_string()),
                fallback_token: Some(token.clone()),
                ..GuardInput::default()
            };
            let out = g.run(&mut MemoryStore::new(), &input, now);
            assert!(!out.allowed);
            let d = &out.decisions[0];
            for text in [&d.message, &d.detail, &d.failed_check]
                .into_iter()
                .flatten()
            {
                assert!(text.chars().count() <= MAX_TEXT + 1, "{}", text.len());
            }
            let answer = out.response.unwrap().to_string();
            assert!(answer.len() < 4 * MAX_TEXT + 512, "{}", answer.len());
        }
        // a check the holder wrote (an attenuation block) is quoted in `failed_check` and `detail`
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let limit = crate::ArgLimit {
            tool: "db_query".into(),
            arg: "sql".into(),
            rule: crate::ArgRule::OneOf(
                (0..200)
                    .map(|i| crate::Scalar::Str(format!("select {i} from some_table")))
                    .collect(),
            ),
        };
        let r = crate::Restriction {
            arg_limits: vec![limit],
            ..Default::default()
        };
        let narrowed = crate::attenuate(&token, &r, now, &mut rng).unwrap().token;
        let input = GuardInput {
            body: Some(
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "db_query", "arguments": {"sql": "drop"}}})
                .to_string(),
            ),
            fallback_token: Some(narrowed),
            ..GuardInput::default()
        };
        let out = g.run(&mut MemoryStore::new(), &input, now);
        let d = &out.decisions[0];
        assert_eq!(d.code.as_deref(), Some("argument_not_allowed"));
        for text in [&d.message, &d.detail, &d.failed_check]
            .into_iter()
            .flatten()
        {
            assert!(text.chars().count() <= MAX_TEXT + 1, "{}", text.len());
        }
        assert!(d.failed_check.as_ref().unwrap().ends_with('…'));
        assert_eq!(cut_text("é".repeat(MAX_TEXT)), "é".repeat(MAX_TEXT));
        assert_eq!(
            cut_text("é".repeat(MAX_TEXT + 1)),
            format!("{}…", "é".repeat(MAX_TEXT))
        );
    }

    #[test]
    fn an_allow_whose_audit_record_cannot_be_written_is_refused_with_the_request_id() {
        let (mut g, token, now) = setup();
        let input = GuardInput {
            body: Some(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "db_query"}}).to_string()),
            fallback_token: Some(token),
            ..GuardInput::default()
        };
        let out = g.run(&mut MemoryStore::new(), &input, now);
        assert!(out.allowed);
        let refused = g.audit_failed(out, "disk full");
        assert!(!refused.allowed);
        assert_eq!(refused.status, 500);
        assert_eq!(refused.response.as_ref().unwrap()["id"], json!(7));
        assert_eq!(refused.decisions[0].code.as_deref(), Some("internal_error"));
        assert_eq!(
            refused.decisions[0].detail.as_deref(),
            Some("audit store: disk full")
        );
    }

    #[test]
    fn a_failing_store_is_internal_error_never_an_allow() {
        let (mut g, token, now) = setup();
        let input = GuardInput {
            body: Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string()),
            fallback_token: Some(token),
            ..GuardInput::default()
        };
        let Check::Ask { pending, .. } = g.check(&input, now) else {
            panic!("a store is attached")
        };
        let answer = StoreAnswer {
            error: Some("connection reset".into()),
            ..StoreAnswer::default()
        };
        let out = g.resume(*pending, &answer);
        assert_eq!((out.allowed, out.status), (false, 500));
        assert_eq!(out.response.unwrap()["error"]["message"], "internal error");
        assert!(out.forward.is_none() && out.facts.is_none());
    }

    #[test]
    fn a_store_answer_silent_on_the_spend_it_was_asked_is_internal_error() {
        // helper 40: a custom store whose check() answered {} let a single-use token's call through every time
        let (mut g, token, now) = setup_with(
            crate::Grant {
                single_use: true,
                ..crate::Grant::new(["db_query"], 600, "i", "s")
            },
            true,
        );
        let call = |id: i64| GuardInput {
            body: Some(
                json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "db_query", "arguments": {}}})
                .to_string(),
            ),
            fallback_token: Some(token.clone()),
            ..GuardInput::default()
        };
        let mut decide = |id: i64, answer: StoreAnswer| {
            let Check::Ask { ask, pending, .. } = g.check(&call(id), now) else {
                panic!("a store is attached")
            };
            assert!(ask.spend.is_some());
            g.resume(*pending, &answer)
        };
        let silent = decide(1, StoreAnswer::default());
        assert_eq!((silent.allowed, silent.status), (false, 500));
        assert_eq!(silent.decisions[0].code.as_deref(), Some("internal_error"));
        assert!(silent.forward.is_none() && silent.facts.is_none());
        let fresh = StoreAnswer {
            spend: Some(SpendOutcome::Fresh),
            ..StoreAnswer::default()
        };
        assert!(decide(2, fresh).allowed);
        // a request that spends nothing is allowed on an answer that says nothing of a spend
        let (mut g, token, now) = setup();
        let list = GuardInput {
            body: Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string()),
            fallback_token: Some(token),
            ..GuardInput::default()
        };
        let Check::Ask { ask, pending, .. } = g.check(&list, now) else {
            panic!("a store is attached")
        };
        assert!(ask.spend.is_none());
        assert!(g.resume(*pending, &StoreAnswer::default()).allowed);
    }

    #[test]
    fn decisions_carry_what_traces_need_and_refusals_keep_it() {
        let (g, token, now) = setup();
        // resources and prompts opened, so those reads verify the token (issue 15 closes them by default)
        let mut g = Guard::new(
            GuardOptions {
                open_resources: true,
                open_prompts: true,
                ..g.options.clone()
            },
            8,
        )
        .unwrap();
        let mut store = MemoryStore::new();
        let mut headers = BTreeMap::new();
        headers.insert("Mcp-Session-Id".to_string(), "sess-1".to_string());
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let input = |body: Value| GuardInput {
            headers: headers.clone(),
            body: Some(body.to_string()),
            fallback_token: Some(token.clone()),
            ..GuardInput::default()
        };
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "db_query", "_meta": {"traceparent": tp, "tracestate": "a=b"}}});
        let first = g.run(&mut store, &input(call.clone()), now);
        let d = &first.decisions[0];
        assert_eq!((d.depth, d.cache_hit), (Some(0), false));
        assert_eq!(d.session_id.as_deref(), Some("sess-1"));
        assert_eq!(
            (d.traceparent.as_deref(), d.tracestate.as_deref()),
            (Some(tp), Some("a=b"))
        );
        // the second call reuses the cached chain
        let again = g.run(&mut store, &input(call), now);
        assert!(again.decisions[0].cache_hit);
        let prompt =
            json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "p1"}});
        assert_eq!(
            g.run(&mut store, &input(prompt), now).decisions[0]
                .prompt
                .as_deref(),
            Some("p1")
        );
        let read = json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "file:///x"}});
        let out = g.run(&mut store, &input(read.clone()), now);
        assert_eq!(out.decisions[0].resource_uri.as_deref(), Some("file:///x"));
        // revoked: the store's refusal keeps the context, not the facts
        let rid = out.decisions[0].revocation_ids[0].clone();
        store.revoke(&rid).unwrap();
        let revoked = g.run(&mut store, &input(read), now);
        let d = &revoked.decisions[0];
        assert_eq!(d.code.as_deref(), Some("revoked"));
        assert!(d.cache_hit && d.depth.is_none());
        assert_eq!(d.resource_uri.as_deref(), Some("file:///x"));
        assert_eq!(d.session_id.as_deref(), Some("sess-1"));
        // a request refused whole still names its session
        let bad = g.run(
            &mut store,
            &GuardInput {
                headers: headers.clone(),
                body: Some("{".into()),
                ..GuardInput::default()
            },
            now,
        );
        assert_eq!(bad.decisions[0].session_id.as_deref(), Some("sess-1"));
    }

    #[test]
    fn a_batch_is_parsed_only_up_to_its_limit() {
        let pb = |t: &str| parse_body(t, MAX_BODY_CONTAINERS, MAX_BODY_VALUES);
        let many = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","method":"n"}"#; 100].join(",")
        );
        assert_eq!(pb(&many).unwrap().as_array().unwrap().len(), 100);
        // the 101st message stops the parse, even when what follows is not JSON at all
        let over = format!("[{},{{}}, this is never read", vec!["1"; 100].join(","));
        assert_eq!(
            pb(&over).unwrap_err(),
            "a batch of more than 100 messages is over the limit"
        );
        assert_eq!(pb("[1] x").unwrap_err(), "body is not JSON");
        // objects and values are counted before anything is parsed (strings, escaped quotes in them, count once)
        let objects = |n: usize| format!(r#"{{"a":[{}]}}"#, vec![r#"{"":"\",{"}"#; n].join(","));
        assert!(pb(&objects(MAX_BODY_CONTAINERS - 2)).is_ok());
        assert!(pb(&objects(MAX_BODY_CONTAINERS - 1))
            .unwrap_err()
            .starts_with("body holds more than"));
        // a batch is told as a batch when its messages are what is over (a batch of 20,000 objects)
        assert_eq!(
            pb(&format!("[{}]", vec!["{}"; 20_000].join(","))).unwrap_err(),
            "a batch of more than 100 messages is over the limit"
        );
        let values = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        assert!(pb(&format!(r#"{{"a":{}}}"#, values(MAX_BODY_VALUES - 2))).is_ok());
        assert!(pb(&format!(r#"{{"a":{}}}"#, values(MAX_BODY_VALUES))).is_err());
        assert_eq!(
            pb(&"[".repeat(500)).unwrap_err(),
            "body is nested too deeply"
        );
    }

    #[test]
    fn a_batch_of_lists_shares_one_requests_glob_steps() {
        // a glob every URI below matches, at about 1,700 steps each: one list's budget keeps some 5,900 of them
        let (mut g, token, now) = setup_with(
            crate::Grant {
                resources: vec![format!("{}*", "?".repeat(500))],
                ..crate::Grant::new(["db_query"], 600, "i", "s")
            },
            false,
        );
        let list = |id: usize| json!({"jsonrpc": "2.0", "id": id, "method": "resources/list"});
        let mut run = |body: Value| {
            let input = GuardInput {
                body: Some(body.to_string()),
                fallback_token: Some(token.clone()),
                ..GuardInput::default()
            };
            g.run(&mut MemoryStore::new(), &input, now)
        };
        let resources: Vec<Value> = (0..3_000)
            .map(|i| json!({"uri": format!("{}{i:04}", "a".repeat(596))}))
            .collect();
        let result = json!({"resources": resources});
        let kept = |facts: &AuthorizedFacts| {
            filter_resources(&result, facts, false)["resources"]
                .as_array()
                .unwrap()
                .len()
        };
        let one = run(list(1)).facts.unwrap();
        assert_eq!(one.list_steps, None);
        assert_eq!(kept(&one), 3_000);
        // a batch of 100 lists: each answer filtered within a hundredth, the request within one list's budget
        let batch = run(Value::Array((0..MAX_BATCH).map(list).collect()));
        assert!(batch.allowed);
        let shared = batch.facts.unwrap();
        assert_eq!(shared.list_steps, Some(crate::args::GLOB_STEPS / 100));
        let each = kept(&shared);
        assert!(each > 0 && each * 100 < 7_000, "{each}");
        // a batch of one list and other messages keeps the whole budget
        let mixed = run(json!([list(1), {"jsonrpc": "2.0", "id": 2, "method": "ping"}]));
        assert_eq!(mixed.facts.unwrap().list_steps, None);
        // the share goes through the facts' JSON, as hosts pass them back
        let back: AuthorizedFacts =
            serde_json::from_value(serde_json::to_value(&shared).unwrap()).unwrap();
        assert_eq!(kept(&back), each);
    }

    #[test]
    fn skills_answers_keep_what_the_token_may_read() {
        let facts_of = |resources: Value| -> AuthorizedFacts {
            serde_json::from_value(json!({"verified": true, "tools": [], "issuer": "i", "subject": "s",
                "expires_at": 1, "depth": 0, "audience": null, "max_depth": null, "revocation_ids": [],
                "resources": resources}))
            .unwrap()
        };
        let facts = facts_of(json!([["skill://public/*"]]));
        let skill = |name: &str, files: &[&str]| {
            json!({"uri": format!("skill://{name}/SKILL.md"), "frontmatter": {"name": name},
                "resources": files.iter().map(|f| json!({"uri": format!("skill://{f}"), "digest": "sha256:00", "size": 1}))
                    .collect::<Vec<_>>()})
        };
        let list = json!({"skills": [
            skill("public", &["public/SKILL.md", "public/a.md", "payroll/creds.md"]),
            skill("payroll", &["payroll/SKILL.md", "payroll/creds.md"]),
            {"uri": "skill://public/dyn/SKILL.md", "resources": "dynamic"}
        ], "nextCursor": "c"});
        let out = filter_skills(SKILL_LIST_METHOD, &list, &facts, false);
        assert_eq!(
            out,
            json!({"skills": [
                skill("public", &["public/SKILL.md", "public/a.md"]),
                {"uri": "skill://public/dyn/SKILL.md", "resources": "dynamic"}
            ], "nextCursor": "c"})
        );
        // skills/get: the skill's files likewise; a skill it may not read is none
        let got = json!({"skill": skill("public", &["public/SKILL.md", "payroll/creds.md"])});
        assert_eq!(
            filter_skills(SKILL_GET_METHOD, &got, &facts, false),
            json!({"skill": skill("public", &["public/SKILL.md"])})
        );
        let other = json!({"skill": skill("payroll", &["payroll/SKILL.md"])});
        assert_eq!(
            filter_skills(SKILL_GET_METHOD, &other, &facts, false),
            json!({"skill": null})
        );
        // through the guard's filter, and nothing for no token
        assert_eq!(
            filter_list(SKILL_LIST_METHOD, &list, None, false, false),
            json!({"skills": [], "nextCursor": "c"})
        );
        assert_eq!(
            filter_list(SKILL_GET_METHOD, &got, None, false, false),
            json!({})
        );
        // a token that grants no resource sees none, unless the server opened them
        let closed = facts_of(json!([]));
        assert_eq!(
            filter_skills(SKILL_LIST_METHOD, &list, &closed, false)["skills"],
            json!([])
        );
        assert_eq!(filter_skills(SKILL_LIST_METHOD, &list, &closed, true), list);
    }

    #[test]
    fn a_body_refused_for_its_size_is_answered_under_its_id() {
        let whole = |t: &str| {
            serde_json::from_str::<Value>(t)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .filter(|v| v.is_string() || v.is_number())
        };
        // the id read alone is the id of the parsed body, wherever it stands, however written
        for t in [
            r#"{"jsonrpc":"2.0","id":7,"method":"m"}"#,
            r#"{"params":{"id":1,"x":[{"id":2}]},"id":"a\"b\u00e9","method":"m"}"#,
            r#"{"id":-3}"#,
            r#"{"id":1.5e3}"#,
            r#"{"id":18446744073709551616}"#,
            r#"{"id":1,"id":"last"}"#,
            r#"{"\u0069d":9}"#,
            r#"{"id":null}"#,
            r#"{"id":true}"#,
            r#"{"id":[1]}"#,
            r#"{"id":{"id":1}}"#,
            r#"{"method":"m"}"#,
            r#"{"id":1"#,
            r#"{"id":1} x"#,
            "[1]",
            "\"id\"",
        ] {
            assert_eq!(refused_message_id(t), whole(t), "{t}");
        }
        // nesting a parse would refuse is skipped, not followed: the id before and after it is read
        let deep = format!(
            r#"{{"id":4,"x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(refused_message_id(&deep), Some(json!(4)));
        let deep_after = format!(
            r#"{{"x":{}{},"id":"z"}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(refused_message_id(&deep_after), Some(json!("z")));
        // and the guard answers the refused request under it (a batch over its limits stays one error, id null)
        let mut g = Guard::new(
            serde_json::from_value(json!({"public_key": "00".repeat(32)})).unwrap(),
            0,
        )
        .unwrap();
        let mut store = crate::state::MemoryStore::default();
        let body = |b: String| GuardInput {
            body: Some(b),
            ..GuardInput::default()
        };
        let many = format!("[{}]", vec!["{}"; MAX_BODY_CONTAINERS].join(","));
        let single = format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"x":{many}}},"id":"r-1"}}"#
        );
        let out = g.run(&mut store, &body(single), 1);
        assert_eq!(out.decisions[0].code.as_deref(), Some("invalid_request"));
        assert_eq!(out.response.as_ref().unwrap()["id"], json!("r-1"));
        assert_eq!(out.decisions[0].request_id.as_deref(), Some("r-1"));
        let batch = format!(
            r#"[{{"jsonrpc":"2.0","method":"tools/call","params":{{"x":{many}}},"id":"r-1"}}]"#
        );
        let out = g.run(&mut store, &body(batch), 1);
        assert_eq!(out.response.as_ref().unwrap()[0]["id"], Value::Null);
    }

    #[test]
    fn tools_list_shows_tools_reached_by_name_or_through_a_mapped_scope() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let keys = crate::keygen(&mut rng);
        let now = 1_800_000_000;
        let options: GuardOptions = serde_json::from_value(json!({
            "public_key": keys.public_key,
            "mappings": { "read_file": "filesystem:files:read" },
            "tool_mappings": [
                { "tool": "write_file", "scope": "files:write:sandbox", "when": { "path": { "startsWith": "/tmp/" } } },
                { "tool": "move_file", "scope": "files:move" }
            ]
        }))
        .unwrap();
        let g = Guard::new(options, 0).unwrap();
        let facts = |scopes: &[&str], tools: &[&str], rng: &mut rand_chacha::ChaCha20Rng| {
            let mut gr = crate::Grant::new(tools.iter().copied(), 600, "i", "s");
            gr.scopes = scopes.iter().map(|s| s.to_string()).collect();
            let token = crate::mint(&keys.private_key, &gr, now, rng).unwrap();
            let req = Request {
                method: "tools/list".into(),
                ..Request::default()
            };
            crate::verify(&token, &keys.public_key, &req, now).unwrap()
        };
        let list = json!({"tools": [{"name": "read_file"}, {"name": "write_file"}, {"name": "move_file"},
            {"name": "db_query"}, {"name": "admin"}]});
        let shown = |f: &AuthorizedFacts| -> Vec<String> {
            g.filter("tools/list", &list, Some(f), true)["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string())
                .collect()
        };
        let f = facts(
            &[
                "filesystem:files:read",
                "files:write:sandbox",
                "db_query:call",
            ],
            &[],
            &mut rng,
        );
        assert_eq!(shown(&f), ["read_file", "write_file", "db_query"]);
        // move_file's only mapping is unconditional: its auto scope does not reach it
        let f = facts(&["move_file:call"], &["admin"], &mut rng);
        assert_eq!(shown(&f), ["admin"]);
        // no token verified: nothing
        assert_eq!(
            g.filter("tools/list", &list, None, true)["tools"],
            json!([])
        );
    }

    /// A holder's own globs that fail late, against many long URIs: matching is bounded per request (helper 37
    /// measured 15 s of one core for one `subscriptions/listen` before the bound).
    #[test]
    fn resource_patterns_cost_a_request_a_bounded_number_of_steps() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let keys = crate::keygen(&mut rng);
        let now = 1_800_000_000;
        let mut gr = crate::Grant::new(["t"], 600, "i", "s");
        gr.resources = vec!["file:///docs/*".into()];
        let token = crate::mint(&keys.private_key, &gr, now, &mut rng).unwrap();
        let a = "a".repeat(1000);
        let mut globs: Vec<String> = ["X", "Y", "Z"].iter().map(|e| format!("*{a}{e}")).collect();
        globs.push(format!("*{a}b"));
        let r = crate::Restriction {
            resources: Some(globs),
            ..Default::default()
        };
        let token = crate::attenuate(&token, &r, now, &mut rng).unwrap().token;
        let req = Request {
            method: "resources/list".into(),
            ..Request::default()
        };
        let f = crate::verify(&token, &keys.public_key, &req, now).unwrap();
        let options = GuardOptions::new(&keys.public_key);
        let uris: Vec<String> = (0..5)
            .map(|i| format!("file:///docs/{i}{}b", "a".repeat(2000)))
            .collect();
        // each URI alone is allowed (about 3 million steps)
        let one = json!({"notifications": {"resourceSubscriptions": [uris[0]]}});
        let steps = Cell::new(crate::args::GLOB_STEPS);
        assert!(check_listen(Some(&one), &f, &options, &steps).is_ok());
        // five of them (listed twice: each is matched once) are over the request's steps
        let mut twice = uris.clone();
        twice.extend(uris.clone());
        let five = json!({"notifications": {"resourceSubscriptions": twice}});
        let steps = Cell::new(crate::args::GLOB_STEPS);
        let e = check_listen(Some(&five), &f, &options, &steps).unwrap_err();
        assert_eq!(e.code(), "limits_exceeded");
        // a list filtered past the steps leaves the rest out
        let list = json!({"resources": uris.iter().map(|u| json!({"uri": u})).collect::<Vec<_>>()});
        let kept = filter_resources(&list, &f, false)["resources"]
            .as_array()
            .unwrap()
            .len();
        assert!((1..5).contains(&kept), "{kept}");
    }

    #[test]
    fn lists_show_only_what_the_token_may_read() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let keys = crate::keygen(&mut rng);
        let now = 1_800_000_000;
        let facts_of = |resources: &[&str],
                        prompts: &[&str],
                        open: bool,
                        rng: &mut rand_chacha::ChaCha20Rng| {
            let mut g = crate::Grant::new(["t"], 600, "i", "s");
            g.resources = resources.iter().map(|s| s.to_string()).collect();
            g.prompts = prompts.iter().map(|s| s.to_string()).collect();
            let token = crate::mint(&keys.private_key, &g, now, rng).unwrap();
            let req = Request {
                method: "resources/list".into(),
                open_resources: open,
                open_prompts: open,
                ..Request::default()
            };
            crate::verify(&token, &keys.public_key, &req, now).unwrap()
        };
        let list = json!({"resources": [{"uri": "file:///docs/a"}, {"uri": "file:///secret"}, {"name": "no uri"}],
            "resourceTemplates": [{"uriTemplate": "file:///docs/{path}"}, {"uriTemplate": "file:///{path}"},
                {"uriTemplate": "db://{region}/x"}],
            "prompts": [{"name": "summarize"}, {"name": "exfiltrate"}], "nextCursor": "c"});
        let names = |v: &Value, field: &str, key: &str| -> Vec<String> {
            v[field]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[key].as_str().unwrap_or("").to_string())
                .collect()
        };
        let f = facts_of(&["file:///docs/"], &["summarize"], false, &mut rng);
        assert_eq!(
            names(&filter_resources(&list, &f, false), "resources", "uri"),
            ["file:///docs/a"]
        );
        assert_eq!(filter_resources(&list, &f, false)["nextCursor"], "c");
        assert_eq!(
            names(
                &filter_resource_templates(&list, &f, false),
                "resourceTemplates",
                "uriTemplate"
            ),
            ["file:///docs/{path}", "file:///{path}"]
        );
        assert_eq!(
            names(&filter_prompts(&list, &f, false), "prompts", "name"),
            ["summarize"]
        );
        // nothing granted: nothing listed, unless the server opened them
        let none = facts_of(&[], &[], false, &mut rng);
        assert!(names(&filter_resources(&list, &none, false), "resources", "uri").is_empty());
        assert!(names(&filter_prompts(&list, &none, false), "prompts", "name").is_empty());
        let open = facts_of(&[], &[], true, &mut rng);
        assert_eq!(
            names(&filter_resources(&list, &open, true), "resources", "uri").len(),
            2
        );
        assert_eq!(
            names(&filter_prompts(&list, &open, true), "prompts", "name").len(),
            2
        );
        // one entry point: the method picks the list and the open flag; no facts empties it
        assert_eq!(
            filter_list("prompts/list", &list, Some(&none), false, true),
            filter_prompts(&list, &none, true)
        );
        assert_eq!(
            filter_list("resources/list", &list, Some(&none), false, true),
            filter_resources(&list, &none, false)
        );
        assert!(names(
            &filter_list("prompts/list", &list, None, true, true),
            "prompts",
            "name"
        )
        .is_empty());
        assert_eq!(filter_list("tools/list", &list, None, false, false), list);
        assert!(
            resource_allowed(&f, "file:///docs/x", false)
                && !resource_allowed(&f, "file:///docsx", false)
        );
    }
}
