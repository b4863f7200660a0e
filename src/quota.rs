//! Quotas: how many calls, and how much of a numeric argument, a token and
//! every token derived from it may spend per period (SCHEMA.md, "Quotas").
//!
//! A block carries them as facts (`rate(50, 60)`, `rate("send", 10, 86400)`,
//! `budget("transfer", "amount", 1000, 86400)`), read by the verifier like a
//! nonce: they change no Datalog decision. Each counts under a key made of the
//! block's revocation id, so a token derived from it spends the same counter —
//! a child shares its parent's quota — and a child's own quota is one more
//! counter it must also stay under: attenuation can only lower what is left.
//!
//! Windows are fixed and aligned on the epoch: the window of a call at `now`
//! with period `p` is `[now - now % p, now - now % p + p)`. A refusal says
//! when the window ends (`Retry-After`). The counting itself is the store's,
//! atomically with revocation and single use ([`crate::state::decide`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::args;
use crate::error::{Error, Result};
use crate::model::{check_name, TOOLS_CALL};

/// Most quotas a block may carry.
pub const MAX_QUOTAS: usize = 16;
/// Longest period, seconds (366 days).
pub const MAX_PERIOD: u64 = 366 * 86_400;
/// Largest `max`: every count and sum stays an exact double.
pub const MAX_QUOTA: u64 = (1 << 53) - 1;

/// One quota or a list of them (`rate: {max, period}` or `rate: [...]`).
pub(crate) fn one_or_many<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(t)) => vec![t],
    })
}

/// Calls per period: every `tools/call`, or the calls of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Count only the calls of this tool (every `tools/call` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Most calls per period (at least 1).
    pub max: u64,
    /// The period, seconds (1 to 366 days).
    pub period: u64,
}

/// A cumulative cap on a numeric argument of one tool per period (APOA's
/// `max_daily_amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The tool whose calls spend the budget.
    pub tool: String,
    /// The argument counted: a top-level name or a nested path
    /// (`payment.amount`, `/payment/amount`); a call must carry it as a
    /// non-negative number.
    pub arg: String,
    /// Most the argument may sum to per period (at least 1).
    pub max: u64,
    /// The period, seconds (1 to 366 days).
    pub period: u64,
}

/// One quota as the verifier read it from a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// `rate` or `budget`.
    pub kind: QuotaKind,
    /// The block carrying it.
    pub block: usize,
    /// That block's revocation id: the counter is shared by every token
    /// derived from it.
    pub revocation_id: String,
    /// The tool it counts (every tool for a rate without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The argument a budget counts (its fact key: a name or a JSON pointer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// Most per period.
    pub max: u64,
    /// The period, seconds.
    pub period: u64,
}

/// Calls, or an argument's sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKind {
    /// Calls per period.
    Rate,
    /// An argument's sum per period.
    Budget,
}

impl QuotaKind {
    /// Its name, as in the JSON (`rate`, `budget`).
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Rate => "rate",
            QuotaKind::Budget => "budget",
        }
    }
}

/// What one request spends of one quota: `amount` more under `key` in the
/// window ending at `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    /// The counter: a digest of the quota and its window.
    pub key: String,
    /// `rate` or `budget`.
    pub kind: QuotaKind,
    /// Most per window.
    pub max: f64,
    /// What this request adds.
    pub amount: f64,
    /// End of the window, unix seconds: the counter may be dropped then.
    pub until: u64,
    /// The same as seconds from the decision (stores with a clock of their
    /// own, Redis, expire by it: a skew between clocks cannot drop a counter
    /// early).
    pub ttl: u64,
    /// Only read: would this charge fit? (a dry run's call; never written,
    /// never refuses the request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
}

