//! Property tests for the argument constraints of issue 20 (`under`, `url`,
//! `cidr`, `glob`, `matches`, number bounds, nested paths, `[*]`, lengths).
//!
//! For a random chain of restrictions, each adding random limits, and random
//! calls whose arguments come from pools of hostile values:
//! - the chain never allows a call that a single-block token carrying every
//!   one of the chain's limits refuses, nor one that any single limit alone
//!   refuses (attenuation only narrows), and allows exactly what they allow;
//! - the direct evaluation and biscuit-auth's Datalog engine agree;
//! - every limit reads back (inspect) exactly as it was written, canonically.
//!
//! Also resources and prompts (issue 15): the same narrowing, and no holder
//! block ever opens what the issuer did not grant.
//!
//! 300 chains by default; MCPVAULT_PROP_CASES sets the number.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::{
    attenuate, inspect, mint, verify, verify_with_limits, ArgLimit, ArgRule, Bound, Float, Grant,
    Limits, Request, Restriction, Scalar,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;
const TOOLS: [&str; 2] = ["t", "u"];

fn cases() -> u32 {
    std::env::var("MCPVAULT_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(|n: u32| (n / 10).max(50))
        .unwrap_or(300)
}

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &[T]) -> impl Strategy<Value = T> {
    proptest::sample::select(items.to_vec())
}

const STRINGS: &[&str] = &[
    "/srv/public/a.txt",
    "/srv/public",
    "/srv/publicity/a",
    "/srv/public/../private/k",
    "/srv/public/%2e%2e/x",
    "/srv/./public//b/",
    "/etc/passwd",
    "/",
    "srv/public",
    "/srv/public/\u{FF0E}\u{FF0E}/x",
    "https://api.example.com/v1/x",
    "https://example.com/",
    "https://evilexample.com/",
    "https://api.example.com@evil.net/",
    "https://api.example.com:8443/v1",
    "http://api.example.com/v1/../admin",
    "https://api.example.com./",
    "https://x.api.example.com/v10",
    "10.1.2.3",
    "::ffff:10.1.2.3",
    "11.0.0.1",
    "010.0.0.1",
    "2001:db8::1",
    "10.1",
    "staging-eu",
    "prod-staging",
    "a",
    "b",
    "report",
    "",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        5 => pick(STRINGS).prop_map(|s| json!(s)),
        2 => pick(&[-1.5f64, -0.0, 0.0, 1.0, 99.5, 99.51, 100.0, 1e300]).prop_map(|f| json!(f)),
        2 => pick(&[-3i64, 0, 2, 5, 99, 100, 101]).prop_map(|i| json!(i)),
        1 => Just(json!(9_007_199_254_740_993u64)),
        1 => Just(json!(true)),
        1 => Just(Value::Null),
    ]
}

fn array() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => proptest::collection::vec(pick(&["a", "b", "c", "staging-x"]).prop_map(|s| json!(s)), 0..4)
            .prop_map(Value::Array),
        1 => proptest::collection::vec(value(), 0..4).prop_map(Value::Array),
        1 => value(),
    ]
}

/// Arguments: `p` and `q` (any value), `n` (a number or anything), `items`
/// (an array or anything) and `cfg.mode` (nested).
fn arguments() -> impl Strategy<Value = Map<String, Value>> {
    (value(), value(), value(), array(), value(), any::<bool>()).prop_map(
        |(p, q, n, items, mode, nest)| {
            let mut m = Map::new();
            for (k, v) in [("p", p), ("q", q), ("n", n), ("items", items)] {
                if !v.is_null() {
                    m.insert(k.into(), v);
                }
            }
            m.insert(
                "cfg".into(),
                if nest { json!({ "mode": mode }) } else { mode },
            );
            m
        },
    )
}

