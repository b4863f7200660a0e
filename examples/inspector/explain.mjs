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

// ---- Argument limits in plain words ----

/** A value as a person reads it: plain when unambiguous, else JSON (a string "5" is "\"5\"", the integer 5 is 5). */
function shown(v) {
  if (typeof v !== "string") return JSON.stringify(v);
  return /^[\w./:@*?^$+\[\]-]+$/.test(v) && !/^(true|false|null|-?\d[\d.e+-]*)$/.test(v) ? v : JSON.stringify(v);
}

/** `https://*.example.com:8443/v1` → "https on a subdomain of example.com, port 8443, path /v1 or below". */
function urlWords(pattern) {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(\*\.)?(\[[^\]]+\]|[^/:[\]]+)(?::(\d+))?(\/.*)?$/i.exec(pattern);
  if (!m) return `a URL matching ${pattern}`;
  const [, scheme, wildcard, host, port, path] = m;
  return [`${scheme} on ${wildcard ? `a subdomain of ${host}` : host}`, port ? `port ${port}` : null,
    path ? `path ${path} or below` : null].filter(Boolean).join(", ");
}

/**
 * One limit in plain words. `number`: the limit is a number limit (any JSON number, compared as a double), told from
 * an integer one by its check (`request_arg_num`); JSON has lost the difference for whole values (100.0 reads as 100).
 */
export function limitWords(l, number = typeof l.value === "number" && !Number.isInteger(l.value)) {
  const each = typeof l.arg === "string" && l.arg.endsWith("[*]");
  const arg = each ? l.arg.slice(0, -3) : l.arg;
  const who = each ? `every ${arg} element` : arg;
  const v = l.value;
  const list = Array.isArray(v) ? v.map(shown).join(", ") : shown(v);
  const whole = number ? "" : ", a whole number";
  switch (l.op) {
    case "prefix": return `${who} must start with ${shown(v)}`;
    case "eq": return `${who} must be ${shown(v)}`;
    case "one_of": return `${who} must be one of ${list}`;
    case "max": return `${who} ≤ ${v}${whole}`;
    case "min": return `${who} ≥ ${v}${whole}`;
    case "under": return `${who} must be inside ${v}`;
    case "url": return `${who} must be ${urlWords(String(v))}`;
    case "cidr": return `${who} must be in ${v}`;
    case "glob": return `${who} must match ${shown(v)} (* any text, ? one character)`;
    case "matches": return `${who} must match the pattern ${v}`;
    case "max_items": return `${who} may hold at most ${v} element${v === 1 ? "" : "s"}`;
    case "min_items": return `${who} must hold at least ${v} element${v === 1 ? "" : "s"}`;
    default: return `${who} ${l.op} ${list}`;
  }
}

/** An argument limit's check, as mcpvault writes it (`check if request_tool("T"), request_arg_…`). */
const ARG_CHECK = /^check if request_tool\("[^"]*"\), request_arg_/;

/**
 * A block's argument limits, each with its check: `inspect` lists a block's limits in the order of their checks,
 * so the n-th check mcpvault wrote for a limit is the n-th limit. `null` checks when the two do not line up.
 */
function limitsWithChecks(b) {
  const limits = b.arg_limits ?? [];
  const other = new Set(b.unrecognized_checks ?? []);
  const checks = (b.checks ?? []).filter((c) => ARG_CHECK.test(c) && !other.has(c));
  const lined = checks.length === limits.length;
  return limits.map((l, i) => ({ limit: l, check: lined ? checks[i] : null }));
}

function described({ limit, check }) {
  const number = check ? /, request_arg_num\(/.test(check) : undefined;
  return { ...limit, number: number ?? (typeof limit.value === "number" && !Number.isInteger(limit.value)),
    text: `${limit.tool}: ${limitWords(limit, number)}`, check };
}

/**
 * What refused a dry run, from the error's block and check: the hop, and when the check is one of that hop's argument
 * limits, the limit in plain words. `null` when the error names no block.
 */
export function refusal(inspection, failedBlock, failedCheck) {
  if (failedBlock == null) return null;
  const b = inspection.blocks.find((x) => x.index === failedBlock);
  const hop = failedBlock === 0 ? "root · issuer" : `hop ${failedBlock}`;
  if (!b) return { block: failedBlock, hop, limit: null, text: null };
  const found = limitsWithChecks(b).find((x) => x.check !== null && x.check === failedCheck);
  const limit = found ? described(found) : null;
  const foreign = (b.unrecognized_checks ?? []).includes(failedCheck);
  return { block: failedBlock, hop, limit, foreign,
    text: limit ? `${limit.text} (set by ${hop})` : foreign ? `a check mcpvault did not write (${hop})` : `a check of ${hop}` };
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
    // a block that names no tools (`tools` null: it only adds argument limits, an expiry, …) leaves them as they were
    const restricts = Array.isArray(b.tools);
    const own = setOf(b.tools);
    const before = left;
    left = before === null ? [...own] : restricts ? before.filter((t) => own.has(t)) : [...before];
    const removed = before === null || !restricts ? [] : before.filter((t) => !own.has(t));
    const ignored = before === null || !restricts ? [] : [...own].filter((t) => !before.includes(t));
    const exp = Number.isFinite(b.expires_at) ? b.expires_at : null;
    const earlier = exp !== null && Number.isFinite(expiry) && exp < expiry ? expiry - exp : 0;
    const widerTtl = exp !== null && Number.isFinite(expiry) && exp > expiry;
    if (exp !== null) expiry = Math.min(expiry, exp);
    cards.push({
      index: b.index,
      label: b.index === 0 ? "root · issuer" : `hop ${b.index}`,
      tools: [...left].sort(),
      ownTools: restricts ? [...own].sort() : null,
      removed: removed.sort(),
      ignored: ignored.sort(),
      expiresAt: exp,
      effectiveExpiresAt: Number.isFinite(expiry) ? expiry : null,
      shortenedBy: earlier,
      ttlNoEffect: widerTtl,
      expired: Number.isFinite(expiry) && now >= expiry,
      argLimits: limitsWithChecks(b).map(described).map((l) => l.text),
      limits: limitsWithChecks(b).map(described),
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
