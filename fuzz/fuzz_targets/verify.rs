//! Verify with an arbitrary token and request. Input: a 2-byte big-endian
//! length, that many token bytes (base64-encoded before verify), then the
//! request as JSON. A token that verifies must be byte-identical to a token
//! the issuer made: the fuzzer holds no key, so anything else it makes must
//! be refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let (len, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return,
    };
    let (token, request) = rest.split_at(len.min(rest.len()));
    let token = common::b64(token);
    let request: mcpvault::Request = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(_) => mcpvault::Request::tool("db_query"),
    };
    match mcpvault::verify(&token, &f.public_key, &request, common::NOW) {
        Ok(facts) => {
            assert!(
                f.tokens.contains(&token),
                "a token the issuer never made verified: {token}"
            );
            assert!(facts.verified);
        }
        Err(e) => common::check_error(&e),
    }
});
