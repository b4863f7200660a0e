//! Proof-carrying calls (SCHEMA.md, "Holder-bound tokens"): a token bound to a
//! holder key is accepted only with a proof — an Ed25519 signature by that key
//! over one call — so a copy of the token alone (from a log, a prompt, a
//! proxy) calls nothing.
//!
//! The signed text is `mcpvault-proof-v1\n` followed by the canonical JSON
//! ([`jcs`], RFC 8785) of
//! `{"args": SHA-256 of the canonical arguments, "aud": the server's audience
//! or null, "iat": unix seconds, "method", "name": the tool, resource URI or
//! prompt (or null), "nonce": 32 hex, "tid": the token's last revocation id}`.
//! A proof is `mvp1.IAT.NONCE.SIGNATURE` (signature in unpadded base64url): the
//! verifier rebuilds the rest from the request and the token. It is fresh for
//! [`PROOF_WINDOW`] seconds after `iat` (and at most [`PROOF_SKEW`] seconds
//! ahead of the verifier's clock), and its nonce is spent in the replay store,
//! so a proof is used once.

use base64::Engine;
use rand_core::{CryptoRng, RngCore};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Seconds a proof stays fresh after its `iat`.
pub const PROOF_WINDOW: u64 = 60;
/// Seconds a proof's `iat` may be ahead of the verifier's clock.
pub const PROOF_SKEW: u64 = 5;
const DOMAIN: &str = "mcpvault-proof-v1\n";
const PREFIX: &str = "mvp1";

/// RFC 8785 (JSON Canonicalization Scheme): object keys sorted by their
/// UTF-16 code units, no whitespace, strings as JSON escapes them, numbers as
/// ECMAScript prints them.
pub fn jcs(value: &Value) -> String {
    let mut out = String::new();
    write_jcs(value, &mut out);
    out
}

fn write_jcs(value: &Value, out: &mut String) {
    match value {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_jcs(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => out.push_str(&es_number(n)),
        other => out.push_str(&other.to_string()),
    }
}

/// Refuses a call whose arguments hold a number of magnitude 2^53 or more before it is signed or checked: the
/// canonical JSON prints it as the double ECMAScript holds (so `9007199254740993` and `9007199254740992` sign the
/// same), while a Python or Rust server acts on the exact integer — a proof or an approval of one would pass for the
/// other.
pub(crate) fn check_signable(arguments: &serde_json::Map<String, Value>) -> Result<()> {
    fn inexact(v: &Value) -> bool {
        match v {
            // the numbers argument limits refuse too (an integer beyond 64 bits is read as a double)
            Value::Number(_) => crate::args::number_key(v).is_none(),
            Value::Array(a) => a.iter().any(inexact),
            Value::Object(m) => m.values().any(inexact),
            _ => false,
        }
    }
    if arguments.values().any(inexact) {
        return Err(Error::invalid(
            "an argument holds a number of magnitude 2^53 or more: a proof or an approval cannot sign it exactly \
             (send it as a string)",
        ));
    }
    Ok(())
}

/// A JSON number as ECMAScript's `Number.prototype.toString` prints it.
fn es_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        // integers beyond 2^53 print as the double they are in ECMAScript
        let exact = n.as_i64().map_or(true, |i| i.unsigned_abs() < 1 << 53)
            && n.as_u64().map_or(true, |u| u < 1 << 53);
        if exact {
            return n.to_string();
        }
    }
    let x = n.as_f64().unwrap_or(0.0);
    if x == 0.0 {
        return "0".into();
    }
    // shortest round-trip digits and the decimal exponent, from Rust's `{:e}`
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let e: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n_exp = e + 1; // the position of the decimal point after the first digit
    let sign = if x < 0.0 { "-" } else { "" };
    let body = if k <= n_exp && n_exp <= 21 {
        format!("{digits}{}", "0".repeat((n_exp - k) as usize))
    } else if 0 < n_exp && n_exp <= 21 {
        let (a, b) = digits.split_at(n_exp as usize);
        format!("{a}.{b}")
    } else if -6 < n_exp && n_exp <= 0 {
        format!("0.{}{digits}", "0".repeat((-n_exp) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let sign_e = if n_exp > 0 { "+" } else { "-" };
        format!("{first}{frac}e{sign_e}{}", (n_exp - 1).abs())
    };
    format!("{sign}{body}")
}

/// 32 bytes of a 64-hex key (an `ed25519/` prefix accepted).
pub(crate) fn key_bytes(hex_key: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
    let h = hex_key.trim();
    let h = h.strip_prefix("ed25519/").unwrap_or(h);
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(h, out.as_mut()).ok()?;
    Some(out)
}

/// What a proof is about: one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'a> {
    /// The token's last revocation id.
    pub token_id: &'a str,
    /// The MCP method.
    pub method: &'a str,
    /// The tool, resource URI or prompt.
    pub name: Option<&'a str>,
    /// The call's arguments.
    pub arguments: &'a Map<String, Value>,
    /// The server's audience name.
    pub audience: Option<&'a str>,
}

