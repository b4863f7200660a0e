// explain.mjs on tokens from the vectors, through the npm package (Node).
import test from "node:test";
import assert from "node:assert";
import { readFileSync } from "node:fs";
import { MCPVault } from "mcpvault";
import { explainChain, relative, signatureVerdict, refusal, limitWords } from "./explain.mjs";
import { constrainedChain } from "./sample-tokens.mjs";

const vault = new MCPVault();
const vector = (name) => JSON.parse(readFileSync(new URL(`../../tests/vectors/${name}.json`, import.meta.url), "utf8"));

test("a 3-hop chain: tools left, removed, expiry shortened per hop", () => {
  const v = vector("chain-03-hops-allows-first-tool");
  const c = explainChain(vault.inspect(v.token), v.now);
  assert.deepStrictEqual(c.cards.map((x) => x.label), ["root · issuer", "hop 1", "hop 2", "hop 3"]);
  assert.deepStrictEqual(c.cards.map((x) => x.tools.length), [10, 10, 9, 8]);
  assert.deepStrictEqual(c.cards.map((x) => x.removed), [[], [], ["tool_9"], ["tool_8"]]);
  assert.deepStrictEqual(c.cards.map((x) => x.shortenedBy), [0, 300, 300, 300]);
  assert.strictEqual(c.cards[3].effectiveExpiresAt, c.expiresAt);
  assert.deepStrictEqual(c.timeline.marks.map((m) => m.binding), [false, false, false, true]);
  assert.ok(c.timeline.marks.every((m) => m.at > c.timeline.now.at));
});

test("a hop naming tools it was not granted, or a later expiry, has no effect and says so", () => {
  const { privateKey } = vault.generateKeypair();
  const root = vault.mint(privateKey, { tools: ["a", "b"], ttl: 60, issuer: "i", subject: "s" }, { now: 1000 });
  const narrow = vault.attenuate(root, { tools: ["a"], ttl: 30 }, { now: 1000 });
  const wide = vault.attenuate(narrow, { tools: ["a", "b", "c"], ttl: 600 }, { now: 1000, onWarning: () => {} });
  const c = explainChain(vault.inspect(wide), 1000);
  assert.deepStrictEqual(c.cards[2].tools, ["a"]);
  assert.deepStrictEqual(c.cards[2].ignored, ["b", "c"]);
  assert.strictEqual(c.cards[2].ttlNoEffect, true);
  assert.strictEqual(c.cards[2].effectiveExpiresAt, 1030);
  assert.strictEqual(explainChain(vault.inspect(wide), 1030).cards[2].expired, true);
});

test("relative times and signature verdicts", () => {
  assert.strictEqual(relative(1300, 1000), "in 5 min");
  assert.strictEqual(relative(1000, 8200), "2 h ago");
  assert.strictEqual(relative(1000, 1030), "30 s ago");
  assert.strictEqual(signatureVerdict(null).signature, true);
  assert.strictEqual(signatureVerdict("expired").signature, true);
  assert.strictEqual(signatureVerdict("bad_signature").signature, false);
  assert.strictEqual(signatureVerdict("malformed_token").signature, false);
  assert.strictEqual(signatureVerdict("limits_exceeded").signature, false);
});

test("every limit type in plain words, on the hop that set it", () => {
  const { privateKey } = vault.generateKeypair();
  const c = explainChain(vault.inspect(constrainedChain(vault, privateKey, 1000)), 1000);
  // hops that only add limits keep every tool (a block naming no tools removes none)
  assert.deepStrictEqual(c.cards.map((x) => x.tools.length), [7, 7, 7]);
  assert.deepStrictEqual(c.cards.map((x) => x.removed), [[], [], []]);
  const sorted = c.cards.map((x) => [...x.argLimits].sort());
  assert.deepStrictEqual(sorted[0], [
    "db_query: max_rows ≤ 100, a whole number",
    "deploy: cluster must match staging-* (* any text, ? one character)",
    "fetch: url must be https on a subdomain of example.com",
    "file_read: path must be inside /srv/public",
    "net: ip must be in 10.0.0.0/8",
    "pay: amount ≤ 99.5",
    "pay: amount ≥ 0",
  ]);
  assert.deepStrictEqual(sorted[1], [
    "batch: every items element must be one of a, b",
    "batch: items may hold at most 10 elements",
    "db_query: table must match the pattern ^[a-z_]+$",
    "deploy: config.mode must be ro",
  ]);
  assert.deepStrictEqual(sorted[2], [
    "batch: items must hold at least 1 element",
    "fetch: url must be https on api.example.com, port 8443, path /v1 or below",
    "file_read: path must start with /srv/public/docs",
  ]);
  // every limit is paired with its own check
  assert.ok(c.cards.every((x) => x.limits.every((l) => l.check && l.check.includes(`request_tool("${l.tool}")`))));
});

