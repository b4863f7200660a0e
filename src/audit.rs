//! The tamper-evident audit log: a hash chain of decisions.
//!
//! Each entry carries `prev`, the previous entry's hash (64 zeros for the
//! first), and `hash` = SHA-256(prev's 32 bytes ‖ the entry's canonical JSON
//! without `hash`). Canonical JSON: object keys sorted by code point, no
//! whitespace, integers only, strings escaped as `serde_json` does. Every host
//! calls this module (natively, through WIT, through the npm build), so every
//! host writes byte-identical chains (`tests/vectors/audit/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One decision, as a host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Unix seconds of the decision.
    pub time: u64,
    /// Whether the call was allowed.
    pub allowed: bool,
    /// The refusal code; null when allowed.
    pub code: Option<String>,
    /// The MCP method (`tools/call`, …).
    pub method: String,
    /// The tool of a `tools/call`.
    pub tool: Option<String>,
    /// The token's subject, when the token verified.
    pub subject: Option<String>,
    /// The token's issuer, when the token verified.
    pub issuer: Option<String>,
    /// The token's revocation ids, when the token verified.
    pub revocation_ids: Vec<String>,
    /// The JSON-RPC request id, as text.
    pub request_id: Option<String>,
    /// The approvers whose signed approvals the call carried (SCHEMA.md,
    /// "Signed approvals"); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The retry of a call that already ran, answered with its recorded response (nothing ran); absent otherwise,
    /// so an entry without it hashes as it did before this field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed_response: bool,
}

/// A record in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1 for the first entry, then consecutive.
    pub seq: u64,
    /// The previous entry's hash (GENESIS for the first).
    pub prev: String,
    /// The decision.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// SHA-256(prev ‖ canonical JSON of this entry without `hash`), hex.
    pub hash: String,
}

/// How a chain is broken, at the first entry where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// The entry's content no longer matches its hash, or does not parse.
    Edited,
    /// Entries are missing before this one (its seq skips ahead).
    Deleted,
    /// The entry is out of order (its seq goes back or repeats).
    Reordered,
    /// The entry's hash is intact but it does not follow the previous one.
    Broken,
}

/// The first break of a chain: the entry (0-based position in what was
/// given), its seq when it has one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBreak {
    /// 0-based position of the entry.
    pub index: usize,
    /// The entry's seq, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub kind: BreakKind,
    /// In words.
    pub detail: String,
}

/// What a sound chain holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Number of entries.
    pub entries: usize,
    /// The last entry's hash (GENESIS when empty): keep it elsewhere to
    /// notice entries cut off the end.
    pub head: String,
}

/// `value` as canonical JSON: keys sorted, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                // inserted one by one: collecting a map sorts its entries first, one more copy of the sort in
                // the .wasm for each entry type
                let mut b: BTreeMap<&String, Value> = BTreeMap::new();
                for (k, v) in m {
                    b.insert(k, sorted(v));
                }
                let mut out = serde_json::Map::new();
                for (k, v) in b {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json without `preserve_order` keeps object keys sorted.
    sorted(value).to_string()
}

fn hash_of(prev: &str, body: &Value) -> Result<String> {
    let prev_bytes = hex::decode(prev)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| Error::invalid("audit: prev must be 64 hex characters"))?;
    let mut h = Sha256::new();
    h.update(prev_bytes);
    h.update(canonical_json(body).as_bytes());
    Ok(hex::encode(h.finalize()))
}

fn body_of(entry: &AuditEntry) -> Result<Value> {
    let mut v = serde_json::to_value(entry).map_err(|e| Error::Internal {
        detail: format!("audit: {e}"),
    })?;
    if let Value::Object(m) = &mut v {
        m.remove("hash");
    }
    Ok(v)
}

/// The entry that follows `prev` (None: the first) for `record`.
pub fn audit_append(prev: Option<&AuditEntry>, record: AuditRecord) -> Result<AuditEntry> {
    let (seq, prev_hash) = match prev {
        None => (1, GENESIS.to_string()),
        Some(p) => (
            p.seq
                .checked_add(1)
                .ok_or_else(|| Error::invalid("audit: seq overflow"))?,
            p.hash.clone(),
        ),
    };
    let mut entry = AuditEntry {
        seq,
        prev: prev_hash,
        record,
        hash: String::new(),
    };
    entry.hash = hash_of(&entry.prev, &body_of(&entry)?)?;
    Ok(entry)
}

