//! A wasmtime host for the mcpvault component.
//!
//!     mcpvault-wasmtime-host vectors COMPONENT.wasm [DIR]     # runs every vector; prints `N passed, M failed`
//!                                                             # (DIR/audit and DIR/state too: the guard on a store kept here)
//!     mcpvault-wasmtime-host verify COMPONENT.wasm --token T --pubkey HEX --tool NAME [--args JSON] [--audience A] [--now S]
//!                                                             # [--tool-definition HASH] [--approval A]...
//!
//!     mcpvault-wasmtime-host bench COMPONENT.wasm TOKENS.json     # `make bench`: prints timings as JSON
//!
//! `verify` is the sketch of a plugin: load the component once, verify a token
//! for a tool call, print the authorized facts or the denial code.

use std::collections::{BTreeMap, BTreeSet};
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
    ApprovalRequirement, AuditBreakKind, AuditRecord, AuthorizedFacts, Error, ErrorCode, Grant,
    QuotaKind, Request, ToolPin,
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
    if let (Some(holder), Some(obj)) = (&f.holder, v.as_object_mut()) {
        obj.insert("holder".into(), json!(holder));
    }
    if let (Some(nonce), Some(obj)) = (&f.proof_nonce, v.as_object_mut()) {
        obj.insert("proof_nonce".into(), json!(nonce));
    }
    if let (false, Some(obj)) = (f.nonces.is_empty(), v.as_object_mut()) {
        obj.insert("nonces".into(), json!(f.nonces));
    }
    if let (false, Some(obj)) = (f.scopes.is_empty(), v.as_object_mut()) {
        obj.insert("scopes".into(), json!(f.scopes));
    }
    if let (Some(scope), Some(obj)) = (&f.scope, v.as_object_mut()) {
        obj.insert("scope".into(), json!(scope));
    }
    if let (false, Some(obj)) = (f.resources.is_empty(), v.as_object_mut()) {
        obj.insert("resources".into(), json!(f.resources));
    }
    if let (Some(prompts), Some(obj)) = (&f.prompts, v.as_object_mut()) {
        obj.insert("prompts".into(), json!(prompts));
    }
    if let (false, Some(obj)) = (f.pins.is_empty(), v.as_object_mut()) {
        let pins: serde_json::Map<String, Value> = f
            .pins
            .iter()
            .map(|p| (p.tool.clone(), json!(p.hashes)))
            .collect();
        obj.insert("pins".into(), Value::Object(pins));
    }
    if let (false, Some(obj)) = (f.approvals.is_empty(), v.as_object_mut()) {
        let approvals: Vec<Value> = f
            .approvals
            .iter()
            .map(
                |a| json!({ "approver": a.approver, "nonce": a.nonce, "expires_at": a.expires_at }),
            )
            .collect();
        obj.insert("approvals".into(), json!(approvals));
    }
    if let (false, Some(obj)) = (f.quotas.is_empty(), v.as_object_mut()) {
        let quotas: Vec<Value> = f
            .quotas
            .iter()
            .map(|q| {
                let mut o = json!({
                    "kind": match q.kind { QuotaKind::Rate => "rate", QuotaKind::Budget => "budget" },
                    "block": q.block, "revocation_id": q.revocation_id, "max": q.max, "period": q.period,
                });
                for (k, x) in [("tool", &q.tool), ("arg", &q.arg)] {
                    if let (Some(x), Some(o)) = (x, o.as_object_mut()) {
                        o.insert(k.into(), json!(x));
                    }
                }
                o
            })
            .collect();
        obj.insert("quotas".into(), json!(quotas));
    }
    v
}

/// The core's JSON shape of an audit record as the WIT record.
fn audit_record(r: &Value) -> Result<AuditRecord> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(AuditRecord {
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
        approvers: serde_json::from_value(r.get("approvers").cloned().unwrap_or(json!([])))?,
        replayed_response: r.get("replayed_response") == Some(&Value::Bool(true)),
    })
}

