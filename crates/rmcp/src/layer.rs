//! The HTTP layer: refusals as HTTP answers over Streamable HTTP.
//!
//! [`McpVault::http_layer`] is a tower [`Layer`] for rmcp's
//! `StreamableHttpService` (or any HTTP service taking a body that can be
//! built from [`Bytes`], such as axum's). Each HTTP request is read (up to
//! [`HttpLayer::max_body_bytes`]) and decided by the core guard on its
//! method, headers and JSON-RPC body, as `mcpvault-express` and Python's
//! `McpVaultMiddleware` decide it: a refused request is answered here with
//! the guard's HTTP status (401 no, malformed, expired or foreign token; 403
//! a call the token does not allow; 400, 409, 429, 500), its headers
//! (`WWW-Authenticate: Bearer …`, `Retry-After`) and its JSON-RPC error
//! body, and never reaches the service. An allowed request goes on as it
//! came (its body unchanged), to the [`crate::Guarded`] handler behind it,
//! which decides each message again and spends single-use tokens: this
//! layer's guard checks revocation but spends nothing.
//!
//! The layer keeps the MCP sessions it saw opened (the core's session book,
//! SCHEMA.md "Sessions"): a session is its opener's subject, bound from the
//! session id of a successful `initialize` answer (never from an id a
//! client names); a request naming it with another subject's token is
//! `session_mismatch` (403), one naming a session the layer does not keep is
//! 404 `invalid_request`, and a successful `DELETE` forgets it. The newest
//! [`SESSIONS_KEPT`] are kept, at most [`SESSIONS_PER_SUBJECT`] of one
//! subject.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use mcpvault::guard::{BodyError, GuardInput, Outcome};
use tower_layer::Layer;
use tower_service::Service;

use crate::{header_map, McpVault, MemoryStore, Store};

/// The largest body the layer reads (as `mcpvault-express` and Python): a
/// larger one is refused (400 `invalid_request`, `Connection: close`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The MCP sessions an HTTP layer keeps at most (the oldest forgotten first:
/// a request naming one then gets 404, and its client opens another).
pub const SESSIONS_KEPT: usize = 10_000;

/// Of them, at most this many of one subject: a subject holding this many
/// loses its own oldest, so its further `initialize`s push out no other
/// subject's session.
pub const SESSIONS_PER_SUBJECT: usize = 1_000;

/// The sessions a layer saw opened: each one's subject, oldest first.
#[derive(Default)]
struct Sessions {
    subjects: HashMap<String, (String, u64)>,
    order: BTreeMap<u64, String>,
    /// Each subject's sessions (their places in `order`), oldest first.
    by_subject: HashMap<String, BTreeSet<u64>>,
    next: u64,
}

impl Sessions {
    fn subject(&self, id: &str) -> Option<String> {
        self.subjects.get(id).map(|(s, _)| s.clone())
    }

    fn bind(&mut self, id: &str, subject: &str) {
        self.forget(id);
        // a subject at its most sessions loses its own oldest; else a full book, the oldest of all
        let own = self
            .by_subject
            .get(subject)
            .filter(|o| o.len() >= SESSIONS_PER_SUBJECT);
        let evict = match own.and_then(BTreeSet::first) {
            Some(seq) => self.order.get(seq).cloned(),
            None if self.subjects.len() >= SESSIONS_KEPT => self.order.values().next().cloned(),
            None => None,
        };
        if let Some(oldest) = evict {
            self.forget(&oldest);
        }
        self.next += 1;
        self.order.insert(self.next, id.to_string());
        self.subjects
            .insert(id.to_string(), (subject.to_string(), self.next));
        self.by_subject
            .entry(subject.to_string())
            .or_default()
            .insert(self.next);
    }

    fn forget(&mut self, id: &str) {
        if let Some((subject, seq)) = self.subjects.remove(id) {
            self.order.remove(&seq);
            if let Some(own) = self.by_subject.get_mut(&subject) {
                own.remove(&seq);
                if own.is_empty() {
                    self.by_subject.remove(&subject);
                }
            }
        }
    }
}

/// The layer's sessions, shared by its services.
type Book = Arc<Mutex<Sessions>>;

fn book(b: &Book) -> std::sync::MutexGuard<'_, Sessions> {
    // a panic elsewhere while the lock was held leaves a map that is still whole
    b.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The session a request or an answer names (`Mcp-Session-Id`), if any.
