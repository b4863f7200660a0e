//! Typed inputs and outputs of the operations, and their validation.

use std::collections::{BTreeMap, BTreeSet};

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

/// A bound of `min`/`max`: an integer (the argument must be an integer), or
/// any other number (the argument may be any JSON number, compared as a
/// double; see SCHEMA.md, "Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// An integer bound.
    Int(i64),
    /// A number bound.
    Float(Float),
}

/// A finite double, ordered and hashed by value (`-0` equals `0`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Float(pub f64);

impl Float {
    fn key(self) -> i64 {
        crate::args::f64_key(self.0)
    }
}
impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Float {}
impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Float {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}
impl std::hash::Hash for Float {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// How an argument is limited. SCHEMA.md lists the check each writes and the
/// facts a verifier supplies for it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum ArgRule {
    /// The argument is a string starting with this prefix.
    Prefix(String),
    /// The argument equals this value (same type).
    Eq(Scalar),
    /// The argument equals one of these values (all strings or all integers).
    OneOf(Vec<Scalar>),
    /// The argument is no greater than this.
    Max(Bound),
    /// The argument is no smaller than this.
    Min(Bound),
    /// The argument is an absolute path inside this directory, decided on
    /// the normalised path.
    Under(String),
    /// The argument is a URL this pattern allows (`https://*.example.com`).
    Url(String),
    /// The argument is an IP address inside this network (`10.0.0.0/8`).
    Cidr(String),
    /// The argument matches this shell-style wildcard (`*`, `?`).
    Glob(String),
    /// The argument matches this regular expression (unanchored).
    Matches(String),
    /// The argument is an array of at most this many elements.
    MaxItems(u32),
    /// The argument is an array of at least this many elements.
    MinItems(u32),
}

/// A limit on one argument of one tool. A call of that tool whose
/// argument is missing, of another type, or outside the limit is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ArgLimit {
    /// The tool the limit applies to.
    pub tool: String,
    /// Where the argument is: a top-level key (`path`), a dotted path into
    /// objects and arrays (`config.mode`, `items.0`) or a JSON pointer
    /// (`/a.b`), ending in `[*]` to limit every element of an array.
    pub arg: String,
    /// The limit.
    #[serde(flatten)]
    pub rule: ArgRule,
}