/// The store this host keeps for the guard: only reads and writes. What to
/// write is the component's decision (`store-decide`), and the audit chain's
/// entries come from its `audit-append`.
#[derive(Default)]
struct MemStore {
    revoked: BTreeSet<String>,
    /// nonce -> (call key, spent at, keep until)
    nonces: BTreeMap<String, (String, u64, u64)>,
    /// call key -> (recorded response, keep until)
    recorded: BTreeMap<String, (Value, u64)>,
    /// quota counter -> (used, keep until)
    counts: BTreeMap<String, (f64, u64)>,
    /// The audit chain, as JSON lines.
    audit: Vec<String>,
}

impl MemStore {
    /// What the store holds for `ask` (a `StoreAsk`): the `StoreRead` JSON.
    /// Rows kept until `now` or earlier are dropped first.
    fn read(&mut self, ask: &Value) -> Value {
        let spend = ask.get("spend").filter(|s| !s.is_null());
        if let Some(now) = spend.and_then(|s| s.get("now")).and_then(Value::as_u64) {
            self.nonces.retain(|_, (_, _, until)| *until > now);
            self.recorded.retain(|_, (_, until)| *until > now);
        }
        let strs = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        let revoked: Vec<String> = strs(ask.get("revocation_ids"))
            .into_iter()
            .filter(|id| self.revoked.contains(id))
            .collect();
        let held: Vec<Value> = strs(spend.and_then(|s| s.get("nonces")))
            .iter()
            .map(|n| match self.nonces.get(n) {
                Some((key, at, _)) => json!({ "call_key": key, "at": at }),
                None => Value::Null,
            })
            .collect();
        let recorded = spend
            .and_then(|s| s.get("call_key"))
            .and_then(Value::as_str)
            .and_then(|k| self.recorded.get(k))
            .map(|(r, _)| r.clone());
        let used: Vec<f64> = ask
            .get("quotas")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|q| {
                q.get("key")
                    .and_then(Value::as_str)
                    .and_then(|k| self.counts.get(k))
                    .map_or(0.0, |(u, _)| *u)
            })
            .collect();
        json!({ "revoked": revoked, "held": held, "recorded": recorded, "used": used })
    }

    /// Writes the quota counters of a `StoreDecision`.
    fn count(&mut self, rows: &Value) {
        for row in rows.as_array().into_iter().flatten() {
            let key = row.get("key").and_then(Value::as_str).unwrap_or_default();
            let used = row.get("used").and_then(Value::as_f64).unwrap_or_default();
            let until = row.get("until").and_then(Value::as_u64).unwrap_or_default();
            self.counts.insert(key.to_string(), (used, until));
        }
    }

    /// Writes the nonce rows of a `StoreDecision`.
    fn write(&mut self, rows: &Value) {
        for row in rows.as_array().into_iter().flatten() {
            let s = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
            let n = |k: &str| row.get(k).and_then(Value::as_u64).unwrap_or_default();
            self.nonces.insert(
                s("nonce").to_string(),
                (s("call_key").to_string(), n("at"), n("until")),
            );
        }
    }
}

