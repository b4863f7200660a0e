//! The five operations. Pure: the caller passes the time and the RNG.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use biscuit_auth::builder::{self, Algorithm, BlockBuilder, Term};
use biscuit_auth::error::{FailedCheck, Format, Logic, Token};
use biscuit_auth::{
    AuthorizerBuilder, AuthorizerLimits, Biscuit, BiscuitBuilder, KeyPair, PrivateKey, PublicKey,
    UnverifiedBiscuit,
};
use rand_core::{CryptoRng, RngCore};
use serde::Serialize;

use crate::args::{self, Derived};
use crate::error::{Error, Result};
use crate::model::{
    self, ArgLimit, Attenuated, AuthorizedFacts, Grant, KeyPairHex, Request, Restriction,
    MAX_EXPIRES_AT, MAX_REQUEST_ARGS, TOOLS_CALL,
};
use crate::schema::{self, Statement};
use crate::shape::{self, Shape};

/// Base64url, padded or not, with no stray bits in the last character (so one
/// token has one text, up to padding).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Limits every verification runs under. Running out of any of them is
/// `limits_exceeded`, never a plain denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest token accepted, in base64 characters.
    pub max_token_len: usize,
    /// Most blocks (authority + attenuations) accepted.
    pub max_blocks: usize,
    /// Most Datalog facts the authorizer may hold.
    pub max_facts: u64,
    /// Most rule-application rounds.
    pub max_iterations: u64,
    /// Longest Datalog evaluation: a backstop. biscuit-auth looks at the
    /// clock only between rounds of rule application, so hostile Datalog is
    /// stopped before evaluation by `max_work`; this limit is generous so that
    /// a busy machine never turns an honest token into `limits_exceeded`.
    pub max_time: Duration,
    /// Most units of Datalog work a token may need for one request: an upper
    /// bound computed from the token's bytes before anything is evaluated
    /// (facts scanned + join combinations × expression operations; see
    /// `SCHEMA.md`, "Limits"). A token mcpvault writes needs a few thousand.
    pub max_work: u64,
    /// Evaluate every token with biscuit-auth's Datalog engine. By default a
    /// token holding only what mcpvault writes is evaluated directly, with
    /// the same answers (for differential tests and the benchmarks).
    pub always_datalog: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_len: 64 * 1024,
            max_blocks: 64,
            max_facts: 10_000,
            max_iterations: 200,
            max_time: Duration::from_secs(1),
            max_work: 1_000_000,
            always_datalog: false,
        }
    }
}

/// The largest `Limits::max_time` honoured; larger values are clamped.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(60);

fn hex_key(what: &str, hex_str: &str) -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let s = hex_str.trim();
    let s = s.strip_prefix("ed25519/").unwrap_or(s);
    if s.len() != 64 {
        return Err(Error::InvalidKey {
            reason: format!("{what} must be 64 hex characters"),
        });
    }
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(s, out.as_mut()).map_err(|_| Error::InvalidKey {
        reason: format!("{what} is not hex"),
    })?;
    Ok(out)
}

/// Parses a 64-character hex Ed25519 private key (an `ed25519/` prefix is accepted).
pub fn parse_private_key(hex_str: &str) -> Result<PrivateKey> {
    let bytes = hex_key("private key", hex_str)?;
    PrivateKey::from_bytes(bytes.as_ref(), Algorithm::Ed25519).map_err(|_| Error::InvalidKey {
        reason: "private key is not a valid ed25519 key".into(),
    })
}

/// Parses a 64-character hex Ed25519 public key (an `ed25519/` prefix is accepted).
pub fn parse_public_key(hex_str: &str) -> Result<PublicKey> {
    let bytes = hex_key("public key", hex_str)?;
    PublicKey::from_bytes(bytes.as_ref(), Algorithm::Ed25519).map_err(|_| Error::InvalidKey {
        reason: "public key is not a valid ed25519 point".into(),
    })
}

/// A holder key as tokens carry it: the 64 lowercase hex characters of a
/// valid Ed25519 public key.
pub(crate) fn holder_key(hex_str: &str) -> Result<String> {
    Ok(parse_public_key(hex_str)?
        .to_bytes_hex()
        .to_ascii_lowercase())
}

/// The public key (hex) of a private key (hex).
pub fn public_key_of(private_key_hex: &str) -> Result<String> {
    Ok(parse_private_key(private_key_hex)?.public().to_bytes_hex())
}

/// Generates an Ed25519 key pair.
pub fn keygen(rng: &mut (impl RngCore + CryptoRng)) -> KeyPairHex {
    let kp = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    KeyPairHex {
        private_key: kp.private().to_bytes_hex(),
        public_key: kp.public().to_bytes_hex(),
    }
}

fn token_err(e: Token) -> Error {
    match e {
        Token::Format(f) => format_err(f),
        Token::Base64(b) => Error::malformed(format!("base64: {b}")),
        Token::RunLimit(l) => Error::LimitsExceeded {
            detail: format!("datalog: {l}"),
        },
        Token::FailedLogic(Logic::InvalidBlockRule(block, rule)) => {
            Error::malformed(format!("block {block} has an invalid rule: {rule}"))
        }
        Token::Language(l) => Error::malformed(format!("datalog: {l}")),
        Token::AppendOnSealed | Token::AlreadySealed => {
            Error::invalid("the token is sealed and cannot be attenuated")
        }
        other => Error::Internal {
            detail: other.to_string(),
        },
    }
}

fn format_err(f: Format) -> Error {
    match f {
        Format::Signature(_)
        | Format::SealedSignature
        | Format::UnknownPublicKey
        | Format::UnknownExternalKey => Error::BadSignature {
            detail: f.to_string(),
        },
        other => Error::malformed(format!("{other}: {other:?}")),
    }
}

