//! Typed inputs and outputs of the operations, and their validation.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Latest expiry a token may carry: 9999-12-31T23:59:59Z. Biscuit dates are
/// printed as RFC 3339, which has four-digit years.
pub const MAX_EXPIRES_AT: u64 = 253_402_300_799;
/// Most tools one block may name.
pub const MAX_TOOLS: usize = 256;
/// Most argument limits one block may carry.
pub const MAX_ARG_LIMITS: usize = 64;
/// Most values in a `one_of` limit.
pub const MAX_ONE_OF: usize = 256;
/// Longest tool, argument, issuer, subject or audience name, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest string value in a limit, in bytes.
pub const MAX_VALUE_LEN: usize = 4096;
/// Most scalar arguments a request may carry.
pub const MAX_REQUEST_ARGS: usize = 256;
/// The MCP method of a tool call.
pub const TOOLS_CALL: &str = "tools/call";

/// A scalar JSON value an argument limit compares against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A string.
    Str(String),
}

/// How an argument is limited.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum ArgRule {
    /// The argument is a string starting with this prefix.
    Prefix(String),
    /// The argument equals this value (same type).
    Eq(Scalar),
    /// The argument equals one of these values (all strings or all integers).
    OneOf(Vec<Scalar>),
    /// The argument is an integer no greater than this.
    Max(i64),
    /// The argument is an integer no smaller than this.
    Min(i64),
}

/// A limit on one named argument of one named tool. A call of that tool whose
/// argument is missing, of another type, or outside the limit is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ArgLimit {
    /// The tool the limit applies to.
    pub tool: String,
    /// The argument name (a top-level key of the call's `arguments`).
    pub arg: String,
    /// The limit.
    #[serde(flatten)]
    pub rule: ArgRule,
}

/// What an issuer grants when it mints a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Tools the token may call (at least one).
    pub tools: Vec<String>,
    /// Lifetime in seconds from `now`.
    pub ttl: u64,
    /// Who minted the token.
    pub issuer: String,
    /// Who the token is for (the agent).
    pub subject: String,
    /// The MCP server the token is meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Most attenuation blocks the token may carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Argument limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arg_limits: Vec<ArgLimit>,
    /// A single-use token: `mint` writes a random `nonce` fact, which a
    /// verifier's replay store lets through once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_use: bool,
}

impl Grant {
    /// A grant of `tools` for `ttl` seconds from `issuer` to `subject`, with no
    /// audience, depth or argument limits (set those fields when needed).
    pub fn new(
        tools: impl IntoIterator<Item = impl Into<String>>,
        ttl: u64,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Grant {
            tools: tools.into_iter().map(Into::into).collect(),
            ttl,
            issuer: issuer.into(),
            subject: subject.into(),
            audience: None,
            max_depth: None,
            arg_limits: Vec::new(),
            single_use: false,
        }
    }
}

/// What a holder adds when it attenuates a token. Every field only narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// Tools the attenuated token may call (a subset of the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Lifetime in seconds from `now`; the parent's expiry still applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The MCP server the attenuated token is meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Most attenuation blocks the token may carry, counting this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Further argument limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arg_limits: Vec<ArgLimit>,
    /// Make the attenuated token single-use (a random `nonce` fact in this
    /// block); every token derived from it shares that one use.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_use: bool,
}

fn default_method() -> String {
    TOOLS_CALL.to_string()
}

/// The call a verifier is asked to authorize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The MCP method. Defaults to `tools/call`; any other method needs a
    /// valid token but no tool grant.
    #[serde(default = "default_method")]
    pub method: String,
    /// The requested tool (required for `tools/call`, absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The call's arguments (a JSON object).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// The verifier's own audience name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Request {
    /// A `tools/call` request for `tool` with no arguments.
    pub fn tool(tool: impl Into<String>) -> Self {
        Request {
            method: default_method(),
            tool: Some(tool.into()),
            arguments: serde_json::Map::new(),
            audience: None,
        }
    }

    /// Sets the call's arguments.
    pub fn with_arguments(mut self, arguments: serde_json::Map<String, serde_json::Value>) -> Self {
        self.arguments = arguments;
        self
    }

    /// Parses a call's arguments from JSON text: an object, or empty for none.
    pub fn arguments_from_json(json: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        if json.trim().is_empty() {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_str(json) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err(Error::invalid("arguments must be a JSON object")),
            Err(e) => Err(Error::invalid(format!("arguments are not JSON: {e}"))),
        }
    }

    /// Sets the verifier's audience name.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

