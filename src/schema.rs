//! The token schema: every fact and check mcpvault writes, and the reverse —
//! recognising those statements when reading a block back.
//!
//! `SCHEMA.md` documents the same statements for people and stock Biscuit
//! tools. Recognition is exact: a check counts as, say, a tool restriction
//! only if re-generating the canonical check from its parameters prints the
//! same Datalog. Anything else is kept as an unrecognised check: it is still
//! enforced by the authorizer, and reporting treats it conservatively.

use std::collections::BTreeSet;

use biscuit_auth::builder::{
    Binary, BlockBuilder, Check, CheckKind, Expression, Fact, Op, Predicate, Rule, Term, Unary,
};

use crate::args::{self, ArgPath, UrlPattern};
use crate::error::{Error, Result};
use crate::model::{ArgLimit, ArgRule, Bound, Float, Scalar};

/// The schema version written in the authority block as `mcpvault(1)`.
pub const SCHEMA_VERSION: i64 = 1;

/// Predicates the verifier supplies (the request). Checks that mention them
/// depend on the request.
pub(crate) const REQUEST_PREDICATES: &[&str] = &[
    "request_method",
    "request_tool",
    "request_scope",
    "request_resource",
    "request_prompt",
    "request_arg_str",
    "request_arg_int",
    "request_arg_bool",
    "request_arg_num",
    "request_arg_path",
    "request_arg_url",
    "request_arg_ip",
    "request_arg_array",
];

fn builder_err(e: biscuit_auth::error::Token) -> Error {
    Error::Internal {
        detail: format!("building datalog: {e}"),
    }
}

pub(crate) fn version_fact() -> Fact {
    fact("mcpvault", vec![SCHEMA_VERSION.into()])
}

pub(crate) fn issuer_fact(issuer: &str) -> Fact {
    fact("issuer", vec![issuer.into()])
}

pub(crate) fn subject_fact(subject: &str) -> Fact {
    fact("subject", vec![subject.into()])
}

/// `nonce("hex")`: marks a block single-use.
pub(crate) fn nonce_fact(nonce: &str) -> Fact {
    fact("nonce", vec![nonce.into()])
}

/// `holder("hex")`: the token (and every token derived from it) is accepted
/// only with a proof signed by this Ed25519 key (SCHEMA.md, "Holder-bound tokens").
pub(crate) fn holder_fact(public_key_hex: &str) -> Fact {
    fact("holder", vec![public_key_hex.into()])
}

/// `pin("tool", "sha256hex")`: calls of the tool need its current definition
/// to hash to this (SCHEMA.md, "Pinned tool definitions").
pub(crate) fn pin_fact(tool: &str, hash: &str) -> Fact {
    fact("pin", vec![tool.into(), hash.into()])
}

/// `approval("tool", needed, ["hex", …])`: calls of the tool need `needed`
/// signed approvals of the listed keys (SCHEMA.md, "Signed approvals").
pub(crate) fn approval_fact(r: &crate::approval::Requirement) -> Fact {
    let keys: std::collections::BTreeSet<Term> =
        r.approvers.iter().map(|k| Term::Str(k.clone())).collect();
    fact(
        "approval",
        vec![
            r.tool.clone().unwrap_or_default().into(),
            i64::from(r.needed).into(),
            Term::Set(keys),
        ],
    )
}

/// `rate(max, period)` or `rate("tool", max, period)`: a quota (SCHEMA.md, "Quotas").
pub(crate) fn rate_fact(r: &crate::quota::Rate) -> Fact {
    let (max, period) = (r.max as i64, r.period as i64);
    match &r.tool {
        None => fact("rate", vec![max.into(), period.into()]),
        Some(t) => fact("rate", vec![t.as_str().into(), max.into(), period.into()]),
    }
}

/// `budget("tool", "arg", max, period)`: a cap on an argument's sum.
pub(crate) fn budget_fact(b: &crate::quota::Budget) -> Fact {
    fact(
        "budget",
        vec![
            b.tool.as_str().into(),
            b.arg.as_str().into(),
            (b.max as i64).into(),
            (b.period as i64).into(),
        ],
    )
}

// The statements below are built term by term with biscuit-auth's builder types: the same values `fact!` and
// `check!` build (the tests compare every form with its macro), in a fraction of the code: each macro expanded
// into its own builder calls and parameter substitution, 54 KB of the npm .wasm for the argument limits alone
// (issue 17). A check is a disjunction of queries; an expression is postfix, as biscuit-auth's parser writes it.

fn fact(name: &str, terms: Vec<Term>) -> Fact {
    Fact::new(name.to_string(), terms)
}

fn var(name: &str) -> Term {
    Term::Variable(name.to_string())
}

fn pred(name: &str, terms: Vec<Term>) -> Predicate {
    Predicate::new(name.to_string(), terms)
}

/// `check if` the queries, any of them.
fn check_of(queries: Vec<Rule>) -> Check {
    Check {
        queries,
        kind: CheckKind::One,
    }
}

/// One query of a check: its body, then its expressions.
fn query(body: Vec<Predicate>, expressions: Vec<Vec<Op>>) -> Rule {
    Rule::new(
        pred("query", vec![]),
        body,
        expressions
            .into_iter()
            .map(|ops| Expression { ops })
            .collect(),
        vec![],
    )
}

/// `$x OP value` (`$x.starts_with(value)` for `Prefix`, `$x.matches(value)` for `Regex`, ...).
fn cmp(x: &str, op: Binary, value: Term) -> Vec<Op> {
    vec![Op::Value(var(x)), Op::Value(value), Op::Binary(op)]
}

/// `left && right` or `left || right`: the right side is a closure, evaluated lazily.
fn lazy(mut left: Vec<Op>, op: Binary, right: Vec<Op>) -> Vec<Op> {
    left.push(Op::Closure(vec![], right));
    left.push(Op::Binary(op));
    left
}

/// `$x == value || $x.starts_with(prefix)`.
fn eq_or_prefix(x: &str, value: &str, prefix: String) -> Vec<Op> {
    lazy(
        cmp(x, Binary::HeterogeneousEqual, value.into()),
        Binary::LazyOr,
        cmp(x, Binary::Prefix, prefix.into()),
    )
}

/// `set.contains($x)`.
fn set_contains(set: Term, x: &str) -> Vec<Op> {
    vec![
        Op::Value(set),
        Op::Value(var(x)),
        Op::Binary(Binary::Contains),
    ]
}

/// `request_method($method), $method !== M1, $method !== M2, ...`.
fn method_not(methods: &[&str]) -> Rule {
    query(
        vec![pred("request_method", vec![var("method")])],
        methods
            .iter()
            .map(|m| cmp("method", Binary::NotEqual, (*m).into()))
            .collect(),
    )
}

/// `check if false`: never minted; fails closed.
fn false_check() -> Check {
    check_of(vec![query(
        vec![],
        vec![vec![Op::Value(Term::Bool(false))]],
    )])
}

