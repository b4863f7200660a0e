//! Policy written at the server (issue 15): which scope a tool call maps to,
//! and rules that refuse (hard) or flag (soft) calls. Part of the guard's
//! options, so every host decides alike; the formats follow @apoa/mcp
//! (`mappings`, `toolMappings`, `rules`, matchers `startsWith`, `equals`,
//! `in`, `lt`/`lte`/`gt`/`gte`, `glob`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::args::{self, ArgPath};
use crate::error::{Error, Result};

/// Conditions on one argument; every one given must hold, and a missing
/// argument matches none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Matcher {
    /// A string starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_with: Option<String>,
    /// Equal to this value (same JSON type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Equal to one of these values (`oneOf` in @apoa/mcp).
    #[serde(
        default,
        rename = "in",
        alias = "oneOf",
        skip_serializing_if = "Option::is_none"
    )]
    pub one_of: Option<Vec<Value>>,
    /// A string ending with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_with: Option<String>,
    /// A string containing this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// A string matching this regular expression (unanchored; the `regex`
    /// crate, linear time, at most 1,024 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// A number below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// A number at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// A number above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// A number at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// A string matching this shell-style wildcard (`*`, `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// A path this directory holds, read as the `under` argument limit reads it (its `.` segments and repeated
    /// slashes resolved); a path with a `..` segment (which the kernel resolves through symbolic links, not as text)
    /// or one that does not resolve (relative, with `%`, a backslash or a look-alike character) is of another type,
    /// so a hard rule refuses it and an approval rule asks. The string matchers compare the text as written:
    /// `startsWith: "/tmp/"` holds for `/tmp/../etc/passwd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under: Option<String>,
}

/// `{ "path": { "startsWith": "/tmp" }, "config.mode": { "equals": "ro" } }`:
/// argument paths (as in argument limits) to matchers, all of which must hold.
pub type When = BTreeMap<String, Matcher>;

/// A conditional mapping of a tool to a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolMapping {
    /// The tool.
    pub tool: String,
    /// The service, prefixed to the scope (`filesystem` + `files:write`
    /// is `filesystem:files:write`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The scope.
    pub scope: String,
    /// When it applies (always when absent).
    #[serde(default, skip_serializing_if = "When::is_empty")]
    pub when: When,
    /// Higher wins; then declaration order.
    #[serde(default)]
    pub priority: i64,
}

/// Hard rules refuse; soft rules allow and are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Refuse with `rule_violation`.
    Hard,
    /// Allow; the decision names the rule.
    Soft,
    /// Allow only with signed approvals of the call from the rule's
    /// `approvers` (`needed` of them): else `approval_required`.
    Approval,
}

/// A rule of the server's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its id, named in refusals and decisions.
    pub id: String,
    /// The tool it applies to (every tool when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// When it fires (always, for its tool, when absent).
    #[serde(default, skip_serializing_if = "When::is_empty")]
    pub when: When,
    /// Hard or soft.
    pub enforcement: Enforcement,
    /// What the caller is told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who may approve a call an `approval` rule fires on (Ed25519 public
    /// keys, hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How many of them must (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<u32>,
}

/// The server's policy, checked once when the guard is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    mappings: BTreeMap<String, String>,
    tool_mappings: Vec<(ToolMapping, Prepared)>,
    rules: Vec<(Rule, Prepared)>,
}

/// A `when` with its paths parsed, its glob and pattern compiled.
#[derive(Debug, Clone, Default)]
struct Prepared(Vec<(String, Matcher, Option<regex::Regex>, Option<regex::Regex>)>);