/// One request through the component's guard on `store` (none: no store):
/// check, the store's atomic step (`store-decide`, then the rows written),
/// resume, the audit records appended. Returns the outcome JSON.
fn guard_step(
    vault: &mut Vault,
    mut store: Option<&mut MemStore>,
    options: &str,
    input: &Value,
    now: u64,
) -> Result<Value> {
    let guard = vault.authorizer.mcpvault_authz_guard();
    let wasm = &mut vault.store;
    let fail = |what: &str, e: Error| wasmtime::format_err!("{what}: {}: {}", code(&e), e.message);
    let check = guard
        .call_guard_check(&mut *wasm, options, &input.to_string(), Some(now))?
        .map_err(|e| fail("guard-check", e))?;
    let check: Value = serde_json::from_str(&check)?;
    let mut outcome = match check.get("step").and_then(Value::as_str) {
        Some("done") => check.get("outcome").cloned().unwrap_or_default(),
        Some("ask") => {
            let ask = check.get("ask").cloned().unwrap_or_default();
            let answer = match store.as_deref_mut() {
                // one transaction: read, decide, write
                Some(s) => {
                    let read = s.read(&ask);
                    let d = guard
                        .call_store_decide(&mut *wasm, &ask.to_string(), &read.to_string())?
                        .map_err(|e| fail("store-decide", e))?;
                    let d: Value = serde_json::from_str(&d)?;
                    s.write(d.get("write").unwrap_or(&Value::Null));
                    s.count(d.get("counts").unwrap_or(&Value::Null));
                    d.get("answer").cloned().unwrap_or_default()
                }
                None => json!({ "error": "no store" }),
            };
            let pending = check.get("pending").cloned().unwrap_or_default();
            let out = guard
                .call_guard_resume(
                    &mut *wasm,
                    options,
                    &pending.to_string(),
                    &answer.to_string(),
                )?
                .map_err(|e| fail("guard-resume", e))?;
            serde_json::from_str(&out)?
        }
        other => bail!("guard-check answered step {other:?}"),
    };
    if let Some(s) = store {
        let api = vault.authorizer.mcpvault_authz_authorize();
        let records = outcome.get("audit").cloned().unwrap_or_default();
        for r in records.as_array().into_iter().flatten() {
            match api.call_audit_append(
                &mut *wasm,
                s.audit.last().map(String::as_str),
                &audit_record(r)?,
            )? {
                Ok(line) => s.audit.push(line),
                Err(e) => {
                    let out = guard
                        .call_audit_failed(&mut *wasm, options, &outcome.to_string(), &e.message)?
                        .map_err(|e| fail("audit-failed", e))?;
                    outcome = serde_json::from_str(&out)?;
                    break;
                }
            }
        }
    }
    Ok(outcome)
}

/// A `state/` case: every step through the guard on a fresh store of this
/// host; the full outcome of each step and the audit chain's length (and
/// soundness) must be the vector's.
fn state_case(vault: &mut Vault, case: &Value) -> Result<std::result::Result<(), String>> {
    let options = case.get("options").cloned().unwrap_or_default();
    let with_store = options.get("store").and_then(Value::as_bool) == Some(true);
    let options = options.to_string();
    let mut store = MemStore::default();
    for id in case
        .get("revoked")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = vault
            .authorizer
            .mcpvault_authz_guard()
            .call_revocation_id(&mut vault.store, id.as_str().unwrap_or_default())?
            .map_err(|e| wasmtime::format_err!("revocation-id: {}", e.message))?;
        store.revoked.insert(id);
    }
    let steps = case.get("steps").and_then(Value::as_array);
    for (i, step) in steps.into_iter().flatten().enumerate() {
        let now = step.get("now").and_then(Value::as_u64).unwrap_or_default();
        let input = step.get("input").cloned().unwrap_or_default();
        let s = with_store.then_some(&mut store);
        let mut outcome = guard_step(vault, s, &options, &input, now)?;
        // `cache_hit` depends on the component's cache and its history: the vectors never hold it
        if let Some(ds) = outcome.get_mut("decisions").and_then(Value::as_array_mut) {
            for d in ds.iter_mut().filter_map(Value::as_object_mut) {
                d.remove("cache_hit");
            }
        }
        if Some(&outcome) != step.get("expect") {
            return Ok(Err(format!(
                "step {i}: expected {}, got {outcome}",
                step.get("expect").unwrap_or(&Value::Null)
            )));
        }
        let key = outcome.get("call_key").and_then(Value::as_str);
        if let (Some(k), Some(r), true) = (key, step.get("complete"), with_store) {
            let until = outcome
                .get("keep_until")
                .and_then(Value::as_u64)
                .unwrap_or(now);
            store.recorded.insert(k.to_string(), (r.clone(), until));
        }
    }
    let want = case.get("audit_entries").and_then(Value::as_u64);
    if Some(store.audit.len() as u64) != want {
        return Ok(Err(format!(
            "{} audit entries, expected {want:?}",
            store.audit.len()
        )));
    }
    let api = vault.authorizer.mcpvault_authz_authorize();
    if let Err(b) = api.call_audit_verify(&mut vault.store, &store.audit)? {
        return Ok(Err(format!(
            "audit chain broken at {}: {}",
            b.index, b.detail
        )));
    }
    Ok(Ok(()))
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
                let record = audit_record(r)?;
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