/// `check if request_tool(T), PRED(A, ...), EXPRESSIONS or request_tool($tool), $tool !== T or
/// request_method($method), $method !== "tools/call"`: the form of every argument limit.
fn tool_arg_check(t: &str, predicate: &str, terms: Vec<Term>, expressions: Vec<Vec<Op>>) -> Check {
    check_of(vec![
        query(
            vec![pred("request_tool", vec![t.into()]), pred(predicate, terms)],
            expressions,
        ),
        query(
            vec![pred("request_tool", vec![var("tool")])],
            vec![cmp("tool", Binary::NotEqual, t.into())],
        ),
        method_not(&["tools/call"]),
    ])
}

/// An argument limit on one value: `PRED(A, $value), EXPRESSION`.
fn value_check(t: &str, a: &str, predicate: &str, expression: Vec<Op>) -> Check {
    tool_arg_check(t, predicate, vec![a.into(), var("value")], vec![expression])
}

/// An argument limit that is a fact of the request: `PRED(A, V)`.
fn fact_arg_check(t: &str, a: &str, predicate: &str, v: Term) -> Check {
    tool_arg_check(t, predicate, vec![a.into(), v], vec![])
}

/// `check if time($time), $time < EXPIRY` — valid while now < EXPIRY.
pub(crate) fn expiry_check(expires_at: u64) -> Check {
    check_of(vec![query(
        vec![pred("time", vec![var("time")])],
        vec![cmp("time", Binary::LessThan, Term::Date(expires_at))],
    )])
}

/// One check for the whole set of tools, passing for non-tool MCP methods.
#[cfg(test)]
pub(crate) fn tools_check(tools: &BTreeSet<String>) -> Check {
    access_check(tools, &BTreeSet::new())
}

fn str_set(items: &BTreeSet<String>) -> Term {
    Term::Set(items.iter().map(|t| Term::Str(t.clone())).collect())
}

/// `PRED($x), SET.contains($x)`.
fn member_of(predicate: &str, x: &str, items: &BTreeSet<String>) -> Rule {
    query(
        vec![pred(predicate, vec![var(x)])],
        vec![set_contains(str_set(items), x)],
    )
}

/// The grant check of a block: the tool is one it names, or (with scopes)
/// the scope the server maps the call to is one it names.
pub(crate) fn access_check(tools: &BTreeSet<String>, scopes: &BTreeSet<String>) -> Check {
    let mut queries = Vec::with_capacity(3);
    if !tools.is_empty() || scopes.is_empty() {
        queries.push(member_of("request_tool", "tool", tools));
    }
    if !scopes.is_empty() {
        queries.push(member_of("request_scope", "scope", scopes));
    }
    queries.push(method_not(&["tools/call"]));
    check_of(queries)
}

/// Resources a block grants: the URI matches one of its patterns (globs,
/// written as regular expressions), for `resources/read` and
/// `resources/subscribe`; other methods pass.
pub(crate) fn resources_check(globs: &BTreeSet<String>) -> Check {
    let set = Term::Set(
        globs
            .iter()
            .map(|g| Term::Str(args::glob_regex(g).unwrap_or_else(|_| "$^".into())))
            .collect(),
    );
    // {set}.any($re -> $uri.matches($re))
    let any = vec![
        Op::Value(set),
        Op::Closure(vec!["re".to_string()], cmp("uri", Binary::Regex, var("re"))),
        Op::Binary(Binary::Any),
    ];
    check_of(vec![
        query(vec![pred("request_resource", vec![var("uri")])], vec![any]),
        method_not(&["resources/read", "resources/subscribe"]),
    ])
}

/// Prompts a block grants, for `prompts/get`; other methods pass.
pub(crate) fn prompts_check(names: &BTreeSet<String>) -> Check {
    check_of(vec![
        member_of("request_prompt", "name", names),
        method_not(&["prompts/get"]),
    ])
}

pub(crate) fn audience_check(audience: &str) -> Check {
    check_of(vec![query(
        vec![pred("verifier_audience", vec![audience.into()])],
        vec![],
    )])
}

pub(crate) fn depth_check(max_depth: u64) -> Check {
    let max = i64::try_from(max_depth).unwrap_or(i64::MAX);
    check_of(vec![query(
        vec![pred("depth", vec![var("depth")])],
        vec![cmp("depth", Binary::LessOrEqual, max.into())],
    )])
}

/// A limit on one argument of one tool. The two escapes let calls of other
/// tools, and non-tool MCP methods, through; a call of the tool itself must
/// carry the argument with the right type and value. `SCHEMA.md`, "Argument
/// limits", lists every form.
pub(crate) fn arg_check(limit: &ArgLimit) -> Check {
    let t = limit.tool.as_str();
    let path = ArgPath::parse(&limit.arg).unwrap_or_else(|_| ArgPath::of_key(&limit.arg, false));
    let key = path.key();
    let a = key.as_str();
    if path.each {
        return each_check(t, a, &limit.rule);
    }
    let value =
        |predicate: &str, op: Binary, v: Term| value_check(t, a, predicate, cmp("value", op, v));
    match &limit.rule {
        ArgRule::Max(Bound::Int(m)) => value("request_arg_int", Binary::LessOrEqual, (*m).into()),
        ArgRule::Min(Bound::Int(m)) => {
            value("request_arg_int", Binary::GreaterOrEqual, (*m).into())
        }
        ArgRule::Max(Bound::Float(f)) => value(
            "request_arg_num",
            Binary::LessOrEqual,
            args::f64_key(f.0).into(),
        ),
        ArgRule::Min(Bound::Float(f)) => value(
            "request_arg_num",
            Binary::GreaterOrEqual,
            args::f64_key(f.0).into(),
        ),
        ArgRule::Prefix(p) => value("request_arg_str", Binary::Prefix, p.as_str().into()),
        ArgRule::Eq(Scalar::Str(v)) => fact_arg_check(t, a, "request_arg_str", v.as_str().into()),
        ArgRule::Eq(Scalar::Int(v)) => fact_arg_check(t, a, "request_arg_int", (*v).into()),
        ArgRule::Eq(Scalar::Bool(v)) => fact_arg_check(t, a, "request_arg_bool", (*v).into()),
        ArgRule::OneOf(values) => {
            let set: BTreeSet<Term> = values.iter().map(scalar_term).collect();
            let predicate = if values.iter().all(|v| matches!(v, Scalar::Int(_))) {
                "request_arg_int"
            } else {
                "request_arg_str"
            };
            value_check(t, a, predicate, set_contains(Term::Set(set), "value"))
        }
        ArgRule::Glob(_) | ArgRule::Matches(_) => value(
            "request_arg_str",
            Binary::Regex,
            args::pattern_of(&limit.rule).into(),
        ),
        ArgRule::Under(base) => value_check(
            t,
            a,
            "request_arg_path",
            eq_or_prefix("value", base, args::under_prefix(base)),
        ),
        ArgRule::Url(pattern) => url_check(t, a, pattern),
        ArgRule::Cidr(net) => value(
            "request_arg_ip",
            Binary::Prefix,
            args::cidr_bits(net).unwrap_or_else(|_| "x".into()).into(),
        ),
        ArgRule::MaxItems(n) | ArgRule::MinItems(n) => {
            let op = if matches!(limit.rule, ArgRule::MaxItems(_)) {
                Binary::LessOrEqual
            } else {
                Binary::GreaterOrEqual
            };
            let length = vec![
                Op::Value(var("value")),
                Op::Unary(Unary::Length),
                Op::Value(i64::from(*n).into()),
                Op::Binary(op),
            ];
            value_check(t, a, "request_arg_array", length)
        }
    }
}

