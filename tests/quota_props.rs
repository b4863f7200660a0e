//! Quotas through the guard on the reference store: examples of every rule, and a property test that a chain of
//! tokens with random rates and budgets allows exactly what a plain model of the counters allows — so a derived
//! token can never spend more than any block before it grants (attenuation never widens a quota).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::guard::{Guard, GuardInput, GuardOptions, Outcome};
use mcpvault::quota::{Budget, Rate};
use mcpvault::state::MemoryStore;
use mcpvault::{attenuate, keygen, mint, Grant, Restriction};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{json, Value};

const NOW: u64 = 1_800_000_000; // a multiple of 60 and 3600

fn rate(max: u64, period: u64) -> Rate {
    Rate {
        tool: None,
        max,
        period,
    }
}

fn budget(max: u64, period: u64) -> Budget {
    Budget {
        tool: "pay".into(),
        arg: "amount".into(),
        max,
        period,
    }
}

struct World {
    public_key: String,
    private_key: String,
    rng: ChaCha20Rng,
}

impl World {
    fn new() -> World {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let keys = keygen(&mut rng);
        World {
            public_key: keys.public_key.clone(),
            private_key: keys.private_key.clone(),
            rng,
        }
    }

    fn mint(&mut self, rates: Vec<Rate>, budgets: Vec<Budget>) -> String {
        let grant = Grant {
            rate: rates,
            budget: budgets,
            ..Grant::new(["db_query", "pay"], 86_400, "auth-server", "agent-a")
        };
        mint(&self.private_key, &grant, NOW, &mut self.rng).unwrap()
    }

    fn narrow(&mut self, token: &str, rates: Vec<Rate>, budgets: Vec<Budget>) -> String {
        let r = Restriction {
            rate: rates,
            budget: budgets,
            ttl: Some(86_400),
            ..Default::default()
        };
        attenuate(token, &r, NOW, &mut self.rng).unwrap().token
    }

    fn guard(&self, store: bool) -> Guard {
        let options = GuardOptions {
            store,
            ..GuardOptions::new(self.public_key.clone())
        };
        Guard::new(options, 16).unwrap()
    }
}

fn input(token: &str, body: Value) -> GuardInput {
    GuardInput {
        headers: [("authorization".to_string(), format!("Bearer {token}"))].into(),
        body: Some(body.to_string()),
        ..GuardInput::default()
    }
}

fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

fn code(o: &Outcome) -> Option<String> {
    o.decisions.first().and_then(|d| d.code.clone())
}

#[test]
fn a_rate_counts_calls_per_window_and_says_when_to_retry() {
    let mut w = World::new();
    let token = w.mint(vec![rate(3, 60)], vec![]);
    let mut g = w.guard(true);
    let mut s = MemoryStore::new();
    for i in 0..3 {
        let o = g.run(
            &mut s,
            &input(&token, call(i, "db_query", json!({}))),
            NOW + 10,
        );
        assert!(o.allowed, "{i}: {:?}", code(&o));
    }
    let o = g.run(
        &mut s,
        &input(&token, call(9, "db_query", json!({}))),
        NOW + 40,
    );
    assert_eq!(code(&o).as_deref(), Some("rate_limited"));
    assert_eq!(o.status, 429);
    assert_eq!(o.headers.get("Retry-After").map(String::as_str), Some("20"));
    let err = &o.response.as_ref().unwrap()["error"];
    assert_eq!(err["code"], -32029);
    assert_eq!(err["data"]["retryAfter"], 20);
    // other methods spend nothing; the next window starts over
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    assert!(g.run(&mut s, &input(&token, list), NOW + 41).allowed);
    let o = g.run(
        &mut s,
        &input(&token, call(10, "db_query", json!({}))),
        NOW + 60,
    );
    assert!(o.allowed);
}

#[test]
fn a_child_shares_its_parents_quota_and_can_only_lower_it() {
    let mut w = World::new();
    let parent = w.mint(vec![rate(3, 60)], vec![]);
    // a child asking for more still counts against the parent's 3
    let greedy = w.narrow(&parent, vec![rate(100, 60)], vec![]);
    let modest = w.narrow(&parent, vec![rate(1, 60)], vec![]);
    let mut g = w.guard(true);
    let mut s = MemoryStore::new();
    let mut run = |t: &str, id: u64| g.run(&mut s, &input(t, call(id, "db_query", json!({}))), NOW);
    assert!(run(&modest, 1).allowed);
    assert_eq!(code(&run(&modest, 2)).as_deref(), Some("rate_limited"));
    assert!(run(&greedy, 3).allowed);
    assert!(run(&parent, 4).allowed);
    assert_eq!(code(&run(&greedy, 5)).as_deref(), Some("rate_limited"));
    assert_eq!(code(&run(&parent, 6)).as_deref(), Some("rate_limited"));
}

