"""Telemetry through opentelemetry-sdk's in-memory exporters: a span per decision of the guard continuing the caller's
trace from ``_meta.traceparent`` (and the HTTP header), refusals as errors with ``error.type`` = the code, the metric
points, and no token text or argument value anywhere in what is exported; without opentelemetry the package works."""
import json
import subprocess
import sys

import pytest

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mcpvault import MCPVault

NOW = 1_800_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SECRET = "s3cret-argument-value"

SPANS = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)
READER = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(scope="module")
def setup():
    vault = MCPVault(store="memory")
    priv, pub = vault.generate_keypair()
    root = vault.mint(priv, {"tools": ["db_query", "file_read"], "ttl": 600, "issuer": "auth-server",
                             "subject": "agent-a"}, NOW)
    token = vault.attenuate(root, {"tools": ["db_query"], "ttl": 300}, NOW)
    return vault, pub, root, token


def call(id_, name, args, meta=None):
    params = {"name": name, "arguments": args}
    if meta:
        params["_meta"] = meta
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params})


def points():
    out = {}
    data = READER.get_metrics_data()
    if data is None:  # nothing recorded yet
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = m
    return out


def test_spans_continue_meta_traceparent_and_carry_the_decision_record(setup):
    vault, pub, root, token = setup
    SPANS.clear()
    # prompts are closed to tokens that grant none unless the server opens them (issue 15)
    guard = vault.guard({"public_key": pub, "open_prompts": True})
    headers = {"X-MCPVault-Token": token, "Mcp-Session-Id": "sess-7"}
    meta = {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "rojo=00f067aa0ba902b7"}
    ok = guard.check({"headers": headers, "body": call(1, "db_query", {"q": SECRET}, meta)}, NOW)
    no = guard.check({"headers": headers, "body": call(2, "file_read", {"path": SECRET}, meta)}, NOW)
    assert ok["allowed"] and not no["allowed"]
    allowed, refused = SPANS.get_finished_spans()[-2:]
    assert allowed.name == "tools/call db_query"
    assert allowed.kind == SpanKind.SERVER
    assert format(allowed.context.trace_id, "032x") == TRACE
    assert format(allowed.parent.span_id, "016x") == PARENT
    assert allowed.context.trace_state.get("rojo") == "00f067aa0ba902b7"
    assert dict(allowed.attributes) == {
        "mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "db_query",
        "jsonrpc.request.id": "1", "mcp.session.id": "sess-7", "mcpvault.decision": "allow",
        "mcpvault.subject": "agent-a", "mcpvault.issuer": "auth-server", "mcpvault.depth": 1,
        "mcpvault.cache_hit": allowed.attributes["mcpvault.cache_hit"], "mcpvault.token_source": "header",
        "mcpvault.scope": "db_query:call",
    }
    # a refused name is the caller's: the span is named by its method alone, the name stays an attribute
    assert refused.name == "tools/call"
    assert refused.attributes["gen_ai.tool.name"] == "file_read"
    assert refused.status.status_code == StatusCode.ERROR
    assert refused.status.description == 'tool "file_read" is not allowed (refused by block 1)'
    assert refused.attributes["error.type"] == "tool_not_allowed"
    assert refused.attributes["mcpvault.code"] == "tool_not_allowed"
    assert refused.attributes["rpc.response.status_code"] == "-32013"
    assert refused.attributes["mcpvault.cache_hit"] is True  # the component's cache holds the chain now
    assert format(refused.context.trace_id, "032x") == TRACE

    # the HTTP header's trace context when _meta has none; a prompt is the span's target
    http_trace = "0af7651916cd43dd8448eb211c80319c"
    out = guard.check({"headers": {"authorization": f"Bearer {token}",
                                   "traceparent": f"00-{http_trace}-b7ad6b7169203331-01"},
                       "body": json.dumps({"jsonrpc": "2.0", "id": "p", "method": "prompts/get",
                                           "params": {"name": "summarise"}})}, NOW)
    assert out["allowed"]
    prompt = SPANS.get_finished_spans()[-1]
    assert prompt.name == "prompts/get summarise"
    assert prompt.attributes["gen_ai.prompt.name"] == "summarise"
    assert format(prompt.context.trace_id, "032x") == http_trace

    # inside an application span: without _meta it is the parent; with _meta it is linked
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("app request") as app:
        guard.check({"headers": headers, "body": call(3, "db_query", {})}, NOW)
        guard.check({"headers": headers, "body": call(4, "db_query", {}, meta)}, NOW)
    inner, linked = SPANS.get_finished_spans()[-3:-1]
    assert inner.parent.span_id == app.get_span_context().span_id
    assert format(linked.context.trace_id, "032x") == TRACE
    assert [link.context.span_id for link in linked.links] == [app.get_span_context().span_id]

    exported = json.dumps([{"name": s.name, "attributes": dict(s.attributes), "status": s.status.description}
                           for s in SPANS.get_finished_spans()])
    exported += json.dumps([str(p.attributes) for m in points().values() for p in m.data.data_points])
    for secret in (token, root, token[:32], token[-32:], SECRET, "check if"):
        assert secret not in exported


