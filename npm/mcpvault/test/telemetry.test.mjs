// Telemetry through the OpenTelemetry SDK's in-memory exporters: real spans and metric points from the Guard, with
// the caller's trace continued from `_meta.traceparent` (and from HTTP headers), refusals as errors with
// `error.type` = the code, and no token text, argument value or Datalog anywhere in what is exported.
import test from "node:test";
import assert from "node:assert";
import { context, metrics, propagation, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import {
  AggregationTemporality, DataPointType, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import { MCPVault, Guard, authorizeCall, metricsText } from "mcpvault";
import { MemoryStore } from "mcpvault-store";

const spans = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
trace.setGlobalTracerProvider(tracerProvider);
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const root = vault.mint(keys.privateKey, {
  tools: ["db_query", "file_read"], ttl: 600, issuer: "auth-server", subject: "agent-a",
  argLimits: [{ tool: "db_query", arg: "max_rows", op: "max", value: 100 }],
});
const token = vault.attenuate(root, { tools: ["db_query"], ttl: 300 });
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const SECRET = "s3cret-argument-value";
const call = (id, name, args, meta = {}) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args, _meta: meta } });

/** The spans exported so far (SimpleSpanProcessor exports asynchronously). */
async function finished() {
  await tracerProvider.forceFlush();
  return spans.getFinishedSpans();
}

async function metricPoints() {
  await reader.forceFlush();
  const all = metricExporter.getMetrics();
  const last = all[all.length - 1];
  const out = new Map();
  for (const sm of last?.scopeMetrics ?? []) for (const m of sm.metrics) out.set(m.descriptor.name, m);
  return out;
}

/** Every string a span or metric export holds (names, attributes, events, status, links), to search for secrets. */
function exportedText(finished, points) {
  return JSON.stringify(finished.map((s) => ({ name: s.name, attributes: s.attributes, status: s.status, events: s.events, links: s.links })))
    + JSON.stringify([...points.values()].map((m) => ({ d: m.descriptor, p: m.dataPoints.map((p) => p.attributes) })));
}

test("a span per decision, continuing _meta.traceparent, with the decision record's attributes; a refusal is an error", async () => {
  spans.reset();
  const store = new MemoryStore();
  const guard = new Guard({ publicKey: keys.publicKey, store, now: () => NOW });
  const headers = { "mcp-session-id": "sess-42", "x-mcpvault-token": token };
  const allowed = await guard.decide({
    headers, body: call(1, "db_query", { max_rows: 5, q: SECRET }, { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "rojo=00f067aa0ba902b7" }),
  });
  assert.strictEqual(allowed.allowed, true);
  const refused = await guard.decide({ headers, body: call(2, "file_read", { path: SECRET }, { traceparent: `00-${TRACE}-${PARENT}-01` }) });
  assert.strictEqual(refused.allowed, false);
  const args = await guard.decide({ headers, body: call(3, "db_query", { max_rows: 4242 }) });
  assert.strictEqual(args.decisions[0].code, "argument_not_allowed");

  const [ok, no, arg] = (await finished());
  assert.strictEqual(ok.name, "tools/call db_query");
  assert.strictEqual(ok.kind, SpanKind.SERVER);
  assert.strictEqual(ok.spanContext().traceId, TRACE);
  assert.strictEqual(ok.parentSpanContext?.spanId ?? ok.parentSpanId, PARENT);
  assert.strictEqual(ok.spanContext().traceState?.get("rojo"), "00f067aa0ba902b7");
  assert.deepStrictEqual(ok.attributes, {
    "mcp.method.name": "tools/call",
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "db_query",
    "jsonrpc.request.id": "1",
    "mcp.session.id": "sess-42",
    "mcpvault.decision": "allow",
    "mcpvault.subject": "agent-a",
    "mcpvault.issuer": "auth-server",
    "mcpvault.scope": "db_query:call",
    "mcpvault.depth": 1,
    "mcpvault.cache_hit": false,
    "mcpvault.token_source": "header",
  });
  assert.strictEqual(ok.status.code, SpanStatusCode.UNSET);

  // a refused name is the caller's: the span is named by its method alone, the name stays an attribute
  assert.strictEqual(no.name, "tools/call");
  assert.strictEqual(no.attributes["gen_ai.tool.name"], "file_read");
  assert.strictEqual(no.spanContext().traceId, TRACE);
  assert.strictEqual(no.status.code, SpanStatusCode.ERROR);
  assert.strictEqual(no.status.message, 'tool "file_read" is not allowed (refused by block 1)');
  assert.strictEqual(no.attributes["error.type"], "tool_not_allowed");
  assert.strictEqual(no.attributes["mcpvault.code"], "tool_not_allowed");
  assert.strictEqual(no.attributes["mcpvault.decision"], "deny");
  assert.strictEqual(no.attributes["mcpvault.status"], 403);
  assert.strictEqual(no.attributes["rpc.response.status_code"], "-32013");
  assert.strictEqual(no.attributes["mcpvault.failed_block"], 1);
  assert.strictEqual(no.attributes["mcpvault.cache_hit"], true, "the second call of the token reuses its chain");

  // no _meta trace context, no ambient span: a new trace
  assert.notStrictEqual(arg.spanContext().traceId, TRACE);
  assert.strictEqual(arg.attributes["error.type"], "argument_not_allowed");

  const points = await metricPoints();
  const text = exportedText((await finished()), points);
  for (const secret of [token, root, token.slice(0, 32), token.slice(-32), SECRET, "4242", "max_rows", "check if"]) {
    assert.ok(!text.includes(secret), `exported telemetry holds ${secret.slice(0, 20)}`);
  }
});

