//! Hostile Datalog: blocks built with biscuit-auth directly (huge fact sets,
//! joins, recursive rules, deep expressions and terms, huge strings) are
//! refused with `limits_exceeded` before they are evaluated, without a stack
//! overflow, and the verifier's memory stays bounded: a counting allocator
//! measures the peak of live bytes while each one is verified. Times are
//! printed as figures (`cargo test --test hostile -- --nocapture`), not
//! asserted; `make bench` prints them for a release build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use biscuit_auth::builder::{
    Algorithm, BlockBuilder, Check, CheckKind, Expression, Fact, Op, Predicate, Rule, Term, Unary,
};
use biscuit_auth::{KeyPair, UnverifiedBiscuit};
use cap::Cap;
use mcpvault::{inspect, mint, verify, Grant, Request, Restriction};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Counts live bytes; while a token is verified, allocating more than
/// [`PEAK_BUDGET`] beyond what was live fails (and aborts the test binary).
#[global_allocator]
static ALLOC: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

/// The limit is process-wide: each test holds this for its whole body.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

const NOW: u64 = 1_800_000_000;
/// The most verify, inspect and attenuate may hold at once, beyond what was
/// live before.
/// A token is at most 64 KiB; everything the verifier builds from it is a
/// small multiple of that.
const PEAK_BUDGET: usize = 16 << 20;

fn root() -> (ChaCha20Rng, mcpvault::KeyPairHex, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let keys = mcpvault::keygen(&mut rng);
    let grant = Grant::new(["db_query", "file_read"], 3600, "auth-server", "agent-a");
    let token = mint(&keys.private_key, &grant, NOW, &mut rng).unwrap();
    (rng, keys, token)
}

/// The root token with `block` appended by plain biscuit-auth.
fn with_block(block: BlockBuilder) -> (mcpvault::KeyPairHex, String) {
    let (mut rng, keys, token) = root();
    let t = UnverifiedBiscuit::from_base64(&token).unwrap();
    let kp = KeyPair::new_with_rng(Algorithm::Ed25519, &mut rng);
    let t = t.append_with_keypair(&kp, block).unwrap();
    (keys, t.to_base64().unwrap())
}

fn var(v: &str) -> Term {
    Term::Variable(v.into())
}

fn pred(name: &str, terms: Vec<Term>) -> Predicate {
    Predicate::new(name.into(), terms)
}

fn check(body: Vec<Predicate>, ops: Vec<Op>) -> Check {
    let expressions = if ops.is_empty() {
        vec![]
    } else {
        vec![Expression { ops }]
    };
    Check {
        queries: vec![Rule::new(pred("q", vec![]), body, expressions, vec![])],
        kind: CheckKind::One,
    }
}

fn facts(mut b: BlockBuilder, name: &str, n: i64) -> BlockBuilder {
    for i in 0..n {
        b = b
            .fact(Fact::new(name.into(), vec![Term::Integer(i)]))
            .unwrap();
    }
    b
}

/// Verifies (and inspects, and attenuates) `token` under the allocation
/// cap; returns the verify error code, and prints the time and the bytes
/// allocated.
fn measure(name: &str, keys: &mcpvault::KeyPairHex, token: &str) -> String {
    let before = ALLOC.total_allocated();
    ALLOC
        .set_limit(ALLOC.allocated() + PEAK_BUDGET)
        .expect("set the cap");
    let t = Instant::now();
    let result = verify(token, &keys.public_key, &Request::tool("db_query"), NOW);
    let took = t.elapsed();
    let _ = inspect(token);
    let _ = mcpvault::attenuate(
        token,
        &Restriction {
            ttl: Some(5),
            ..Default::default()
        },
        NOW,
        &mut ChaCha20Rng::seed_from_u64(1),
    );
    ALLOC.set_limit(usize::MAX).expect("lift the cap");
    let code = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.code().to_string(),
    };
    println!(
        "{name}: {} KiB token -> {code} in {took:?} (verify, inspect, attenuate: {} KiB allocated in all)",
        token.len() / 1024,
        (ALLOC.total_allocated() - before) / 1024
    );
    if let Err(e) = &result {
        assert!(!e.detail().is_empty());
    }
    code
}

#[test]
fn a_big_join_in_one_round_is_refused_before_evaluation() {
    let _one = one_at_a_time();
    // 3,000 facts and one two-way join: 9 million facts in the first round,
    // before biscuit-auth looks at max_facts (tens of seconds, gigabytes).
    let b = facts(BlockBuilder::new(), "n", 3000)
        .rule(Rule::new(
            pred("p", vec![var("a"), var("b")]),
            vec![pred("n", vec![var("a")]), pred("n", vec![var("b")])],
            vec![],
            vec![],
        ))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("join 3000x3000", &keys, &t), "limits_exceeded");
}