/// What an issuer grants when it mints a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Tools the token may call (at least one tool or one scope).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Scopes the token grants (`filesystem:files:read`): a call is also
    /// allowed when the server maps it to one of them (SCHEMA.md, "Scopes").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// MCP resources the token may read or subscribe to: URI prefixes
    /// (`file:///docs/`), or globs when they hold `*` or `?`. None: no
    /// resource (unless the server opens them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// MCP prompts the token may get, by name. None: no prompt (unless the
    /// server opens them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
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
    /// Calls per period for this token and every token derived from it
    /// (SCHEMA.md, "Quotas"): one `{max, period, tool?}` or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::quota::one_or_many"
    )]
    pub rate: Vec<crate::quota::Rate>,
    /// Cumulative caps on a numeric argument per period: one
    /// `{tool, arg, max, period}` or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::quota::one_or_many"
    )]
    pub budget: Vec<crate::quota::Budget>,
    /// Bind the token to this holder's Ed25519 public key (hex): every call
    /// needs a proof signed by it (SCHEMA.md, "Holder-bound tokens").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Pin tools to the SHA-256 of their definition (`{"search": "HEX"}`,
    /// hashes from `mcpvault tool-hash`): a call to a pinned tool whose
    /// current definition differs is refused (SCHEMA.md, "Pinned tool definitions").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pin: BTreeMap<String, String>,
    /// Calls of a tool that need signed approvals (SCHEMA.md, "Signed approvals").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<crate::approval::Requirement>,
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
            scopes: Vec::new(),
            resources: Vec::new(),
            prompts: Vec::new(),
            ttl,
            issuer: issuer.into(),
            subject: subject.into(),
            audience: None,
            max_depth: None,
            arg_limits: Vec::new(),
            single_use: false,
            rate: Vec::new(),
            budget: Vec::new(),
            holder: None,
            pin: BTreeMap::new(),
            require_approval: Vec::new(),
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
    /// Scopes the attenuated token keeps (a subset of the parent's). When
    /// `tools` is set and `scopes` is not, the token keeps no scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Resources the attenuated token keeps (URI prefixes or globs; every
    /// block's set must allow a read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// Prompts the attenuated token keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
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
    /// Further calls-per-period quotas (this token's calls also count
    /// against every quota of the blocks before).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::quota::one_or_many"
    )]
    pub rate: Vec<crate::quota::Rate>,
    /// Further budgets on numeric arguments.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::quota::one_or_many"
    )]
    pub budget: Vec<crate::quota::Budget>,
    /// Bind the attenuated token to this holder key. A token already bound
    /// is rebound only by its current holder ([`crate::attenuate_as_holder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Further pins (a block cannot remove the pins of the blocks before).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pin: BTreeMap<String, String>,
    /// Further approval requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<crate::approval::Requirement>,
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
    /// The scope the server maps this call to (the guard sets it from its
    /// policy: `TOOL:call` when no mapping matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The resource URI of `resources/read` and `resources/subscribe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The prompt name of `prompts/get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The server opens resources to every valid token whose blocks grant
    /// none (a token that names resources is still held to them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_resources: bool,
    /// The same for prompts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open_prompts: bool,
    /// The call's proof (`mvp1.…`), for a token bound to a holder key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The hash of the called tool's current definition (the server says
    /// it: [`crate::pin::tool_hash`]), for a token that pins the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_definition: Option<String>,
    /// Signed approvals of this call (`mva1.…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    /// Approvals the server requires of this call besides the token's own
    /// (the guard sets them from its policy's approval rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_approvals: Vec<crate::approval::Requirement>,
    /// Another layer checks the pins (this verifier does not know the
    /// server's tool definitions): no `tool_definition_changed` here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub defer_pins: bool,
}

impl Default for Request {
    /// A `tools/call` with no tool (set one) and nothing else.
    fn default() -> Self {
        Request {
            method: default_method(),
            tool: None,
            arguments: serde_json::Map::new(),
            audience: None,
            scope: None,
            resource: None,
            prompt: None,
            open_resources: false,
            open_prompts: false,
            proof: None,
            tool_definition: None,
            approvals: Vec::new(),
            required_approvals: Vec::new(),
            defer_pins: false,
        }
    }
}

impl Request {
    /// Whether the method reads a resource (`resources/read`,
    /// `resources/subscribe`): what a resources grant decides, with the
    /// URI in `resource`. The guard, the checks and validation share it.
    pub fn reads_resource(&self) -> bool {
        matches!(
            self.method.as_str(),
            "resources/read" | "resources/subscribe"
        )
    }