test("the HTTP traceparent header is the parent when _meta has none; the ambient span is linked when _meta is", async () => {
  spans.reset();
  // resources and prompts are closed to tokens that grant none unless the server opens them
  const guard = new Guard({ publicKey: keys.publicKey, now: () => NOW, openResources: true, openPrompts: true });
  const httpTrace = "0af7651916cd43dd8448eb211c80319c";
  const out = await guard.decide({
    headers: { authorization: `Bearer ${token}`, traceparent: `00-${httpTrace}-b7ad6b7169203331-01` },
    body: { jsonrpc: "2.0", id: "p", method: "prompts/get", params: { name: "summarise" } },
  });
  assert.strictEqual(out.allowed, true);
  const [p] = (await finished());
  assert.strictEqual(p.name, "prompts/get summarise");
  assert.strictEqual(p.spanContext().traceId, httpTrace);
  assert.strictEqual(p.attributes["gen_ai.prompt.name"], "summarise");
  assert.strictEqual(p.attributes["mcpvault.token_source"], "bearer");

  // inside an application span, a message carrying _meta.traceparent: parent from _meta, the ambient span linked
  spans.reset();
  const tracer = trace.getTracer("app");
  await tracer.startActiveSpan("app request", async (appSpan) => {
    await guard.decide({
      headers: { authorization: `Bearer ${token}` },
      body: { jsonrpc: "2.0", id: 9, method: "resources/read", params: { uri: "file:///srv/report.pdf", _meta: { traceparent: `00-${TRACE}-${PARENT}-01` } } },
    });
    const inner = await guard.decide({ headers: { authorization: `Bearer ${token}` }, body: { jsonrpc: "2.0", id: 10, method: "tools/list" } });
    assert.strictEqual(inner.allowed, true);
    appSpan.end();
  });
  const [r, list, app] = (await finished());
  assert.strictEqual(r.name, "resources/read");
  assert.strictEqual(r.attributes["mcp.resource.uri"], "file:///srv/report.pdf");
  assert.strictEqual(r.spanContext().traceId, TRACE);
  assert.strictEqual(r.links.length, 1);
  assert.strictEqual(r.links[0].context.spanId, app.spanContext().spanId);
  // without _meta, the ambient span is the parent
  assert.strictEqual(list.spanContext().traceId, app.spanContext().traceId);
  assert.strictEqual(list.name, "tools/list");
});

test("metric points: decisions by decision, code and method; duration by cache hit; cache hits and misses", async () => {
  const before = await metricPoints();
  const count = (m, pred) => (m?.dataPoints ?? []).filter((p) => pred(p.attributes)).reduce((n, p) => n + p.value, 0);
  const denied0 = count(before.get("mcpvault.decisions"), (a) => a["mcpvault.code"] === "missing_token");
  const guard = new Guard({ publicKey: keys.publicKey, now: () => NOW });
  await guard.decide({ body: call(1, "db_query", {}) });
  await guard.decide({ body: { jsonrpc: "2.0", id: 2, method: "vendor/secret-method-name" }, headers: { authorization: `Bearer ${token}` } });
  await guard.decide({ body: { jsonrpc: "2.0", id: 3, method: "vendor/secret-method-name" }, headers: { authorization: `Bearer ${token}` } });
  // the stateless function API reports too
  assert.strictEqual(authorizeCall(token, { tool: "db_query", arguments: { max_rows: 1 } }, { publicKey: keys.publicKey, now: NOW }).verified, true);
  const points = await metricPoints();
  const decisions = points.get("mcpvault.decisions");
  assert.strictEqual(decisions.descriptor.unit, "{decision}");
  assert.strictEqual(decisions.dataPointType, DataPointType.SUM);
  assert.strictEqual(count(decisions, (a) => a["mcpvault.code"] === "missing_token" && a["mcp.method.name"] === "tools/call" && a["mcpvault.decision"] === "deny"), denied0 + 1);
  // a method the caller made up is one label value, never its own series
  assert.ok(count(decisions, (a) => a["mcp.method.name"] === "_OTHER" && a["mcpvault.decision"] === "allow") >= 2);
  assert.ok(decisions.dataPoints.every((p) => !JSON.stringify(p.attributes).includes("secret-method")));
  const duration = points.get("mcpvault.authorization.duration");
  assert.strictEqual(duration.descriptor.unit, "s");
  assert.strictEqual(duration.dataPointType, DataPointType.HISTOGRAM);
  const cached = duration.dataPoints.find((p) => p.attributes["mcpvault.cache_hit"] === true);
  const cold = duration.dataPoints.find((p) => p.attributes["mcpvault.cache_hit"] === false);
  assert.ok(cached.value.count >= 1 && cold.value.count >= 1);
  assert.ok(cached.value.sum > 0 && cached.value.sum < 10);
  assert.deepStrictEqual(cached.value.buckets.boundaries.slice(0, 3), [0.00005, 0.0001, 0.00025]);
  assert.ok(points.get("mcpvault.cache.hits").dataPoints[0].value >= 2);
  assert.ok(points.get("mcpvault.cache.misses").dataPoints[0].value >= 1);
});

test("no SDK work when turned off: useOpenTelemetry(null) records nothing, and decisions are the same", async () => {
  const { useOpenTelemetry } = await import("mcpvault");
  spans.reset();
  useOpenTelemetry(null);
  try {
    const guard = new Guard({ publicKey: keys.publicKey, now: () => NOW });
    const out = await guard.decide({ headers: { authorization: `Bearer ${token}` }, body: call(1, "db_query", { max_rows: 1 }) });
    assert.strictEqual(out.allowed, true);
    assert.strictEqual((await finished()).length, 0);
  } finally {
    useOpenTelemetry(await import("@opentelemetry/api"));
  }
  assert.match(metricsText(), /# TYPE mcpvault_decisions_total counter/);
});
