//! Signed human approvals (SCHEMA.md, "Signed approvals"): a token or the
//! server's policy may require that a call be approved by M of N listed
//! approver keys. The refusal (`approval_required`) names the call's request
//! hash ([`crate::proof::request_hash`]) and who may approve; an approver
//! signs an approval of that hash with a short expiry; the client sends the
//! call again with the approvals in `_meta["mcpvault/approvals"]`. Each
//! approval is spent in the replay store, so it approves one call once.
//!
//! An approval is `mva1.APPROVER.EXP.NONCE.SIGNATURE`: the approver's public
//! key (64 hex), the unix second it expires, 32 hex of nonce and an Ed25519
//! signature (unpadded base64url) over `mcpvault-approval-v1\n` followed by
//! the canonical JSON of `{"exp", "nonce", "request"}`.

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::proof::{is_hex, jcs, seconds, sign_text, signing_key, verify_signature};

/// The longest an approval may live, in seconds.
pub const MAX_APPROVAL_TTL: u64 = 3600;
/// Most approvers one requirement lists.
pub const MAX_APPROVERS: usize = 16;
/// Most approvals one call carries.
pub const MAX_APPROVALS: usize = 16;
/// Signature checks of one approver's approvals per call.
pub const TRIES_PER_APPROVER: u8 = 2;
const DOMAIN: &str = "mcpvault-approval-v1\n";
const PREFIX: &str = "mva1";

/// Approvals a call needs: `needed` distinct keys of `approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The tool whose calls need it (in a token: required; in a server's
    /// requirement of one call, the call's tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Ed25519 public keys (hex) of who may approve.
    pub approvers: Vec<String>,
    /// How many of them must (default 1).
    #[serde(default = "one")]
    pub needed: u32,
}

fn one() -> u32 {
    1
}

/// An approval that counted for a call: spend its nonce, record its approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// The approver's public key (hex).
    pub approver: String,
    /// The approval's nonce (the store spends `approval:NONCE`).
    pub nonce: String,
    /// When it expires (unix seconds): the store keeps the nonce until then.
    pub expires_at: u64,
}

/// Checks a requirement as a grant, restriction or policy states it: 1 to
/// [`MAX_APPROVERS`] distinct Ed25519 keys, `needed` between 1 and their
/// number. Keys come back as lowercase hex.
pub(crate) fn check_requirement(r: &Requirement) -> Result<Requirement> {
    if let Some(t) = &r.tool {
        crate::model::check_tool_name(t)?;
    }
    let mut keys = std::collections::BTreeSet::new();
    for a in &r.approvers {
        let k = crate::ops::holder_key(a)
            .map_err(|_| Error::invalid(format!("approver {a:?} is not an Ed25519 public key")))?;
        keys.insert(k);
    }
    if keys.is_empty() || keys.len() > MAX_APPROVERS || keys.len() != r.approvers.len() {
        return Err(Error::invalid(format!(
            "an approval requirement lists 1 to {MAX_APPROVERS} distinct approvers"
        )));
    }
    if r.needed == 0 || r.needed as usize > keys.len() {
        return Err(Error::invalid(format!(
            "approvals needed is 1 to the number of approvers ({})",
            keys.len()
        )));
    }
    Ok(Requirement {
        tool: r.tool.clone(),
        approvers: keys.into_iter().collect(),
        needed: r.needed,
    })
}

fn signed_text(request_hash: &str, exp: u64, nonce: &str) -> String {
    let body = json!({"exp": exp, "nonce": nonce, "request": request_hash});
    format!("{DOMAIN}{}", jcs(&body))
}

