// explain.mjs on tokens from the vectors, through the npm package (Node).
import test from "node:test";
import assert from "node:assert";
import { readFileSync } from "node:fs";
import { MCPVault } from "mcpvault";
import { explainChain, relative, signatureVerdict } from "./explain.mjs";

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