/// The call's members both a proof and a request hash cover.
fn call_body(call: &Call<'_>) -> Map<String, Value> {
    let args = hex::encode(Sha256::digest(
        jcs(&Value::Object(call.arguments.clone())).as_bytes(),
    ));
    let mut body = Map::new();
    body.insert("args".into(), Value::String(args));
    body.insert("aud".into(), serde_json::json!(call.audience));
    body.insert("method".into(), Value::String(call.method.to_string()));
    body.insert("name".into(), serde_json::json!(call.name));
    body.insert("tid".into(), Value::String(call.token_id.to_string()));
    body
}

/// The text a holder signs for `call` at `iat` with `nonce`.
pub fn signed_text(call: &Call<'_>, iat: u64, nonce: &str) -> String {
    let mut body = call_body(call);
    body.insert("iat".into(), serde_json::json!(iat));
    body.insert("nonce".into(), Value::String(nonce.to_string()));
    format!("{DOMAIN}{}", jcs(&Value::Object(body)))
}

/// The request hash of `call`: what an approver signs (SCHEMA.md, "Signed
/// approvals"). SHA-256, lowercase hex, of `mcpvault-request-v1\n` and the
/// canonical JSON of the members a proof covers but its time and nonce.
pub fn request_hash(call: &Call<'_>) -> String {
    let text = format!(
        "mcpvault-request-v1\n{}",
        jcs(&Value::Object(call_body(call)))
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Signs `call` with the holder's private key (hex) at `now`: the proof to
/// send with it.
pub fn sign_call(
    holder_private_key: &str,
    call: &Call<'_>,
    now: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String> {
    let key = signing_key(holder_private_key, "holder")?;
    let mut n = [0u8; 16];
    rng.fill_bytes(&mut n);
    let nonce = hex::encode(n);
    let sig = sign_text(&key, &signed_text(call, now, &nonce));
    Ok(format!("{PREFIX}.{now}.{nonce}.{sig}"))
}

/// Unix seconds as proofs and approvals write them: 1 to 12 ASCII digits.
pub(crate) fn seconds(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `len` lowercase hex characters.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The Ed25519 signing key of a private key (hex); `what` names it in the error.
pub(crate) fn signing_key(private_key: &str, what: &str) -> Result<ed25519_dalek::SigningKey> {
    let bytes = key_bytes(private_key).ok_or_else(|| Error::InvalidKey {
        reason: format!("the {what}'s private key is 64 hex characters"),
    })?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

/// The signature of `text` by `key`, in unpadded base64url.
pub(crate) fn sign_text(key: &ed25519_dalek::SigningKey, text: &str) -> String {
    use ed25519_dalek::Signer;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(text.as_bytes()).to_bytes())
}

/// Checks a strict Ed25519 signature (unpadded base64url) by the public key
/// `key` (hex) over `text`; why it does not verify, for logs.
pub(crate) fn verify_signature(
    key: &str,
    text: &str,
    sig: &str,
) -> std::result::Result<(), String> {
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or("the signature is 64 bytes of unpadded base64url")?;
    let key = key_bytes(key)
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .ok_or("the key is not an Ed25519 public key")?;
    let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| format!("signature: {e}"))?;
    key.verify_strict(text.as_bytes(), &sig)
        .map_err(|e| format!("the signature does not verify: {e}"))
}

/// Checks `proof` for `call` against the holder's public key (hex) at `now`;
/// returns its nonce, to spend. `bad_proof` for a proof that does not parse or
/// whose signature does not verify (opaque to the caller), `proof_expired`
/// for one outside its window.
pub fn check_proof(holder: &str, call: &Call<'_>, proof: &str, now: u64) -> Result<String> {
    let bad = |detail: &str| Error::BadProof {
        detail: detail.to_string(),
    };
    let mut parts = proof.trim().split('.');
    let (Some(PREFIX), Some(iat), Some(nonce), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad("a proof is mvp1.IAT.NONCE.SIGNATURE"));
    };
    let iat = seconds(iat).ok_or_else(|| bad("iat is not unix seconds"))?;
    if !is_hex(nonce, 32) {
        return Err(bad("the nonce is 32 lowercase hex characters"));
    }
    verify_signature(holder, &signed_text(call, iat, nonce), sig)
        .map_err(|e| bad(&format!("{e} (the holder's, for this call)")))?;
    if iat > now.saturating_add(PROOF_SKEW) || now > iat.saturating_add(PROOF_WINDOW) {
        return Err(Error::ProofExpired { iat, now });
    }
    Ok(nonce.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use serde_json::json;

    #[test]
    #[allow(clippy::excessive_precision, reason = "RFC 8785's example, as written")]
    fn jcs_matches_rfc_8785() {
        // RFC 8785, 3.2.2 and 3.2.3
        let v = json!({"numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
            "string": "\u{20ac}$\u{000f}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/", "literals": [null, true, false]});
        assert_eq!(
            jcs(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        // RFC 8785, 3.2.3: UTF-16 order puts U+1F600 (a surrogate pair, D83D) before U+FB33
        let sorted = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control", "\u{00f6}": "Latin Small Letter O With Diaeresis"});
        assert_eq!(
            jcs(&sorted),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{0080}\":\"Control\",\"\u{00f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        for (x, s) in [
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (-0.5, "-0.5"),
            (1e-7, "1e-7"),
            (1.5e-6, "0.0000015"),
        ] {
            assert_eq!(jcs(&json!(x)), s);
        }
    }

    #[test]
    fn a_proof_binds_one_call_and_expires() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let holder = crate::keygen(&mut rng);
        let args = json!({"sql": "select 1"}).as_object().cloned().unwrap();
        let call = Call {
            token_id: "ab",
            method: "tools/call",
            name: Some("db_query"),
            arguments: &args,
            audience: None,
        };
        let now = 1_800_000_000;
        let p = sign_call(&holder.private_key, &call, now, &mut rng).unwrap();
        assert_eq!(
            check_proof(&holder.public_key, &call, &p, now + 10)
                .unwrap()
                .len(),
            32
        );
        let other_args = json!({"sql": "drop table x"}).as_object().cloned().unwrap();
        for wrong in [
            Call {
                name: Some("file_read"),
                ..call.clone()
            },
            Call {
                arguments: &other_args,
                ..call.clone()
            },
            Call {
                token_id: "cd",
                ..call.clone()
            },
            Call {
                audience: Some("other"),
                ..call.clone()
            },
            Call {
                method: "resources/read",
                ..call.clone()
            },
        ] {
            assert_eq!(
                check_proof(&holder.public_key, &wrong, &p, now)
                    .unwrap_err()
                    .code(),
                "bad_proof"
            );
        }
        let thief = crate::keygen(&mut rng);
        assert_eq!(
            check_proof(&thief.public_key, &call, &p, now)
                .unwrap_err()
                .code(),
            "bad_proof"
        );
        assert_eq!(
            check_proof(&holder.public_key, &call, &p, now + 61)
                .unwrap_err()
                .code(),
            "proof_expired"
        );
        assert_eq!(
            check_proof(&holder.public_key, &call, &p, now - 6)
                .unwrap_err()
                .code(),
            "proof_expired"
        );
        for garbage in [
            "",
            "mvp1",
            "mvp1.1.2.3",
            "mvp2.1800000000.00000000000000000000000000000000.AAAA",
            &p.replace("mvp1", "mvp2"),
            &format!("{p}.x"),
        ] {
            assert_eq!(
                check_proof(&holder.public_key, &call, garbage, now)
                    .unwrap_err()
                    .code(),
                "bad_proof"
            );
        }
    }
}