/// An approval of `request_hash` by the approver's private key (hex),
/// valid for `ttl` seconds from `now` (1 to [`MAX_APPROVAL_TTL`]).
pub fn approve(
    approver_private_key: &str,
    request_hash: &str,
    now: u64,
    ttl: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String> {
    let hash = request_hash.trim().to_ascii_lowercase();
    if !is_hex(&hash, 64) {
        return Err(Error::invalid(
            "a request hash is 64 hex characters (the approval_required error gives it)",
        ));
    }
    if ttl == 0 || ttl > MAX_APPROVAL_TTL {
        return Err(Error::invalid(format!(
            "an approval lives 1 to {MAX_APPROVAL_TTL} seconds"
        )));
    }
    let key = signing_key(approver_private_key, "approver")?;
    let public = hex::encode(key.verifying_key().to_bytes());
    let mut n = [0u8; 16];
    rng.fill_bytes(&mut n);
    let nonce = hex::encode(n);
    let exp = now.saturating_add(ttl);
    let sig = sign_text(&key, &signed_text(&hash, exp, &nonce));
    Ok(format!("{PREFIX}.{public}.{exp}.{nonce}.{sig}"))
}

/// One approval checked for `request_hash` at `now`: its approver, nonce and
/// expiry, or why it does not count (for logs).
/// The cheap checks (shape, listed approver, tries, time) come before the signature, so a call costs at most
/// [`TRIES_PER_APPROVER`] signature checks per listed approver, however many approvals it carries.
fn check_one(
    approval: &str,
    request_hash: &str,
    now: u64,
    listed: &std::collections::BTreeSet<&str>,
    tried: &mut std::collections::BTreeMap<String, u8>,
) -> std::result::Result<Used, String> {
    let mut parts = approval.trim().split('.');
    let (Some(PREFIX), Some(approver), Some(exp), Some(nonce), Some(sig), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err("an approval is mva1.APPROVER.EXP.NONCE.SIGNATURE".into());
    };
    if !is_hex(approver, 64) || !is_hex(nonce, 32) {
        return Err("the approver is 64 and the nonce 32 lowercase hex characters".into());
    }
    let exp = seconds(exp).ok_or("exp is not unix seconds")?;
    if !listed.contains(approver) {
        return Err("not a listed approver".into());
    }
    // at most two signature checks per approver and call (a stale approval next to a fresh one), none after one
    // counted
    let n = tried.entry(approver.to_string()).or_insert(0);
    if *n >= TRIES_PER_APPROVER {
        return Err("a second approval of the same approver".into());
    }
    *n += 1;
    if now >= exp {
        return Err(format!("expired at {exp} (now {now})"));
    }
    if exp > now.saturating_add(MAX_APPROVAL_TTL + crate::proof::PROOF_SKEW) {
        return Err(format!("expires more than {MAX_APPROVAL_TTL} s from now"));
    }
    verify_signature(approver, &signed_text(request_hash, exp, nonce), sig)
        .map_err(|e| format!("{e} (the approver's, for this request)"))?;
    Ok(Used {
        approver: approver.to_string(),
        nonce: nonce.to_string(),
        expires_at: exp,
    })
}

/// Checks that `approvals` satisfy every requirement for the call whose
/// request hash is `request_hash`; returns the approvals that counted, to
/// spend. `approval_required` names the first requirement not met.
pub(crate) fn check(
    requirements: &[Requirement],
    approvals: &[String],
    request_hash: &str,
    now: u64,
) -> Result<Vec<Used>> {
    if requirements.is_empty() {
        return Ok(Vec::new());
    }
    let mut valid: Vec<Used> = Vec::new();
    let mut why: Vec<String> = Vec::new();
    // extended, not collected: collecting a set sorts first, one more copy of the sort in the .wasm
    let mut listed: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    listed.extend(
        requirements
            .iter()
            .flat_map(|r| r.approvers.iter().map(String::as_str)),
    );
    let mut tried = std::collections::BTreeMap::new();
    for (i, a) in approvals.iter().take(MAX_APPROVALS).enumerate() {
        match check_one(a, request_hash, now, &listed, &mut tried) {
            Ok(u) => {
                tried.insert(u.approver.clone(), TRIES_PER_APPROVER);
                valid.push(u)
            }
            Err(e) => why.push(format!("approval {i}: {e}")),
        }
    }
    if approvals.len() > MAX_APPROVALS {
        why.push(format!(
            "approvals after the first {MAX_APPROVALS} are not read"
        ));
    }
    let mut used: Vec<Used> = Vec::new();
    for r in requirements {
        let from: Vec<&Used> = valid
            .iter()
            .filter(|u| r.approvers.contains(&u.approver))
            .collect();
        if (from.len() as u64) < u64::from(r.needed) {
            let mut detail = format!(
                "{} of {} approvals of {} listed approvers",
                from.len(),
                r.needed,
                r.approvers.len()
            );
            if !why.is_empty() {
                detail.push_str(&format!("; {}", why.join("; ")));
            }
            return Err(Error::ApprovalRequired {
                request_hash: request_hash.to_string(),
                approvers: r.approvers.clone(),
                needed: r.needed,
                detail,
            });
        }
        for u in from {
            if used.iter().all(|x| x.nonce != u.nonce) {
                used.push(u.clone());
            }
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn m_of_n_distinct_fresh_approvals_of_this_request() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let (a, b, c) = (
            crate::keygen(&mut rng),
            crate::keygen(&mut rng),
            crate::keygen(&mut rng),
        );
        let hash = "ab".repeat(32);
        let other = "cd".repeat(32);
        let now = 1_800_000_000;
        let req = Requirement {
            tool: Some("pay".into()),
            approvers: vec![a.public_key.clone(), b.public_key.clone()],
            needed: 2,
        };
        let req = check_requirement(&req).unwrap();
        let by = |k: &crate::KeyPairHex, h: &str, rng: &mut rand_chacha::ChaCha20Rng| {
            approve(&k.private_key, h, now, 300, rng).unwrap()
        };
        let (pa, pb, pc) = (
            by(&a, &hash, &mut rng),
            by(&b, &hash, &mut rng),
            by(&c, &hash, &mut rng),
        );
        let ok = check(
            std::slice::from_ref(&req),
            &[pa.clone(), pb.clone()],
            &hash,
            now + 10,
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        let refused = |approvals: &[String], at: u64| {
            let e = check(std::slice::from_ref(&req), approvals, &hash, at).unwrap_err();
            assert_eq!(e.code(), "approval_required");
            e
        };
        // one is not two; the same approver twice is one; an unlisted approver does not count
        refused(std::slice::from_ref(&pa), now);
        refused(&[pa.clone(), pa.clone()], now);
        refused(&[pa.clone(), pc.clone()], now);
        // another request's approval, an expired one, garbage
        refused(&[pa.clone(), by(&b, &other, &mut rng)], now);
        refused(&[pa.clone(), pb.clone()], now + 300);
        refused(&[pa.clone(), "mva1.x.y.z.w".into(), String::new()], now);
        let tampered = pb.replacen(&(now + 300).to_string(), &(now + 3000).to_string(), 1);
        refused(&[pa.clone(), tampered], now);
        // an approval living longer than the maximum is refused
        let e = approve(&a.private_key, &hash, now, MAX_APPROVAL_TTL + 1, &mut rng).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(refused(&[pa], now).to_string().contains(&hash));
        // requirement shapes
        for bad in [
            Requirement {
                tool: None,
                approvers: vec![],
                needed: 1,
            },
            Requirement {
                tool: None,
                approvers: vec![a.public_key.clone()],
                needed: 2,
            },
            Requirement {
                tool: None,
                approvers: vec![a.public_key.clone()],
                needed: 0,
            },
            Requirement {
                tool: None,
                approvers: vec![a.public_key.clone(), a.public_key.clone()],
                needed: 1,
            },
            Requirement {
                tool: None,
                approvers: vec!["zz".into()],
                needed: 1,
            },
        ] {
            assert_eq!(
                check_requirement(&bad).unwrap_err().code(),
                "invalid_request"
            );
        }
    }
}
