// make test-dist, in a project that installed the npm tarballs: the ESM entries, one instance with the CommonJS one,
// the guard on a store, the middleware and withMcpVault on the MCP SDK.
import assert from "node:assert";
import { createRequire } from "node:module";
import { MCPVault, McpVaultError, Guard } from "mcpvault";
import { createMcpVaultMiddleware } from "mcpvault-express";
import { withMcpVault } from "mcpvault-mcp";
import { MemoryStore } from "mcpvault-store";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";

const cjs = createRequire(import.meta.url)("mcpvault");
assert.strictEqual(cjs.McpVaultError, McpVaultError, "one instance for both entries");
const vault = new MCPVault();
const { privateKey, publicKey } = vault.generateKeypair();
const once = vault.mint(privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s", singleUse: true });
const store = new MemoryStore();
const guard = new Guard({ publicKey, store });
const msg = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: {} } };
const first = await guard.decide({ body: msg, fallbackToken: once });
assert.ok(first.allowed && first.call_key);
await guard.complete(first, { result: { content: [] } });
assert.deepStrictEqual((await guard.decide({ body: msg, fallbackToken: once })).answers[0].result, { content: [] });
assert.strictEqual((await guard.decide({ body: { ...msg, id: 2 }, fallbackToken: once })).decisions[0].code, "replayed");
assert.strictEqual(typeof createMcpVaultMiddleware({ publicKeyHex: publicKey, store })(), "function");
withMcpVault(new McpServer({ name: "x", version: "1" }), { publicKeyHex: publicKey, store, checkTool: true });
console.log("esm ok");
