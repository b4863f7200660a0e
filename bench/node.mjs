// The npm build against @biscuit-auth/biscuit-wasm 0.6.0 and jose (EdDSA JWT), same scenario, same process:
// verify a token of 0/1/3/10 attenuation blocks for one tools/call (3 tools granted, an audience, an argument
// limit; the same authorizer facts and policy for biscuit-wasm), cold and cached; the per-signature floor in the
// same wasm module; memory growth over 100,000 verifies; module instantiation; size. Medians of 5 runs.
// Writes build/bench/node.json and build/bench/tokens.json (for the wasmtime host). `make bench` runs it.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as jose from "jose";
import { MCPVault, __wasmMemory } from "mcpvault";
import { time, timeAsync } from "./timing.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "../build/bench");
mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve("mcpvault/package.json"));
// the raw wasm-bindgen module the package initialised (the CommonJS glue both entries share: same instance)
const raw = require(join(pkgDir, "dist/cjs/mcpvault_wasm.js"));
const wasmPath = join(pkgDir, "dist/web/mcpvault_wasm_bg.wasm");

const NOW = 1_800_000_000;
const DATE = new Date(NOW * 1000).toISOString().replace(".000Z", "Z");
const DEPTHS = [0, 1, 3, 10];

// --- the tokens (minted by the npm build) -------------------------------------------------------------------------
const vault = new MCPVault({ now: () => NOW });
const { privateKey, publicKey } = vault.generateKeypair();
let token = vault.mint(privateKey, {
  tools: ["db_query", "file_read", "search"], ttl: 3600, issuer: "auth-server", subject: "agent-a",
  audience: "mcp.example.com", argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 1000 }],
});
const tokens = { 0: token };
for (let hop = 1; hop <= 10; hop++) {
  token = vault.attenuate(token, { ttl: 3600 - hop * 60 });
  if (DEPTHS.includes(hop)) tokens[hop] = token;
}
const request = { requestedTool: "db_query", arguments: { max_rows: 5, query: "select 1" }, audience: "mcp.example.com" };
writeFileSync(join(out, "tokens.json"), JSON.stringify({
  public_key: publicKey, now: NOW, tokens,
  request: { method: "tools/call", tool: "db_query", arguments: request.arguments, audience: request.audience },
}));

// --- biscuit-wasm 0.6.0, instantiated by hand (its build is for bundlers) -------------------------------------------
const bwDir = join(here, "node_modules/@biscuit-auth/biscuit-wasm/module");
const bg = await import(pathToFileURL(join(bwDir, "biscuit_bg.js")).href);
const bwModule = new WebAssembly.Module(readFileSync(join(bwDir, "biscuit_bg.wasm")));
const imports = {};
for (const { module } of WebAssembly.Module.imports(bwModule)) {
  imports[module] ??= module === "./biscuit_bg.js" ? bg : await import(pathToFileURL(join(bwDir, module)).href);
}
const bwInstance = new WebAssembly.Instance(bwModule, imports);
bg.__wbg_set_wasm(bwInstance.exports);
bwInstance.exports.__wbindgen_start?.();
const bwKey = bg.PublicKey.fromString(publicKey, bg.SignatureAlgorithm.Ed25519);
const verifierCode = `time(${DATE}); request_method("tools/call"); request_tool("db_query");
  request_arg_int("max_rows", 5); request_arg_str("query", "select 1"); verifier_audience("mcp.example.com");
  allow if mcpvault(1);`;
function biscuitWasmVerify(t, depth) {
  const biscuit = bg.Biscuit.fromBase64(t, bwKey);
  const builder = new bg.AuthorizerBuilder();
  builder.addCode(`${verifierCode} depth(${depth});`);
  const authorizer = builder.buildAuthenticated(biscuit);
  return authorizer.authorizeWithLimits({ max_facts: 10000, max_iterations: 200, max_time_micro: 100000 });
}

// --- jose: an EdDSA JWT with the same claims, no attenuation --------------------------------------------------------
const { publicKey: jwtPub, privateKey: jwtPriv } = await jose.generateKeyPair("EdDSA", { crv: "Ed25519" });
const jwt = await new jose.SignJWT({ tools: ["db_query", "file_read", "search"], aud: "mcp.example.com" })
  .setProtectedHeader({ alg: "EdDSA" }).setIssuer("auth-server").setSubject("agent-a")
  .setIssuedAt(NOW).setExpirationTime(NOW + 3600).sign(jwtPriv);
const jwtOptions = { issuer: "auth-server", audience: "mcp.example.com", currentDate: new Date(NOW * 1000) };

// --- measure -------------------------------------------------------------------------------------------------------
const result = { node: process.version, depths: {}, floor_us: 0 };
// the per-signature floor in our wasm module: biscuit-auth's check (ed25519-dalek verify_strict), 200 per call
result.floor_us = time(5, () => raw.__benchSignatureFloor(200)) / 200;