    /// A `tools/call` request for `tool` with no arguments.
    pub fn tool(tool: impl Into<String>) -> Self {
        Request {
            tool: Some(tool.into()),
            ..Request::default()
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
    /// The revocation id of the block each of `nonces` is in (not serialized): the guard spends a nonce as that
    /// block's, which every token attenuated from it shares and no other token has.
    #[serde(skip)]
    pub nonce_blocks: Vec<String>,
    /// Scopes every block allows, sorted (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The scope the call was mapped to, when the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Each granting block's resource patterns (as globs), authority first;
    /// a resource must match one pattern of every set. Absent: none granted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Vec<String>>,
    /// Prompts every granting block allows; absent when none is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    /// The quotas of every block, authority first (absent when none): the
    /// guard's store counts a call against each that applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<crate::quota::Quota>,
    /// The holder key the token is bound to (hex), when it is: the call
    /// carried a proof signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The nonce of that proof, for the store to spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_nonce: Option<String>,
    /// The tools the token pins, to the hashes of their definitions (a tool
    /// pinned by two blocks to different hashes can never be called).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pins: BTreeMap<String, Vec<String>>,
    /// The approvals that counted for this call (the store spends each once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::approval::Used>,
    /// Not a fact of the token: what matching its resource globs may cost each `resources/list` answer filtered
    /// with these facts, when the request that gave them shares its steps ([`crate::args::GLOB_STEPS`]) among
    /// several (a batch of lists). None: one list's whole budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_steps: Option<u64>,
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

/// The methods MCP defines (through 2026-07-28), client to server and back: a method written like one of them in
/// another case is refused, as a method with anything but printable ASCII without spaces is ([`check_method`]).
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "subscriptions/listen",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/update",
    "tasks/cancel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// A method as the guard decides it: a name ([`check_name`]) of printable ASCII without spaces, and not one of MCP's
/// methods in another case. The guard decides `tools/call`, `resources/read`, `prompts/get`, … by their exact names
/// and lets other methods through on a valid token, so `tools/call ` or `resources/read` with a no-break space would
/// reach a server that trims or folds the name undecided.
pub(crate) fn check_method(method: &str) -> Result<()> {
    check_name("method", method)?;
    if !method.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid("a method is printable ASCII without spaces"));
    }
    if let Some(m) = MCP_METHODS
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method) && **m != method)
    {
        return Err(Error::invalid(format!(
            "method {method:?} is MCP's {m:?} in another case"
        )));
    }
    Ok(())
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

/// Scope names: 1–128 characters of `A-Z a-z 0-9 _ - . / :`.
pub(crate) fn check_scopes(scopes: &[String]) -> Result<BTreeSet<String>> {
    if scopes.len() > MAX_TOOLS {
        return Err(Error::invalid(format!("more than {MAX_TOOLS} scopes")));
    }
    for s in scopes {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':')
            });
        if !ok {
            return Err(Error::invalid(format!(
                "scope {s:?} must be 1-128 characters of A-Z a-z 0-9 _ - . / :"
            )));
        }
    }
    Ok(scopes.iter().cloned().collect())
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

/// Checks argument limits and returns them in canonical form (the path
/// text, a normalised `under` directory, the canonical URL pattern and
/// network), the form their checks are written from and read back as.
pub(crate) fn check_arg_limits(limits: &[ArgLimit]) -> Result<Vec<ArgLimit>> {
    use crate::args;
    if limits.len() > MAX_ARG_LIMITS {
        return Err(Error::invalid(format!(
            "more than {MAX_ARG_LIMITS} argument limits"
        )));
    }
    let mut out = Vec::with_capacity(limits.len());
    for limit in limits {
        check_tool_name(&limit.tool)?;
        let path = args::ArgPath::parse(&limit.arg)?;
        for segment in &path.segments {
            check_name("argument name", segment)?;
        }
        let text = |what: &str, v: &str| -> Result<()> {
            if v.len() > MAX_VALUE_LEN {
                return Err(Error::invalid(format!(
                    "{what} is longer than {MAX_VALUE_LEN} bytes"
                )));
            }
            check_datalog_string(what, v)
        };
        let rule = match &limit.rule {
            ArgRule::Prefix(p) => {
                check_scalar(&Scalar::Str(p.clone()))?;
                ArgRule::Prefix(p.clone())
            }
            ArgRule::Eq(v) => {
                check_scalar(v)?;
                ArgRule::Eq(v.clone())
            }
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
                ArgRule::OneOf(values.clone())
            }
            ArgRule::Max(Bound::Float(f)) | ArgRule::Min(Bound::Float(f)) if !f.0.is_finite() => {
                return Err(Error::invalid("a min or max must be a finite number"));
            }
            r @ (ArgRule::Max(_) | ArgRule::Min(_)) => r.clone(),
            ArgRule::Under(base) => {
                text("under", base)?;
                ArgRule::Under(args::under_base(base)?)
            }
            ArgRule::Url(pattern) => {
                text("url", pattern)?;
                ArgRule::Url(args::UrlPattern::parse(pattern)?.text())
            }
            ArgRule::Cidr(net) => {
                text("cidr", net)?;
                let bits = args::cidr_bits(net)?;
                ArgRule::Cidr(args::cidr_text(&bits).unwrap_or_default())
            }
            ArgRule::Glob(glob) => {
                text("glob", glob)?;
                let re = args::glob_regex(glob)?;
                args::check_pattern(&re)?;
                ArgRule::Glob(glob.clone())
            }
            ArgRule::Matches(pattern) => {
                text("pattern", pattern)?;
                args::check_pattern(pattern)?;
                ArgRule::Matches(pattern.clone())
            }
            r @ (ArgRule::MaxItems(_) | ArgRule::MinItems(_)) => r.clone(),
        };
        let per_element = matches!(
            rule,
            ArgRule::Prefix(_)
                | ArgRule::Eq(_)
                | ArgRule::OneOf(_)
                | ArgRule::Glob(_)
                | ArgRule::Matches(_)
                | ArgRule::Max(Bound::Int(_))
                | ArgRule::Min(Bound::Int(_))
        );
        if path.each && !per_element {
            return Err(Error::invalid(format!(
                "{}: [*] takes eq, one_of, prefix, glob, matches and integer min/max",
                limit.arg
            )));
        }
        if path.each && path.key().len() > MAX_NAME_LEN {
            return Err(Error::invalid("argument path is too long"));
        }
        out.push(ArgLimit {
            tool: limit.tool.clone(),
            arg: path.text(),
            rule,
        });
    }
    Ok(out)
}

