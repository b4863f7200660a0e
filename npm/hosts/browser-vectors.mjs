// Serves the repository on 127.0.0.1, opens browser/index.html in Debian's
// headless Chromium (playwright-core), and reports the vectors' result.
//   node browser-vectors.mjs
import { createServer } from "node:http";
import { readFileSync, statSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const { vectors, check } = createRequire(import.meta.url)("../mcpvault/test-support/vectors.cjs");
const { gateCases } = await import("../mcpvault/test-support/gate-answers.mjs");

const root = fileURLToPath(new URL("../..", import.meta.url));
const types = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript",
  ".wasm": "application/wasm", ".json": "application/json" };

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  if (path === "/vectors.json") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(vectors()));
  }
  const file = normalize(join(root, path));
  if (!file.startsWith(root) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
});
let code = 1;
try {
  const page = await browser.newPage();
  const outside = [];
  page.on("request", (r) => { if (!r.url().startsWith(origin)) outside.push(r.url()); });
  page.on("console", (m) => { if (m.type() === "error") console.error(`page: ${m.text()}`); });
  await page.goto(`${origin}/npm/hosts/browser/index.html`);
  await page.waitForFunction(() => window.__mcpvault !== undefined, null, { timeout: 120_000 });
  const r = await page.evaluate(() => window.__mcpvault);
  if (r.error) throw new Error(`page: ${r.error}`);
  const cases = vectors();
  const cold = check("chromium", cases, r.cold, assert);
  const cached = check("chromium cached", cases, r.cached, assert);
  const gate = check("chromium fetch gate", gateCases(cases), r.gate, assert);
  const early = r.early?.includes("await init()");
  if (!early) console.error(`new MCPVault() before init() did not explain itself: ${r.early}`);
  if (outside.length) console.error(`requests outside ${origin}: ${outside.join(", ")}`);
  code = cold.failed + cached.failed + gate.failed === 0 && cold.passed >= 80 && gate.passed >= 40 && early && outside.length === 0 ? 0 : 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(code);