const cached = new MCPVault({ now: () => NOW, cache: 64 });
for (const d of DEPTHS) {
  const t = tokens[d];
  // sanity: every verifier allows the call
  vault.verify(t, publicKey, request);
  biscuitWasmVerify(t, d);
  cached.verify(t, publicKey, request);
  const n = d >= 10 ? 100 : 300;
  result.depths[d] = {
    mcpvault_cold_us: time(n, () => vault.verify(t, publicKey, request)),
    mcpvault_cached_us: time(n * 10, () => cached.verify(t, publicKey, request)),
    biscuit_wasm_us: time(n, () => biscuitWasmVerify(t, d)),
  };
  console.log(`depth ${d}:`, JSON.stringify(result.depths[d]));
}
result.jose_us = await timeAsync(2000, () => jose.jwtVerify(jwt, jwtPub, jwtOptions));
console.log("jose EdDSA JWT verify µs:", result.jose_us.toFixed(1), " floor µs:", result.floor_us.toFixed(1));

// ours ÷ biscuit-wasm interleaved: for each depth a fresh biscuit-wasm instance (its allocator slows down as an
// instance ages, and the figures above measure one instance through every depth), then 30 pairs of short batches,
// ours and theirs in turn (which goes first alternates): the median of the per-pair ratios, so a drift in the
// machine's speed cancels within a pair. The "no slower than biscuit-wasm" target reads this ratio.
async function freshBiscuitWasm(tag) {
  const glue = await import(`${pathToFileURL(join(bwDir, "biscuit_bg.js")).href}?${tag}`);
  const own = {};
  for (const { module } of WebAssembly.Module.imports(bwModule)) {
    own[module] ??= module === "./biscuit_bg.js" ? glue : imports[module];
  }
  const inst = new WebAssembly.Instance(bwModule, own);
  glue.__wbg_set_wasm(inst.exports);
  inst.exports.__wbindgen_start?.();
  const key = glue.PublicKey.fromString(publicKey, glue.SignatureAlgorithm.Ed25519);
  return (t, depth) => {
    const builder = new glue.AuthorizerBuilder();
    builder.addCode(`${verifierCode} depth(${depth});`);
    return builder.buildAuthenticated(glue.Biscuit.fromBase64(t, key))
      .authorizeWithLimits({ max_facts: 10000, max_iterations: 200, max_time_micro: 100000 });
  };
}
const batch = (n, f) => {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - t) / 1e3 / n;
};
for (const d of DEPTHS) {
  const theirs = await freshBiscuitWasm(`pairs-${d}`);
  const t = tokens[d];
  const n = d >= 10 ? 3 : 10;
  const ours = () => vault.verify(t, publicKey, request);
  const them = () => theirs(t, d);
  for (let i = 0; i < 20; i++) { ours(); them(); }
  const ratios = [];
  for (let i = 0; i < 30; i++) {
    const [a, b] = i % 2 ? [batch(n, ours), batch(n, them)] : [null, batch(n, them)];
    ratios.push((a ?? batch(n, ours)) / b);
  }
  result.depths[d].cold_ratio_interleaved = [...ratios].sort((x, y) => x - y)[15];
  console.log(`depth ${d}: ours ÷ biscuit-wasm interleaved ${result.depths[d].cold_ratio_interleaved.toFixed(3)}`);
}

// memory: the wasm linear memory after warm-up, then after 100,000 cached and 20,000 cold verifies
const memory = () => __wasmMemory().buffer.byteLength;
const before = memory();
for (let i = 0; i < 100_000; i++) cached.verify(tokens[i % 2 ? 1 : 3], publicKey, request);
const afterCached = memory();
for (let i = 0; i < 20_000; i++) vault.verify(tokens[i % 2 ? 0 : 1], publicKey, request);
result.memory = { before, after_100k_cached: afterCached, after_20k_cold: memory() };
console.log("wasm memory:", JSON.stringify(result.memory));

// instantiation: compile + instantiate the module from its bytes, as a fresh process does
const bytes = readFileSync(wasmPath);
const wbImports = {};
{
  const m = new WebAssembly.Module(bytes);
  for (const { module, name } of WebAssembly.Module.imports(m)) {
    wbImports[module] ??= {};
    wbImports[module][name] = () => {};
  }
}
result.instantiate_ms = await timeAsync(5, async () => {
  await WebAssembly.instantiate(bytes, wbImports);
}) / 1000;
result.size = { raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
console.log("instantiate ms:", result.instantiate_ms.toFixed(2), " size:", JSON.stringify(result.size));
writeFileSync(join(out, "node.json"), JSON.stringify(result, null, 2));