fn prepare(when: &When, what: &str) -> Result<Prepared> {
    let mut out = Vec::new();
    for (path, m) in when {
        let p = ArgPath::parse(path).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        if p.each {
            return Err(Error::invalid(format!("{what}: [*] is not a matcher path")));
        }
        if *m == Matcher::default() {
            return Err(Error::invalid(format!(
                "{what}: the matcher of {path:?} is empty"
            )));
        }
        for b in [m.lt, m.lte, m.gt, m.gte].into_iter().flatten() {
            if !b.is_finite() {
                return Err(Error::invalid(format!("{what}: bounds are finite numbers")));
            }
        }
        if let Some(base) = &m.under {
            if args::under_base(base).as_deref() != Ok(base.as_str()) {
                return Err(Error::invalid(format!(
                    "{what}: under needs an absolute path written as it resolves (no '.', '..', repeated or trailing \
                     '/', '%', '\\' or look-alike characters), not {base:?}"
                )));
            }
        }
        let re = match &m.glob {
            Some(g) => Some(
                regex::Regex::new(&args::glob_regex(g)?)
                    .map_err(|e| Error::invalid(format!("{what}: {e}")))?,
            ),
            None => None,
        };
        let pattern = match &m.matches {
            Some(p) => {
                args::check_pattern(p).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
                Some(regex::Regex::new(p).map_err(|e| Error::invalid(format!("{what}: {e}")))?)
            }
            None => None,
        };
        out.push((p.key(), m.clone(), re, pattern));
    }
    Ok(Prepared(out))
}

/// What a condition reads of the arguments.
enum Read<'a> {
    /// No value (absent, or `null`, which clients send for an optional argument they leave out).
    Missing,
    /// A value of a type the matcher does not compare (a string where a number is bounded, `[5000]`, `"42"` where
    /// `equals` names 42), or a path through a value that is not an object or a list (`{"cfg": "{\"mode\": …}"}`):
    /// a server may still coerce it and act on it.
    Mistyped,
    Value(&'a Value),
}

/// The JSON type of a value (numbers one type: compared by value).
fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Whether a path (`/a/b`) runs through a value that is neither an object nor a list.
fn blocked(arguments: &Map<String, Value>, key: &str) -> bool {
    let Some(pointer) = key.strip_prefix('/') else {
        return false;
    };
    // every proper prefix of the path: `/a`, `/a/b` of `/a/b/c`
    pointer
        .match_indices('/')
        .filter_map(|(at, _)| key.get(..=at))
        .any(|parent| {
            args::lookup(arguments, parent).is_some_and(|v| !v.is_object() && !v.is_array())
        })
}

fn read<'a>(arguments: &'a Map<String, Value>, key: &str, m: &Matcher) -> Read<'a> {
    let v = match args::lookup(arguments, key) {
        None if blocked(arguments, key) => return Read::Mistyped,
        None | Some(Value::Null) => return Read::Missing,
        Some(v) => v,
    };
    let numeric = [m.lt, m.lte, m.gt, m.gte].iter().any(Option::is_some);
    let textual = m.starts_with.is_some()
        || m.ends_with.is_some()
        || m.contains.is_some()
        || m.matches.is_some()
        || m.glob.is_some();
    let named: Vec<&Value> = m.equals.iter().chain(m.one_of.iter().flatten()).collect();
    // a `..` segment is resolved by the kernel through symbolic links (`/tmp/link/../x`, `/proc/1/cwd/../etc`), not
    // as text: a path holding one is not read as under anything
    let unresolved = m.under.is_some()
        && v.as_str().map_or(true, |s| {
            s.split('/').any(|seg| seg == "..") || args::normal_path(s).is_none()
        });
    if (numeric && args::number_key(v).is_none())
        || (textual && !v.is_string())
        || unresolved
        || (!named.is_empty() && !named.iter().any(|e| kind(e) == kind(v)))
    {
        return Read::Mistyped;
    }
    Read::Value(v)
}

/// Whether a value meets every condition of a matcher.
fn holds(
    m: &Matcher,
    re: Option<&regex::Regex>,
    pattern: Option<&regex::Regex>,
    v: &Value,
) -> bool {
    let s = v.as_str();
    let n = args::number_key(v);
    let cmp = |bound: Option<f64>, ok: fn(i64, i64) -> bool| {
        bound.map_or(true, |b| n.is_some_and(|k| ok(k, args::f64_key(b))))
    };
    m.starts_with
        .as_ref()
        .map_or(true, |p| s.is_some_and(|s| s.starts_with(p.as_str())))
        && m.equals.as_ref().map_or(true, |e| same_value(e, v))
        && m.one_of
            .as_ref()
            .map_or(true, |vs| vs.iter().any(|e| same_value(e, v)))
        && cmp(m.lt, |a, b| a < b)
        && cmp(m.lte, |a, b| a <= b)
        && cmp(m.gt, |a, b| a > b)
        && cmp(m.gte, |a, b| a >= b)
        && re.map_or(true, |re| s.is_some_and(|s| re.is_match(s)))
        && m.ends_with
            .as_ref()
            .map_or(true, |x| s.is_some_and(|s| s.ends_with(x.as_str())))
        && m.contains
            .as_ref()
            .map_or(true, |x| s.is_some_and(|s| s.contains(x.as_str())))
        && pattern.map_or(true, |re| s.is_some_and(|s| re.is_match(s)))
        && m.under.as_ref().map_or(true, |base| {
            s.and_then(args::normal_path)
                .is_some_and(|p| args::path_under(base, &p))
        })
}

