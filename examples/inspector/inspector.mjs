// The inspector page: the npm package's browser entry (the same Rust core as the servers, as WebAssembly).
// Every string from a token goes into the page as text (textContent), never as HTML.
import { init, MCPVault, McpVaultError, auditVerify } from "../../npm/mcpvault/dist/web.mjs";
import { explainChain, relative, isoTime, signatureVerdict, refusal } from "./explain.mjs";
import { parseLog, row, distinct, filterRows, bucketize, verdict, outcomeOf } from "./audit.mjs";

const $ = (id) => document.getElementById(id);
let vault = null;

/** `el("dd", { class: "x" }, child, "text", …)`: children are nodes or text. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const tags = (names, cls) => (names.length ? names.map((n) => el("span", { class: `tag ${cls ?? ""}` }, n)) : [el("span", { class: "muted" }, "none")]);

/** The evaluation time: the "Evaluate at" field (unix seconds or an ISO time), else the clock. */
function evalTime() {
  const raw = $("at").value.trim();
  if (raw === "") return Math.floor(Date.now() / 1000);
  if (/^\d+$/.test(raw)) return Number(raw);
  const ms = Date.parse(raw);
  if (Number.isNaN(ms)) throw new Error(`"Evaluate at" is not a time: ${raw}`);
  return Math.floor(ms / 1000);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  $("status").textContent = "Nothing decoded.";
}

function describeError(e) {
  if (e instanceof McpVaultError) {
    const hint = {
      malformed_token: "This is not an mcpvault token: it could not be decoded as a Biscuit token, or it lacks the mcpvault(1) fact. Paste the whole token (base64url, usually starting with “E”).",
      limits_exceeded: "The token is larger than the verifier accepts.",
    }[e.code];
    return `${e.code}: ${e.message}${hint ? ` — ${hint}` : ""}`;
  }
  return String(e?.message ?? e);
}

function inspect() {
  $("error").hidden = true;
  $("verify-out").replaceChildren();
  $("dry-out").replaceChildren();
  const token = $("token").value.trim();
  if (token === "") {
    $("result").hidden = true;
    showError("Paste a token first.");
    return;
  }
  let info, now;
  try {
    now = evalTime();
    info = vault.inspect(token);
  } catch (e) {
    $("result").hidden = true;
    showError(describeError(e));
    return;
  }
  const chain = explainChain(info, now);
  renderSummary(chain, now);
  renderChain(chain, now);
  renderTimeline(chain);
  $("result").hidden = false;
  $("status").textContent = `Decoded ${chain.cards.length} block${chain.cards.length === 1 ? "" : "s"} (not verified: paste the issuer's public key below).`;
}

function renderSummary(chain, now) {
  const expired = now >= chain.expiresAt;
  $("summary").replaceChildren(
    el("dt", {}, "Issuer"), el("dd", {}, chain.issuer),
    el("dt", {}, "Subject"), el("dd", {}, chain.subject),
    el("dt", {}, "Delegation depth"), el("dd", {}, `${chain.depth} (${chain.cards.length} block${chain.cards.length === 1 ? "" : "s"})`),
    el("dt", {}, "Tools allowed"), el("dd", { id: "summary-tools" }, tags(chain.tools)),
    el("dt", {}, "Expires"), el("dd", { class: expired ? "expired" : "" }, `${isoTime(chain.expiresAt)} (${expired ? "expired " : ""}${relative(chain.expiresAt, now)})`),
  );
}

