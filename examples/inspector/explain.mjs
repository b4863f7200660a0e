// What the inspector shows, computed from `vault.inspect(token)`: one card per block saying what that hop
// narrowed, and the expiry timeline. Pure functions: no DOM, no clock (now is a parameter); Node tests import it.

const setOf = (xs) => new Set(xs ?? []);

/** "in 5 min", "2 h ago", … between two unix times. */
export function relative(t, now) {
  const d = t - now;
  const a = Math.abs(d);
  const unit = a < 90 ? `${a} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} days`;
  return d >= 0 ? `in ${unit}` : `${unit} ago`;
}

export function isoTime(t) {
  return Number.isFinite(t) ? new Date(t * 1000).toISOString().replace(".000Z", "Z") : "—";
}

function limitText(l) {
  const v = Array.isArray(l.value) ? l.value.map((x) => JSON.stringify(x)).join(", ") : JSON.stringify(l.value);
  const op = { max: "≤", min: "≥", eq: "=", prefix: "starts with", one_of: "one of" }[l.op] ?? l.op;
  return `${l.tool}.${l.arg} ${op} ${l.op === "one_of" ? `[${v}]` : v}`;
}

/**
 * The chain of an inspected token. Each card: the tools this block grants and what is left after it (every block's
 * set intersected), the tools it removed, the tools it named that an earlier block does not grant (no effect: a
 * block cannot widen), its expiry and how much earlier than before it ends, argument limits, audience, max depth,
 * revocation id, Datalog, and checks mcpvault did not write.
 */
export function explainChain(inspection, now) {
  const cards = [];
  let left = null;
  let expiry = Infinity;
  for (const b of inspection.blocks) {
    const own = setOf(b.tools);
    const before = left;
    left = before === null ? [...own] : before.filter((t) => own.has(t));
    const removed = before === null ? [] : before.filter((t) => !own.has(t));
    const ignored = before === null ? [] : [...own].filter((t) => !before.includes(t));
    const exp = Number.isFinite(b.expires_at) ? b.expires_at : null;
    const earlier = exp !== null && Number.isFinite(expiry) && exp < expiry ? expiry - exp : 0;
    const widerTtl = exp !== null && Number.isFinite(expiry) && exp > expiry;
    if (exp !== null) expiry = Math.min(expiry, exp);
    cards.push({
      index: b.index,
      label: b.index === 0 ? "root · issuer" : `hop ${b.index}`,
      tools: [...left].sort(),
      ownTools: [...own].sort(),
      removed: removed.sort(),
      ignored: ignored.sort(),
      expiresAt: exp,
      effectiveExpiresAt: Number.isFinite(expiry) ? expiry : null,
      shortenedBy: earlier,
      ttlNoEffect: widerTtl,
      expired: Number.isFinite(expiry) && now >= expiry,
      argLimits: (b.arg_limits ?? []).map(limitText),
      audiences: b.audiences ?? [],
      maxDepth: b.max_depth ?? null,
      revocationId: b.revocation_id,
      datalog: b.source,
      facts: b.facts ?? [],
      unrecognized: b.unrecognized_checks ?? [],
      thirdParty: b.external_key ?? null,
    });
  }
  const ends = cards.map((c) => c.expiresAt).filter((t) => t !== null);
  return {
    issuer: inspection.issuer,
    subject: inspection.subject,
    depth: inspection.depth,
    tools: inspection.tools,
    expiresAt: inspection.expires_at,
    revocationIds: inspection.revocation_ids,
    cards,
    timeline: timeline(cards, now, ends),
  };
}

/** Positions (0..1) on a line from the earliest of (now, expiries) to the latest, with a little margin. */
function timeline(cards, now, ends) {
  const lo = Math.min(now, ...ends);
  const hi = Math.max(now, ...ends);
  const span = Math.max(hi - lo, 60);
  const at = (t) => 0.04 + (0.92 * (t - lo)) / span;
  return {
    now: { at: at(now), time: now },
    // The binding mark is the block whose expiry is the token's: the earliest.
    marks: cards.filter((c) => c.expiresAt !== null).map((c) => ({
      label: c.expiresAt === Math.min(...ends) ? `${c.label} · token expires` : c.label,
      time: c.expiresAt, at: at(c.expiresAt), binding: c.expiresAt === Math.min(...ends),
    })),
  };
}

/** What a verify answer says about the signature: codes after the signature stage imply it verified. */
export function signatureVerdict(code) {
  if (code === null) return { signature: true, text: "signature verified; the chain is valid at this time" };
  const after = { expired: "but the token has expired", wrong_audience: "but the token is bound to an audience",
    depth_exceeded: "but the chain is deeper than a block allows", check_failed: "but a check refused",
    limits_exceeded: null, tool_not_allowed: "", argument_not_allowed: "" };
  if (code in after && after[code] !== null) return { signature: true, text: `signature verified, ${after[code]}`.replace(/, $/, "") };
  const text = { bad_signature: "signature does not verify with this key", invalid_key: "this is not an Ed25519 public key (64 hex characters)",
    malformed_token: "the token cannot be decoded", limits_exceeded: "the token exceeds the verifier's limits" }[code];
  return { signature: false, text: text ?? code };
}
