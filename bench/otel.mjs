// The cost of telemetry on the cached verify path: one Guard (cache on), one token, `tools/call` decided again and
// again (`Guard.decide`, no store), with telemetry off, with @opentelemetry/api but no SDK (the no-op an application
// without tracing gets), and with the SDK recording every span and metric (SimpleSpanProcessor into an exporter that
// drops them, a MeterProvider with a reader). 11 rounds of 4,000 decisions, each round measuring the three in turn:
// medians, and the overhead as the median of the per-round ratios; writes
// build/bench/otel.json (bench/report.mjs puts it in BENCHMARKS.md) and prints the figures.
//   node bench/otel.mjs
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as otel from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { MCPVault, Guard, useOpenTelemetry } from "../npm/mcpvault/dist/node.mjs";

const NOW = 1_800_000_000;
const ROUNDS = 11;
const N = 4000;
const vault = new MCPVault({ now: () => NOW });
const keys = vault.generateKeypair();
const token = vault.mint(keys.privateKey, { tools: ["db_query"], ttl: 600, issuer: "auth-server", subject: "agent-a" });
const guard = new Guard({ publicKey: keys.publicKey, now: () => NOW, cache: 16 });
const parts = {
  headers: { authorization: `Bearer ${token}` },
  body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call",
    params: { name: "db_query", arguments: {}, _meta: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" } } }),
};

async function round() {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const o = await guard.decide(parts);
    if (!o.allowed) throw new Error("refused");
  }
  return Number(process.hrtime.bigint() - t0) / 1000 / N; // µs per decision
}

let exported = 0;
const drop = { export: (spans, done) => { exported += spans.length; done({ code: 0 }); }, shutdown: async () => {} };
otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
otel.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: drop })] });
class Reader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const reader = new Reader();
const meterProvider = new MeterProvider({ readers: [reader] });

/** The three set-ups, switched between rounds (this machine's speed drifts: each round measures all three in turn,
 * and the overhead is the median of the per-round ratios). */
const setups = {
  off: () => useOpenTelemetry(null),
  api_no_sdk: () => {
    otel.trace.disable();
    otel.metrics.disable();
    useOpenTelemetry(otel);
  },
  sdk: () => {
    otel.trace.setGlobalTracerProvider(tracerProvider);
    otel.metrics.setGlobalMeterProvider(meterProvider);
    useOpenTelemetry(otel);
  },
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const times = { off: [], api_no_sdk: [], sdk: [] };
for (const set of Object.values(setups)) {
  set();
  await round(); // warm-up
}
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, set] of Object.entries(setups)) {
    set();
    times[name].push(await round());
  }
}
const { resourceMetrics } = await reader.collect();
if (exported < N || resourceMetrics.scopeMetrics.length === 0) throw new Error("the SDK recorded nothing");
const out = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
const ratio = (k) => median(times[k].map((t, i) => t / times.off[i]));

const result = {
  decisions_per_round: N, rounds: ROUNDS,
  us_per_decision: { off: out.off, api_no_sdk: out.api_no_sdk, sdk: out.sdk },
  overhead_pct: { api_no_sdk: (ratio("api_no_sdk") - 1) * 100, sdk: (ratio("sdk") - 1) * 100 },
};
const dir = fileURLToPath(new URL("../build/bench/", import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}otel.json`, JSON.stringify(result, null, 2) + "\n");
const f = (x) => x.toFixed(1);
console.log(`cached Guard.decide (tools/call, no store), median of ${ROUNDS} x ${N}:`);
console.log(`  telemetry off                 ${f(out.off)} us`);
console.log(`  @opentelemetry/api, no SDK    ${f(out.api_no_sdk)} us  (+${f(out.api_no_sdk - out.off)} us, ${f(result.overhead_pct.api_no_sdk)} %)`);
console.log(`  SDK: every span and metric    ${f(out.sdk)} us  (+${f(out.sdk - out.off)} us, ${f(result.overhead_pct.sdk)} %)`);
