// A short measurement of the npm build as it is in npm/mcpvault/dist now (bench/opt-levels.sh runs it after each
// build): size, the per-signature floor, cold verify at 0 and 10 attenuation blocks, a cached verify at 1. JSON.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { MCPVault } from "mcpvault";
import { time } from "./timing.mjs";

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve("mcpvault/package.json"));
const raw = require(join(pkgDir, "dist/cjs/mcpvault_wasm.js"));
const bytes = readFileSync(join(pkgDir, "dist/web/mcpvault_wasm_bg.wasm"));
const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const cached = new MCPVault({ now: () => NOW, cache: 8 });
const { privateKey, publicKey } = vault.generateKeypair();
let t = vault.mint(privateKey, { tools: ["db_query", "file_read", "search"], ttl: 3600, issuer: "auth-server", subject: "agent-a",
  audience: "mcp.example.com", argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 1000 }] });
const tokens = { 0: t };
for (let h = 1; h <= 10; h++) tokens[h] = t = vault.attenuate(t, { ttl: 3600 - h * 60 });
const req = { requestedTool: "db_query", arguments: { max_rows: 5, query: "select 1" }, audience: "mcp.example.com" };
console.log(JSON.stringify({
  raw: bytes.length,
  gzip: gzipSync(bytes, { level: 9 }).length,
  floor_us: time(3, () => raw.__benchSignatureFloor(100)) / 100,
  cold0_us: time(200, () => vault.verify(tokens[0], publicKey, req)),
  cold10_us: time(30, () => vault.verify(tokens[10], publicKey, req)),
  cached1_us: time(3000, () => cached.verify(tokens[1], publicKey, req)),
}));
