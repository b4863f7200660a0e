// The token inspector (examples/inspector) in Debian's headless Chromium, driven by playwright-core: a 3-hop token
// from the vectors, verification with the right and a wrong key, a dry run allowed and refused, argument limits,
// every argument limit type in plain words on its hop and the dry run naming the limit that refused, expiry, garbage
// input; the audit tab on a log with one tampered entry (the broken link named and highlighted, the chart, the
// filters); and no network request after load. Screenshots go to build/inspector/.
//   node inspector-test.mjs
import assert from "node:assert";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { MCPVault } from "mcpvault";
import { startServer } from "../../examples/inspector/serve.mjs";
import { constrainedChain } from "../../examples/inspector/sample-tokens.mjs";
import { sampleLog, tamper } from "../../examples/inspector/audit-log.mjs";
import { auditAppend } from "../../npm/mcpvault/dist/node.mjs";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const vector = (name) => JSON.parse(readFileSync(`${repo}tests/vectors/${name}.json`, "utf8"));
const shots = `${repo}build/inspector`;
mkdirSync(shots, { recursive: true });

const { server, origin } = await startServer(0);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
let failures = 0;
const step = async (name, fn) => {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    failures++;
    console.error(`not ok - ${name}\n${e.stack ?? e}`);
  }
};

