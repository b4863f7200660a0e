// make test-dist, in a project that installed the npm tarballs: the CommonJS entry of every package.
"use strict";
const assert = require("node:assert");
const { MCPVault, Guard } = require("mcpvault");
const { createMcpVaultMiddleware } = require("mcpvault-express");
const vault = new MCPVault();
const { privateKey, publicKey } = vault.generateKeypair();
const token = vault.mint(privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" });
assert.strictEqual(vault.verify(token, publicKey, { tool: "db_query" }).tool, "db_query");
assert.strictEqual(typeof createMcpVaultMiddleware({ publicKeyHex: publicKey })(), "function");
assert.strictEqual(typeof Guard, "function");
console.log("cjs ok");
