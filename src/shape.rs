//! What a token's Datalog can cost, read from its bytes before biscuit-auth
//! touches it.
//!
//! biscuit-auth checks its fact, iteration and time limits only *between*
//! rounds of rule application, so a single round is unbounded: a 48 KB block
//! with 3,000 facts and one two-way join derives 9 million facts (tens of
//! seconds, gigabytes) before `max_facts` is looked at. And printing or
//! parsing a deeply nested expression recurses once per level, so a block of
//! a thousand nested negations overflows the stack.
//!
//! So every token is decoded here first, with `prost`, into biscuit's own
//! protobuf schema, and three things are enforced before any Datalog runs:
//!
//! 1. **Canonical bytes.** Re-encoding the decoded message must give the
//!    input back. Protobuf skips unknown fields, so without this check some
//!    single-bit flips (a field tag turned into an unknown one) decode to the
//!    very same token: a tampered token would verify. See `SCHEMA.md`.
//! 2. **Nesting.** No expression or term nests deeper than
//!    [`MAX_NESTING`]: printing, parsing and evaluating stay far from the
//!    stack's end on every host (wasm stacks are 1 MiB).
//! 3. **Work.** [`Shape::work`] is an upper bound on the units of work the
//!    authorizer can do for one request: every fact scanned, every join
//!    combination, every expression operation. A token over
//!    `Limits::max_work` is `limits_exceeded` without being evaluated.
//!
//! The bound is deliberately coarse (predicates are told apart by arity only,
//! every scope is assumed to see every fact) so that it is easy to check and
//! never too low. Tokens mcpvault writes hold no rules and cost a few
//! thousand units; the default limit is a million.

use std::collections::BTreeMap;

use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::format::schema;
use prost::Message;

use crate::error::{Error, Result};

/// The deepest expression or term accepted. Tokens mcpvault writes nest at
/// most 4 levels; stock Biscuit tooling rarely goes past 10.
pub const MAX_NESTING: usize = 64;

/// A predicate: its name and arity.
type Pred = (String, usize);

/// The Datalog of a token, reduced to what its evaluation can cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Facts written in the token, by predicate.
    facts: BTreeMap<Pred, u64>,
    /// Rules (evaluated every round) and check queries (evaluated once).
    rules: Vec<Query>,
    queries: Vec<Query>,
    /// The token's length in bytes: no term in it is larger.
    token_len: u64,
    /// A block is third-party signed.
    third_party: bool,
}

/// One rule or check query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    /// `None` for a check query.
    head: Option<Pred>,
    body: Vec<Pred>,
    /// Expression operations evaluated per combination.
    ops: u64,
    /// Operations whose cost grows with the size of their operands
    /// (concatenation, set algebra, regex, `contains` on a string…).
    sized_ops: u64,
    /// Operations inside closures (`.all`, `.any`), run once per element.
    closure_ops: u64,
}

/// Decodes `bytes` as a Biscuit token and checks it is canonical and
/// shallow; returns its shape and its blocks, authority first. The
/// signatures are not checked here: use the blocks only once biscuit-auth
/// has verified the same bytes.
pub(crate) fn read(bytes: &[u8]) -> Result<(Shape, Vec<schema::Block>)> {
    let outer =
        schema::Biscuit::decode(bytes).map_err(|e| Error::malformed(format!("protobuf: {e}")))?;
    if outer.encode_to_vec() != bytes {
        return Err(Error::malformed(
            "the token's bytes are not the canonical encoding of its content",
        ));
    }
    let mut shape = Shape {
        token_len: bytes.len() as u64,
        ..Shape::default()
    };
    // biscuit-auth's own symbol tables (as `ops::raw_blocks` builds them):
    // first-party blocks share one, a third-party block has its own
    let mut first_party = SymbolTable::new();
    let mut blocks = Vec::with_capacity(outer.blocks.len() + 1);
    for (i, signed) in std::iter::once(&outer.authority)
        .chain(&outer.blocks)
        .enumerate()
    {
        let block = schema::Block::decode(signed.block.as_slice())
            .map_err(|e| Error::malformed(format!("block {i}: protobuf: {e}")))?;
        let symbols_err = |e| Error::malformed(format!("block {i}: symbols: {e}"));
        let own = SymbolTable::from(block.symbols.clone()).map_err(symbols_err)?;
        if signed.external_signature.is_some() {
            shape.third_party = true;
            shape.add_block(i, &block, &own)?;
        } else {
            first_party.extend(&own).map_err(symbols_err)?;
            shape.add_block(i, &block, &first_party)?;
        }
        blocks.push(block);
    }
    Ok((shape, blocks))
}

