//! mcpvault for [rmcp](https://docs.rs/rmcp) servers: every request a
//! [`ServerHandler`] serves is authorized by the mcpvault guard before the
//! handler runs.
//!
//! ```no_run
//! # async fn run(public_key_hex: &str, handler: impl rmcp::ServerHandler) -> Result<(), Box<dyn std::error::Error>> {
//! use mcpvault_rmcp::{GuardOptions, McpVault};
//! use rmcp::ServiceExt;
//!
//! let vault = McpVault::new(GuardOptions::new(public_key_hex))?;
//! let server = vault.guard(handler).serve(rmcp::transport::stdio()).await?;
//! server.waiting().await?;
//! # Ok(()) }
//! ```
//!
//! [`McpVault::guard`] wraps a handler in a [`Guarded`] handler (itself a
//! [`ServerHandler`], so it runs on every rmcp transport, and as the
//! per-session service of a Streamable HTTP server). For each request the
//! wrapper builds the JSON-RPC message the client sent (method, id, params
//! with their `_meta`) and, over Streamable HTTP, the request's headers, and
//! hands them to the core's [`mcpvault::guard::Guard`]; every rule (where the
//! token is read, what each method needs, single use, revocation, the dry-run
//! tool, the codes) is the core's, as for the Node `withMcpVault` and
//! Python. The wrapper only translates:
//!
//! - a refusal is the JSON-RPC error of the request (`-32011`, `-32013`, …,
//!   `data.code` the mcpvault code); nothing reaches the handler;
//! - an allowed request reaches the handler as the guard forwards it: the
//!   token taken out of `_meta` (and out of any argument equal to it), and
//!   replaced by `[mcpvault: redacted]` in the HTTP request's headers
//!   (`http::request::Parts` in the request's extensions); the verified
//!   [`AuthorizedFacts`] are in the request's extensions;
//! - `tools/list`, `resources/list`, `resources/templates/list` and
//!   `prompts/list` answers keep what the token grants (the core's filters);
//! - a single-use call's response is recorded in the [`Store`], so a retry
//!   gets it instead of a second execution.
//!
//! Over Streamable HTTP, [`McpVault::http_layer`] (a tower layer, or
//! [`McpVault::guard_http`] around rmcp's `StreamableHttpService`) decides
//! each HTTP request before rmcp reads it and answers a refusal with the
//! guard's HTTP status and headers (401 with `WWW-Authenticate: Bearer …`,
//! 403, 400, …), as `mcpvault-express` and Python's `McpVaultMiddleware`:
//!
//! ```no_run
//! # async fn run(public_key_hex: &str, handler: impl rmcp::ServerHandler + Clone) -> Result<(), Box<dyn std::error::Error>> {
//! use mcpvault_rmcp::{GuardOptions, McpVault};
//! use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
//! use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
//!
//! let vault = McpVault::new(GuardOptions::new(public_key_hex))?;
//! let v = vault.clone();
//! let service = StreamableHttpService::new(
//!     move || Ok(v.guard(handler.clone())),
//!     std::sync::Arc::new(LocalSessionManager::default()),
//!     StreamableHttpServerConfig::default(),
//! );
//! let app = axum::Router::new().nest_service("/mcp", vault.guard_http(service));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8000").await?, app).await?;
//! # Ok(()) }
//! ```
//!
//! `initialize`, `ping` and `discover` (the lifecycle, before a client can
//! present anything) and the protocol's own notifications (`initialized`,
//! `cancelled`, `progress`, `roots/list_changed`) are not guarded, as in
//! `withMcpVault`; custom notifications are. `subscriptions/listen`,
//! `skills/*` and `resources/directory/read` are not handed to the handler
//! (method not found): the guard has no grant for what they read.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};

use mcpvault::audit::{AuditEntry, AuditRecord};
use mcpvault::guard::{Check, Decision, Guard, GuardInput, Outcome};
use mcpvault::state::{StoreAnswer, StoreAsk};
#[allow(deprecated)] // logging/setLevel (SEP-2577): still served
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    CancelledNotificationParam, CompleteRequestParams, CompleteResult, CreateTaskResult,
    CustomNotification, CustomRequest, CustomResult, DiscoverResult, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, GetTaskParams, GetTaskResult,
    InitializeRequestParams, InitializeResult, InputRequiredResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, NotificationMetaObject,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, RequestMetaObject, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool, ToolsCapability,
    UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

mod layer;

pub use layer::{
    BoxError, HttpGuard, HttpLayer, HttpResponse, DEFAULT_MAX_BODY_BYTES, SESSIONS_KEPT,
    SESSIONS_PER_SUBJECT,
};
pub use mcpvault::guard::{GuardOptions, CHECK_TOOL};
pub use mcpvault::AuthorizedFacts;

/// What replaces the token wherever a handler could otherwise read it.
pub const REDACTED: &str = "[mcpvault: redacted]";
/// Verified chains the guard keeps (as `withMcpVault`'s default).
pub const DEFAULT_CACHE: usize = 1024;

