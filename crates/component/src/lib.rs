//! The mcpvault core as a WebAssembly component (world `mcpvault:authz/authorizer`).
//!
//! A thin guest: every function converts WIT values into the core's types,
//! calls the core, and converts back. Time is the call's `now` when given,
//! else the WASI wall clock; randomness is WASI's.

mod bindings {
    wit_bindgen::generate!({
        world: "authorizer",
        path: "../../wit",
    });
}

use bindings::exports::mcpvault::authz::authorize::Guest;
use bindings::exports::mcpvault::authz::types as wit;
use mcpvault::audit::{self, AuditEntry, AuditRecord};
use rand_core::OsRng;

struct Component;

bindings::export!(Component with_types_in bindings);

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn code(e: &mcpvault::Error) -> wit::ErrorCode {
    use wit::ErrorCode as C;
    match e.code() {
        "malformed_token" => C::MalformedToken,
        "invalid_key" => C::InvalidKey,
        "bad_signature" => C::BadSignature,
        "expired" => C::Expired,
        "tool_not_allowed" => C::ToolNotAllowed,
        "argument_not_allowed" => C::ArgumentNotAllowed,
        "wrong_audience" => C::WrongAudience,
        "depth_exceeded" => C::DepthExceeded,
        "check_failed" => C::CheckFailed,
        "limits_exceeded" => C::LimitsExceeded,
        "revoked" => C::Revoked,
        "replayed" => C::Replayed,
        "invalid_request" => C::InvalidRequest,
        _ => C::InternalError,
    }
}

fn error(e: mcpvault::Error) -> wit::Error {
    let failed = e.failed_check();
    wit::Error {
        code: code(&e),
        message: e.to_string(),
        failed_block: failed.and_then(|(b, _)| u32::try_from(b).ok()),
        failed_check: failed.map(|(_, c)| c.to_string()),
    }
}

fn scalar(s: wit::Scalar) -> mcpvault::Scalar {
    match s {
        wit::Scalar::Boolean(b) => mcpvault::Scalar::Bool(b),
        wit::Scalar::Integer(i) => mcpvault::Scalar::Int(i),
        wit::Scalar::Text(t) => mcpvault::Scalar::Str(t),
    }
}

fn arg_limit(l: wit::ArgLimit) -> mcpvault::ArgLimit {
    use mcpvault::ArgRule as R;
    let rule = match l.rule {
        wit::ArgRule::Prefix(p) => R::Prefix(p),
        wit::ArgRule::Eq(v) => R::Eq(scalar(v)),
        wit::ArgRule::OneOf(vs) => R::OneOf(vs.into_iter().map(scalar).collect()),
        wit::ArgRule::Max(m) => R::Max(m),
        wit::ArgRule::Min(m) => R::Min(m),
    };
    mcpvault::ArgLimit {
        tool: l.tool,
        arg: l.arg,
        rule,
    }
}

fn request(r: wit::Request) -> Result<mcpvault::Request, wit::Error> {
    let arguments = mcpvault::Request::arguments_from_json(r.arguments.as_deref().unwrap_or(""))
        .map_err(error)?;
    Ok(mcpvault::Request {
        method: r.method.unwrap_or_else(|| mcpvault::TOOLS_CALL.to_string()),
        tool: r.tool,
        arguments,
        audience: r.audience,
    })
}

fn facts(f: mcpvault::AuthorizedFacts) -> wit::AuthorizedFacts {
    wit::AuthorizedFacts {
        tool: f.tool,
        tools: f.tools,
        issuer: f.issuer,
        subject: f.subject,
        expires_at: f.expires_at,
        depth: u32::try_from(f.depth).unwrap_or(u32::MAX),
        audience: f.audience,
        max_depth: f.max_depth,
        revocation_ids: f.revocation_ids,
        nonces: f.nonces,
    }
}

impl Guest for Component {
    fn keygen() -> wit::Keypair {
        let k = mcpvault::keygen(&mut OsRng);
        wit::Keypair {
            private_key: k.private_key.clone(),
            public_key: k.public_key.clone(),
        }
    }

