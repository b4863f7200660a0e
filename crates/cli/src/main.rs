//! The `mcpvault` command line: keygen, mint, attenuate, inspect, verify.
//!
//! Exit codes: 0 allowed / ok, 1 denied (verify; the code on stderr),
//! 2 bad input (usage, keys, files, malformed input to mint/attenuate/inspect).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod store;

use clap::{Args, Parser, Subcommand};
use mcpvault::audit::audit_verify;
use mcpvault::guard::{Check, Guard, GuardInput, GuardOptions, Outcome};
use mcpvault::state::StoreAnswer;
use mcpvault::{ArgLimit, Grant, Request, Restriction};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "mcpvault",
    version,
    about = "Capability tokens for MCP tool calls"
)]
struct Cli {
    /// Use this time (unix seconds) instead of the clock, for reproducible runs.
    #[arg(long, global = true, env = "MCPVAULT_NOW", value_name = "SECONDS")]
    now: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key pair (default ~/.mcpvault/keys/default.json, mode 0600).
    Keygen {
        /// Where to write the key file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Overwrite an existing key file.
        #[arg(long)]
        force: bool,
    },
    /// Mint a token signed with a private key; prints the token.
    Mint(MintArgs),
    /// Narrow a token offline; prints the attenuated token.
    Attenuate(AttenuateArgs),
    /// Show a token's blocks without a key (no signature check).
    Inspect {
        /// The token, or - to read it from stdin.
        #[arg(long)]
        token: String,
        /// Print the inspector page's address for this token instead (serve it with `make inspector`);
        /// the token travels in the URL fragment, which a browser never sends to a server.
        #[arg(long, value_name = "ORIGIN", num_args = 0..=1, default_missing_value = "http://127.0.0.1:8787")]
        web: Option<String>,
    },
    /// Verify a token for one tool call; prints the authorized facts as JSON.
    Verify(VerifyArgs),
    /// Sign one call of a holder-bound token with the holder's key; prints the proof (fresh for 60 s, used once).
    SignCall {
        /// The holder's key file (from `mcpvault keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Print a call's request hash: what an approver signs (`approval_required` errors carry it too).
    RequestHash(CallArgs),
    /// Approve one call: sign its request hash with an approver's key; prints the approval (used once).
    Approve {
        /// The approver's key file (from `mcpvault keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The call's request hash (from `approval_required` or `mcpvault request-hash`).
        #[arg(long, value_name = "HEX")]
        request_hash: String,
        /// Seconds the approval stays valid (at most 3600).
        #[arg(long, default_value_t = 300)]
        ttl: u64,
    },
    /// Print the definition hash of every tool of a tools/list result (a file, or stdin): `NAME HASH` per line,
    /// for `--pin TOOL=HASH`.
    ToolHash {
        /// A tools/list result or response as JSON (- or none: stdin).
        file: Option<PathBuf>,
    },
    /// Revoke a revocation id in a store: every token whose chain holds it is refused (`revoked`).
    Revoke {
        /// The revocation id (hex), from `revocation-ids` or `inspect`.
        #[arg(long)]
        id: String,
        /// sqlite:FILE or redis://HOST:PORT[/DB] (the store servers read).
        #[arg(long)]
        store: String,
    },
    /// Print a token's revocation ids, one per line, authority first (revoke any to revoke the token).
    RevocationIds {
        /// The token, or - to read it from stdin.
        #[arg(long)]
        token: String,
    },
    /// Run the server-side guard on one store: JSON lines `{"now", "input", "complete"?}` on stdin, one outcome
    /// (JSON) per line on stdout (SCHEMA.md, "The guard").
    Guard {
        /// The guard's options as JSON: {"public_key", "audience"?, "retry_window"?, "tool"?, "check_tool"?, ...}.
        #[arg(long)]
        options: String,
        /// sqlite:FILE or redis://HOST:PORT[/DB]; none: no revocation, single-use tokens refused, no audit.
        #[arg(long)]
        store: Option<String>,
    },
    /// The audit log: check its hash chain, or export it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the chain; names the first edited, deleted or reordered entry (exit 1).
    Verify {
        /// A file of entries: JSON lines, or one JSON array.
        #[arg(required_unless_present = "store", conflicts_with = "store")]
        file: Option<PathBuf>,
        /// Or the store's log: sqlite:FILE or redis://HOST:PORT[/DB].
        #[arg(long)]
        store: Option<String>,
    },
    /// Print the store's log as JSON lines.
    Export {
        /// sqlite:FILE or redis://HOST:PORT[/DB].
        #[arg(long)]
        store: String,
    },
}

#[derive(Args)]
struct MintArgs {
    /// Key file written by `mcpvault keygen` (default ~/.mcpvault/keys/default.json).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Comma-separated tools to grant.
    #[arg(long, value_delimiter = ',', required_unless_present = "scopes")]
    tools: Vec<String>,
    /// Comma-separated scopes to grant (a call the server maps to one is allowed).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long)]
    ttl: u64,
    /// Who mints the token.
    #[arg(long)]
    issuer: String,
    /// Who the token is for.
    #[arg(long)]
    subject: String,
    #[command(flatten)]
    narrow: NarrowArgs,
}

#[derive(Args)]
struct NarrowArgs {
    /// The MCP server the token is meant for.
    #[arg(long)]
    audience: Option<String>,
    /// Comma-separated MCP resources the token may read: URI prefixes, or globs with * and ? (none: no resource).
    #[arg(long, value_delimiter = ',', value_name = "URIS")]
    resources: Option<Vec<String>>,
    /// Comma-separated MCP prompts the token may get (none: no prompt).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    prompts: Option<Vec<String>>,
    /// Most attenuation blocks the token may carry.
    #[arg(long, value_name = "N")]
    max_depth: Option<u32>,
    /// Argument limit (repeatable): TOOL.PATH<=N, >=N, ^=PREFIX, =VALUE, or
    /// "TOOL.PATH in A,B,C", "… under /DIR", "… url https://*.HOST", "… cidr NET",
    /// "… glob PATTERN", "… matches REGEX"; PATH.length<=N; PATH[*] for every
    /// element; '"dotted.tool".PATH' (see the README's table).
    #[arg(long = "arg", value_name = "LIMIT", value_parser = parse_arg_limit)]
    args: Vec<ArgLimit>,
    /// Make the token single-use (a nonce a verifier with a replay store lets through once).
    #[arg(long)]
    single_use: bool,
    /// Calls-per-period quota (repeatable): [TOOL:]MAX/PERIOD, PERIOD in seconds or with s, m, h, d
    /// (`50/1m`, `send_email:10/1d`). Shared with every token derived from this one.
    #[arg(long = "rate", value_name = "QUOTA", value_parser = parse_rate)]
    rate: Vec<mcpvault::quota::Rate>,
    /// Budget on a numeric argument (repeatable): TOOL.ARG<=MAX/PERIOD (`transfer.amount<=1000/1d`).
    #[arg(long = "budget", value_name = "QUOTA", value_parser = parse_budget)]
    budget: Vec<mcpvault::quota::Budget>,
    /// Bind the token to this holder's Ed25519 public key (hex): every call then needs a proof signed by it
    /// (`mcpvault sign-call`). Rebinding a bound token needs --holder-key.
    #[arg(long, value_name = "HEX")]
    holder: Option<String>,
    /// Pin a tool to the hash of its definition (repeatable; `mcpvault tool-hash`): TOOL=HASH. A call is refused
    /// (`tool_definition_changed`) once the server describes the tool otherwise.
    #[arg(long = "pin", value_name = "TOOL=HASH", value_parser = parse_pin)]
    pin: Vec<(String, String)>,
    /// A tool whose calls need signed approvals (repeatable), from the --approver keys.
    #[arg(long = "require-approval", value_name = "TOOL", requires = "approver")]
    require_approval: Vec<String>,
    /// An approver's Ed25519 public key (hex; repeatable).
    #[arg(long = "approver", value_name = "HEX", requires = "require_approval")]
    approver: Vec<String>,
    /// How many approvers must approve each call (default 1).
    #[arg(long, value_name = "M", requires = "require_approval")]
    approvals_needed: Option<u32>,
}

impl NarrowArgs {
    /// One pin per tool (as the component's): a second `--pin` of a tool is refused, not the first one dropped.
    fn pins(&self) -> Result<std::collections::BTreeMap<String, String>, Failure> {
        let mut out = std::collections::BTreeMap::new();
        for (tool, hash) in &self.pin {
            if out.insert(tool.clone(), hash.clone()).is_some() {
                return Err(mcpvault::Error::InvalidRequest {
                    reason: format!("two pins of tool {tool:?}"),
                }
                .into());
            }
        }
        Ok(out)
    }