/// Refuses a limit on a tool the token cannot call: it would constrain
/// nothing, and was almost always a typo or a misread `TOOL.ARG` split.
pub(crate) fn check_limit_tools(limits: &[ArgLimit], tools: &BTreeSet<String>) -> Result<()> {
    let Some(l) = limits.iter().find(|l| !tools.contains(&l.tool)) else {
        return Ok(());
    };
    // `--arg my.tool.x=1` reads as tool "my": point at the quoted form
    let dotted = tools
        .iter()
        .find(|t| t.starts_with(&format!("{}.", l.tool)))
        .map(|t| format!("; a tool name with dots is quoted: '\"{t}\".PATH'"))
        .unwrap_or_default();
    Err(Error::invalid(format!(
        "argument limit on {:?}, a tool the token does not grant (tools: {}){dotted}",
        l.tool,
        tools.iter().cloned().collect::<Vec<_>>().join(", "),
    )))
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

/// What a block lets a `tools/call` through by: a tool it names, or a scope
/// the server maps the call to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Access {
    pub tools: BTreeSet<String>,
    pub scopes: BTreeSet<String>,
}

/// What a block grants beyond tools: resource patterns (globs) and prompt
/// names, each when the block sets them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub resources: Option<BTreeSet<String>>,
    pub prompts: Option<BTreeSet<String>>,
}

/// Resource grants as globs: a pattern with `*` or `?` is one, anything else
/// a prefix (`file:///docs/` is `file:///docs/*`).
pub(crate) fn check_resources(patterns: &[String]) -> Result<BTreeSet<String>> {
    if patterns.len() > MAX_TOOLS {
        return Err(Error::invalid(format!("more than {MAX_TOOLS} resources")));
    }
    let mut out = BTreeSet::new();
    for p in patterns {
        if p.is_empty() || p.len() > MAX_VALUE_LEN {
            return Err(Error::invalid(format!(
                "a resource pattern is 1 to {MAX_VALUE_LEN} bytes"
            )));
        }
        check_datalog_string("resource pattern", p)?;
        let glob = if p.contains(['*', '?']) {
            p.clone()
        } else {
            format!("{p}*")
        };
        crate::args::glob_regex(&glob)?;
        out.insert(glob);
    }
    Ok(out)
}