/// Mints a token: an authority block signed by `private_key_hex`.
pub fn mint(
    private_key_hex: &str,
    grant: &Grant,
    now: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String> {
    let (access, arg_limits) = grant.validate()?;
    let content = grant.content()?;
    let expires_at = model::expiry(now, grant.ttl)?;
    let key = parse_private_key(private_key_hex)?;
    let root = KeyPair::from(&key);

    let mut facts = vec![
        schema::version_fact(),
        schema::issuer_fact(&grant.issuer),
        schema::subject_fact(&grant.subject),
    ];
    if grant.single_use {
        facts.push(schema::nonce_fact(&new_nonce(rng)));
    }
    let (rates, budgets) = crate::quota::check_quotas(
        &grant.rate,
        &grant.budget,
        access.scopes.is_empty().then_some(&access.tools),
    )?;
    facts.extend(rates.iter().map(schema::rate_fact));
    facts.extend(budgets.iter().map(schema::budget_fact));
    if let Some(h) = &grant.holder {
        facts.push(schema::holder_fact(&holder_key(h)?));
    }
    facts.extend(step_up_facts(&grant.pin, &grant.require_approval)?);
    let mut block = schema::add_facts(BlockBuilder::new(), facts)?;
    block = schema::add_checks(
        block,
        restriction_checks(
            Some(&access),
            Some(expires_at),
            grant.audience.as_deref(),
            grant.max_depth,
            &arg_limits,
        ),
    )?;
    block = schema::add_checks(block, content_checks(&content))?;
    let token = BiscuitBuilder::new()
        .merge(block)
        .build_with_rng(&root, biscuit_auth::datalog::SymbolTable::default(), rng)
        .map_err(token_err)?;
    token.to_base64().map_err(token_err)
}

/// The `pin` and `approval` facts of a grant or restriction (each names a
/// tool; a block only adds them, so attenuation cannot remove one).
fn step_up_facts(
    pins: &std::collections::BTreeMap<String, String>,
    approvals: &[crate::approval::Requirement],
) -> Result<Vec<builder::Fact>> {
    if pins.len() > crate::model::MAX_TOOLS || approvals.len() > crate::model::MAX_TOOLS {
        return Err(Error::invalid(format!(
            "more than {} pins or approval requirements in one block",
            crate::model::MAX_TOOLS
        )));
    }
    let mut facts: Vec<builder::Fact> = crate::pin::check_pins(pins)?
        .iter()
        .map(|(t, h)| schema::pin_fact(t, h))
        .collect();
    for r in approvals {
        if r.tool.is_none() {
            return Err(Error::invalid(
                "a token's approval requirement names its tool",
            ));
        }
        facts.push(schema::approval_fact(&crate::approval::check_requirement(
            r,
        )?));
    }
    Ok(facts)
}

/// 128 random bits, hex: the nonce of a single-use block.
fn new_nonce(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The resources and prompts checks of a block, for what it names.
fn content_checks(content: &model::Content) -> Vec<biscuit_auth::builder::Check> {
    let mut checks = Vec::new();
    if let Some(r) = &content.resources {
        checks.push(schema::resources_check(r));
    }
    if let Some(p) = &content.prompts {
        checks.push(schema::prompts_check(p));
    }
    checks
}

fn restriction_checks(
    access: Option<&model::Access>,
    expires_at: Option<u64>,
    audience: Option<&str>,
    max_depth: Option<u32>,
    arg_limits: &[ArgLimit],
) -> Vec<biscuit_auth::builder::Check> {
    let mut checks = Vec::new();
    if let Some(at) = expires_at {
        checks.push(schema::expiry_check(at));
    }
    if let Some(a) = access {
        checks.push(schema::access_check(&a.tools, &a.scopes));
    }
    if let Some(aud) = audience {
        checks.push(schema::audience_check(aud));
    }
    if let Some(d) = max_depth {
        checks.push(schema::depth_check(u64::from(d)));
    }
    // sorted and deduplicated through a set (a sort of this element type would be one more copy in the .wasm)
    let limits: Vec<&ArgLimit> = {
        let mut set = BTreeSet::new();
        set.extend(arg_limits.iter());
        set.into_iter().collect()
    };
    checks.extend(limits.into_iter().map(schema::arg_check));
    checks
}

/// One block of a token, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    /// 0 for the authority block, then 1, 2, … for each attenuation.
    pub index: usize,
    /// The block's Datalog source.
    pub source: String,
    /// Its facts, as Datalog.
    pub facts: Vec<String>,
    /// Its rules, as Datalog.
    pub rules: Vec<String>,
    /// Its checks, as Datalog.
    pub checks: Vec<String>,
    /// Tools this block allows, when it restricts tools.
    pub tools: Option<Vec<String>>,
    /// Scopes this block allows, when it grants any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The resource pattern sets (globs) this block grants: a read must
    /// match one pattern of each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Vec<String>>,
    /// Prompts this block allows, when it grants prompts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    /// Earliest expiry this block sets (unix seconds).
    pub expires_at: Option<u64>,
    /// Audiences this block requires.
    pub audiences: Vec<String>,
    /// Smallest max depth this block sets.
    pub max_depth: Option<u64>,
    /// Argument limits this block sets.
    pub arg_limits: Vec<ArgLimit>,
    /// Checks mcpvault did not write: enforced, but not summarised above.
    pub unrecognized_checks: Vec<String>,
    /// Public key of a third-party block's signer.
    pub external_key: Option<String>,
    /// Revocation id of this block (hex).
    pub revocation_id: String,
    /// The nonce of a single-use block (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The holder key this block binds the token to (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Calls-per-period quotas this block sets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate: Vec<crate::quota::Rate>,
    /// Budgets this block sets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub budget: Vec<crate::quota::Budget>,
    /// Tools this block pins to the hash of their definition.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub pin: std::collections::BTreeMap<String, String>,
    /// Approvals this block requires.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_approval: Vec<crate::approval::Requirement>,
    #[serde(skip)]
    statements: Vec<Statement>,
    /// The checks, one per statement, printed only when one refuses (the way
    /// biscuit-auth prints them, with the chain's symbols or, for a
    /// third-party block, its own).
    #[serde(skip)]
    raw_checks: Vec<biscuit_auth::datalog::Check>,
    #[serde(skip)]
    own_symbols: Option<biscuit_auth::datalog::SymbolTable>,
    /// Whether the block holds only what mcpvault writes (see [`direct`]).
    #[serde(skip)]
    plain: bool,
    #[serde(skip)]
    claims: schema::AuthorityFacts,
}

impl BlockInfo {
    fn reads_request_unrecognized(&self) -> bool {
        self.statements.iter().any(|s| {
            matches!(
                s,
                Statement::Unrecognized {
                    reads_request: true,
                    ..
                }
            )
        })
    }
}

/// A token's chain, read back without verifying signatures.
#[derive(Debug, Clone)]
struct Chain {
    blocks: Vec<BlockInfo>,
    /// The key the token is bound to (the last `holder` fact), lowercase hex.
    holder: Option<String>,
    issuer: String,
    subject: String,
    /// The first-party blocks' symbols, to print a refusing check.
    symbols: biscuit_auth::datalog::SymbolTable,
    /// The derived facts the verifier supplies: every (key, kind) an
    /// argument limit of the chain reads, sorted, once each.
    needs: Vec<(String, args::Need)>,
    /// The limits' patterns, compiled once.
    prepared: args::Prepared,
}

/// A block's Datalog as builder values, and its source when it is shown.
struct RawBlock {
    facts: Vec<builder::Fact>,
    rules: Vec<builder::Rule>,
    checks: Vec<builder::Check>,
    datalog_checks: Vec<biscuit_auth::datalog::Check>,
    own_symbols: Option<biscuit_auth::datalog::SymbolTable>,
    /// Only for `inspect` (verifying never prints a block): the source, and
    /// each fact, rule and check, printed by biscuit-auth's Datalog printer
    /// (the builder's `Display` panics on a malformed expression).
    source: Option<String>,
    texts: Option<[Vec<String>; 3]>,
    external_key: Option<String>,
}

/// Converts decoded blocks into builder values, with the symbol tables
/// biscuit-auth uses: first-party blocks share one, a third-party block has
/// its own. No Datalog text is printed or parsed.
fn raw_blocks(
    protos: &[biscuit_auth::format::schema::Block],
    external: &[Option<PublicKey>],
    shown: bool,
) -> Result<(Vec<RawBlock>, biscuit_auth::datalog::SymbolTable)> {
    use biscuit_auth::builder::Convert;
    use biscuit_auth::datalog::SymbolTable;
    let mut shared = SymbolTable::new();
    let mut out = Vec::with_capacity(protos.len());
    for (i, proto) in protos.iter().enumerate() {
        let ext = external.get(i).copied().flatten();
        let block = biscuit_auth::format::convert::proto_block_to_token_block(proto, ext)
            .map_err(format_err)?;
        let mut own = SymbolTable::new();
        let symbols = if ext.is_some() { &mut own } else { &mut shared };
        symbols
            .extend(&block.symbols)
            .map_err(|e| Error::malformed(format!("block {i}: symbols: {e}")))?;
        let bad = |e: Format| Error::malformed(format!("block {i}: {e}"));
        let texts = shown.then(|| {
            [
                block.facts.iter().map(|f| symbols.print_fact(f)).collect(),
                block.rules.iter().map(|r| symbols.print_rule(r)).collect(),
                block
                    .checks
                    .iter()
                    .map(|c| symbols.print_check(c))
                    .collect(),
            ]
        });
        out.push(RawBlock {
            facts: block
                .facts
                .iter()
                .map(|f| builder::Fact::convert_from(f, symbols).map_err(bad))
                .collect::<Result<_>>()?,
            rules: block
                .rules
                .iter()
                .map(|r| builder::Rule::convert_from(r, symbols).map_err(bad))
                .collect::<Result<_>>()?,
            checks: block
                .checks
                .iter()
                .map(|c| builder::Check::convert_from(c, symbols).map_err(bad))
                .collect::<Result<_>>()?,
            source: None,
            texts,
            external_key: ext.map(|k| k.to_bytes_hex()),
            own_symbols: ext.is_some().then(|| own.clone()),
            datalog_checks: block.checks,
        });
    }
    Ok((out, shared))
}

fn read_block(index: usize, mut parsed: RawBlock, revocation_id: String) -> Result<BlockInfo> {
    let shown = parsed.texts.is_some();
    let [facts_text, rules_text, checks_text] = parsed.texts.take().unwrap_or_default();
    let statements: Vec<Statement> = parsed.checks.iter().map(schema::recognize_check).collect();
    let mut tools: Option<BTreeSet<String>> = None;
    let mut scopes: Option<BTreeSet<String>> = None;
    let mut resources: Vec<Vec<String>> = Vec::new();
    let mut prompts: Option<BTreeSet<String>> = None;
    let mut expires_at: Option<u64> = None;
    let mut audiences = Vec::new();
    let mut max_depth: Option<u64> = None;
    let mut arg_limits = Vec::new();
    let mut unrecognized_checks = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        match s {
            Statement::Expiry(d) => expires_at = Some(expires_at.map_or(*d, |e| e.min(*d))),
            Statement::Tools {
                tools: t,
                scopes: sc,
            } => {
                tools = Some(match tools {
                    None => t.clone(),
                    Some(prev) => prev.intersection(t).cloned().collect(),
                });
                scopes = Some(match scopes {
                    None => sc.clone(),
                    Some(prev) => prev.intersection(sc).cloned().collect(),
                });
            }
            Statement::Audience(a) => audiences.push(a.clone()),
            Statement::Resources(g) => resources.push(g.iter().cloned().collect()),
            Statement::Prompts(n) => {
                prompts = Some(match prompts {
                    None => n.clone(),
                    Some(prev) => prev.intersection(n).cloned().collect(),
                })
            }
            Statement::MaxDepth(n) => max_depth = Some(max_depth.map_or(*n, |m| m.min(*n))),
            Statement::Arg(l) => arg_limits.push(l.clone()),
            Statement::Unrecognized { .. } if shown => {
                unrecognized_checks.push(checks_text.get(i).cloned().unwrap_or_default())
            }
            Statement::Unrecognized { .. } => {}
        }
    }
    let claims = schema::authority_facts(&parsed.facts);
    let nonce = match claims.nonce.as_slice() {
        [] => None,
        [n] if (16..=128).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(n.clone())
        }
        _ => {
            return Err(Error::malformed(format!(
                "block {index}: a block has at most one nonce, 16 to 128 hex characters"
            )))
        }
    };
    if let Some(e) = &claims.bad_quota {
        return Err(Error::malformed(format!("block {index}: {}", e.detail())));
    }
    if let Some(e) = &claims.bad_fact {
        return Err(Error::malformed(format!("block {index}: {e}")));
    }
    // what mint and attenuate write at most (a block appended with stock Biscuit could hold thousands, each
    // counted per message and per store key)
    if claims.rates.len() + claims.budgets.len() > crate::quota::MAX_QUOTAS {
        return Err(Error::malformed(format!(
            "block {index}: more than {} quotas",
            crate::quota::MAX_QUOTAS
        )));
    }
    if claims.pins.len() > model::MAX_TOOLS || claims.approvals.len() > model::MAX_TOOLS {
        return Err(Error::malformed(format!(
            "block {index}: more than {} pins or approval requirements",
            model::MAX_TOOLS
        )));
    }
    let holder = match claims.holder.as_slice() {
        [] => None,
        [h] => Some(holder_key(h).map_err(|_| {
            Error::malformed(format!(
                "block {index}: holder is not an Ed25519 public key"
            ))
        })?),
        _ => {
            return Err(Error::malformed(format!(
                "block {index}: a block binds at most one holder"
            )))
        }
    };
    let known_fact = |f: &builder::Fact| {
        let p = &f.predicate;
        match (p.name.as_str(), p.terms.as_slice()) {
            ("nonce", [Term::Str(_)]) => true,
            ("rate" | "budget", _) => true,
            ("holder", [Term::Str(_)]) | ("pin" | "approval", _) => true,
            ("mcpvault", [Term::Integer(_)]) | ("issuer" | "subject", [Term::Str(_)]) => index == 0,
            _ => false,
        }
    };
    let plain = parsed.rules.is_empty()
        && parsed.external_key.is_none()
        && parsed.facts.iter().all(known_fact)
        && !statements
            .iter()
            .any(|s| matches!(s, Statement::Unrecognized { .. }));
    Ok(BlockInfo {
        index,
        nonce,
        holder,
        rate: claims.rates.clone(),
        budget: claims.budgets.clone(),
        pin: claims.pins.iter().cloned().collect(),
        require_approval: claims.approvals.clone(),
        facts: facts_text,
        rules: rules_text,
        checks: checks_text,
        source: parsed.source.unwrap_or_default(),
        raw_checks: parsed.datalog_checks,
        own_symbols: parsed.own_symbols,
        plain,
        tools: tools.map(|t| t.into_iter().collect()),
        scopes: scopes
            .filter(|s| !s.is_empty())
            .map(|s| s.into_iter().collect()),
        resources,
        prompts: prompts.map(|p| p.into_iter().collect()),
        expires_at,
        audiences,
        max_depth,
        arg_limits,
        unrecognized_checks,
        external_key: parsed.external_key,
        revocation_id,
        statements,
        claims,
    })
}