    fn approvals(&self) -> Vec<mcpvault::approval::Requirement> {
        self.require_approval
            .iter()
            .map(|t| mcpvault::approval::Requirement {
                tool: Some(t.clone()),
                approvers: self.approver.clone(),
                needed: self.approvals_needed.unwrap_or(1),
            })
            .collect()
    }
}

/// `--pin TOOL=HASH`.
fn parse_pin(spec: &str) -> Result<(String, String), String> {
    match spec.rsplit_once('=') {
        Some((t, h)) if !t.is_empty() && !h.is_empty() => Ok((t.to_string(), h.to_string())),
        _ => Err("a pin is TOOL=HASH (from `mcpvault tool-hash`)".into()),
    }
}

/// One call, as a proof or an approval names it.
#[derive(Args)]
struct CallArgs {
    /// The token, or - to read it from stdin.
    #[arg(long)]
    token: String,
    /// The tool (tools/call).
    #[arg(long, required_unless_present = "method")]
    tool: Option<String>,
    /// The call's arguments as a JSON object.
    #[arg(long, value_name = "JSON")]
    args: Option<String>,
    /// Another MCP method (resources/read with --name URI, prompts/get with --name PROMPT, …).
    #[arg(long, conflicts_with = "tool")]
    method: Option<String>,
    /// The resource URI or prompt name of --method.
    #[arg(long, requires = "method")]
    name: Option<String>,
    /// The server's audience name (when it has one).
    #[arg(long)]
    audience: Option<String>,
}

/// The token's last revocation id, the method, the name and the arguments of a call.
type CallParts = (
    String,
    String,
    Option<String>,
    serde_json::Map<String, serde_json::Value>,
);

/// The parts of a [`mcpvault::proof::Call`] for `a`: the message the flags describe (MCP's wire form), read by the
/// core's `call_target` as the guard reads it (the dry-run tool, an argument that is the token).
fn call_parts(a: &CallArgs) -> Result<CallParts, Failure> {
    let token = read_token(&a.token)?;
    let arguments = match &a.args {
        None => serde_json::Map::new(),
        Some(raw) => Request::arguments_from_json(raw)?,
    };
    let info = mcpvault::inspect(&token)?;
    let token_id = info.revocation_ids.last().cloned().unwrap_or_default();
    let (method, params) = match (&a.tool, &a.method) {
        (Some(tool), _) => (
            mcpvault::TOOLS_CALL.to_string(),
            serde_json::json!({"name": tool, "arguments": arguments}),
        ),
        (None, Some(m)) => {
            let key = if m.starts_with("resources/") {
                "uri"
            } else {
                "name"
            };
            let mut params = serde_json::Map::new();
            if let Some(n) = &a.name {
                params.insert(key.into(), n.clone().into());
            }
            if !arguments.is_empty() {
                params.insert("arguments".into(), arguments.into());
            }
            (m.clone(), params.into())
        }
        (None, None) => {
            return Err(mcpvault::Error::InvalidRequest {
                reason: "--tool or --method is needed".into(),
            }
            .into())
        }
    };
    let message =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let target = mcpvault::guard::call_target(&message, Some(&token))?;
    Ok((token_id, target.method, target.name, target.arguments))
}

#[derive(Args)]
struct AttenuateArgs {
    /// The token, or - to read it from stdin.
    #[arg(long)]
    token: String,
    /// Comma-separated tools to keep.
    #[arg(long, value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// Comma-separated scopes to keep (with --tools and no --scopes, none).
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Lifetime in seconds from now.
    #[arg(long)]
    ttl: Option<u64>,
    /// The current holder's key file: the block is signed by it (required to bind a holder-bound token to a
    /// new --holder).
    #[arg(long, value_name = "FILE")]
    holder_key: Option<PathBuf>,
    #[command(flatten)]
    narrow: NarrowArgs,
}

#[derive(Args)]
struct VerifyArgs {
    /// The token, or - to read it from stdin.
    #[arg(long)]
    token: String,
    /// The issuer's public key, 64 hex characters.
    #[arg(long)]
    pubkey: String,
    /// The requested tool.
    #[arg(long, required_unless_present = "method")]
    tool: Option<String>,
    /// The call's arguments as a JSON object.
    #[arg(long, value_name = "JSON")]
    args: Option<String>,
    /// This server's audience name.
    #[arg(long)]
    audience: Option<String>,
    /// The MCP method, for methods other than tools/call.
    #[arg(long, conflicts_with_all = ["tool", "args"])]
    method: Option<String>,
    /// Check revocation and single-use tokens against this store and append the decision to its audit log:
    /// sqlite:FILE or redis://HOST:PORT[/DB]. Without it, single-use tokens are refused.
    #[arg(long)]
    store: Option<String>,
    /// The JSON-RPC request id: the same call sent again with it is a retry, not a replay.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// The server's policy, a JSON file: `mappings`, `toolMappings` (or `tool_mappings`), `rules` (SCHEMA.md,
    /// "Server policy").
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The call's proof, for a holder-bound token (`mcpvault sign-call`).
    #[arg(long, value_name = "PROOF")]
    proof: Option<String>,
    /// A signed approval of the call (repeatable; `mcpvault approve`).
    #[arg(long = "approval", value_name = "APPROVAL")]
    approvals: Vec<String>,
    /// The hash of the tool's current definition, for a token that pins it (`mcpvault tool-hash`).
    #[arg(long, value_name = "HASH", requires = "tool")]
    tool_definition: Option<String>,
    /// Append the guard's decision record (one JSON object per decision, as the core writes it: no token, no
    /// argument value) to this file, one line each.
    #[arg(long, value_name = "FILE")]
    decision_log: Option<std::path::PathBuf>,
}

/// The key file; its private key is wiped when dropped.
#[derive(Serialize, Deserialize, zeroize::ZeroizeOnDrop)]
struct KeyFile {
    #[zeroize(skip)]
    algorithm: String,
    private_key: String,
    #[zeroize(skip)]
    public_key: String,
    #[zeroize(skip)]
    created_at: u64,
}

/// A failure and its exit code.
struct Failure {
    exit: u8,
    message: String,
}

impl Failure {
    fn input(message: impl Into<String>) -> Self {
        Failure {
            exit: 2,
            message: message.into(),
        }
    }
}

/// The store `spec` names: one of another kind is bad input (exit 2); one that cannot be opened or reached is a
/// failing store, `internal_error` (exit 1: refused, as the guard refuses with a failing store).
fn open_store(spec: &str) -> Result<store::Store, Failure> {
    if !["sqlite:", "redis://", "rediss://"]
        .iter()
        .any(|p| spec.starts_with(p))
    {
        return Err(Failure::input(format!(
            "invalid_request: unknown store {spec:?}: sqlite:FILE or redis://HOST:PORT"
        )));
    }
    store::Store::open(spec).map_err(|e| Failure {
        exit: 1,
        message: format!("internal_error: {e}"),
    })
}

impl From<mcpvault::Error> for Failure {
    fn from(e: mcpvault::Error) -> Self {
        Failure::input(format!("{}: {e}", e.code()))
    }
}

/// `--arg TOOL.ARG<op>VALUE`, parsed by the core (fuzzed in fuzz/).
fn parse_arg_limit(spec: &str) -> Result<ArgLimit, String> {
    ArgLimit::from_spec(spec).map_err(|e| e.to_string())
}

/// `--rate [TOOL:]MAX/PERIOD`, parsed by the core.
fn parse_rate(spec: &str) -> Result<mcpvault::quota::Rate, String> {
    mcpvault::quota::Rate::from_spec(spec).map_err(|e| e.to_string())
}

/// `--budget TOOL.ARG<=MAX/PERIOD`, parsed by the core.
fn parse_budget(spec: &str) -> Result<mcpvault::quota::Budget, String> {
    mcpvault::quota::Budget::from_spec(spec).map_err(|e| e.to_string())
}

fn read_token(arg: &str) -> Result<String, Failure> {
    if arg == "-" {
        // at most twice the longest token the verifier reads: a longer one is refused as limits_exceeded all the
        // same, without the whole input in memory first
        let most = 2 * mcpvault::Limits::default().max_token_len as u64;
        let mut s = String::new();
        std::io::stdin()
            .take(most)
            .read_to_string(&mut s)
            .map_err(|e| Failure::input(format!("reading the token from stdin: {e}")))?;
        Ok(s.trim().to_string())
    } else {
        Ok(arg.trim().to_string())
    }
}

fn default_key_path() -> Result<PathBuf, Failure> {
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Failure::input("HOME is not set; pass --out or --key"))?;
    Ok(Path::new(&home).join(".mcpvault/keys/default.json"))
}