/// A store: revocation, single-use spends with recorded responses, the audit
/// chain. Each `check` must be one atomic step (see `mcpvault::state`).
pub trait Store: Send + Sync + 'static {
    /// Performs `ask` atomically (a failing store answers with `error`: the
    /// request is refused).
    fn check(&self, ask: &StoreAsk) -> impl Future<Output = StoreAnswer> + Send;
    /// Records the response of the single-use call `call_key`
    /// (`{"result": …}` or `{"error": …}`), kept until `keep_until` (unix
    /// seconds), that is for `keep_for` seconds.
    fn complete(
        &self,
        call_key: &str,
        response: Value,
        keep_until: u64,
        keep_for: u64,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Appends a record to the audit chain (an error refuses the request).
    fn append_audit(&self, record: AuditRecord) -> impl Future<Output = Result<(), String>> + Send;
}

/// The core's [`mcpvault::state::MemoryStore`], shared: one process,
/// nothing kept across restarts. It keeps the newest audit entries only
/// (`mcpvault::state::MEMORY_AUDIT_KEEP` to twice it): for an audit log that
/// keeps everything, implement [`Store`] over SQLite or Redis.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore(Arc<Mutex<mcpvault::state::MemoryStore>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, mcpvault::state::MemoryStore> {
        // the store is data only: a panic elsewhere leaves it consistent
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Revokes a revocation id (`mcpvault revocation-ids` prints a token's).
    pub fn revoke(&self, id: &str) -> mcpvault::Result<()> {
        self.lock().revoke(id)
    }

    /// The audit chain, in order.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        self.lock().audit_entries().to_vec()
    }
}

impl Store for MemoryStore {
    fn check(&self, ask: &StoreAsk) -> impl Future<Output = StoreAnswer> + Send {
        std::future::ready(self.lock().check(ask))
    }

    fn complete(
        &self,
        call_key: &str,
        response: Value,
        keep_until: u64,
        _keep_for: u64,
    ) -> impl Future<Output = Result<(), String>> + Send {
        self.lock().complete(call_key, response, keep_until);
        std::future::ready(Ok(()))
    }

    fn append_audit(&self, record: AuditRecord) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(
            self.lock()
                .append_audit(record)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        )
    }
}

/// Guards of the same options, each with its own cache of verified chains: a check takes one that is free, so a
/// costly request (a token's Datalog, bounded by `max_work`; a cold chain's signatures) holds one guard, not every
/// request of the server. One per core the process may use, at most 8.
pub(crate) struct Guards {
    all: Box<[Mutex<Guard>]>,
    next: AtomicUsize,
    /// Woken when a guard is given back (a request waits for whichever is free first).
    freed: (Mutex<()>, Condvar),
}

/// A guard taken from [`Guards`]; given back when dropped.
pub(crate) struct Held<'a> {
    // fields drop in order: the guard is given back first, then a waiter is woken (it finds it free)
    guard: MutexGuard<'a, Guard>,
    _wake: Wake<'a>,
}

/// Wakes one request waiting for a guard when dropped (after the guard it follows in [`Held`]).
struct Wake<'a>(&'a (Mutex<()>, Condvar));

impl Drop for Wake<'_> {
    fn drop(&mut self) {
        // under the waiters' lock: a waiter between its tries and its wait is not missed
        let _waiting = self.0 .0.lock().unwrap_or_else(PoisonError::into_inner);
        self.0 .1.notify_one();
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.guard
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Guard {
        &mut self.guard
    }
}

impl Guards {
    fn new(options: &GuardOptions, n: usize) -> mcpvault::Result<Self> {
        let all = (0..n.max(1))
            .map(|_| Guard::new(options.clone(), DEFAULT_CACHE).map(Mutex::new))
            .collect::<mcpvault::Result<Vec<_>>>()?;
        Ok(Guards {
            all: all.into_boxed_slice(),
            next: AtomicUsize::new(0),
            freed: (Mutex::new(()), Condvar::new()),
        })
    }

    fn parallel() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }

    /// A free guard, tried in turn from the next one (so a token's chain is cached by each after its first calls);
    /// when every one is busy, the first one given back.
    fn lock(&self) -> Held<'_> {
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.all.len();
        if let Some(held) = self.try_lock(start) {
            return held;
        }
        // tried again under the waiters' lock, which a guard given back takes before waking one: no wakeup is lost
        let mut waiting = self.freed.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(held) = self.try_lock(start) {
                return held;
            }
            waiting = self
                .freed
                .1
                .wait_timeout(waiting, std::time::Duration::from_millis(100))
                .map_or_else(|p| p.into_inner().0, |(w, _)| w);
        }
    }

    fn try_lock(&self, start: usize) -> Option<Held<'_>> {
        let n = self.all.len();
        for guard in self.all.iter().cycle().skip(start).take(n) {
            let guard = match guard.try_lock() {
                Ok(g) => g,
                // the guard holds options and a cache of verified chains: a panic elsewhere leaves it consistent
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return Some(Held {
                guard,
                _wake: Wake(&self.freed),
            });
        }
        None
    }
}

/// The system clock, unix seconds (0 before 1970).
fn system_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;
type DecisionHook = Arc<dyn Fn(&Decision) + Send + Sync>;

/// The guard of a server, shared by every handler it wraps (one pool of guards, one
/// store): clone it freely.
pub struct McpVault<S = MemoryStore> {
    guard: Arc<Guards>,
    /// The same options with `defer_spend`: the HTTP layer's (revocation
    /// only; the handler's guard behind it spends single-use tokens).
    http_guard: Arc<Guards>,
    store: Option<Arc<S>>,
    clock: Clock,
    on_decision: Option<DecisionHook>,
    /// The options' `check_tool` (read without taking a guard).
    check_tool: bool,
}

