//! mcpvault: capability tokens for MCP tool calls.
//!
//! An issuer [`mint`]s an Ed25519-signed Biscuit token granting tools, a ttl,
//! an issuer and a subject, and optionally an audience, a max delegation
//! depth and argument limits. Any holder can [`attenuate`] it offline; each
//! block only narrows. An MCP server [`verify`]s it with the issuer's public
//! key for one tool call and gets [`AuthorizedFacts`] or a typed [`Error`].
//! [`inspect`] shows a token's content without a key.
//!
//! The crate is pure: time (unix seconds) and randomness are parameters, so
//! the same core runs natively, as a WebAssembly component and in the npm
//! build. `SCHEMA.md` documents every fact, check and error code.
//!
//! ```
//! use mcpvault::{attenuate, keygen, mint, verify, Grant, Request, Restriction};
//! # fn main() -> Result<(), mcpvault::Error> {
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
//! # use rand_core::SeedableRng;
//! let keys = keygen(&mut rng);
//! let now = 1_800_000_000;
//! let grant = Grant::new(["db_query", "file_read"], 3600, "auth-server", "agent-a");
//! let token = mint(&keys.private_key, &grant, now, &mut rng)?;
//! let narrow = Restriction { tools: Some(vec!["db_query".into()]), ttl: Some(300), ..Default::default() };
//! let delegated = attenuate(&token, &narrow, now, &mut rng)?.token;
//!
//! let facts = verify(&delegated, &keys.public_key, &Request::tool("db_query"), now)?;
//! assert_eq!(facts.tools, ["db_query"]);
//! assert_eq!(facts.expires_at, now + 300);
//!
//! let refused = verify(&delegated, &keys.public_key, &Request::tool("file_read"), now).unwrap_err();
//! assert_eq!(refused.code(), "tool_not_allowed");
//! # Ok(()) }
//! ```

pub mod approval;
/// Argument paths and the values derived from arguments (public for the fuzz targets; SCHEMA.md documents them).
#[doc(hidden)]
pub mod args;
pub mod audit;
mod cache;
mod error;
pub mod guard;
mod model;
mod ops;
pub mod pin;
pub mod policy;
pub mod proof;
pub mod quota;
pub mod redis;
pub mod schema;
mod shape;
pub mod state;
pub mod text;

pub use cache::{CacheStats, Verifier};
pub use error::{rpc_code_of_status, status_of_code, Error, Result, ERROR_CODES};
pub use model::unix_time;
pub use model::{
    ArgLimit, ArgRule, Attenuated, AuthorizedFacts, Bound, Float, Grant, KeyPairHex, Request,
    Restriction, Scalar, MAX_ARG_LIMITS, MAX_EXPIRES_AT, MAX_NAME_LEN, MAX_ONE_OF,
    MAX_REQUEST_ARGS, MAX_TOOLS, MAX_VALUE_LEN, TOOLS_CALL,
};
#[doc(hidden)]
pub use ops::signature_floor;
pub use ops::{
    attenuate, attenuate_as_holder, inspect, keygen, mint, parse_private_key, parse_public_key,
    public_key_of, verify, verify_with_limits, BlockInfo, Inspection, Limits, MAX_TIME_LIMIT,
};

/// The README's Rust examples run as doc tests, so they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}
