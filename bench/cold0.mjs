// Cold verify at 0 blocks against biscuit-wasm 0.6.0 in one process, for A/B decisions (node cold0.mjs; PKG=DIR for
// another build of npm/mcpvault): the median of per-pair ratios ours ÷ theirs. Run it a few times.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { median } from "./timing.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// PKG=dir measures another build of the package (A/B); default: the one bench/ depends on
const pkgDir = process.env.PKG || dirname(require.resolve("mcpvault/package.json"));
const { MCPVault } = require(join(pkgDir, "dist/node.cjs"));
const NOW = 1_800_000_000;
const DATE = new Date(NOW * 1000).toISOString().replace(".000Z", "Z");
const vault = new MCPVault({ now: () => NOW });
const { privateKey, publicKey } = vault.generateKeypair();
const t0 = vault.mint(privateKey, { tools: ["db_query", "file_read", "search"], ttl: 3600, issuer: "auth-server", subject: "agent-a",
  audience: "mcp.example.com", argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 1000 }] });
const req = { requestedTool: "db_query", arguments: { max_rows: 5, query: "select 1" }, audience: "mcp.example.com" };
const bwDir = join(here, "node_modules/@biscuit-auth/biscuit-wasm/module");
const bg = await import(pathToFileURL(join(bwDir, "biscuit_bg.js")).href);
const bwModule = new WebAssembly.Module(readFileSync(join(bwDir, "biscuit_bg.wasm")));
const imports = {};
for (const { module } of WebAssembly.Module.imports(bwModule)) {
  imports[module] ??= module === "./biscuit_bg.js" ? bg : await import(pathToFileURL(join(bwDir, module)).href);
}
// biscuit-wasm's allocator (wee_alloc) slows down as its instance ages (3-5x after a few thousand verifies), so
// like node.mjs this measures its first few hundred calls (350): one round per process (run it a few times).
const bwInstance = new WebAssembly.Instance(bwModule, imports);
bg.__wbg_set_wasm(bwInstance.exports);
bwInstance.exports.__wbindgen_start?.();
const bwKey = bg.PublicKey.fromString(publicKey, bg.SignatureAlgorithm.Ed25519);
const code = `time(${DATE}); request_method("tools/call"); request_tool("db_query");
  request_arg_int("max_rows", 5); request_arg_str("query", "select 1"); verifier_audience("mcp.example.com");
  allow if mcpvault(1);`;
function bw(t, depth) {
  const b = bg.Biscuit.fromBase64(t, bwKey);
  const builder = new bg.AuthorizerBuilder();
  builder.addCode(`${code} depth(${depth});`);
  return builder.buildAuthenticated(b).authorizeWithLimits({ max_facts: 10000, max_iterations: 200, max_time_micro: 100000 });
}
const bytes = readFileSync(join(pkgDir, "dist/web/mcpvault_wasm_bg.wasm"));
// 30 pairs of 10 calls each, ours and theirs alternately (which goes first alternates too): the median of the
// per-pair ratios, so the machine's drift cancels within a pair
const run = (f) => { const t = process.hrtime.bigint(); for (let i = 0; i < 10; i++) f(); return Number(process.hrtime.bigint() - t) / 1e4; };
const ours = () => vault.verify(t0, publicKey, req);
const theirs = () => bw(t0, 0);
for (let i = 0; i < 50; i++) { ours(); theirs(); }
const o = [], b = [], r = [];
for (let i = 0; i < 30; i++) {
  const [x, y] = i % 2 ? [run(ours), run(theirs)] : [0, run(theirs)];
  const ox = i % 2 ? x : run(ours);
  o.push(ox); b.push(y); r.push(ox / y);
}
console.log(JSON.stringify({ gzip: gzipSync(bytes, { level: 9 }).length, raw: bytes.length,
  ours0_us: +median(o).toFixed(1), bw0_us: +median(b).toFixed(1), ratio0: +median(r).toFixed(3) }));