test("limit words: types kept apart, strings that look like other types quoted", () => {
  assert.strictEqual(limitWords({ arg: "n", op: "eq", value: "5" }), 'n must be "5"');
  assert.strictEqual(limitWords({ arg: "n", op: "eq", value: 5 }), "n must be 5");
  assert.strictEqual(limitWords({ arg: "n", op: "eq", value: true }), "n must be true");
  assert.strictEqual(limitWords({ arg: "n", op: "one_of", value: ["a b", "c"] }), 'n must be one of "a b", c');
  assert.strictEqual(limitWords({ arg: "n[*]", op: "max", value: 5 }), "every n element ≤ 5, a whole number");
  assert.strictEqual(limitWords({ arg: "n", op: "max", value: 100 }, true), "n ≤ 100");
  assert.strictEqual(limitWords({ arg: "ip", op: "cidr", value: "2001:db8::/32" }), "ip must be in 2001:db8::/32");
  assert.strictEqual(limitWords({ arg: "u", op: "url", value: "http://[::1]:8080" }), "u must be http on [::1], port 8080");
});

test("the dry run names the limit that refused, and the hop that set it", () => {
  const { privateKey, publicKey } = vault.generateKeypair();
  const token = constrainedChain(vault, privateKey, 1000);
  const info = vault.inspect(token);
  const why = (tool, args) => {
    try {
      vault.verify(token, publicKey, { tool, arguments: args, now: 1000 });
    } catch (e) {
      return { code: e.code, ...refusal(info, e.failedBlock, e.failedCheck) };
    }
    return null;
  };
  const ok = { cluster: "staging-eu", config: { mode: "ro" } };
  assert.strictEqual(why("deploy", ok), null);
  const cases = [
    ["file_read", { path: "/srv/public/../../etc/passwd" }, "file_read: path must be inside /srv/public (set by root · issuer)"],
    ["file_read", { path: "/srv/public/other" }, "file_read: path must start with /srv/public/docs (set by hop 2)"],
    ["fetch", { url: "https://api.example.com@evil.net/" }, "fetch: url must be https on a subdomain of example.com (set by root · issuer)"],
    ["fetch", { url: "https://api.example.com/v1" }, "fetch: url must be https on api.example.com, port 8443, path /v1 or below (set by hop 2)"],
    ["net", { ip: "11.0.0.1" }, "net: ip must be in 10.0.0.0/8 (set by root · issuer)"],
    ["deploy", { ...ok, cluster: "prod" }, "deploy: cluster must match staging-* (* any text, ? one character) (set by root · issuer)"],
    ["deploy", { ...ok, config: { mode: "rw" } }, "deploy: config.mode must be ro (set by hop 1)"],
    ["pay", { amount: 100 }, "pay: amount ≤ 99.5 (set by root · issuer)"],
    ["pay", { amount: -1 }, "pay: amount ≥ 0 (set by root · issuer)"],
    ["batch", { items: ["a", "c"] }, "batch: every items element must be one of a, b (set by hop 1)"],
    ["batch", { items: [] }, "batch: items must hold at least 1 element (set by hop 2)"],
    ["batch", { items: Array(11).fill("a") }, "batch: items may hold at most 10 elements (set by hop 1)"],
  ];
  for (const [tool, args, text] of cases) {
    const w = why(tool, args);
    assert.strictEqual(w?.code, "argument_not_allowed", JSON.stringify(args));
    assert.strictEqual(w.text, text);
  }
  const t = why("admin", {});
  assert.strictEqual(t.code, "tool_not_allowed");
  assert.strictEqual(t.limit, null);
  assert.strictEqual(t.text, "a check of root · issuer");
  assert.strictEqual(refusal(info, null, null), null);
});
