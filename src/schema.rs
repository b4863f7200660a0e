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
    Binary, BlockBuilder, Check, CheckKind, Fact, Op, Predicate, Rule, Term,
};
use biscuit_auth::macros::{check, fact};

use crate::error::{Error, Result};
use crate::model::{ArgLimit, ArgRule, Scalar};

/// The schema version written in the authority block as `mcpvault(1)`.
pub const SCHEMA_VERSION: i64 = 1;

/// Predicates the verifier supplies (the request). Checks that mention them
/// depend on the request.
pub(crate) const REQUEST_PREDICATES: &[&str] = &[
    "request_method",
    "request_tool",
    "request_arg_str",
    "request_arg_int",
    "request_arg_bool",
];

fn builder_err(e: biscuit_auth::error::Token) -> Error {
    Error::Internal {
        detail: format!("building datalog: {e}"),
    }
}

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

/// `check if time($time), $time < EXPIRY` — valid while now < EXPIRY.
pub(crate) fn expiry_check(expires_at: u64) -> Check {
    check!(
        "check if time($time), $time < {exp}",
        exp = Term::Date(expires_at)
    )
}

/// One check for the whole set of tools, passing for non-tool MCP methods.
pub(crate) fn tools_check(tools: &BTreeSet<String>) -> Check {
    let set: BTreeSet<Term> = tools.iter().map(|t| Term::Str(t.clone())).collect();
    check!(
        r#"check if request_tool($tool), {tools}.contains($tool) or request_method($method), $method !== "tools/call""#,
        tools = Term::Set(set)
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
/// carry the argument with the right type and value.
pub(crate) fn arg_check(limit: &ArgLimit) -> Check {
    let t = limit.tool.as_str();
    let a = limit.arg.as_str();
    match &limit.rule {
        ArgRule::Max(m) => check!(
            r#"check if request_tool({t}), request_arg_int({a}, $value), $value <= {m} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
            t = t,
            a = a,
            m = *m
        ),
        ArgRule::Min(m) => check!(
            r#"check if request_tool({t}), request_arg_int({a}, $value), $value >= {m} or request_tool($tool), $tool !== {t} or request_method($method), $method !== "tools/call""#,
            t = t,
            a = a,
            m = *m
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
    }
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
    /// The tool-set check.
    Tools(BTreeSet<String>),
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
        for e in &mut rule.expressions {
            for op in &mut e.ops {
                if let Op::Value(t) = op {
                    fill(t);
                }
            }
        }
    }
    check
}

fn arg_candidate(check: &Check) -> Option<ArgLimit> {
    let q: &Rule = check.queries.first()?;
    let tool_pred: &Predicate = q.body.first()?;
    let arg_pred: &Predicate = q.body.get(1)?;
    let tool = match tool_pred.terms.first()? {
        Term::Str(s) => s.clone(),
        _ => return None,
    };
    let arg = match arg_pred.terms.first()? {
        Term::Str(s) => s.clone(),
        _ => return None,
    };
    let value = arg_pred.terms.get(1)?;
    let rule = match value {
        Term::Variable(_) => {
            let ops = &q.expressions.first()?.ops;
            match (ops.first()?, ops.get(1)?, ops.get(2)?) {
                (Op::Value(Term::Variable(_)), Op::Value(Term::Integer(m)), Op::Binary(b)) => {
                    match b {
                        Binary::LessOrEqual => ArgRule::Max(*m),
                        Binary::GreaterOrEqual => ArgRule::Min(*m),
                        _ => return None,
                    }
                }
                (Op::Value(Term::Variable(_)), Op::Value(Term::Str(p)), Op::Binary(_)) => {
                    ArgRule::Prefix(p.clone())
                }
                (Op::Value(Term::Set(set)), Op::Value(Term::Variable(_)), Op::Binary(_)) => {
                    ArgRule::OneOf(set.iter().map(term_scalar).collect::<Option<Vec<_>>>()?)
                }
                _ => return None,
            }
        }
        other => ArgRule::Eq(term_scalar(other)?),
    };
    Some(ArgLimit { tool, arg, rule })
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
        if first == Some("request_tool") {
            if let Some(Term::Set(set)) = first_term(check, |t| matches!(t, Term::Set(_))) {
                let tools: Option<BTreeSet<String>> = set
                    .iter()
                    .map(|t| match t {
                        Term::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(tools) = tools {
                    if same(tools_check(&tools), original) {
                        return Statement::Tools(tools);
                    }
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
        if first == Some("request_tool") {
            if let Some(limit) = arg_candidate(check) {
                if same(arg_check(&limit), original) {
                    return Statement::Arg(limit);
                }
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
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(roundtrip(tools_check(&tools)), Statement::Tools(tools));
        assert_eq!(
            roundtrip(audience_check("srv x")),
            Statement::Audience("srv x".into())
        );
        assert_eq!(roundtrip(depth_check(3)), Statement::MaxDepth(3));
        let rules = [
            ArgRule::Max(-5),
            ArgRule::Min(7),
            ArgRule::Prefix("/srv/".into()),
            ArgRule::Eq(Scalar::Str("users".into())),
            ArgRule::Eq(Scalar::Int(42)),
            ArgRule::Eq(Scalar::Bool(false)),
            ArgRule::OneOf(vec![Scalar::Str("a".into()), Scalar::Str("b".into())]),
            ArgRule::OneOf(vec![Scalar::Int(1), Scalar::Int(2)]),
        ];
        for rule in rules {
            let limit = ArgLimit {
                tool: "db_query".into(),
                arg: "x".into(),
                rule,
            };
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