fn rule() -> impl Strategy<Value = (String, ArgRule)> {
    let s = |v: &str| Scalar::Str(v.into());
    let string_rules = prop_oneof![
        pick(&["/srv", "/srv/public", "/"]).prop_map(|b| ArgRule::Under(b.into())),
        pick(&[
            "https://*.example.com",
            "https://api.example.com/v1",
            "https://api.example.com:8443",
            "http://*.api.example.com/v1",
        ])
        .prop_map(|u| ArgRule::Url(u.into())),
        pick(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "::/0",
            "2001:db8::/32",
            "0.0.0.0/0"
        ])
        .prop_map(|c| ArgRule::Cidr(c.into())),
        pick(&["staging-*", "*", "?", "/srv/*"]).prop_map(|g| ArgRule::Glob(g.into())),
        pick(&["^[a-z]+$", "example", "^/srv/public/"]).prop_map(|m| ArgRule::Matches(m.into())),
        pick(&["/srv/public", "https://api.", "10."]).prop_map(|p| ArgRule::Prefix(p.into())),
        pick(&["a", "report", "10.1.2.3"]).prop_map(move |v| ArgRule::Eq(s(v))),
    ];
    let number_rules = prop_oneof![
        pick(&[-1.0f64, 0.0, -0.0, 99.5, 100.5]).prop_map(|f| ArgRule::Max(Bound::Float(Float(f)))),
        pick(&[-1.0f64, 0.0, 99.5]).prop_map(|f| ArgRule::Min(Bound::Float(Float(f)))),
        pick(&[0i64, 5, 100]).prop_map(|i| ArgRule::Max(Bound::Int(i))),
        pick(&[0i64, 5, 100]).prop_map(|i| ArgRule::Min(Bound::Int(i))),
    ];
    let each_rules = prop_oneof![
        Just(ArgRule::OneOf(vec![s("a"), s("b")])),
        Just(ArgRule::Eq(s("a"))),
        Just(ArgRule::Glob("staging-*".into())),
        Just(ArgRule::Prefix("a".into())),
        Just(ArgRule::Max(Bound::Int(5))),
    ];
    prop_oneof![
        3 => (pick(&["p", "q", "cfg.mode"]), string_rules)
            .prop_map(|(a, r)| (a.to_string(), r)),
        2 => (pick(&["n", "p"]), number_rules).prop_map(|(a, r)| (a.to_string(), r)),
        2 => each_rules.prop_map(|r| ("items[*]".to_string(), r)),
        1 => pick(&[0u32, 1, 2, 3]).prop_map(|n| ("items".to_string(), ArgRule::MaxItems(n))),
        1 => pick(&[1u32, 2]).prop_map(|n| ("items".to_string(), ArgRule::MinItems(n))),
    ]
}

fn limit() -> impl Strategy<Value = ArgLimit> {
    (pick(&TOOLS), rule()).prop_map(|(tool, (arg, rule))| ArgLimit {
        tool: tool.into(),
        arg,
        rule,
    })
}

fn request(tool: &str, args: &Map<String, Value>) -> Request {
    Request::tool(tool).with_arguments(args.clone())
}

fn allowed(token: &str, pk: &str, req: &Request) -> Result<(), &'static str> {
    verify(token, pk, req, NOW + 1)
        .map(|_| ())
        .map_err(|e| e.code())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn constraints_only_narrow(
        hops in proptest::collection::vec(proptest::collection::vec(limit(), 1..3), 1..4),
        calls in proptest::collection::vec((pick(&TOOLS), arguments()), 6),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys = mcpvault::keygen(&mut rng);
        let pk = keys.public_key.clone();
        let mint_with = |limits: Vec<ArgLimit>, rng: &mut ChaCha20Rng| {
            let mut g = Grant::new(TOOLS, 3600, "iss", "sub");
            g.arg_limits = limits;
            mint(&keys.private_key, &g, NOW, rng).unwrap()
        };
        // the chain: a root with no limits, then one block per hop
        let mut chain = mint_with(Vec::new(), &mut rng);
        for limits in &hops {
            let r = Restriction { arg_limits: limits.clone(), ..Default::default() };
            chain = attenuate(&chain, &r, NOW, &mut rng).unwrap().token;
        }
        let all: Vec<ArgLimit> = hops.iter().flatten().cloned().collect();
        let single = mint_with(all.clone(), &mut rng);
        let alone: Vec<String> = all.iter().map(|l| mint_with(vec![l.clone()], &mut rng)).collect();

        // every limit reads back canonically, as written
        let read: Vec<ArgLimit> = inspect(&chain).unwrap().blocks.iter().flat_map(|b| b.arg_limits.clone()).collect();
        let mut written = all.clone();
        written.sort();
        written.dedup();
        let mut read_sorted = read.clone();
        read_sorted.sort();
        read_sorted.dedup();
        prop_assert_eq!(read_sorted, written);
        prop_assert!(inspect(&chain).unwrap().blocks.iter().all(|b| b.unrecognized_checks.is_empty()));

        let datalog = Limits { always_datalog: true, ..Limits::default() };
        for (tool, args) in &calls {
            let req = request(tool, args);
            let by_chain = allowed(&chain, &pk, &req);
            let by_single = allowed(&single, &pk, &req);
            prop_assert_eq!(by_chain, by_single, "chain vs one block, {} {:?}", tool, args);
            if by_chain.is_ok() {
                for t in &alone {
                    prop_assert!(allowed(t, &pk, &req).is_ok(), "a limit alone refuses what the chain allowed: {} {:?}", tool, args);
                }
            } else {
                prop_assert_eq!(by_chain, Err("argument_not_allowed"));
            }
            let engine = verify_with_limits(&chain, &pk, &req, NOW + 1, &datalog).map(|_| ()).map_err(|e| e.code());
            prop_assert_eq!(by_chain, engine, "direct vs Datalog, {} {:?}", tool, args);
        }
    }
}

