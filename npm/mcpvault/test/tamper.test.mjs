// Tamper sweep through the wasm build (the same as tests/security.rs
// natively): for tokens of 0, 1 and 3 hops, every single-bit flip of the
// token's bytes and every truncation is refused as bad_signature or
// malformed_token, with the opaque message. Also the raw boundary's clock:
// NaN, negative, fractional or huge `now` is invalid_request, never 1970.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MCPVault } from "mcpvault";
import { createRequire } from "node:module";
const raw = createRequire(import.meta.url)("../dist/cjs/mcpvault_wasm.js"); // the instance "mcpvault" uses

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const { privateKey, publicKey } = vault.generateKeypair();

function hops(n) {
  let t = vault.mint(privateKey, { tools: ["db_query", "file_read"], ttl: 3600, issuer: "auth-server", subject: "agent-a" });
  for (const ttl of [3000, 2000, 1000].slice(0, n)) t = vault.attenuate(t, { ttl });
  return t;
}

const b64 = {
  decode: (t) => Buffer.from(t, "base64url"),
  encode: (b) => Buffer.from(b).toString("base64url"),
};

function refused(token, where) {
  try {
    vault.verify(token, publicKey, { requestedTool: "db_query" });
  } catch (e) {
    assert.ok(["bad_signature", "malformed_token"].includes(e.code), `${where}: ${e.code}`);
    assert.ok(["token signature is not valid", "token is malformed"].includes(e.message), `${where}: ${e.message}`);
    return e.code;
  }
  assert.fail(`${where}: a tampered token verified`);
}

for (const n of [0, 1, 3]) {
  test(`every bit flip and truncation of a ${n}-hop token is refused (wasm)`, () => {
    const token = hops(n);
    vault.verify(token, publicKey, { requestedTool: "db_query" });
    const bytes = b64.decode(token);
    const codes = {};
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Uint8Array.from(bytes);
        b[i] ^= 1 << bit;
        const code = refused(b64.encode(b), `byte ${i} bit ${bit}`);
        codes[code] = (codes[code] ?? 0) + 1;
      }
    }
    for (let len = 0; len < bytes.length; len++) refused(b64.encode(bytes.subarray(0, len)), `len ${len}`);
    console.log(`${bytes.length * 8} flips of a ${bytes.length}-byte ${n}-hop token:`, codes);
  });
}

test("the raw boundary refuses a clock that is not whole unix seconds", () => {
  const token = hops(1);
  const request = JSON.stringify({ method: "tools/call", tool: "db_query" });
  for (const now of [NaN, -1, 1.5, Infinity, -Infinity, 1e300]) {
    const out = JSON.parse(raw.verify(token, publicKey, request, now));
    assert.equal(out.error?.code, "invalid_request", `now=${now}: ${JSON.stringify(out)}`);
  }
  assert.ok(JSON.parse(raw.verify(token, publicKey, request, NOW)).ok);
});
