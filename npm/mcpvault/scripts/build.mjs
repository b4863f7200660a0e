// Builds dist/ from the wasm32-unknown-unknown output of crates/wasm.
//   node scripts/build.mjs RAW.wasm WASM_BINDGEN WASM_OPT [wasm-opt flags...]
// Node entries: `require` → dist/node.cjs (wasm-bindgen's nodejs glue, loads
// the .wasm synchronously); `import` → dist/node.mjs (the web glue, initialised
// synchronously from the file with initSync). Neither needs a flag or `await`.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const [raw, bindgen, wasmOpt, ...optFlags] = process.argv.slice(2);
if (!raw || !bindgen || !wasmOpt) {
  console.error("usage: node scripts/build.mjs RAW.wasm WASM_BINDGEN WASM_OPT [wasm-opt flags...]");
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

for (const target of ["nodejs", "web"]) {
  const out = join(dist, target === "nodejs" ? "cjs" : "web");
  execFileSync(bindgen, ["--target", target, "--out-dir", out, "--out-name", "mcpvault_wasm", raw], { stdio: "inherit" });
}
// One .wasm for every entry: wasm-bindgen writes the same module for both targets; the CommonJS glue loads the web
// one (the package ships one copy, and wasm-opt runs once).
const cjsWasm = join(dist, "cjs", "mcpvault_wasm_bg.wasm");
const webWasm = join(dist, "web", "mcpvault_wasm_bg.wasm");
if (!readFileSync(cjsWasm).equals(readFileSync(webWasm))) throw new Error("wasm-bindgen wrote different modules for nodejs and web");
rmSync(cjsWasm);
execFileSync(wasmOpt, [webWasm, "-o", webWasm, ...optFlags], { stdio: "inherit" });
{
  const glue = join(dist, "cjs", "mcpvault_wasm.js");
  const text = readFileSync(glue, "utf8");
  const from = "`${__dirname}/mcpvault_wasm_bg.wasm`";
  if (!text.includes(from)) throw new Error(`${glue}: the .wasm path ${from} is not where it was`);
  writeFileSync(glue, text.replace(from, "`${__dirname}/../web/mcpvault_wasm_bg.wasm`"));
}
writeFileSync(join(dist, "web", "package.json"), JSON.stringify({ type: "module" }) + "\n");

// wasm-bindgen writes `inline_js` snippets (biscuit-auth's performance.now()
// shim) as ES modules even for the CommonJS nodejs target, which `require`
// cannot load before Node 20.19. Rewrite them to CommonJS; fail on anything
// but plain `export function`.
function* files(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (p.endsWith(".js")) yield p;
  }
}
const snippets = join(dist, "cjs", "snippets");
if (statSync(snippets, { throwIfNoEntry: false })) {
  for (const file of files(snippets)) {
    const names = [];
    const src = readFileSync(file, "utf8").replace(/^export function (\w+)/gm, (_, name) => {
      names.push(name);
      return `function ${name}`;
    });
    if (/^\s*(export|import)\b/m.test(src)) throw new Error(`${file}: unsupported ES module syntax`);
    writeFileSync(file, `${src}\n${names.map((n) => `exports.${n} = ${n};`).join("\n")}\n`);
  }
}
// Strings into the module: wasm-bindgen's glue copies an ASCII string one character at a time in JS (2.4 µs for a
// token of 850 characters, on every request); TextEncoder.encodeInto does it in 0.14 µs. Long strings take that path
// (short ones keep the loop, which beats the call). Both glues, checked: a wasm-bindgen that writes the function
// differently fails the build instead of shipping it unpatched.
for (const target of ["cjs", "web"]) {
  const glue = join(dist, target, "mcpvault_wasm.js");
  const text = readFileSync(glue, "utf8");
  const from = "function passStringToWasm0(arg, malloc, realloc) {\n";
  if (text.split(from).length !== 2 || !text.includes("cachedTextEncoder.encodeInto(") || !text.includes("cachedTextEncoder.encodeInto = function")) {
    throw new Error(`${glue}: passStringToWasm0 is not as the pinned wasm-bindgen wrote it`);
  }
  // only with the runtime's own encodeInto: wasm-bindgen's stand-in for runtimes without one (an own property of
  // its encoder) writes the whole string at once and needs room for 3 bytes per character
  writeFileSync(glue, text.replace(from, `${from}    if (realloc !== undefined && arg.length > 32 && !Object.prototype.hasOwnProperty.call(cachedTextEncoder, "encodeInto")) return passLongStringToWasm(arg, malloc, realloc);\n`) + `
// mcpvault (scripts/build.mjs): a long string encoded natively; its UTF-8 never takes more than 3 bytes per UTF-16 unit.
function passLongStringToWasm(arg, malloc, realloc) {
    let len = arg.length;
    let ptr = malloc(len, 1) >>> 0;
    let r = cachedTextEncoder.encodeInto(arg, getUint8ArrayMemory0().subarray(ptr, ptr + len));
    if (r.read === arg.length) {
        WASM_VECTOR_LEN = r.written;
        return ptr;
    }
    // not ASCII: room for the rest, then the size it took
    let offset = r.written;
    const rest = arg.slice(r.read);
    ptr = realloc(ptr, len, len = offset + rest.length * 3, 1) >>> 0;
    offset += cachedTextEncoder.encodeInto(rest, getUint8ArrayMemory0().subarray(ptr + offset, ptr + len)).written;
    ptr = realloc(ptr, len, offset, 1) >>> 0;
    WASM_VECTOR_LEN = offset;
    return ptr;
}
`);
}
writeFileSync(join(dist, "cjs", "package.json"), JSON.stringify({ type: "commonjs" }) + "\n");
// The module's linear memory, for the memory tests (the web glue exports it from initSync).
writeFileSync(join(dist, "cjs", "mcpvault_wasm.js"), readFileSync(join(dist, "cjs", "mcpvault_wasm.js"), "utf8") + "\nexports.__wasm = wasm;\n");