/// `N`, `Ns`, `Nm`, `Nh` or `Nd`: seconds.
fn period_of(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (t.get(..i)?, c),
        _ => (t, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `MAX/PERIOD` (`1000/1d`).
fn max_period_of(spec: &str, text: &str) -> Result<(u64, u64)> {
    let bad = || {
        Error::invalid(format!(
            "{spec:?}: expected MAX/PERIOD, a period in seconds or with s, m, h, d (`50/1m`)"
        ))
    };
    let (max, period) = text.split_once('/').ok_or_else(bad)?;
    let max = max.trim().parse().map_err(|_| bad())?;
    let period = period_of(period).ok_or_else(bad)?;
    Ok((max, period))
}

impl Rate {
    /// The CLI's `--rate [TOOL:]MAX/PERIOD` (`50/1m`, `send_email:10/1d`).
    pub fn from_spec(spec: &str) -> Result<Rate> {
        let (tool, rest) = match spec.rsplit_once(':') {
            Some((t, r)) => (Some(t.trim().to_string()), r),
            None => (None, spec),
        };
        let (max, period) = max_period_of(spec, rest)?;
        let r = Rate { tool, max, period };
        check_quotas(std::slice::from_ref(&r), &[], None)?;
        Ok(r)
    }
}

impl Budget {
    /// The CLI's `--budget TOOL.ARG<=MAX/PERIOD` (`transfer.amount<=1000/1d`;
    /// a dotted tool is quoted, as in `--arg`).
    pub fn from_spec(spec: &str) -> Result<Budget> {
        let (tool, rest) = crate::model::split_tool(spec)?;
        let (arg, limit) = rest
            .split_once("<=")
            .ok_or_else(|| Error::invalid(format!("{spec:?}: expected TOOL.ARG<=MAX/PERIOD")))?;
        let (max, period) = max_period_of(spec, limit)?;
        let b = Budget {
            tool,
            arg: arg.trim().to_string(),
            max,
            period,
        };
        let (_, mut bs) = check_quotas(&[], std::slice::from_ref(&b), None)?;
        Ok(bs.pop().unwrap_or(b))
    }
}

fn check_period_max(what: &str, max: u64, period: u64) -> Result<()> {
    if max == 0 || max > MAX_QUOTA {
        return Err(Error::invalid(format!(
            "a {what}'s max is 1 to {MAX_QUOTA}"
        )));
    }
    if period == 0 || period > MAX_PERIOD {
        return Err(Error::invalid(format!(
            "a {what}'s period is 1 to {MAX_PERIOD} seconds (366 days)"
        )));
    }
    Ok(())
}

/// The budget's argument as a fact key (a name, or a JSON pointer).
fn budget_key(arg: &str) -> Result<String> {
    let path = args::ArgPath::parse(arg)?;
    if path.each {
        return Err(Error::invalid(
            "a budget counts one number: `[*]` is not allowed in its argument",
        ));
    }
    Ok(path.key())
}

/// Checks the quotas of a grant or restriction; budgets name their argument
/// canonically. `granted` is the block's tool set when it names tools only
/// (a quota on another tool would never count).
pub(crate) fn check_quotas(
    rates: &[Rate],
    budgets: &[Budget],
    granted: Option<&std::collections::BTreeSet<String>>,
) -> Result<(Vec<Rate>, Vec<Budget>)> {
    if rates.len() + budgets.len() > MAX_QUOTAS {
        return Err(Error::invalid(format!(
            "more than {MAX_QUOTAS} quotas in one block"
        )));
    }
    let ungranted = |tool: &str| -> Result<()> {
        match granted {
            Some(t) if !t.contains(tool) => Err(Error::invalid(format!(
                "quota on {tool:?}, a tool the token does not grant"
            ))),
            _ => Ok(()),
        }
    };
    let mut rs = Vec::with_capacity(rates.len());
    for r in rates {
        check_period_max("rate", r.max, r.period)?;
        if let Some(t) = &r.tool {
            check_name("tool name", t)?;
            ungranted(t)?;
        }
        rs.push(r.clone());
    }
    let mut bs = Vec::with_capacity(budgets.len());
    for b in budgets {
        check_period_max("budget", b.max, b.period)?;
        check_name("tool name", &b.tool)?;
        ungranted(&b.tool)?;
        bs.push(Budget {
            arg: budget_key(&b.arg)?,
            ..b.clone()
        });
    }
    Ok((rs, bs))
}

/// A quota fact of a block, or `None` when the fact is not one (a fact named
/// `rate` or `budget` of any other shape is a malformed token).
pub(crate) fn quota_of_fact(
    name: &str,
    terms: &[biscuit_auth::builder::Term],
) -> Option<Result<(Option<Rate>, Option<Budget>)>> {
    use biscuit_auth::builder::Term;
    let num = |t: &Term| match t {
        Term::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    let bad = |what: &str| {
        Some(Err(Error::malformed(format!(
            "a `{what}` fact is {what}(max, period), {what}(tool, max, period) for a rate, \
             budget(tool, arg, max, period) for a budget, with max 1 to 2^53-1 and period 1 to {MAX_PERIOD}"
        ))))
    };
    match name {
        "rate" => {
            let (tool, max, period) = match terms {
                [m, p] => (None, num(m), num(p)),
                [Term::Str(t), m, p] => (Some(t.clone()), num(m), num(p)),
                _ => return bad("rate"),
            };
            let (Some(max), Some(period)) = (max, period) else {
                return bad("rate");
            };
            if check_period_max("rate", max, period).is_err() {
                return bad("rate");
            }
            Some(Ok((Some(Rate { tool, max, period }), None)))
        }
        "budget" => {
            let [Term::Str(tool), Term::Str(arg), m, p] = terms else {
                return bad("budget");
            };
            let (Some(max), Some(period)) = (num(m), num(p)) else {
                return bad("budget");
            };
            if check_period_max("budget", max, period).is_err()
                || budget_key(arg).ok().as_deref() != Some(arg.as_str())
            {
                return bad("budget");
            }
            Some(Ok((
                None,
                Some(Budget {
                    tool: tool.clone(),
                    arg: arg.clone(),
                    max,
                    period,
                }),
            )))
        }
        _ => None,
    }
}

fn counter_key(q: &Quota, window: u64) -> String {
    let text =
        serde_json::json!([q.kind, q.revocation_id, q.tool, q.arg, q.period, window]).to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What a `tools/call` of `tool` with `arguments` at `now` spends of
/// `quotas`, one charge per quota that counts it; or the refusal of a call
/// that does not carry a budget's argument as a non-negative number
/// (`argument_not_allowed`, naming the budget's block).
pub fn charges(
    quotas: &[Quota],
    method: &str,
    tool: Option<&str>,
    arguments: &Map<String, Value>,
    now: u64,
) -> Result<Vec<Charge>> {
    let mut all = Vec::new();
    if method != TOOLS_CALL {
        return Ok(Vec::new());
    }
    let Some(tool) = tool else {
        return Ok(Vec::new());
    };
    for q in quotas {
        if q.tool.as_deref().is_some_and(|t| t != tool) {
            continue;
        }
        let amount = match (q.kind, &q.arg) {
            (QuotaKind::Rate, _) => 1.0,
            (QuotaKind::Budget, arg) => {
                let arg = arg.as_deref().unwrap_or_default();
                match args::lookup(arguments, arg).and_then(Value::as_f64) {
                    Some(x) if x >= 0.0 && x < args::EXACT_INT as f64 => x,
                    _ => {
                        return Err(Error::ArgumentNotAllowed {
                            tool: tool.to_string(),
                            block: q.block,
                            check: format!(
                                "budget({:?}, {:?}, {}, {}): the call must carry {arg:?} as a number from 0 to 2^53",
                                tool, arg, q.max, q.period
                            ),
                        })
                    }
                }
            }
        };
        let window = now - now % q.period;
        let charge = Charge {
            key: counter_key(q, window),
            kind: q.kind,
            max: q.max as f64,
            amount,
            until: window + q.period,
            ttl: window + q.period - now,
            probe: false,
        };
        all.push(charge);
    }
    // two quotas of one block on the same tool, argument and period are one counter: the call counts once against
    // the lower maximum (`rate(100, 3600)` beside `rate(5, 3600)` let 50 calls through)
    let mut out = Vec::with_capacity(all.len());
    fold(&mut out, all, false);
    Ok(out)
}

/// Several requests' charges as one: amounts under the same key add up (against the lower maximum).
pub fn merge(into: &mut Vec<Charge>, more: Vec<Charge>) {
    fold(into, more, true);
}

/// `more` into `into` by key (a chain holds up to 1,024 quotas: keyed, not searched): a key already there keeps the
/// lower maximum, and adds the amount when `add` (another request's charge), not when one call names the counter
/// twice.
fn fold(into: &mut Vec<Charge>, more: Vec<Charge>, add: bool) {
    let mut at: std::collections::BTreeMap<String, usize> = into
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.clone(), i))
        .collect();
    for c in more {
        match at.get(&c.key).and_then(|&i| into.get_mut(i)) {
            Some(x) => {
                if add {
                    x.amount += c.amount;
                }
                x.max = x.max.min(c.max);
            }
            None => {
                at.insert(c.key.clone(), into.len());
                into.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_quotas_on_one_counter_count_once_against_the_lower_maximum() {
        for (a, b) in [(100, 5), (5, 100)] {
            let quotas = [
                q(QuotaKind::Rate, None, None, a, 3600),
                q(QuotaKind::Rate, None, None, b, 3600),
            ];
            let c = charges(&quotas, TOOLS_CALL, Some("t"), &Map::new(), 1_800_000_000).unwrap();
            assert_eq!(c.len(), 1);
            assert_eq!((c[0].max, c[0].amount), (5.0, 1.0));
            let mut all = c.clone();
            merge(&mut all, c);
            assert_eq!((all.len(), all[0].max, all[0].amount), (1, 5.0, 2.0));
        }
    }

    fn q(kind: QuotaKind, tool: Option<&str>, arg: Option<&str>, max: u64, period: u64) -> Quota {
        Quota {
            kind,
            block: 0,
            revocation_id: "ab".repeat(64),
            tool: tool.map(Into::into),
            arg: arg.map(Into::into),
            max,
            period,
        }
    }

    #[test]
    fn windows_are_fixed_and_keys_differ_by_window_and_block() {
        let r = q(QuotaKind::Rate, None, None, 5, 60);
        let a = charges(
            std::slice::from_ref(&r),
            TOOLS_CALL,
            Some("t"),
            &Map::new(),
            1_800_000_010,
        )
        .unwrap();
        let b = charges(
            std::slice::from_ref(&r),
            TOOLS_CALL,
            Some("t"),
            &Map::new(),
            1_800_000_059,
        )
        .unwrap();
        let c = charges(
            std::slice::from_ref(&r),
            TOOLS_CALL,
            Some("t"),
            &Map::new(),
            1_800_000_060,
        )
        .unwrap();
        assert_eq!(a[0].key, b[0].key);
        assert_ne!(a[0].key, c[0].key);
        assert_eq!((a[0].until, a[0].ttl), (1_800_000_060, 50));
        let mut other = r.clone();
        other.revocation_id = "cd".repeat(64);
        let d = charges(&[other], TOOLS_CALL, Some("t"), &Map::new(), 1_800_000_010).unwrap();
        assert_ne!(a[0].key, d[0].key);
        // other methods, other tools spend nothing
        assert!(charges(
            std::slice::from_ref(&r),
            "resources/read",
            None,
            &Map::new(),
            1
        )
        .unwrap()
        .is_empty());
        let only = q(QuotaKind::Rate, Some("send"), None, 5, 60);
        assert!(charges(&[only], TOOLS_CALL, Some("t"), &Map::new(), 1)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_budget_needs_its_argument_as_a_non_negative_number() {
        let b = q(QuotaKind::Budget, Some("pay"), Some("amount"), 100, 86400);
        let args = |v: Value| v.as_object().cloned().unwrap();
        let ok = charges(
            std::slice::from_ref(&b),
            TOOLS_CALL,
            Some("pay"),
            &args(serde_json::json!({"amount": 12.5})),
            5,
        )
        .unwrap();
        assert_eq!(ok[0].amount, 12.5);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"amount": "12"}),
            serde_json::json!({"amount": -1}),
            serde_json::json!({"amount": null}),
            serde_json::json!({"amount": 1e300}),
        ] {
            let e = charges(
                std::slice::from_ref(&b),
                TOOLS_CALL,
                Some("pay"),
                &args(bad),
                5,
            )
            .unwrap_err();
            assert_eq!(e.code(), "argument_not_allowed");
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            Rate::from_spec("50/1m").unwrap(),
            Rate {
                tool: None,
                max: 50,
                period: 60
            }
        );
        assert_eq!(
            Rate::from_spec("send_email:10/1d").unwrap(),
            Rate {
                tool: Some("send_email".into()),
                max: 10,
                period: 86400
            }
        );
        assert_eq!(Rate::from_spec("5/30").unwrap().period, 30);
        for bad in ["50", "0/1m", "5/0", "5/1w", "x/1m", "5/367d", "/1m"] {
            assert!(Rate::from_spec(bad).is_err(), "{bad}");
        }
        let b = Budget::from_spec("transfer.amount<=1000/1d").unwrap();
        assert_eq!(
            (b.tool.as_str(), b.arg.as_str(), b.max, b.period),
            ("transfer", "amount", 1000, 86400)
        );
        let d = Budget::from_spec("\"pay.v2\".payment.amount<=5/1h").unwrap();
        assert_eq!(
            (d.tool.as_str(), d.arg.as_str()),
            ("pay.v2", "/payment/amount")
        );
        for bad in [
            "transfer<=5/1d",
            "transfer.amount=5/1d",
            "transfer.amount<=5",
        ] {
            assert!(Budget::from_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quotas_are_checked() {
        let r = |max, period| Rate {
            tool: None,
            max,
            period,
        };
        assert!(check_quotas(&[r(1, 1)], &[], None).is_ok());
        assert!(check_quotas(&[r(0, 1)], &[], None).is_err());
        assert!(check_quotas(&[r(1, 0)], &[], None).is_err());
        assert!(check_quotas(&[r(1, MAX_PERIOD + 1)], &[], None).is_err());
        let b = Budget {
            tool: "pay".into(),
            arg: "payment.amount".into(),
            max: 10,
            period: 60,
        };
        let (_, bs) = check_quotas(&[], std::slice::from_ref(&b), None).unwrap();
        assert_eq!(bs[0].arg, "/payment/amount");
        let granted: std::collections::BTreeSet<String> = ["other".to_string()].into();
        assert!(check_quotas(&[], std::slice::from_ref(&b), Some(&granted)).is_err());
        let each = Budget {
            arg: "items[*]".into(),
            ..b
        };
        assert!(check_quotas(&[], &[each], None).is_err());
    }
}