fn now(cli_now: Option<u64>) -> Result<u64, Failure> {
    match cli_now {
        Some(n) => Ok(n),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| Failure::input("the system clock is before 1970")),
    }
}

#[cfg(unix)]
fn create_private(path: &Path, force: bool) -> std::io::Result<fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let file = opts.open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private(path: &Path, force: bool) -> std::io::Result<fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    opts.open(path)
}

fn keygen(out: Option<PathBuf>, force: bool, now: u64) -> Result<String, Failure> {
    let path = match out {
        Some(p) => p,
        None => default_key_path()?,
    };
    let keys = mcpvault::keygen(&mut OsRng);
    let file = KeyFile {
        algorithm: "ed25519".into(),
        private_key: keys.private_key.clone(),
        public_key: keys.public_key.clone(),
        created_at: now,
    };
    let body = zeroize::Zeroizing::new(
        serde_json::to_string_pretty(&file)
            .map_err(|e| Failure::input(format!("encoding the key file: {e}")))?,
    );
    let mut f = create_private(&path, force).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::input(format!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            ))
        } else {
            Failure::input(format!("writing {}: {e}", path.display()))
        }
    })?;
    f.write_all(body.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .map_err(|e| Failure::input(format!("writing {}: {e}", path.display())))?;
    json(&serde_json::json!({ "path": path, "public_key": keys.public_key }))
}