/// What a successful verification establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedFacts {
    /// Always true: the chain's signatures verified and every check passed.
    pub verified: bool,
    /// The tool that was authorized (absent for methods other than `tools/call`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Tools every block allows, sorted.
    pub tools: Vec<String>,
    /// Who minted the token.
    pub issuer: String,
    /// Who the token is for.
    pub subject: String,
    /// Earliest expiry of all blocks, unix seconds.
    pub expires_at: u64,
    /// Number of attenuation blocks.
    pub depth: usize,
    /// The audience the token is bound to, if any.
    pub audience: Option<String>,
    /// The smallest max delegation depth any block sets, if any.
    pub max_depth: Option<u64>,
    /// Revocation ids, hex, one per block (authority first).
    pub revocation_ids: Vec<String>,
    /// Nonces of single-use blocks, hex (absent when none): a replay store
    /// lets a call through only if none was spent before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nonces: Vec<String>,
}

/// An Ed25519 key pair as hex. The private key is wiped from memory when the
/// value is dropped, and `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
pub struct KeyPairHex {
    /// 32-byte private key (seed), 64 hex characters.
    pub private_key: String,
    /// 32-byte public key, 64 hex characters.
    #[zeroize(skip)]
    pub public_key: String,
}

impl std::fmt::Debug for KeyPairHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairHex")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// The result of an attenuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attenuated {
    /// The attenuated token (base64url).
    pub token: String,
    /// Things that narrowed less than asked, or made the token unusable.
    pub warnings: Vec<String>,
}

pub(crate) fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "{what} is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    check_datalog_string(what, value)
}

/// Biscuit 6 prints strings without escaping `"` and `\` (its parser needs
/// them escaped), so a block holding them cannot be read back. mcpvault never
/// writes such strings; see SCHEMA.md, "Strings".
pub(crate) fn check_datalog_string(what: &str, value: &str) -> Result<()> {
    if value
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(Error::invalid(format!(
            "{what} contains a control character, '\"' or '\\'"
        )));
    }
    Ok(())
}

/// Tool names follow MCP: 1–128 characters of `A-Z a-z 0-9 _ - . /`.
pub(crate) fn check_tool_name(tool: &str) -> Result<()> {
    let ok = !tool.is_empty()
        && tool.len() <= 128
        && tool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "tool name {tool:?} must be 1-128 characters of A-Z a-z 0-9 _ - . /"
        )))
    }
}

pub(crate) fn check_tools(tools: &[String]) -> Result<BTreeSet<String>> {
    if tools.is_empty() {
        return Err(Error::invalid("tools is empty"));
    }
    if tools.len() > MAX_TOOLS {
        return Err(Error::invalid(format!("more than {MAX_TOOLS} tools")));
    }
    for tool in tools {
        check_tool_name(tool)?;
    }
    Ok(tools.iter().cloned().collect())
}

fn check_scalar(value: &Scalar) -> Result<()> {
    match value {
        Scalar::Str(s) if s.len() > MAX_VALUE_LEN => Err(Error::invalid(format!(
            "limit value is longer than {MAX_VALUE_LEN} bytes"
        ))),
        Scalar::Str(s) => check_datalog_string("limit value", s),
        _ => Ok(()),
    }
}