impl<S> Clone for McpVault<S> {
    fn clone(&self) -> Self {
        McpVault {
            guard: self.guard.clone(),
            http_guard: self.http_guard.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
            on_decision: self.on_decision.clone(),
            check_tool: self.check_tool,
        }
    }
}

impl McpVault<MemoryStore> {
    /// A guard for `options` with a fresh [`MemoryStore`]. Refuses a bad key
    /// or policy (the core's error).
    pub fn new(options: GuardOptions) -> mcpvault::Result<Self> {
        Self::with_store(options, MemoryStore::new())
    }

    /// A guard with no store: no revocation list, no audit, and single-use
    /// tokens refused (`replayed`), since nothing can keep the promise.
    pub fn without_store(options: GuardOptions) -> mcpvault::Result<Self> {
        Self::build(options, None, Guards::parallel())
    }
}

impl<S: Store> McpVault<S> {
    /// A guard for `options` with `store`.
    pub fn with_store(options: GuardOptions, store: S) -> mcpvault::Result<Self> {
        Self::build(options, Some(store), Guards::parallel())
    }

    fn build(mut options: GuardOptions, store: Option<S>, guards: usize) -> mcpvault::Result<Self> {
        options.store = store.is_some();
        let mut http_options = options.clone();
        http_options.defer_spend = true;
        // the dry-run tool goes on to the handler's guard, which answers it (or refuses it: without check_tool
        // only an outer layer hands it on)
        http_options.check_tool = false;
        http_options.forward_proofs = true;
        // the handler's guard knows the tools' current definitions (get_tool) and checks pinned tools
        http_options.defer_pins = true;
        Ok(McpVault {
            check_tool: options.check_tool,
            http_guard: Arc::new(Guards::new(&http_options, guards)?),
            guard: Arc::new(Guards::new(&options, guards)?),
            store: store.map(Arc::new),
            clock: Arc::new(system_time),
            on_decision: None,
        })
    }

    /// Decides with this clock (unix seconds) instead of the system's.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Hands every decision (allowed or refused) to `hook`.
    pub fn on_decision(mut self, hook: impl Fn(&Decision) + Send + Sync + 'static) -> Self {
        self.on_decision = Some(Arc::new(hook));
        self
    }

    /// The store, if any.
    pub fn store(&self) -> Option<&S> {
        self.store.as_deref()
    }

    /// `handler`, guarded.
    pub fn guard<H: ServerHandler>(&self, handler: H) -> Guarded<H, S> {
        Guarded {
            inner: handler,
            vault: self.clone(),
        }
    }

