// The prior art's allocator leaked 6–70 KB of wasm memory per verify. Here,
// after warm-up, verifications must not grow the memory by more than a page.
import test from "node:test";
import assert from "node:assert";
import { MCPVault, __wasmMemory } from "mcpvault";

const NOW = 1_800_000_000;
const PAGE = 65536;

function setup(options) {
  const vault = new MCPVault({ now: () => NOW, ...options });
  const { privateKey, publicKey } = vault.generateKeypair();
  let token = vault.mint(privateKey, { tools: ["db_query", "file_read"], ttl: 3600, issuer: "i", subject: "s",
    argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }] });
  for (const ttl of [3000, 2000, 1000]) token = vault.attenuate(token, { ttl });
  return { vault, publicKey, token };
}

function churn(vault, publicKey, token, n) {
  for (let i = 0; i < n; i++) {
    vault.verify(token, publicKey, { requestedTool: "db_query", arguments: { max_rows: i % 100 } });
    if (i % 10 === 0) {
      try { vault.verify(token, publicKey, { requestedTool: "admin" }); } catch (e) { if (e.code !== "tool_not_allowed") throw e; }
    }
  }
}

for (const [label, options, n] of [["100,000 cached verifies", { cache: 16 }, 100_000], ["10,000 cold verifies", {}, 10_000]]) {
  test(`${label} grow the wasm memory by at most one page`, () => {
    const { vault, publicKey, token } = setup(options);
    churn(vault, publicKey, token, 2_000);
    const before = __wasmMemory().buffer.byteLength;
    churn(vault, publicKey, token, n);
    const after = __wasmMemory().buffer.byteLength;
    console.log(`${label}: wasm memory ${before} -> ${after} bytes`);
    assert.ok(after - before <= PAGE, `grew by ${after - before} bytes`);
  });
}

test("4 MiB of tiny objects is refused before it is parsed: the memory stays, the answer is quick", async () => {
  const { Guard } = await import("mcpvault");
  const { publicKey, token } = setup({});
  const g = new Guard({ publicKey, now: () => NOW });
  const rows = Array.from({ length: 599_000 }, () => '{"":0}').join(",");
  const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"a":[${rows}]}}}`;
  assert.ok(body.length > 4_000_000);
  const before = __wasmMemory().buffer.byteLength;
  for (const headers of [{}, { "x-mcpvault-token": token }]) {
    const out = await g.decide({ httpMethod: "POST", headers, body });
    assert.deepStrictEqual([out.allowed, out.status], [false, 400]);
    assert.match(JSON.stringify(out.response), /more than 10000 objects and arrays/);
  }
  const after = __wasmMemory().buffer.byteLength;
  console.log(`4 MiB of objects: wasm memory ${before} -> ${after} bytes`);
  // the body itself crosses into the module (4 MiB, twice over as JSON text), never its 599,000 parsed objects
  assert.ok(after - before <= 16 * 1024 * 1024, `grew by ${after - before} bytes`);
});

test("a generated private key is not left readable in the module's memory", () => {
  const vault = new MCPVault({ now: () => NOW });
  const { privateKey } = vault.generateKeypair();
  const memory = Buffer.from(__wasmMemory().buffer);
  assert.strictEqual(memory.indexOf(Buffer.from(privateKey, "latin1")), -1);
});

test("a server raises the body limits with maxBodyContainers / maxBodyValues; extractToken counts a body before searching it", async () => {
  const { Guard, extractToken } = await import("mcpvault");
  const { publicKey, token } = setup({});
  const rows = Array.from({ length: 10_001 }, (_, i) => ({ id: i }));
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: { rows, max_rows: 5 } } });
  const headers = { "x-mcpvault-token": token };
  const strict = new Guard({ publicKey, now: () => NOW });
  assert.deepStrictEqual([(await strict.decide({ httpMethod: "POST", headers, body })).status], [400]);
  const bulk = new Guard({ publicKey, now: () => NOW, maxBodyContainers: 20_000, maxBodyValues: 200_000 });
  const out = await bulk.decide({ httpMethod: "POST", headers, body });
  assert.deepStrictEqual([out.allowed, out.status], [true, 200]);
  // a token in _meta of a body over the default limits is not looked for (the body is counted, never parsed)
  const huge = `{"jsonrpc":"2.0","method":"m","params":{"_meta":{"token":"${token}"},"a":[${Array(200_000).fill(0).join(",")}]}}`;
  assert.strictEqual(extractToken({ headers: {} }, huge), null);
  assert.strictEqual(extractToken({ headers: {} }, huge.replace(/,0/g, "")), token);
});