function renderChain(chain, now) {
  $("chain").replaceChildren(...chain.cards.map((c) => {
    const rows = [el("dt", {}, c.index === 0 ? "Tools granted" : "Tools left"), el("dd", { class: "tools" }, tags(c.tools))];
    if (c.removed.length) rows.push(el("dt", {}, "Removed by this hop"), el("dd", { class: "removed" }, tags(c.removed, "removed")));
    if (c.ignored.length) {
      rows.push(el("dt", {}, "Named, but not granted before"), el("dd", {}, tags(c.ignored, "ignored"),
        el("div", { class: "note" }, "no effect: a block cannot widen")));
    }
    const exp = c.expiresAt === null ? "no expiry in this block"
      : `${isoTime(c.expiresAt)} (${relative(c.expiresAt, now)})${c.shortenedBy ? `, ${Math.round(c.shortenedBy / 60)} min earlier than before` : ""}`;
    rows.push(el("dt", {}, "Expires"), el("dd", { class: now >= (c.expiresAt ?? Infinity) ? "expired" : "" }, exp,
      c.ttlNoEffect ? el("div", { class: "note" }, "later than an earlier block: no effect") : null));
    if (c.limits.length) {
      rows.push(el("dt", {}, "Argument limits"), el("dd", {}, c.limits.map((l) => el("div", { class: "limit", title: l.check ?? "",
        "data-op": l.op }, l.text))));
    }
    if (c.audiences.length) rows.push(el("dt", {}, "Audience"), el("dd", {}, c.audiences.join(", ")));
    if (c.maxDepth !== null) rows.push(el("dt", {}, "Max delegation depth"), el("dd", {}, String(c.maxDepth)));
    if (c.unrecognized.length) {
      rows.push(el("dt", {}, "Other checks"), el("dd", {}, el("div", { class: "note" }, `${c.unrecognized.length} check(s) mcpvault did not write; they must pass too`),
        c.unrecognized.map((u) => el("pre", {}, u))));
    }
    if (c.thirdParty) rows.push(el("dt", {}, "Third-party block"), el("dd", { class: "rid" }, c.thirdParty));
    rows.push(el("dt", {}, "Revocation id"), el("dd", { class: "rid" }, c.revocationId));
    return el("li", { class: "card", "data-index": c.index },
      el("h3", {}, c.label, el("span", { class: "kind" }, c.index === 0 ? "authority block" : `attenuation block ${c.index}`)),
      el("dl", {}, rows),
      el("details", {}, el("summary", {}, "Datalog"), el("pre", {}, c.datalog)));
  }));
}

function renderTimeline(chain) {
  const t = chain.timeline;
  const nodes = [el("div", { class: "axis" })];
  t.marks.forEach((m, i) => {
    nodes.push(el("div", { class: `mark ${m.binding ? "" : "loose"} ${i % 2 ? "up" : ""}`, style: `left:${(m.at * 100).toFixed(2)}%`,
      title: `${m.label}: ${isoTime(m.time)}` }, i % 2 ? [el("div", {}, m.label), el("div", { class: "dot" })] : [el("div", { class: "dot" }), el("div", {}, m.label)]));
  });
  nodes.push(el("div", { class: "now", style: `left:${(t.now.at * 100).toFixed(2)}%` }, el("span", {}, `now ${isoTime(t.now.time)}`)));
  $("timeline").replaceChildren(...nodes);
}

function verify() {
  const out = $("verify-out");
  let code = null, facts = null, message = "";
  try {
    facts = vault.verify($("token").value.trim(), $("pubkey").value.trim(), { method: "mcpvault/inspect", now: evalTime() });
  } catch (e) {
    if (!(e instanceof McpVaultError)) return out.replaceChildren(el("div", { class: "verdict bad" }, describeError(e)));
    code = e.code;
    message = e.message;
  }
  const v = signatureVerdict(code);
  out.replaceChildren(el("div", { class: `verdict ${v.signature && code === null ? "ok" : "bad"}`, "data-code": code ?? "ok" },
    v.signature ? "✓ " : "✗ ", v.text, code ? el("div", {}, el("code", {}, code), ` — ${message}`) : null,
    facts ? el("div", { class: "small" }, `verified: ${facts.tools.length} tool(s), depth ${facts.depth}, expires ${isoTime(facts.expiresAt)}`) : null));
}

