// The audit tab's model, without the DOM (tested in Node by audit.test.mjs): reading an exported audit log (JSON
// lines, as `mcpvault audit export` and the stores write it), the filters, and the time buckets of the chart. The
// hash chain is verified by the core (`auditVerify`), never here.

/** Entries of a JSON-lines log, in stored order: a line that is not JSON stays a string (the core then reports it as
 * edited), blank lines are skipped; a whole JSON array is accepted too. */
export function parseLog(text) {
  const trimmed = String(text).trim();
  if (trimmed === "") return [];
  if (trimmed.startsWith("[")) {
    try {
      const all = JSON.parse(trimmed);
      if (Array.isArray(all)) return all;
    } catch {
      // not one array: read it line by line
    }
  }
  return trimmed.split(/\r?\n/).filter((l) => l.trim() !== "").map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return l;
    }
  });
}

/** What the table and the chart show of an entry (a string or a non-object entry is shown as unreadable). */
export function row(entry, index) {
  const ok = entry !== null && typeof entry === "object" && !Array.isArray(entry);
  const text = (v) => (typeof v === "string" ? v : v == null ? null : JSON.stringify(v));
  return {
    index,
    seq: ok && Number.isSafeInteger(entry.seq) ? entry.seq : null,
    time: ok && Number.isSafeInteger(entry.time) ? entry.time : null,
    allowed: ok ? entry.allowed === true : false,
    code: ok ? text(entry.code) : null,
    method: ok ? text(entry.method) : null,
    tool: ok ? text(entry.tool) : null,
    subject: ok ? text(entry.subject) : null,
    requestId: ok ? text(entry.request_id) : null,
    readable: ok,
  };
}

/** The distinct values of `key` among rows (for the filter menus), sorted; null is left out. */
export function distinct(rows, key) {
  return [...new Set(rows.map((r) => r[key]).filter((v) => v !== null))].sort();
}

/** The code a row is counted under in the chart and the code filter: `allowed`, or its refusal code. */
export const outcomeOf = (r) => (r.allowed ? "allowed" : r.code ?? "refused");

/** Rows matching every set filter (`subject`, `tool`, `code`: "" = any; code "allowed" = the allowed ones). */
export function filterRows(rows, { subject = "", tool = "", code = "" } = {}) {
  return rows.filter((r) => (subject === "" || r.subject === subject) && (tool === "" || r.tool === tool)
    && (code === "" || outcomeOf(r) === code));
}

/** Buckets of allowed and refused decisions (by code) over time: `{ start, width, buckets: [{ start, counts }],
 * codes, max }`, `n` buckets from the earliest to the latest time of `rows` (rows without a time are left out), or over
 * `range` (`{ lo, hi }`, unix seconds: a filtered view keeps the whole log's axis). */
export function bucketize(rows, n = 24, range = null) {
  const timed = rows.filter((r) => r.time !== null && (range === null || (r.time >= range.lo && r.time <= range.hi)));
  const codes = [...new Set(timed.map(outcomeOf))].sort((a, b) => (a === "allowed" ? -1 : b === "allowed" ? 1 : a.localeCompare(b)));
  if (timed.length === 0 && range === null) return { start: 0, width: 1, buckets: [], codes, max: 0 };
  const lo = range?.lo ?? Math.min(...timed.map((r) => r.time));
  const hi = range?.hi ?? Math.max(...timed.map((r) => r.time));
  const width = Math.max(1, Math.ceil((hi - lo + 1) / n));
  const count = Math.max(1, Math.ceil((hi - lo + 1) / width));
  const buckets = Array.from({ length: count }, (_, i) => ({ start: lo + i * width, counts: {} }));
  for (const r of timed) {
    const b = buckets[Math.min(count - 1, Math.floor((r.time - lo) / width))];
    const c = outcomeOf(r);
    b.counts[c] = (b.counts[c] ?? 0) + 1;
  }
  const max = Math.max(0, ...buckets.map((b) => Object.values(b.counts).reduce((s, v) => s + v, 0)));
  return { start: lo, width, buckets, codes, max };
}

/** The verdict of the core's `auditVerify` answer, in words. */
export function verdict(result, total) {
  if (result.break) {
    const b = result.break;
    return { ok: false, index: b.index, text: `Chain broken at entry ${b.index + 1}${b.seq != null ? ` (seq ${b.seq})` : ""}: ${b.kind} — ${b.detail}` };
  }
  return { ok: true, index: null, text: `Chain intact: ${result.entries ?? total} entries, head ${String(result.head ?? "").slice(0, 16)}…` };
}
