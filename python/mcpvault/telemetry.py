"""Telemetry of the guard's decisions through ``opentelemetry-api``, when it is importable (else nothing is recorded).

Everything recorded is read from the core's decision record (``Decision`` in src/guard.rs, the ``decisions`` of an
outcome): this module only renames its fields to the attribute names of SCHEMA.md ("Telemetry"), the same as the npm
package's ``src/telemetry.js``. It decides nothing, and it never reads the token, the arguments or a Datalog check.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, Mapping, Optional

try:  # an optional dependency: without it, record() does nothing
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised by the test that hides the package
    _trace = None

VERSION = "0.1.0"
#: Histogram buckets of the authorization duration, in seconds.
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: A metric label names a method only when it is one of these (the MCP methods of the semantic conventions and the
#: guard's own); any other is ``_OTHER``, so a client cannot grow the number of series. The npm package's list.
METHODS = frozenset((
    "completion/complete", "elicitation/create", "initialize", "logging/setLevel", "notifications/cancelled",
    "notifications/initialized", "notifications/message", "notifications/progress",
    "notifications/prompts/list_changed", "notifications/resources/list_changed", "notifications/resources/updated",
    "notifications/roots/list_changed", "notifications/tools/list_changed", "ping", "prompts/get", "prompts/list",
    "resources/list", "resources/read", "resources/subscribe", "resources/templates/list", "resources/unsubscribe",
    "roots/list", "sampling/createMessage", "tools/call", "tools/list",
    "mcpvault/check", "jsonrpc/response", "batch", "http/GET", "http/POST", "http/DELETE",
))
_TRACEPARENT = re.compile(r"^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$")

_state: Dict[str, Any] = {"tracer_provider": None, "tracer": None, "meter_provider": None, "instruments": None}


# The API's own providers when no SDK is set: their tracers and meters record nothing.
_NOOP_PROVIDERS = frozenset((
    "ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "ProxyMeterProvider", "NoOpMeterProvider"))


def enabled() -> bool:
    """Whether an OpenTelemetry SDK listens: ``opentelemetry-api`` importable and a tracer or meter provider set.
    Looked up on each call, so a provider set later is seen; with the API alone a decision costs no telemetry work.
    A provider of another class counts as listening (the check can only skip work, never drop a recording SDK)."""
    if _trace is None:
        return False
    return type(_trace.get_tracer_provider()).__name__ not in _NOOP_PROVIDERS \
        or type(_metrics.get_meter_provider()).__name__ not in _NOOP_PROVIDERS


def method_label(method: Optional[str]) -> str:
    return method if isinstance(method, str) and method in METHODS else "_OTHER"


def span_name(d: Mapping[str, Any]) -> str:
    """``{mcp.method.name} {target}`` (semantic conventions), the target a tool or prompt name, only when the decision
    allowed it: a refused name is the caller's choice (anyone's, without a token), and a span name per request would
    grow every backend that keys on it. The attributes still carry it."""
    method = "mcpvault.authorize" if d.get("method") is None else method_label(d["method"])
    target = (d.get("tool") or d.get("prompt")) if d.get("allowed") is True else None
    return f"{method} {target}" if target else method


def _rpc_code(outcome: Mapping[str, Any]) -> Any:
    r = outcome.get("response")
    if isinstance(r, list):
        r = r[0] if r else None
    if isinstance(r, dict) and isinstance(r.get("error"), dict):
        return r["error"].get("code")
    return None


def attributes(d: Mapping[str, Any], outcome: Mapping[str, Any]) -> Dict[str, Any]:
    """A decision's span attributes (SCHEMA.md, "Telemetry")."""
    a: Dict[str, Any] = {"mcpvault.decision": "allow" if d["allowed"] else "deny",
                         "mcpvault.cache_hit": d.get("cache_hit") is True}
    renames = (("method", "mcp.method.name"), ("tool", "gen_ai.tool.name"), ("prompt", "gen_ai.prompt.name"),
               ("resource_uri", "mcp.resource.uri"), ("request_id", "jsonrpc.request.id"),
               ("session_id", "mcp.session.id"), ("subject", "mcpvault.subject"), ("issuer", "mcpvault.issuer"),
               ("depth", "mcpvault.depth"), ("token_source", "mcpvault.token_source"))
    for field, name in renames:
        if d.get(field) is not None:
            a[name] = d[field]
    if d.get("method") == "tools/call":
        a["gen_ai.operation.name"] = "execute_tool"
    if d.get("replayed_response"):
        a["mcpvault.replayed_response"] = True
    if not d["allowed"]:
        a["mcpvault.code"] = d.get("code")
        a["error.type"] = d.get("code")
        a["mcpvault.status"] = d.get("status")
        rpc = _rpc_code(outcome)
        if rpc is not None:
            a["rpc.response.status_code"] = str(rpc)
        if d.get("failed_block") is not None:
            a["mcpvault.failed_block"] = d["failed_block"]
    # the server policy's mapped scope and the soft rules that fired (issue 15): ids and names, never values
    if d.get("scope") is not None:
        a["mcpvault.scope"] = d["scope"]
    if d.get("soft_rules"):
        a["mcpvault.soft_rules"] = list(d["soft_rules"])
    return a


