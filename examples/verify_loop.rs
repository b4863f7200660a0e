//! Profiling target: `verify_loop DEPTH N [datalog|cached]` verifies one
//! token of DEPTH attenuation blocks N times (cold by default). BENCHMARKS.md
//! shows how to run it under `valgrind --tool=callgrind`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use mcpvault::{
    attenuate, mint, verify_with_limits, ArgLimit, Grant, Limits, Request, Restriction, Verifier,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let depth: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let n: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let mode = args.get(3).map_or("cold", String::as_str);
    let now = 1_800_000_000;
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant {
        audience: Some("mcp.example.com".into()),
        arg_limits: vec![ArgLimit::from_spec("db_query.max_rows<=1000").unwrap()],
        ..Grant::new(
            ["db_query", "file_read", "search"],
            3600,
            "auth-server",
            "agent-a",
        )
    };
    let mut token = mint(&keys.private_key, &grant, now, &mut rng).unwrap();
    for hop in 1..=depth {
        let r = Restriction {
            ttl: Some(3600 - hop * 60),
            ..Default::default()
        };
        token = attenuate(&token, &r, now, &mut rng).unwrap().token;
    }
    let request = Request {
        audience: Some("mcp.example.com".into()),
        arguments: serde_json::json!({"max_rows": 5})
            .as_object()
            .unwrap()
            .clone(),
        ..Request::tool("db_query")
    };
    let limits = Limits {
        always_datalog: mode == "datalog",
        ..Limits::default()
    };
    let mut cached = Verifier::with_cache(limits.clone(), 4);
    for _ in 0..n {
        let r = if mode == "cached" {
            cached.verify(&token, &keys.public_key, &request, now)
        } else {
            verify_with_limits(&token, &keys.public_key, &request, now, &limits)
        };
        r.unwrap();
    }
}