pub(crate) fn check_prompts(names: &[String]) -> Result<BTreeSet<String>> {
    if names.len() > MAX_TOOLS {
        return Err(Error::invalid(format!("more than {MAX_TOOLS} prompts")));
    }
    for n in names {
        check_name("prompt name", n)?;
    }
    Ok(names.iter().cloned().collect())
}

fn check_tool_list(tools: &[String]) -> Result<BTreeSet<String>> {
    if tools.is_empty() {
        return Ok(BTreeSet::new());
    }
    check_tools(tools)
}

impl Grant {
    /// The granted resources and prompts (set only when the grant names any).
    pub(crate) fn content(&self) -> Result<Content> {
        Ok(Content {
            resources: (!self.resources.is_empty())
                .then(|| check_resources(&self.resources))
                .transpose()?,
            prompts: (!self.prompts.is_empty())
                .then(|| check_prompts(&self.prompts))
                .transpose()?,
        })
    }

    /// The granted tools and scopes, and the canonical argument limits.
    pub(crate) fn validate(&self) -> Result<(Access, Vec<ArgLimit>)> {
        let access = Access {
            tools: check_tool_list(&self.tools)?,
            scopes: check_scopes(&self.scopes)?,
        };
        if access.tools.is_empty() && access.scopes.is_empty() {
            return Err(Error::invalid("a grant needs at least one tool or scope"));
        }
        check_name("issuer", &self.issuer)?;
        check_name("subject", &self.subject)?;
        if let Some(aud) = &self.audience {
            check_name("audience", aud)?;
        }
        let limits = check_arg_limits(&self.arg_limits)?;
        // with scopes, a limit may name a tool the grant reaches through one
        if access.scopes.is_empty() {
            check_limit_tools(&limits, &access.tools)?;
        }
        Ok((access, limits))
    }
}

impl Restriction {
    /// The resources and prompts kept, when the restriction names them.
    pub(crate) fn content(&self) -> Result<Content> {
        Ok(Content {
            resources: self.resources.as_deref().map(check_resources).transpose()?,
            prompts: self.prompts.as_deref().map(check_prompts).transpose()?,
        })
    }

    /// The access kept (when restricted) and the canonical argument limits.
    pub(crate) fn validate(&self) -> Result<(Option<Access>, Vec<ArgLimit>)> {
        let access = if self.tools.is_some() || self.scopes.is_some() {
            Some(Access {
                tools: self
                    .tools
                    .as_deref()
                    .map(check_tool_list)
                    .transpose()?
                    .unwrap_or_default(),
                scopes: self
                    .scopes
                    .as_deref()
                    .map(check_scopes)
                    .transpose()?
                    .unwrap_or_default(),
            })
        } else {
            None
        };
        if access
            .as_ref()
            .is_some_and(|a| a.tools.is_empty() && a.scopes.is_empty())
        {
            return Err(Error::invalid("tools is empty"));
        }
        if let Some(aud) = &self.audience {
            check_name("audience", aud)?;
        }
        let limits = check_arg_limits(&self.arg_limits)?;
        if let Some(a) = access.as_ref().filter(|a| a.scopes.is_empty()) {
            check_limit_tools(&limits, &a.tools)?;
        }
        if access.is_none()
            && self.resources.is_none()
            && self.prompts.is_none()
            && self.ttl.is_none()
            && self.audience.is_none()
            && self.max_depth.is_none()
            && self.arg_limits.is_empty()
            && !self.single_use
            && self.rate.is_empty()
            && self.budget.is_empty()
            && self.holder.is_none()
            && self.pin.is_empty()
            && self.require_approval.is_empty()
        {
            return Err(Error::invalid("restriction narrows nothing"));
        }
        Ok((access, limits))
    }
}