def _valid(ctx: Any) -> Any:
    sc = _trace.get_current_span(ctx).get_span_context() if ctx is not None else None
    return sc if sc is not None and sc.is_valid else None


def _extract(carrier: Mapping[str, Optional[str]]) -> Any:
    """The context ``carrier`` (``traceparent``, ``tracestate``) continues, or None: through the global propagator,
    else read as W3C trace context."""
    carrier = {k: v for k, v in carrier.items() if v}
    if "traceparent" not in carrier:
        return None
    ctx = _propagate.extract(carrier, context=_context.Context())
    if _valid(ctx) is not None:
        return ctx
    m = _TRACEPARENT.match(carrier["traceparent"])
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    state = _trace.TraceState()
    if carrier.get("tracestate"):
        try:
            state = _trace.TraceState.from_header([carrier["tracestate"]])
        except Exception:  # an unreadable tracestate is dropped, as the W3C propagator does
            state = _trace.TraceState()
    sc = _trace.SpanContext(int(m.group(1), 16), int(m.group(2), 16), is_remote=True,
                            trace_flags=_trace.TraceFlags(int(m.group(3), 16) & 1), trace_state=state)
    return _trace.set_span_in_context(_trace.NonRecordingSpan(sc), _context.Context())


def _tracer() -> Any:
    provider = _trace.get_tracer_provider()
    if provider is not _state["tracer_provider"]:
        _state["tracer_provider"] = provider
        _state["tracer"] = provider.get_tracer("mcpvault", VERSION)
    return _state["tracer"]


def _instruments() -> Dict[str, Any]:
    provider = _metrics.get_meter_provider()
    if provider is not _state["meter_provider"]:
        meter = provider.get_meter("mcpvault", VERSION)
        try:
            duration = meter.create_histogram(
                "mcpvault.authorization.duration", unit="s",
                description="Time the guard took to decide a request (verification, store, audit)",
                explicit_bucket_boundaries_advisory=list(BUCKETS))
        except TypeError:  # opentelemetry-api before 1.23 has no bucket advice
            duration = meter.create_histogram("mcpvault.authorization.duration", unit="s")
        _state["meter_provider"] = provider
        _state["instruments"] = {
            "decisions": meter.create_counter("mcpvault.decisions", unit="{decision}",
                                              description="Decisions of the mcpvault guard, one per message"),
            "duration": duration,
            "hits": meter.create_counter("mcpvault.cache.hits", unit="{verification}",
                                         description="Verifications that reused a cached verified chain"),
        }
    return _state["instruments"]


def _header(headers: Any, name: str) -> Optional[str]:
    if not isinstance(headers, Mapping):
        return None
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == name:
            return v if isinstance(v, str) else None
    return None


def record(outcome: Mapping[str, Any], start_ns: int, end_ns: int, headers: Any = None) -> None:
    """Records one decided request: a span per decision (parent: the message's ``_meta`` trace context, else the
    current span, else the HTTP ``traceparent`` header; the current or HTTP one linked when ``_meta`` is the parent)
    and the metrics. Telemetry observes decisions: a failure here is printed, never raised."""
    if _trace is None:
        return
    try:
        decisions = outcome.get("decisions") or []
        ambient = _context.get_current()
        http = _extract({"traceparent": _header(headers, "traceparent"), "tracestate": _header(headers, "tracestate")})
        fallback = ambient if _valid(ambient) is not None else (http if http is not None else ambient)
        tracer = _tracer()
        for d in decisions:
            meta = _extract({"traceparent": d.get("traceparent"), "tracestate": d.get("tracestate")}) \
                if d.get("traceparent") else None
            linked = _valid(fallback) if meta is not None else None
            span = tracer.start_span(span_name(d), context=meta if meta is not None else fallback,
                                     kind=SpanKind.SERVER, start_time=start_ns,
                                     links=[Link(linked)] if linked is not None else None)
            if span.is_recording():
                span.set_attributes(attributes(d, outcome))
                if not d["allowed"]:
                    span.set_status(Status(StatusCode.ERROR, d.get("message") or d.get("code")))
            span.end(end_time=end_ns)
        m = _instruments()
        for d in decisions:
            labels = {"mcpvault.decision": "allow" if d["allowed"] else "deny",
                      "mcp.method.name": method_label(d.get("method"))}
            if not d["allowed"]:
                labels["mcpvault.code"] = d.get("code")
            m["decisions"].add(1, labels)
        cached = any(d.get("cache_hit") is True for d in decisions)
        m["duration"].record(max(0, end_ns - start_ns) / 1e9, {
            "mcpvault.cache_hit": cached, "mcpvault.decision": "allow" if outcome.get("allowed") else "deny"})
        hits = sum(1 for d in decisions if d.get("cache_hit") is True)
        if hits:
            m["hits"].add(hits)
    except Exception as e:  # pragma: no cover - telemetry never changes a decision
        print(f"mcpvault: telemetry failed: {e!r}", file=sys.stderr)