impl Shape {
    /// Whether a block is third-party signed.
    pub(crate) fn third_party(&self) -> bool {
        self.third_party
    }

    fn add_block(
        &mut self,
        index: usize,
        block: &schema::Block,
        symbols: &SymbolTable,
    ) -> Result<()> {
        let bad = |what: String| Error::LimitsExceeded {
            detail: format!("block {index}: {what}"),
        };
        let pred = |p: &schema::Predicate| {
            symbols
                .get_symbol(p.name)
                .map(str::to_string)
                .map(|n| (n, p.terms.len()))
                .ok_or_else(|| {
                    Error::malformed(format!("block {index}: unknown symbol {}", p.name))
                })
        };
        for fact in &block.facts {
            if fact
                .predicate
                .terms
                .iter()
                .any(|t| term_depth(t) > MAX_NESTING)
            {
                return Err(bad(format!(
                    "a fact's term nests deeper than {MAX_NESTING} levels"
                )));
            }
            *self.facts.entry(pred(&fact.predicate)?).or_default() += 1;
        }
        let read = |rule: &schema::Rule, is_rule: bool| -> Result<Query> {
            let mut q = query(rule).map_err(|b| match b {
                Bad::Deep => bad(format!(
                    "an expression or term nests deeper than {MAX_NESTING} levels"
                )),
                Bad::Malformed => Error::malformed(format!(
                    "block {index}: an expression does not build one value"
                )),
            })?;
            q.head = if is_rule {
                Some(pred(&rule.head)?)
            } else {
                None
            };
            q.body = rule.body.iter().map(pred).collect::<Result<_>>()?;
            Ok(q)
        };
        for rule in &block.rules {
            self.rules.push(read(rule, true)?);
        }
        for check in &block.checks {
            for q in &check.queries {
                self.queries.push(read(q, false)?);
            }
        }
        Ok(())
    }

    /// An upper bound on the authorizer's work for one request: `verifier`
    /// holds the facts the verifier adds (predicate, arity, count), `longest`
    /// the length of its longest string, under `max_facts` and
    /// `max_iterations`.
    pub(crate) fn work(
        &self,
        verifier: &[(&str, usize, u64)],
        longest: u64,
        max_facts: u64,
        max_iterations: u64,
    ) -> u128 {
        let recursive = self.recursive();
        let rounds = if recursive {
            u128::from(max_iterations.max(1))
        } else {
            self.rules.len() as u128 + 1
        };
        // Without rules the counts are the token's facts plus the verifier's: read them where they are rather than
        // building `counts`' map (cloned keys) on every verify, cached or not. The same numbers: saturating sums do
        // not depend on their order, and the verifier's predicates are distinct.
        let n = (!self.rules.is_empty()).then(|| self.counts(verifier, max_facts));
        let count = |p: &Pred| -> u64 {
            match &n {
                Some(n) => get(n, p),
                None => verifier
                    .iter()
                    .filter(|(name, arity, _)| *name == p.0 && *arity == p.1)
                    .fold(self.facts.get(p).copied().unwrap_or(0), |a, (_, _, c)| {
                        a.saturating_add(*c)
                    }),
            }
        };
        let total: u64 = match &n {
            Some(n) => n.values().fold(0, |a, c| a.saturating_add(*c)),
            None => self
                .facts
                .values()
                .chain(verifier.iter().map(|(_, _, c)| c))
                .fold(0, |a, c| a.saturating_add(*c)),
        };
        let largest = self.token_len.max(longest);
        let cost = |q: &Query| -> u128 {
            // biscuit scans every fact in scope for each body predicate, once
            // per binding of the predicates before it.
            let mut prefix: u128 = 1;
            let mut scanned: u128 = 0;
            for p in &q.body {
                scanned = scanned.saturating_add(prefix.saturating_mul(u128::from(total)));
                prefix = prefix.saturating_mul(u128::from(count(p)));
            }
            let per = 1u128
                .saturating_add(u128::from(q.ops))
                .saturating_add(
                    u128::from(q.sized_ops).saturating_mul(u128::from(largest / 256 + 1)),
                )
                .saturating_add(
                    u128::from(q.closure_ops).saturating_mul(u128::from(self.token_len)),
                );
            scanned.saturating_add(prefix.saturating_mul(per))
        };
        let per_round: u128 = self.rules.iter().map(cost).fold(0, u128::saturating_add);
        let checks: u128 = self
            .queries
            .iter()
            .map(cost)
            .fold(0, u128::saturating_add)
            .saturating_add(u128::from(total)); // the policy
        rounds.saturating_mul(per_round).saturating_add(checks)
    }

