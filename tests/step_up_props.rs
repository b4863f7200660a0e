//! Pins and approvals only narrow: random chains in which every block may pin tools to random definition hashes and
//! require approvals of random approvers, against random calls (a random current definition, approvals by a random
//! set of keys, some of them for another request). Every token of the chain answers exactly as a model in which each
//! block's pins and requirements are one more condition: a call passes only when the current definition hashes to
//! every pin of its tool and every requirement on its tool has enough distinct listed approvers of this very request.
//! Since a block can only add conditions, no attenuation makes a refused call pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use mcpvault::approval::{approve, Requirement};
use mcpvault::proof::{request_hash, Call};
use mcpvault::{attenuate, inspect, keygen, mint, verify, Grant, KeyPairHex, Request, Restriction};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000;
const TOOLS: [&str; 2] = ["pay", "send"];

fn hash(i: u8) -> String {
    format!("{:064x}", u64::from(i) + 1)
}

/// One block's additions: pins (tool index, hash index) and requirements (tool index, approver bit set, needed).
#[derive(Debug, Clone)]
struct Block {
    pins: Vec<(usize, u8)>,
    needs: Vec<(usize, u8, u32)>,
}

fn block() -> impl Strategy<Value = Block> {
    (
        proptest::collection::vec((0usize..2, 0u8..3), 0..2),
        proptest::collection::vec((0usize..2, 1u8..8, 1u32..4), 0..2),
    )
        .prop_map(|(pins, needs)| Block {
            pins,
            // needed is at most the number of approvers listed
            needs: needs
                .into_iter()
                .map(|(t, set, n)| (t, set, n.min(set.count_ones())))
                .collect(),
        })
}

/// A call: the tool, the server's current definition (a hash index, or none), who approves this request, and
/// who approves another one (their approvals must not count).
#[derive(Debug, Clone)]
struct Ask {
    tool: usize,
    definition: Option<u8>,
    approvers: u8,
    elsewhere: u8,
}

fn ask() -> impl Strategy<Value = Ask> {
    (0usize..2, proptest::option::of(0u8..3), 0u8..8, 0u8..8).prop_map(
        |(tool, definition, approvers, elsewhere)| Ask {
            tool,
            definition,
            approvers,
            elsewhere,
        },
    )
}

fn keys_of(set: u8, keys: &[KeyPairHex]) -> Vec<String> {
    (0..3)
        .filter(|i| set & (1 << i) != 0)
        .map(|i| keys[i].public_key.clone())
        .collect()
}

fn additions(b: &Block, keys: &[KeyPairHex]) -> (BTreeMap<String, String>, Vec<Requirement>) {
    // a grant or restriction pins a tool once (the last pin given wins)
    let pins: BTreeMap<String, String> = b
        .pins
        .iter()
        .map(|(t, h)| (TOOLS[*t].to_string(), hash(*h)))
        .collect();
    let needs = b
        .needs
        .iter()
        .map(|(t, set, n)| Requirement {
            tool: Some(TOOLS[*t].to_string()),
            approvers: keys_of(*set, keys),
            needed: *n,
        })
        .collect();
    (pins, needs)
}

/// The model: every block's pins and requirements on the tool hold.
fn model(blocks: &[Block], a: &Ask, keys: &[KeyPairHex]) -> bool {
    let by: Vec<String> = keys_of(a.approvers, keys);
    blocks.iter().all(|b| {
        let (pins, needs) = additions(b, keys);
        let pinned_ok = pins
            .get(TOOLS[a.tool])
            .map_or(true, |h| a.definition.map(hash).as_ref() == Some(h));
        let approved = needs
            .iter()
            .filter(|r| r.tool.as_deref() == Some(TOOLS[a.tool]))
            .all(|r| r.approvers.iter().filter(|k| by.contains(k)).count() as u32 >= r.needed);
        pinned_ok && approved
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MCPVAULT_STEP_UP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn pins_and_approvals_only_narrow(
        blocks in proptest::collection::vec(block(), 1..4),
        asks in proptest::collection::vec(ask(), 1..4),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let root = keygen(&mut rng);
        let keys = [keygen(&mut rng), keygen(&mut rng), keygen(&mut rng)];
        let (pins, needs) = additions(&blocks[0], &keys);
        let grant = Grant { pin: pins, require_approval: needs, ..Grant::new(TOOLS, 600, "iss", "sub") };
        let mut tokens = vec![mint(&root.private_key, &grant, NOW, &mut rng).unwrap()];
        for b in &blocks[1..] {
            let (pin, require_approval) = additions(b, &keys);
            let r = Restriction { pin, require_approval, ttl: Some(600), ..Restriction::default() };
            let t = attenuate(tokens.last().unwrap(), &r, NOW, &mut rng).unwrap().token;
            tokens.push(t);
        }
        for (depth, token) in tokens.iter().enumerate() {
            let tid = inspect(token).unwrap().revocation_ids.last().cloned().unwrap();
            for a in &asks {
                let args = serde_json::json!({"amount": 7}).as_object().cloned().unwrap();
                let other = serde_json::json!({"amount": 8}).as_object().cloned().unwrap();
                let call = |arguments| Call { token_id: &tid, method: "tools/call", name: Some(TOOLS[a.tool]), arguments, audience: None };
                let (h, h_other) = (request_hash(&call(&args)), request_hash(&call(&other)));
                let mut approvals: Vec<String> = (0..3)
                    .filter(|i| a.approvers & (1 << i) != 0)
                    .map(|i| approve(&keys[i].private_key, &h, NOW, 60, &mut rng).unwrap())
                    .collect();
                approvals.extend(
                    (0..3)
                        .filter(|i| a.elsewhere & (1 << i) != 0)
                        .map(|i| approve(&keys[i].private_key, &h_other, NOW, 60, &mut rng).unwrap()),
                );
                let request = Request {
                    tool_definition: a.definition.map(hash),
                    approvals,
                    ..Request::tool(TOOLS[a.tool]).with_arguments(args.clone())
                };
                let got = verify(token, &root.public_key, &request, NOW);
                let want = model(&blocks[..=depth], a, &keys);
                prop_assert_eq!(got.is_ok(), want, "depth {}: {:?} -> {:?}", depth, a, got);
                if let Err(e) = got {
                    prop_assert!(
                        matches!(e.code(), "tool_definition_changed" | "approval_required"),
                        "{}", e.code()
                    );
                }
            }
        }
    }
}
