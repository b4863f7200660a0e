//! The verified-chain cache never accepts what a cold verify would refuse.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use base64::Engine;
use mcpvault::{attenuate, mint, verify, Grant, Limits, Request, Restriction, Verifier};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE;

fn token(seed: u64, ttl: u64) -> (String, mcpvault::KeyPairHex) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant::new(["db_query", "file_read"], ttl, "i", "s");
    (
        mint(&keys.private_key, &grant, NOW, &mut rng).unwrap(),
        keys,
    )
}

fn flip(token: &str, at: usize) -> String {
    let mut b = B64.decode(token).unwrap();
    let i = at % b.len();
    b[i] ^= 0x04;
    B64.encode(b)
}

#[test]
fn hits_reuse_the_chain_and_rerun_the_authorizer() {
    let (t, keys) = token(1, 600);
    let mut v = Verifier::with_cache(Limits::default(), 16);
    v.verify(&t, &keys.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    // same chain, another request: the authorizer still refuses
    let err = v
        .verify(&t, &keys.public_key, &Request::tool("admin"), NOW)
        .unwrap_err();
    assert_eq!(err.code(), "tool_not_allowed");
    let s = v.cache_stats();
    assert_eq!((s.hits, s.misses, s.entries), (1, 1, 1));
}

#[test]
fn a_tampered_twin_of_a_cached_token_is_refused() {
    let (t, keys) = token(2, 600);
    let mut v = Verifier::with_cache(Limits::default(), 16);
    v.verify(&t, &keys.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    let len = B64.decode(&t).unwrap().len();
    for at in (0..len).step_by(7) {
        let twin = flip(&t, at);
        let err = v
            .verify(&twin, &keys.public_key, &Request::tool("db_query"), NOW)
            .unwrap_err();
        common::assert_refused_opaquely(&err, &format!("byte {at}"));
    }
    // the original is still served from the cache
    v.verify(&t, &keys.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    assert!(v.cache_stats().hits >= 1);
}

#[test]
fn expiry_passes_while_cached() {
    let (t, keys) = token(3, 60);
    let mut v = Verifier::with_cache(Limits::default(), 16);
    v.verify(&t, &keys.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    let err = v
        .verify(&t, &keys.public_key, &Request::tool("db_query"), NOW + 60)
        .unwrap_err();
    assert_eq!(err.code(), "expired");
    assert_eq!(
        v.cache_stats().hits,
        1,
        "the expiry was decided on a cache hit"
    );
}

#[test]
fn another_root_key_misses() {
    let (t, keys) = token(4, 600);
    let (_, other) = token(5, 600);
    let mut v = Verifier::with_cache(Limits::default(), 16);
    v.verify(&t, &keys.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    let err = v
        .verify(&t, &other.public_key, &Request::tool("db_query"), NOW)
        .unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    assert_eq!(v.cache_stats().hits, 0);
}

#[test]
fn the_cache_is_bounded_and_least_recently_used() {
    let mut v = Verifier::with_cache(Limits::default(), 3);
    let tokens: Vec<_> = (10..15).map(|s| token(s, 600)).collect();
    let (t0, k0) = &tokens[0];
    for (t, k) in &tokens {
        v.verify(t, &k.public_key, &Request::tool("db_query"), NOW)
            .unwrap();
        // keep the first one recently used
        v.verify(t0, &k0.public_key, &Request::tool("db_query"), NOW)
            .unwrap();
    }
    assert_eq!(v.cache_stats().entries, 3);
    let hits = v.cache_stats().hits;
    v.verify(t0, &k0.public_key, &Request::tool("db_query"), NOW)
        .unwrap();
    assert_eq!(
        v.cache_stats().hits,
        hits + 1,
        "the recently used token stayed"
    );
}

#[test]
fn every_vector_twice_through_a_cached_verifier() {
    let cases = common::vector_cases();
    let mut v = Verifier::with_cache(Limits::default(), 1024);
    for pass in 0..2 {
        for (name, c) in &cases {
            let (token, key, req, now) = common::case_call(c);
            let got = common::answer(v.verify(&token, &key, &req, now));
            assert_eq!(got, c["expect"], "pass {pass}: {name}");
        }
    }
    assert!(v.cache_stats().hits > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any interleaving of valid, tampered and re-keyed tokens, tools and
    /// times gets the same answer from a cached verifier as from a cold one.
    #[test]
    fn cached_and_cold_verifiers_agree(ops in proptest::collection::vec((0usize..4, 0usize..3, any::<bool>(), 0u64..200, 0usize..2000), 1..40)) {
        let (t0, k0) = token(20, 100);
        let (t1, k1) = token(21, 150);
        let mut rng = ChaCha20Rng::seed_from_u64(22);
        let t2 = attenuate(&t1, &Restriction { tools: Some(vec!["file_read".into()]), ..Default::default() }, NOW, &mut rng).unwrap().token;
        let keys = [k0.public_key.clone(), k1.public_key.clone()];
        let tokens = [t0.clone(), t1.clone(), t2];
        let mut cached = Verifier::with_cache(Limits::default(), 2);
        for (ti, tool, tamper, dt, at) in ops {
            let token = if ti == 3 { flip(&tokens[0], at) } else { tokens[ti].clone() };
            let token = if tamper { flip(&token, at) } else { token };
            let key = &keys[at % 2];
            let req = Request::tool(["db_query", "file_read", "admin"][tool]);
            let cold = verify(&token, key, &req, NOW + dt).map_err(|e| e.code());
            let warm = cached.verify(&token, key, &req, NOW + dt).map_err(|e| e.code());
            prop_assert_eq!(cold, warm);
        }
    }
}
