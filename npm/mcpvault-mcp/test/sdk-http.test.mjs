// A real MCP SDK client over Streamable HTTP against an McpServer behind mcpvault-express and withMcpVault,
// on Express 4 and 5, with withMcpVault applied before and after the tools are registered.
import test from "node:test";
import assert from "node:assert";
import express4 from "express4";
import express5 from "express5";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { MCPVault } from "mcpvault";
import { REDACTED } from "mcpvault-mcp";
import { vault, keys, tokens, now, serveHttp, httpClient } from "./fixtures/servers.mjs";

/** The mcpvault code of an HTTP refusal seen by the SDK client. */
function refusal(e) {
  assert.ok(e instanceof StreamableHTTPError, `expected an HTTP refusal, got ${e}`);
  const body = JSON.parse(e.message.slice(e.message.indexOf("{")));
  return { status: e.code, code: body.error.data.code };
}

async function refused(promise) {
  try {
    await promise;
  } catch (e) {
    return refusal(e);
  }
  assert.fail("allowed");
}

for (const [name, express] of [["Express 4", express4], ["Express 5", express5]]) {
  for (const wrap of ["after", "before"]) {
    test(`${name}, withMcpVault ${wrap} registerTool: allowed, refused, filtered, stripped, dry run`, async (t) => {
      const seen = [];
      const decisions = [];
      const server = await serveHttp(express, { seen, wrap, decisions });
      t.after(() => server.close());
      const { root, narrow } = tokens();

      const b = await httpClient(server.url, narrow);
      t.after(() => b.close());
      assert.deepStrictEqual((await b.listTools()).tools.map((x) => x.name), ["db_query", "mcpvault.check"]);
      const ok = await b.callTool({ name: "db_query", arguments: { sql: "select 1", max_rows: 100 } });
      assert.strictEqual(ok.content[0].text, 'db_query ok {"sql":"select 1","max_rows":100}');
      assert.deepStrictEqual(await refused(b.callTool({ name: "db_query", arguments: { sql: "x", max_rows: 1000 } })),
        { status: 403, code: "argument_not_allowed" });
      assert.deepStrictEqual(await refused(b.callTool({ name: "admin_delete", arguments: { id: "7" } })),
        { status: 403, code: "tool_not_allowed" });
      assert.deepStrictEqual(await refused(b.callTool({ name: "file_read", arguments: { path: "/etc/passwd" } })),
        { status: 403, code: "tool_not_allowed" });

      // the dry run answers without running anything
      const dry = await b.callTool({ name: "mcpvault.check", arguments: { tool: "admin_delete", arguments: { id: "7" } } });
      assert.strictEqual(dry.structuredContent.allowed, false);
      assert.strictEqual(dry.structuredContent.code, "tool_not_allowed");
      assert.strictEqual(dry.structuredContent.failedBlock, 1);
      assert.match(dry.structuredContent.failedCheck, /request_tool/);
      const dryOk = await b.callTool({ name: "mcpvault.check", arguments: { tool: "db_query", arguments: { max_rows: 5 } } });
      assert.deepStrictEqual([dryOk.structuredContent.allowed, dryOk.structuredContent.facts.tool], [true, "db_query"]);
      const dryBad = await b.callTool({ name: "mcpvault.check", arguments: {} });
      assert.strictEqual(dryBad.isError, true);

      // the handler ran once, for the allowed call, and never saw the token
      assert.deepStrictEqual(seen.map((s) => s.name), ["db_query"]);
      assert.ok(!seen[0].text.includes(narrow), "token reached the handler");
      assert.strictEqual(seen[0].authInfo.token, REDACTED);
      assert.deepStrictEqual([seen[0].authInfo.clientId, seen[0].authInfo.scopes], ["agent-a", ["db_query"]]);
      assert.strictEqual(seen[0].authInfo.extra.mcpvault.tool, "db_query");

      // the root token sees every tool
      const a = await httpClient(server.url, root);
      t.after(() => a.close());
      assert.deepStrictEqual((await a.listTools()).tools.map((x) => x.name).sort(),
        ["admin_delete", "db_query", "file_read", "mcpvault.check"]);
      assert.strictEqual((await a.callTool({ name: "admin_delete", arguments: { id: "1" } })).content[0].text, 'admin_delete ok {"id":"1"}');
      assert.ok(decisions.some((d) => d.allowed && d.tool === "admin_delete" && d.subject === "agent-a"));
    });
  }

  test(`${name}: no token, expired, wrong audience, another issuer`, async (t) => {
    const server = await serveHttp(express, { audience: "db-server" });
    t.after(() => server.close());
    assert.deepStrictEqual(await refused(httpClient(server.url, undefined)), { status: 401, code: "missing_token" });
    const expired = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s", audience: "db-server" },
      { now: now() - 120 });
    assert.deepStrictEqual(await refused(httpClient(server.url, expired)), { status: 401, code: "expired" });
    const elsewhere = tokens({ audience: "mail-server" }).narrow;
    assert.deepStrictEqual(await refused(httpClient(server.url, elsewhere)), { status: 401, code: "wrong_audience" });
    const other = new MCPVault();
    const forged = other.mint(other.generateKeypair().privateKey, { tools: ["db_query"], ttl: 60, issuer: "i", subject: "s" });
    assert.deepStrictEqual(await refused(httpClient(server.url, forged)), { status: 401, code: "bad_signature" });
    const good = await httpClient(server.url, tokens({ audience: "db-server" }).narrow);
    t.after(() => good.close());
    assert.strictEqual((await good.callTool({ name: "db_query", arguments: { sql: "x", max_rows: 1 } })).isError, undefined);
  });
}