    fn lock(&self) -> Held<'_> {
        self.guard.lock()
    }

    fn check_tool(&self) -> bool {
        self.check_tool
    }

    /// Runs one JSON-RPC `message` (with the HTTP request's `headers` and
    /// method, when it came over HTTP) through the core guard and the store:
    /// the check, the store's atomic step, the audit records.
    pub async fn decide(
        &self,
        message: &Value,
        headers: BTreeMap<String, String>,
        http_method: Option<String>,
    ) -> Outcome {
        let input = GuardInput {
            http_method,
            headers,
            body: Some(message.to_string()),
            ..GuardInput::default()
        };
        self.decide_with(&self.guard, &input).await
    }

    /// Runs `input` through `guard` (this vault's message guard or its HTTP
    /// guard) and the store.
    pub(crate) async fn decide_with(&self, guard: &Guards, input: &GuardInput) -> Outcome {
        self.decide_lazy(guard, input, None).await
    }

    /// [`Self::decide_with`], reading the tool definitions (`definitions`) only when the guard says a pinned call
    /// of a valid token needs them: then the request is checked again with them (nothing was done yet).
    async fn decide_lazy(
        &self,
        guard: &Guards,
        input: &GuardInput,
        definitions: Option<&Definitions<'_>>,
    ) -> Outcome {
        let now = (self.clock)();
        let mut step = guard.lock().check(input, now);
        let needs = match &step {
            Check::Done { outcome } => outcome.needs_tool_definitions,
            Check::Ask {
                needs_tool_definitions,
                ..
            } => *needs_tool_definitions,
        };
        if let (true, Some(read)) = (needs, definitions) {
            let with = GuardInput {
                tool_definitions: Some(read()),
                ..input.clone()
            };
            step = guard.lock().check(&with, now);
        }
        let mut outcome = match step {
            Check::Done { outcome } => *outcome,
            Check::Ask { ask, pending, .. } => {
                let answer = match &self.store {
                    Some(store) => store.check(&ask).await,
                    None => StoreAnswer {
                        error: Some("no store is attached".into()),
                        ..StoreAnswer::default()
                    },
                };
                guard.lock().resume(*pending, &answer)
            }
        };
        if let Some(store) = &self.store {
            for record in outcome.audit.clone() {
                if let Err(e) = store.append_audit(record).await {
                    let failed = guard.lock().audit_failed(outcome, &e);
                    outcome = failed;
                    break;
                }
            }
        }
        if let Some(hook) = &self.on_decision {
            for d in &outcome.decisions {
                hook(d);
            }
        }
        outcome
    }

    /// Records the handler's response of an allowed single-use call.
    async fn complete(&self, outcome: &Outcome, response: Value) {
        let (Some(store), Some(key)) = (&self.store, &outcome.call_key) else {
            return;
        };
        let until = outcome.keep_until.unwrap_or(0);
        let keep_for = outcome.keep_for.unwrap_or(0);
        if let Err(e) = store.complete(key, response, until, keep_for).await {
            // the call ran; a retry is told in_flight instead of getting this response
            eprintln!("mcpvault: recording a response failed: {e}");
        }
    }

    /// Decides a request before its handler: refused (the error), answered by
    /// the guard, or to run with the forwarded params (the token stripped,
    /// `context` updated).
    async fn admit(
        &self,
        method: &str,
        params: Option<Value>,
        context: &mut RequestContext<RoleServer>,
        definitions: Option<&Definitions<'_>>,
    ) -> Result<Admitted, ErrorData> {
        let message = message_of(
            method,
            Some(serde_json::to_value(&context.id).map_err(internal)?),
            params,
            &context.meta.0 .0,
        )?;
        let parts = context.extensions.get::<http::request::Parts>();
        let headers = parts.map(headers_of).unwrap_or_default();
        let http_method = parts.map(|p| p.method.to_string());
        let input = GuardInput {
            http_method,
            headers,
            body: Some(message.to_string()),
            ..GuardInput::default()
        };
        let outcome = self.decide_lazy(&self.guard, &input, definitions).await;
        if !outcome.allowed {
            return Err(refusal(&outcome));
        }
        if let Some(answer) = outcome.answers.first() {
            return match answer.get("error") {
                Some(e) => Err(error_data(e)),
                None => Ok(Admitted::Answer(
                    answer.get("result").cloned().unwrap_or(Value::Null),
                )),
            };
        }
        let Some(facts) = outcome.facts.clone() else {
            return Err(internal("an allowed request without facts"));
        };
        let (params, meta) = split_meta(outcome.forward.as_ref())?;
        context.meta = meta;
        if let Some(parts) = context.extensions.get_mut::<http::request::Parts>() {
            if let Some(token) = outcome.token.as_deref() {
                redact_headers(&mut parts.headers, token);
            }
            redact_credentials(&mut parts.headers);
        }
        context.extensions.insert(facts);
        Ok(Admitted::Run {
            params,
            outcome: Box::new(outcome),
        })
    }

    /// After the handler: its response recorded (single use), and a list
    /// answer filtered to what the token grants.
    async fn finish<R: Reply>(
        &self,
        method: &str,
        outcome: &Outcome,
        first_page: bool,
        result: Result<R, ErrorData>,
    ) -> Result<R, ErrorData> {
        self.complete(outcome, response_of(result.as_ref().map(Reply::to_json)))
            .await;
        let result = result?;
        // the core's one list rule (tools by name or through a mapped scope, the dry-run tool, resources,
        // templates, prompts), by this guard's options
        if !mcpvault::guard::LIST_METHODS.contains(&method) {
            return Ok(result);
        }
        let filtered = self.lock().filter(
            method,
            &result.to_json(),
            outcome.facts.as_ref(),
            first_page,
        );
        R::from_json(filtered)
    }

    /// A request whose params and result are plain JSON types: decided, run
    /// by `run` with the forwarded params, finished.
    async fn guarded<P, R, F, Fut>(
        &self,
        method: &str,
        params: Option<P>,
        context: RequestContext<RoleServer>,
        run: F,
    ) -> Result<R, ErrorData>
    where
        P: Serialize + DeserializeOwned,
        R: Reply,
        F: FnOnce(Option<P>, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<R, ErrorData>>,
    {
        self.guarded_with(method, params, context, None, run).await
    }

    /// [`Self::guarded`] with the handler's tool definitions, read when a pinned call needs them.
    async fn guarded_with<P, R, F, Fut>(
        &self,
        method: &str,
        params: Option<P>,
        mut context: RequestContext<RoleServer>,
        definitions: Option<&Definitions<'_>>,
        run: F,
    ) -> Result<R, ErrorData>
    where
        P: Serialize + DeserializeOwned,
        R: Reply,
        F: FnOnce(Option<P>, RequestContext<RoleServer>) -> Fut,
        Fut: Future<Output = Result<R, ErrorData>>,
    {
        let had_params = params.is_some();
        let json = params.as_ref().map(to_json);
        match self.admit(method, json, &mut context, definitions).await? {
            Admitted::Answer(v) => R::from_json(v),
            Admitted::Run { params, outcome } => {
                let first_page = params
                    .as_ref()
                    .and_then(|p| p.get("cursor"))
                    .is_none_or(Value::is_null);
                let params = match params {
                    None if !had_params => None,
                    p => Some(
                        serde_json::from_value(Value::Object(p.unwrap_or_default()))
                            .map_err(invalid_params)?,
                    ),
                };
                let result = run(params, context).await;
                self.finish(method, &outcome, first_page, result).await
            }
        }
    }
}

/// Reads the hashes of the handler's current tool definitions, by name, for a call whose token pins its tool.
type Definitions<'a> = dyn Fn() -> BTreeMap<String, String> + Send + Sync + 'a;

/// What the guard made of a request.
enum Admitted {
    /// The guard's own answer (the dry run, a single-use retry's recorded
    /// response): the JSON-RPC result.
    Answer(Value),
    /// Run the handler with these params (no `_meta`: that is in the context).
    Run {
        params: Option<Map<String, Value>>,
        outcome: Box<Outcome>,
    },
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("mcpvault: {e}"), None)
}

fn invalid_params(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::invalid_params(e.to_string(), None)
}