def _cached_duration_sum() -> float:
    """The sum of the cache-hit duration histogram so far (the meter provider is the process's: other tests' decisions
    count in it too)."""
    duration = points().get("mcpvault.authorization.duration")
    if duration is None:
        return 0.0
    return sum(p.sum for p in duration.data.data_points if p.attributes.get("mcpvault.cache_hit") is True)


def test_metric_points_and_verify_through_the_store(setup):
    vault, pub, _, token = setup
    before = _cached_duration_sum()
    guard = vault.guard({"public_key": pub})
    guard.check({"body": call(10, "db_query", {})}, NOW)  # missing_token
    guard.check({"headers": {"authorization": f"Bearer {token}"},
                 "body": json.dumps({"jsonrpc": "2.0", "id": 11, "method": "vendor/made-up-method"})}, NOW)
    vault.verify(token, pub, {"requested_tool": "db_query", "now": NOW}, request_id="12")
    m = points()
    decisions = m["mcpvault.decisions"]
    assert decisions.unit == "{decision}"
    by = {tuple(sorted(p.attributes.items())): p.value for p in decisions.data.data_points}
    assert by[(("mcp.method.name", "tools/call"), ("mcpvault.code", "missing_token"), ("mcpvault.decision", "deny"))] >= 1
    assert by[(("mcp.method.name", "_OTHER"), ("mcpvault.decision", "allow"))] >= 1
    assert not any("made-up" in str(k) for k in by)
    duration = m["mcpvault.authorization.duration"]
    assert duration.unit == "s"
    hist = {p.attributes["mcpvault.cache_hit"]: p for p in duration.data.data_points}
    assert hist[True].count >= 1 and hist[False].count >= 1
    assert list(hist[True].explicit_bounds[:3]) == [0.00005, 0.0001, 0.00025]
    # this test's cached decisions took more than nothing and less than seconds
    assert 0 < _cached_duration_sum() - before < 10
    assert m["mcpvault.cache.hits"].data.data_points[0].value >= 1


def test_without_opentelemetry_the_package_works():
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from mcpvault import MCPVault, telemetry\n"
        "assert not telemetry.enabled()\n"
        "v = MCPVault(store='memory'); priv, pub = v.generate_keypair()\n"
        "t = v.mint(priv, {'tools': ['db_query'], 'ttl': 60, 'issuer': 'i', 'subject': 's'}, 1800000000)\n"
        "f = v.verify(t, pub, {'requested_tool': 'db_query', 'now': 1800000000}, request_id='1')\n"
        "assert f['subject'] == 's'; print('no-otel ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "no-otel ok" in out.stdout


def test_the_api_without_an_sdk_costs_nothing_and_a_provider_set_later_is_seen():
    """opentelemetry-api installed, no SDK set: the API's proxy providers record nothing, so a decision does no
    telemetry work; a tracer provider set later (or a meter provider alone) turns it on at the next decision."""
    script = (
        "from opentelemetry import metrics, trace\n"
        "from mcpvault import MCPVault, telemetry\n"
        "calls = []\n"
        "real = telemetry.record\n"
        "telemetry.record = lambda *a, **k: (calls.append(1), real(*a, **k))\n"
        "v = MCPVault(store='memory'); priv, pub = v.generate_keypair()\n"
        "t = v.mint(priv, {'tools': ['db_query'], 'ttl': 60, 'issuer': 'i', 'subject': 's'}, 1800000000)\n"
        "req = {'requested_tool': 'db_query', 'now': 1800000000}\n"
        "assert not telemetry.enabled()\n"
        "v.verify(t, pub, req, request_id='1')\n"
        "assert calls == [], calls\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "metrics.set_meter_provider(MeterProvider())\n"
        "assert telemetry.enabled()\n"
        "v.verify(t, pub, req, request_id='2')\n"
        "assert calls == [1], calls\n"
        "print('api-only ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "api-only ok" in out.stdout
