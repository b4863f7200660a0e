//! A wasmtime host for the mcpvault component.
//!
//!     mcpvault-wasmtime-host vectors COMPONENT.wasm [DIR]     # runs every vector; prints `N passed, M failed`
//!     mcpvault-wasmtime-host verify COMPONENT.wasm --token T --pubkey HEX --tool NAME [--args JSON] [--audience A] [--now S]
//!
//!     mcpvault-wasmtime-host bench COMPONENT.wasm TOKENS.json     # `make bench`: prints timings as JSON
//!
//! `verify` is the sketch of a plugin: load the component once, verify a token
//! for a tool call, print the authorized facts or the denial code.

use std::path::Path;

use serde_json::{json, Value};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::error::Context;
use wasmtime::{bail, Result};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        world: "authorizer",
        path: "../../wit",
    });
}

use bindings::exports::mcpvault::authz::types::{
    AuditBreakKind, AuditRecord, AuthorizedFacts, Error, ErrorCode, Request,
};
use bindings::Authorizer;

struct State {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The component loaded once and instantiated in one store.
struct Vault {
    store: Store<State>,
    authorizer: Authorizer,
}

impl Vault {
    fn load(path: &Path) -> Result<Self> {
        let engine = Engine::default();
        let component = Component::from_file(&engine, path)
            .with_context(|| format!("loading component {}", path.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).context("linking WASI")?;
        let state = State {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&engine, state);
        let authorizer =
            Authorizer::instantiate(&mut store, &component, &linker).context("instantiating")?;
        Ok(Vault { store, authorizer })
    }

    fn verify(
        &mut self,
        token: &str,
        key: &str,
        req: &Request,
    ) -> Result<Result<AuthorizedFacts, Error>> {
        self.authorizer
            .mcpvault_authz_authorize()
            .call_verify(&mut self.store, token, key, req)
            .context("calling verify")
    }
}

/// The core's JSON shape of authorized facts, so vectors compare as-is.
fn facts_json(f: &AuthorizedFacts) -> Value {
    let mut v = json!({
        "verified": true,
        "tools": f.tools,
        "issuer": f.issuer,
        "subject": f.subject,
        "expires_at": f.expires_at,
        "depth": f.depth,
        "audience": f.audience,
        "max_depth": f.max_depth,
        "revocation_ids": f.revocation_ids,
    });
    if let (Some(tool), Some(obj)) = (&f.tool, v.as_object_mut()) {
        obj.insert("tool".into(), json!(tool));
    }
    if let (false, Some(obj)) = (f.nonces.is_empty(), v.as_object_mut()) {
        obj.insert("nonces".into(), json!(f.nonces));
    }
    v
}

/// An `audit/` case through the component: append, verify or call key.
fn audit_case(vault: &mut Vault, case: &Value) -> Result<Value> {
    let api = vault.authorizer.mcpvault_authz_authorize();
    let store = &mut vault.store;
    match case.get("operation").and_then(Value::as_str) {
        Some("audit_append") => {
            let mut prev: Option<String> = None;
            let mut entries = Vec::new();
            for r in case
                .get("records")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
                let record = AuditRecord {
                    time: r.get("time").and_then(Value::as_u64).unwrap_or_default(),
                    allowed: r
                        .get("allowed")
                        .and_then(Value::as_bool)
                        .unwrap_or_default(),
                    code: s("code"),
                    method: s("method").unwrap_or_default(),
                    tool: s("tool"),
                    subject: s("subject"),
                    issuer: s("issuer"),
                    revocation_ids: serde_json::from_value(
                        r.get("revocation_ids").cloned().unwrap_or_default(),
                    )?,
                    request_id: s("request_id"),
                };
                let line = match api.call_audit_append(&mut *store, prev.as_deref(), &record)? {
                    Ok(line) => line,
                    Err(e) => return Ok(json!({ "error": code(&e) })),
                };
                entries.push(serde_json::from_str::<Value>(&line)?);
                prev = Some(line);
            }
            Ok(json!({ "entries": entries }))
        }
        Some("audit_verify") => {
            let lines: Vec<String> = case
                .get("entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            Ok(match api.call_audit_verify(&mut *store, &lines)? {
                Ok(s) => json!({ "ok": { "entries": s.entries, "head": s.head } }),
                Err(b) => json!({ "break": {
                    "index": b.index,
                    "seq": b.seq,
                    "kind": match b.kind {
                        AuditBreakKind::Edited => "edited",
                        AuditBreakKind::Deleted => "deleted",
                        AuditBreakKind::Reordered => "reordered",
                        AuditBreakKind::Broken => "broken",
                    },
                    "detail": b.detail,
                } }),
            })
        }
        Some("call_key") => {
            let req = request_of(case);
            let id = case
                .get("request_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(match api.call_call_key(&mut *store, id, &req)? {
                Ok(k) => json!(k),
                Err(e) => json!({ "error": code(&e) }),
            })
        }
        other => bail!("unknown audit operation {other:?}"),
    }
}

/// The WIT error code as the core's snake_case code.
fn code(e: &Error) -> &'static str {
    match e.code {
        ErrorCode::MalformedToken => "malformed_token",
        ErrorCode::InvalidKey => "invalid_key",
        ErrorCode::BadSignature => "bad_signature",
        ErrorCode::Expired => "expired",
        ErrorCode::ToolNotAllowed => "tool_not_allowed",
        ErrorCode::ArgumentNotAllowed => "argument_not_allowed",
        ErrorCode::WrongAudience => "wrong_audience",
        ErrorCode::DepthExceeded => "depth_exceeded",
        ErrorCode::CheckFailed => "check_failed",
        ErrorCode::LimitsExceeded => "limits_exceeded",
        ErrorCode::Revoked => "revoked",
        ErrorCode::Replayed => "replayed",
        ErrorCode::InvalidRequest => "invalid_request",
        ErrorCode::InternalError => "internal_error",
    }
}

