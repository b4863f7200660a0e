//! Attenuate an issuer's token with an arbitrary restriction (JSON). If it
//! succeeds, the result never allows a tool or a time the parent refuses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let Ok(r) = serde_json::from_slice::<mcpvault::Restriction>(data) else {
        return;
    };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    for parent in &f.tokens {
        match mcpvault::attenuate(parent, &r, common::NOW, &mut rng) {
            Ok(child) => {
                let p = mcpvault::inspect(parent).expect("parent");
                let c = mcpvault::inspect(&child.token).expect("child");
                assert!(c.tools.iter().all(|t| p.tools.contains(t)), "tools widened");
                assert!(c.expires_at <= p.expires_at, "expiry widened");
                for tool in ["db_query", "file_read", "admin"] {
                    let req = mcpvault::Request::tool(tool);
                    let later = common::NOW + 100;
                    if mcpvault::verify(&child.token, &f.public_key, &req, later).is_ok() {
                        assert!(
                            mcpvault::verify(parent, &f.public_key, &req, later).is_ok(),
                            "the child allows {tool}, the parent does not"
                        );
                    }
                }
            }
            Err(e) => common::check_error(&e),
        }
    }
});
