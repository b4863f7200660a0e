//! The parsers behind the argument constraints (issue 20): paths, URLs, IP
//! addresses, globs, argument paths. Invariants, not only "no panic":
//! normalising a path is idempotent and leaves no `.`/`..`/empty segment;
//! a parsed URL's host is ASCII lower case with no userinfo; a network's
//! text and bits round-trip; a glob's regex reads back as the glob; an
//! argument path's canonical text parses back to itself. Then a token with
//! one limit of each type verifies the fuzzed value the same way directly and
//! in biscuit-auth's Datalog engine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcpvault::args;
use rand_core::SeedableRng;

#[path = "common.rs"]
mod common;

thread_local! {
    static VERIFIERS: std::cell::RefCell<[mcpvault::Verifier; 2]> = std::cell::RefCell::new([
        mcpvault::Verifier::with_cache(mcpvault::Limits::default(), 8),
        mcpvault::Verifier::with_cache(mcpvault::Limits { always_datalog: true, ..mcpvault::Limits::default() }, 8),
    ]);
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = args::normal_path(s) {
        assert_eq!(args::normal_path(&p).as_deref(), Some(p.as_str()));
        assert!(p.starts_with('/'));
        assert!(p == "/" || !p.ends_with('/'));
        assert!(
            p == "/"
                || !p
                    .split('/')
                    .skip(1)
                    .any(|seg| seg.is_empty() || seg == "." || seg == ".."),
            "{p}"
        );
    }
    if let Some(u) = args::url_parts(s) {
        assert!(
            u.host.is_ascii() && !u.host.contains('@') && u.host == u.host.to_ascii_lowercase(),
            "{u:?}"
        );
    }
    if let Ok(p) = args::UrlPattern::parse(s) {
        let again = args::UrlPattern::parse(&p.text()).expect("canonical pattern parses");
        assert_eq!(again, p);
    }
    if let Ok(bits) = args::cidr_bits(s) {
        let text = args::cidr_text(&bits).expect("bits print");
        assert_eq!(
            args::cidr_bits(&text).expect("canonical network parses"),
            bits
        );
    }
    if let Some(bits) = args::ip_bits(s) {
        assert_eq!(bits.len(), 128);
    }
    if let Ok(re) = args::glob_regex(s) {
        assert_eq!(args::regex_glob(&re).as_deref(), Some(s));
    }
    if let Ok(p) = args::ArgPath::parse(s) {
        assert_eq!(
            args::ArgPath::parse(&p.text()).expect("canonical path parses"),
            p
        );
    }

    // every type, decided on the fuzzed value, directly and by the engine
    let f = common::fixture();
    static TOKENS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tokens = TOKENS.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        [
            mcpvault::ArgRule::Under("/srv/public".into()),
            mcpvault::ArgRule::Url("https://*.example.com/v1".into()),
            mcpvault::ArgRule::Cidr("10.0.0.0/8".into()),
            mcpvault::ArgRule::Glob("staging-*".into()),
            mcpvault::ArgRule::Matches("^[a-z]+$".into()),
        ]
        .into_iter()
        .map(|rule| {
            let r = mcpvault::Restriction {
                arg_limits: vec![mcpvault::ArgLimit {
                    tool: "db_query".into(),
                    arg: "x".into(),
                    rule,
                }],
                ..Default::default()
            };
            mcpvault::attenuate(&f.tokens[0], &r, common::NOW, &mut rng)
                .expect("attenuates")
                .token
        })
        .collect()
    });
    for token in tokens {
        let args = serde_json::json!({ "x": s })
            .as_object()
            .cloned()
            .unwrap_or_default();
        let req = mcpvault::Request::tool("db_query").with_arguments(args);
        // cached verifiers: the signatures are checked once, the limits on every input
        let (direct, engine) = VERIFIERS.with(|v| {
            let mut v = v.borrow_mut();
            let [direct, engine] = &mut *v;
            let mut run = |x: &mut mcpvault::Verifier| {
                x.verify(token, &f.public_key, &req, common::NOW)
                    .map(|_| ())
                    .map_err(|e| e.code())
            };
            (run(direct), run(engine))
        });
        assert_eq!(direct, engine, "{s:?}");
    }
});