/// Reads every block; requires the authority block to be an mcpvault one.
fn read_chain(
    (raw, symbols): (Vec<RawBlock>, biscuit_auth::datalog::SymbolTable),
    revocation_ids: Vec<Vec<u8>>,
) -> Result<Chain> {
    let mut blocks = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let rid = revocation_ids.get(i).map(hex::encode).unwrap_or_default();
        blocks.push(read_block(i, r, rid)?);
    }
    let authority = blocks
        .first()
        .ok_or_else(|| Error::malformed("token has no authority block"))?;
    let facts = &authority.claims;
    if facts.version != [schema::SCHEMA_VERSION] {
        return Err(Error::malformed(format!(
            "authority block is not an mcpvault v{} token (mcpvault facts: {:?})",
            schema::SCHEMA_VERSION,
            facts.version
        )));
    }
    let (issuer, subject) = match (facts.issuer.as_slice(), facts.subject.as_slice()) {
        ([i], [s]) => (i.clone(), s.clone()),
        _ => {
            return Err(Error::malformed(
                "authority block needs exactly one issuer and one subject",
            ))
        }
    };
    if authority.tools.is_none() || authority.expires_at.is_none() {
        return Err(Error::malformed(
            "authority block needs a tool check and an expiry check",
        ));
    }
    if authority.external_key.is_some() {
        return Err(Error::malformed("authority block is third-party signed"));
    }
    // A holder binds the token; only the current holder may bind it to another key: the block that does is
    // signed by the current holder (a third-party block). Anyone may bind a token that has no holder (it only
    // narrows: every call then needs a proof).
    let mut holder: Option<String> = None;
    for b in &blocks {
        if let Some(h) = &b.holder {
            if let Some(current) = &holder {
                if b.external_key
                    .as_deref()
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                    != Some(current.as_str())
                {
                    return Err(Error::malformed(format!(
                        "block {} rebinds the holder without a signature of the current holder",
                        b.index
                    )));
                }
            }
            holder = Some(h.clone());
        }
    }
    // sorted and deduplicated through a set (a sort of this element type would be one more copy in the .wasm)
    let needs: Vec<(String, args::Need)> = {
        let mut set = BTreeSet::new();
        set.extend(
            blocks
                .iter()
                .flat_map(|b| &b.statements)
                .filter_map(|s| match s {
                    Statement::Arg(l) => args::need_of(l),
                    _ => None,
                }),
        );
        set.into_iter().collect()
    };
    let mut prepared = args::Prepared::of(blocks.iter().flat_map(|b| &b.statements).filter_map(
        |s| match s {
            Statement::Arg(l) => Some(l),
            _ => None,
        },
    ));
    for g in blocks.iter().flat_map(|b| b.resources.iter().flatten()) {
        prepared.add_glob(g);
    }
    Ok(Chain {
        blocks,
        holder,
        issuer,
        subject,
        symbols,
        needs,
        prepared,
    })
}

/// The chain of a token that was not verified (inspect, attenuate); with
/// each block's source when `shown`.
fn unverified_chain(
    token: &UnverifiedBiscuit,
    protos: &[biscuit_auth::format::schema::Block],
    shown: bool,
) -> Result<Chain> {
    let mut raw = raw_blocks(protos, &token.external_public_keys(), shown)?;
    if shown {
        for (i, r) in raw.0.iter_mut().enumerate() {
            r.source = Some(token.print_block_source(i).map_err(token_err)?);
        }
    }
    read_chain(raw, token.revocation_identifiers())
}

/// The intersection of every set given; `None` when none is.
fn intersect_all<'a>(
    sets: impl Iterator<Item = impl IntoIterator<Item = &'a String>>,
) -> Option<BTreeSet<String>> {
    sets.fold(None, |acc: Option<BTreeSet<String>>, set| {
        let set: BTreeSet<String> = set.into_iter().cloned().collect();
        Some(match acc {
            None => set,
            Some(prev) => prev.intersection(&set).cloned().collect(),
        })
    })
}

impl Chain {
    /// Its blocks' revocation ids, the authority's first.
    fn revocation_ids(&self) -> Vec<String> {
        self.blocks
            .iter()
            .map(|b| b.revocation_id.clone())
            .collect()
    }

    /// The hashes every block pins each tool to.
    fn pins(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (t, h) in self.blocks.iter().flat_map(|b| &b.claims.pins) {
            let hashes = out.entry(t.clone()).or_default();
            if !hashes.contains(h) {
                hashes.push(h.clone());
            }
        }
        out
    }