/// A `url` limit: the scheme and port are in the fact's pattern, the host
/// (exact, or a suffix for `*.`) and the optional path in expressions.
fn url_check(t: &str, a: &str, pattern: &str) -> Check {
    let Ok(p) = UrlPattern::parse(pattern) else {
        // never minted (validation parses every pattern); fails closed
        return false_check();
    };
    let host_op = if p.wildcard {
        Binary::Suffix
    } else {
        Binary::HeterogeneousEqual
    };
    let mut expressions = vec![cmp("host", host_op, p.host.as_str().into())];
    if let Some(path) = &p.path {
        expressions.push(eq_or_prefix("path", path, UrlPattern::path_prefix(path)));
    }
    let terms = vec![
        a.into(),
        p.scheme.as_str().into(),
        var("host"),
        p.port.into(),
        var("path"),
    ];
    tool_arg_check(t, "request_arg_url", terms, expressions)
}

/// A limit on every element of an array (`items[*]`): the verifier supplies
/// the array, and `.all()` tests each element, its type first:
/// `request_arg_array(A, $value), $value.all($x -> $x.type() == TYPE && TEST)`.
fn each_check(t: &str, a: &str, rule: &ArgRule) -> Check {
    // biscuit-auth 6 errs on `null === "a"`: the type is tested first
    let (ty, test) = match rule {
        ArgRule::Eq(v) => (
            match v {
                Scalar::Str(_) => "string",
                Scalar::Int(_) => "integer",
                Scalar::Bool(_) => "bool",
            },
            cmp("x", Binary::HeterogeneousEqual, scalar_term(v)),
        ),
        ArgRule::OneOf(values) => {
            let set: BTreeSet<Term> = values.iter().map(scalar_term).collect();
            let ty = if values.iter().all(|v| matches!(v, Scalar::Int(_))) {
                "integer"
            } else {
                "string"
            };
            (ty, set_contains(Term::Set(set), "x"))
        }
        ArgRule::Prefix(p) => ("string", cmp("x", Binary::Prefix, p.as_str().into())),
        ArgRule::Glob(_) | ArgRule::Matches(_) => (
            "string",
            cmp("x", Binary::Regex, args::pattern_of(rule).into()),
        ),
        ArgRule::Max(Bound::Int(m)) => ("integer", cmp("x", Binary::LessOrEqual, (*m).into())),
        ArgRule::Min(Bound::Int(m)) => ("integer", cmp("x", Binary::GreaterOrEqual, (*m).into())),
        // never minted (validation refuses [*] with other rules): fails closed
        _ => return false_check(),
    };
    let typed = vec![
        Op::Value(var("x")),
        Op::Unary(Unary::TypeOf),
        Op::Value(ty.into()),
        Op::Binary(Binary::HeterogeneousEqual),
    ];
    let all = vec![
        Op::Value(var("value")),
        Op::Closure(vec!["x".to_string()], lazy(typed, Binary::LazyAnd, test)),
        Op::Binary(Binary::All),
    ];
    value_check(t, a, "request_arg_array", all)
}

fn scalar_term(s: &Scalar) -> Term {
    match s {
        Scalar::Bool(b) => Term::Bool(*b),
        Scalar::Int(i) => Term::Integer(*i),
        Scalar::Str(v) => Term::Str(v.clone()),
    }
}

fn term_scalar(t: &Term) -> Option<Scalar> {
    match t {
        Term::Bool(b) => Some(Scalar::Bool(*b)),
        Term::Integer(i) => Some(Scalar::Int(*i)),
        Term::Str(s) => Some(Scalar::Str(s.clone())),
        _ => None,
    }
}

/// Adds checks to a block builder, mapping builder errors.
pub(crate) fn add_checks(mut block: BlockBuilder, checks: Vec<Check>) -> Result<BlockBuilder> {
    for c in checks {
        block = block.check(c).map_err(builder_err)?;
    }
    Ok(block)
}

pub(crate) fn add_facts(mut block: BlockBuilder, facts: Vec<Fact>) -> Result<BlockBuilder> {
    for f in facts {
        block = block.fact(f).map_err(builder_err)?;
    }
    Ok(block)
}

/// What a check of a block means, when it is one mcpvault writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `check if time($time), $time < D`.
    Expiry(u64),
    /// The grant check: tools, and scopes (empty: the tools-only form).
    Tools {
        /// Tools it names.
        tools: BTreeSet<String>,
        /// Scopes it names.
        scopes: BTreeSet<String>,
    },
    /// The resources check: the globs a block grants.
    Resources(BTreeSet<String>),
    /// The prompts check: the names a block grants.
    Prompts(BTreeSet<String>),
    /// `check if verifier_audience(A)`.
    Audience(String),
    /// `check if depth($depth), $depth <= N`.
    MaxDepth(u64),
    /// An argument limit.
    Arg(ArgLimit),
    /// Anything else: enforced, but not understood by reporting.
    Unrecognized {
        /// Whether the check reads the request (tool, method or arguments).
        reads_request: bool,
        /// The predicate names it reads, for classifying a failure.
        predicates: BTreeSet<String>,
    },
}