pub(crate) fn check_arg_limits(limits: &[ArgLimit]) -> Result<()> {
    if limits.len() > MAX_ARG_LIMITS {
        return Err(Error::invalid(format!(
            "more than {MAX_ARG_LIMITS} argument limits"
        )));
    }
    for limit in limits {
        check_tool_name(&limit.tool)?;
        check_name("argument name", &limit.arg)?;
        match &limit.rule {
            ArgRule::Prefix(p) => check_scalar(&Scalar::Str(p.clone()))?,
            ArgRule::Eq(v) => check_scalar(v)?,
            ArgRule::OneOf(values) => {
                if values.is_empty() || values.len() > MAX_ONE_OF {
                    return Err(Error::invalid(format!(
                        "one_of needs 1 to {MAX_ONE_OF} values"
                    )));
                }
                let all_str = values.iter().all(|v| matches!(v, Scalar::Str(_)));
                let all_int = values.iter().all(|v| matches!(v, Scalar::Int(_)));
                if !(all_str || all_int) {
                    return Err(Error::invalid(
                        "one_of values must be all strings or all integers",
                    ));
                }
                values.iter().try_for_each(check_scalar)?;
            }
            ArgRule::Max(_) | ArgRule::Min(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn expiry(now: u64, ttl: u64) -> Result<u64> {
    if ttl == 0 {
        return Err(Error::invalid("ttl must be at least 1 second"));
    }
    match now.checked_add(ttl) {
        Some(at) if at <= MAX_EXPIRES_AT => Ok(at),
        _ => Err(Error::invalid("expiry is after 9999-12-31T23:59:59Z")),
    }
}

impl Grant {
    pub(crate) fn validate(&self) -> Result<BTreeSet<String>> {
        let tools = check_tools(&self.tools)?;
        check_name("issuer", &self.issuer)?;
        check_name("subject", &self.subject)?;
        if let Some(aud) = &self.audience {
            check_name("audience", aud)?;
        }
        check_arg_limits(&self.arg_limits)?;
        Ok(tools)
    }
}

impl Restriction {
    pub(crate) fn validate(&self) -> Result<Option<BTreeSet<String>>> {
        let tools = self.tools.as_deref().map(check_tools).transpose()?;
        if let Some(aud) = &self.audience {
            check_name("audience", aud)?;
        }
        check_arg_limits(&self.arg_limits)?;
        if self.tools.is_none()
            && self.ttl.is_none()
            && self.audience.is_none()
            && self.max_depth.is_none()
            && self.arg_limits.is_empty()
            && !self.single_use
        {
            return Err(Error::invalid("restriction narrows nothing"));
        }
        Ok(tools)
    }
}

fn spec_value(raw: &str) -> Scalar {
    let raw = raw.trim();
    if let Ok(i) = raw.parse::<i64>() {
        return Scalar::Int(i);
    }
    match raw {
        "true" => return Scalar::Bool(true),
        "false" => return Scalar::Bool(false),
        _ => {}
    }
    if raw.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(raw) {
            return Scalar::Str(s);
        }
    }
    Scalar::Str(raw.to_string())
}

impl ArgLimit {
    /// Parses the CLI's `TOOL.ARG<op>VALUE` (`<=`, `>=`, `^=` prefix, `=`,
    /// ` in ` a comma list); the tool/argument split is at the last dot
    /// before the operator, since MCP tool names may contain dots. The result
    /// is checked like any other limit when it is minted or attenuated.
    pub fn from_spec(spec: &str) -> Result<ArgLimit> {
        const OPS: [&str; 5] = [" in ", "<=", ">=", "^=", "="];
        let (at, op) = OPS
            .iter()
            .filter_map(|op| spec.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, usize::MAX - op.len()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{spec:?}: expected TOOL.ARG followed by <=, >=, ^=, = or ' in '"
                ))
            })?;
        let (lhs, rhs) = (
            spec.get(..at).unwrap_or(""),
            spec.get(at + op.len()..).unwrap_or(""),
        );
        let (tool, arg) = lhs.trim().rsplit_once('.').ok_or_else(|| {
            Error::invalid(format!("{spec:?}: expected TOOL.ARG before the operator"))
        })?;
        let int = |v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| Error::invalid(format!("{spec:?}: {v:?} is not an integer")))
        };
        let rule = match op {
            "<=" => ArgRule::Max(int(rhs)?),
            ">=" => ArgRule::Min(int(rhs)?),
            "^=" => ArgRule::Prefix(rhs.to_string()),
            "=" => ArgRule::Eq(spec_value(rhs)),
            _ => ArgRule::OneOf(rhs.split(',').map(spec_value).collect()),
        };
        Ok(ArgLimit {
            tool: tool.to_string(),
            arg: arg.to_string(),
            rule,
        })
    }
}

/// Unix seconds from a host's number (JavaScript passes `f64`): refuses
/// NaN, infinities, negative and fractional values and anything past
/// [`MAX_EXPIRES_AT`] (a NaN cast to an integer would be 0, 1970, when every
/// token is still valid).
pub fn unix_time(now: f64) -> Result<u64> {
    if now.is_finite() && now >= 0.0 && now.fract() == 0.0 && now <= MAX_EXPIRES_AT as f64 {
        // a whole number in 0..=MAX_EXPIRES_AT: the cast is exact
        Ok(now as u64)
    } else {
        Err(Error::invalid(format!(
            "now must be whole unix seconds between 0 and {MAX_EXPIRES_AT}, not {now}"
        )))
    }
}