function dryRun() {
  const out = $("dry-out");
  let args;
  try {
    args = JSON.parse($("args").value || "{}");
    if (args === null || typeof args !== "object" || Array.isArray(args)) throw new Error("arguments must be a JSON object");
  } catch (e) {
    return out.replaceChildren(el("div", { class: "verdict bad", "data-code": "invalid_request" }, `Arguments: ${e.message}`));
  }
  const tool = $("tool").value.trim();
  if (tool === "") return out.replaceChildren(el("div", { class: "verdict bad", "data-code": "invalid_request" }, "Name a tool."));
  try {
    const f = vault.verify($("token").value.trim(), $("pubkey").value.trim(),
      { requestedTool: tool, arguments: args, audience: $("audience").value.trim() || undefined, now: evalTime() });
    out.replaceChildren(el("div", { class: "verdict ok", "data-code": "ok" }, `✓ allowed: ${tool}`,
      el("pre", {}, JSON.stringify(f, null, 2))));
  } catch (e) {
    if (!(e instanceof McpVaultError)) return out.replaceChildren(el("div", { class: "verdict bad" }, describeError(e)));
    // which hop refused, and when it was an argument limit, which one, in the words its card uses
    let why = null;
    try {
      why = refusal(vault.inspect($("token").value.trim()), e.failedBlock, e.failedCheck);
    } catch {
      why = null;
    }
    out.replaceChildren(el("div", { class: "verdict bad", "data-code": e.code }, `✗ refused: `, el("code", {}, e.code), ` — ${e.message}`,
      why?.text ? el("div", { class: "refused-by", "data-block": why.block }, why.limit ? "refused by the limit: " : "refused by: ",
        el("strong", {}, why.text)) : null,
      e.failedCheck ? [el("div", { class: "small" }, `the check of block ${e.failedBlock} that refused:`), el("pre", {}, e.failedCheck)] : null));
  }
}

// ---- The audit tab: the log's hash chain checked by the core, decisions over time, filters ----

const audit = { rows: [], broken: null };
/** Colours of the chart: allowed first, then one per refusal code (SVG presentation attributes, no inline CSS). */
const PALETTE = ["#1c7c46", "#b42318", "#d9730d", "#7a3db8", "#2b6cb0", "#b7791f", "#c53030", "#2c7a7b", "#805ad5", "#718096"];
const colourOf = (codes, c) => PALETTE[Math.max(0, codes.indexOf(c)) % PALETTE.length];
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}
const utc = (t) => (t === null ? "—" : new Date(t * 1000).toISOString().replace("T", " ").replace(".000Z", ""));

function showTab(name) {
  for (const t of ["token", "audit"]) {
    $(`view-${t}`).hidden = t !== name;
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
  }
}

function loadLog(text, source) {
  const entries = parseLog(text);
  audit.rows = entries.map(row);
  let result;
  try {
    result = auditVerify(entries);
  } catch (e) {
    $("audit-result").hidden = true;
    $("audit-verdict").replaceChildren(el("div", { class: "verdict bad", "data-code": e.code ?? "error" }, describeError(e)));
    return;
  }
  const v = verdict(result, entries.length);
  audit.broken = v.index;
  $("audit-status").textContent = `${source}: ${entries.length} entr${entries.length === 1 ? "y" : "ies"}.`;
  $("audit-verdict").replaceChildren(el("div", { class: `verdict ${v.ok ? "ok" : "bad"}`, "data-code": v.ok ? "ok" : result.break.kind,
    "data-index": v.index ?? "" }, `${v.ok ? "✓" : "✗"} ${v.text}`));
  for (const [id, key] of [["f-subject", "subject"], ["f-tool", "tool"]]) {
    $(id).replaceChildren(el("option", { value: "" }, "any"), ...distinct(audit.rows, key).map((x) => el("option", { value: x }, x)));
  }
  const codes = [...new Set(audit.rows.map(outcomeOf))].sort();
  $("f-code").replaceChildren(el("option", { value: "" }, "any"), ...codes.map((x) => el("option", { value: x }, x)));
  $("audit-result").hidden = false;
  renderAudit();
  if (audit.broken !== null) document.querySelector("#audit-table tr.broken")?.scrollIntoView({ block: "center" });
}

function renderAudit() {
  const rows = filterRows(audit.rows, { subject: $("f-subject").value, tool: $("f-tool").value, code: $("f-code").value });
  const refused = rows.filter((r) => !r.allowed).length;
  $("audit-count").textContent = `${rows.length} shown: ${rows.length - refused} allowed, ${refused} refused`;
  renderChart(rows);
  const shown = rows.slice(0, 2000);
  $("audit-table").querySelector("tbody").replaceChildren(...shown.map((r) => {
    const cls = [r.allowed ? "allowed" : "refused", r.index === audit.broken ? "broken" : "",
      audit.broken !== null && r.index > audit.broken ? "unverified" : ""].join(" ").trim();
    return el("tr", { class: cls, "data-index": r.index, "data-seq": r.seq ?? "" },
      el("td", {}, r.seq ?? (r.readable ? "—" : "unreadable")), el("td", {}, utc(r.time)),
      el("td", { class: "decision" }, r.allowed ? "allowed" : `refused: ${r.code ?? "?"}`),
      el("td", {}, r.method ?? ""), el("td", {}, r.tool ?? ""), el("td", {}, r.subject ?? ""), el("td", {}, r.requestId ?? ""));
  }));
}

