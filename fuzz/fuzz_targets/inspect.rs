//! Token decoding: arbitrary bytes as a token (base64-encoded, so the fuzzer
//! explores protobuf, not base64) and as text. inspect never panics, never
//! overflows the stack, and every error has a documented code.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    for token in [
        common::b64(data),
        String::from_utf8_lossy(data).into_owned(),
    ] {
        match mcpvault::inspect(&token) {
            Ok(i) => assert!(!i.verified),
            Err(e) => common::check_error(&e),
        }
    }
});