    /// Every block's quotas, authority first, each under its block's
    /// revocation id.
    fn quotas(&self) -> Vec<crate::quota::Quota> {
        use crate::quota::{Quota, QuotaKind};
        let mut out = Vec::new();
        for b in &self.blocks {
            for r in &b.rate {
                out.push(Quota {
                    kind: QuotaKind::Rate,
                    block: b.index,
                    revocation_id: b.revocation_id.clone(),
                    tool: r.tool.clone(),
                    arg: None,
                    max: r.max,
                    period: r.period,
                });
            }
            for q in &b.budget {
                out.push(Quota {
                    kind: QuotaKind::Budget,
                    block: b.index,
                    revocation_id: b.revocation_id.clone(),
                    tool: Some(q.tool.clone()),
                    arg: Some(q.arg.clone()),
                    max: q.max,
                    period: q.period,
                });
            }
        }
        out
    }

    /// Tools every block's tool check allows (checks mcpvault did not write
    /// aside): what an argument limit may name.
    fn granted_tools(&self) -> BTreeSet<String> {
        intersect_all(self.blocks.iter().filter_map(|b| b.tools.as_ref())).unwrap_or_default()
    }

    /// Scopes every block that grants allows (blocks without a grant check
    /// allow every scope their parent does).
    fn effective_scopes(&self) -> BTreeSet<String> {
        intersect_all(
            self.blocks
                .iter()
                .filter(|b| b.tools.is_some())
                .map(|b| b.scopes.iter().flatten()),
        )
        .unwrap_or_default()
    }

    /// Prompts every block that grants prompts allows; `None` when none does.
    fn granted_prompts(&self) -> Option<BTreeSet<String>> {
        intersect_all(self.blocks.iter().filter_map(|b| b.prompts.as_ref()))
    }

    /// Whether the authority block grants resources: only the issuer can;
    /// a holder's block naming resources narrows, it never opens.
    fn issuer_grants_resources(&self) -> bool {
        self.blocks.first().is_some_and(|b| !b.resources.is_empty())
    }

    fn issuer_grants_prompts(&self) -> bool {
        self.blocks.first().is_some_and(|b| b.prompts.is_some())
    }

    /// Refuses a resource or prompt read the issuer did not grant, unless the
    /// server opened them (the blocks' own checks ran already).
    fn check_content_granted(&self, request: &Request) -> Result<()> {
        let none = |what: &str| format!("no block of the token grants {what}");
        if request.reads_resource() && !request.open_resources && !self.issuer_grants_resources() {
            return Err(Error::ResourceNotAllowed {
                resource: request.resource.clone().unwrap_or_default(),
                block: 0,
                check: none("resources"),
            });
        }
        if request.method == "prompts/get" && !request.open_prompts && !self.issuer_grants_prompts()
        {
            return Err(Error::PromptNotAllowed {
                prompt: request.prompt.clone().unwrap_or_default(),
                block: 0,
                check: none("prompts"),
            });
        }
        Ok(())
    }

    /// Tools every block allows. If a block holds a check mcpvault did not
    /// write that reads the request, only `requested` is known to pass it.
    fn effective_tools(&self, requested: Option<&str>) -> BTreeSet<String> {
        let mut tools = self.granted_tools();
        if self
            .blocks
            .iter()
            .any(BlockInfo::reads_request_unrecognized)
        {
            tools.retain(|t| Some(t.as_str()) == requested);
        }
        tools
    }

    fn expires_at(&self) -> u64 {
        self.blocks
            .iter()
            .filter_map(|b| b.expires_at)
            .min()
            .unwrap_or(MAX_EXPIRES_AT)
    }

    fn max_depth(&self) -> Option<u64> {
        self.blocks.iter().filter_map(|b| b.max_depth).min()
    }

    fn audience(&self) -> Option<String> {
        self.blocks
            .iter()
            .flat_map(|b| b.audiences.iter())
            .next()
            .cloned()
    }
}

fn check_token_size(token: &str, limits: &Limits) -> Result<()> {
    if token.len() > limits.max_token_len {
        return Err(Error::LimitsExceeded {
            detail: format!(
                "token is {} characters, the limit is {}",
                token.len(),
                limits.max_token_len
            ),
        });
    }
    Ok(())
}

fn check_block_count(count: usize, limits: &Limits) -> Result<()> {
    if count > limits.max_blocks {
        return Err(Error::LimitsExceeded {
            detail: format!(
                "token has {count} blocks, the limit is {}",
                limits.max_blocks
            ),
        });
    }
    Ok(())
}