#[test]
fn a_budget_sums_an_argument_and_a_batch_counts_whole() {
    let mut w = World::new();
    let token = w.mint(vec![], vec![budget(100, 86_400)]);
    let mut g = w.guard(true);
    let mut s = MemoryStore::new();
    let pay = |id, amount: Value| call(id, "pay", json!({ "amount": amount }));
    assert!(
        g.run(&mut s, &input(&token, pay(1, json!(60.5))), NOW)
            .allowed
    );
    let o = g.run(&mut s, &input(&token, pay(2, json!(40))), NOW);
    assert_eq!(code(&o).as_deref(), Some("budget_exceeded"));
    // daily windows end at midnight UTC
    let left = (86_400 - NOW % 86_400).to_string();
    assert_eq!(o.headers.get("Retry-After"), Some(&left));
    // a call without the amount cannot slip past it
    for bad in [json!("39"), json!(-5), Value::Null] {
        let o = g.run(&mut s, &input(&token, pay(3, bad)), NOW);
        assert_eq!(code(&o).as_deref(), Some("argument_not_allowed"));
    }
    let o = g.run(&mut s, &input(&token, call(3, "pay", json!({}))), NOW);
    assert_eq!(code(&o).as_deref(), Some("argument_not_allowed"));
    // two calls that fit alone but not together: the batch is refused whole, nothing is spent
    let batch = json!([pay(4, json!(30)), pay(5, json!(30))]);
    let o = g.run(&mut s, &input(&token, batch), NOW);
    assert_eq!(code(&o).as_deref(), Some("budget_exceeded"));
    assert!(
        g.run(&mut s, &input(&token, pay(6, json!(39.5))), NOW)
            .allowed
    );
    // another tool is not counted
    assert!(
        g.run(&mut s, &input(&token, call(7, "db_query", json!({}))), NOW)
            .allowed
    );
}

#[test]
fn a_retry_spends_no_quota_and_no_store_refuses() {
    let mut w = World::new();
    let token = w.mint(vec![rate(1, 60)], vec![]);
    let once = {
        let r = Restriction {
            single_use: true,
            ..Default::default()
        };
        attenuate(&token, &r, NOW, &mut w.rng).unwrap().token
    };
    let mut g = w.guard(true);
    let mut s = MemoryStore::new();
    let o = g.run(&mut s, &input(&once, call(1, "db_query", json!({}))), NOW);
    assert!(o.allowed);
    s.complete(
        o.call_key.as_deref().unwrap(),
        json!({"result": {"ok": true}}),
        NOW + 100,
    );
    // the same call again: the recorded answer, not a second execution (and not rate_limited)
    let again = g.run(
        &mut s,
        &input(&once, call(1, "db_query", json!({}))),
        NOW + 1,
    );
    assert!(again.allowed && again.decisions[0].replayed_response);
    assert_eq!(
        code(&g.run(&mut s, &input(&token, call(2, "db_query", json!({}))), NOW)).as_deref(),
        Some("rate_limited")
    );
    let mut bare = w.guard(false);
    let o = bare.check(&input(&token, call(3, "db_query", json!({}))), NOW);
    let mcpvault::guard::Check::Done { outcome } = o else {
        panic!("no store: decided without one")
    };
    assert!(!outcome.allowed);
    assert_eq!(code(&outcome).as_deref(), Some("rate_limited"));
}