try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const requests = [];
  let loaded = false;
  const afterLoad = [];
  page.on("request", (r) => { requests.push(r.url()); if (loaded) afterLoad.push(r.url()); });
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  await page.goto(`${origin}/examples/inspector/`);
  await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
  loaded = true;

  const chain = vector("chain-03-hops-allows-first-tool");
  const cards = () => page.$$eval(".card", (els) => els.map((e) => ({
    title: e.querySelector("h3").firstChild.textContent,
    tools: [...e.querySelectorAll("dd.tools .tag")].map((t) => t.textContent),
    removed: [...e.querySelectorAll("dd.removed .tag")].map((t) => t.textContent),
    limits: [...e.querySelectorAll(".limit")].map((t) => t.textContent),
  })));

  await step("a 3-hop token: a card per block with what each hop narrowed", async () => {
    await page.fill("#at", String(chain.now));
    await page.fill("#token", chain.token);
    await page.click("#inspect");
    await page.waitForSelector("#result:not([hidden])");
    const c = await cards();
    assert.deepStrictEqual(c.map((x) => x.title), ["root · issuer", "hop 1", "hop 2", "hop 3"]);
    const all = Array.from({ length: 10 }, (_, i) => `tool_${i}`);
    assert.deepStrictEqual(c.map((x) => x.tools), [all, all, all.slice(0, 9), all.slice(0, 8)]);
    assert.deepStrictEqual(c.map((x) => x.removed), [[], [], ["tool_9"], ["tool_8"]]);
    assert.match(await page.textContent("#summary"), /agent-a[\s\S]*3 \(4 blocks\)/);
    assert.strictEqual(await page.$$eval("#timeline .mark", (m) => m.length), 4);
    assert.strictEqual(await page.$$eval("#timeline .now", (m) => m.length), 1);
    assert.ok(!(await page.isVisible("#error")));
    await page.screenshot({ path: `${shots}/1-chain.png`, fullPage: true });
  });

  await step("the Datalog is there on demand", async () => {
    await page.click(".card[data-index='3'] details summary");
    assert.match(await page.textContent(".card[data-index='3'] details pre"), /check if request_tool\(\$tool\)/);
  });

  await step("verify with the right key, then a wrong one", async () => {
    await page.fill("#pubkey", chain.public_key);
    await page.click("#verify");
    assert.strictEqual(await page.getAttribute("#verify-out .verdict", "data-code"), "ok");
    assert.match(await page.textContent("#verify-out"), /signature verified/);
    await page.screenshot({ path: `${shots}/2-verified.png`, fullPage: true });
    const other = vector("key-wrong-public-key").public_key;
    assert.notStrictEqual(other, chain.public_key);
    await page.fill("#pubkey", other);
    await page.click("#verify");
    assert.strictEqual(await page.getAttribute("#verify-out .verdict", "data-code"), "bad_signature");
    assert.match(await page.textContent("#verify-out"), /does not verify with this key/);
    await page.screenshot({ path: `${shots}/2b-wrong-key.png`, fullPage: true });
    await page.fill("#pubkey", "00".repeat(32).replace(/^00/, "zz"));
    await page.click("#verify");
    assert.strictEqual(await page.getAttribute("#verify-out .verdict", "data-code"), "invalid_key");
    await page.fill("#pubkey", chain.public_key);
  });

  await step("dry run: allowed with the facts, refused with the code and the check", async () => {
    await page.fill("#tool", "tool_0");
    await page.fill("#args", "{}");
    await page.click("#dry");
    assert.strictEqual(await page.getAttribute("#dry-out .verdict", "data-code"), "ok");
    assert.match(await page.textContent("#dry-out pre"), /"depth": 3/);
    await page.fill("#tool", "tool_9");
    await page.click("#dry");
    assert.strictEqual(await page.getAttribute("#dry-out .verdict", "data-code"), "tool_not_allowed");
    assert.match(await page.textContent("#dry-out"), /block 2[\s\S]*request_tool/);
    await page.screenshot({ path: `${shots}/3-dry-run.png`, fullPage: true });
    await page.fill("#args", "[1]");
    await page.click("#dry");
    assert.strictEqual(await page.getAttribute("#dry-out .verdict", "data-code"), "invalid_request");
  });

  await step("expired at a later time: the summary says so, the signature still verifies", async () => {
    await page.fill("#at", String(chain.now + 100_000));
    await page.click("#inspect");
    assert.match(await page.textContent("#summary"), /expired/);
    await page.click("#verify");
    assert.strictEqual(await page.getAttribute("#verify-out .verdict", "data-code"), "expired");
    assert.match(await page.textContent("#verify-out"), /signature verified, but the token has expired/);
  });

  await step("argument limits and audience appear on the hop that set them", async () => {
    const v = vector("args-attenuated-tighter-max");
    await page.fill("#at", String(v.now));
    await page.fill("#token", v.token);
    await page.click("#inspect");
    const c = await cards();
    assert.ok(c.length >= 2);
    assert.ok(c.slice(1).some((x) => x.limits.some((l) => /max_rows ≤ \d+/.test(l))), JSON.stringify(c));
  });

  await step("every limit type in plain words on its hop; the dry run names the limit that refused", async () => {
    const vault = new MCPVault();
    const { privateKey, publicKey } = vault.generateKeypair();
    const now = 1_800_000_000;
    await page.fill("#at", String(now));
    await page.fill("#token", constrainedChain(vault, privateKey, now));
    await page.click("#inspect");
    const c = await cards();
    assert.deepStrictEqual(c.map((x) => x.title), ["root · issuer", "hop 1", "hop 2"]);
    const has = (i, text) => assert.ok(c[i].limits.includes(text), `${text} not in ${JSON.stringify(c[i].limits)}`);
    has(0, "file_read: path must be inside /srv/public");
    has(0, "fetch: url must be https on a subdomain of example.com");
    has(0, "net: ip must be in 10.0.0.0/8");
    has(0, "deploy: cluster must match staging-* (* any text, ? one character)");
    has(0, "pay: amount ≤ 99.5");
    has(0, "db_query: max_rows ≤ 100, a whole number");
    has(1, "batch: every items element must be one of a, b");
    has(1, "batch: items may hold at most 10 elements");
    has(1, "deploy: config.mode must be ro");
    has(1, "db_query: table must match the pattern ^[a-z_]+$");
    has(2, "fetch: url must be https on api.example.com, port 8443, path /v1 or below");
    has(2, "batch: items must hold at least 1 element");
    assert.deepStrictEqual(c.map((x) => x.limits.length), [7, 4, 3]);
    // the hops name no tools: they remove none
    assert.deepStrictEqual(c.map((x) => x.tools.length), [7, 7, 7]);
    assert.deepStrictEqual(c.map((x) => x.removed), [[], [], []]);
    await page.screenshot({ path: `${shots}/5-limits.png`, fullPage: true });
    await page.fill("#pubkey", publicKey);
    const dry = async (tool, args) => {
      await page.fill("#tool", tool);
      await page.fill("#args", JSON.stringify(args));
      await page.click("#dry");
      return { code: await page.getAttribute("#dry-out .verdict", "data-code"), text: await page.textContent("#dry-out") };
    };
    assert.strictEqual((await dry("file_read", { path: "/srv/public/docs/a.txt" })).code, "ok");
    for (const [tool, args, words] of [
      ["file_read", { path: "/srv/public/../../etc/passwd" }, "file_read: path must be inside /srv/public (set by root · issuer)"],
      ["fetch", { url: "https://api.example.com@evil.net/" }, "fetch: url must be https on a subdomain of example.com (set by root · issuer)"],
      ["net", { ip: "11.0.0.1" }, "net: ip must be in 10.0.0.0/8 (set by root · issuer)"],
      ["batch", { items: ["a", "c"] }, "batch: every items element must be one of a, b (set by hop 1)"],
      ["batch", { items: [] }, "batch: items must hold at least 1 element (set by hop 2)"],
    ]) {
      const r = await dry(tool, args);
      assert.strictEqual(r.code, "argument_not_allowed", JSON.stringify(args));
      assert.ok(r.text.includes(`refused by the limit: ${words}`), r.text);
    }
    assert.match((await dry("net", { ip: "::ffff:10.0.0.1" })).code, /^ok$/);
    await dry("pay", { amount: 100 });
    assert.match(await page.textContent("#dry-out .refused-by"), /pay: amount ≤ 99\.5 \(set by root · issuer\)/);
    await page.screenshot({ path: `${shots}/6-limit-refused.png`, fullPage: true });
  });

  await step("garbage gets a clear message, not a blank page", async () => {
    await page.fill("#token", "this is not a token at all");
    await page.click("#inspect");
    assert.ok(await page.isVisible("#error"));
    assert.match(await page.textContent("#error"), /malformed_token: .*not an mcpvault token/);
    assert.ok(await page.isHidden("#result"));
    assert.strictEqual(await page.textContent("#status"), "Nothing decoded.", "no stale status from the previous token");
    await page.screenshot({ path: `${shots}/4-garbage.png`, fullPage: true });
    await page.fill("#token", "");
    await page.click("#inspect");
    assert.match(await page.textContent("#error"), /Paste a token/);
  });

  await step("audit tab: a log with one tampered entry is checked by the core, the broken link named and highlighted", async () => {
    const file = `${shots}/audit-tampered.jsonl`;
    writeFileSync(file, tamper(sampleLog(auditAppend), 17).join("\n") + "\n");
    await page.click("#tab-audit");
    assert.ok(await page.isHidden("#view-token"));
    await page.setInputFiles("#audit-file", file);
    await page.waitForSelector("#audit-result:not([hidden])");
    const v = await page.textContent("#audit-verdict");
    assert.match(v, /Chain broken at entry 17 \(seq 17\): edited/);
    assert.strictEqual(await page.getAttribute("#audit-verdict .verdict", "data-code"), "edited");
    assert.deepStrictEqual(await page.$$eval("#audit-table tr.broken", (r) => r.map((x) => x.dataset.seq)), ["17"]);
    assert.strictEqual(await page.$$eval("#audit-table tr.unverified", (r) => r.length), 43);
    assert.strictEqual(await page.$$eval("#audit-table tbody tr", (r) => r.length), 60);
    // the chart: every decision in a bar, coloured by allowed or refusal code, with a legend
    const bars = await page.$$eval("#audit-chart rect", (r) => r.map((x) => [x.dataset.code, Number(x.dataset.count)]));
    const sum = (code) => bars.filter(([c]) => code === undefined || c === code).reduce((n, [, k]) => n + k, 0);
    assert.strictEqual(sum(), 60);
    // entry 17 was allowed; the tampered log says refused: the chart shows what the log says, the chain that it was edited
    assert.strictEqual(sum("allowed"), 39);
    assert.match(await page.textContent("#audit-table tr.broken td.decision"), /refused: tool_not_allowed/);
    assert.deepStrictEqual(await page.$$eval("#audit-legend span", (s) => s.map((x) => x.textContent)),
      ["allowed", "argument_not_allowed", "expired", "revoked", "tool_not_allowed"]);
    await page.screenshot({ path: `${shots}/5-audit-broken.png`, fullPage: true });
  });

  await step("audit tab: filters by subject, tool and code narrow the chart and the table", async () => {
    await page.selectOption("#f-subject", "agent-a");
    await page.selectOption("#f-tool", "db_query");
    const rows = await page.$$eval("#audit-table tbody tr", (r) => r.map((x) => x.children[5].textContent + "/" + x.children[4].textContent));
    assert.ok(rows.length === 10 && rows.every((x) => x === "agent-a/db_query"), JSON.stringify(rows));
    await page.selectOption("#f-tool", "");
    await page.selectOption("#f-subject", "");
    await page.selectOption("#f-code", "revoked");
    const codes = await page.$$eval("#audit-table td.decision", (c) => c.map((x) => x.textContent));
    assert.ok(codes.length === 5 && codes.every((c) => c === "refused: revoked"), JSON.stringify(codes));
    const bars = await page.$$eval("#audit-chart rect", (r) => r.map((x) => x.dataset.code));
    assert.ok(bars.length > 0 && bars.every((c) => c === "revoked"));
    assert.match(await page.textContent("#audit-count"), /5 shown: 0 allowed, 5 refused/);
    await page.screenshot({ path: `${shots}/6-audit-filtered.png`, fullPage: true });
    await page.selectOption("#f-code", "");
    // a sound log: intact
    await page.setInputFiles("#audit-file", { name: "sound.jsonl", mimeType: "text/plain", buffer: Buffer.from(sampleLog(auditAppend).join("\n")) });
    await page.waitForFunction(() => document.querySelector("#audit-verdict .verdict")?.dataset.code === "ok");
    assert.match(await page.textContent("#audit-verdict"), /Chain intact: 60 entries/);
    assert.strictEqual(await page.$$eval("#audit-table tr.broken", (r) => r.length), 0);
    await page.click("#tab-token");
    assert.ok(await page.isVisible("#view-token"));
  });

  await step("nothing leaves the page: no request after load, none off the page's origin", async () => {
    assert.deepStrictEqual(afterLoad, []);
    assert.deepStrictEqual(requests.filter((u) => !u.startsWith(origin)), []);
    assert.deepStrictEqual(problems, []);
  });

  await step("a token handed in the address (#token=) is read, then removed from the address and the history", async () => {
    // a fresh page (on the same document, a new fragment alone would not load it again)
    const fresh = await browser.newPage();
    await fresh.goto(`${origin}/examples/inspector/#token=${chain.token}`);
    await fresh.waitForSelector("body[data-ready=true]", { timeout: 60_000 });
    await fresh.waitForSelector("#result:not([hidden])");
    assert.strictEqual(await fresh.inputValue("#token"), chain.token);
    assert.strictEqual(await fresh.evaluate(() => location.hash), "");
    assert.ok(!(await fresh.evaluate(() => location.href)).includes(chain.token));
    await fresh.close();
  });
} finally {
  await browser.close();
  server.close();
}
console.log(failures === 0 ? `inspector: all passed; screenshots in build/inspector/` : `inspector: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
