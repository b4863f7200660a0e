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
use pyo3::types::{PyBool, PyDict, PyList, PyString};
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

    /// `verify-json`: the facts (the JSON of [`text::FactsText`]) as a dict, or `NativeError`.
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        public_key: &str,
        request: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let facts = py
            .detach(|| {
                let facts = text::verify_facts(
                    &mut lock(&self.inner),
                    token,
                    public_key,
                    request,
                    wall_clock,
                )?;
                serde_json::to_value(facts).map_err(|e| mcpvault::Error::Internal {
                    detail: e.to_string(),
                })
            })
            .map_err(raise)?;
        to_py(py, &facts)
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

/// A JSON value as Python's `json.loads` reads it.
fn to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, Some(i)) => i.into_pyobject(py)?.into_any(),
            (None, None) => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// The guard shared by every `guard_check` of this process (its verified-chain cache keyed by key and token).
static GUARD: Mutex<GuardHost> = Mutex::new(GuardHost::new());

#[pyfunction]
#[pyo3(signature = (options, input, now=None))]
fn guard_check(py: Python<'_>, options: &str, input: &str, now: Option<u64>) -> PyResult<String> {
    py.detach(|| lock(&GUARD).check(options, input, now.unwrap_or_else(wall_clock)))
        .map_err(raise)
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
fn call_target(message: &str) -> PyResult<String> {
    text::call_target(message).map_err(raise)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_class::<PyVerifier>()?;
    m.add_function(wrap_pyfunction!(guard_check, m)?)?;
    m.add_function(wrap_pyfunction!(guard_resume, m)?)?;
    m.add_function(wrap_pyfunction!(store_decide, m)?)?;
    m.add_function(wrap_pyfunction!(audit_failed, m)?)?;
    m.add_function(wrap_pyfunction!(guard_filter, m)?)?;
    m.add_function(wrap_pyfunction!(revocation_id, m)?)?;
    m.add_function(wrap_pyfunction!(audit_append, m)?)?;
    m.add_function(wrap_pyfunction!(call_target, m)?)?;
    Ok(())
}