fn first_term<'a>(check: &'a Check, pick: impl Fn(&'a Term) -> bool) -> Option<&'a Term> {
    for q in &check.queries {
        for p in &q.body {
            if let Some(t) = p.terms.iter().find(|t| pick(t)) {
                return Some(t);
            }
        }
        for e in &q.expressions {
            for op in &e.ops {
                if let Op::Value(t) = op {
                    if pick(t) {
                        return Some(t);
                    }
                }
            }
        }
    }
    None
}

/// Whether `original` is exactly the canonical `candidate`: the same kind,
/// and every query the same head, body, expressions and scopes. (Compared as
/// values, not as printed text: biscuit-auth does not escape quotes when it
/// prints a string, so two different checks can print alike, and printing
/// was a fifth of a verification.) Parameter maps are compared through the
/// terms they were substituted into.
fn same(candidate: Check, original: &Check) -> bool {
    let candidate = resolved(candidate);
    candidate.kind == original.kind
        && candidate.queries.len() == original.queries.len()
        && candidate
            .queries
            .iter()
            .zip(&original.queries)
            .all(|(a, b)| {
                a.head == b.head
                    && a.body == b.body
                    && a.expressions == b.expressions
                    && a.scopes == b.scopes
            })
}

/// `check!` leaves `{name}` as a parameter term and its value in the rule's
/// parameter map (biscuit-auth substitutes them when it serialises); put the
/// values in place so the check compares with one read from a token.
fn resolved(mut check: Check) -> Check {
    for rule in &mut check.queries {
        let Some(params) = rule.parameters.take() else {
            continue;
        };
        let fill = |t: &mut Term| {
            if let Term::Parameter(name) = t {
                if let Some(Some(value)) = params.get(name.as_str()) {
                    *t = value.clone();
                }
            }
        };
        for p in std::iter::once(&mut rule.head).chain(rule.body.iter_mut()) {
            p.terms.iter_mut().for_each(fill);
        }
        fn fill_ops(ops: &mut [Op], fill: &dyn Fn(&mut Term)) {
            for op in ops {
                match op {
                    Op::Value(t) => fill(t),
                    // `||`, `&&` and `.all()` hold their operands as closures
                    Op::Closure(_, inner) => fill_ops(inner, fill),
                    _ => {}
                }
            }
        }
        for e in &mut rule.expressions {
            fill_ops(&mut e.ops, &fill);
        }
    }
    check
}

/// Constant terms of a check's first query, in order: the body's terms
/// after the first two predicates' leading ones, then every value in its
/// expressions (closures included).
fn constants(q: &Rule) -> Vec<&Term> {
    fn ops<'a>(list: &'a [Op], out: &mut Vec<&'a Term>) {
        for op in list {
            match op {
                Op::Value(Term::Variable(_)) => {}
                Op::Value(t) => out.push(t),
                Op::Closure(_, inner) => ops(inner, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    if let Some(p) = q.body.get(1) {
        out.extend(
            p.terms
                .iter()
                .skip(1)
                .filter(|t| !matches!(t, Term::Variable(_))),
        );
    }
    for e in &q.expressions {
        ops(&e.ops, &mut out);
    }
    out
}

/// The limits a check could be the canonical form of, from its predicate
/// and constants; `recognize_check` keeps the one that regenerates it
/// exactly, so this only has to be generous.
fn arg_candidates(check: &Check) -> Vec<ArgLimit> {
    let Some(q) = check.queries.first() else {
        return Vec::new();
    };
    let (Some(tool_pred), Some(arg_pred)) = (q.body.first(), q.body.get(1)) else {
        return Vec::new();
    };
    let (Some(Term::Str(tool)), Some(Term::Str(key))) =
        (tool_pred.terms.first(), arg_pred.terms.first())
    else {
        return Vec::new();
    };
    let consts = constants(q);
    let strs: Vec<&String> = consts
        .iter()
        .filter_map(|t| match t {
            Term::Str(s) => Some(s),
            _ => None,
        })
        .collect();
    let ints: Vec<i64> = consts
        .iter()
        .filter_map(|t| match t {
            Term::Integer(i) => Some(*i),
            _ => None,
        })
        .collect();
    let sets: Vec<Vec<Scalar>> = consts
        .iter()
        .filter_map(|t| match t {
            Term::Set(set) => set.iter().map(term_scalar).collect(),
            _ => None,
        })
        .collect();
    let first_str = strs.first().map(|s| s.to_string());
    let first_int = ints.first().copied();
    let mut rules: Vec<(bool, ArgRule)> = Vec::new();
    let mut plain = |r: ArgRule| rules.push((false, r));
    match arg_pred.name.as_str() {
        "request_arg_int" | "request_arg_str" | "request_arg_bool" => {
            if let Some(v) = arg_pred.terms.get(1).and_then(term_scalar) {
                plain(ArgRule::Eq(v));
            }
            if let Some(i) = first_int {
                plain(ArgRule::Max(Bound::Int(i)));
                plain(ArgRule::Min(Bound::Int(i)));
            }
            if let Some(s) = &first_str {
                plain(ArgRule::Prefix(s.clone()));
                if let Some(g) = args::regex_glob(s) {
                    plain(ArgRule::Glob(g));
                }
                plain(ArgRule::Matches(s.clone()));
            }
            for set in &sets {
                plain(ArgRule::OneOf(set.clone()));
            }
        }
        "request_arg_num" => {
            if let Some(k) = first_int {
                let f = Float(args::key_f64(k));
                plain(ArgRule::Max(Bound::Float(f)));
                plain(ArgRule::Min(Bound::Float(f)));
            }
        }
        "request_arg_path" => {
            if let Some(s) = &first_str {
                plain(ArgRule::Under(s.clone()));
            }
        }
        "request_arg_ip" => {
            if let Some(net) = first_str.as_deref().and_then(args::cidr_text) {
                plain(ArgRule::Cidr(net));
            }
        }
        "request_arg_url" => {
            // scheme and port in the fact, then the host and the path
            if let (Some(Term::Str(scheme)), Some(Term::Integer(port)), Some(host)) =
                (arg_pred.terms.get(1), arg_pred.terms.get(3), strs.get(1))
            {
                let path = strs.get(2).map(|p| p.as_str()).unwrap_or("");
                for star in ["", "*"] {
                    let text = format!("{scheme}://{star}{host}:{port}{path}");
                    if let Ok(p) = UrlPattern::parse(&text) {
                        plain(ArgRule::Url(p.text()));
                    }
                }
            }
        }
        "request_arg_array" => {
            if let Some(i) = first_int {
                plain(ArgRule::MaxItems(u32::try_from(i).unwrap_or(u32::MAX)));
                plain(ArgRule::MinItems(u32::try_from(i).unwrap_or(u32::MAX)));
            }
            let mut each = |r: ArgRule| rules.push((true, r));
            for t in &consts {
                if let Some(v) = term_scalar(t) {
                    each(ArgRule::Eq(v));
                }
            }
            if let Some(i) = first_int {
                each(ArgRule::Max(Bound::Int(i)));
                each(ArgRule::Min(Bound::Int(i)));
            }
            // the first string is the type name
            if let Some(s) = strs.get(1) {
                each(ArgRule::Prefix(s.to_string()));
                if let Some(g) = args::regex_glob(s) {
                    each(ArgRule::Glob(g));
                }
                each(ArgRule::Matches(s.to_string()));
            }
            for set in &sets {
                each(ArgRule::OneOf(set.clone()));
            }
        }
        _ => {}
    }
    rules
        .into_iter()
        .map(|(each, rule)| ArgLimit {
            tool: tool.clone(),
            arg: ArgPath::of_key(key, each).text(),
            rule,
        })
        .collect()
}

/// The limit a check is exactly the canonical form of. Every candidate is
/// validated as if minted first, so what is recognised is what mcpvault
/// itself would write (a `matches` pattern over the size limit, say, stays
/// an unrecognised check and runs only in the Datalog engine).
fn recognize_arg(check: &Check) -> Option<ArgLimit> {
    arg_candidates(check).into_iter().find(|limit| {
        crate::model::check_arg_limits(std::slice::from_ref(limit))
            .is_ok_and(|canon| canon.first() == Some(limit))
            && same(arg_check(limit), check)
    })
}

fn predicates_of(check: &Check) -> BTreeSet<String> {
    check
        .queries
        .iter()
        .flat_map(|q| q.body.iter().map(|p| p.name.clone()))
        .collect()
}

/// Recognises one check. Exact: only a check that prints identically to the
/// canonical check built from its own parameters is recognised.
pub fn recognize_check(check: &Check) -> Statement {
    let original = check;
    // Every canonical check's first query starts with a fixed predicate: a candidate whose first predicate differs
    // cannot be the same check, so it is not built (only a shortcut: `same` decides).
    let first = check
        .queries
        .first()
        .and_then(|q| q.body.first())
        .map(|p| p.name.as_str());
    if check.kind == CheckKind::One {
        if first == Some("time") {
            if let Some(Term::Date(d)) = first_term(check, |t| matches!(t, Term::Date(_))) {
                if same(expiry_check(*d), original) {
                    return Statement::Expiry(*d);
                }
            }
        }
        if first == Some("verifier_audience") {
            if let Some(Term::Str(a)) = first_term(check, |t| matches!(t, Term::Str(_))) {
                if same(audience_check(a), original) {
                    return Statement::Audience(a.clone());
                }
            }
        }
        if first == Some("depth") {
            if let Some(Term::Integer(n)) = first_term(check, |t| matches!(t, Term::Integer(_))) {
                if let Ok(n) = u64::try_from(*n) {
                    if same(depth_check(n), original) {
                        return Statement::MaxDepth(n);
                    }
                }
            }
        }
        let sets = || -> Vec<BTreeSet<String>> {
            check
                .queries
                .iter()
                .flat_map(|q| &q.expressions)
                .flat_map(|e| &e.ops)
                .filter_map(|op| match op {
                    Op::Value(Term::Set(set)) => set
                        .iter()
                        .map(|t| match t {
                            Term::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                })
                .take(2)
                .collect()
        };
        match first {
            Some("request_tool") | Some("request_scope") => {
                let sets = sets();
                let empty = BTreeSet::new();
                let candidates = match sets.as_slice() {
                    [one] => vec![(one, &empty), (&empty, one)],
                    [a, b] => vec![(a, b)],
                    _ => Vec::new(),
                };
                for (tools, scopes) in candidates {
                    if same(access_check(tools, scopes), original) {
                        return Statement::Tools {
                            tools: tools.clone(),
                            scopes: scopes.clone(),
                        };
                    }
                }
            }
            Some("request_prompt") => {
                if let [one] = sets().as_slice() {
                    if same(prompts_check(one), original) {
                        return Statement::Prompts(one.clone());
                    }
                }
            }
            Some("request_resource") => {
                if let [one] = sets().as_slice() {
                    let globs: Option<BTreeSet<String>> =
                        one.iter().map(|re| args::regex_glob(re)).collect();
                    if let Some(globs) = globs {
                        if same(resources_check(&globs), original) {
                            return Statement::Resources(globs);
                        }
                    }
                }
            }
            _ => {}
        }
        if first == Some("request_tool") {
            if let Some(limit) = recognize_arg(original) {
                return Statement::Arg(limit);
            }
        }
    }
    let predicates = predicates_of(check);
    Statement::Unrecognized {
        reads_request: predicates
            .iter()
            .any(|p| REQUEST_PREDICATES.contains(&p.as_str())),
        predicates,
    }
}

/// The facts of an authority block mcpvault understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthorityFacts {
    pub version: Vec<i64>,
    pub issuer: Vec<String>,
    pub subject: Vec<String>,
    /// `nonce` facts: read from every block, not only the authority.
    pub nonce: Vec<String>,
    /// `holder` facts (every block).
    pub holder: Vec<String>,
    /// `rate` facts (every block).
    pub rates: Vec<crate::quota::Rate>,
    /// `budget` facts (every block).
    pub budgets: Vec<crate::quota::Budget>,
    /// A `rate` or `budget` fact of the wrong shape.
    pub bad_quota: Option<crate::error::Error>,
    /// `pin` facts (every block): tool and hash.
    pub pins: Vec<(String, String)>,
    /// `approval` facts (every block).
    pub approvals: Vec<crate::approval::Requirement>,
    /// A `pin` or `approval` fact of the wrong shape.
    pub bad_fact: Option<String>,
}

pub(crate) fn authority_facts(facts: &[Fact]) -> AuthorityFacts {
    let mut out = AuthorityFacts::default();
    for f in facts {
        let p = &f.predicate;
        match (p.name.as_str(), p.terms.as_slice()) {
            ("mcpvault", [Term::Integer(v)]) => out.version.push(*v),
            ("issuer", [Term::Str(s)]) => out.issuer.push(s.clone()),
            ("subject", [Term::Str(s)]) => out.subject.push(s.clone()),
            ("nonce", [Term::Str(s)]) => out.nonce.push(s.clone()),
            ("holder", [Term::Str(s)]) => out.holder.push(s.clone()),
            ("pin", [Term::Str(t), Term::Str(h)]) if crate::pin::is_hash(h) => {
                out.pins.push((t.clone(), h.clone()))
            }
            ("pin", _) => out.bad_fact = Some("a pin is pin(\"tool\", \"sha256 hex\")".into()),
            ("approval", [Term::Str(t), Term::Integer(n), Term::Set(keys)]) => {
                let r = crate::approval::Requirement {
                    tool: Some(t.clone()),
                    approvers: keys
                        .iter()
                        .map(|k| match k {
                            Term::Str(s) => s.clone(),
                            _ => String::new(),
                        })
                        .collect(),
                    needed: u32::try_from(*n).unwrap_or(0),
                };
                match crate::approval::check_requirement(&r) {
                    Ok(r) => out.approvals.push(r),
                    _ => {
                        out.bad_fact = Some(
                            "an approval is approval(\"tool\", needed, [approver keys]) with 1 <= needed <= keys".into(),
                        )
                    }
                }
            }
            ("approval", _) => {
                out.bad_fact = Some(
                    "an approval is approval(\"tool\", needed, [approver keys]) with 1 <= needed <= keys".into(),
                )
            }
            (name, terms) => match crate::quota::quota_of_fact(name, terms) {
                Some(Ok((r, b))) => {
                    out.rates.extend(r);
                    out.budgets.extend(b);
                }
                Some(Err(e)) => out.bad_quota = Some(e),
                None => {}
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use biscuit_auth::macros::{check, fact};

    fn roundtrip(c: Check) -> Statement {
        let src = format!("{c};");
        let parsed = BlockBuilder::new().code(&src).unwrap();
        recognize_check(&parsed.checks[0])
    }

    #[test]
    fn every_canonical_check_is_recognised_after_printing_and_parsing() {
        assert_eq!(
            roundtrip(expiry_check(1_800_000_000)),
            Statement::Expiry(1_800_000_000)
        );
        let tools: BTreeSet<String> = ["a".to_string(), "b.c".to_string()].into();
        assert_eq!(
            roundtrip(tools_check(&tools)),
            Statement::Tools {
                tools: tools.clone(),
                scopes: BTreeSet::new()
            }
        );
        let globs: BTreeSet<String> =
            ["file:///docs/*".to_string(), "db://*/public".to_string()].into();
        assert_eq!(
            roundtrip(resources_check(&globs)),
            Statement::Resources(globs)
        );
        assert_eq!(
            roundtrip(resources_check(&BTreeSet::new())),
            Statement::Resources(BTreeSet::new())
        );
        let names: BTreeSet<String> = ["summarize".to_string()].into();
        assert_eq!(roundtrip(prompts_check(&names)), Statement::Prompts(names));
        let scopes: BTreeSet<String> = ["fs:files:read".to_string()].into();
        assert_eq!(
            roundtrip(access_check(&tools, &scopes)),
            Statement::Tools {
                tools: tools.clone(),
                scopes: scopes.clone()
            }
        );
        assert_eq!(
            roundtrip(access_check(&BTreeSet::new(), &scopes)),
            Statement::Tools {
                tools: BTreeSet::new(),
                scopes
            }
        );
        assert_eq!(
            roundtrip(audience_check("srv x")),
            Statement::Audience("srv x".into())
        );
        assert_eq!(roundtrip(depth_check(3)), Statement::MaxDepth(3));
        let rules = [
            ("x", ArgRule::Max(Bound::Int(-5))),
            ("x", ArgRule::Min(Bound::Int(7))),
            ("x", ArgRule::Max(Bound::Float(Float(99.5)))),
            ("x", ArgRule::Min(Bound::Float(Float(-0.25)))),
            ("x", ArgRule::Prefix("/srv/".into())),
            ("x", ArgRule::Eq(Scalar::Str("users".into()))),
            ("x", ArgRule::Eq(Scalar::Int(42))),
            ("x", ArgRule::Eq(Scalar::Bool(false))),
            (
                "x",
                ArgRule::OneOf(vec![Scalar::Str("a".into()), Scalar::Str("b".into())]),
            ),
            ("x", ArgRule::OneOf(vec![Scalar::Int(1), Scalar::Int(2)])),
            ("x", ArgRule::Under("/srv/public".into())),
            ("x", ArgRule::Under("/".into())),
            ("x", ArgRule::Url("https://*.example.com".into())),
            ("x", ArgRule::Url("https://api.example.com".into())),
            ("x", ArgRule::Url("https://api.example.com:8443/v1".into())),
            ("x", ArgRule::Url("http://*.example.com/a/b".into())),
            ("x", ArgRule::Url("https://[::1]:8443".into())),
            ("x", ArgRule::Cidr("10.0.0.0/8".into())),
            ("x", ArgRule::Cidr("2001:db8::/32".into())),
            ("x", ArgRule::Cidr("0.0.0.0/0".into())),
            ("x", ArgRule::Glob("staging-*".into())),
            ("x", ArgRule::Matches("^[a-z]+$".into())),
            ("config.mode", ArgRule::Eq(Scalar::Str("ro".into()))),
            ("a.0.b", ArgRule::Max(Bound::Int(3))),
            ("/a.b", ArgRule::Prefix("p".into())),
            ("items", ArgRule::MaxItems(10)),
            ("items", ArgRule::MinItems(1)),
            (
                "items[*]",
                ArgRule::OneOf(vec![Scalar::Str("a".into()), Scalar::Str("b".into())]),
            ),
            ("items[*]", ArgRule::OneOf(vec![Scalar::Int(1)])),
            ("items[*]", ArgRule::Eq(Scalar::Str("a".into()))),
            ("items[*]", ArgRule::Eq(Scalar::Int(5))),
            ("items[*]", ArgRule::Prefix("p".into())),
            ("items[*]", ArgRule::Glob("a*".into())),
            ("items[*]", ArgRule::Matches("^b".into())),
            ("items[*]", ArgRule::Max(Bound::Int(9))),
            ("cfg.items[*]", ArgRule::Min(Bound::Int(-9))),
        ];
        for (arg, rule) in rules {
            let limit = ArgLimit {
                tool: "db_query".into(),
                arg: arg.into(),
                rule,
            };
            let canon = crate::model::check_arg_limits(std::slice::from_ref(&limit)).unwrap();
            assert_eq!(canon, vec![limit.clone()], "canonical already");
            assert_eq!(roundtrip(arg_check(&limit)), Statement::Arg(limit));
        }
    }

    #[test]
    fn near_misses_are_not_recognised() {
        let srcs = [
            "check if time($time), $time <= 2030-01-01T00:00:00Z;",
            r#"check if request_tool($tool), {"a"}.contains($tool);"#,
            r#"check if verifier_audience("a"), request_tool("x");"#,
            "check if depth($depth), $depth < 3;",
            r#"check all request_tool($tool), {"a"}.contains($tool) or request_method($method), $method !== "tools/call";"#,
            r#"check if request_tool("t"), request_arg_int("x", $value), $value <= 5 or request_tool($tool), $tool !== "u" or request_method($method), $method !== "tools/call";"#,
        ];
        for src in srcs {
            let parsed = BlockBuilder::new().code(src).unwrap();
            assert!(
                matches!(
                    recognize_check(&parsed.checks[0]),
                    Statement::Unrecognized { .. }
                ),
                "{src}"
            );
        }
    }
}

/// The statements as `fact!` and `check!` write them, before they were built term by term: the tests compare both.
#[cfg(test)]
#[allow(dead_code)]
mod macro_forms {
    use super::*;
    use biscuit_auth::macros::{check, fact};

    pub(crate) fn version_fact() -> Fact {
        fact!("mcpvault({v})", v = SCHEMA_VERSION)
    }

    pub(crate) fn issuer_fact(issuer: &str) -> Fact {
        fact!("issuer({i})", i = issuer)
    }

    pub(crate) fn subject_fact(subject: &str) -> Fact {
        fact!("subject({s})", s = subject)
    }

    /// `nonce("hex")`: marks a block single-use.
    pub(crate) fn nonce_fact(nonce: &str) -> Fact {
        fact!("nonce({n})", n = nonce)
    }

    /// `holder("hex")`: the token (and every token derived from it) is accepted
    /// only with a proof signed by this Ed25519 key (SCHEMA.md, "Holder-bound tokens").
    pub(crate) fn holder_fact(public_key_hex: &str) -> Fact {
        fact!("holder({h})", h = public_key_hex)
    }

    /// `pin("tool", "sha256hex")`: calls of the tool need its current definition
    /// to hash to this (SCHEMA.md, "Pinned tool definitions").
    pub(crate) fn pin_fact(tool: &str, hash: &str) -> Fact {
        fact!("pin({t}, {h})", t = tool, h = hash)
    }

    /// `approval("tool", needed, ["hex", …])`: calls of the tool need `needed`
    /// signed approvals of the listed keys (SCHEMA.md, "Signed approvals").
    pub(crate) fn approval_fact(r: &crate::approval::Requirement) -> Fact {
        let keys: std::collections::BTreeSet<Term> =
            r.approvers.iter().map(|k| Term::Str(k.clone())).collect();
        fact!(
            "approval({t}, {n}, {k})",
            t = r.tool.clone().unwrap_or_default(),
            n = i64::from(r.needed),
            k = Term::Set(keys)
        )
    }

    /// `rate(max, period)` or `rate("tool", max, period)`: a quota (SCHEMA.md, "Quotas").
    pub(crate) fn rate_fact(r: &crate::quota::Rate) -> Fact {
        let (max, period) = (r.max as i64, r.period as i64);
        match &r.tool {
            None => fact!("rate({max}, {period})", max = max, period = period),
            Some(t) => fact!(
                "rate({t}, {max}, {period})",
                t = t.as_str(),
                max = max,
                period = period
            ),
        }
    }

    /// `budget("tool", "arg", max, period)`: a cap on an argument's sum.
    pub(crate) fn budget_fact(b: &crate::quota::Budget) -> Fact {
        fact!(
            "budget({t}, {a}, {max}, {period})",
            t = b.tool.as_str(),
            a = b.arg.as_str(),
            max = b.max as i64,
            period = b.period as i64
        )
    }

    /// `check if time($time), $time < EXPIRY` — valid while now < EXPIRY.
    pub(crate) fn expiry_check(expires_at: u64) -> Check {
        check!(
            "check if time($time), $time < {exp}",
            exp = Term::Date(expires_at)
        )
    }

    /// One check for the whole set of tools, passing for non-tool MCP methods.
    #[cfg(test)]
    pub(crate) fn tools_check(tools: &BTreeSet<String>) -> Check {
        access_check(tools, &BTreeSet::new())
    }

    fn str_set(items: &BTreeSet<String>) -> Term {
        Term::Set(items.iter().map(|t| Term::Str(t.clone())).collect())
    }

    /// The grant check of a block: the tool is one it names, or (with scopes)
    /// the scope the server maps the call to is one it names.
    pub(crate) fn access_check(tools: &BTreeSet<String>, scopes: &BTreeSet<String>) -> Check {
        match (tools.is_empty(), scopes.is_empty()) {
            (_, true) => check!(
                r#"check if request_tool($tool), {tools}.contains($tool) or request_method($method), $method !== "tools/call""#,
                tools = str_set(tools)
            ),
            (false, false) => check!(
                r#"check if request_tool($tool), {tools}.contains($tool) or request_scope($scope), {scopes}.contains($scope) or request_method($method), $method !== "tools/call""#,
                tools = str_set(tools),
                scopes = str_set(scopes)
            ),
            (true, false) => check!(
                r#"check if request_scope($scope), {scopes}.contains($scope) or request_method($method), $method !== "tools/call""#,
                scopes = str_set(scopes)
            ),
        }
    }

    /// Resources a block grants: the URI matches one of its patterns (globs,
    /// written as regular expressions), for `resources/read` and
    /// `resources/subscribe`; other methods pass.
    pub(crate) fn resources_check(globs: &BTreeSet<String>) -> Check {
        let set = Term::Set(
            globs
                .iter()
                .map(|g| Term::Str(args::glob_regex(g).unwrap_or_else(|_| "$^".into())))
                .collect(),
        );
        check!(
            r#"check if request_resource($uri), {set}.any($re -> $uri.matches($re)) or request_method($method), $method !== "resources/read", $method !== "resources/subscribe""#,
            set = set
        )
    }

    /// Prompts a block grants, for `prompts/get`; other methods pass.
    pub(crate) fn prompts_check(names: &BTreeSet<String>) -> Check {
        check!(
            r#"check if request_prompt($name), {names}.contains($name) or request_method($method), $method !== "prompts/get""#,
            names = str_set(names)
        )
    }

    pub(crate) fn audience_check(audience: &str) -> Check {
        check!("check if verifier_audience({aud})", aud = audience)
    }

    pub(crate) fn depth_check(max_depth: u64) -> Check {
        let max = i64::try_from(max_depth).unwrap_or(i64::MAX);
        check!("check if depth($depth), $depth <= {max}", max = max)
    }

    /// A limit on one argument of one tool. The two escapes let calls of other
    /// tools, and non-tool MCP methods, through; a call of the tool itself must
    /// carry the argument with the right type and value. `SCHEMA.md`, "Argument
    /// limits", lists every form.
    pub(crate) fn arg_check(limit: &ArgLimit) -> Check {
        let t = limit.tool.as_str();
        let path =
            ArgPath::parse(&limit.arg).unwrap_or_else(|_| ArgPath::of_key(&limit.arg, false));
        let key = path.key();
        let a = key.as_str();
        if path.each {
            return each_check(t, a, &limit.rule);
        }
        match &limit.rule {
            ArgRule::Max(Bound::Int(m)) => check!(
                r#"check if request_tool({t}), request_arg_int({a}, $value), $value <= {m} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                m = *m
            ),
            ArgRule::Min(Bound::Int(m)) => check!(
                r#"check if request_tool({t}), request_arg_int({a}, $value), $value >= {m} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                m = *m
            ),
            ArgRule::Max(Bound::Float(f)) => check!(
                r#"check if request_tool({t}), request_arg_num({a}, $value), $value <= {k} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                k = args::f64_key(f.0)
            ),
            ArgRule::Min(Bound::Float(f)) => check!(
                r#"check if request_tool({t}), request_arg_num({a}, $value), $value >= {k} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                k = args::f64_key(f.0)
            ),
            ArgRule::Prefix(p) => check!(
                r#"check if request_tool({t}), request_arg_str({a}, $value), $value.starts_with({p}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                p = p.as_str()
            ),
            ArgRule::Eq(Scalar::Str(v)) => check!(
                r#"check if request_tool({t}), request_arg_str({a}, {v}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                v = v.as_str()
            ),
            ArgRule::Eq(Scalar::Int(v)) => check!(
                r#"check if request_tool({t}), request_arg_int({a}, {v}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                v = *v
            ),
            ArgRule::Eq(Scalar::Bool(v)) => check!(
                r#"check if request_tool({t}), request_arg_bool({a}, {v}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                v = *v
            ),
            ArgRule::OneOf(values) => {
                let set: BTreeSet<Term> = values.iter().map(scalar_term).collect();
                if values.iter().all(|v| matches!(v, Scalar::Int(_))) {
                    check!(
                        r#"check if request_tool({t}), request_arg_int({a}, $value), {set}.contains($value) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                        t = t,
                        a = a,
                        set = Term::Set(set)
                    )
                } else {
                    check!(
                        r#"check if request_tool({t}), request_arg_str({a}, $value), {set}.contains($value) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                        t = t,
                        a = a,
                        set = Term::Set(set)
                    )
                }
            }
            ArgRule::Glob(_) | ArgRule::Matches(_) => check!(
                r#"check if request_tool({t}), request_arg_str({a}, $value), $value.matches({re}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                re = args::pattern_of(&limit.rule)
            ),
            ArgRule::Under(base) => check!(
                r#"check if request_tool({t}), request_arg_path({a}, $value), $value == {b} || $value.starts_with({bs}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                b = base.as_str(),
                bs = args::under_prefix(base)
            ),
            ArgRule::Url(pattern) => url_check(t, a, pattern),
            ArgRule::Cidr(net) => check!(
                r#"check if request_tool({t}), request_arg_ip({a}, $value), $value.starts_with({bits}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                bits = args::cidr_bits(net).unwrap_or_else(|_| "x".into())
            ),
            ArgRule::MaxItems(n) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.length() <= {n} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                n = i64::from(*n)
            ),
            ArgRule::MinItems(n) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.length() >= {n} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                n = i64::from(*n)
            ),
        }
    }

    /// A `url` limit: the scheme and port are in the fact's pattern, the host
    /// (exact, or a suffix for `*.`) and the optional path in expressions.
    fn url_check(t: &str, a: &str, pattern: &str) -> Check {
        let Ok(p) = UrlPattern::parse(pattern) else {
            // never minted (validation parses every pattern); fails closed
            return check!("check if false");
        };
        let (scheme, port, host) = (p.scheme.as_str(), p.port, p.host.as_str());
        match (p.wildcard, &p.path) {
            (false, None) => check!(
                r#"check if request_tool({t}), request_arg_url({a}, {scheme}, $host, {port}, $path), $host == {host} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                scheme = scheme,
                port = port,
                host = host
            ),
            (true, None) => check!(
                r#"check if request_tool({t}), request_arg_url({a}, {scheme}, $host, {port}, $path), $host.ends_with({host}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                scheme = scheme,
                port = port,
                host = host
            ),
            (false, Some(path)) => check!(
                r#"check if request_tool({t}), request_arg_url({a}, {scheme}, $host, {port}, $path), $host == {host}, $path == {p} || $path.starts_with({ps}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                scheme = scheme,
                port = port,
                host = host,
                p = path.as_str(),
                ps = UrlPattern::path_prefix(path)
            ),
            (true, Some(path)) => check!(
                r#"check if request_tool({t}), request_arg_url({a}, {scheme}, $host, {port}, $path), $host.ends_with({host}), $path == {p} || $path.starts_with({ps}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                scheme = scheme,
                port = port,
                host = host,
                p = path.as_str(),
                ps = UrlPattern::path_prefix(path)
            ),
        }
    }

    /// A limit on every element of an array (`items[*]`): the verifier supplies
    /// the array, and `.all()` tests each element, its type first.
    fn each_check(t: &str, a: &str, rule: &ArgRule) -> Check {
        match rule {
            // biscuit-auth 6 errs on `null === "a"`: the type is tested first
            ArgRule::Eq(v) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == {ty} && $x == {v}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                ty = match v {
                    Scalar::Str(_) => "string",
                    Scalar::Int(_) => "integer",
                    Scalar::Bool(_) => "bool",
                },
                v = scalar_term(v)
            ),
            ArgRule::OneOf(values) => {
                let set: BTreeSet<Term> = values.iter().map(scalar_term).collect();
                let ty = if values.iter().all(|v| matches!(v, Scalar::Int(_))) {
                    "integer"
                } else {
                    "string"
                };
                check!(
                    r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == {ty} && {set}.contains($x)) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                    t = t,
                    a = a,
                    ty = ty,
                    set = Term::Set(set)
                )
            }
            ArgRule::Prefix(p) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == "string" && $x.starts_with({p})) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                p = p.as_str()
            ),
            ArgRule::Glob(_) | ArgRule::Matches(_) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == "string" && $x.matches({re})) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                re = args::pattern_of(rule)
            ),
            ArgRule::Max(Bound::Int(m)) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == "integer" && $x <= {m}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                m = *m
            ),
            ArgRule::Min(Bound::Int(m)) => check!(
                r#"check if request_tool({t}), request_arg_array({a}, $value), $value.all($x -> $x.type() == "integer" && $x >= {m}) or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
                t = t,
                a = a,
                m = *m
            ),
            // never minted (validation refuses [*] with other rules): fails closed
            _ => check!("check if false"),
        }
    }

    /// A fact with its parameters put in place.
    fn fact_resolved(f: Fact) -> Predicate {
        let mut p = f.predicate;
        if let Some(params) = f.parameters {
            for t in &mut p.terms {
                if let Term::Parameter(name) = t {
                    if let Some(Some(v)) = params.get(name.as_str()) {
                        *t = v.clone();
                    }
                }
            }
        }
        p
    }

    #[test]
    fn every_statement_is_the_one_its_macro_builds() {
        let same_check = |new: Check, old: Check| {
            let (new, old) = (super::resolved(new), super::resolved(old));
            assert_eq!(new, old, "{old}");
            assert_eq!(new.to_string(), old.to_string());
        };
        let same_fact = |new: Fact, old: Fact| {
            assert_eq!(new.to_string(), old.to_string());
            assert_eq!(fact_resolved(new), fact_resolved(old));
        };
        same_fact(super::version_fact(), version_fact());
        same_fact(super::issuer_fact("iss \"q\""), issuer_fact("iss \"q\""));
        same_fact(super::subject_fact("sub"), subject_fact("sub"));
        same_fact(super::nonce_fact("00ff"), nonce_fact("00ff"));
        same_fact(super::holder_fact("ab12"), holder_fact("ab12"));
        same_fact(super::pin_fact("t", "h"), pin_fact("t", "h"));
        for tool in [None, Some("pay".to_string())] {
            let r = crate::approval::Requirement {
                tool: tool.clone(),
                approvers: vec!["bb".into(), "aa".into()],
                needed: 2,
            };
            same_fact(super::approval_fact(&r), approval_fact(&r));
            let r = crate::quota::Rate {
                tool,
                max: 7,
                period: 3600,
            };
            same_fact(super::rate_fact(&r), rate_fact(&r));
        }
        let b = crate::quota::Budget {
            tool: "pay".into(),
            arg: "a.b".into(),
            max: 100,
            period: 60,
        };
        same_fact(super::budget_fact(&b), budget_fact(&b));

        same_check(
            super::expiry_check(1_800_000_000),
            expiry_check(1_800_000_000),
        );
        same_check(super::audience_check("aud"), audience_check("aud"));
        for d in [0, 3, u64::MAX] {
            same_check(super::depth_check(d), depth_check(d));
        }
        let set = |items: &[&str]| {
            items
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<String>>()
        };
        for (tools, scopes) in [
            (set(&["a", "b"]), set(&[])),
            (set(&[]), set(&[])),
            (set(&["a"]), set(&["s1", "s2"])),
            (set(&[]), set(&["s1"])),
        ] {
            same_check(
                super::access_check(&tools, &scopes),
                access_check(&tools, &scopes),
            );
        }
        for globs in [set(&["file:///a/*", "x?y"]), set(&[])] {
            same_check(super::resources_check(&globs), resources_check(&globs));
        }
        same_check(
            super::prompts_check(&set(&["p", "q"])),
            prompts_check(&set(&["p", "q"])),
        );

        let s = |v: &str| Scalar::Str(v.into());
        let rules = vec![
            ArgRule::Prefix("/tmp/".into()),
            ArgRule::Eq(s("x")),
            ArgRule::Eq(Scalar::Int(-3)),
            ArgRule::Eq(Scalar::Bool(true)),
            ArgRule::OneOf(vec![s("a"), s("b")]),
            ArgRule::OneOf(vec![Scalar::Int(1), Scalar::Int(2)]),
            ArgRule::OneOf(vec![Scalar::Int(1), s("b")]),
            ArgRule::Max(Bound::Int(10)),
            ArgRule::Min(Bound::Int(-10)),
            ArgRule::Max(Bound::Float(Float(2.5))),
            ArgRule::Min(Bound::Float(Float(-0.0))),
            ArgRule::Under("/srv/data".into()),
            ArgRule::Url("https://example.com".into()),
            ArgRule::Url("https://*.example.com".into()),
            ArgRule::Url("http://example.com:8080/api".into()),
            ArgRule::Url("https://*.example.com/api/v1".into()),
            ArgRule::Url("not a url".into()),
            ArgRule::Cidr("10.0.0.0/8".into()),
            ArgRule::Cidr("fe80::/10".into()),
            ArgRule::Cidr("bad".into()),
            ArgRule::Glob("*.txt".into()),
            ArgRule::Matches("^a+$".into()),
            ArgRule::MaxItems(3),
            ArgRule::MinItems(1),
        ];
        for arg in ["path", "config.mode", "/a.b", "items[*]", "/list[*]"] {
            for rule in &rules {
                let limit = ArgLimit {
                    tool: "tool \"x\"".into(),
                    arg: arg.into(),
                    rule: rule.clone(),
                };
                same_check(super::arg_check(&limit), arg_check(&limit));
            }
        }
    }
}