    /// How many facts of each predicate the authorizer can hold: the token's,
    /// the verifier's, and at most what the rules derive.
    fn counts(&self, verifier: &[(&str, usize, u64)], max_facts: u64) -> BTreeMap<Pred, u64> {
        let mut n = self.facts.clone();
        for (name, arity, count) in verifier {
            let c = n.entry(((*name).to_string(), *arity)).or_default();
            *c = c.saturating_add(*count);
        }
        // Facts rules derive: recursive rules may fill the authorizer up to
        // max_facts; otherwise each rule adds at most its combinations.
        let recursive = self.recursive();
        if recursive {
            for h in self.rules.iter().filter_map(|r| r.head.as_ref()) {
                n.insert(h.clone(), max_facts);
            }
        } else {
            // Without a cycle, a head's count is what the token and the
            // verifier state plus every rule deriving it can make from the
            // counts of its body; a pass per rule reaches the fixpoint.
            let base = n.clone();
            for _ in 0..self.rules.len() {
                let mut next = base.clone();
                for r in &self.rules {
                    if let Some(h) = &r.head {
                        let made = u64::try_from(combinations(&n, &r.body)).unwrap_or(u64::MAX);
                        let e = next.entry(h.clone()).or_default();
                        *e = e.saturating_add(made);
                    }
                }
                for r in &self.rules {
                    if let Some(h) = &r.head {
                        if let Some(e) = next.get_mut(h) {
                            *e = (*e).min(max_facts.max(get(&base, h)));
                        }
                    }
                }
                n = next;
            }
        }
        n
    }

    /// Whether some rule can feed itself, directly or through other rules.
    fn recursive(&self) -> bool {
        self.rules
            .iter()
            .filter_map(|r| r.head.as_ref())
            .any(|start| {
                let mut seen: Vec<&Pred> = vec![start];
                let mut frontier: Vec<&Pred> = vec![start];
                while let Some(p) = frontier.pop() {
                    for r in self.rules.iter().filter(|r| r.body.contains(p)) {
                        if let Some(h) = &r.head {
                            if h == start {
                                return true;
                            }
                            if !seen.contains(&h) {
                                seen.push(h);
                                frontier.push(h);
                            }
                        }
                    }
                }
                false
            })
    }
}

fn get(counts: &BTreeMap<Pred, u64>, p: &Pred) -> u64 {
    counts.get(p).copied().unwrap_or(0)
}

fn combinations(n: &BTreeMap<Pred, u64>, body: &[Pred]) -> u128 {
    body.iter()
        .fold(1u128, |p, b| p.saturating_mul(u128::from(get(n, b))))
}

/// Reads a rule or query's expressions (predicates are filled in by the
/// caller).
fn query(rule: &schema::Rule) -> Result<Query, Bad> {
    let terms = std::iter::once(&rule.head)
        .chain(&rule.body)
        .flat_map(|p| &p.terms);
    for t in terms {
        if term_depth(t) > MAX_NESTING {
            return Err(Bad::Deep);
        }
    }
    let mut q = Query {
        head: None,
        body: Vec::new(),
        ops: 0,
        sized_ops: 0,
        closure_ops: 0,
    };
    for e in &rule.expressions {
        expression_depth(&e.ops, &mut q, false)?;
    }
    Ok(q)
}

/// Why an expression is refused.
enum Bad {
    /// It nests deeper than [`MAX_NESTING`].
    Deep,
    /// Its operations do not build one value (an operator without operands,
    /// values left over, no operation at all, an empty operation).
    Malformed,
}

