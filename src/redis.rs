//! Redis's store step around `spend.lua` (SCHEMA.md, "Stores"): Redis runs the store's atomic step as one Lua
//! script (`npm/mcpvault-store/spend.lua`, the same rules as [`crate::state::decide`], held to the same vectors),
//! so its hosts (npm `mcpvault-store`, the CLI, Python) only send it and read it back. What they send and what its
//! reply means is written here once: [`redis_call`] gives the script's `KEYS` and `ARGV` for a
//! [`StoreAsk`], [`redis_answer`] the guard's [`StoreAnswer`] for its reply. A reply the script never gives is an
//! answer with `error` (the guard refuses the request, `internal_error`), never an allow.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::{QuotaExceeded, SpendOutcome, StoreAnswer, StoreAsk};

/// The prefix of every key mcpvault writes in Redis.
pub const PREFIX: &str = "mcpvault:";

/// One call of `spend.lua`: its `KEYS` and `ARGV`, every value as text (Redis takes bulk strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisCall {
    /// `mcpvault:revoked`, `mcpvault:nonce:N` per nonce, `mcpvault:result:CALLKEY` when there are nonces,
    /// `mcpvault:quota:KEY` per charge.
    pub keys: Vec<String>,
    /// The call key, now, keep until, retry window, the numbers of nonces and charges, probe (`1`/`0`), how many of
    /// the nonces (at their end) are proofs'; per charge its max, amount, ttl and probe; the token's revocation ids.
    pub args: Vec<String>,
}

/// `spend.lua`'s `KEYS` and `ARGV` for `ask` (the script's header documents both).
pub fn redis_call(ask: &StoreAsk) -> RedisCall {
    let spend = ask.spend.as_ref();
    let nonces = spend.map_or(&[][..], |s| s.nonces.as_slice());
    let mut keys = Vec::with_capacity(2 + nonces.len() + ask.quotas.len());
    keys.push(format!("{PREFIX}revoked"));
    keys.extend(nonces.iter().map(|n| format!("{PREFIX}nonce:{n}")));
    if let (Some(s), false) = (spend, nonces.is_empty()) {
        keys.push(format!("{PREFIX}result:{}", s.call_key));
    }
    keys.extend(
        ask.quotas
            .iter()
            .map(|q| format!("{PREFIX}quota:{}", q.key)),
    );
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut args = vec![
        spend.map_or_else(String::new, |s| s.call_key.clone()),
        spend.map_or(0, |s| s.now).to_string(),
        spend.map_or(0, |s| s.until).to_string(),
        spend.map_or(0, |s| s.window).to_string(),
        nonces.len().to_string(),
        ask.quotas.len().to_string(),
        flag(spend.is_some_and(|s| s.probe)),
        spend.map_or(0, |s| s.proofs.min(nonces.len())).to_string(),
    ];
    for q in &ask.quotas {
        // Rust prints a double with the shortest digits that read back as it (Lua's tonumber reads them exactly)
        args.extend([
            q.max.to_string(),
            q.amount.to_string(),
            q.ttl.to_string(),
            flag(q.probe),
        ]);
    }
    args.extend(ask.revocation_ids.iter().cloned());
    RedisCall { keys, args }
}

/// The guard's answer to `ask` from `reply`, `spend.lua`'s answer to [`redis_call`]`(ask)` (every element as
/// text): `{"revoked", id}`, `{"in_flight"}`, `{"done", response}`, `{"replayed", nonce key}`,
/// `{"quota", charge index from 1, used}` or `{"fresh" | "none", nonce key a probe found spent or "", the first
/// probe charge that would not fit or "0", its used}`. Anything else is an answer with `error`.
pub fn redis_answer(ask: &StoreAsk, reply: &[String]) -> StoreAnswer {
    read_reply(ask, reply).unwrap_or_else(|e| StoreAnswer {
        error: Some(format!(
            "redis: {e} (reply {})",
            serde_json::to_string(reply).unwrap_or_default()
        )),
        ..StoreAnswer::default()
    })
}

/// [`redis_answer`] of a reply as JSON (how the hosts hand it over): an array of strings, or of the integers Redis
/// makes of Lua's numbers. Any other value is read like a reply the script never gives: an answer with `error`.
pub fn redis_answer_json(ask: &StoreAsk, reply: &Value) -> StoreAnswer {
    let items = match reply {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<String>>>(),
        _ => None,
    };
    match items {
        Some(items) => redis_answer(ask, &items),
        None => StoreAnswer {
            error: Some(format!(
                "redis: spend.lua's reply is not an array of strings ({reply})"
            )),
            ..StoreAnswer::default()
        },
    }
}