fn request_of(v: &Value) -> Request {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Request {
        method: s("method"),
        tool: s("tool"),
        arguments: v.get("arguments").map(Value::to_string),
        audience: s("audience"),
        now: None,
    }
}

fn run_vectors(component: &Path, dir: &Path) -> Result<bool> {
    let mut vault = Vault::load(component)?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let str_of = |k: &str| {
            case.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut req = request_of(case.get("request").unwrap_or(&Value::Null));
        req.now = case.get("now").and_then(Value::as_u64);
        let got = match vault.verify(&str_of("token"), &str_of("public_key"), &req)? {
            Ok(f) => json!({ "ok": facts_json(&f) }),
            Err(e) => json!({ "error": code(&e) }),
        };
        if Some(&got) == case.get("expect") {
            passed += 1;
        } else {
            failed += 1;
            eprintln!(
                "FAIL {}: expected {}, got {got}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                case.get("expect").unwrap_or(&Value::Null)
            );
        }
    }
    println!("wasmtime host: {passed} passed, {failed} failed");
    // tests/vectors/audit: the chain and call keys, through the component's exports
    let audit_dir = dir.join("audit");
    let (mut a_passed, mut a_failed) = (0usize, 0usize);
    if audit_dir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&audit_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in &files {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
            let got = audit_case(&mut vault, &case)?;
            if Some(&got) == case.get("expect") {
                a_passed += 1;
            } else {
                a_failed += 1;
                eprintln!(
                    "FAIL audit/{}: expected {}, got {got}",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    case.get("expect").unwrap_or(&Value::Null)
                );
            }
        }
        println!("wasmtime host, audit: {a_passed} passed, {a_failed} failed");
    }
    Ok(failed == 0 && passed > 0 && a_failed == 0 && (a_passed > 0 || !audit_dir.is_dir()))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn run_verify(component: &Path, args: &[String]) -> Result<bool> {
    let (Some(token), Some(key)) = (flag(args, "--token"), flag(args, "--pubkey")) else {
        bail!("verify needs --token and --pubkey");
    };
    let now = match flag(args, "--now") {
        Some(n) => Some(n.parse::<u64>().context("--now must be unix seconds")?),
        None => None,
    };
    let req = Request {
        method: None,
        tool: flag(args, "--tool"),
        arguments: flag(args, "--args"),
        audience: flag(args, "--audience"),
        now,
    };
    let mut vault = Vault::load(component)?;
    match vault.verify(&token, &key, &req)? {
        Ok(f) => {
            println!("{}", serde_json::to_string_pretty(&facts_json(&f))?);
            Ok(true)
        }
        Err(e) => {
            eprintln!("denied: {}: {}", code(&e), e.message);
            Ok(false)
        }
    }
}

/// Median of 5 runs, each timing `n` calls and dividing, in microseconds.
fn median_us(n: u32, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f()?;
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs.get(2).copied().unwrap_or_default())
}

/// `make bench`: compiling and instantiating the component, and verify at
/// each depth of TOKENS.json (`{public_key, now, request, tokens: {depth:
/// token}}`, written by bench/node.mjs), as JSON on stdout.
fn run_bench(component: &Path, tokens: &Path) -> Result<bool> {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(tokens)
            .with_context(|| format!("reading {}", tokens.display()))?,
    )?;
    let key = spec["public_key"].as_str().unwrap_or_default().to_string();
    let mut req = request_of(&spec["request"]);
    req.now = spec["now"].as_u64();
    let compile_ms = median_us(1, || Vault::load(component).map(|_| ()))? / 1000.0;
    let engine = Engine::default();
    let compiled = Component::from_file(&engine, component)?;
    let instantiate_ms = median_us(1, || {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let state = State {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&engine, state);
        Authorizer::instantiate(&mut store, &compiled, &linker)?;
        Ok(())
    })? / 1000.0;
    let mut vault = Vault::load(component)?;
    let mut verify = serde_json::Map::new();
    for (depth, token) in spec["tokens"].as_object().into_iter().flatten() {
        let token = token.as_str().unwrap_or_default();
        if let Err(e) = vault.verify(token, &key, &req)? {
            bail!("bench token at depth {depth} refused: {}", e.message);
        }
        let us = median_us(200, || vault.verify(token, &key, &req).map(|_| ()))?;
        verify.insert(depth.clone(), json!(us));
    }
    println!(
        "{}",
        json!({ "load_ms": compile_ms, "instantiate_ms": instantiate_ms, "verify_us": verify })
    );
    Ok(true)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("vectors"), Some(component)) => {
            let dir = args.get(2).map_or("tests/vectors", String::as_str);
            run_vectors(Path::new(component), Path::new(dir))
        }
        (Some("verify"), Some(component)) => run_verify(Path::new(component), &args[2..]),
        (Some("bench"), Some(component)) => match args.get(2) {
            Some(tokens) => run_bench(Path::new(component), Path::new(tokens)),
            None => Err(wasmtime::format_err!("bench needs TOKENS.json")),
        },
        _ => {
            eprintln!("usage: mcpvault-wasmtime-host vectors COMPONENT.wasm [DIR]\n       mcpvault-wasmtime-host verify COMPONENT.wasm --token T --pubkey HEX --tool NAME [--args JSON] [--audience A] [--now S]");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
