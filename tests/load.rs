//! No false `limits_exceeded` under load: two threads on the 2-core machine
//! each verify honest tokens (0 to 3 hops, argument limits, arguments) cold,
//! 100,000 times in all per thread by default (`MCPVAULT_LOAD_VERIFIES=N` to
//! change), while the other thread competes for the cores. Every verify must
//! give the honest answer; a single `limits_exceeded` fails the test.
//!
//! Before the work bound (src/shape.rs) the only guard against slow Datalog
//! was a 100 ms clock, which a descheduled thread can overrun; now hostile
//! Datalog is refused before evaluation and the clock is a 1 s backstop.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::{attenuate, mint, verify, ArgLimit, ArgRule, Grant, Request, Restriction};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn tokens() -> (String, Vec<String>) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant {
        audience: Some("mcp.example.com".into()),
        ..Grant::new(["db_query", "file_read", "search"], 3600, "auth", "agent")
    };
    let mut t = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    let mut all = vec![t.clone()];
    for hop in 0..3 {
        let r = Restriction {
            ttl: Some(3000 - hop * 100),
            arg_limits: vec![ArgLimit {
                tool: "db_query".into(),
                arg: "max_rows".into(),
                rule: ArgRule::Max(mcpvault::Bound::Int(
                    1000 - i64::try_from(hop).unwrap() * 100,
                )),
            }],
            ..Default::default()
        };
        t = attenuate(&t, &r, NOW, &mut rng).unwrap().token;
        all.push(t.clone());
    }
    (keys.public_key.clone(), all)
}

#[test]
#[ignore = "release build: `make test-load` (cargo test --release --test load -- --ignored)"]
fn two_loops_of_honest_verifies_never_hit_a_limit() {
    let n: usize = std::env::var("MCPVAULT_LOAD_VERIFIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (pk, tokens) = tokens();
    let request = Request {
        audience: Some("mcp.example.com".into()),
        arguments: json!({"max_rows": 50, "query": "select 1", "dry": false})
            .as_object()
            .unwrap()
            .clone(),
        ..Request::tool("db_query")
    };
    let started = std::time::Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let loops: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut ok, mut limited) = (0usize, 0usize);
                    for i in 0..n {
                        let t = &tokens[i % tokens.len()];
                        match verify(t, &pk, &request, NOW + (i % 100) as u64) {
                            Ok(facts) => {
                                assert!(facts.tools.iter().any(|t| t == "db_query"));
                                ok += 1;
                            }
                            Err(e) if e.code() == "limits_exceeded" => limited += 1,
                            Err(e) => panic!("an honest token was refused: {e}"),
                        }
                    }
                    (ok, limited)
                })
            })
            .collect();
        loops.into_iter().map(|l| l.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    println!(
        "2 x {n} cold verifies in {elapsed:?} ({:.0} µs each per thread): {results:?} (allowed, limits_exceeded)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    for (ok, limited) in results {
        assert_eq!(limited, 0, "false limits_exceeded under load");
        assert_eq!(ok, n);
    }
}
