//! What the WIT component and the npm build convert at their boundary,
//! through the same core functions they call: JSON text into a grant, a
//! restriction, a request or its arguments; a host's f64 clock; audit log
//! lines. Every failure is a typed error with a documented code.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = mcpvault::Request::arguments_from_json(&text) {
        common::check_error(&e);
    }
    let f = common::fixture();
    if let Ok(grant) = serde_json::from_str::<mcpvault::Grant>(&text) {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(4);
        match mcpvault::mint(&f.private_key, &grant, common::NOW, &mut rng) {
            Ok(token) => {
                let i = mcpvault::inspect(&token).expect("a minted token inspects");
                assert!(i.tools.iter().all(|t| grant.tools.contains(t)));
            }
            Err(e) => assert_eq!(e.code(), "invalid_request", "{e}"),
        }
    }
    if let Ok(req) = serde_json::from_str::<mcpvault::Request>(&text) {
        if let Err(e) = mcpvault::verify(&f.tokens[1], &f.public_key, &req, common::NOW) {
            common::check_error(&e);
        }
    }
    if let Some(bytes) = data.get(..8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        let now = f64::from_be_bytes(b);
        match mcpvault::unix_time(now) {
            Ok(t) => assert!(t as f64 == now && t <= mcpvault::MAX_EXPIRES_AT),
            Err(e) => assert_eq!(e.code(), "invalid_request"),
        }
    }
    let entries = mcpvault::audit::entries_from_lines(text.lines());
    let _ = mcpvault::audit::audit_verify(&entries);
});