impl Prepared {
    /// Whether some condition cannot be read from the arguments: its argument is missing, or mistyped.
    fn unreadable(&self, arguments: &Map<String, Value>) -> bool {
        self.0
            .iter()
            .any(|(key, m, _, _)| !matches!(read(arguments, key, m), Read::Value(_)))
    }

    /// Whether the `when` could hold: every condition holds or is mistyped, and one is mistyped (a server that
    /// coerces the value may act as if it held). A missing argument, or a readable one that fails, cannot.
    fn mistyped(&self, arguments: &Map<String, Value>) -> bool {
        let mut any = false;
        for (key, m, re, pattern) in &self.0 {
            match read(arguments, key, m) {
                Read::Missing => return false,
                Read::Mistyped => any = true,
                Read::Value(v) => {
                    if !holds(m, re.as_ref(), pattern.as_ref(), v) {
                        return false;
                    }
                }
            }
        }
        any
    }

    fn matches(&self, arguments: &Map<String, Value>) -> bool {
        self.0
            .iter()
            .all(|(key, m, re, pattern)| match read(arguments, key, m) {
                Read::Value(v) => holds(m, re.as_ref(), pattern.as_ref(), v),
                _ => false,
            })
    }
}

/// JSON equality, numbers by value (`1` equals `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            args::number_key(a).is_some() && args::number_key(a) == args::number_key(b)
        }
        _ => a == b,
    }
}

/// What the policy says about one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Verdict {
    /// The scope the call maps to.
    pub scope: String,
    /// The mapping that chose it: `tool_mappings[i]`, `mappings` or `auto`.
    pub mapping: String,
    /// The first hard rule that fired.
    pub hard: Option<(String, String)>,
    /// The soft rules that fired, in declaration order.
    pub soft: Vec<String>,
    /// The approvals the approval rules that fired require.
    pub approvals: Vec<crate::approval::Requirement>,
    /// A conditional mapping that could decide the scope but cannot read its argument's type: the call's scope is
    /// unknown, so a call the token allows only through a scope is refused (`(mapping, message)`).
    pub unknown_scope: Option<(String, String)>,
}

impl Policy {
    pub fn new(
        mappings: &BTreeMap<String, String>,
        tool_mappings: &[ToolMapping],
        rules: &[Rule],
    ) -> Result<Policy> {
        let scope_of = |s: String| -> Result<String> {
            crate::model::check_scopes(std::slice::from_ref(&s))?;
            Ok(s)
        };
        let mut mapped = BTreeMap::new();
        for (tool, scope) in mappings {
            crate::model::check_tool_name(tool)?;
            mapped.insert(tool.clone(), scope_of(scope.clone())?);
        }
        let mut tm = Vec::new();
        for (i, m) in tool_mappings.iter().enumerate() {
            crate::model::check_tool_name(&m.tool)?;
            let full = match &m.service {
                Some(s) => format!("{s}:{}", m.scope),
                None => m.scope.clone(),
            };
            let mut m = m.clone();
            m.scope = scope_of(full)?;
            m.service = None;
            let p = prepare(&m.when, &format!("tool_mappings[{i}]"))?;
            tm.push((m, p));
        }
        let mut rs: Vec<(Rule, Prepared)> = Vec::new();
        for r in rules {
            crate::model::check_name("rule id", &r.id)?;
            if rs.iter().any(|(x, _)| x.id == r.id) {
                return Err(Error::invalid(format!("two rules have the id {:?}", r.id)));
            }
            if let Some(t) = &r.tool {
                crate::model::check_tool_name(t)?;
            }
            let p = prepare(&r.when, &format!("rule {:?}", r.id))?;
            let mut r = r.clone();
            match r.enforcement {
                Enforcement::Approval => {
                    let req = crate::approval::check_requirement(&crate::approval::Requirement {
                        tool: None,
                        approvers: r.approvers.clone(),
                        needed: r.needed.unwrap_or(1),
                    })
                    .map_err(|e| Error::invalid(format!("rule {:?}: {}", r.id, e.detail())))?;
                    r.approvers = req.approvers;
                    r.needed = Some(req.needed);
                }
                _ if !r.approvers.is_empty() || r.needed.is_some() => {
                    return Err(Error::invalid(format!(
                        "rule {:?}: approvers and needed belong to an approval rule",
                        r.id
                    )))
                }
                _ => {}
            }
            rs.push((r, p));
        }
        Ok(Policy {
            mappings: mapped,
            tool_mappings: tm,
            rules: rs,
        })
    }

