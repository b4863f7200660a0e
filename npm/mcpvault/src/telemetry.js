// Telemetry of the guard's decisions: OpenTelemetry spans and metrics through `@opentelemetry/api` when the
// application has it (an optional peer dependency: without it, or without an SDK, nothing is recorded), and an
// in-process Prometheus registry for `metricsText()` / mcpvault-express's `metricsHandler()`. Written once;
// scripts/build.mjs appends it to api.js in every entry.
//
// Everything recorded is read from the core's decision record (src/guard.rs, `Decision`): the method, tool, prompt,
// resource URI, request id, session id, subject, issuer, depth, cache hit, token source, code. This file only
// renames those fields to attribute names (SCHEMA.md, "Telemetry"); it decides nothing, and it never reads the
// token, the arguments or a Datalog check.
function makeTelemetry(initialApi) {
  const VERSION = "0.1.0";
  /** Histogram buckets of the authorization duration, in seconds (a cached verify takes tens of microseconds). */
  const BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
  /** Metric labels name a method only when it is one of these (a caller chooses the method: any other is `_OTHER`,
   * so a client cannot grow the number of series). The MCP methods of the semantic conventions, and the guard's own. */
  const METHODS = new Set([
    "completion/complete", "elicitation/create", "initialize", "logging/setLevel", "notifications/cancelled",
    "notifications/initialized", "notifications/message", "notifications/progress",
    "notifications/prompts/list_changed", "notifications/resources/list_changed", "notifications/resources/updated",
    "notifications/roots/list_changed", "notifications/tools/list_changed", "ping", "prompts/get", "prompts/list",
    "resources/list", "resources/read", "resources/subscribe", "resources/templates/list", "resources/unsubscribe",
    "roots/list", "sampling/createMessage", "tools/call", "tools/list",
    "mcpvault/check", "jsonrpc/response", "batch", "http/GET", "http/POST", "http/DELETE",
  ]);
  const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/;
  const getter = { get: (c, k) => c?.[k], keys: (c) => Object.keys(c ?? {}) };

  let otel = null;
  let tracer = null;
  let tracerProvider = null;
  let meterProvider = null;
  let instruments = null;
  let prometheus = null;

  /** Uses `api` (the `@opentelemetry/api` module) for spans and metrics; null turns them off. */
  function use(api) {
    otel = api && typeof api.trace?.getTracer === "function" && typeof api.context?.active === "function" ? api : null;
    tracer = null;
    tracerProvider = null;
    meterProvider = null;
    instruments = null;
  }
  use(initialApi);

  const methodLabel = (m) => (typeof m === "string" && METHODS.has(m) ? m : "_OTHER");

  /**
   * The span's name (semantic conventions: `{mcp.method.name} {target}`, the target a tool or prompt name), the
   * target only when the decision allowed it: a refused name is the caller's choice (anyone's, without a token), and a
   * span name per request would grow every backend that keys on it. The attributes still carry it.
   */
  function spanName(d) {
    const method = d.method == null ? "mcpvault.authorize" : methodLabel(d.method);
    const target = d.allowed === true ? (d.tool ?? d.prompt) : null;
    return target ? `${method} ${target}` : method;
  }

  /** The JSON-RPC error code of a refused outcome, as the guard answered it. */
  function rpcCode(outcome) {
    const r = Array.isArray(outcome.response) ? outcome.response[0] : outcome.response;
    return r?.error?.code;
  }

  /** A decision's span attributes (SCHEMA.md, "Telemetry"). */
  function attributes(d, outcome) {
    const a = { "mcpvault.decision": d.allowed ? "allow" : "deny", "mcpvault.cache_hit": d.cache_hit === true };
    if (d.method != null) a["mcp.method.name"] = d.method;
    if (d.method === "tools/call") a["gen_ai.operation.name"] = "execute_tool";
    if (d.tool != null) a["gen_ai.tool.name"] = d.tool;
    if (d.prompt != null) a["gen_ai.prompt.name"] = d.prompt;
    if (d.resource_uri != null) a["mcp.resource.uri"] = d.resource_uri;
    if (d.request_id != null) a["jsonrpc.request.id"] = d.request_id;
    if (d.session_id != null) a["mcp.session.id"] = d.session_id;
    if (d.subject != null) a["mcpvault.subject"] = d.subject;
    if (d.issuer != null) a["mcpvault.issuer"] = d.issuer;
    if (d.depth != null) a["mcpvault.depth"] = d.depth;
    if (d.token_source != null) a["mcpvault.token_source"] = d.token_source;
    if (d.replayed_response) a["mcpvault.replayed_response"] = true;
    if (!d.allowed) {
      a["mcpvault.code"] = d.code;
      a["error.type"] = d.code;
      a["mcpvault.status"] = d.status;
      const rpc = rpcCode(outcome);
      if (rpc !== undefined) a["rpc.response.status_code"] = String(rpc);
      if (d.failed_block != null) a["mcpvault.failed_block"] = d.failed_block;
    }
    // the server policy's mapped scope and the soft rules that fired (issue 15): ids and names, never values
    if (d.scope != null) a["mcpvault.scope"] = d.scope;
    if (Array.isArray(d.soft_rules) && d.soft_rules.length > 0) a["mcpvault.soft_rules"] = d.soft_rules;
    return a;
  }

  /** A W3C trace context read directly (when no propagator is registered, or it reads another format). */
  function w3c(carrier) {
    const m = TRACEPARENT.exec(carrier.traceparent ?? "");
    if (!m || m[1] === "0".repeat(32) || m[2] === "0".repeat(16)) return null;
    const sc = { traceId: m[1], spanId: m[2], traceFlags: parseInt(m[3], 16) & 1, isRemote: true };
    if (carrier.tracestate && typeof otel.createTraceState === "function") {
      try {
        sc.traceState = otel.createTraceState(carrier.tracestate);
      } catch {
        // an unreadable tracestate is dropped, as the W3C propagator does
      }
    }
    return otel.trace.setSpanContext(otel.ROOT_CONTEXT, sc);
  }

  /** The context `carrier` ({ traceparent, tracestate }) continues, or null. */
  function extract(carrier) {
    if (!carrier?.traceparent) return null;
    const ctx = otel.propagation.extract(otel.ROOT_CONTEXT, carrier, getter);
    const sc = otel.trace.getSpanContext(ctx);
    return sc && otel.trace.isSpanContextValid(sc) ? ctx : w3c(carrier);
  }

  const validSpan = (ctx) => {
    const sc = ctx && otel.trace.getSpanContext(ctx);
    return sc && otel.trace.isSpanContextValid(sc) ? sc : null;
  };

  /** The tracer of the current global tracer provider: looked up on each use, because a proxy tracer taken before
   * the application registered its SDK through another copy of `@opentelemetry/api` (CommonJS and ESM are two) would
   * never reach it. */
  function currentTracer() {
    const provider = otel.trace.getTracerProvider();
    if (provider !== tracerProvider) {
      tracerProvider = provider;
      tracer = provider.getTracer("mcpvault", VERSION);
    }
    return tracer;
  }

  /** The instruments of the current global meter provider (a provider registered later gets new ones). */
  function meters() {
    const provider = otel.metrics?.getMeterProvider?.();
    if (!provider) return null;
    if (provider !== meterProvider) {
      const meter = provider.getMeter("mcpvault", VERSION);
      meterProvider = provider;
      instruments = {
        decisions: meter.createCounter("mcpvault.decisions", { unit: "{decision}", description: "Decisions of the mcpvault guard, one per message" }),
        duration: meter.createHistogram("mcpvault.authorization.duration", {
          unit: "s", description: "Time the guard took to decide a request (verification, store, audit)",
          advice: { explicitBucketBoundaries: BUCKETS },
        }),
        hits: meter.createCounter("mcpvault.cache.hits", { unit: "{verification}", description: "Verifications that reused a cached verified chain" }),
        misses: meter.createCounter("mcpvault.cache.misses", { unit: "{verification}", description: "Verifications that checked the signatures" }),
      };
    }
    return instruments;
  }

  /** Whether `provider` is the API's own no-op (no SDK registered): its tracers and meters record nothing. A proxy
   * (the API's global tracer provider) is what it delegates to. A provider whose class name a bundler rewrote counts
   * as live: the check can only skip work, never drop a recording SDK. */
  function noop(provider) {
    const p = typeof provider?.getDelegate === "function" ? provider.getDelegate() : provider;
    return p == null || /^Noop(Tracer|Meter)Provider$/.test(p.constructor?.name ?? "");
  }

  /** Whether an OpenTelemetry SDK listens (a tracer or meter provider registered): looked up on each use, so an SDK
   * registered later is seen. With the API installed and no SDK, a decision costs no telemetry work at all. */
  const listening = () => otel !== null && !(noop(otel.trace.getTracerProvider?.()) && noop(otel.metrics?.getMeterProvider?.()));

  /** Whether recording needs the guard's cache counters (something listens). */
  const active = () => prometheus !== null || listening();

  /**
   * Records one decided request: a span per decision (parent: the message's `_meta` trace context, else the
   * ambient span, else the HTTP `traceparent`; linked to the ambient or HTTP one when `_meta` was the parent), the
   * metrics, and the Prometheus registry when on. `at`: `{ start, end }` (ms since the epoch), `http` (`{
   * traceparent, tracestate }` of the request's headers), `hits`, `misses` (the cache counters' change).
   */
  function record(outcome, at) {
    const seconds = Math.max(0, (at.end - at.start) / 1000);
    const cached = outcome.decisions.some((d) => d.cache_hit === true);
    const decision = outcome.allowed ? "allow" : "deny";
    if (prometheus) prometheus.add(outcome, seconds, cached, decision, at);
    if (!listening()) return;
    try {
      const ambient = otel.context.active();
      const fallback = validSpan(ambient) ? ambient : extract(at.http) ?? ambient;
      const tracer = currentTracer();
      for (const d of outcome.decisions) {
        const meta = d.traceparent ? extract({ traceparent: d.traceparent, tracestate: d.tracestate }) : null;
        const parent = meta ?? fallback;
        const linked = meta ? validSpan(fallback) : null;
        const span = tracer.startSpan(spanName(d), {
          kind: otel.SpanKind.SERVER, startTime: at.start, links: linked ? [{ context: linked }] : [],
        }, parent);
        if (span.isRecording()) {
          span.setAttributes(attributes(d, outcome));
          if (!d.allowed) span.setStatus({ code: otel.SpanStatusCode.ERROR, message: d.message ?? d.code });
        }
        span.end(at.end);
      }
      const m = meters();
      if (m) {
        for (const d of outcome.decisions) {
          const labels = { "mcpvault.decision": d.allowed ? "allow" : "deny", "mcp.method.name": methodLabel(d.method) };
          if (!d.allowed) labels["mcpvault.code"] = d.code;
          m.decisions.add(1, labels);
        }
        m.duration.record(seconds, { "mcpvault.cache_hit": cached, "mcpvault.decision": decision });
        if (at.hits > 0) m.hits.add(at.hits);
        if (at.misses > 0) m.misses.add(at.misses);
      }
    } catch (e) {
      // telemetry observes decisions; it never changes one
      console.error("mcpvault: telemetry failed:", e);
    }
  }

  /** The in-process registry behind `metricsText()`: counters and a histogram, as Prometheus scrapes them. */
  function makePrometheus() {
    const decisions = new Map();
    const durations = new Map();
    let hits = 0;
    let misses = 0;
    const key = (labels) => JSON.stringify(labels);
    return {
      add(outcome, seconds, cached, decision, at) {
        for (const d of outcome.decisions) {
          const labels = [["decision", d.allowed ? "allow" : "deny"], ["code", d.allowed ? "" : d.code ?? ""], ["method", methodLabel(d.method)]];
          const k = key(labels);
          const e = decisions.get(k) ?? { labels, value: 0 };
          e.value += 1;
          decisions.set(k, e);
        }
        const labels = [["cache_hit", String(cached)], ["decision", decision]];
        const k = key(labels);
        let h = durations.get(k);
        if (!h) {
          h = { labels, buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
          durations.set(k, h);
        }
        BUCKETS.forEach((b, i) => {
          if (seconds <= b) h.buckets[i] += 1;
        });
        h.sum += seconds;
        h.count += 1;
        hits += at.hits ?? 0;
        misses += at.misses ?? 0;
      },
      text() {
        const esc = (v) => String(v).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
        const lab = (labels) => `{${labels.map(([k, v]) => `${k}="${esc(v)}"`).join(",")}}`;
        const num = (v) => (Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12))));
        const out = [];
        out.push("# HELP mcpvault_decisions_total Decisions of the mcpvault guard, one per message.");
        out.push("# TYPE mcpvault_decisions_total counter");
        for (const e of decisions.values()) out.push(`mcpvault_decisions_total${lab(e.labels)} ${e.value}`);
        out.push("# HELP mcpvault_authorization_duration_seconds Time the guard took to decide a request.");
        out.push("# TYPE mcpvault_authorization_duration_seconds histogram");
        for (const h of durations.values()) {
          BUCKETS.forEach((b, i) => out.push(`mcpvault_authorization_duration_seconds_bucket${lab([...h.labels, ["le", String(b)]])} ${h.buckets[i]}`));
          out.push(`mcpvault_authorization_duration_seconds_bucket${lab([...h.labels, ["le", "+Inf"]])} ${h.count}`);
          out.push(`mcpvault_authorization_duration_seconds_sum${lab(h.labels)} ${num(h.sum)}`);
          out.push(`mcpvault_authorization_duration_seconds_count${lab(h.labels)} ${h.count}`);
        }
        out.push("# HELP mcpvault_cache_hits_total Verifications that reused a cached verified chain.");
        out.push("# TYPE mcpvault_cache_hits_total counter");
        out.push(`mcpvault_cache_hits_total ${hits}`);
        out.push("# HELP mcpvault_cache_misses_total Verifications that checked the signatures.");
        out.push("# TYPE mcpvault_cache_misses_total counter");
        out.push(`mcpvault_cache_misses_total ${misses}`);
        return out.join("\n") + "\n";
      },
    };
  }

  /** The Prometheus text exposition (0.0.4) of every guard's decisions in this process since the registry was
   * turned on (the first call of `metricsText()` or mcpvault-express's `metricsHandler()`). */
  function metricsText() {
    prometheus ??= makePrometheus();
    return prometheus.text();
  }

  /** The current time in milliseconds since the epoch, sub-millisecond where the runtime has `performance`. */
  const clock = typeof performance !== "undefined" && typeof performance.now === "function" && Number.isFinite(performance.timeOrigin)
    ? () => performance.timeOrigin + performance.now()
    : () => Date.now();

  return { use, record, active, metricsText, attributes, spanName, clock, enabled: () => otel !== null };
}