fn session_of(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An error of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The responses of an [`HttpGuard`]: the service's, or a refusal.
pub type HttpResponse = http::Response<UnsyncBoxBody<Bytes, BoxError>>;

/// A tower [`Layer`] that answers refused HTTP requests with the guard's
/// status and headers (see the [module](self)). Made by
/// [`McpVault::http_layer`].
pub struct HttpLayer<S = MemoryStore> {
    vault: McpVault<S>,
    max_body_bytes: usize,
    sessions: Book,
}

impl<S> Clone for HttpLayer<S> {
    fn clone(&self) -> Self {
        HttpLayer {
            vault: self.vault.clone(),
            max_body_bytes: self.max_body_bytes,
            sessions: self.sessions.clone(),
        }
    }
}

impl<S> HttpLayer<S> {
    /// Refuses bodies over `bytes` (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }
}

impl<S: Store> McpVault<S> {
    /// A tower layer deciding every HTTP request before `service` (rmcp's
    /// `StreamableHttpService` serving [`McpVault::guard`]ed handlers):
    /// refusals are HTTP answers with the status and `WWW-Authenticate` of
    /// `mcpvault-express`, not JSON-RPC errors inside a 200.
    pub fn http_layer(&self) -> HttpLayer<S> {
        HttpLayer {
            vault: self.clone(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            sessions: Book::default(),
        }
    }

    /// `service` behind [`McpVault::http_layer`].
    pub fn guard_http<T>(&self, service: T) -> HttpGuard<T, S> {
        self.http_layer().layer(service)
    }
}

impl<T, S> Layer<T> for HttpLayer<S> {
    type Service = HttpGuard<T, S>;

    fn layer(&self, inner: T) -> HttpGuard<T, S> {
        HttpGuard {
            inner,
            vault: self.vault.clone(),
            max_body_bytes: self.max_body_bytes,
            sessions: self.sessions.clone(),
        }
    }
}

/// `T` behind the HTTP layer (see the [module](self)).
pub struct HttpGuard<T, S = MemoryStore> {
    inner: T,
    vault: McpVault<S>,
    max_body_bytes: usize,
    sessions: Book,
}

impl<T: Clone, S> Clone for HttpGuard<T, S> {
    fn clone(&self) -> Self {
        HttpGuard {
            inner: self.inner.clone(),
            vault: self.vault.clone(),
            max_body_bytes: self.max_body_bytes,
            sessions: self.sessions.clone(),
        }
    }
}

impl<T, S, B, R> Service<http::Request<B>> for HttpGuard<T, S>
where
    T: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    T::Future: Send + 'static,
    S: Store,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    R: Body<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = HttpResponse;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, T::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), T::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // the service made ready by poll_ready goes with this request (tower's clone-and-swap)
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let vault = self.vault.clone();
        let max = self.max_body_bytes;
        let sessions = self.sessions.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = read(body, max).await;
            let subject = session_of(&parts.headers).and_then(|id| book(&sessions).subject(&id));
            let outcome = vault.decide_http(&parts, &body, subject).await;
            if !outcome.allowed {
                return Ok(refusal(&outcome, matches!(body, Err(BodyError::TooLarge))));
            }
            let bytes = body.unwrap_or_default();
            let response = inner
                .call(http::Request::from_parts(parts, B::from(bytes)))
                .await?;
            // what the core said to keep or forget, once the server's answer succeeds
            if response.status().as_u16() < 300 {
                if let (Some(subject), Some(id)) =
                    (&outcome.opens_session, session_of(response.headers()))
                {
                    book(&sessions).bind(&id, subject);
                }
                if let Some(id) = &outcome.ends_session {
                    book(&sessions).forget(id);
                }
            }
            Ok(response.map(|b| b.map_err(Into::into).boxed_unsync()))
        })
    }
}

impl<S: Store> McpVault<S> {
    /// The HTTP guard's outcome for a request (its body read, or why not), in
    /// the session of `session_subject` when the layer keeps the one it names.
    async fn decide_http(
        &self,
        parts: &http::request::Parts,
        body: &Result<Bytes, BodyError>,
        session_subject: Option<String>,
    ) -> Outcome {
        let mut input = GuardInput {
            http_method: Some(parts.method.to_string()),
            headers: header_map(&parts.headers),
            session_book: true,
            session_subject,
            ..GuardInput::default()
        };
        match body {
            Ok(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) if !text.trim().is_empty() => input.body = Some(text.to_string()),
                Ok(_) => {}
                Err(_) => input.body_error = Some(BodyError::NotUtf8),
            },
            Err(e) => input.body_error = Some(*e),
        }
        self.decide_with(&self.http_guard, &input).await
    }
}

/// The whole body, at most `max` bytes.
async fn read<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        // the client went away or sent a broken body: nothing usable was read
        Err(_) => Err(BodyError::NotJson),
    }
}

/// The HTTP answer of a refused outcome: the guard's status, headers and
/// JSON-RPC error.
fn refusal(outcome: &Outcome, close: bool) -> HttpResponse {
    let body = outcome
        .response
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let mut builder = http::Response::builder()
        .status(outcome.status)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in &outcome.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if close {
        builder = builder.header(http::header::CONNECTION, "close");
    }
    let full = |text: String| {
        Full::new(Bytes::from(text))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    };
    builder.body(full(body)).unwrap_or_else(|_| {
        // a status or header the guard never writes: answer 500 rather than panic
        let mut r = http::Response::new(full(String::new()));
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subjects_flood_pushes_out_only_its_own_sessions() {
        let mut book = Sessions::default();
        book.bind("victim", "agent-a");
        for i in 1..SESSIONS_KEPT - SESSIONS_PER_SUBJECT {
            book.bind(&format!("s-{i}"), &format!("subject-{}", i % 20));
        }
        // one subject's flood past a full book: its own oldest go, never another's
        for i in 0..SESSIONS_PER_SUBJECT + 50 {
            book.bind(&format!("flood-{i}"), "agent-z");
        }
        assert_eq!(book.subject("victim").as_deref(), Some("agent-a"));
        assert_eq!(book.subject("s-1").as_deref(), Some("subject-1"));
        assert_eq!(book.subject("flood-49"), None);
        assert_eq!(book.subject("flood-50").as_deref(), Some("agent-z"));
        assert_eq!(book.subjects.len(), SESSIONS_KEPT);
        assert_eq!(book.order.len(), SESSIONS_KEPT);
        // a full book takes another subject's session by forgetting the oldest of all
        book.bind("late", "agent-b");
        assert_eq!(book.subject("victim"), None);
        assert_eq!(book.subject("late").as_deref(), Some("agent-b"));
        book.forget("late");
        assert_eq!(book.subjects.len(), SESSIONS_KEPT - 1);
        assert_eq!(
            book.by_subject.values().map(BTreeSet::len).sum::<usize>(),
            book.subjects.len()
        );
    }
}