/// 16 bytes of the OS random source: the nonce the host hands `approve` (the component reads none there).
fn os_random16() -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

/// `Err(what)` unless `ok`: one check of [`exports_check`].
fn ensure(ok: bool, what: impl FnOnce() -> String) -> std::result::Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// A component error as `CODE: message`.
fn denial(e: &Error) -> String {
    format!("{}: {}", code(e), e.message)
}

/// The exports of pins and approvals, through the component: `tool-hashes` gives the hash the pin vectors were
/// minted with; on a token minted here (a pin and an approval requirement), a call without an approval is refused
/// with the ask, `request-hash` names the same call, `approve` (the host's nonce and clock) makes it pass with the
/// approval in the facts, an approval of other arguments does not count, and the pinned tool passes only with its
/// definition's hash. Returns the first check that failed (a trap too).
fn exports_check(vault: &mut Vault, dir: &Path) -> std::result::Result<(), String> {
    let api = vault.authorizer.mcpvault_authz_authorize();
    let wasm = &mut vault.store;
    let trap = |e: wasmtime::Error| format!("trap: {e:#}");
    // the definition examples/gen_vectors.rs pins db_query to in the pin-* vectors
    let definition = json!({"tools": [{"name": "db_query", "description": "Run a read-only SQL query",
        "inputSchema": {"type": "object", "properties": {"sql": {"type": "string"}}}}]});
    let hashes = api
        .call_tool_hashes(&mut *wasm, &definition.to_string())
        .map_err(trap)?
        .map_err(|e| format!("tool-hashes: {}", denial(&e)))?;
    let hashes: Value = serde_json::from_str(&hashes).map_err(|e| e.to_string())?;
    let case = std::fs::read_to_string(dir.join("pin-same-definition-allowed.json"))
        .map_err(|e| format!("pin-same-definition-allowed.json: {e}"))?;
    let case: Value = serde_json::from_str(&case).map_err(|e| e.to_string())?;
    let pinned = case["request"]["tool_definition"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure(hashes.get("db_query") == Some(&json!(pinned)), || {
        format!("tool-hashes: {hashes}, the vectors pin {pinned}")
    })?;
    let twice = json!([{"name": "a"}, {"name": "a"}]).to_string();
    let r = api.call_tool_hashes(&mut *wasm, &twice).map_err(trap)?;
    ensure(
        matches!(&r, Err(e) if e.code == ErrorCode::InvalidRequest),
        || format!("tool-hashes of two tools of one name: {r:?}"),
    )?;

    let now = 1_800_000_000u64;
    let issuer = api.call_keygen(&mut *wasm).map_err(trap)?;
    let approver = api.call_keygen(&mut *wasm).map_err(trap)?;
    let grant = Grant {
        tools: vec!["pay".into(), "db_query".into()],
        scopes: vec![],
        resources: vec![],
        prompts: vec![],
        ttl: 3600,
        issuer: "auth-server".into(),
        subject: "agent-a".into(),
        audience: None,
        max_depth: None,
        arg_limits: vec![],
        single_use: false,
        rate: vec![],
        budget: vec![],
        holder: None,
        pin: vec![ToolPin {
            tool: "db_query".into(),
            hash: pinned.clone(),
        }],
        require_approval: vec![ApprovalRequirement {
            tool: "pay".into(),
            approvers: vec![approver.public_key.clone()],
            needed: 1,
        }],
    };
    let token = api
        .call_mint(&mut *wasm, &issuer.private_key, &grant, Some(now))
        .map_err(trap)?
        .map_err(|e| format!("mint: {}", denial(&e)))?;
    let call =
        |tool: &str, arguments: &str, definition: Option<&str>, approvals: Vec<String>| Request {
            method: None,
            tool: Some(tool.into()),
            arguments: Some(arguments.into()),
            audience: None,
            scope: None,
            resource: None,
            prompt: None,
            now: Some(now + 10),
            tool_definition: definition.map(str::to_string),
            approvals,
            proof: None,
        };
    let args = json!({"amount": 500}).to_string();
    let ask = match api
        .call_verify(
            &mut *wasm,
            &token,
            &issuer.public_key,
            &call("pay", &args, None, vec![]),
        )
        .map_err(trap)?
    {
        Err(Error {
            code: ErrorCode::ApprovalRequired,
            approval: Some(ask),
            ..
        }) => ask,
        other => return Err(format!("verify without an approval: {other:?}")),
    };
    let hash = api
        .call_request_hash(
            &mut *wasm,
            &token,
            "tools/call",
            Some("pay"),
            Some(&args),
            None,
        )
        .map_err(trap)?
        .map_err(|e| format!("request-hash: {}", denial(&e)))?;
    ensure(
        hash == ask.request_hash
            && ask.approvers == [approver.public_key.clone()]
            && ask.needed == 1,
        || format!("request-hash {hash}, the ask {ask:?}"),
    )?;
    let nonce = os_random16().map_err(|e| format!("{e:#}"))?;
    let approval = api
        .call_approve(&mut *wasm, &approver.private_key, &hash, 300, now, &nonce)
        .map_err(trap)?
        .map_err(|e| format!("approve: {}", denial(&e)))?;
    let r = api
        .call_approve(
            &mut *wasm,
            &approver.private_key,
            &hash,
            300,
            now,
            &nonce[..8],
        )
        .map_err(trap)?;
    ensure(
        matches!(&r, Err(e) if e.code == ErrorCode::InvalidRequest),
        || format!("approve with 8 nonce bytes: {r:?}"),
    )?;
    let f = api
        .call_verify(
            &mut *wasm,
            &token,
            &issuer.public_key,
            &call("pay", &args, None, vec![approval.clone()]),
        )
        .map_err(trap)?
        .map_err(|e| format!("verify with the approval: {}", denial(&e)))?;
    ensure(
        matches!(f.approvals.as_slice(), [u] if u.approver == approver.public_key && u.expires_at == now + 300),
        || format!("the approved call's facts: {:?}", f.approvals),
    )?;
    let other = json!({"amount": 501}).to_string();
    let r = api
        .call_verify(
            &mut *wasm,
            &token,
            &issuer.public_key,
            &call("pay", &other, None, vec![approval]),
        )
        .map_err(trap)?;
    ensure(
        matches!(&r, Err(e) if e.code == ErrorCode::ApprovalRequired),
        || format!("an approval of other arguments: {r:?}"),
    )?;
    // the pinned tool: allowed with its definition's hash (the facts name the pin); another hash or none refused
    let f = api
        .call_verify(
            &mut *wasm,
            &token,
            &issuer.public_key,
            &call("db_query", "{}", Some(&pinned), vec![]),
        )
        .map_err(trap)?
        .map_err(|e| format!("the pinned tool: {}", denial(&e)))?;
    ensure(
        matches!(f.pins.as_slice(), [p] if p.tool == "db_query" && p.hashes == [pinned.clone()]),
        || format!("the pinned call's facts: {:?}", f.pins),
    )?;
    for definition in [None, Some("ab".repeat(32))] {
        let r = api
            .call_verify(
                &mut *wasm,
                &token,
                &issuer.public_key,
                &call("db_query", "{}", definition.as_deref(), vec![]),
            )
            .map_err(trap)?;
        ensure(
            matches!(&r, Err(e) if e.code == ErrorCode::ToolDefinitionChanged),
            || format!("the pinned tool with definition {definition:?}: {r:?}"),
        )?;
    }
    Ok(())
}

/// The WIT error code as the core's snake_case code.
fn code(e: &Error) -> &'static str {
    match e.code {
        ErrorCode::MissingToken => "missing_token",
        ErrorCode::MalformedToken => "malformed_token",
        ErrorCode::InvalidKey => "invalid_key",
        ErrorCode::BadSignature => "bad_signature",
        ErrorCode::Expired => "expired",
        ErrorCode::ToolNotAllowed => "tool_not_allowed",
        ErrorCode::ArgumentNotAllowed => "argument_not_allowed",
        ErrorCode::ResourceNotAllowed => "resource_not_allowed",
        ErrorCode::PromptNotAllowed => "prompt_not_allowed",
        ErrorCode::WrongAudience => "wrong_audience",
        ErrorCode::DepthExceeded => "depth_exceeded",
        ErrorCode::CheckFailed => "check_failed",
        ErrorCode::LimitsExceeded => "limits_exceeded",
        ErrorCode::Revoked => "revoked",
        ErrorCode::Replayed => "replayed",
        ErrorCode::InFlight => "in_flight",
        ErrorCode::SessionMismatch => "session_mismatch",
        ErrorCode::RateLimited => "rate_limited",
        ErrorCode::BudgetExceeded => "budget_exceeded",
        ErrorCode::ProofRequired => "proof_required",
        ErrorCode::BadProof => "bad_proof",
        ErrorCode::ProofExpired => "proof_expired",
        ErrorCode::ToolDefinitionChanged => "tool_definition_changed",
        ErrorCode::ApprovalRequired => "approval_required",
        ErrorCode::RuleViolation => "rule_violation",
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
        scope: s("scope"),
        resource: s("resource"),
        prompt: s("prompt"),
        now: None,
        tool_definition: s("tool_definition"),
        approvals: v
            .get("approvals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        proof: s("proof"),
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
    // request-hash, approve and tool-hashes (no vector holds their answers: approvals are random), on a token
    // minted here
    let exports_ok = match exports_check(&mut vault, dir) {
        Ok(()) => {
            println!("wasmtime host, pins and approvals: passed");
            true
        }
        Err(why) => {
            eprintln!("FAIL pins and approvals: {why}");
            false
        }
    };
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
    // tests/vectors/state: the guard through the component, on a store this host keeps
    let state_dir = dir.join("state");
    let (mut s_passed, mut s_failed) = (0usize, 0usize);
    if state_dir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&state_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in &files {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            match state_case(&mut vault, &case)? {
                Ok(()) => s_passed += 1,
                Err(why) => {
                    s_failed += 1;
                    eprintln!(
                        "FAIL state/{}: {why}",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    );
                }
            }
        }
        println!("wasmtime host, state: {s_passed} passed, {s_failed} failed");
    }
    Ok(failed == 0
        && passed > 0
        && exports_ok
        && a_failed == 0
        && (a_passed > 0 || !audit_dir.is_dir())
        && s_failed == 0
        && (s_passed > 0 || !state_dir.is_dir()))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Every value of a repeatable flag, in order.
fn flags(args: &[String], name: &str) -> Vec<String> {
    args.windows(2)
        .filter(|w| w.first().is_some_and(|a| a == name))
        .filter_map(|w| w.get(1).cloned())
        .collect()
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
        scope: flag(args, "--scope"),
        resource: flag(args, "--resource"),
        prompt: flag(args, "--prompt"),
        now,
        tool_definition: flag(args, "--tool-definition"),
        approvals: flags(args, "--approval"),
        proof: flag(args, "--proof"),
    };
    let mut vault = Vault::load(component)?;
    match vault.verify(&token, &key, &req)? {
        Ok(f) => {
            println!("{}", serde_json::to_string_pretty(&facts_json(&f))?);
            Ok(true)
        }
        Err(e) => {
            eprintln!("denied: {}: {}", code(&e), e.message);
            if let Some(a) = &e.approval {
                eprintln!(
                    "approval: request hash {}, {} of approvers {}",
                    a.request_hash,
                    a.needed,
                    a.approvers.join(", ")
                );
            }
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
            eprintln!("usage: mcpvault-wasmtime-host vectors COMPONENT.wasm [DIR]\n       mcpvault-wasmtime-host verify COMPONENT.wasm --token T --pubkey HEX --tool NAME [--args JSON] [--audience A] [--now S] [--tool-definition HASH] [--approval A]...");
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