/// A JSON-RPC error object as rmcp's error.
fn error_data(e: &Value) -> ErrorData {
    let code = e
        .get("code")
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(ErrorCode::INTERNAL_ERROR.0);
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("internal error")
        .to_string();
    ErrorData::new(ErrorCode(code), message, e.get("data").cloned())
}

/// The JSON-RPC error of a refused outcome.
fn refusal(outcome: &Outcome) -> ErrorData {
    match outcome.response.as_ref().and_then(|r| r.get("error")) {
        Some(e) => error_data(e),
        None => ErrorData::internal_error("internal error", None),
    }
}

/// The response to record for a handler's result.
fn response_of(result: Result<Value, &ErrorData>) -> Value {
    match result {
        Ok(v) => json!({ "result": v }),
        Err(e) => json!({ "error": to_json(e) }),
    }
}

/// The JSON-RPC message the client sent: rmcp hands handlers the params
/// without their `_meta`, which it keeps in the context.
fn message_of(
    method: &str,
    id: Option<Value>,
    params: Option<Value>,
    meta: &Map<String, Value>,
) -> Result<Value, ErrorData> {
    let mut params = match params {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        // rmcp hands handlers params as an object (MCP's params are one); typed as the guard's refusals are
        Some(_) => {
            return Err(ErrorData::invalid_request(
                "invalid request: params must be an object",
                Some(json!({"code": "invalid_request", "status": 400})),
            ))
        }
    };
    if !meta.is_empty() {
        let p = params.get_or_insert_with(Map::new);
        let mut merged = match p.remove("_meta") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        merged.extend(meta.iter().map(|(k, v)| (k.clone(), v.clone())));
        p.insert("_meta".into(), Value::Object(merged));
    }
    let mut m = Map::new();
    m.insert("jsonrpc".into(), json!("2.0"));
    if let Some(id) = id {
        m.insert("id".into(), id);
    }
    m.insert("method".into(), json!(method));
    if let Some(p) = params {
        m.insert("params".into(), Value::Object(p));
    }
    Ok(Value::Object(m))
}

/// The forwarded message's params without `_meta`, and its `_meta`.
fn split_meta(
    forward: Option<&Value>,
) -> Result<(Option<Map<String, Value>>, RequestMetaObject), ErrorData> {
    let mut params = match forward.and_then(|f| f.get("params")) {
        Some(Value::Object(p)) => Some(p.clone()),
        _ => None,
    };
    let meta = match params.as_mut().and_then(|p| p.remove("_meta")) {
        Some(m) => serde_json::from_value(m).map_err(invalid_params)?,
        None => RequestMetaObject::default(),
    };
    Ok((params.filter(|p| !p.is_empty()), meta))
}

/// The headers the guard reads, from the HTTP request: a header sent more
/// than once is its values joined by `", "` (as Node joins them), so the
/// guard sees every one (two tokens are refused); every byte is read as its
/// Latin-1 character, as Node and the Python hosts read header bytes (a
/// value that is not ASCII is still presented, never "no credential").
fn headers_of(parts: &http::request::Parts) -> BTreeMap<String, String> {
    header_map(&parts.headers)
}

/// [`headers_of`] for a header map.
fn header_map(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let v: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        out.entry(name.as_str().to_string())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

/// The proof, approval and token headers replaced whole by [`REDACTED`]:
/// they were the request's to spend or present, and the handler sees none of
/// them (as Node and Python).
fn redact_credentials(headers: &mut http::HeaderMap) {
    for name in [
        mcpvault::guard::PROOF_HEADER,
        mcpvault::guard::APPROVAL_HEADER,
        mcpvault::guard::TOKEN_HEADER,
    ] {
        if headers.contains_key(name) {
            // every value of it (`insert` replaces them all)
            headers.insert(name, http::HeaderValue::from_static(REDACTED));
        }
    }
}

/// What a path the guard does not decide (the lifecycle, the protocol's own
/// notifications) hands the handler: the HTTP request's parts with every
/// header that carries a credential replaced (each `X-MCPVault-Token`,
/// proof and approval value whole, each `Authorization` value's credential:
/// however many the client sent, and without searching other headers for
/// text the client chose), and a `_meta` without the token, the proof or the
/// approvals.
fn scrub(extensions: &mut rmcp::model::Extensions, meta: &mut serde_json::Map<String, Value>) {
    if let Some(parts) = extensions.get_mut::<http::request::Parts>() {
        redact_credentials(&mut parts.headers);
        let carried: Vec<http::HeaderValue> = parts
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(|v| {
                let bearer = v
                    .as_bytes()
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"bearer "));
                if bearer {
                    http::HeaderValue::from_str(&format!("Bearer {REDACTED}"))
                        .unwrap_or(http::HeaderValue::from_static(REDACTED))
                } else {
                    http::HeaderValue::from_static(REDACTED)
                }
            })
            .collect();
        if !carried.is_empty() {
            parts.headers.remove(http::header::AUTHORIZATION);
            for v in carried {
                parts.headers.append(http::header::AUTHORIZATION, v);
            }
        }
    }
    for key in mcpvault::guard::META_KEYS.into_iter().chain([
        mcpvault::guard::PROOF_META_KEY,
        mcpvault::guard::APPROVALS_META_KEY,
    ]) {
        meta.remove(key);
    }
}

