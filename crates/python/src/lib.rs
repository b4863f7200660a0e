//! `mcpvault._native`: the core's server path as a CPython extension, for the Python package (python/mcpvault).
//!
//! A thin binding, as crates/component: every function is one of the core's text functions ([`mcpvault::text`]),
//! JSON text in and out, with the same names and answers as the component's `verifier.verify-json` and `guard`
//! interface, so the package calls either the same way. The native build runs the signature checks at native
//! speed and a cached verify without wasm's marshalling. The GIL is released while the core works. Time is the
//! caller's `now` when given, else the system clock.

use mcpvault::text::{self, GuardHost};
use mcpvault::{Limits, Verifier};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::{Mutex, MutexGuard, PoisonError};

create_exception!(
    _native,
    NativeError,
    PyException,
    "A typed core failure: args are (code, message, failed_block, failed_check, approval), approval being \
     (request_hash, approvers, needed) for approval_required and None otherwise."
);

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

type Approval = (String, Vec<String>, u32);

fn raise(e: mcpvault::Error) -> PyErr {
    let failed = e.failed_check();
    let approval: Option<Approval> = e
        .approval()
        .map(|(hash, approvers, needed)| (hash.to_string(), approvers.to_vec(), needed));
    NativeError::new_err((
        e.code(),
        e.to_string(),
        failed.map(|(block, _)| block),
        failed.map(|(_, check)| check.to_string()),
        approval,
    ))
}

/// A lock whose holder panicked still guards sound data (the core's calls do not leave it half-written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The core's verifier, kept across calls (with `cache` > 0, its verified-chain cache).
#[pyclass(module = "mcpvault._native", name = "Verifier", frozen)]
struct PyVerifier {
    inner: Mutex<Verifier>,
}

#[pymethods]
impl PyVerifier {
    #[new]
    fn new(cache: u32) -> Self {
        PyVerifier {
            inner: Mutex::new(Verifier::with_cache(
                Limits::default(),
                usize::try_from(cache).unwrap_or(usize::MAX),
            )),
        }
    }

    /// `verify-json`: the facts (the fields of [`text::FactsText`], in its order) as a dict, or `NativeError`.
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        public_key: &str,
        request: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let f = py
            .detach(|| {
                text::verify_facts(
                    &mut lock(&self.inner),
                    token,
                    public_key,
                    request,
                    wall_clock,
                )
            })
            .map_err(raise)?;
        facts_dict(py, f)
    }

    /// `(hits, misses, entries, capacity)`.
    fn stats(&self) -> (u64, u64, u64, u64) {
        let s = lock(&self.inner).cache_stats();
        (
            s.hits,
            s.misses,
            u64::try_from(s.entries).unwrap_or(u64::MAX),
            u64::try_from(s.capacity).unwrap_or(u64::MAX),
        )
    }
}

/// The facts as `json.loads` reads the component's `verify-json` text: every field, in the record's order.
fn facts_dict(py: Python<'_>, f: text::FactsText) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("tool", f.tool)?;
    d.set_item("tools", f.tools)?;
    d.set_item("issuer", f.issuer)?;
    d.set_item("subject", f.subject)?;
    d.set_item("expires_at", f.expires_at)?;
    d.set_item("depth", f.depth)?;
    d.set_item("audience", f.audience)?;
    d.set_item("max_depth", f.max_depth)?;
    d.set_item("revocation_ids", f.revocation_ids)?;
    d.set_item("nonces", f.nonces)?;
    d.set_item("scopes", f.scopes)?;
    d.set_item("scope", f.scope)?;
    d.set_item("resources", f.resources)?;
    d.set_item("prompts", f.prompts)?;
    d.set_item("pins", f.pins)?;
    let approvals = PyList::empty(py);
    for a in f.approvals {
        let u = PyDict::new(py);
        u.set_item("approver", a.approver)?;
        u.set_item("nonce", a.nonce)?;
        u.set_item("expires_at", a.expires_at)?;
        approvals.append(u)?;
    }
    d.set_item("approvals", approvals)?;
    d.set_item("holder", f.holder)?;
    d.set_item("proof_nonce", f.proof_nonce)?;
    let quotas = PyList::empty(py);
    for q in f.quotas {
        let u = PyDict::new(py);
        u.set_item("kind", q.kind.as_str())?;
        u.set_item("block", q.block)?;
        u.set_item("revocation_id", q.revocation_id)?;
        u.set_item("tool", q.tool)?;
        u.set_item("arg", q.arg)?;
        u.set_item("max", q.max)?;
        u.set_item("period", q.period)?;
        quotas.append(u)?;
    }
    d.set_item("quotas", quotas)?;
    Ok(d)
}