/// The depth of the expression tree `ops` (postfix) builds, counting its
/// operations into `q` on the way.
fn expression_depth(ops: &[schema::Op], q: &mut Query, in_closure: bool) -> Result<usize, Bad> {
    use schema::op::Content;
    use schema::op_binary::Kind as B;
    use schema::op_unary::Kind as U;
    let mut stack: Vec<usize> = Vec::new();
    let mut deepest = 0;
    for op in ops {
        let count = |q: &mut Query, sized: bool| {
            if in_closure {
                q.closure_ops = q.closure_ops.saturating_add(1);
            } else if sized {
                q.sized_ops = q.sized_ops.saturating_add(1);
            } else {
                q.ops = q.ops.saturating_add(1);
            }
        };
        let depth = match &op.content {
            Some(Content::Value(t)) => {
                count(q, false);
                term_depth(t)
            }
            Some(Content::Unary(u)) => {
                count(q, u.kind == U::Length as i32);
                stack.pop().ok_or(Bad::Malformed)?.saturating_add(1)
            }
            Some(Content::Binary(b)) => {
                let sized = [
                    B::Add,
                    B::Contains,
                    B::Prefix,
                    B::Suffix,
                    B::Regex,
                    B::Intersection,
                    B::Union,
                    B::Equal,
                    B::NotEqual,
                    B::HeterogeneousEqual,
                    B::HeterogeneousNotEqual,
                    B::Get,
                    B::All,
                    B::Any,
                ]
                .iter()
                .any(|k| *k as i32 == b.kind);
                count(q, sized);
                let r = stack.pop().ok_or(Bad::Malformed)?;
                let l = stack.pop().ok_or(Bad::Malformed)?;
                l.max(r).saturating_add(1)
            }
            Some(Content::Closure(c)) => {
                count(q, false);
                expression_depth(&c.ops, q, true)?.saturating_add(1)
            }
            None => return Err(Bad::Malformed),
        };
        if depth > MAX_NESTING {
            return Err(Bad::Deep);
        }
        deepest = deepest.max(depth);
        stack.push(depth);
    }
    // biscuit-auth prints such an expression with `unwrap` (a panic the
    // fuzzer found through inspect) and cannot evaluate it: refuse it here
    if stack.len() != 1 {
        return Err(Bad::Malformed);
    }
    Ok(deepest)
}

/// Nesting depth of a term (sets, arrays and maps hold terms).
fn term_depth(t: &schema::Term) -> usize {
    use schema::term::Content;
    // prost refuses messages nested deeper than 100, so this recursion is
    // bounded by the decoder.
    1 + match &t.content {
        Some(Content::Set(s)) => s.set.iter().map(term_depth).max().unwrap_or(0),
        Some(Content::Array(a)) => a.array.iter().map(term_depth).max().unwrap_or(0),
        Some(Content::Map(m)) => m
            .entries
            .iter()
            .map(|e| term_depth(&e.value))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(name: &str, arity: usize) -> Pred {
        (name.to_string(), arity)
    }

    fn query(head: Option<Pred>, body: Vec<Pred>) -> Query {
        Query {
            head,
            body,
            ops: 0,
            sized_ops: 0,
            closure_ops: 0,
        }
    }

    /// Two rules deriving the same predicate add up: `p` can hold 20 facts
    /// (10 from `n`, 10 from `m`), so a check joining `p` with itself can
    /// bind 400 pairs, not 100.
    #[test]
    fn rules_with_one_head_add_up() {
        let shape = Shape {
            facts: [(pred("n", 1), 10), (pred("m", 1), 10)].into(),
            rules: vec![
                query(Some(pred("p", 1)), vec![pred("n", 1)]),
                query(Some(pred("p", 1)), vec![pred("m", 1)]),
            ],
            queries: vec![query(None, vec![pred("p", 1), pred("p", 1)])],
            token_len: 100,
            third_party: false,
        };
        assert!(!shape.recursive());
        assert_eq!(shape.counts(&[], 10_000).get(&pred("p", 1)), Some(&20));
        let work = shape.work(&[], 0, 10_000, 200);
        // the check alone: 20 x 20 bindings, each at least one unit
        assert!(work >= 400, "{work}");
    }

    /// A rule feeding itself may fill the authorizer: every round of
    /// `max_iterations` is charged.
    #[test]
    fn a_recursive_rule_is_charged_every_round() {
        let shape = Shape {
            facts: [(pred("e", 2), 10)].into(),
            rules: vec![query(
                Some(pred("path", 2)),
                vec![pred("path", 2), pred("e", 2)],
            )],
            queries: vec![],
            token_len: 100,
            third_party: false,
        };
        assert!(shape.recursive());
        let work = shape.work(&[], 0, 10_000, 200);
        assert!(work >= 200 * 10_000 * 10, "{work}");
    }
}