const api = ["api.js", "telemetry.js", "gate.js"].map((f) => readFileSync(join(root, "src", f), "utf8")).join("\n");
// Every name the entries export besides init.
const exported = "MCPVault, McpVaultError, auditAppend, auditVerify, callKey, callTarget, toolHashes, Guard, storeDecide, redisCall, redisAnswer, revocationId, authorizeWithState, storeOptionsError, CHECK_TOOL, listMethods, extractToken, findToken, authorizeCall, authorizeBody, " +
  "statusOf, challenge, challengeResponse, authorizeFetch, assertPublicKey, useOpenTelemetry, metricsText";
writeFileSync(join(dist, "api.cjs"), `"use strict";\n${api}\nmodule.exports = { makeApi };\n`);
writeFileSync(join(dist, "api.mjs"), `${api}\nexport { makeApi };\n`);
// Node: one instance for both entries. `import` re-exports the CommonJS entry, so the ESM and CommonJS entries share
// one wasm module, one cache and one McpVaultError class (instanceof holds across them).
writeFileSync(join(dist, "node.cjs"), `"use strict";
// Node 18 has no global crypto (it arrived in Node 19); getrandom's js backend needs crypto.getRandomValues.
if (!globalThis.crypto?.getRandomValues) globalThis.crypto = require("node:crypto").webcrypto;
const wasm = require("./cjs/mcpvault_wasm.js");
const { makeApi } = require("./api.cjs");
// OpenTelemetry when the application has it: an optional peer dependency, no-op without it (or without an SDK)
let otel = null;
try {
  otel = require("@opentelemetry/api");
} catch {
  otel = null;
}
module.exports = {
  ...makeApi(wasm, undefined, otel),
  init: () => Promise.resolve(),
  /** Internal, for tests: the module's linear memory. */
  __wasmMemory: () => wasm.__wasm.memory,
};
`);
writeFileSync(join(dist, "node.mjs"), `import { createRequire } from "node:module";
const api = createRequire(import.meta.url)("./node.cjs");
export const { ${exported} } = api;
/** Node loads synchronously; init() is here for code shared with browsers. */
export const init = api.init;
/** Internal, for tests: the module's linear memory. */
export const __wasmMemory = api.__wasmMemory;
`);
// workerd (Cloudflare Workers): the .wasm is imported as a compiled module.
writeFileSync(join(dist, "workerd.mjs"), `import wasmModule from "./web/mcpvault_wasm_bg.wasm";
import * as wasm from "./web/mcpvault_wasm.js";
import { makeApi } from "./api.mjs";
wasm.initSync({ module: wasmModule });
export const { ${exported} } = makeApi(wasm);
/** Loaded synchronously; init() is here for code shared with browsers. */
export const init = () => Promise.resolve();
`);

writeFileSync(join(dist, "web.mjs"), `import initWasm, * as wasm from "./web/mcpvault_wasm.js";
import { makeApi } from "./api.mjs";
let ready = null;
let loaded = false;
/**
 * Loads the .wasm; await it once before new MCPVault() (browsers and workers cannot
 * load WebAssembly synchronously). input: a URL, Response, bytes or WebAssembly.Module;
 * default: mcpvault_wasm_bg.wasm next to this file.
 */
export function init(input) {
  ready ??= initWasm(input === undefined ? undefined : { module_or_path: input }).then(() => {
    loaded = true;
  });
  return ready;
}
export const { ${exported} } = makeApi(wasm, () => loaded);
`);

const wasmFile = join(dist, "web", "mcpvault_wasm_bg.wasm");
const size = statSync(wasmFile).size;
const gz = gzipSync(readFileSync(wasmFile), { level: 9 }).length;
console.log(`mcpvault_wasm_bg.wasm: ${size} bytes, ${gz} gzipped`);