/// The core's [`GuardHost`] of one vault (as the component keeps one per instance): its verified-chain cache and
/// checked options, kept across `check`s.
#[pyclass(module = "mcpvault._native", name = "GuardHost", frozen)]
struct PyGuardHost {
    inner: Mutex<GuardHost>,
}

#[pymethods]
impl PyGuardHost {
    #[new]
    fn new() -> Self {
        PyGuardHost {
            inner: Mutex::new(GuardHost::new()),
        }
    }

    /// `guard-check`: the check's JSON, or `NativeError`.
    #[pyo3(signature = (options, input, now=None))]
    fn check(
        &self,
        py: Python<'_>,
        options: &str,
        input: &str,
        now: Option<u64>,
    ) -> PyResult<String> {
        py.detach(|| lock(&self.inner).check(options, input, now.unwrap_or_else(wall_clock)))
            .map_err(raise)
    }
}

#[pyfunction]
fn guard_resume(options: &str, pending: &str, answer: &str) -> PyResult<String> {
    text::guard_resume(options, pending, answer).map_err(raise)
}

#[pyfunction]
fn store_decide(ask: &str, read: &str) -> PyResult<String> {
    text::store_decide(ask, read).map_err(raise)
}

#[pyfunction]
fn redis_call(ask: &str) -> PyResult<String> {
    text::redis_call(ask).map_err(raise)
}

#[pyfunction]
fn redis_answer(ask: &str, reply: &str) -> PyResult<String> {
    text::redis_answer(ask, reply).map_err(raise)
}

#[pyfunction]
fn audit_failed(options: &str, outcome: &str, detail: &str) -> PyResult<String> {
    text::audit_failed(options, outcome, detail).map_err(raise)
}

#[pyfunction]
fn guard_filter(
    options: &str,
    method: &str,
    answer: &str,
    facts: &str,
    first_page: bool,
) -> PyResult<String> {
    text::guard_filter(options, method, answer, facts, first_page).map_err(raise)
}

#[pyfunction]
fn revocation_id(id: &str) -> PyResult<String> {
    mcpvault::state::revocation_id(id).map_err(raise)
}

#[pyfunction]
#[pyo3(signature = (prev, record))]
fn audit_append(prev: Option<&str>, record: &str) -> PyResult<String> {
    text::audit_append(prev, record).map_err(raise)
}

#[pyfunction]
#[pyo3(signature = (message, token=None))]
fn call_target(message: &str, token: Option<&str>) -> PyResult<String> {
    text::call_target(message, token).map_err(raise)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_class::<PyVerifier>()?;
    m.add_class::<PyGuardHost>()?;
    m.add_function(wrap_pyfunction!(guard_resume, m)?)?;
    m.add_function(wrap_pyfunction!(store_decide, m)?)?;
    m.add_function(wrap_pyfunction!(audit_failed, m)?)?;
    m.add_function(wrap_pyfunction!(redis_call, m)?)?;
    m.add_function(wrap_pyfunction!(redis_answer, m)?)?;
    m.add_function(wrap_pyfunction!(guard_filter, m)?)?;
    m.add_function(wrap_pyfunction!(revocation_id, m)?)?;
    m.add_function(wrap_pyfunction!(audit_append, m)?)?;
    m.add_function(wrap_pyfunction!(call_target, m)?)?;
    Ok(())
}
