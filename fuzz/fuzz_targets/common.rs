//! Shared by the fuzz targets: a fixed key, a fixed clock, and the tokens
//! the fuzzer mutates from.
#![allow(dead_code)]

use base64::Engine as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const NOW: u64 = 1_800_000_000;

pub struct Fixture {
    pub private_key: String,
    pub public_key: String,
    /// A root token and a 2-hop token with argument limits.
    pub tokens: Vec<String>,
}

pub fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let keys = mcpvault::keygen(&mut rng);
        let grant = mcpvault::Grant::new(["db_query", "file_read"], 3600, "issuer", "agent");
        let root = mcpvault::mint(&keys.private_key, &grant, NOW, &mut rng).expect("mint");
        let r = mcpvault::Restriction {
            tools: Some(vec!["db_query".into()]),
            arg_limits: vec![mcpvault::ArgLimit::from_spec("db_query.max_rows<=100").expect("spec")],
            ..Default::default()
        };
        let hop = mcpvault::attenuate(&root, &r, NOW, &mut rng).expect("attenuate").token;
        Fixture {
            private_key: keys.private_key.clone(),
            public_key: keys.public_key.clone(),
            tokens: vec![root, hop],
        }
    })
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// Every error must carry a documented code.
pub fn check_error(e: &mcpvault::Error) {
    assert!(
        mcpvault::ERROR_CODES.contains(&e.code()),
        "undocumented code {}",
        e.code()
    );
    let _ = (e.to_string(), e.detail(), e.failed_check());
}