/** A stacked bar per time bucket: allowed at the bottom, then each refusal code; drawn as SVG here (no library). */
function renderChart(rows) {
  const all = bucketize(audit.rows);
  const n0 = all.buckets.length;
  const b = bucketize(rows, n0 || 24, n0 ? { lo: all.start, hi: all.start + all.width * n0 - 1 } : null);
  const codes = all.codes;
  const W = 1000, H = 220, left = 40, bottom = 28, top = 10;
  const plotW = W - left - 10, plotH = H - top - bottom;
  const max = Math.max(1, b.max);
  const bw = b.buckets.length ? plotW / b.buckets.length : plotW;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "allowed and refused decisions over time, by code" });
  chart.append(svg("line", { x1: left, y1: top + plotH, x2: W - 10, y2: top + plotH, stroke: "#dde1e8" }));
  chart.append(svg("text", { x: left - 6, y: top + 8, "text-anchor": "end" }, String(max)));
  chart.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end" }, "0"));
  b.buckets.forEach((bucket, i) => {
    let y = top + plotH;
    for (const c of codes) {
      const n = bucket.counts[c] ?? 0;
      if (n === 0) continue;
      const h = (n / max) * plotH;
      y -= h;
      chart.append(svg("rect", { x: left + i * bw + 1, y, width: Math.max(1, bw - 2), height: h, fill: colourOf(codes, c), "data-code": c, "data-count": n },
        svg("title", {}, `${utc(bucket.start)}: ${n} ${c}`)));
    }
  });
  const n = b.buckets.length;
  for (const i of n ? [...new Set([0, Math.floor(n / 2), n - 1])] : []) {
    const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
    const x = i === 0 ? left : i === n - 1 ? left + n * bw : left + i * bw + bw / 2;
    chart.append(svg("text", { x, y: H - 8, "text-anchor": anchor }, utc(b.buckets[i].start)));
  }
  $("audit-chart").replaceChildren(chart);
  $("audit-legend").replaceChildren(...codes.map((c) => el("span", {},
    svg("svg", { width: 10, height: 10, class: "swatch" }, svg("rect", { width: 10, height: 10, fill: colourOf(codes, c) })), c)));
}

try {
  await init(new URL("../../npm/mcpvault/dist/web/mcpvault_wasm_bg.wasm", import.meta.url));
  vault = new MCPVault();
  $("status").textContent = "Ready. Paste a token.";
  $("inspect").addEventListener("click", inspect);
  $("token").addEventListener("input", () => { if ($("token").value.trim().length > 20) inspect(); });
  $("at").addEventListener("change", () => { if ($("token").value.trim()) inspect(); });
  $("verify").addEventListener("click", verify);
  // An answer stays only as long as what it answered.
  $("pubkey").addEventListener("input", () => $("verify-out").replaceChildren());
  for (const id of ["tool", "args", "audience", "pubkey"]) $(id).addEventListener("input", () => $("dry-out").replaceChildren());
  $("dry").addEventListener("click", dryRun);
  $("tab-token").addEventListener("click", () => showTab("token"));
  $("tab-audit").addEventListener("click", () => showTab("audit"));
  $("audit-file").addEventListener("change", async () => {
    const f = $("audit-file").files?.[0];
    if (f) loadLog(await f.text(), f.name);
  });
  $("audit-load").addEventListener("click", () => loadLog($("audit-text").value, "pasted log"));
  for (const id of ["f-subject", "f-tool", "f-code"]) $(id).addEventListener("change", renderAudit);
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    $("token").value = hash.get("token");
    // the token leaves the address bar (and so the history a browser keeps and syncs) once it is read
    history.replaceState(null, "", location.pathname + location.search);
    inspect();
  }
  document.body.dataset.ready = "true";
} catch (e) {
  showError(`The WebAssembly core did not load: ${describeError(e)}. Serve this folder over http (make inspector).`);
  document.body.dataset.ready = "error";
}
