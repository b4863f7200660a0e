//! Profiling target: `verify_loop DEPTH N [datalog|cached]` verifies one
//! token of DEPTH attenuation blocks N times (cold by default). BENCHMARKS.md
//! shows how to run it under `valgrind --tool=callgrind`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use mcpvault::{verify_with_limits, Limits, Verifier};

#[path = "../benches/fixture/mod.rs"]
mod fixture;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let depth: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let n: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let mode = args.get(3).map_or("cold", String::as_str);
    let f = fixture::fixture(&[depth]);
    let (now, keys, request) = (fixture::NOW, &f, &f.request);
    let token = &f.tokens.first().unwrap().1;
    let limits = Limits {
        always_datalog: mode == "datalog",
        ..Limits::default()
    };
    let mut cached = Verifier::with_cache(limits.clone(), 4);
    for _ in 0..n {
        let r = if mode == "cached" {
            cached.verify(token, &keys.public_key, request, now)
        } else {
            verify_with_limits(token, &keys.public_key, request, now, &limits)
        };
        r.unwrap();
    }
}
