//! The one error contract.
//!
//! Every failure of every operation is an [`Error`]. Its [`Error::code`] is a
//! stable snake_case string: the same code is the WIT error code, the JS
//! `err.code`, the CLI's stderr line and the expectation in `tests/vectors`.
//!
//! `Display` gives the message meant for the caller: lowercase, one line, no
//! final period. For signature and format failures that message is opaque on
//! purpose; the underlying reason is in [`Error::detail`], which is meant for
//! server-side logs only.

use std::fmt;

/// Why an operation failed. Codes are listed in `SCHEMA.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No token was presented with a call that needs one.
    MissingToken,
    /// The token could not be decoded, or is not an mcpvault token.
    MalformedToken {
        /// Server-side detail (never shown to the caller).
        detail: String,
    },
    /// A private or public key is not a valid 64-character hex Ed25519 key.
    InvalidKey {
        /// What is wrong with the key.
        reason: String,
    },
    /// A signature in the chain does not verify with the given root key.
    BadSignature {
        /// Server-side detail (never shown to the caller).
        detail: String,
    },
    /// The current time is at or past the expiry set by some block.
    Expired {
        /// The block whose check refused the request.
        block: usize,
        /// The Datalog source of that check.
        check: String,
    },
    /// The requested tool is not granted by every block.
    ToolNotAllowed {
        /// The requested tool.
        tool: String,
        /// The block whose check refused the request.
        block: usize,
        /// The Datalog source of that check.
        check: String,
    },
    /// An argument of the call is missing or outside a limit.
    ArgumentNotAllowed {
        /// The requested tool.
        tool: String,
        /// The block whose check refused the request.
        block: usize,
        /// The Datalog source of that check.
        check: String,
    },
    /// The token is bound to an audience the verifier did not name.
    WrongAudience {
        /// The block whose check refused the request.
        block: usize,
        /// The Datalog source of that check.
        check: String,
    },
    /// The token carries more attenuation blocks than a block allows.
    DepthExceeded {
        /// Number of attenuation blocks in the token.
        depth: usize,
        /// The block whose check refused the request.
        block: usize,
        /// The Datalog source of that check.
        check: String,
    },
    /// A check the verifier does not recognise (written by hand or by another
    /// tool) refused the request, or evaluating it failed.
    CheckFailed {
        /// The block whose check refused the request (unknown when evaluating
        /// the block's Datalog failed).
        block: Option<usize>,
        /// The Datalog source of that check.
        check: String,
    },
    /// The token exceeds a size limit or its Datalog exceeds the evaluation
    /// limits (facts, iterations, time).
    LimitsExceeded {
        /// Which limit.
        detail: String,
    },
    /// A revocation list names one of the token's revocation ids (the token,
    /// or one it was attenuated from, was revoked).
    Revoked {
        /// The revoked id found in the chain (hex).
        revocation_id: String,
    },
    /// A single-use token whose nonce was already spent on another call.
    Replayed {
        /// The spent nonce (hex).
        nonce: String,
    },
    /// A retry of a single-use call whose first execution has no recorded
    /// result (still running, or run by a layer that does not record results).
    InFlight {
        /// The call key of the first execution.
        call_key: String,
    },
    /// An MCP session was opened by another subject than the token's.
    SessionMismatch {
        /// Server-side detail (never shown to the caller).
        detail: String,
    },
    /// The token does not grant the resource a `resources/read` or
    /// `resources/subscribe` names.
    ResourceNotAllowed {
        /// The requested URI.
        resource: String,
        /// The refusing block.
        block: usize,
        /// Its check (or why no block grants it).
        check: String,
    },
    /// The token does not grant the prompt a `prompts/get` names.
    PromptNotAllowed {
        /// The requested prompt.
        prompt: String,
        /// The refusing block.
        block: usize,
        /// Its check (or why no block grants it).
        check: String,
    },
    /// A calls-per-period quota of the token is spent for this window.
    RateLimited {
        /// What was reached, for the caller.
        reason: String,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// A budget on a numeric argument would be passed by this call.
    BudgetExceeded {
        /// What was reached, for the caller.
        reason: String,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// The token is bound to a holder key and the call carries no proof.
    ProofRequired,
    /// The call's proof does not parse or its signature does not verify for
    /// this call and holder.
    BadProof {
        /// Server-side detail (never shown to the caller).
        detail: String,
    },
    /// The call's proof is outside its freshness window.
    ProofExpired {
        /// When it was signed (unix seconds).
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The token pins the called tool to a definition (its hash) that is not
    /// the server's current one, or the server did not say its definition.
    ToolDefinitionChanged {
        /// The requested tool.
        tool: String,
        /// Server-side detail (the hashes).
        detail: String,
    },
    /// The token or the server's policy requires signed approvals of this
    /// call that it does not carry.
    ApprovalRequired {
        /// The call's request hash: what an approver signs.
        request_hash: String,
        /// Who may approve (Ed25519 public keys, hex).
        approvers: Vec<String>,
        /// How many of them must.
        needed: u32,
        /// Server-side detail (why approvals sent did not count).
        detail: String,
    },
    /// A hard rule of the server's policy refused the call.
    RuleViolation {
        /// The rule's id.
        rule: String,
        /// The rule's message for the caller (its id when it has none).
        message: String,
    },
    /// A grant, restriction or request is not valid.
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// An unexpected failure inside the Biscuit library. Always a denial.
    Internal {
        /// Server-side detail (never shown to the caller).
        detail: String,
    },
}

/// Every error code, in the order `SCHEMA.md` documents them.
pub const ERROR_CODES: &[&str] = &[
    "missing_token",
    "malformed_token",
    "invalid_key",
    "bad_signature",
    "expired",
    "tool_not_allowed",
    "argument_not_allowed",
    "resource_not_allowed",
    "prompt_not_allowed",
    "wrong_audience",
    "depth_exceeded",
    "check_failed",
    "limits_exceeded",
    "revoked",
    "replayed",
    "in_flight",
    "session_mismatch",
    "rate_limited",
    "budget_exceeded",
    "proof_required",
    "bad_proof",
    "proof_expired",
    "tool_definition_changed",
    "approval_required",
    "rule_violation",
    "invalid_request",
    "internal_error",
];

impl Error {
    /// The stable snake_case code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::MissingToken => "missing_token",
            Error::MalformedToken { .. } => "malformed_token",
            Error::InvalidKey { .. } => "invalid_key",
            Error::BadSignature { .. } => "bad_signature",
            Error::Expired { .. } => "expired",
            Error::ToolNotAllowed { .. } => "tool_not_allowed",
            Error::ArgumentNotAllowed { .. } => "argument_not_allowed",
            Error::ResourceNotAllowed { .. } => "resource_not_allowed",
            Error::PromptNotAllowed { .. } => "prompt_not_allowed",
            Error::WrongAudience { .. } => "wrong_audience",
            Error::DepthExceeded { .. } => "depth_exceeded",
            Error::CheckFailed { .. } => "check_failed",
            Error::LimitsExceeded { .. } => "limits_exceeded",
            Error::Revoked { .. } => "revoked",
            Error::Replayed { .. } => "replayed",
            Error::InFlight { .. } => "in_flight",
            Error::SessionMismatch { .. } => "session_mismatch",
            Error::RateLimited { .. } => "rate_limited",
            Error::BudgetExceeded { .. } => "budget_exceeded",
            Error::ProofRequired => "proof_required",
            Error::BadProof { .. } => "bad_proof",
            Error::ProofExpired { .. } => "proof_expired",
            Error::ToolDefinitionChanged { .. } => "tool_definition_changed",
            Error::ApprovalRequired { .. } => "approval_required",
            Error::RuleViolation { .. } => "rule_violation",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Internal { .. } => "internal_error",
        }
    }

    /// The HTTP status of a refusal with this code (SCHEMA.md, "HTTP and
    /// JSON-RPC"): 400 for a request the caller got wrong, 401 for a token
    /// that cannot be used at all, 403 for a valid token that does not allow
    /// this call, 409 for a retry of a call still without a result, 429 for a spent quota, 500 for
    /// the verifier's own failures.
    pub fn http_status(&self) -> u16 {
        status_of_code(self.code())
    }

    /// Detail for server-side logs. For opaque errors this is the only place
    /// the underlying reason appears; for the others it repeats the message.
    pub fn detail(&self) -> String {
        match self {
            Error::MalformedToken { detail }
            | Error::BadProof { detail }
            | Error::BadSignature { detail }
            | Error::LimitsExceeded { detail }
            | Error::SessionMismatch { detail }
            | Error::Internal { detail } => detail.clone(),
            Error::ToolDefinitionChanged { detail, .. }
            | Error::ApprovalRequired { detail, .. } => {
                format!("{self}: {detail}")
            }
            Error::InFlight { call_key } => {
                format!("call {call_key} has no recorded result (running, or not recorded)")
            }
            Error::Revoked { revocation_id } => format!("revocation id {revocation_id} is revoked"),
            Error::Replayed { nonce } => format!("nonce {nonce} was already spent"),
            other => other.to_string(),
        }
    }

    /// The block and Datalog check that refused the request, for denials
    /// decided by a check.
    pub fn failed_check(&self) -> Option<(usize, &str)> {
        match self {
            Error::Expired { block, check }
            | Error::ToolNotAllowed { block, check, .. }
            | Error::ArgumentNotAllowed { block, check, .. }
            | Error::ResourceNotAllowed { block, check, .. }
            | Error::PromptNotAllowed { block, check, .. }
            | Error::WrongAudience { block, check }
            | Error::DepthExceeded { block, check, .. }
            | Error::CheckFailed {
                block: Some(block),
                check,
            } => Some((*block, check.as_str())),
            _ => None,
        }
    }

    /// Seconds after which a quota refusal may succeed (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::BudgetExceeded { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// What an `approval_required` refusal asks for: the request hash, the
    /// approvers and how many of them must sign.
    pub fn approval(&self) -> Option<(&str, &[String], u32)> {
        match self {
            Error::ApprovalRequired {
                request_hash,
                approvers,
                needed,
                ..
            } => Some((request_hash, approvers, *needed)),
            _ => None,
        }
    }

    /// True for failures caused by the caller's own input (a bad key, grant,
    /// restriction or request) rather than by the token or the authorization.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidKey { .. } | Error::InvalidRequest { .. }
        )
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Error::MalformedToken {
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::MissingToken => f.write_str("no mcpvault token was presented"),
            Error::MalformedToken { .. } => f.write_str("token is malformed"),
            Error::InvalidKey { reason } => write!(f, "invalid key: {reason}"),
            Error::BadSignature { .. } => f.write_str("token signature is not valid"),
            Error::Expired { block, .. } => write!(f, "token expired (block {block})"),
            Error::ToolNotAllowed { tool, block, .. } => {
                write!(f, "tool {tool:?} is not allowed (refused by block {block})")
            }
            Error::ArgumentNotAllowed { tool, block, .. } => write!(
                f,
                "arguments of tool {tool:?} are not allowed (refused by block {block})"
            ),
            Error::ResourceNotAllowed {
                resource, block, ..
            } => write!(
                f,
                "resource {resource:?} is not allowed (refused by block {block})"
            ),
            Error::PromptNotAllowed { prompt, block, .. } => {
                write!(f, "prompt {prompt:?} is not allowed (refused by block {block})")
            }
            Error::WrongAudience { block, .. } => write!(
                f,
                "token is meant for another audience (refused by block {block})"
            ),
            Error::DepthExceeded { depth, block, .. } => write!(
                f,
                "delegation depth {depth} exceeds the maximum (refused by block {block})"
            ),
            Error::CheckFailed {
                block: Some(block), ..
            } => write!(f, "a check refused the request (block {block})"),
            Error::CheckFailed { block: None, .. } => {
                f.write_str("evaluating a check of the token failed")
            }
            Error::LimitsExceeded { .. } => f.write_str("token exceeds the verifier's limits"),
            Error::Revoked { .. } => f.write_str("token has been revoked"),
            Error::Replayed { .. } => f.write_str(
                "already used: a single-use token, a proof or an approval is used once",
            ),
            Error::InFlight { .. } => f.write_str(
                "this single-use call was already accepted and has no recorded result yet: do not retry it",
            ),
            Error::SessionMismatch { .. } => {
                f.write_str("this session was opened with a token for another subject")
            }
            Error::RateLimited {
                reason,
                retry_after,
            } => write!(f, "rate limit reached: {reason}; retry in {retry_after} s"),
            Error::BudgetExceeded {
                reason,
                retry_after,
            } => write!(f, "budget reached: {reason}; retry in {retry_after} s"),
            Error::ProofRequired => f.write_str(
                "this token is bound to a holder key: the call needs a proof signed by it (_meta[\"mcpvault/proof\"])",
            ),
            Error::BadProof { .. } => f.write_str("the call's proof is not valid"),
            Error::ProofExpired { iat, now } => write!(
                f,
                "the call's proof has expired (signed at {iat}, now {now}): sign the call again"
            ),
            Error::ToolDefinitionChanged { tool, .. } => write!(
                f,
                "tool {tool:?} is not the one the token was granted for: its definition changed since the token pinned it"
            ),
            Error::ApprovalRequired {
                request_hash,
                needed,
                ..
            } => write!(
                f,
                "this call needs {needed} signed approval(s) of request {request_hash} (_meta[\"mcpvault/approvals\"])"
            ),
            Error::RuleViolation { rule, message } => {
                write!(f, "refused by the server's rule {rule:?}: {message}")
            }
            Error::InvalidRequest { reason } => write!(f, "invalid request: {reason}"),
            Error::Internal { .. } => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for Error {}

/// The HTTP status of a code ([`Error::http_status`]); 500 for an unknown one.
pub fn status_of_code(code: &str) -> u16 {
    match code {
        "malformed_token" | "bad_signature" | "expired" | "revoked" | "replayed"
        | "limits_exceeded" | "wrong_audience" | "missing_token" | "proof_required"
        | "bad_proof" | "proof_expired" => 401,
        "tool_not_allowed"
        | "argument_not_allowed"
        | "resource_not_allowed"
        | "prompt_not_allowed"
        | "depth_exceeded"
        | "check_failed"
        | "session_mismatch"
        | "tool_definition_changed"
        | "approval_required"
        | "rule_violation" => 403,
        "in_flight" => 409,
        "rate_limited" | "budget_exceeded" => 429,
        "invalid_request" => 400,
        _ => 500,
    }
}

/// The JSON-RPC error code of an HTTP status: -32600 (invalid request) for
/// 400, -32603 (internal error) for 500, and implementation-defined server
/// errors for the others: -32011 for 401, -32013 for 403, -32009 for 409,
/// -32029 for 429.
pub fn rpc_code_of_status(status: u16) -> i64 {
    match status {
        // 404: a session the server does not know (an invalid request)
        400 | 404 => -32600,
        401 => -32011,
        403 => -32013,
        409 => -32009,
        429 => -32029,
        _ => -32603,
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