    /// Every scope a call of `tool` may map to, whatever its arguments: what
    /// a token must grant (besides the tool's name) for `tools/list` to show
    /// it. Conditional mappings are all included; the simple mapping or the
    /// automatic `TOOL:call` only when no unconditional tool mapping exists.
    pub fn reachable_scopes(&self, tool: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut always = false;
        for (m, p) in &self.tool_mappings {
            if m.tool == tool {
                out.push(m.scope.clone());
                always |= p.0.is_empty();
            }
        }
        if !always {
            out.push(
                self.mappings
                    .get(tool)
                    .cloned()
                    .unwrap_or_else(|| format!("{tool}:call")),
            );
        }
        out
    }

    /// The scope of a call, and the rules that fire on it.
    pub fn judge(&self, tool: &str, arguments: &Map<String, Value>) -> Verdict {
        // the highest priority that matches; the first declared among equals
        let mut best: Option<(usize, &ToolMapping)> = None;
        for (i, (m, p)) in self.tool_mappings.iter().enumerate() {
            if m.tool == tool
                && best.map_or(true, |(_, b)| m.priority > b.priority)
                && p.matches(arguments)
            {
                best = Some((i, m));
            }
        }
        // a conditional mapping that could have won but cannot read what its `when` names (a missing argument, a
        // string where a number is compared): the call's scope is unknown, so it is refused (fail closed, as rules)
        let unknown = self.tool_mappings.iter().enumerate().find(|(i, (m, p))| {
            m.tool == tool
                && best.map_or(true, |(b, bm)| {
                    m.priority > bm.priority || (m.priority == bm.priority && *i < b)
                })
                && p.mistyped(arguments)
        });
        let (scope, mapping) = match (best, self.mappings.get(tool)) {
            (Some((i, m)), _) => (m.scope.clone(), format!("tool_mappings[{i}]")),
            (None, Some(s)) => (s.clone(), "mappings".to_string()),
            (None, None) => (format!("{tool}:call"), "auto".to_string()),
        };
        let mut v = Verdict {
            scope,
            mapping,
            ..Verdict::default()
        };
        if let Some((i, _)) = unknown {
            v.unknown_scope = Some((
                format!("tool_mappings[{i}]"),
                format!(
                    "the call's scope cannot be decided: an argument tool_mappings[{i}] compares is of another type"
                ),
            ));
        }
        for (r, p) in &self.rules {
            // an approval rule fails closed: it also asks when it cannot read what its `when` names (missing, or of
            // another type); a hard rule refuses an argument of another type (a server may coerce "5000" or read
            // [5000]), a missing one matches nothing (a rule on every tool names arguments most calls lack)
            let fires = p.matches(arguments)
                || match r.enforcement {
                    Enforcement::Approval => p.unreadable(arguments),
                    Enforcement::Hard => p.mistyped(arguments),
                    Enforcement::Soft => false,
                };
            if r.tool.as_deref().is_some_and(|t| t != tool) || !fires {
                continue;
            }
            match r.enforcement {
                Enforcement::Hard if v.hard.is_none() => {
                    v.hard = Some((
                        r.id.clone(),
                        r.message.clone().unwrap_or_else(|| r.id.clone()),
                    ))
                }
                Enforcement::Hard => {}
                Enforcement::Soft => v.soft.push(r.id.clone()),
                Enforcement::Approval => v.approvals.push(crate::approval::Requirement {
                    tool: Some(tool.to_string()),
                    approvers: r.approvers.clone(),
                    needed: r.needed.unwrap_or(1),
                }),
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn under_resolves_the_path_and_fails_closed_on_one_that_does_not_resolve() {
        let m = |base: &str| Matcher {
            under: Some(base.into()),
            ..Matcher::default()
        };
        let when: When = [("path".to_string(), m("/tmp"))].into();
        let p = prepare(&when, "when").unwrap();
        let a = |path: Value| -> Map<String, Value> {
            [("path".to_string(), path)].into_iter().collect()
        };
        for ok in ["/tmp", "/tmp/a", "//tmp/./a"] {
            assert!(p.matches(&a(json!(ok))), "{ok}");
        }
        for no in ["/tmpx", "/etc", "/"] {
            assert!(
                !p.matches(&a(json!(no))) && !p.mistyped(&a(json!(no))),
                "{no}"
            );
        }
        // `..` is the kernel's to resolve (through symbolic links): of another type, as a path that does not resolve
        for odd in [
            json!("/tmp/a/../b"),
            json!("/tmp/../etc/passwd"),
            json!("tmp/a"),
            json!("/../tmp"),
            json!("/tmp/%2e%2e"),
            json!("/tmp\u{2215}a"),
            json!(5),
        ] {
            assert!(
                !p.matches(&a(odd.clone())) && p.mistyped(&a(odd.clone())),
                "{odd}"
            );
        }
        for bad in ["/tmp/", "tmp", "/tmp/../x", "//tmp"] {
            assert!(
                prepare(&[("path".to_string(), m(bad))].into(), "when").is_err(),
                "{bad}"
            );
        }
        assert!(prepare(&[("path".to_string(), m("/"))].into(), "when").is_ok());
    }
    use serde_json::json;

    fn policy(v: Value) -> Policy {
        let mappings: BTreeMap<String, String> =
            serde_json::from_value(v["mappings"].clone()).unwrap_or_default();
        let tm: Vec<ToolMapping> =
            serde_json::from_value(v["tool_mappings"].clone()).unwrap_or_default();
        let rules: Vec<Rule> = serde_json::from_value(v["rules"].clone()).unwrap_or_default();
        Policy::new(&mappings, &tm, &rules).unwrap()
    }

    #[test]
    fn mappings_by_priority_then_order_then_simple_then_auto() {
        let p = policy(json!({
            "mappings": { "read_file": "filesystem:files:read", "write_file": "fs:w" },
            "tool_mappings": [
                { "tool": "write_file", "service": "filesystem", "scope": "files:write" },
                { "tool": "write_file", "service": "filesystem", "scope": "files:write:sandbox",
                  "when": { "path": { "startsWith": "/tmp" } }, "priority": 10 },
                { "tool": "write_file", "scope": "other", "when": { "path": { "startsWith": "/tmp" } }, "priority": 10 }
            ]
        }));
        let args = |v: Value| v.as_object().cloned().unwrap();
        let j = p.judge("write_file", &args(json!({"path": "/tmp/x"})));
        assert_eq!(
            (j.scope.as_str(), j.mapping.as_str()),
            ("filesystem:files:write:sandbox", "tool_mappings[1]")
        );
        let j = p.judge("write_file", &args(json!({"path": "/etc/x"})));
        assert_eq!(j.scope, "filesystem:files:write");
        assert_eq!(
            p.judge("read_file", &Map::new()).scope,
            "filesystem:files:read"
        );
        let j = p.judge("db_query", &Map::new());
        assert_eq!(
            (j.scope.as_str(), j.mapping.as_str()),
            ("db_query:call", "auto")
        );
    }

    #[test]
    fn a_conditional_mapping_that_cannot_compare_its_argument_refuses() {
        let p = policy(json!({
            "mappings": { "transfer": "payments:small" },
            "tool_mappings": [{ "tool": "transfer", "scope": "payments:large", "when": { "amount": { "gt": 1000 } } }]
        }));
        let args = |v: Value| v.as_object().cloned().unwrap();
        let j = p.judge("transfer", &args(json!({"amount": 5000})));
        assert_eq!((j.scope.as_str(), j.hard), ("payments:large", None));
        let j = p.judge("transfer", &args(json!({"amount": 5})));
        assert_eq!((j.scope.as_str(), j.hard), ("payments:small", None));
        // missing: the mapping does not apply (the plain one does)
        let j = p.judge("transfer", &Map::new());
        assert_eq!((j.scope.as_str(), j.hard), ("payments:small", None));
        for amount in [
            json!("5000"),
            json!(9_007_199_254_740_993_u64),
            json!([5000]),
        ] {
            let j = p.judge("transfer", &args(json!({ "amount": amount })));
            assert_eq!(
                j.unknown_scope.map(|(r, _)| r).as_deref(),
                Some("tool_mappings[0]"),
                "{amount}"
            );
            assert_eq!(j.hard, None);
        }
        // null is missing: the plain mapping
        let j = p.judge("transfer", &args(json!({"amount": null})));
        assert_eq!(
            (j.scope.as_str(), j.unknown_scope),
            ("payments:small", None)
        );
        // a mapping whose readable condition fails could never apply: no unknown scope
        let q = policy(json!({
            "mappings": { "transfer": "payments:small" },
            "tool_mappings": [{ "tool": "transfer", "scope": "payments:large",
                "when": { "amount": { "gt": 1000 }, "currency": { "equals": "usd" } } }]
        }));
        let j = q.judge(
            "transfer",
            &args(json!({"amount": "5000", "currency": "eur"})),
        );
        assert_eq!(
            (j.scope.as_str(), j.unknown_scope),
            ("payments:small", None)
        );
        let j = q.judge(
            "transfer",
            &args(json!({"amount": "5000", "currency": "usd"})),
        );
        assert!(j.unknown_scope.is_some());
    }

    #[test]
    fn hard_rules_fire_on_values_a_server_could_coerce() {
        let p = policy(json!({ "rules": [
            { "id": "acct", "tool": "t", "when": { "account": { "equals": 42 } }, "enforcement": "hard" },
            { "id": "env", "tool": "u", "when": { "env": { "in": ["prod"] } }, "enforcement": "hard" },
            { "id": "mode", "tool": "v", "when": { "cfg.mode": { "equals": "live" } }, "enforcement": "hard" },
            { "id": "path", "tool": "w", "when": { "path": { "startsWith": "/etc" } }, "enforcement": "hard" }
        ]}));
        let hard = |t: &str, v: Value| p.judge(t, v.as_object().unwrap()).hard.map(|(id, _)| id);
        for v in [
            json!({"account": "42"}),
            json!({"account": [42]}),
            json!({"account": 42.0}),
        ] {
            assert_eq!(hard("t", v.clone()).as_deref(), Some("acct"), "{v}");
        }
        assert_eq!(hard("t", json!({"account": 41})), None);
        assert_eq!(hard("u", json!({"env": ["prod"]})).as_deref(), Some("env"));
        assert_eq!(hard("u", json!({"env": "dev"})), None);
        for v in [
            json!({"cfg": "{\"mode\": \"live\"}"}),
            json!({"cfg": {"mode": "live"}}),
        ] {
            assert_eq!(hard("v", v.clone()).as_deref(), Some("mode"), "{v}");
        }
        assert_eq!(hard("v", json!({"cfg": {"mode": "test"}})), None);
        // null and absent are missing: nothing fires
        assert_eq!(hard("w", json!({"path": null})), None);
        assert_eq!(hard("w", json!({})), None);
        assert_eq!(hard("w", json!({"path": 7})).as_deref(), Some("path"));
    }

    #[test]
    fn rules_hard_first_and_soft_all() {
        let p = policy(json!({ "rules": [
            { "id": "big", "tool": "pay", "when": { "amount": { "gt": 100 } }, "enforcement": "soft" },
            { "id": "huge", "tool": "pay", "when": { "amount": { "gte": 1000 } }, "enforcement": "hard", "message": "too much" },
            { "id": "any-prod", "when": { "env": { "in": ["prod"] } }, "enforcement": "soft" },
            { "id": "glob", "when": { "host": { "glob": "*.internal" } }, "enforcement": "hard" }
        ]}));
        let args = |v: Value| v.as_object().cloned().unwrap();
        let j = p.judge("pay", &args(json!({"amount": 150, "env": "prod"})));
        assert_eq!(
            (j.hard, j.soft),
            (None, vec!["big".to_string(), "any-prod".to_string()])
        );
        let j = p.judge("pay", &args(json!({"amount": 1e3})));
        assert_eq!(j.hard, Some(("huge".into(), "too much".into())));
        let j = p.judge(
            "other",
            &args(json!({"amount": 5000, "host": "db.internal"})),
        );
        assert_eq!(j.hard, Some(("glob".into(), "glob".into())));
        // a missing argument matches nothing; one of another type (a string, a number past 2^53, a list, an
        // object) fires a hard rule (fail closed), never a soft one
        let j = p.judge("pay", &args(json!({"env": "dev"})));
        assert_eq!((j.hard, j.soft.len()), (None, 0));
        for amount in [
            json!("5000"),
            json!(9_007_199_254_740_993_u64),
            json!([5000]),
            json!({"value": 5000}),
        ] {
            let j = p.judge("pay", &args(json!({ "amount": amount })));
            assert_eq!(
                (j.hard, j.soft.len()),
                (Some(("huge".into(), "too much".into())), 0),
                "{amount}"
            );
        }
    }

    #[test]
    fn apoa_matchers() {
        let p = policy(json!({ "rules": [
            { "id": "one-of", "when": { "env": { "oneOf": ["prod"] } }, "enforcement": "hard" },
            { "id": "ends", "when": { "file": { "endsWith": ".key" } }, "enforcement": "hard" },
            { "id": "has", "when": { "q": { "contains": "DROP" } }, "enforcement": "hard" },
            { "id": "re", "when": { "host": { "matches": "^10[.]" } }, "enforcement": "hard" }
        ]}));
        let hard = |v: Value| p.judge("t", v.as_object().unwrap()).hard.map(|(id, _)| id);
        assert_eq!(hard(json!({"env": "prod"})).as_deref(), Some("one-of"));
        assert_eq!(hard(json!({"file": "a.key"})).as_deref(), Some("ends"));
        assert_eq!(hard(json!({"q": "x; DROP TABLE"})).as_deref(), Some("has"));
        assert_eq!(hard(json!({"host": "10.0.0.1"})).as_deref(), Some("re"));
        assert_eq!(
            hard(json!({"env": "dev", "file": "a.txt", "q": "select", "host": "11.0.0.1"})),
            None
        );
        let bad = serde_json::from_value::<Rule>(
            json!({"id": "x", "enforcement": "hard", "when": {"a": {"matches": "(a"}}}),
        )
        .unwrap();
        assert!(Policy::new(&BTreeMap::new(), &[], &[bad]).is_err());
    }

    #[test]
    fn bad_policies_are_refused() {
        let rule = |v: Value| {
            serde_json::from_value::<Rule>(v)
                .map_err(|_| ())
                .and_then(|r| {
                    Policy::new(&BTreeMap::new(), &[], &[r])
                        .map(|_| ())
                        .map_err(|_| ())
                })
        };
        assert!(rule(json!({"id": "x", "enforcement": "maybe"})).is_err());
        assert!(rule(json!({"id": "x", "enforcement": "hard", "when": {"a": {}}})).is_err());
        assert!(
            rule(json!({"id": "x", "enforcement": "hard", "when": {"a": {"glob": "a[b"}}}))
                .is_err()
        );
        assert!(rule(
            json!({"id": "x", "enforcement": "hard", "when": {"a": {"startswith": "x"}}})
        )
        .is_err());
        assert!(rule(
            json!({"id": "x", "enforcement": "hard", "when": {"a": {"startsWith": "x"}}})
        )
        .is_ok());
        let two = [
            serde_json::from_value::<Rule>(json!({"id": "x", "enforcement": "hard"})).unwrap(),
            serde_json::from_value::<Rule>(json!({"id": "x", "enforcement": "soft"})).unwrap(),
        ];
        assert!(Policy::new(&BTreeMap::new(), &[], &two).is_err());
    }
}