/// Every header value holding `token` with it replaced by [`REDACTED`].
fn redact_headers(headers: &mut http::HeaderMap, token: &str) {
    let needle = token.as_bytes();
    if needle.is_empty() {
        return;
    }
    for value in headers.values_mut() {
        // on the bytes: a value with bytes that are not ASCII may hold the token too
        let bytes = value.as_bytes();
        if !bytes.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
            out.extend_from_slice(rest.get(..at).unwrap_or_default());
            out.extend_from_slice(REDACTED.as_bytes());
            rest = rest.get(at + needle.len()..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        *value =
            http::HeaderValue::from_bytes(&out).unwrap_or(http::HeaderValue::from_static(REDACTED));
    }
}

/// A [`ServerHandler`] whose every request is decided by the mcpvault guard
/// before `H` sees it (see the crate's documentation).
pub struct Guarded<H, S = MemoryStore> {
    inner: H,
    vault: McpVault<S>,
}

impl<H, S> Guarded<H, S> {
    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H: ServerHandler, S: Store> Guarded<H, S> {
    /// `info` advertising tools when the dry-run tool is on.
    fn with_check_tool(&self, mut info: ServerConfig) -> ServerConfig {
        if self.vault.check_tool() && info.capabilities.tools.is_none() {
            info.capabilities.tools = Some(ToolsCapability::default());
        }
        info
    }
}

/// A handler's result as JSON (to record it, to filter a list) and back
/// (the guard's own answers, a filtered list).
trait Reply: Sized {
    fn to_json(&self) -> Value;
    fn from_json(v: Value) -> Result<Self, ErrorData>;
}

macro_rules! serde_reply {
    ($($t:ty),*) => {$(
        impl Reply for $t {
            fn to_json(&self) -> Value {
                to_json(self)
            }
            fn from_json(v: Value) -> Result<Self, ErrorData> {
                serde_json::from_value(v).map_err(internal)
            }
        }
    )*};
}

serde_reply!(
    (),
    CompleteResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    ListToolsResult,
    GetTaskResult,
    CustomResult
);

/// The responses with an intermediate result (MRTR, tasks): a recorded
/// response (a retry's) is read back as what it was, by its `resultType`
/// (each variant's type takes only its own).
macro_rules! response_reply {
    ($t:ident, $($variant:ident($inner:ty)),*) => {
        impl Reply for $t {
            fn to_json(&self) -> Value {
                match self {
                    $($t::$variant(x) => to_json(x),)*
                    #[allow(unreachable_patterns)]
                    _ => Value::Null,
                }
            }
            fn from_json(v: Value) -> Result<Self, ErrorData> {
                let mut errors = Vec::new();
                $(
                    match serde_json::from_value::<$inner>(v.clone()) {
                        Ok(x) => return Ok($t::$variant(x)),
                        Err(e) => errors.push(e.to_string()),
                    }
                )*
                Err(internal(errors.join("; ")))
            }
        }
    };
}

response_reply!(
    CallToolResponse,
    Complete(CallToolResult),
    InputRequired(InputRequiredResult),
    Task(CreateTaskResult)
);
response_reply!(
    GetPromptResponse,
    Complete(GetPromptResult),
    InputRequired(InputRequiredResult)
);
response_reply!(
    ReadResourceResponse,
    Complete(ReadResourceResult),
    InputRequired(InputRequiredResult)
);

#[allow(deprecated)]
impl<H: ServerHandler, S: Store> ServerHandler for Guarded<H, S> {
    // the lifecycle: not guarded (nothing can carry a token yet)
    async fn ping(&self, mut context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.ping(context).await
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        let result = self.inner.initialize(request, context).await?;
        Ok(self.with_check_tool(result))
    }

    fn negotiate_initialize(
        &self,
        request: &InitializeRequestParams,
    ) -> Result<InitializeResult, ErrorData> {
        let result = self.inner.negotiate_initialize(request)?;
        Ok(self.with_check_tool(result))
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    async fn discover(
        &self,
        mut context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.discover(context).await
    }

    fn get_info(&self) -> ServerConfig {
        self.with_check_tool(self.inner.get_info())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        if name == CHECK_TOOL {
            return None;
        }
        self.inner.get_tool(name)
    }

    // every other request: decided by the guard first
    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.vault
            .guarded(
                "completion/complete",
                Some(request),
                context,
                |p, c| async {
                    match p {
                        Some(p) => self.inner.complete(p, c).await,
                        None => Err(invalid_params("no params")),
                    }
                },
            )
            .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.vault
            .guarded("logging/setLevel", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.set_level(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.vault
            .guarded("prompts/get", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.get_prompt(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.vault
            .guarded("prompts/list", request, context, |p, c| {
                self.inner.list_prompts(p, c)
            })
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.vault
            .guarded("resources/list", request, context, |p, c| {
                self.inner.list_resources(p, c)
            })
            .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.vault
            .guarded("resources/templates/list", request, context, |p, c| {
                self.inner.list_resource_templates(p, c)
            })
            .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.vault
            .guarded("resources/read", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.read_resource(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    /// `subscriptions/listen` is not offered: its filter is accepted before
    /// any request context exists, so the guard could not decide it.
    fn accepted_subscription_filter(
        &self,
        _requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        None
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.vault
            .guarded(
                "resources/subscribe",
                Some(request),
                context,
                |p, c| async {
                    match p {
                        Some(p) => self.inner.subscribe(p, c).await,
                        None => Err(invalid_params("no params")),
                    }
                },
            )
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.vault
            .guarded(
                "resources/unsubscribe",
                Some(request),
                context,
                |p, c| async {
                    match p {
                        Some(p) => self.inner.unsubscribe(p, c).await,
                        None => Err(invalid_params("no params")),
                    }
                },
            )
            .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // what the handler says the tool is now (`get_tool`; `#[tool_handler]` implements it), read only when the
        // token pins it: a pinned grant calls it only as it was pinned. The dry-run tool asks about another tool.
        let mut names = vec![request.name.to_string()];
        if request.name == CHECK_TOOL {
            names.extend(
                request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("tool"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            );
        }
        let inner = &self.inner;
        let definitions = move || {
            names
                .iter()
                .filter_map(|n| {
                    let tool = inner.get_tool(n)?;
                    let hash = mcpvault::pin::tool_hash(&to_json(&tool)).ok()?;
                    Some((n.clone(), hash))
                })
                .collect()
        };
        self.vault
            .guarded_with(
                "tools/call",
                Some(request),
                context,
                Some(&definitions),
                |p, c| async {
                    match p {
                        Some(p) => self.inner.call_tool(p, c).await,
                        None => Err(invalid_params("no params")),
                    }
                },
            )
            .await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // a server with no tools still lists the dry-run tool when it is on
        let has_tools = self.inner.get_info().capabilities.tools.is_some();
        self.vault
            .guarded("tools/list", request, context, |p, c| async move {
                if has_tools {
                    self.inner.list_tools(p, c).await
                } else {
                    Ok(ListToolsResult::default())
                }
            })
            .await
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let CustomRequest { method, params, .. } = request;
        match self
            .vault
            .admit(&method, params, &mut context, None)
            .await?
        {
            Admitted::Answer(v) => Ok(CustomResult(v)),
            Admitted::Run { params, outcome } => {
                let params = params.map(Value::Object);
                let result = self
                    .inner
                    .on_custom_request(CustomRequest::new(method.clone(), params), context)
                    .await;
                self.vault.finish(&method, &outcome, true, result).await
            }
        }
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.vault
            .guarded("tasks/get", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.get_task(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.vault
            .guarded("tasks/update", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.update_task(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.vault
            .guarded("tasks/cancel", Some(request), context, |p, c| async {
                match p {
                    Some(p) => self.inner.cancel_task(p, c).await,
                    None => Err(invalid_params("no params")),
                }
            })
            .await
    }

    // the protocol's own notifications pass (as in withMcpVault)
    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        mut context: NotificationContext<RoleServer>,
    ) {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.on_cancelled(notification, context).await
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        mut context: NotificationContext<RoleServer>,
    ) {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.on_progress(notification, context).await
    }

    async fn on_initialized(&self, mut context: NotificationContext<RoleServer>) {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.on_initialized(context).await
    }

    async fn on_roots_list_changed(&self, mut context: NotificationContext<RoleServer>) {
        scrub(&mut context.extensions, &mut context.meta.0 .0);
        self.inner.on_roots_list_changed(context).await
    }

    /// A custom notification is decided like a request; a refused one is
    /// dropped (and audited when a store is attached).
    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        mut context: NotificationContext<RoleServer>,
    ) {
        let CustomNotification { method, params, .. } = notification;
        let Ok(message) = message_of(&method, None, params, &context.meta.0 .0) else {
            return;
        };
        let parts = context.extensions.get::<http::request::Parts>();
        let headers = parts.map(headers_of).unwrap_or_default();
        let http_method = parts.map(|p| p.method.to_string());
        let outcome = self.vault.decide(&message, headers, http_method).await;
        if !outcome.allowed {
            return;
        }
        let Ok((params, meta)) = split_meta(outcome.forward.as_ref()) else {
            return;
        };
        let Ok(meta) = serde_json::from_value::<NotificationMetaObject>(to_json(&meta)) else {
            return;
        };
        context.meta = meta;
        if let Some(parts) = context.extensions.get_mut::<http::request::Parts>() {
            if let Some(token) = outcome.token.as_deref() {
                redact_headers(&mut parts.headers, token);
            }
            redact_credentials(&mut parts.headers);
        }
        if let Some(facts) = outcome.facts {
            context.extensions.insert(facts);
        }
        let notification = CustomNotification::new(method, params.map(Value::Object));
        self.inner
            .on_custom_notification(notification, context)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scrub_replaces_every_credential_header_and_nothing_else() {
        let (mut parts, ()) = http::Request::builder()
            .header("x-mcpvault-token", "tok-one")
            .header("x-mcpvault-token", "tok-two")
            .header("authorization", "Bearer tok-three")
            .header("authorization", "Basic dXNlcg==")
            .header("x-mcpvault-proof", "proof")
            .header("x-mcpvault-approval", "approval")
            .header("host", "example.test")
            .header("x-forwarded-for", "10.0.0.1")
            .body(())
            .unwrap()
            .into_parts();
        parts
            .headers
            .insert("x-note", http::HeaderValue::from_static("e"));
        let mut extensions = rmcp::model::Extensions::new();
        extensions.insert(parts);
        let mut meta = serde_json::Map::new();
        for k in [
            "token",
            "mcpvault/token",
            "mcpvault/proof",
            "mcpvault/approvals",
            "traceparent",
        ] {
            meta.insert(k.into(), json!("x"));
        }
        scrub(&mut extensions, &mut meta);
        let parts = extensions.get::<http::request::Parts>().unwrap();
        let all = |name: &str| -> Vec<&str> {
            parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect()
        };
        let bearer = format!("Bearer {REDACTED}");
        assert_eq!(all("x-mcpvault-token"), [REDACTED]);
        assert_eq!(all("authorization"), [bearer.as_str(), REDACTED]);
        assert_eq!(all("x-mcpvault-proof"), [REDACTED]);
        assert_eq!(all("x-mcpvault-approval"), [REDACTED]);
        // what the client chose is not searched for elsewhere: other headers stay as they came
        assert_eq!(all("host"), ["example.test"]);
        assert_eq!(all("x-forwarded-for"), ["10.0.0.1"]);
        assert_eq!(all("x-note"), ["e"]);
        assert_eq!(meta.keys().collect::<Vec<_>>(), ["traceparent"]);
    }

    #[test]
    fn a_recorded_intermediate_response_reads_back_as_what_it_was() {
        // a retry of a single-use call is answered with its recorded response: a task or an input request too
        let task = rmcp::model::Task::new(
            "t-1",
            rmcp::model::TaskStatus::Working,
            "2026-12-01T00:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        let sent = CallToolResponse::Task(CreateTaskResult::new(task));
        let back = CallToolResponse::from_json(sent.to_json()).unwrap();
        assert!(matches!(back, CallToolResponse::Task(ref t) if t.task.task_id == "t-1"));
        let ask = InputRequiredResult::new(None, Some("state-1".into()));
        for sent in [
            CallToolResponse::InputRequired(ask.clone()),
            CallToolResponse::Complete(CallToolResult::success(Vec::new())),
        ] {
            let json = sent.to_json();
            assert_eq!(
                CallToolResponse::from_json(json.clone()).unwrap().to_json(),
                json
            );
        }
        let prompt = GetPromptResponse::InputRequired(ask);
        assert_eq!(
            GetPromptResponse::from_json(prompt.to_json())
                .unwrap()
                .to_json(),
            prompt.to_json()
        );
        // what none of them is: an internal error, never a panic
        assert!(CallToolResponse::from_json(json!({"resultType": "other"})).is_err());
    }

    #[test]
    fn the_message_is_rebuilt_with_its_meta() {
        let meta = json!({"token": "T", "progressToken": 1});
        let m = message_of(
            "tools/call",
            Some(json!(7)),
            Some(json!({"name": "x", "_meta": {"a": 1}})),
            meta.as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(
            m,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "x", "_meta": {"a": 1, "token": "T", "progressToken": 1}}})
        );
        let none = message_of("tools/list", Some(json!("a")), None, &Map::new()).unwrap();
        assert_eq!(
            none,
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"})
        );
        assert!(message_of("x", None, Some(json!([1])), &Map::new()).is_err());
    }

    #[test]
    fn meta_is_split_from_the_forwarded_params() {
        let fwd = json!({"params": {"name": "x", "_meta": {"progressToken": 1}}});
        let (p, meta) = split_meta(Some(&fwd)).unwrap();
        assert_eq!(Value::Object(p.unwrap()), json!({"name": "x"}));
        assert_eq!(to_json(&meta), json!({"progressToken": 1}));
        let (p, _) = split_meta(Some(&json!({"params": {"_meta": {}}}))).unwrap();
        assert!(p.is_none());
    }

    #[test]
    fn a_busy_guard_holds_no_other_request() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let keys = mcpvault::keygen(&mut rng);
        let now = system_time();
        let grant = mcpvault::Grant::new(["db_query"], 600, "auth-server", "agent-a");
        let token = mcpvault::mint(&keys.private_key, &grant, now, &mut rng).unwrap();
        let vault = McpVault::build(
            GuardOptions::new(keys.public_key.clone()),
            Some(MemoryStore::new()),
            2,
        )
        .unwrap();
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {"token": token}}});
        // a request decided on a thread of its own; its outcome (allowed?) comes back on the channel
        let ask = |vault: &McpVault| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (vault, list) = (vault.clone(), list.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let outcome = rt.block_on(vault.decide(&list, BTreeMap::new(), None));
                let _ = tx.send(outcome.allowed);
            });
            rx
        };
        let wait = std::time::Duration::from_secs(30);
        // one guard busy (a costly token's check, say): another request is decided by the other one
        let busy = vault.guard.lock();
        assert_eq!(ask(&vault).recv_timeout(wait), Ok(true));
        // both busy: a request waits for one, and is decided once it is free
        let both = vault.guard.lock();
        let waiting = ask(&vault);
        assert!(waiting
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        drop(busy);
        assert_eq!(waiting.recv_timeout(wait), Ok(true));
        drop(both);
    }

    #[test]
    fn headers_are_redacted() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer TOK"),
        );
        h.insert("x-other", http::HeaderValue::from_static("keep"));
        redact_headers(&mut h, "TOK");
        assert_eq!(
            h.get("authorization").unwrap(),
            "Bearer [mcpvault: redacted]"
        );
        assert_eq!(h.get("x-other").unwrap(), "keep");
        // a value with bytes that are not ASCII, holding the token twice
        h.insert(
            "x-copy",
            http::HeaderValue::from_bytes(b"\xe9TOK;TOK\xff").unwrap(),
        );
        redact_headers(&mut h, "TOK");
        assert_eq!(
            h.get("x-copy").unwrap().as_bytes(),
            b"\xe9[mcpvault: redacted];[mcpvault: redacted]\xff"
        );
    }
}