#[test]
fn quotas_are_refused_at_mint_when_they_could_never_count() {
    let mut w = World::new();
    let grant = Grant {
        budget: vec![Budget {
            tool: "other".into(),
            ..budget(5, 60)
        }],
        ..Grant::new(["pay"], 60, "i", "s")
    };
    let e = mint(&w.private_key, &grant, NOW, &mut w.rng).unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    let grant = Grant {
        rate: vec![rate(0, 60)],
        ..Grant::new(["pay"], 60, "i", "s")
    };
    assert_eq!(
        mint(&w.private_key, &grant, NOW, &mut w.rng)
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    let info = mcpvault::inspect(&w.mint(vec![rate(5, 60)], vec![budget(9, 3600)])).unwrap();
    assert_eq!(info.blocks[0].rate, vec![rate(5, 60)]);
    assert_eq!(info.blocks[0].budget, vec![budget(9, 3600)]);
}

/// One block's quotas in the model: an optional rate and an optional budget on `pay.amount`.
#[derive(Debug, Clone)]
struct BlockQuota {
    rate: Option<(u64, u64)>,
    budget: Option<(u64, u64)>,
}

fn block_quota() -> impl Strategy<Value = BlockQuota> {
    let period = prop_oneof![Just(10u64), Just(30), Just(60)];
    (
        proptest::option::of((1u64..6, period.clone())),
        proptest::option::of((1u64..20, period)),
    )
        .prop_map(|(rate, budget)| BlockQuota { rate, budget })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MCPVAULT_QUOTA_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    /// Random chains of 1-3 blocks, each with random quotas, and random calls by any token of the chain at random
    /// times: the guard allows a call exactly when every block from the root to that token has room for it in the
    /// current window, and then counts it in all of them. So no derived token ever spends more than any of its
    /// blocks grants, per window.
    #[test]
    fn the_guard_counts_exactly_like_the_model(
        blocks in proptest::collection::vec(block_quota(), 1..=3),
        calls in proptest::collection::vec((0usize..3, 0u64..120, any::<bool>(), 0u64..8), 1..40),
    ) {
        let mut w = World::new();
        let quotas = |b: &BlockQuota| (
            b.rate.map(|(m, p)| vec![rate(m, p)]).unwrap_or_default(),
            b.budget.map(|(m, p)| vec![budget(m, p)]).unwrap_or_default(),
        );
        let (r0, b0) = quotas(&blocks[0]);
        let mut chain = vec![w.mint(r0, b0)];
        for b in &blocks[1..] {
            let (r, bu) = quotas(b);
            let next = if r.is_empty() && bu.is_empty() {
                let keep = Restriction { ttl: Some(86_400), ..Default::default() };
                attenuate(chain.last().unwrap(), &keep, NOW, &mut w.rng).unwrap().token
            } else {
                w.narrow(chain.last().unwrap(), r, bu)
            };
            chain.push(next);
        }
        let mut g = w.guard(true);
        let mut s = MemoryStore::new();
        // model: (block, kind, window) -> used
        let mut used: std::collections::BTreeMap<(usize, u8, u64), u64> = Default::default();
        let mut times: Vec<u64> = calls.iter().map(|c| c.1).collect();
        times.sort_unstable();
        for (i, ((who, _, pays, amount), at)) in calls.iter().zip(times).enumerate() {
            let who = who % chain.len();
            let now = NOW + at;
            let body = if *pays {
                call(i as u64, "pay", json!({"amount": amount}))
            } else {
                call(i as u64, "db_query", json!({}))
            };
            let mut charges = Vec::new();
            for (b, q) in blocks.iter().enumerate().take(who + 1) {
                if let Some((max, period)) = q.rate {
                    charges.push(((b, 0u8, now - now % period), 1, max));
                }
                if let (Some((max, period)), true) = (q.budget, *pays) {
                    charges.push(((b, 1u8, now - now % period), *amount, max));
                }
            }
            let fits = charges.iter().all(|(k, a, max)| used.get(k).copied().unwrap_or(0) + a <= *max);
            let o = g.run(&mut s, &input(&chain[who], body), now);
            prop_assert_eq!(o.allowed, fits, "call {} by token {} at +{}: {:?}", i, who, at, code(&o));
            if fits {
                for (k, a, _) in charges {
                    *used.entry(k).or_default() += a;
                }
            } else {
                let c = code(&o).unwrap();
                prop_assert!(c == "rate_limited" || c == "budget_exceeded", "{}", c);
                prop_assert!(o.headers.contains_key("Retry-After"));
            }
        }
        // the invariant the model encodes, stated directly: no window of any block holds more than its max
        for ((b, kind, _), n) in &used {
            let max = if *kind == 0 { blocks[*b].rate.unwrap().0 } else { blocks[*b].budget.unwrap().0 };
            prop_assert!(*n <= max);
        }
    }
}