fn read_reply(ask: &StoreAsk, reply: &[String]) -> Result<StoreAnswer, String> {
    let nth = |i: usize| {
        reply
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("spend.lua's reply has no element {}", i + 1))
    };
    let nonce = |key: &str| {
        key.strip_prefix(PREFIX)
            .and_then(|k| k.strip_prefix("nonce:"))
            .map(str::to_string)
            .ok_or_else(|| format!("{key} is not a nonce key"))
    };
    let quota = |index: &str, used: &str| -> Result<QuotaExceeded, String> {
        let q = index
            .parse::<usize>()
            .ok()
            .and_then(|i| ask.quotas.get(i.checked_sub(1)?))
            .ok_or_else(|| format!("no charge {index} was asked"))?;
        // read as JSON reads a number (Lua writes %.17g; serde_json's reader is in the build already)
        let used = serde_json::from_str::<f64>(used)
            .ok()
            .filter(|u| u.is_finite())
            .ok_or_else(|| format!("{used} is not an amount"))?;
        Ok(QuotaExceeded {
            key: q.key.clone(),
            kind: q.kind,
            max: q.max,
            used,
            amount: q.amount,
            until: q.until,
        })
    };
    let spend = |s| StoreAnswer {
        spend: Some(s),
        ..StoreAnswer::default()
    };
    let probe = ask.spend.as_ref().is_some_and(|s| s.probe);
    Ok(match nth(0)? {
        "revoked" => {
            let id = nth(1)?;
            if !ask.revocation_ids.iter().any(|r| r == id) {
                return Err(format!("{id} is not one of the ids asked"));
            }
            StoreAnswer {
                revoked: Some(id.to_string()),
                ..StoreAnswer::default()
            }
        }
        kind @ ("none" | "fresh") => {
            // the script spends the nonces of every ask that has some, unless it is a probe
            let spends = !probe && ask.spend.as_ref().is_some_and(|s| !s.nonces.is_empty());
            if (kind == "fresh") != spends {
                return Err(format!(
                    "{kind} answers an ask that spends {}",
                    if spends { "nonces" } else { "none" }
                ));
            }
            let mut answer = StoreAnswer::default();
            if kind == "fresh" {
                answer.spend = Some(SpendOutcome::Fresh);
            }
            // a dry run's probe: what spending would find
            if probe {
                let found = nth(1)?;
                answer.spend = Some(if found.is_empty() {
                    SpendOutcome::Fresh
                } else {
                    SpendOutcome::Replayed {
                        nonce: nonce(found)?,
                    }
                });
            }
            // and the first probe charge that would not fit
            let charge = nth(2)?;
            if charge != "0" {
                answer.probe_quota = Some(quota(charge, nth(3)?)?);
            }
            answer
        }
        "in_flight" => spend(SpendOutcome::InFlight),
        "done" => spend(SpendOutcome::Done {
            response: serde_json::from_str(nth(1)?)
                .map_err(|e| format!("the recorded response is not JSON: {e}"))?,
        }),
        "replayed" => spend(SpendOutcome::Replayed {
            nonce: nonce(nth(1)?)?,
        }),
        "quota" => StoreAnswer {
            quota: Some(quota(nth(1)?, nth(2)?)?),
            ..StoreAnswer::default()
        },
        other => return Err(format!("{other} is not an answer of spend.lua")),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::quota::{Charge, QuotaKind};
    use crate::state::SpendAsk;
    use serde_json::json;

    fn ask(probe: bool) -> StoreAsk {
        StoreAsk {
            revocation_ids: vec!["aa".into(), "bb".into()],
            spend: Some(SpendAsk {
                nonces: vec!["n1".into(), "n2".into()],
                call_key: "ck".into(),
                now: 100,
                until: 200,
                window: 30,
                probe,
                proofs: 1,
            }),
            quotas: vec![
                Charge {
                    key: "q1".into(),
                    kind: QuotaKind::Rate,
                    max: 10.0,
                    amount: 1.0,
                    until: 160,
                    ttl: 60,
                    probe,
                },
                Charge {
                    key: "q2".into(),
                    kind: QuotaKind::Budget,
                    max: 2.5,
                    amount: 0.1,
                    until: 190,
                    ttl: 90,
                    probe,
                },
            ],
        }
    }

    fn reply(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_call_follows_the_scripts_header() {
        let c = redis_call(&ask(false));
        assert_eq!(
            c.keys,
            [
                "mcpvault:revoked",
                "mcpvault:nonce:n1",
                "mcpvault:nonce:n2",
                "mcpvault:result:ck",
                "mcpvault:quota:q1",
                "mcpvault:quota:q2"
            ]
        );
        assert_eq!(
            c.args,
            [
                "ck", "100", "200", "30", "2", "2", "0", "1", "10", "1", "60", "0", "2.5", "0.1",
                "90", "0", "aa", "bb"
            ]
        );
        // no spend, no quota: the revoked set and the ids alone
        let bare = redis_call(&StoreAsk {
            revocation_ids: vec!["aa".into()],
            spend: None,
            quotas: vec![],
        });
        assert_eq!(bare.keys, ["mcpvault:revoked"]);
        assert_eq!(bare.args, ["", "0", "0", "0", "0", "0", "0", "0", "aa"]);
        assert_eq!(redis_call(&ask(true)).args[6], "1");
    }

    #[test]
    fn every_reply_of_the_script_is_read() {
        let a = ask(false);
        let r = |items: &[&str]| serde_json::to_value(redis_answer(&a, &reply(items))).unwrap();
        assert_eq!(r(&["revoked", "bb"]), json!({"revoked": "bb"}));
        assert_eq!(r(&["in_flight"]), json!({"spend": {"result": "in_flight"}}));
        assert_eq!(
            r(&["done", r#"{"result":{"x":1}}"#]),
            json!({"spend": {"result": "done", "response": {"result": {"x": 1}}}})
        );
        assert_eq!(
            r(&["replayed", "mcpvault:nonce:n2"]),
            json!({"spend": {"result": "replayed", "nonce": "n2"}})
        );
        assert_eq!(
            r(&["quota", "2", "2.4500000000000000e+00"]),
            json!({"quota": {"key": "q2", "kind": "budget", "max": 2.5, "used": 2.45, "amount": 0.1, "until": 190}})
        );
        assert_eq!(
            r(&["fresh", "", "0", ""]),
            json!({"spend": {"result": "fresh"}})
        );
        let bare = StoreAsk {
            revocation_ids: vec![],
            spend: None,
            quotas: vec![],
        };
        assert_eq!(
            redis_answer(&bare, &reply(&["none", "", "0", ""])),
            StoreAnswer::default()
        );
    }

    #[test]
    fn a_dry_runs_probe_is_read() {
        let a = ask(true);
        let r = |items: &[&str]| serde_json::to_value(redis_answer(&a, &reply(items))).unwrap();
        assert_eq!(
            r(&["none", "", "0", ""]),
            json!({"spend": {"result": "fresh"}})
        );
        assert_eq!(
            r(&["none", "mcpvault:nonce:n1", "1", "10"]),
            json!({"spend": {"result": "replayed", "nonce": "n1"},
                   "probe_quota": {"key": "q1", "kind": "rate", "max": 10.0, "used": 10.0, "amount": 1.0, "until": 160}})
        );
    }

    #[test]
    fn a_reply_the_script_never_gives_is_an_error_never_an_allow() {
        let a = ask(false);
        for bad in [
            &[][..],
            &["allowed"],
            &["revoked"],
            &["revoked", "cc"],
            &["replayed", "n1"],
            &["replayed", "mcpvault:result:ck"],
            &["done", "not json"],
            &["done"],
            &["quota", "3", "1"],
            &["quota", "0", "1"],
            &["quota", "1", "NaN"],
            &["quota", "1"],
            &["fresh"],
            &["none", "", "9", "1"],
        ] {
            let answer = redis_answer(&a, &reply(bad));
            assert!(answer.error.is_some(), "{bad:?}: {answer:?}");
            assert_eq!(
                answer,
                StoreAnswer {
                    error: answer.error.clone(),
                    ..StoreAnswer::default()
                },
                "{bad:?}"
            );
        }
        for bad in [
            json!({"0": "revoked"}),
            json!(["in_flight", null]),
            json!([1.5]),
            json!("fresh"),
        ] {
            let answer = redis_answer_json(&a, &bad);
            assert!(answer.error.is_some() && answer.spend.is_none(), "{bad}");
        }
        // Redis's integers are read as their text
        assert_eq!(
            redis_answer_json(&a, &json!(["quota", 1, 10]))
                .quota
                .map(|q| q.used),
            Some(10.0)
        );
        // nonces spent for a dry run, or none for a call that spends them
        assert!(redis_answer(&ask(true), &reply(&["fresh", "", "0", ""]))
            .error
            .is_some());
        assert!(redis_answer(&a, &reply(&["none", "", "0", ""]))
            .error
            .is_some());
    }
}
