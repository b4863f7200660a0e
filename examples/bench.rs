//! Prints medians of mint, attenuate, verify and inspect. `make bench`.
//!
//! Each figure is the median of 5 runs; a run times N operations and divides.
//! Figures, not assertions: speed targets live here, not in timed tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use mcpvault::{attenuate, inspect, mint, verify, Grant, Request, Restriction};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000;

fn median_us(n: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    runs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    runs[2]
}

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant {
        audience: Some("mcp.example.com".into()),
        max_depth: Some(16),
        ..Grant::new(
            ["db_query", "file_read", "search"],
            3600,
            "auth-server",
            "agent-a",
        )
    };
    let root = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    let mut chains = vec![(0usize, root.clone())];
    let mut t = root.clone();
    for hop in 1..=10 {
        t = attenuate(
            &t,
            &Restriction {
                ttl: Some(3600 - hop as u64),
                ..Default::default()
            },
            NOW,
            &mut rng,
        )
        .unwrap()
        .token;
        if [1, 5, 10].contains(&hop) {
            chains.push((hop, t.clone()));
        }
    }
    let req = Request::tool("db_query").with_audience("mcp.example.com");

    println!("{:<28} {:>10}", "operation", "median µs");
    println!(
        "{:<28} {:>10.1}",
        "keygen",
        median_us(200, || {
            mcpvault::keygen(&mut rng);
        })
    );
    println!(
        "{:<28} {:>10.1}",
        "mint",
        median_us(200, || {
            mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
        })
    );
    let r = Restriction {
        tools: Some(vec!["db_query".into()]),
        ..Default::default()
    };
    println!(
        "{:<28} {:>10.1}",
        "attenuate (1 hop)",
        median_us(200, || {
            attenuate(&root, &r, NOW, &mut rng).unwrap();
        })
    );
    for (hops, token) in &chains {
        let label = format!("verify ({hops} hops, {} B)", token.len());
        println!(
            "{:<28} {:>10.1}",
            label,
            median_us(200, || {
                verify(token, &keys.public_key, &req, NOW).unwrap();
            })
        );
    }
    for (hops, token) in &chains {
        let mut v = mcpvault::Verifier::with_cache(mcpvault::Limits::default(), 64);
        let label = format!("verify, cached chain ({hops} hops)");
        println!(
            "{:<28} {:>10.1}",
            label,
            median_us(200, || {
                v.verify(token, &keys.public_key, &req, NOW).unwrap();
            })
        );
    }
    let (_, ten) = chains.last().unwrap();
    println!(
        "{:<28} {:>10.1}",
        "inspect (10 hops)",
        median_us(200, || {
            inspect(ten).unwrap();
        })
    );
}
