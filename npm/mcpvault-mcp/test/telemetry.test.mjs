// Spans of withMcpVault and of the middleware in front of it, through the OpenTelemetry SDK's in-memory exporter: a
// real SDK client's `_meta.traceparent` (in process) and HTTP `traceparent` header (Streamable HTTP) are continued, a
// refusal is an ERROR span with the code, and the token is in no span.
import test from "node:test";
import assert from "node:assert";
import express5 from "express5";
import { context, propagation, trace, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { tokens, makeMcpServer, mcpError, serveHttp, httpClient } from "./fixtures/servers.mjs";

const spans = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(provider);
const finished = async () => {
  await provider.forceFlush();
  return spans.getFinishedSpans();
};
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

test("withMcpVault: each request a span continuing the client's _meta.traceparent; a refusal an ERROR span", async (t) => {
  spans.reset();
  const [c, s] = InMemoryTransport.createLinkedPair();
  await makeMcpServer({ seen: [] }).connect(s);
  const client = new Client({ name: "agent-b", version: "1.0.0" });
  await client.connect(c);
  t.after(() => client.close());
  const { narrow } = tokens();
  const meta = { token: narrow, traceparent: `00-${TRACE}-00f067aa0ba902b7-01` };
  await client.callTool({ name: "db_query", arguments: { sql: "select secret", max_rows: 3 }, _meta: meta });
  assert.deepStrictEqual(await mcpError(client.callTool({ name: "admin_delete", arguments: { id: "1" }, _meta: meta })),
    { rpc: -32013, code: "tool_not_allowed" });
  const all = await finished();
  const ok = all.find((x) => x.name === "tools/call db_query");
  // a refused call's span is named by its method alone (the name the caller chose stays an attribute)
  const no = all.find((x) => x.name === "tools/call" && x.attributes["gen_ai.tool.name"] === "admin_delete");
  assert.ok(ok && no, all.map((x) => x.name).join(", "));
  assert.strictEqual(ok.spanContext().traceId, TRACE);
  assert.strictEqual(ok.attributes["mcpvault.decision"], "allow");
  assert.strictEqual(ok.attributes["mcpvault.token_source"], "_meta.token");
  assert.strictEqual(ok.attributes["mcpvault.depth"], 1);
  assert.strictEqual(no.spanContext().traceId, TRACE);
  assert.strictEqual(no.status.code, SpanStatusCode.ERROR);
  assert.strictEqual(no.attributes["error.type"], "tool_not_allowed");
  const text = JSON.stringify(all.map((x) => [x.name, x.attributes, x.status]));
  assert.ok(!text.includes(narrow.slice(0, 32)) && !text.includes("select secret"));
});

test("Streamable HTTP: the middleware's and withMcpVault's spans both continue the HTTP traceparent header", async (t) => {
  spans.reset();
  const server = await serveHttp(express5, {});
  t.after(() => server.close());
  const { narrow } = tokens();
  const traceId = "0af7651916cd43dd8448eb211c80319c";
  const client = new Client({ name: "agent-b", version: "1.0.0" });
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  await client.connect(new StreamableHTTPClientTransport(server.url, {
    requestInit: { headers: { Authorization: `Bearer ${narrow}`, traceparent: `00-${traceId}-b7ad6b7169203331-01` } },
  }));
  t.after(() => client.close());
  await client.callTool({ name: "db_query", arguments: { sql: "s", max_rows: 1 } });
  const calls = (await finished()).filter((x) => x.name === "tools/call db_query");
  assert.strictEqual(calls.length, 2, "one span from the middleware, one from withMcpVault");
  assert.ok(calls.every((x) => x.spanContext().traceId === traceId));
  assert.deepStrictEqual(calls.map((x) => x.attributes["mcpvault.token_source"]).sort(), ["bearer", "transport"]);
  void httpClient;
});