#[test]
fn a_big_join_in_a_check_is_refused() {
    let _one = one_at_a_time();
    // no rule at all: a check query joining 4 copies of 200 facts
    let n = |v: &str| pred("n", vec![var(v)]);
    let b = facts(BlockBuilder::new(), "n", 200)
        .check(check(vec![n("a"), n("b"), n("c"), n("d")], vec![]))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("check join 200^4", &keys, &t), "limits_exceeded");
}

#[test]
fn recursive_rules_are_bounded() {
    let _one = one_at_a_time();
    let b = facts(BlockBuilder::new(), "n", 100)
        .rule(Rule::new(
            pred("r", vec![var("a")]),
            vec![pred("r", vec![var("a")]), pred("n", vec![var("a")])],
            vec![],
            vec![],
        ))
        .unwrap()
        .rule(Rule::new(
            pred("r", vec![var("a")]),
            vec![pred("n", vec![var("a")])],
            vec![],
            vec![],
        ))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("recursive", &keys, &t), "limits_exceeded");
}

#[test]
fn deep_expressions_are_refused_without_overflowing_the_stack() {
    let _one = one_at_a_time();
    // A thousand nested negations overflowed the stack (biscuit-auth prints
    // and parses them recursively) before the nesting limit.
    for n in [65usize, 1_000, 20_000] {
        let mut ops = vec![Op::Value(Term::Bool(true))];
        ops.extend(std::iter::repeat(Op::Unary(Unary::Negate)).take(n));
        let b = BlockBuilder::new().check(check(vec![], ops)).unwrap();
        let (keys, t) = with_block(b);
        assert_eq!(
            measure(&format!("{n} nested negations"), &keys, &t),
            "limits_exceeded"
        );
    }
}

#[test]
fn nesting_up_to_the_limit_verifies() {
    let _one = one_at_a_time();
    // 63 negations on a value: 64 levels, the most accepted. An even count
    // of negations leaves `true`; the check passes.
    let mut ops = vec![Op::Value(Term::Bool(true))];
    ops.extend(std::iter::repeat(Op::Unary(Unary::Negate)).take(62));
    ops.push(Op::Unary(Unary::Parens));
    let b = BlockBuilder::new().check(check(vec![], ops)).unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("64 levels", &keys, &t), "ok");
}

/// Nested terms cannot get past the protobuf decoder's recursion limit of
/// 100 messages (a level of array is two), so [`MAX_NESTING`] is never the
/// limit that stops them; the deepest array biscuit-auth can build verifies.
#[test]
fn nested_terms_are_bounded_by_the_decoder() {
    let _one = one_at_a_time();
    let mut term = Term::Integer(1);
    for _ in 0..45 {
        term = Term::Array(vec![term]);
    }
    let b = BlockBuilder::new()
        .fact(Fact::new("deep".into(), vec![term]))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("array nested 45", &keys, &t), "ok");
}

fn concat_check(s: &str, times: usize) -> Check {
    let mut ops = vec![Op::Value(Term::Str(s.to_string()))];
    for _ in 0..times {
        ops.push(Op::Value(Term::Str(s.to_string())));
        ops.push(Op::Binary(biscuit_auth::builder::Binary::Add));
    }
    ops.push(Op::Value(Term::Str(String::new())));
    ops.push(Op::Binary(biscuit_auth::builder::Binary::NotEqual));
    check(vec![pred("n", vec![var("a")])], ops)
}

#[test]
fn huge_strings_are_bounded() {
    let _one = one_at_a_time();
    // Two 20 KB strings concatenated 8 times for each of 1,000 bindings:
    // charged by size, over the work limit.
    let s = "x".repeat(20_000);
    let b = facts(BlockBuilder::new(), "n", 1000)
        .check(concat_check(&s, 1))
        .unwrap()
        .check(concat_check(&s, 7))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("string concat x1000", &keys, &t), "limits_exceeded");
    // Under the limit it is evaluated, in bounded time and memory.
    let s = "x".repeat(40_000);
    let b = facts(BlockBuilder::new(), "n", 300)
        .check(concat_check(&s, 8))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("string concat x300", &keys, &t), "ok");
    // and a token over the size limit is refused before decoding
    let big = BlockBuilder::new()
        .fact(Fact::new("s".into(), vec![Term::Str("y".repeat(70_000))]))
        .unwrap();
    let (keys, t) = with_block(big);
    assert_eq!(measure("70 KB string", &keys, &t), "limits_exceeded");
}

#[test]
fn honest_foreign_datalog_still_verifies() {
    let _one = one_at_a_time();
    // Stock tooling may add rules and checks of its own: a modest rule and a
    // join over a few facts verify.
    let b = facts(BlockBuilder::new(), "n", 50)
        .rule(Rule::new(
            pred("allowed", vec![var("t")]),
            vec![pred("request_tool", vec![var("t")])],
            vec![],
            vec![],
        ))
        .unwrap()
        .check(check(
            vec![pred("n", vec![var("a")]), pred("n", vec![var("b")])],
            vec![],
        ))
        .unwrap();
    let (keys, t) = with_block(b);
    assert_eq!(measure("honest foreign", &keys, &t), "ok");
}
