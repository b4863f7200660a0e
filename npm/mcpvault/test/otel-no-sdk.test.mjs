// With @opentelemetry/api installed but no SDK registered (the API's no-op providers), a decision does no telemetry
// work at all (not even reading the cache's counters); an SDK registered later is seen at the next decision.
import test from "node:test";
import assert from "node:assert";
import { metrics, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { MCPVault, Guard } from "mcpvault";

const NOW = 1_800_000_000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a" });
const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "db_query", arguments: {} } });

/** A guard whose telemetry reads of the cache counters are counted. */
function counted() {
  const g = new Guard({ publicKey: keys.publicKey, cache: 8, now: () => NOW });
  const stats = g.cacheStats.bind(g);
  g.reads = 0;
  g.cacheStats = () => { g.reads += 1; return stats(); };
  return g;
}

test("no SDK: no telemetry work; a tracer provider registered later records the next decision", async () => {
  const g = counted();
  for (let i = 0; i < 3; i++) assert.equal((await g.decide({ body, fallbackToken: token })).allowed, true);
  assert.equal(g.reads, 0, "the cache counters were read for telemetry nobody listens to");

  const spans = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
  assert.ok(trace.setGlobalTracerProvider(provider));
  assert.equal((await g.decide({ body, fallbackToken: token })).allowed, true);
  await provider.forceFlush();
  assert.deepEqual(spans.getFinishedSpans().map((s) => s.name), ["tools/call db_query"]);
  // the counters' baseline is taken when telemetry turns on, then their change is read after the decision
  assert.equal(g.reads, 2);
  trace.disable();
  spans.reset();
  await g.decide({ body, fallbackToken: token });
  assert.equal(g.reads, 2, "after trace.disable() nobody listens again");
});

test("a meter provider alone is listening too", async () => {
  const g = counted();
  // decisions before any SDK: the cache counts them, telemetry does not report them later
  for (let i = 0; i < 3; i++) await g.decide({ body, fallbackToken: token });
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  assert.ok(metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] })));
  await g.decide({ body, fallbackToken: token });
  assert.equal(g.reads, 2);
  await reader.forceFlush();
  // the cache counted from when telemetry turned on: this decision's one verification, not the guard's whole past
  const points = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((sm) => sm.metrics));
  const total = (name) => points.filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints).reduce((n, p) => n + p.value, 0);
  assert.equal(total("mcpvault.cache.hits") + total("mcpvault.cache.misses"), 1);
  const names = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((sm) => sm.metrics.map((m) => m.descriptor.name)));
  assert.ok(names.includes("mcpvault.decisions"), names.join(","));
  metrics.disable();
});
