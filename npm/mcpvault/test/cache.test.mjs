import test from "node:test";
import assert from "node:assert";
import { createRequire } from "node:module";
import * as api from "mcpvault";

const { run } = createRequire(import.meta.url)("../test-support/vectors.cjs");
const { MCPVault, McpVaultError } = api;
const NOW = 1_800_000_000;

test("every vector, twice, through a vault with the verified-chain cache", () => {
  const vault = new MCPVault({ cache: 1024 });
  for (const label of ["node cached, pass 1", "node cached, pass 2"]) {
    const { passed, failed } = run(api, label, assert, vault);
    assert.ok(passed >= 40);
    assert.strictEqual(failed, 0);
  }
  assert.ok(vault.cacheStats().hits > 0);
});

test("a tampered twin of a cached token is refused; expiry passes while cached", () => {
  const vault = new MCPVault({ now: () => NOW, cache: 8 });
  const { privateKey, publicKey } = vault.generateKeypair();
  const token = vault.mint(privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" });
  vault.verify(token, publicKey, { requestedTool: "db_query" });
  const bytes = Buffer.from(token, "base64url");
  for (let i = 0; i < bytes.length; i += 5) {
    const twin = Buffer.from(bytes);
    twin[i] ^= 0x10;
    assert.throws(() => vault.verify(twin.toString("base64url"), publicKey, { requestedTool: "db_query" }),
      (e) => e instanceof McpVaultError && ["bad_signature", "malformed_token"].includes(e.code), `byte ${i}`);
  }
  assert.throws(() => vault.verify(token, publicKey, { requestedTool: "db_query", now: NOW + 60 }),
    (e) => e.code === "expired");
  assert.ok(vault.cacheStats().hits >= 1);
  assert.throws(() => new MCPVault({ cache: -1 }), TypeError);
});
