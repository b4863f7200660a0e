// `@opentelemetry/api` is an optional peer dependency: mcpvault and mcpvault-express copied into a project that does
// not have it load, decide and serve /metrics (the Prometheus registry needs no OpenTelemetry).
import test from "node:test";
import assert from "node:assert";
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const npm = join(here, "..", "..");

test("without @opentelemetry/api installed, the packages load and work (require and import)", () => {
  const dir = mkdtempSync(join(tmpdir(), "mcpvault-no-otel-"));
  try {
    const mods = join(dir, "node_modules");
    for (const f of ["package.json", "dist"]) cpSync(join(npm, "mcpvault", f), join(mods, "mcpvault", f), { recursive: true });
    for (const f of ["package.json", "index.cjs", "index.mjs"]) cpSync(join(npm, "mcpvault-express", f), join(mods, "mcpvault-express", f));
    writeFileSync(join(dir, "check.mjs"), `
      import { createRequire } from "node:module";
      import http from "node:http";
      import { MCPVault, Guard, metricsText } from "mcpvault";
      import { createMcpVaultMiddleware, metricsHandler } from "mcpvault-express";
      const require = createRequire(import.meta.url);
      let missing = false;
      try { require.resolve("@opentelemetry/api"); } catch { missing = true; }
      if (!missing) throw new Error("@opentelemetry/api is installed here");
      if (require("mcpvault").Guard !== Guard) throw new Error("require and import are two instances");
      const vault = new MCPVault({ now: () => 1800000000 });
      const keys = vault.generateKeypair();
      const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "i", subject: "s" });
      const guard = new Guard({ publicKey: keys.publicKey, now: () => 1800000000 });
      const call = (name) => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name } });
      const ok = await guard.decide({ headers: { authorization: "Bearer " + token }, body: call("db_query") });
      const no = await guard.decide({ headers: { authorization: "Bearer " + token }, body: call("admin") });
      if (!ok.allowed || no.decisions[0].code !== "tool_not_allowed") throw new Error("wrong decisions");
      const metrics = metricsHandler();
      const auth = createMcpVaultMiddleware({ publicKeyHex: keys.publicKey, now: () => 1800000000 })();
      const server = http.createServer((req, res) => req.url === "/metrics" ? metrics(req, res)
        : auth(req, res, () => { res.end("handled"); }));
      await new Promise((r) => server.listen(0, "127.0.0.1", r));
      const base = "http://127.0.0.1:" + server.address().port;
      const post = await fetch(base + "/mcp", { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + token }, body: JSON.stringify(call("db_query")) });
      const text = await (await fetch(base + "/metrics")).text();
      server.close();
      if (post.status !== 200 || (await post.text()) !== "handled") throw new Error("middleware did not pass the call");
      if (!/^mcpvault_decisions_total\\{decision="allow",code="",method="tools\\/call"\\} 1$/m.test(text)) throw new Error("metrics: " + text);
      if (!metricsText().includes("mcpvault_cache_misses_total")) throw new Error("metricsText");
      console.log("no-otel ok");
    `);
    const out = execFileSync(process.execPath, [join(dir, "check.mjs")], { cwd: dir, encoding: "utf8" });
    assert.match(out, /no-otel ok/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