/// Attenuates a token offline: appends a block that only narrows.
///
/// A restriction naming tools the parent does not grant cannot widen the
/// token (those tools stay refused); each such case is reported in
/// `warnings`, as are a ttl past the parent's expiry and settings that make
/// the token unusable.
pub fn attenuate(
    token: &str,
    restriction: &Restriction,
    now: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Attenuated> {
    attenuate_with(token, restriction, None, now, rng)
}

/// Attenuates a holder-bound token as its holder: the block is signed by the
/// holder's private key (a Biscuit third-party block), which is what lets it
/// bind the token to another holder (`restriction.holder`). A block binding
/// a new holder without the current holder's signature makes the token
/// malformed: a thief who copied the token cannot rebind it to its own key.
pub fn attenuate_as_holder(
    token: &str,
    restriction: &Restriction,
    holder_private_key: &str,
    now: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Attenuated> {
    attenuate_with(token, restriction, Some(holder_private_key), now, rng)
}

fn attenuate_with(
    token: &str,
    restriction: &Restriction,
    holder_private_key: Option<&str>,
    now: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Attenuated> {
    let limits = Limits::default();
    let (access, arg_limits) = restriction.validate()?;
    let content = restriction.content()?;
    let expires_at = restriction
        .ttl
        .map(|ttl| model::expiry(now, ttl))
        .transpose()?;
    let (bytes, _, protos) = decode(token, &limits)?;
    let parent = UnverifiedBiscuit::from(&bytes).map_err(token_err)?;
    check_block_count(parent.block_count() + 1, &limits)?;
    let chain = unverified_chain(&parent, &protos, false)?;

    let mut warnings = Vec::new();
    let parent_tools = chain.effective_tools(None);
    let parent_scopes = chain.effective_scopes();
    let kept_scopes = access.as_ref().map_or(&parent_scopes, |a| &a.scopes);
    // what argument limits and quotas may name: the tools every block grants, as this block keeps them
    let granted_tools: BTreeSet<String> = match &access {
        Some(a) => a
            .tools
            .intersection(&chain.granted_tools())
            .cloned()
            .collect(),
        None => chain.granted_tools(),
    };
    if kept_scopes.is_empty() {
        model::check_limit_tools(&arg_limits, &granted_tools)?;
    }
    if let Some(a) = &access {
        for t in a.tools.difference(&parent_tools) {
            warnings.push(format!(
                "tool {t:?} is not granted by the parent token and stays refused"
            ));
        }
        for sc in a.scopes.difference(&parent_scopes) {
            warnings.push(format!(
                "scope {sc:?} is not granted by the parent token and stays refused"
            ));
        }
        if a.tools.intersection(&parent_tools).next().is_none()
            && a.scopes.intersection(&parent_scopes).next().is_none()
        {
            warnings.push("no tool is left: the token can call no tool".to_string());
        }
    }
    let parent_expiry = chain.expires_at();
    if let Some(at) = expires_at {
        if at > parent_expiry {
            warnings.push(format!(
                "ttl ends after the parent's expiry ({parent_expiry}); the parent's expiry still applies"
            ));
        }
    }
    if parent_expiry <= now {
        warnings.push("the parent token has already expired".to_string());
    }
    if let Some(aud) = &restriction.audience {
        if let Some(existing) = chain
            .blocks
            .iter()
            .flat_map(|b| &b.audiences)
            .find(|a| *a != aud)
        {
            warnings.push(format!(
                "the parent is bound to audience {existing:?}; with {aud:?} too the token verifies nowhere"
            ));
        }
    }
    let depth = chain.blocks.len() as u64;
    let new_max = restriction.max_depth.map(u64::from);
    if let Some(max) = [chain.max_depth(), new_max].into_iter().flatten().min() {
        if depth > max {
            warnings.push(format!(
                "the token now carries {depth} attenuation blocks, more than its max depth {max}"
            ));
        }
    }

    let mut facts = if restriction.single_use {
        vec![schema::nonce_fact(&new_nonce(rng))]
    } else {
        Vec::new()
    };
    let (rates, budgets) = crate::quota::check_quotas(
        &restriction.rate,
        &restriction.budget,
        kept_scopes.is_empty().then_some(&granted_tools),
    )?;
    facts.extend(rates.iter().map(schema::rate_fact));
    facts.extend(budgets.iter().map(schema::budget_fact));
    let signer = match holder_private_key {
        None => None,
        Some(k) => {
            let key = parse_private_key(k)?;
            let public = key.public().to_bytes_hex().to_ascii_lowercase();
            if chain.holder.as_ref().is_some_and(|h| *h != public) {
                return Err(Error::invalid(
                    "this key is not the token's holder: only the current holder may sign its blocks",
                ));
            }
            Some(key)
        }
    };
    if let Some(h) = &restriction.holder {
        if chain.holder.is_some() && signer.is_none() {
            return Err(Error::invalid(
                "the token is bound to a holder: only its holder may bind it to another key (attenuate_as_holder, --holder-key)",
            ));
        }
        facts.push(schema::holder_fact(&holder_key(h)?));
    }
    facts.extend(step_up_facts(
        &restriction.pin,
        &restriction.require_approval,
    )?);
    let block = schema::add_checks(
        schema::add_facts(BlockBuilder::new(), facts)?,
        restriction_checks(
            access.as_ref(),
            expires_at,
            restriction.audience.as_deref(),
            restriction.max_depth,
            &arg_limits,
        ),
    )?;
    let block = schema::add_checks(block, content_checks(&content))?;
    let keypair = KeyPair::new_with_rng(Algorithm::Ed25519, rng);
    let child = match signer {
        None => parent.append_with_keypair(&keypair, block),
        Some(key) => parent
            .third_party_request()
            .and_then(|r| r.create_block(&key, block))
            .and_then(|b| b.serialize())
            .and_then(|b| parent.append_third_party_with_keypair(&b, keypair)),
    }
    .map_err(token_err)?;
    Ok(Attenuated {
        token: child.to_base64().map_err(token_err)?,
        warnings,
    })
}

/// Most approval requirements a server adds to one call.
const MAX_REQUIRED_APPROVALS: usize = 16;

/// What of a resource URI a grant's patterns are matched against: the URI before its query and fragment (the first
/// `?` or `#`). Matched whole, a pattern's wildcard took in the query: `file:///home/*/public/*` held for
/// `file:///home/alice/private/id_rsa#/public/x`, which a server reads as `/home/alice/private/id_rsa`, and
/// `https://*.example.com/*` for `https://evil.com#.example.com/x`. What follows is the server's to read as data.
pub(crate) fn granted_part(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or_default()
}

/// Whether a resource URI means what it says to every server: a grant's glob is matched against the URI as sent,
/// while a server may resolve it first (the MCP SDKs parse it as a WHATWG URL, which resolves `..`, `%2e%2e`, `\`
/// in special schemes, and drops tabs and newlines), so `file:///docs/../secret` matches `file:///docs/*` and reads
/// `file:///secret`. Refused before its query or fragment: a `.` or `..` segment, `%2e`, `%2f`, `%5c` (any case), `\`
/// and control characters (after it they are data, not path).
pub(crate) fn confinable_uri(uri: &str) -> bool {
    // and a space at either end: parsers strip it before reading the path (`file:///docs/.. ` is `file:///`)
    if uri.chars().any(char::is_control) || uri.starts_with(' ') || uri.ends_with(' ') {
        return false;
    }
    let path = granted_part(uri);
    let lower = path.to_ascii_lowercase();
    !(path.contains('\\')
        || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
        || path.split('/').any(|s| s == "." || s == ".."))
}

fn validate_request(request: &Request) -> Result<()> {
    model::check_method(&request.method)?;
    if request.required_approvals.len() > MAX_REQUIRED_APPROVALS {
        return Err(Error::invalid(format!(
            "at most {MAX_REQUIRED_APPROVALS} required approvals"
        )));
    }
    for r in &request.required_approvals {
        crate::approval::check_requirement(r)?;
    }
    match (&request.resource, request.reads_resource()) {
        (Some(uri), true) if uri.is_empty() || uri.len() > model::MAX_VALUE_LEN => {
            return Err(Error::invalid(format!(
                "a resource URI is 1 to {} bytes",
                model::MAX_VALUE_LEN
            )))
        }
        (Some(uri), true) if !confinable_uri(uri) => {
            return Err(Error::invalid(
                "a resource URI may not hold a '.' or '..' segment, an encoded '.', '/' or '\\', a '\\' or a control \
                 character before its query: a server resolving it could read outside the grant",
            ))
        }
        (Some(_), false) => {
            return Err(Error::invalid(
                "only resources/read and resources/subscribe name a resource",
            ))
        }
        _ => {}
    }
    match (&request.prompt, request.method == "prompts/get") {
        (Some(name), true) => model::check_name("prompt", name)?,
        (Some(_), false) => return Err(Error::invalid("only prompts/get names a prompt")),
        _ => {}
    }
    match (&request.tool, request.method == TOOLS_CALL) {
        (Some(tool), true) => model::check_name("tool", tool)?,
        (None, true) => return Err(Error::invalid("tools/call needs a tool")),
        (Some(_), false) => return Err(Error::invalid("only tools/call names a tool")),
        (None, false) => {
            if !request.arguments.is_empty() {
                return Err(Error::invalid("only tools/call carries arguments"));
            }
        }
    }
    // after the tool: the policy's scope of an unmapped tool is its name and ":call", a bad name is told as a name
    if let Some(scope) = &request.scope {
        if request.method != TOOLS_CALL {
            return Err(Error::invalid("only tools/call is mapped to a scope"));
        }
        model::check_scopes(std::slice::from_ref(scope))?;
    }
    if let Some(aud) = &request.audience {
        model::check_name("audience", aud)?;
    }
    if request.arguments.len() > MAX_REQUEST_ARGS {
        return Err(Error::invalid(format!(
            "more than {MAX_REQUEST_ARGS} arguments"
        )));
    }
    for name in request.arguments.keys() {
        model::check_name("argument name", name)?;
    }
    Ok(())
}

/// A derived value as a Datalog term.
fn derived_terms(d: &Derived<'_>) -> Vec<Term> {
    let item = |v: &serde_json::Value| match args::scalar(v) {
        Some(Derived::Str(s)) => Term::Str(s.to_string()),
        Some(Derived::Int(i)) => Term::Integer(i),
        Some(Derived::Bool(b)) => Term::Bool(b),
        _ => Term::Null,
    };
    match d {
        Derived::Str(s) => vec![Term::Str((*s).to_string())],
        Derived::Int(i) | Derived::Num(i) => vec![Term::Integer(*i)],
        Derived::Bool(b) => vec![Term::Bool(*b)],
        Derived::Path(p) | Derived::Ip(p) => vec![Term::Str(p.clone())],
        Derived::Url(u) => vec![
            Term::Str(u.scheme.clone()),
            Term::Str(u.host.clone()),
            Term::Integer(u.port),
            Term::Str(u.path.clone()),
        ],
        Derived::Array(items) => vec![Term::Array(items.iter().map(item).collect())],
    }
}

/// The predicate a derived value is supplied as.
fn derived_predicate(d: &Derived<'_>) -> &'static str {
    match d {
        Derived::Str(_) => "request_arg_str",
        Derived::Int(_) => "request_arg_int",
        Derived::Bool(_) => "request_arg_bool",
        Derived::Num(_) => "request_arg_num",
        Derived::Path(_) => "request_arg_path",
        Derived::Url(_) => "request_arg_url",
        Derived::Ip(_) => "request_arg_ip",
        Derived::Array(_) => "request_arg_array",
    }
}

/// The derived facts a chain's limits need for one request.
fn derived_facts<'a>(
    chain: &Chain,
    request: &'a Request,
) -> Vec<(&'static str, String, Derived<'a>)> {
    chain
        .needs
        .iter()
        .filter_map(|(key, need)| {
            args::derive(&request.arguments, key, *need)
                .map(|d| (derived_predicate(&d), key.clone(), d))
        })
        .collect()
}

/// `allow if mcpvault(1)`: the verifier's one policy (built as `policy!` builds it, without its expansion's code).
fn allow_policy() -> builder::Policy {
    let version = builder::pred("mcpvault", &[Term::Integer(schema::SCHEMA_VERSION)]);
    let query = builder::Rule::new(
        builder::pred("query", &[] as &[Term]),
        vec![version],
        vec![],
        vec![],
    );
    builder::Policy {
        queries: vec![query],
        kind: builder::PolicyKind::Allow,
    }
}

/// The facts the verifier supplies; `check_work` counts the same ones.
fn request_facts(
    mut builder: AuthorizerBuilder,
    request: &Request,
    now: u64,
    depth: usize,
    derived: &[(&'static str, String, Derived<'_>)],
) -> Result<AuthorizerBuilder> {
    let add = |b: AuthorizerBuilder, f| {
        b.fact(f).map_err(|e| Error::Internal {
            detail: format!("authorizer fact: {e}"),
        })
    };
    builder = add(builder, builder::fact("time", &[Term::Date(now)]))?;
    builder = add(
        builder,
        builder::fact("request_method", &[Term::from(request.method.as_str())]),
    )?;
    builder = add(
        builder,
        builder::fact(
            "depth",
            &[Term::Integer(i64::try_from(depth).unwrap_or(i64::MAX))],
        ),
    )?;
    if let Some(aud) = &request.audience {
        builder = add(
            builder,
            builder::fact("verifier_audience", &[Term::from(aud.as_str())]),
        )?;
    }
    if let Some(tool) = &request.tool {
        builder = add(
            builder,
            builder::fact("request_tool", &[Term::from(tool.as_str())]),
        )?;
    }
    if let Some(scope) = &request.scope {
        builder = add(
            builder,
            builder::fact("request_scope", &[Term::from(scope.as_str())]),
        )?;
    }
    if let Some(uri) = &request.resource {
        builder = add(
            builder,
            builder::fact("request_resource", &[Term::from(granted_part(uri))]),
        )?;
    }
    if let Some(name) = &request.prompt {
        builder = add(
            builder,
            builder::fact("request_prompt", &[Term::from(name.as_str())]),
        )?;
    }
    // every top-level scalar under its own name; a key starting with '/' is
    // reached by a pointer only, so it never stands for a nested value
    for (name, value) in request
        .arguments
        .iter()
        .filter(|(n, _)| !n.starts_with('/'))
    {
        if let Some(d) = args::scalar(value) {
            let mut terms = vec![Term::Str(name.clone())];
            terms.extend(derived_terms(&d));
            builder = add(builder, builder::fact(derived_predicate(&d), &terms))?;
        }
    }
    for (predicate, key, d) in derived {
        let mut terms = vec![Term::Str(key.clone())];
        terms.extend(derived_terms(d));
        builder = add(builder, builder::fact(predicate, &terms))?;
    }
    Ok(builder)
}

/// Why a check refused, in reporting priority: when several checks fail, the
/// first kind here wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refusal {
    Expired,
    Audience,
    Depth,
    Tool,
    Resource,
    Prompt,
    Argument,
    Other,
}

fn refusal(statement: Option<&Statement>) -> Refusal {
    match statement {
        Some(Statement::Expiry(_)) => Refusal::Expired,
        Some(Statement::Audience(_)) => Refusal::Audience,
        Some(Statement::MaxDepth(_)) => Refusal::Depth,
        Some(Statement::Tools { .. }) => Refusal::Tool,
        Some(Statement::Resources(_)) => Refusal::Resource,
        Some(Statement::Prompts(_)) => Refusal::Prompt,
        Some(Statement::Arg(_)) => Refusal::Argument,
        // A check mcpvault did not write: classify by the facts it reads.
        Some(Statement::Unrecognized { predicates, .. }) => {
            let has = |p: &str| predicates.contains(p);
            if has("time") {
                Refusal::Expired
            } else if has("verifier_audience") {
                Refusal::Audience
            } else if has("depth") {
                Refusal::Depth
            } else if predicates.iter().any(|p| p.starts_with("request_arg_")) {
                Refusal::Argument
            } else if has("request_resource") {
                Refusal::Resource
            } else if has("request_prompt") {
                Refusal::Prompt
            } else if has("request_tool") || has("request_method") {
                Refusal::Tool
            } else {
                Refusal::Other
            }
        }
        None => Refusal::Other,
    }
}

fn denial(chain: &Chain, e: Token, request: &Request, depth: usize) -> Error {
    let checks = match &e {
        Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => checks,
        Token::Execution(x) => {
            // Only checks mcpvault did not write can fail to evaluate: every
            // request fact is typed so canonical checks never mix types.
            return Error::CheckFailed {
                block: None,
                check: format!("evaluation failed: {x}"),
            };
        }
        _ => return token_err(e),
    };
    let worst = checks
        .iter()
        .map(|failed| match failed {
            FailedCheck::Block(b) => {
                let (block, id) = (b.block_id as usize, b.check_id as usize);
                let statement = chain.blocks.get(block).and_then(|b| b.statements.get(id));
                (refusal(statement), Some(block), &b.rule)
            }
            // mcpvault adds no verifier checks; anything here is unexpected
            FailedCheck::Authorizer(a) => (Refusal::Other, None, &a.rule),
        })
        .min_by_key(|(kind, _, _)| *kind);
    let Some((kind, block, rule)) = worst else {
        return Error::malformed("no policy allowed the token: not an mcpvault token");
    };
    let check = rule.clone();
    let tool = || request.tool.clone().unwrap_or_default();
    match (kind, block) {
        (Refusal::Expired, Some(block)) => Error::Expired { block, check },
        (Refusal::Audience, Some(block)) => Error::WrongAudience { block, check },
        (Refusal::Depth, Some(block)) => Error::DepthExceeded {
            depth,
            block,
            check,
        },
        (Refusal::Tool, Some(block)) => Error::ToolNotAllowed {
            tool: tool(),
            block,
            check,
        },
        (Refusal::Argument, Some(block)) => Error::ArgumentNotAllowed {
            tool: tool(),
            block,
            check,
        },
        (Refusal::Resource, Some(block)) => Error::ResourceNotAllowed {
            resource: request.resource.clone().unwrap_or_default(),
            block,
            check,
        },
        (Refusal::Prompt, Some(block)) => Error::PromptNotAllowed {
            prompt: request.prompt.clone().unwrap_or_default(),
            block,
            check,
        },
        (_, block) => Error::CheckFailed { block, check },
    }
}

/// Verifies a token for one request with the default [`Limits`].
pub fn verify(
    token: &str,
    public_key_hex: &str,
    request: &Request,
    now: u64,
) -> Result<AuthorizedFacts> {
    verify_with_limits(token, public_key_hex, request, now, &Limits::default())
}

/// Verifies a token for one request: every signature in the chain, then the
/// Datalog of every block against the request, under `limits`.
pub fn verify_with_limits(
    token: &str,
    public_key_hex: &str,
    request: &Request,
    now: u64,
    limits: &Limits,
) -> Result<AuthorizedFacts> {
    crate::Verifier::new(limits.clone()).verify(token, public_key_hex, request, now)
}

/// Checks what the caller supplies before any key or token is looked at, so
/// every verify path reports bad input the same way.
pub(crate) fn check_call(request: &Request, now: u64) -> Result<()> {
    validate_request(request)?;
    if now > MAX_EXPIRES_AT {
        return Err(Error::invalid("now is after 9999-12-31T23:59:59Z"));
    }
    Ok(())
}

/// A token whose signature chain verified under one root key, read back.
/// Holds nothing that depends on the time or the request.
pub(crate) struct Loaded {
    /// biscuit-auth's token, for its authorizer: only a chain that is not
    /// plain is evaluated by it (see [`direct`]), so only such a chain has it.
    biscuit: Option<Biscuit>,
    chain: Chain,
    shape: Shape,
}

/// Decodes a token's text and reads its shape (canonical bytes, nesting):
/// the one way in for verify, attenuate and inspect.
#[allow(clippy::type_complexity)]
fn decode(
    token: &str,
    limits: &Limits,
) -> Result<(Vec<u8>, Shape, Vec<biscuit_auth::format::schema::Block>)> {
    check_token_size(token, limits)?;
    let bytes = BASE64
        .decode(token.trim())
        .map_err(|e| Error::malformed(format!("base64: {e}")))?;
    let (shape, protos) = shape::read(&bytes)?;
    Ok((bytes, shape, protos))
}

/// Decodes the token and verifies every signature with `root`.
///
/// A token that can be plain (no rule, no third-party block: what mcpvault
/// writes) has its signatures checked by biscuit-auth's `SerializedBiscuit`
/// alone; building a `Biscuit` on top decodes every block a second time and
/// converts it for the authorizer, a tenth of a cold verify that a plain
/// chain never uses. Every check `Biscuit::from` makes after the signatures
/// is made by [`raw_blocks`] too (the same decoding, symbol and public-key
/// tables). A chain that turns out not to be plain gets its `Biscuit` all
/// the same (checking the signatures again: a token with checks or facts of
/// its own but no rule).
pub(crate) fn load(token: &str, root: PublicKey, limits: &Limits) -> Result<Loaded> {
    let (bytes, shape, protos) = decode(token, limits)?;
    let maybe_plain =
        !limits.always_datalog && !shape.third_party() && protos.iter().all(|b| b.rules.is_empty());
    let (biscuit, raw, revocation_ids) = if maybe_plain {
        let container = biscuit_auth::format::SerializedBiscuit::from_slice(&bytes, root)
            .map_err(|e| token_err(Token::Format(e)))?;
        check_block_count(container.blocks.len() + 1, limits)?;
        // no block is third-party: no external key
        let raw = raw_blocks(&protos, &[], false)?;
        let ids = std::iter::once(&container.authority)
            .chain(&container.blocks)
            .map(|b| b.signature.to_bytes().to_vec())
            .collect();
        (None, raw, ids)
    } else {
        let biscuit = Biscuit::from(&bytes, root).map_err(token_err)?;
        check_block_count(biscuit.block_count(), limits)?;
        // the blocks were decoded from the very bytes whose signatures verified
        let raw = raw_blocks(&protos, &biscuit.external_public_keys(), false)?;
        let ids = biscuit.revocation_identifiers();
        (Some(biscuit), raw, ids)
    };
    let chain = read_chain(raw, revocation_ids)?;
    let biscuit = match biscuit {
        None if !chain.blocks.iter().all(|b| b.plain) => {
            Some(Biscuit::from(&bytes, root).map_err(token_err)?)
        }
        b => b,
    };
    Ok(Loaded {
        biscuit,
        chain,
        shape,
    })
}

/// Refuses a request whose evaluation could need more than `max_work`.
fn check_work(
    shape: &Shape,
    request: &Request,
    derived: &[(&'static str, String, Derived<'_>)],
    limits: &Limits,
) -> Result<()> {
    let values = || {
        request
            .arguments
            .iter()
            .filter(|(n, _)| !n.starts_with('/'))
            .map(|(_, v)| v)
    };
    let count = |f: fn(&serde_json::Value) -> bool| values().filter(|v| f(v)).count() as u64;
    let derived_count = |p: &str| derived.iter().filter(|(q, _, _)| *q == p).count() as u64;
    // The facts `request_facts` adds, counted without building them (building
    // them made a cached verify 75 % slower); keep the two in step.
    let verifier = [
        ("time", 1, 1),
        ("request_method", 1, 1),
        ("depth", 1, 1),
        (
            "verifier_audience",
            1,
            u64::from(request.audience.is_some()),
        ),
        ("request_tool", 1, u64::from(request.tool.is_some())),
        ("request_scope", 1, u64::from(request.scope.is_some())),
        ("request_resource", 1, u64::from(request.resource.is_some())),
        ("request_prompt", 1, u64::from(request.prompt.is_some())),
        (
            "request_arg_str",
            2,
            count(serde_json::Value::is_string) + derived_count("request_arg_str"),
        ),
        (
            "request_arg_bool",
            2,
            count(serde_json::Value::is_boolean) + derived_count("request_arg_bool"),
        ),
        (
            "request_arg_int",
            2,
            count(serde_json::Value::is_i64) + derived_count("request_arg_int"),
        ),
        ("request_arg_num", 2, derived_count("request_arg_num")),
        ("request_arg_path", 2, derived_count("request_arg_path")),
        ("request_arg_url", 5, derived_count("request_arg_url")),
        ("request_arg_ip", 2, derived_count("request_arg_ip")),
        ("request_arg_array", 2, derived_count("request_arg_array")),
    ];
    // the longest string or array a fact holds sizes string operations and
    // the closures run over arrays
    let derived_len = derived.iter().map(|(_, _, d)| match d {
        Derived::Str(s) => s.len(),
        Derived::Path(p) | Derived::Ip(p) => p.len(),
        Derived::Url(u) => u.host.len().max(u.path.len()),
        Derived::Array(items) => items
            .iter()
            .map(|v| v.as_str().map_or(1, str::len))
            .max()
            .unwrap_or(0)
            .max(items.len()),
        _ => 0,
    });
    let longest = values()
        .filter_map(|v| v.as_str())
        .map(str::len)
        .chain(derived_len)
        .chain(request.resource.as_deref().map(str::len))
        .max();
    let work = shape.work(
        &verifier,
        longest.unwrap_or(0) as u64,
        limits.max_facts,
        limits.max_iterations,
    );
    if work > u128::from(limits.max_work) {
        return Err(Error::LimitsExceeded {
            detail: format!(
                "the token's Datalog could need {work} units of work, over the limit of {}",
                limits.max_work
            ),
        });
    }
    Ok(())
}

/// The call a proof and an approval are about: the token's last revocation
/// id, and the tool (for `tools/call`), else the resource URI or prompt.
fn call_of_request<'a>(chain: &'a Chain, request: &'a Request) -> crate::proof::Call<'a> {
    crate::proof::Call {
        token_id: chain
            .blocks
            .last()
            .map(|b| b.revocation_id.as_str())
            .unwrap_or_default(),
        method: &request.method,
        name: if request.method == TOOLS_CALL {
            request.tool.as_deref()
        } else {
            request.resource.as_deref().or(request.prompt.as_deref())
        },
        arguments: &request.arguments,
        audience: request.audience.as_deref(),
    }
}

/// Runs every block's checks and the policy for one request at `now`
/// (already checked by [`check_call`]).
/// The revocation ids of a loaded token's blocks, the authority's first.
pub(crate) fn revocation_ids(loaded: &Loaded) -> Vec<String> {
    loaded.chain.revocation_ids()
}

pub(crate) fn authorize(
    loaded: &Loaded,
    request: &Request,
    now: u64,
    limits: &Limits,
) -> Result<AuthorizedFacts> {
    let chain = &loaded.chain;
    let depth = chain.blocks.len().saturating_sub(1);
    // a holder-bound token: the call's proof first, so a copy of the token alone learns nothing of its grants
    let proof_nonce = match &chain.holder {
        None => None,
        Some(h) => {
            let proof = request.proof.as_deref().ok_or(Error::ProofRequired)?;
            crate::proof::check_signable(&request.arguments)?;
            Some(crate::proof::check_proof(
                h,
                &call_of_request(chain, request),
                proof,
                now,
            )?)
        }
    };
    let mut facts = authorize_checks(loaded, request, now, limits, depth)?;
    facts.proof_nonce = proof_nonce;
    // what the call also needs once the token allows it: the tool as it was pinned, the approvals required
    if request.method == TOOLS_CALL {
        if let Some(tool) = request.tool.as_deref() {
            let pins = facts.pins.get(tool).map(Vec::as_slice).unwrap_or_default();
            if !request.defer_pins && !crate::pin::passes(pins, request.tool_definition.as_deref())
            {
                return Err(Error::ToolDefinitionChanged {
                    tool: tool.to_string(),
                    detail: match &request.tool_definition {
                        None => "the server did not give the tool's current definition".into(),
                        Some(h) => format!("current {h}, pinned {}", pins.join(", ")),
                    },
                });
            }
            let required: Vec<crate::approval::Requirement> = chain
                .blocks
                .iter()
                .flat_map(|b| &b.claims.approvals)
                .filter(|r| r.tool.as_deref() == Some(tool))
                .chain(&request.required_approvals)
                .cloned()
                .collect();
            if !required.is_empty() {
                crate::proof::check_signable(&request.arguments)?;
                let hash = crate::proof::request_hash(&call_of_request(chain, request));
                facts.approvals =
                    crate::approval::check(&required, &request.approvals, &hash, now)?;
            }
        }
    }
    Ok(facts)
}

fn authorize_checks(
    loaded: &Loaded,
    request: &Request,
    now: u64,
    limits: &Limits,
    depth: usize,
) -> Result<AuthorizedFacts> {
    let chain = &loaded.chain;
    let derived = derived_facts(chain, request);
    check_work(&loaded.shape, request, &derived, limits)?;
    if !limits.always_datalog && chain.blocks.iter().all(|b| b.plain) {
        direct(chain, request, now, depth)?;
        chain.check_content_granted(request)?;
        return Ok(facts_of(chain, request, depth));
    }

    let builder = request_facts(AuthorizerBuilder::new(), request, now, depth, &derived)?
        .policy(allow_policy())
        .map_err(|e| Error::Internal {
            detail: format!("policy: {e}"),
        })?
        .set_limits(AuthorizerLimits {
            max_facts: limits.max_facts,
            max_iterations: limits.max_iterations,
            // biscuit adds max_time to an Instant and unwraps: keep it sane
            max_time: limits.max_time.min(MAX_TIME_LIMIT),
        });
    let Some(biscuit) = &loaded.biscuit else {
        return Err(Error::Internal {
            detail: "a chain that is not plain was loaded without its biscuit".into(),
        });
    };
    let mut authorizer = builder.build(biscuit).map_err(token_err)?;
    match authorizer.authorize() {
        Ok(_) => {}
        Err(e @ Token::RunLimit(_)) => return Err(token_err(e)),
        Err(e) => return Err(denial(chain, e, request, depth)),
    }

    chain.check_content_granted(request)?;
    Ok(facts_of(chain, request, depth))
}

fn facts_of(chain: &Chain, request: &Request, depth: usize) -> AuthorizedFacts {
    AuthorizedFacts {
        verified: true,
        tool: request.tool.clone(),
        tools: chain
            .effective_tools(request.tool.as_deref())
            .into_iter()
            .collect(),
        issuer: chain.issuer.clone(),
        subject: chain.subject.clone(),
        expires_at: chain.expires_at(),
        depth,
        audience: chain.audience(),
        max_depth: chain.max_depth(),
        revocation_ids: chain.revocation_ids(),
        nonces: chain
            .blocks
            .iter()
            .filter_map(|b| b.nonce.clone())
            .collect(),
        nonce_blocks: chain
            .blocks
            .iter()
            .zip(chain.revocation_ids())
            .filter_map(|(b, id)| b.nonce.as_ref().map(|_| id))
            .collect(),
        scopes: chain.effective_scopes().into_iter().collect(),
        scope: request.scope.clone(),
        quotas: chain.quotas(),
        holder: chain.holder.clone(),
        proof_nonce: None,
        pins: chain.pins(),
        approvals: Vec::new(),
        list_steps: None,
        // what a list may show: nothing the issuer did not grant, unless the
        // server opened it (then every block's own grant still narrows)
        resources: if chain.issuer_grants_resources() || request.open_resources {
            chain
                .blocks
                .iter()
                .flat_map(|b| b.resources.iter().cloned())
                .collect()
        } else {
            Vec::new()
        },
        prompts: if chain.issuer_grants_prompts() || request.open_prompts {
            chain.granted_prompts().map(|p| p.into_iter().collect())
        } else {
            None
        },
    }
}

/// Evaluates a chain in which every block is plain — only facts and checks
/// mcpvault writes (`mcpvault`, `issuer`, `subject`, `nonce`; the recognised
/// statements of `SCHEMA.md`), no rule, no third-party signature — without
/// the Datalog engine. Each recognised check is exactly its canonical
/// Datalog (recognition compares the printed check with the one mcpvault
/// would write), and those checks read only facts the verifier supplies, so
/// this computes the same answer as biscuit-auth's authorizer: the same code,
/// block and check text, by the same priority. `tests/props.rs` compares the
/// two on random chains and calls, and every vector runs both ways
/// (`Limits::always_datalog`).
fn direct(chain: &Chain, request: &Request, now: u64, depth: usize) -> Result<()> {
    let call = request.method == TOOLS_CALL;
    let tool = request.tool.as_deref();
    let arg_ok = |l: &ArgLimit| args::allows(l, &request.arguments, &chain.prepared);
    let mut worst: Option<(Refusal, usize, usize)> = None;
    for (b, block) in chain.blocks.iter().enumerate() {
        for (c, statement) in block.statements.iter().enumerate() {
            let pass = match statement {
                Statement::Expiry(d) => now < *d,
                Statement::Resources(globs) => {
                    !request.reads_resource()
                        || request.resource.as_ref().is_some_and(|uri| {
                            let uri = granted_part(uri);
                            globs.iter().any(|g| chain.prepared.glob_matches(g, uri))
                        })
                }
                Statement::Prompts(names) => {
                    request.method != "prompts/get"
                        || request.prompt.as_ref().is_some_and(|p| names.contains(p))
                }
                Statement::Tools { tools, scopes } => {
                    !call
                        || tool.is_some_and(|t| tools.contains(t))
                        || request.scope.as_ref().is_some_and(|sc| scopes.contains(sc))
                }
                Statement::Audience(a) => request.audience.as_deref() == Some(a.as_str()),
                Statement::MaxDepth(n) => (depth as u64) <= *n,
                Statement::Arg(l) => !call || tool != Some(l.tool.as_str()) || arg_ok(l),
                Statement::Unrecognized { .. } => false,
            };
            if !pass {
                let kind = refusal(Some(statement));
                if worst.map_or(true, |(k, _, _)| kind < k) {
                    worst = Some((kind, b, c));
                }
            }
        }
    }
    let Some((kind, block, c)) = worst else {
        return Ok(());
    };
    let check = chain
        .blocks
        .get(block)
        .and_then(|b| {
            let symbols = b.own_symbols.as_ref().unwrap_or(&chain.symbols);
            b.raw_checks.get(c).map(|check| symbols.print_check(check))
        })
        .unwrap_or_default();
    let tool = || request.tool.clone().unwrap_or_default();
    Err(match kind {
        Refusal::Expired => Error::Expired { block, check },
        Refusal::Audience => Error::WrongAudience { block, check },
        Refusal::Depth => Error::DepthExceeded {
            depth,
            block,
            check,
        },
        Refusal::Tool => Error::ToolNotAllowed {
            tool: tool(),
            block,
            check,
        },
        Refusal::Argument => Error::ArgumentNotAllowed {
            tool: tool(),
            block,
            check,
        },
        Refusal::Resource => Error::ResourceNotAllowed {
            resource: request.resource.clone().unwrap_or_default(),
            block,
            check,
        },
        Refusal::Prompt => Error::PromptNotAllowed {
            prompt: request.prompt.clone().unwrap_or_default(),
            block,
            check,
        },
        Refusal::Other => Error::CheckFailed {
            block: Some(block),
            check,
        },
    })
}

/// A token's content, read without a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Always false: inspection checks no signature.
    pub verified: bool,
    /// Who minted the token (claimed).
    pub issuer: String,
    /// Who the token is for (claimed).
    pub subject: String,
    /// Tools every block allows (claimed).
    pub tools: Vec<String>,
    /// Earliest expiry of all blocks (claimed), unix seconds.
    pub expires_at: u64,
    /// Number of attenuation blocks.
    pub depth: usize,
    /// Revocation ids, hex, one per block.
    pub revocation_ids: Vec<String>,
    /// Every block, authority first.
    pub blocks: Vec<BlockInfo>,
}

/// Reads a token's content without verifying it.
pub fn inspect(token: &str) -> Result<Inspection> {
    let limits = Limits::default();
    let (bytes, _, protos) = decode(token, &limits)?;
    let unverified = UnverifiedBiscuit::from(&bytes).map_err(token_err)?;
    check_block_count(unverified.block_count(), &limits)?;
    let chain = unverified_chain(&unverified, &protos, true)?;
    Ok(Inspection {
        verified: false,
        tools: chain.effective_tools(None).into_iter().collect(),
        expires_at: chain.expires_at(),
        depth: chain.blocks.len().saturating_sub(1),
        revocation_ids: chain
            .blocks
            .iter()
            .map(|b| b.revocation_id.clone())
            .collect(),
        issuer: chain.issuer,
        subject: chain.subject,
        blocks: chain.blocks,
    })
}

/// Benchmarks only: the per-signature floor. Verifies one Ed25519 signature
/// over 256 bytes (about a block's signed payload) `rounds` times with
/// biscuit-auth's own check (ed25519-dalek's `verify_strict`), and returns how
/// many verified. A token of n blocks needs at least n of these; `make bench`
/// compares every host's verify with this floor on that host.
#[doc(hidden)]
pub fn signature_floor(rounds: u32) -> u32 {
    let Ok(private) = PrivateKey::from_bytes(&[7u8; 32], Algorithm::Ed25519) else {
        return 0;
    };
    let pair = KeyPair::from(&private);
    let data = [0x5au8; 256];
    let Ok(signature) = pair.sign(&data) else {
        return 0;
    };
    let public = pair.public();
    (0..rounds)
        .filter(|_| public.verify_signature(&data, &signature).is_ok())
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::macros::{fact, policy};

    /// The verifier's policy and request facts are the values `policy!` and `fact!` build.
    #[test]
    fn policy_and_request_facts_are_the_macros_values() {
        let resolved = |mut p: builder::Policy| {
            for q in &mut p.queries {
                let params = q.parameters.take().unwrap_or_default();
                for t in q.body.iter_mut().flat_map(|p| p.terms.iter_mut()) {
                    if let Term::Parameter(name) = t {
                        if let Some(Some(v)) = params.get(name.as_str()) {
                            *t = v.clone();
                        }
                    }
                }
            }
            p
        };
        let mut new = allow_policy();
        let old = policy!("allow if mcpvault({v})", v = schema::SCHEMA_VERSION);
        assert_eq!(new.to_string(), old.to_string());
        new = resolved(new);
        assert_eq!(new, resolved(old));

        let f = |f: builder::Fact| f.to_string();
        assert_eq!(
            f(builder::fact("time", &[Term::Date(7)])),
            f(fact!("time({t})", t = Term::Date(7)))
        );
        assert_eq!(
            f(builder::fact("depth", &[Term::Integer(3)])),
            f(fact!("depth({d})", d = 3i64))
        );
        assert_eq!(
            f(builder::fact("request_tool", &[Term::from("a\"b")])),
            f(fact!("request_tool({t})", t = "a\"b"))
        );
    }
}
