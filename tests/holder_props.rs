//! Holder binding as an attacker would try it: random chains in which random parties (the holder, a thief, a new
//! holder) append blocks, binding or not, signing or not. Whatever the chain, a call verifies only with a proof signed
//! by the key a legitimate chain of holders ends with; a rebinding not signed by the current holder makes the token
//! malformed; a proof by anyone else is `bad_proof`. Binding only narrows: a bound token never allows a call its
//! unbound parent refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcpvault::proof::{sign_call, Call};
use mcpvault::{
    attenuate, attenuate_as_holder, inspect, keygen, mint, verify, Grant, Request, Restriction,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const NOW: u64 = 1_800_000_000;

/// Who appends a block: 0 anyone, unsigned; 1 the current holder, signing; 2 a thief, signing with its own key.
/// And whether the block binds a new holder: none, the thief, or the next legitimate key.
#[derive(Debug, Clone, Copy)]
struct Hop {
    by: u8,
    binds: u8,
    narrow: bool,
}

fn hop() -> impl Strategy<Value = Hop> {
    (0u8..3, 0u8..3, any::<bool>()).prop_map(|(by, binds, narrow)| Hop { by, binds, narrow })
}

fn proof(key: &str, token: &str, tool: &str, rng: &mut ChaCha20Rng) -> String {
    let tid = inspect(token)
        .unwrap()
        .revocation_ids
        .last()
        .cloned()
        .unwrap();
    let args = serde_json::Map::new();
    let call = Call {
        token_id: &tid,
        method: "tools/call",
        name: Some(tool),
        arguments: &args,
        audience: None,
    };
    sign_call(key, &call, NOW, rng).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("MCPVAULT_HOLDER_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn only_the_legitimate_holder_signs_and_binding_only_narrows(
        bound_at_mint in any::<bool>(),
        hops in proptest::collection::vec(hop(), 0..4),
        seed in any::<u64>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let issuer = keygen(&mut rng);
        let thief = keygen(&mut rng);
        let keys: Vec<_> = (0..5).map(|_| keygen(&mut rng)).collect();
        let grant = Grant {
            holder: bound_at_mint.then(|| keys[0].public_key.clone()),
            ..Grant::new(["db_query", "file_read"], 3600, "i", "s")
        };
        let mut token = mint(&issuer.private_key, &grant, NOW, &mut rng).unwrap();
        // the model: the current holder's key pair (none: a bearer token), whether the chain is still sound, the tools
        let mut holder = bound_at_mint.then(|| keys[0].clone());
        let mut next_key = usize::from(bound_at_mint);
        let mut sound = true;
        let mut tools = vec!["db_query", "file_read"];
        for h in &hops {
            let bind_to = match h.binds {
                1 => Some(thief.clone()),
                2 if next_key < keys.len() => Some(keys[next_key].clone()),
                _ => None,
            };
            let r = Restriction {
                holder: bind_to.as_ref().map(|k| k.public_key.clone()),
                tools: h.narrow.then(|| vec!["db_query".to_string()]),
                ttl: Some(3000),
                ..Default::default()
            };
            let signer = match (h.by, &holder) {
                (1, Some(k)) => Some(k.clone()),
                (2, _) => Some(thief.clone()),
                _ => None,
            };
            let out = match &signer {
                None => attenuate(&token, &r, NOW, &mut rng),
                Some(k) => attenuate_as_holder(&token, &r, &k.private_key, NOW, &mut rng),
            };
            let signer_ok = match (&signer, &holder) {
                (Some(s), Some(cur)) => s.public_key == cur.public_key,
                _ => true,
            };
            let rebinding_unsigned = bind_to.is_some() && holder.is_some() && signer.is_none();
            if !signer_ok || rebinding_unsigned {
                // the API refuses to write it
                prop_assert!(out.is_err(), "{:?} should be refused by attenuate", h);
                if let (Some(b), true) = (&bind_to, rebinding_unsigned) {
                    // a thief writes the block anyway with biscuit-auth: the chain becomes malformed
                    let t = biscuit_auth::UnverifiedBiscuit::from_base64(&token).unwrap();
                    let kp = biscuit_auth::KeyPair::new_with_rng(biscuit_auth::builder::Algorithm::Ed25519, &mut rng);
                    let block = biscuit_auth::builder::BlockBuilder::new()
                        .code(format!("holder(\"{}\");", b.public_key))
                        .unwrap();
                    token = t.append_with_keypair(&kp, block).unwrap().to_base64().unwrap();
                    sound = false;
                    break;
                }
                continue;
            }
            token = out.unwrap().token;
            if h.narrow {
                tools = vec!["db_query"];
            }
            if let Some(b) = bind_to {
                if b.public_key != thief.public_key {
                    next_key += 1;
                }
                holder = Some(b);
            }
        }
        let call = |proof: Option<String>, tool: &str| {
            verify(&token, &issuer.public_key, &Request { proof, ..Request::tool(tool) }, NOW)
        };
        if !sound {
            prop_assert_eq!(call(None, "db_query").unwrap_err().code(), "malformed_token");
            return Ok(());
        }
        let Some(cur) = holder else {
            prop_assert!(call(None, "db_query").is_ok());
            return Ok(());
        };
        prop_assert_eq!(call(None, "db_query").unwrap_err().code(), "proof_required");
        for other in keys.iter().chain([&thief]).filter(|k| k.public_key != cur.public_key) {
            let p = proof(&other.private_key, &token, "db_query", &mut rng);
            prop_assert_eq!(call(Some(p), "db_query").unwrap_err().code(), "bad_proof");
        }
        let good = proof(&cur.private_key, &token, "db_query", &mut rng);
        prop_assert!(call(Some(good), "db_query").is_ok());
        // binding never widens: a tool the chain narrowed away stays refused with a good proof
        let fr = proof(&cur.private_key, &token, "file_read", &mut rng);
        let r = call(Some(fr), "file_read");
        prop_assert_eq!(r.is_ok(), tools.contains(&"file_read"), "{:?}", r);
    }
}