/// `TOOL.REST` or `"dotted.tool".REST`: the tool (ending at the first dot
/// unless quoted) and the rest.
pub(crate) fn split_tool(spec: &str) -> Result<(String, &str)> {
    let bad = |why: String| Error::invalid(format!("{spec:?}: {why}"));
    Ok(if spec.trim_start().starts_with('"') {
        let s = spec.trim_start();
        let close = s
            .get(1..)
            .and_then(|r| r.find('"'))
            .ok_or_else(|| bad("unterminated quoted tool name".into()))?;
        let tool = s.get(1..close + 1).unwrap_or("");
        let rest = s
            .get(close + 2..)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(|| bad("expected \"TOOL\".PATH".into()))?;
        (tool.to_string(), rest)
    } else {
        let (tool, rest) = spec
            .trim_start()
            .split_once('.')
            .ok_or_else(|| bad("expected TOOL.PATH before the operator".into()))?;
        (tool.to_string(), rest)
    })
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
    /// Parses the CLI's `TOOL.PATH<op>VALUE`. The tool ends at the first
    /// dot; a tool name with dots is written as a JSON string
    /// (`"db.query".sql^=SELECT`). The path is dotted or a JSON pointer,
    /// optionally ending in `[*]` (see [`ArgLimit::arg`]). Operators: `<=`,
    /// `>=` (integers or numbers; on `PATH.length` the array's length), `^=`
    /// prefix, `=`, and the words ` in ` (a comma list), ` under `, ` url `,
    /// ` cidr `, ` glob `, ` matches `. The result is checked like any other
    /// limit when it is minted or attenuated.
    pub fn from_spec(spec: &str) -> Result<ArgLimit> {
        const OPS: [&str; 10] = [
            " in ",
            " under ",
            " url ",
            " cidr ",
            " glob ",
            " matches ",
            "<=",
            ">=",
            "^=",
            "=",
        ];
        let bad = |why: String| Error::invalid(format!("{spec:?}: {why}"));
        let (tool, rest) = split_tool(spec)?;
        let (at, op) = OPS
            .iter()
            .filter_map(|op| rest.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, usize::MAX - op.len()))
            .ok_or_else(|| {
                bad("expected <=, >=, ^=, =, or ' in ', ' under ', ' url ', ' cidr ', ' glob ', ' matches '".into())
            })?;
        let (path, value) = (
            rest.get(..at).unwrap_or("").trim(),
            rest.get(at + op.len()..).unwrap_or(""),
        );
        let number = |v: &str| -> Result<Bound> {
            let v = v.trim();
            if let Ok(i) = v.parse::<i64>() {
                return Ok(Bound::Int(i));
            }
            match v.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Bound::Float(Float(f))),
                _ => Err(bad(format!("{v:?} is not a number"))),
            }
        };
        let count = |v: &str| -> Result<u32> {
            v.trim()
                .parse::<u32>()
                .map_err(|_| bad(format!("{v:?} is not a count")))
        };
        let length = if op == "<=" || op == ">=" {
            path.strip_suffix(".length").filter(|p| !p.starts_with('/'))
        } else {
            None
        };
        let (path, rule) = match (op, length) {
            ("<=", Some(p)) => (p, ArgRule::MaxItems(count(value)?)),
            (">=", Some(p)) => (p, ArgRule::MinItems(count(value)?)),
            ("<=", None) => (path, ArgRule::Max(number(value)?)),
            (">=", None) => (path, ArgRule::Min(number(value)?)),
            ("^=", _) => (path, ArgRule::Prefix(value.to_string())),
            ("=", _) => (path, ArgRule::Eq(spec_value(value))),
            (" in ", _) => (
                path,
                ArgRule::OneOf(value.split(',').map(spec_value).collect()),
            ),
            (" under ", _) => (path, ArgRule::Under(value.trim().to_string())),
            (" url ", _) => (path, ArgRule::Url(value.trim().to_string())),
            (" cidr ", _) => (path, ArgRule::Cidr(value.trim().to_string())),
            (" glob ", _) => (path, ArgRule::Glob(value.trim().to_string())),
            _ => (path, ArgRule::Matches(value.trim().to_string())),
        };
        Ok(ArgLimit {
            tool,
            arg: path.to_string(),
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