const URIS: &[&str] = &[
    "file:///docs/a.md",
    "file:///docs/public/b",
    "file:///docsX",
    "file:///secret",
    "db://eu/public",
    "db://eu/public/x",
    "db://us/private",
];
const PATTERNS: &[&str] = &[
    "file:///docs/",
    "file:///docs/public/",
    "db://*/public",
    "file:///*",
    "db://eu/*",
];
const PROMPTS: &[&str] = &["summarize", "translate", "exfiltrate"];

fn glob_ok(pattern: &str, uri: &str) -> bool {
    let glob = if pattern.contains(['*', '?']) {
        pattern.to_string()
    } else {
        format!("{pattern}*")
    };
    let re = mcpvault::args::glob_regex(&glob).unwrap();
    mcpvault::args::is_match(&re, uri)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Resources and prompts (issue 15): a read is allowed exactly when the
    /// issuer granted (or the server opened) and every block that names
    /// resources has a matching pattern; attenuation never widens, and a
    /// holder's block can never open what the issuer closed.
    #[test]
    fn resources_and_prompts_only_narrow(
        root_resources in proptest::option::of(proptest::collection::vec(pick(PATTERNS), 1..3)),
        root_prompts in proptest::option::of(proptest::collection::vec(pick(PROMPTS), 1..3)),
        hops in proptest::collection::vec((
            proptest::option::of(proptest::collection::vec(pick(PATTERNS), 0..3)),
            proptest::option::of(proptest::collection::vec(pick(PROMPTS), 0..3)),
        ), 0..3),
        open in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let keys = mcpvault::keygen(&mut rng);
        let mut g = Grant::new(["t"], 3600, "iss", "sub");
        g.resources = root_resources.clone().unwrap_or_default().into_iter().map(String::from).collect();
        g.prompts = root_prompts.clone().unwrap_or_default().into_iter().map(String::from).collect();
        let mut token = mint(&keys.private_key, &g, NOW, &mut rng).unwrap();
        let mut blocks = vec![(root_resources.clone(), root_prompts.clone())];
        for (r, p) in &hops {
            if r.is_none() && p.is_none() {
                continue;
            }
            let rest = Restriction {
                resources: r.clone().map(|v| v.into_iter().map(String::from).collect()),
                prompts: p.clone().map(|v| v.into_iter().map(String::from).collect()),
                ..Default::default()
            };
            token = attenuate(&token, &rest, NOW, &mut rng).unwrap().token;
            blocks.push((r.clone(), p.clone()));
        }
        let datalog = Limits { always_datalog: true, ..Limits::default() };
        for uri in URIS {
            let model = (root_resources.is_some() || open)
                && blocks.iter().all(|(r, _)| r.as_ref().map_or(true, |ps| ps.iter().any(|p| glob_ok(p, uri))));
            let req = Request { method: "resources/read".into(), resource: Some(uri.to_string()), open_resources: open, ..Request::default() };
            let got = verify(&token, &keys.public_key, &req, NOW + 1).map(|_| ()).map_err(|e| e.code());
            let engine = verify_with_limits(&token, &keys.public_key, &req, NOW + 1, &datalog).map(|_| ()).map_err(|e| e.code());
            prop_assert_eq!(&got, &engine, "direct vs Datalog {}", uri);
            prop_assert_eq!(got.is_ok(), model, "{} {:?}", uri, blocks);
            if let Err(code) = got {
                prop_assert_eq!(code, "resource_not_allowed");
            }
        }
        for name in PROMPTS {
            let model = (root_prompts.is_some() || open)
                && blocks.iter().all(|(_, p)| p.as_ref().map_or(true, |ns| ns.contains(name)));
            let req = Request { method: "prompts/get".into(), prompt: Some(name.to_string()), open_prompts: open, ..Request::default() };
            let got = verify(&token, &keys.public_key, &req, NOW + 1).map(|_| ()).map_err(|e| e.code());
            let engine = verify_with_limits(&token, &keys.public_key, &req, NOW + 1, &datalog).map(|_| ()).map_err(|e| e.code());
            prop_assert_eq!(&got, &engine, "direct vs Datalog {}", name);
            prop_assert_eq!(got.is_ok(), model, "{} {:?}", name, blocks);
        }
    }
}