    fn mint(
        private_key: String,
        grant: wit::Grant,
        now: Option<u64>,
    ) -> Result<String, wit::Error> {
        let grant = mcpvault::Grant {
            tools: grant.tools,
            ttl: grant.ttl,
            issuer: grant.issuer,
            subject: grant.subject,
            audience: grant.audience,
            max_depth: grant.max_depth,
            arg_limits: grant.arg_limits.into_iter().map(arg_limit).collect(),
            single_use: grant.single_use,
        };
        mcpvault::mint(
            &private_key,
            &grant,
            now.unwrap_or_else(wall_clock),
            &mut OsRng,
        )
        .map_err(error)
    }

    fn attenuate(
        token: String,
        restriction: wit::Restriction,
        now: Option<u64>,
    ) -> Result<wit::Attenuated, wit::Error> {
        let r = mcpvault::Restriction {
            tools: restriction.tools,
            ttl: restriction.ttl,
            audience: restriction.audience,
            max_depth: restriction.max_depth,
            arg_limits: restriction.arg_limits.into_iter().map(arg_limit).collect(),
            single_use: restriction.single_use,
        };
        mcpvault::attenuate(&token, &r, now.unwrap_or_else(wall_clock), &mut OsRng)
            .map(|a| wit::Attenuated {
                token: a.token,
                warnings: a.warnings,
            })
            .map_err(error)
    }

    fn verify(
        token: String,
        public_key: String,
        req: wit::Request,
    ) -> Result<wit::AuthorizedFacts, wit::Error> {
        let now = req.now.unwrap_or_else(wall_clock);
        let req = request(req)?;
        mcpvault::verify(&token, &public_key, &req, now)
            .map(facts)
            .map_err(error)
    }

    fn inspect(token: String) -> Result<String, wit::Error> {
        let inspection = mcpvault::inspect(&token).map_err(error)?;
        to_json(&inspection)
    }

    fn audit_append(
        prev: Option<String>,
        decision: wit::AuditRecord,
    ) -> Result<String, wit::Error> {
        let record = decision;
        let prev: Option<AuditEntry> =
            prev.map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| {
                    error(mcpvault::Error::InvalidRequest {
                        reason: format!("prev: {e}"),
                    })
                })?;
        let record = AuditRecord {
            time: record.time,
            allowed: record.allowed,
            code: record.code,
            method: record.method,
            tool: record.tool,
            subject: record.subject,
            issuer: record.issuer,
            revocation_ids: record.revocation_ids,
            request_id: record.request_id,
        };
        let entry = audit::audit_append(prev.as_ref(), record).map_err(error)?;
        to_json(&entry)
    }

    fn audit_verify(entries: Vec<String>) -> Result<wit::AuditSummary, wit::AuditBreak> {
        let values = audit::entries_from_lines(entries.iter().map(String::as_str));
        match audit::audit_verify(&values) {
            Ok(s) => Ok(wit::AuditSummary {
                entries: s.entries as u64,
                head: s.head,
            }),
            Err(b) => Err(wit::AuditBreak {
                index: b.index as u64,
                seq: b.seq,
                kind: match b.kind {
                    audit::BreakKind::Edited => wit::AuditBreakKind::Edited,
                    audit::BreakKind::Deleted => wit::AuditBreakKind::Deleted,
                    audit::BreakKind::Reordered => wit::AuditBreakKind::Reordered,
                    audit::BreakKind::Broken => wit::AuditBreakKind::Broken,
                },
                detail: b.detail,
            }),
        }
    }

    fn call_key(request_id: String, req: wit::Request) -> Result<String, wit::Error> {
        let req = request(req)?;
        Ok(audit::call_key(
            &request_id,
            &req.method,
            req.tool.as_deref(),
            &req.arguments,
        ))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, wit::Error> {
    serde_json::to_string(value).map_err(|e| {
        error(mcpvault::Error::Internal {
            detail: e.to_string(),
        })
    })
}
