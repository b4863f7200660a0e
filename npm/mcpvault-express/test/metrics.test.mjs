// metricsHandler(): a running Express 5 server is scraped over HTTP and its text parsed by a strict parser of the
// Prometheus text exposition format 0.0.4 (every line, names, labels, escapes, TYPE before samples, no duplicate
// series, histogram buckets cumulative with +Inf = _count); the counts are the decisions made; no token in it.
import test from "node:test";
import assert from "node:assert";
import express5 from "express5";
import { MCPVault } from "mcpvault";
import { createMcpVaultMiddleware, metricsHandler } from "mcpvault-express";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** Parses Prometheus text 0.0.4 strictly: throws on anything the format does not allow. */
export function parsePrometheus(text) {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  const families = new Map();
  const seen = new Set();
  const lines = text.slice(0, -1).split("\n");
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === "") throw new Error(`${where}: empty line`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`${where}: malformed ${line.slice(2, 6)}`);
        continue; // a plain comment
      }
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const f = families.get(name) ?? { name, type: "untyped", help: null, samples: [], typed: false };
      if (kind === "TYPE") {
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type`);
        if (f.typed || f.samples.length > 0) throw new Error(`${where}: TYPE after samples or twice`);
        f.type = rest;
        f.typed = true;
      } else {
        if (f.help !== null) throw new Error(`${where}: HELP twice`);
        f.help = rest;
      }
      families.set(name, f);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const [, name, , body = "", raw] = m;
    const labels = {};
    let rest = body;
    while (rest.length > 0) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!l || !LABEL.test(l[1])) throw new Error(`${where}: bad label at ${JSON.stringify(rest)}`);
      if (l[1] in labels) throw new Error(`${where}: label ${l[1]} twice`);
      labels[l[1]] = l[2].replace(/\\(["\\n])/g, (_, c) => (c === "n" ? "\n" : c));
      rest = rest.slice(l[0].length);
      if (l[3] === "," && rest.length === 0) break; // a trailing comma is allowed
    }
    if (!/^([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]Inf|NaN)$/.test(raw)) throw new Error(`${where}: bad value`);
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    const family = [...families.values()].find((f) => name === f.name || (f.type === "histogram" && [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].includes(name)));
    if (!family) throw new Error(`${where}: a sample before its TYPE`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`${where}: duplicate series`);
    seen.add(key);
    if (family.type === "counter" && !(value >= 0)) throw new Error(`${where}: a negative counter`);
    if (name.endsWith("_bucket") && !("le" in labels)) throw new Error(`${where}: a bucket without le`);
    family.samples.push({ name, labels, value });
  }
  for (const f of families.values()) {
    if (f.type !== "histogram") continue;
    const series = new Map();
    for (const s of f.samples) {
      const { le, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      const e = series.get(k) ?? { buckets: [], count: null, sum: null };
      if (s.name.endsWith("_bucket")) e.buckets.push([le === "+Inf" ? Infinity : Number(le), s.value]);
      else if (s.name.endsWith("_count")) e.count = s.value;
      else e.sum = s.value;
      series.set(k, e);
    }
    for (const [k, e] of series) {
      for (let i = 1; i < e.buckets.length; i++) {
        if (!(e.buckets[i][0] > e.buckets[i - 1][0])) throw new Error(`${f.name}${k}: le not increasing`);
        if (e.buckets[i][1] < e.buckets[i - 1][1]) throw new Error(`${f.name}${k}: buckets not cumulative`);
      }
      const inf = e.buckets.at(-1);
      if (!inf || inf[0] !== Infinity || inf[1] !== e.count || e.sum === null) throw new Error(`${f.name}${k}: +Inf bucket, _count and _sum`);
    }
  }
  return families;
}

test("the strict parser refuses what Prometheus refuses", () => {
  for (const bad of [
    "x 1", "x{a=\"1\"} 1\n", "# TYPE x counter\nx{a=1} 1\n", "# TYPE x counter\nx -1\n", "# TYPE x counter\nx 1\nx 1\n",
    "# TYPE x wrong\n", "x 1\n", "# TYPE x counter\nx abc\n", "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
  ]) assert.throws(() => parsePrometheus(bad), undefined, JSON.stringify(bad));
  const ok = parsePrometheus('# HELP x a counter\n# TYPE x counter\nx{a="q\\"uote\\\\",b="n\\nl"} 3\n');
  assert.deepStrictEqual(ok.get("x").samples[0].labels, { a: 'q"uote\\', b: "n\nl" });
});

test("a running Express server's /metrics parses, and counts what its guard decided", async () => {
  const NOW = 1_800_000_000;
  const vault = new MCPVault({ now: () => NOW });
  const keys = vault.generateKeypair();
  const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a" });
  const app = express5();
  app.use(express5.json());
  app.get("/metrics", metricsHandler());
  const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, now: () => NOW });
  app.post("/mcp", auth(), (req, res) => res.json({ jsonrpc: "2.0", id: req.body.id, result: {} }));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  try {
    const base = `http://127.0.0.1:${server.address().port}`;
    const post = (body, headers = { authorization: `Bearer ${token}` }) =>
      fetch(`${base}/mcp`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
    const scrape = async () => {
      const r = await fetch(`${base}/metrics`);
      assert.strictEqual(r.status, 200);
      assert.match(r.headers.get("content-type"), /^text\/plain; version=0\.0\.4/);
      return r.text();
    };
    const before = parsePrometheus(await scrape());
    const value = (families, name, labels) => [...families.values()].flatMap((f) => f.samples)
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0);
    const call = (id, name) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } });
    assert.strictEqual((await post(call(1, "db_query"))).status, 200);
    assert.strictEqual((await post(call(2, "db_query"))).status, 200);
    assert.strictEqual((await post(call(3, "admin_delete"))).status, 403);
    assert.strictEqual((await post(call(4, "db_query"), {})).status, 401);
    assert.strictEqual((await post({ jsonrpc: "2.0", id: 5, method: "x/made-up" })).status, 200);
    const text = await scrape();
    assert.ok(!text.includes(token) && !text.includes(token.slice(0, 24)), "no token text in the scrape");
    assert.ok(!text.includes("made-up"), "a method the caller made up is _OTHER");
    const after = parsePrometheus(text);
    const delta = (name, labels) => value(after, name, labels) - value(before, name, labels);
    assert.strictEqual(after.get("mcpvault_decisions_total").type, "counter");
    assert.strictEqual(delta("mcpvault_decisions_total", { decision: "allow", method: "tools/call" }), 2);
    assert.strictEqual(delta("mcpvault_decisions_total", { decision: "deny", code: "tool_not_allowed", method: "tools/call" }), 1);
    assert.strictEqual(delta("mcpvault_decisions_total", { decision: "deny", code: "missing_token" }), 1);
    assert.strictEqual(delta("mcpvault_decisions_total", { decision: "allow", method: "_OTHER" }), 1);
    const h = after.get("mcpvault_authorization_duration_seconds");
    assert.strictEqual(h.type, "histogram");
    assert.strictEqual(delta("mcpvault_authorization_duration_seconds_count", {}), 5);
    assert.ok(delta("mcpvault_authorization_duration_seconds_count", { cache_hit: "true" }) >= 3);
    assert.strictEqual(delta("mcpvault_cache_misses_total", {}), 1);
    assert.ok(delta("mcpvault_cache_hits_total", {}) >= 3);
  } finally {
    server.close();
  }
});
