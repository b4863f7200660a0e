//! The CLI's `--arg TOOL.ARG<op>VALUE` parser (ArgLimit::from_spec). A parsed
//! limit either attenuates or is refused as invalid_request; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    match mcpvault::ArgLimit::from_spec(spec) {
        Ok(limit) => {
            let f = common::fixture();
            let r = mcpvault::Restriction {
                arg_limits: vec![limit],
                ..Default::default()
            };
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
            if let Err(e) = mcpvault::attenuate(&f.tokens[0], &r, common::NOW, &mut rng) {
                assert_eq!(e.code(), "invalid_request", "{e}");
            }
        }
        Err(e) => assert_eq!(e.code(), "invalid_request"),
    }
});