/// Reads a private key file, refusing one that others may read (like ssh).
fn load_private_key(path: Option<PathBuf>) -> Result<zeroize::Zeroizing<String>, Failure> {
    let path = match path {
        Some(p) => p,
        None => default_key_path()?,
    };
    check_private_mode(&path)?;
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(&path)
            .map_err(|e| Failure::input(format!("reading {}: {e}", path.display())))?,
    );
    // serde_json's message may quote the input: keep only where it failed
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
        Failure::input(format!(
            "{} is not a key file (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    Ok(zeroize::Zeroizing::new(file.private_key.clone()))
}

#[cfg(unix)]
fn check_private_mode(path: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| Failure::input(format!("reading {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Failure::input(format!(
            "permissions {:04o} for {} are too open: a private key must not be readable by others (chmod 600 it)",
            mode & 0o7777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_mode(_path: &Path) -> Result<(), Failure> {
    Ok(())
}

fn json<T: Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure::input(format!("encoding json: {e}")))
}

/// A guard over `store` (if any) for `options`; one request at a time.
struct Host {
    guard: Guard,
    store: Option<store::Store>,
}

impl Host {
    fn new(options: GuardOptions, store: Option<&str>) -> Result<Host, Failure> {
        let store = store.map(open_store).transpose()?;
        let options = GuardOptions {
            store: store.is_some(),
            ..options
        };
        Ok(Host {
            guard: Guard::new(options, 16)?,
            store,
        })
    }

    /// The guard's steps: check, the store's atomic step, the audit records.
    fn run(&mut self, input: &GuardInput, now: u64) -> Outcome {
        let mut outcome = match self.guard.check(input, now) {
            Check::Done { outcome } => *outcome,
            Check::Ask { ask, pending, .. } => {
                let answer = match self.store.as_mut() {
                    Some(s) => s.check(&ask).unwrap_or_else(|e| StoreAnswer {
                        error: Some(e),
                        ..StoreAnswer::default()
                    }),
                    None => StoreAnswer {
                        error: Some("no store".into()),
                        ..StoreAnswer::default()
                    },
                };
                self.guard.resume(*pending, &answer)
            }
        };
        if let Some(s) = self.store.as_mut() {
            for r in outcome.audit.clone() {
                if let Err(e) = s.append_audit(r) {
                    outcome = self.guard.audit_failed(outcome, &e);
                    break;
                }
            }
        }
        outcome
    }
}

/// Appends `decisions` to `path` as JSON lines (created when missing), in one write.
fn append_decisions(
    path: &std::path::Path,
    decisions: &[mcpvault::guard::Decision],
) -> Result<(), Failure> {
    use std::io::Write;
    let mut text = String::new();
    for d in decisions {
        text.push_str(&serde_json::to_string(d).map_err(|e| Failure::input(e.to_string()))?);
        text.push('\n');
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Failure::input(format!("writing {}: {e}", path.display())))
}

fn verify(args: VerifyArgs, now: u64) -> Result<String, Failure> {
    let token = read_token(&args.token)?;
    let arguments = match &args.args {
        None => serde_json::Map::new(),
        Some(raw) => Request::arguments_from_json(raw)?,
    };
    let method = args
        .method
        .unwrap_or_else(|| mcpvault::TOOLS_CALL.to_string());
    let mut params = serde_json::json!({});
    if let Some(tool) = &args.tool {
        params = serde_json::json!({ "name": tool, "arguments": arguments });
    }
    let mut meta = serde_json::Map::new();
    if let Some(p) = &args.proof {
        meta.insert(mcpvault::guard::PROOF_META_KEY.into(), p.clone().into());
    }
    if !args.approvals.is_empty() {
        meta.insert(
            mcpvault::guard::APPROVALS_META_KEY.into(),
            serde_json::json!(args.approvals),
        );
    }
    if let (false, Some(o)) = (meta.is_empty(), params.as_object_mut()) {
        o.insert("_meta".into(), meta.into());
    }
    let message = serde_json::json!({
        "jsonrpc": "2.0",
        "id": args.request_id.clone().unwrap_or_default(),
        "method": method,
        "params": params,
    });
    // the caller runs what is allowed: a retry of a call another server recorded is refused, never run again
    let mut options = GuardOptions {
        audience: args.audience,
        verify_only: true,
        ..GuardOptions::new(args.pubkey)
    };
    if let Some(file) = &args.policy {
        read_policy(file, &mut options)?;
    }
    let mut host = Host::new(options, args.store.as_deref())?;
    let input = GuardInput {
        body: Some(message.to_string()),
        fallback_token: Some(token),
        tool_definitions: args
            .tool
            .clone()
            .zip(args.tool_definition.clone())
            .map(|(t, h)| [(t, h)].into_iter().collect()),
        ..GuardInput::default()
    };
    let outcome = host.run(&input, now);
    if let Some(path) = &args.decision_log {
        append_decisions(path, &outcome.decisions)?;
    }
    if let Some(facts) = outcome.facts.filter(|_| outcome.allowed) {
        return json(&facts);
    }
    let d = outcome.decisions.into_iter().find(|d| !d.allowed);
    let code = d
        .as_ref()
        .and_then(|d| d.code.clone())
        .unwrap_or_else(|| "internal_error".into());
    let message = d.and_then(|d| d.message).unwrap_or_default();
    let exit = if matches!(code.as_str(), "invalid_request" | "invalid_key") {
        2
    } else {
        1
    };
    Err(Failure {
        exit,
        message: format!("{code}: {message}"),
    })
}

/// Reads a policy file into the guard's options; anything but the three policy fields is refused.
fn read_policy(file: &std::path::Path, options: &mut GuardOptions) -> Result<(), Failure> {
    let bad =
        |e: String| Failure::input(format!("invalid_request: policy {}: {e}", file.display()));
    let text = fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let mut policy: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if let Some(v) = policy.remove("toolMappings") {
        if policy.insert("tool_mappings".into(), v).is_some() {
            return Err(bad("both toolMappings and tool_mappings".into()));
        }
    }
    if let Some(k) = policy
        .keys()
        .find(|k| !["mappings", "tool_mappings", "rules"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown field {k:?} (mappings, toolMappings, rules)"
        )));
    }
    let mut all = serde_json::to_value(&*options).map_err(|e| bad(e.to_string()))?;
    if let Some(fields) = all.as_object_mut() {
        fields.extend(policy);
    }
    *options = serde_json::from_value(all).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// `mcpvault guard`: JSON lines in (`{"now", "input", "complete"?}`), the guard's outcome out, one line each, on one
/// store. For hosts in other languages and the shared vectors.
fn guard(options: &str, store: Option<&str>) -> Result<String, Failure> {
    let options: GuardOptions = serde_json::from_str(options)
        .map_err(|e| Failure::input(format!("invalid_request: options: {e}")))?;
    let mut host = Host::new(options, store)?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        let line = line.map_err(|e| Failure::input(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let step: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| Failure::input(format!("invalid_request: step: {e}")))?;
        let input: GuardInput =
            serde_json::from_value(step.get("input").cloned().unwrap_or_default())
                .map_err(|e| Failure::input(format!("invalid_request: input: {e}")))?;
        let now = step
            .get("now")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(now(None)?);
        let outcome = host.run(&input, now);
        if let (Some(k), Some(r), Some(s)) =
            (&outcome.call_key, step.get("complete"), host.store.as_mut())
        {
            s.complete(
                k,
                r,
                outcome.keep_until.unwrap_or(now),
                outcome.keep_for.unwrap_or(1),
            )
            .map_err(|e| Failure {
                exit: 1,
                message: e,
            })?;
        }
        let text = serde_json::to_string(&outcome).map_err(|e| Failure::input(e.to_string()))?;
        writeln!(out, "{text}").map_err(|e| Failure::input(e.to_string()))?;
    }
    Ok(String::new())
}

fn revoke(id: &str, spec: &str, now: u64) -> Result<String, Failure> {
    let id = mcpvault::state::revocation_id(id)?;
    let mut s = open_store(spec)?;
    s.revoke(&id, now).map_err(|e| Failure {
        exit: 1,
        message: e,
    })?;
    Ok(format!("revoked {id}"))
}

fn audit(command: AuditCommand) -> Result<String, Failure> {
    let entries: Vec<serde_json::Value> = match command {
        AuditCommand::Export { store } => {
            let entries = open_store(&store)?.audit_entries().map_err(|e| Failure {
                exit: 1,
                message: e,
            })?;
            return Ok(entries
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"));
        }
        AuditCommand::Verify { file: Some(f), .. } => {
            let text = fs::read_to_string(&f)
                .map_err(|e| Failure::input(format!("reading {}: {e}", f.display())))?;
            let trimmed = text.trim_start();
            if trimmed.starts_with('[') {
                serde_json::from_str(trimmed)
                    .map_err(|e| Failure::input(format!("{}: {e}", f.display())))?
            } else {
                mcpvault::audit::entries_from_lines(trimmed.lines())
            }
        }
        AuditCommand::Verify { store: Some(s), .. } => {
            open_store(&s)?.audit_entries().map_err(|e| Failure {
                exit: 1,
                message: e,
            })?
        }
        AuditCommand::Verify { .. } => {
            return Err(Failure::input("audit verify needs FILE or --store"))
        }
    };
    match audit_verify(&entries) {
        Ok(s) => Ok(format!("ok: {} entries, head {}", s.entries, s.head)),
        Err(b) => Err(Failure {
            exit: 1,
            message: format!(
                "audit: entry {} (line {}{}) {}: {}",
                b.index,
                b.index + 1,
                b.seq.map(|s| format!(", seq {s}")).unwrap_or_default(),
                serde_json::to_value(b.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                b.detail
            ),
        }),
    }
}

fn run(cli: Cli) -> Result<String, Failure> {
    let now = now(cli.now)?;
    match cli.command {
        Command::Keygen { out, force } => keygen(out, force, now),
        Command::Mint(a) => {
            let key = load_private_key(a.key)?;
            let (pin, require_approval) = (a.narrow.pins()?, a.narrow.approvals());
            let grant = Grant {
                tools: a.tools,
                scopes: a.scopes,
                resources: a.narrow.resources.unwrap_or_default(),
                prompts: a.narrow.prompts.unwrap_or_default(),
                ttl: a.ttl,
                issuer: a.issuer,
                subject: a.subject,
                audience: a.narrow.audience,
                max_depth: a.narrow.max_depth,
                arg_limits: a.narrow.args,
                single_use: a.narrow.single_use,
                rate: a.narrow.rate,
                budget: a.narrow.budget,
                pin,
                require_approval,
                holder: a.narrow.holder,
            };
            Ok(mcpvault::mint(&key, &grant, now, &mut OsRng)?)
        }
        Command::Attenuate(a) => {
            let token = read_token(&a.token)?;
            let (pin, require_approval) = (a.narrow.pins()?, a.narrow.approvals());
            let restriction = Restriction {
                tools: a.tools,
                scopes: a.scopes,
                resources: a.narrow.resources,
                prompts: a.narrow.prompts,
                ttl: a.ttl,
                audience: a.narrow.audience,
                max_depth: a.narrow.max_depth,
                arg_limits: a.narrow.args,
                single_use: a.narrow.single_use,
                rate: a.narrow.rate,
                budget: a.narrow.budget,
                pin,
                require_approval,
                holder: a.narrow.holder,
            };
            let out = match a.holder_key {
                None => mcpvault::attenuate(&token, &restriction, now, &mut OsRng)?,
                Some(file) => {
                    let key = load_private_key(Some(file))?;
                    mcpvault::attenuate_as_holder(&token, &restriction, &key, now, &mut OsRng)?
                }
            };
            for w in &out.warnings {
                eprintln!("warning: {w}");
            }
            Ok(out.token)
        }
        Command::Inspect { token, web: None } => json(&mcpvault::inspect(&read_token(&token)?)?),
        Command::Inspect {
            token,
            web: Some(origin),
        } => {
            let token = read_token(&token)?;
            mcpvault::inspect(&token)?; // refuse garbage here rather than in the page
            Ok(format!(
                "{}/examples/inspector/#token={token}",
                origin.trim_end_matches('/')
            ))
        }
        Command::Verify(a) => verify(a, now),
        Command::SignCall { key, call } => {
            let key = load_private_key(Some(key))?;
            let (token_id, method, name, arguments) = call_parts(&call)?;
            let call = mcpvault::proof::Call {
                token_id: &token_id,
                method: &method,
                name: name.as_deref(),
                arguments: &arguments,
                audience: call.audience.as_deref(),
            };
            Ok(mcpvault::proof::sign_call(&key, &call, now, &mut OsRng)?)
        }
        Command::RequestHash(call) => {
            let (token_id, method, name, arguments) = call_parts(&call)?;
            Ok(mcpvault::proof::request_hash(&mcpvault::proof::Call {
                token_id: &token_id,
                method: &method,
                name: name.as_deref(),
                arguments: &arguments,
                audience: call.audience.as_deref(),
            }))
        }
        Command::Approve {
            key,
            request_hash,
            ttl,
        } => {
            let key = load_private_key(Some(key))?;
            Ok(mcpvault::approval::approve(
                &key,
                &request_hash,
                now,
                ttl,
                &mut OsRng,
            )?)
        }
        Command::ToolHash { file } => {
            let text = match file.as_deref().filter(|f| *f != Path::new("-")) {
                Some(f) => fs::read_to_string(f)
                    .map_err(|e| Failure::input(format!("reading {}: {e}", f.display())))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| Failure::input(format!("reading stdin: {e}")))?;
                    s
                }
            };
            let list: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::input(format!("invalid_request: not JSON: {e}")))?;
            Ok(mcpvault::pin::tool_hashes(&list)?
                .iter()
                .map(|(t, h)| format!("{t} {h}"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        Command::Revoke { id, store } => revoke(&id, &store, now),
        Command::RevocationIds { token } => Ok(mcpvault::inspect(&read_token(&token)?)?
            .revocation_ids
            .join("\n")),
        Command::Audit { command } => audit(command),
        Command::Guard { options, store } => guard(&options, store.as_deref()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(out) => {
            // a closed pipe (`mcpvault inspect … | head`) is the reader's choice, not a failure to report with a panic
            if !out.is_empty() {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                if let Err(e) = writeln!(stdout, "{out}").and_then(|()| stdout.flush()) {
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("mcpvault: writing the output: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("mcpvault: {}", f.message);
            ExitCode::from(f.exit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpvault::{ArgRule, Scalar};

    #[test]
    fn arg_limit_syntax() {
        let l = parse_arg_limit("db_query.max_rows<=100").unwrap();
        assert_eq!(
            (l.tool.as_str(), l.arg.as_str(), l.rule),
            (
                "db_query",
                "max_rows",
                ArgRule::Max(mcpvault::Bound::Int(100))
            )
        );
        let l = parse_arg_limit(r#""github.search".page>=1"#).unwrap();
        assert_eq!(
            (l.tool.as_str(), l.arg.as_str(), l.rule),
            (
                "github.search",
                "page",
                ArgRule::Min(mcpvault::Bound::Int(1))
            )
        );
        // the tool ends at the first dot: the rest is a path into the arguments
        let l = parse_arg_limit("deploy.config.mode=ro").unwrap();
        assert_eq!((l.tool.as_str(), l.arg.as_str()), ("deploy", "config.mode"));
        let l = parse_arg_limit("pay.amount<=99.5").unwrap();
        assert_eq!(
            l.rule,
            ArgRule::Max(mcpvault::Bound::Float(mcpvault::Float(99.5)))
        );
        let l = parse_arg_limit("batch.items.length<=10").unwrap();
        assert_eq!((l.arg.as_str(), l.rule), ("items", ArgRule::MaxItems(10)));
        let l = parse_arg_limit("batch.items[*] in a,b").unwrap();
        assert_eq!(l.arg, "items[*]");
        let l = parse_arg_limit("file_read.path under /srv/public").unwrap();
        assert_eq!(l.rule, ArgRule::Under("/srv/public".into()));
        let l = parse_arg_limit("fetch.url url https://*.example.com").unwrap();
        assert_eq!(l.rule, ArgRule::Url("https://*.example.com".into()));
        let l = parse_arg_limit("net.ip cidr 10.0.0.0/8").unwrap();
        assert_eq!(l.rule, ArgRule::Cidr("10.0.0.0/8".into()));
        let l = parse_arg_limit("deploy.cluster glob staging-*").unwrap();
        assert_eq!(l.rule, ArgRule::Glob("staging-*".into()));
        let l = parse_arg_limit("tool.name matches ^[a-z]+$").unwrap();
        assert_eq!(
            (l.arg.as_str(), l.rule),
            ("name", ArgRule::Matches("^[a-z]+$".into()))
        );
        let l = parse_arg_limit("file_read.path^=/srv/public/").unwrap();
        assert_eq!(l.rule, ArgRule::Prefix("/srv/public/".into()));
        let l = parse_arg_limit("db_query.table=users").unwrap();
        assert_eq!(l.rule, ArgRule::Eq(Scalar::Str("users".into())));
        let l = parse_arg_limit("db_query.limit=5").unwrap();
        assert_eq!(l.rule, ArgRule::Eq(Scalar::Int(5)));
        let l = parse_arg_limit(r#"db_query.code="5""#).unwrap();
        assert_eq!(l.rule, ArgRule::Eq(Scalar::Str("5".into())));
        let l = parse_arg_limit("db_query.table in users,orders").unwrap();
        assert_eq!(
            l.rule,
            ArgRule::OneOf(vec![
                Scalar::Str("users".into()),
                Scalar::Str("orders".into())
            ])
        );
        assert!(parse_arg_limit("nodot<=5").is_err());
        assert!(parse_arg_limit("a.b<=x").is_err());
        assert!(parse_arg_limit("a.b").is_err());
    }
}