/// Stored entries, one JSON text each, as values for [`audit_verify`]; a
/// text that is not JSON stays a string, which the chain reports as edited.
pub fn entries_from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Value> {
    lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

/// Checks a chain given as JSON values (one per entry, in stored order) and
/// names the first edited, deleted or reordered entry.
pub fn audit_verify(entries: &[Value]) -> std::result::Result<AuditSummary, AuditBreak> {
    let mut prev_hash = GENESIS.to_string();
    for (expected_seq, (index, raw)) in (1u64..).zip(entries.iter().enumerate()) {
        let seq = raw.get("seq").and_then(Value::as_u64);
        let broken = |kind, detail: String| AuditBreak {
            index,
            seq,
            kind,
            detail,
        };
        let entry: AuditEntry = serde_json::from_str(&raw.to_string()).map_err(|e| {
            // serde_json appends "at line L column C" of our own re-serialisation: noise
            let msg = e.to_string();
            let msg = msg
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string();
            broken(BreakKind::Edited, format!("entry does not parse: {msg}"))
        })?;
        // The stored form must be what the entry says (no extra or missing keys).
        let own = body_of(&entry)
            .ok()
            .and_then(|b| hash_of(&entry.prev, &b).ok());
        if own.as_deref() != Some(entry.hash.as_str()) {
            return Err(broken(
                BreakKind::Edited,
                "content does not match its hash".into(),
            ));
        }
        if entry.seq > expected_seq {
            // The missing seq further on means the entries were moved, not removed.
            let later = entries
                .get(index + 1..)
                .unwrap_or_default()
                .iter()
                .any(|e| e.get("seq").and_then(Value::as_u64) == Some(expected_seq));
            if later {
                return Err(broken(
                    BreakKind::Reordered,
                    format!("seq {} where seq {expected_seq} belongs", entry.seq),
                ));
            }
            return Err(broken(
                BreakKind::Deleted,
                format!(
                    "seq {} follows seq {}: {} entr{} missing",
                    entry.seq,
                    expected_seq - 1,
                    entry.seq - expected_seq,
                    if entry.seq - expected_seq == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                ),
            ));
        }
        if entry.seq < expected_seq {
            return Err(broken(
                BreakKind::Reordered,
                format!("seq {} where seq {expected_seq} belongs", entry.seq),
            ));
        }
        if entry.prev != prev_hash {
            return Err(broken(
                BreakKind::Broken,
                "prev is not the previous entry's hash".into(),
            ));
        }
        prev_hash = entry.hash;
    }
    Ok(AuditSummary {
        entries: entries.len(),
        head: prev_hash,
    })
}

/// A request's key, without its spender: SHA-256 of the canonical JSON of
/// `{id, method, tool, arguments}`. The same JSON-RPC request sent again
/// (same id, same call) has the same key; any other call has another. The
/// guard keeps spends and recorded responses under [`spend_key`], which also
/// binds the spender and the whole params.
pub fn call_key(
    request_id: &str,
    method: &str,
    tool: Option<&str>,
    arguments: &serde_json::Map<String, Value>,
) -> String {
    let v = serde_json::json!({
        "id": request_id,
        "method": method,
        "tool": tool,
        "arguments": arguments,
    });
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

/// The key a single-use spend and its recorded response are kept under (the guard's `outcome.call_key`): SHA-256
/// of the canonical JSON of `{id, method, params, nonces, token}` — the JSON-RPC id as sent (a number and a string
/// are two ids; never cut), the method, its params without `_meta` (the tool and its arguments, a resource's URI, a
/// prompt's name and arguments), what the request spends (its nonces' keys sorted: the token's, its proof's, its
/// approvals') and the token that spends them (its revocation ids, one per block). A retry (the same request, the
/// same token and spender) has the same key; another request, or the same request of another token (one attenuated
/// from it included) or proof, has another, so a response is only ever handed back to the spender that recorded it.
pub fn spend_key(
    id: Option<&Value>,
    method: &str,
    params: Option<&Value>,
    nonces: &[String],
    token: &[String],
) -> String {
    let params = match params {
        Some(Value::Object(p)) => Value::Object(
            p.iter()
                .filter(|(k, _)| k.as_str() != "_meta")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    let mut nonces = nonces.to_vec();
    nonces.sort_unstable();
    let v = serde_json::json!({
        "id": id.cloned().unwrap_or(Value::Null),
        "method": method,
        "params": params,
        "nonces": nonces,
        "token": token,
    });
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_keys_bind_the_request_and_its_spender() {
        let p = serde_json::json!({"uri": "file:///pub/a", "_meta": {"progressToken": 1}});
        let n = vec!["b".to_string(), "a".to_string()];
        let t = vec!["r0".to_string(), "r1".to_string()];
        let k = spend_key(
            Some(&serde_json::json!(3)),
            "resources/read",
            Some(&p),
            &n,
            &t,
        );
        // a retry: the same request and spender (nonces in any order, another _meta)
        let retry = serde_json::json!({"uri": "file:///pub/a"});
        let swapped = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            k,
            spend_key(
                Some(&serde_json::json!(3)),
                "resources/read",
                Some(&retry),
                &swapped,
                &t
            )
        );
        // another target, id (of another type), method or spender: another key
        let other = serde_json::json!({"uri": "file:///secret/b"});
        assert_ne!(
            k,
            spend_key(
                Some(&serde_json::json!(3)),
                "resources/read",
                Some(&other),
                &n,
                &t
            )
        );
        assert_ne!(
            k,
            spend_key(
                Some(&serde_json::json!("3")),
                "resources/read",
                Some(&p),
                &n,
                &t
            )
        );
        assert_ne!(k, spend_key(None, "resources/read", Some(&p), &n, &t));
        assert_ne!(
            k,
            spend_key(
                Some(&serde_json::json!(3)),
                "resources/subscribe",
                Some(&p),
                &n,
                &t
            )
        );
        assert_ne!(
            k,
            spend_key(
                Some(&serde_json::json!(3)),
                "resources/read",
                Some(&p),
                &["c".to_string()],
                &t
            )
        );
        let long = |c: char| serde_json::json!(format!("{}{c}", "x".repeat(300)));
        assert_ne!(
            spend_key(Some(&long('a')), "tools/call", None, &n, &t),
            spend_key(Some(&long('b')), "tools/call", None, &n, &t)
        );
        // the same request and nonces of another token (one attenuated from it: one more revocation id)
        let child = vec!["r0".to_string(), "r1".to_string(), "r2".to_string()];
        assert_ne!(
            k,
            spend_key(
                Some(&serde_json::json!(3)),
                "resources/read",
                Some(&p),
                &n,
                &child
            )
        );
    }

    fn record(i: u64) -> AuditRecord {
        AuditRecord {
            time: 1_800_000_000 + i,
            allowed: i % 2 == 0,
            code: (i % 2 == 1).then(|| "tool_not_allowed".to_string()),
            method: "tools/call".into(),
            tool: Some(format!("t{i}")),
            subject: Some("agent-a".into()),
            issuer: Some("auth-server".into()),
            revocation_ids: vec![format!("{i:02x}")],
            request_id: Some(i.to_string()),
            approvers: Vec::new(),
            replayed_response: false,
        }
    }

    fn chain(n: u64) -> Vec<Value> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let e = audit_append(out.last(), record(i)).unwrap();
            out.push(e);
        }
        out.iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    #[test]
    fn a_sound_chain_verifies_and_every_tampering_is_named() {
        let c = chain(5);
        assert_eq!(audit_verify(&c).unwrap().entries, 5);
        // edit
        let mut e = c.clone();
        e[2]["tool"] = "admin_delete".into();
        assert_eq!(audit_verify(&e).unwrap_err().kind, BreakKind::Edited);
        assert_eq!(audit_verify(&e).unwrap_err().index, 2);
        // delete
        let mut d = c.clone();
        d.remove(1);
        let b = audit_verify(&d).unwrap_err();
        assert_eq!((b.index, b.kind), (1, BreakKind::Deleted));
        // swap
        let mut s = c.clone();
        s.swap(1, 3);
        let b = audit_verify(&s).unwrap_err();
        assert_eq!((b.index, b.kind), (1, BreakKind::Reordered));
        let mut s = c.clone();
        s.swap(2, 3);
        let b = audit_verify(&s).unwrap_err();
        assert_eq!((b.index, b.kind), (2, BreakKind::Reordered));
        let mut s = c.clone();
        s.swap(0, 1);
        let b = audit_verify(&s).unwrap_err();
        assert_eq!((b.index, b.kind), (0, BreakKind::Reordered));
        // the last entry moved to the front, the rest shifted
        let mut r = c.clone();
        r.rotate_right(1);
        assert_eq!(audit_verify(&r).unwrap_err().kind, BreakKind::Reordered);
        // an extra key is an edit
        let mut x = c.clone();
        x[4]["note"] = "x".into();
        assert_eq!(audit_verify(&x).unwrap_err().kind, BreakKind::Edited);
        // a re-hashed forgery that does not follow its predecessor
        let mut f = c.clone();
        let forged = audit_append(None, record(9)).unwrap();
        let mut forged = forged;
        forged.seq = 3;
        forged.prev = GENESIS.into();
        forged.hash = hash_of(&forged.prev, &body_of(&forged).unwrap()).unwrap();
        f[2] = serde_json::to_value(forged).unwrap();
        assert_eq!(audit_verify(&f).unwrap_err().kind, BreakKind::Broken);
    }

    #[test]
    fn canonical_json_sorts_keys_and_call_keys_tell_retries_from_replays() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"f":2,"e":3}],"c":"x"}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"x","d":[1,{"e":3,"f":2}]},"b":1}"#
        );
        let args: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"max_rows":5,"sql":"x"}"#).unwrap();
        let k = call_key("7", "tools/call", Some("db_query"), &args);
        assert_eq!(k, call_key("7", "tools/call", Some("db_query"), &args));
        assert_ne!(k, call_key("8", "tools/call", Some("db_query"), &args));
        assert_ne!(k, call_key("7", "tools/call", Some("file_read"), &args));
        assert_ne!(
            k,
            call_key("7", "tools/call", Some("db_query"), &Default::default())
        );
    }
}
