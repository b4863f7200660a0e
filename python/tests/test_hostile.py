"""Hostile, outside-style tests of the Python hosts (mcpvault.mcp's with_mcpvault and McpVaultMiddleware,
mcpvault.fastmcp's with_mcpvault), held to SCHEMA.md ("The guard", "Where the token is read", "Headers and body
agree", batches, single use, holder-bound tokens and proofs) and to the project's standard: deny by default, every
bad input a typed JSON-RPC error (``error.data.code`` a code of SCHEMA.md), never an allow, a crash or a 500;
signature and format failures opaque; no error body echoes the token.

Servers: uvicorn on 127.0.0.1 (threads of this process), stopped at the end of the module. Runs on the backend of
``MCPVAULT_BACKEND`` (native or component); ``test_backends_agree_on_hostile_inputs`` runs both side by side."""
import json
import threading
import time

import anyio
import fastmcp
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

import mcpvault
from conftest import _free_port
from mcpvault import MCPVault
from mcpvault.mcp import with_mcpvault
from mcpvault.fastmcp import with_mcpvault as with_mcpvault_fastmcp

LIMIT = {"tool": "db_query", "arg": "max_rows", "op": "max", "value": 100}
HEADERS = [("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json"),
           ("Mcp-Protocol-Version", "2025-11-25")]
CODES = {"missing_token", "malformed_token", "invalid_key", "bad_signature", "expired", "tool_not_allowed",
         "argument_not_allowed", "resource_not_allowed", "prompt_not_allowed", "wrong_audience", "depth_exceeded",
         "check_failed", "limits_exceeded", "revoked", "replayed", "in_flight", "session_mismatch", "rate_limited",
         "budget_exceeded", "proof_required", "bad_proof", "proof_expired", "tool_definition_changed",
         "approval_required", "rule_violation", "invalid_request", "internal_error"}
# every method a client sends after the handshake, with valid params
METHODS = [
    ("tools/list", {}),
    ("tools/call", {"name": "db_query", "arguments": {"sql": "x"}}),
    ("resources/list", {}),
    ("resources/templates/list", {}),
    ("resources/read", {"uri": "file:///srv/readme"}),
    ("resources/subscribe", {"uri": "file:///srv/readme"}),
    ("prompts/list", {}),
    ("prompts/get", {"name": "greeting"}),
    ("completion/complete", {"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "a", "value": "b"}}),
    ("logging/setLevel", {"level": "info"}),
    ("no/such-method", {}),
]
# over HTTP the middleware guards the lifecycle's methods too
HTTP_METHODS = [("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                "clientInfo": {"name": "c", "version": "1"}}), ("ping", {})] + METHODS


# ---------------------------------------------------------------------------------------------------------------
# Keys, tokens, servers

@pytest.fixture(scope="module")
def tokens(keys, holder):
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "auth-server", "subject": "agent-a",
                            "resources": ["file:///srv/*"], "prompts": ["greeting"]})
    wide = v.mint(keys[0], {"tools": ["db_query", "admin_delete"], "ttl": 3600, "issuer": "auth-server",
                            "subject": "agent-b"})
    bound = v.mint(keys[0], {"tools": ["db_query", "admin_delete"], "ttl": 3600, "issuer": "auth-server",
                             "subject": "holder", "holder": holder[1]})
    flipped = root[:40] + ("A" if root[40] != "A" else "B") + root[41:]
    return {"root": root, "wide": wide, "narrow": v.attenuate(root, {"arg_limits": [LIMIT]}), "bound": bound,
            "garbage": ["garbage-SECRET-7d1f", root[:-12], flipped, root + "AAAA", "Bearer", "x" * 70000]}


def _register(mcp, seen):
    """The same tools, resource and prompt on either framework's server; each records its run in ``seen``."""

    @mcp.tool()
    def db_query(sql: str = "", max_rows: int = 10) -> str:
        seen.append(("db_query", sql, max_rows))
        return f"ok {sql} {max_rows}"

    @mcp.tool()
    def admin_delete(id: str) -> str:
        seen.append(("admin_delete", id))
        return "deleted"

    @mcp.resource("file:///srv/readme")
    def readme() -> str:
        seen.append(("read",))
        return "readme"

    @mcp.prompt()
    def greeting() -> str:
        seen.append(("prompt",))
        return "hello"


#: The decisions the stateful server ("s") reported to on_decision.
_HEARD = []


def _sdk_server(public_key, seen, **options):
    mcp = MCPServer("hostile")
    _register(mcp, seen)

    @mcp.completion()
    async def complete(ref, argument, context):
        seen.append(("complete",))
        return None

    return with_mcpvault(mcp, public_key_hex=public_key, **options)


def _fastmcp_server(public_key, seen, **options):
    mcp = fastmcp.FastMCP("hostile-fastmcp")
    _register(mcp, seen)
    return with_mcpvault_fastmcp(mcp, public_key_hex=public_key, **options)


class _Servers:
    """uvicorn servers on 127.0.0.1, each in a thread of this process."""

    def __init__(self):
        self.running = []

    def start(self, app, path="/mcp", **config):
        port = _free_port()
        # h11 refuses (400, or a reset while the client still sends) a header block over 16 KB that arrives in
        # more than one read, so whether the 70,000-character token reached the guard depended on how the loopback
        # split it; with room for it, the guard's own limit (limits_exceeded) is what these tests see
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                               h11_max_incomplete_event_size=1 << 20, **config))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        self.running.append((server, thread))
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        else:
            pytest.fail("uvicorn did not start")
        return f"http://127.0.0.1:{port}{path}"

    def stop(self):
        for server, thread in self.running:
            server.should_exit = True
        for server, thread in self.running:
            thread.join(10)


@pytest.fixture(scope="module")
def http(keys, tmp_path_factory):
    """Four servers: two MCP SDK servers sharing one SQLite store (stateless, JSON answers), a fastmcp server
    (stateless, JSON answers) and the MCP SDK server's default (stateful) app. Yields the urls and the executions."""
    db = tmp_path_factory.mktemp("hostile") / "shared.db"
    seen = {"a": [], "b": [], "f": [], "s": []}
    _HEARD.clear()
    servers = _Servers()
    try:
        urls = {
            "a": servers.start(_sdk_server(keys[1], seen["a"], store=f"sqlite:{db}").streamable_http_app(
                stateless_http=True, json_response=True)),
            "b": servers.start(_sdk_server(keys[1], seen["b"], store=f"sqlite:{db}").streamable_http_app(
                stateless_http=True, json_response=True)),
            "f": servers.start(_fastmcp_server(keys[1], seen["f"], store="memory").http_app(
                stateless_http=True, json_response=True)),
            "s": servers.start(_sdk_server(keys[1], seen["s"], store="memory",
                                           on_decision=_HEARD.append).streamable_http_app()),
        }
        yield urls, seen
    finally:
        servers.stop()


def _post(url, body, headers=(), method="POST"):
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx2.request(method, url, content=content, headers=HEADERS + list(headers), timeout=60)


def _bearer(token):
    return [("Authorization", f"Bearer {token}")]


def _call(i=1, name="db_query", args=None, meta=None):
    params = {"name": name, "arguments": {"sql": f"c{i}"} if args is None else args}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}


def _refused(r, status, code, *secrets):
    """An HTTP refusal: its status, a JSON-RPC error (or an array of them) with data.code, no secret echoed."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    errors = body if isinstance(body, list) else [body]
    for e in errors:
        assert e["jsonrpc"] == "2.0" and isinstance(e["error"]["code"], int), e
        assert e["error"]["data"]["code"] == code, e
        assert e["error"]["data"]["status"] == status, e
    for s in secrets:  # a secret short enough to be a word of the answer ("Bearer") is not searched for
        assert len(s) < 12 or s not in r.text and s not in json.dumps(dict(r.headers))
    return body


def _rpc_code(r):
    """(JSON-RPC code, data.code) of a JSON-RPC error answered inside a 200 (the message layer's), or 'allowed'."""
    body = r.json()
    if "error" in body:
        return body["error"]["code"], (body["error"].get("data") or {}).get("code")
    return "allowed"


async def _code_of(awaitable):
    try:
        await awaitable
    except MCPError as e:
        return e.code, (e.data or {}).get("code") if isinstance(e.data, dict) else e.data
    return "allowed"


# ---------------------------------------------------------------------------------------------------------------
# Headers that disagree with each other or with the body

@pytest.mark.parametrize("which", ["a", "f"])
def test_two_token_headers_are_invalid_request(http, tokens, which):
    """SCHEMA.md: two X-MCPVault-Token headers are invalid_request (one request carries one token). Whatever order
    they come in, neither is taken."""
    urls, seen = http
    before = len(seen[which])
    for first, second in [(tokens["root"], tokens["wide"]), (tokens["wide"], tokens["root"]),
                          (tokens["root"], "garbage")]:
        for call in (_call(), _call(name="admin_delete", args={"id": "1"})):
            r = _post(urls[which], call, [("X-MCPVault-Token", first), ("X-MCPVault-Token", second)])
            _refused(r, 400, "invalid_request", tokens["root"], tokens["wide"])
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_two_authorization_headers_are_refused(http, tokens, which):
    """Two Authorization headers name two credentials (the host joins them: `Bearer A, Bearer B`): invalid_request,
    in either order, never decided on the first one alone."""
    urls, seen = http
    before = len(seen[which])
    for pair in ((tokens["root"], "garbage"), ("garbage", tokens["root"])):
        r = _post(urls[which], _call(), _bearer(pair[0]) + _bearer(pair[1]))
        assert r.status_code == 400, r.text[:300]
        assert r.json()["error"]["data"]["code"] == "invalid_request"
        assert tokens["root"] not in r.text
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
@pytest.mark.parametrize("name,values", [("Mcp-Method", ["tools/call", "tools/list"]),
                                         ("Mcp-Method", ["tools/list", "tools/call"]),
                                         ("Mcp-Name", ["db_query", "admin_delete"]),
                                         ("Mcp-Name", ["admin_delete", "db_query"])])
def test_duplicated_mcp_headers_that_disagree_are_invalid_request(http, tokens, which, name, values):
    """Headers and body agree: two Mcp-Method (Mcp-Name) headers with two values cannot both equal the body's
    method (tool): invalid_request, whichever comes first."""
    urls, seen = http
    before = len(seen[which])
    r = _post(urls[which], _call(), _bearer(tokens["root"]) + [(name, v) for v in values])
    _refused(r, 400, "invalid_request", tokens["root"])
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_headers_that_disagree_with_the_body(http, tokens, which):
    urls, seen = http
    root, wide = tokens["root"], tokens["wide"]
    before = len(seen[which])
    for headers, body in [
            ([("Mcp-Method", "tools/list")], _call()),
            ([("Mcp-Method", "TOOLS/CALL")], _call()),
            ([("Mcp-Name", "admin_delete")], _call()),
            ([("Mcp-Name", "Db_query")], _call()),
            ([("Mcp-Method", "resources/read"), ("Mcp-Name", "file:///etc/passwd")],
             {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///srv/readme"}}),
            ([("Mcp-Method", "tools/call")], [_call(1), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]),
            ([], _call(meta={"token": wide})),                        # header token vs _meta token
            ([], _call(meta={"mcpvault/token": wide})),
    ]:
        _refused(_post(urls[which], body, _bearer(root) + headers), 400, "invalid_request", root, wide)
    # _meta.token and _meta["mcpvault/token"] naming two tokens, with no header
    _refused(_post(urls[which], _call(meta={"token": root, "mcpvault/token": wide})), 400, "invalid_request",
             root, wide)
    # two messages of a batch with two tokens
    _refused(_post(urls[which], [_call(1, meta={"token": root}), _call(2, meta={"token": wide})]), 400,
             "invalid_request", root, wide)
    # a body-less GET or DELETE claiming to be a tool call
    for method in ("GET", "DELETE"):
        r = _post(urls[which], b"", _bearer(root) + [("Mcp-Method", "tools/call"), ("Mcp-Name", "db_query")],
                  method=method)
        _refused(r, 400, "invalid_request", root)
    assert len(seen[which]) == before


def test_stateful_app_get_and_delete_claiming_a_tool_call(http, tokens):
    urls, seen = http
    for method in ("GET", "DELETE"):
        r = _post(urls["s"], b"", _bearer(tokens["root"]) + [("Mcp-Method", "tools/call")], method=method)
        _refused(r, 400, "invalid_request", tokens["root"])
    assert seen["s"] == []


def test_stateful_session_is_its_openers(http, tokens):
    # a session is bound to the subject whose token opened it: another subject's token naming it is session_mismatch
    # on a message, the SSE GET and the DELETE (a session id read from a log takes no stream and ends no session)
    urls, seen = http
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}
    opened = _post(urls["s"], init, _bearer(tokens["root"]))
    sid = opened.headers.get("mcp-session-id")
    assert opened.status_code == 200 and sid, opened.text[:300]
    mine = [*_bearer(tokens["root"]), ("Mcp-Session-Id", sid)]
    theirs = [*_bearer(tokens["wide"]), ("Mcp-Session-Id", sid)]
    _refused(_post(urls["s"], _call(2, "admin_delete", {"id": "1"}), theirs), 403, "session_mismatch", tokens["wide"])
    # made-up session ids bind nothing (404: unknown session), however many: the owner's binding stays
    for i in range(30):
        _refused(_post(urls["s"], _call(100 + i), [*_bearer(tokens["wide"]), ("Mcp-Session-Id", f"made-up-{i}")]),
                 404, "invalid_request")
    # the core decided them (session_book): on_decision heard each, with the session it named
    assert [(d["code"], d["status"], d["session_id"]) for d in _HEARD
            if (d.get("session_id") or "").startswith("made-up-")] == \
        [("invalid_request", 404, f"made-up-{i}") for i in range(30)]
    _post(urls["s"], {"jsonrpc": "2.0", "method": "notifications/initialized"}, mine)
    for method in ("GET", "DELETE"):
        _refused(_post(urls["s"], b"", theirs, method=method), 403, "session_mismatch", tokens["wide"])
    assert ("admin_delete", "1") not in seen["s"]
    r = _post(urls["s"], _call(3), mine)
    assert r.status_code == 200 and ("db_query", "c3", 10) in seen["s"], r.text[:300]
    assert _post(urls["s"], b"", mine, method="DELETE").status_code == 200
    _refused(_post(urls["s"], _call(4), mine), 404, "invalid_request")


def test_message_layer_alone_two_token_headers(keys, tokens):
    """The message layer alone (fastmcp's SSE transport, a POST's headers): two X-MCPVault-Token headers are
    invalid_request there too."""
    server = with_mcpvault(MCPServer("alone"), public_key_hex=keys[1])
    guard = server._lowlevel_server.middleware[[type(m).__name__ for m in
                                                server._lowlevel_server.middleware].index("_MessageGuard")]
    handed = []

    async def call_next(ctx):
        handed.append(ctx)
        return {"content": []}

    async def one(headers):
        request = Request({"type": "http", "method": "POST", "path": "/messages", "headers": headers})
        ctx = ServerRequestContext(session=None, lifespan_context={}, protocol_version="2025-11-25",
                                   method="tools/call", params={"name": "db_query", "arguments": {}},
                                   request_id=1, request=request)
        return await _code_of(guard(ctx, call_next))

    async def main():
        t = tokens["root"].encode()
        return [await one([(b"x-mcpvault-token", t), (b"x-mcpvault-token", b"garbage")]),
                await one([(b"x-mcpvault-token", b"garbage"), (b"x-mcpvault-token", t)])]

    assert anyio.run(main) == [(-32600, "invalid_request")] * 2
    assert handed == []


# ---------------------------------------------------------------------------------------------------------------
# Garbage, truncated and mangled tokens on every method

@pytest.mark.parametrize("which", ["a", "f"])
def test_garbage_tokens_on_every_method_over_http(http, tokens, which):
    urls, seen = http
    before = len(seen[which])
    for bad in tokens["garbage"]:
        for where in ("bearer", "header", "meta"):
            for method, params in HTTP_METHODS:
                params = dict(params)
                headers = []
                if where == "bearer":
                    headers = _bearer(bad)
                elif where == "header":
                    headers = [("X-MCPVault-Token", bad)]
                else:
                    params["_meta"] = {"mcpvault/token": bad}
                r = _post(urls[which], {"jsonrpc": "2.0", "id": 9, "method": method, "params": params}, headers)
                body = _refused(r, 401, r.json()["error"]["data"]["code"], bad, tokens["root"])
                code = body["error"]["data"]["code"]
                if len(bad) > 65536:
                    assert code == "limits_exceeded", (method, where)
                elif code == "malformed_token":
                    assert body["error"]["message"] == "token is malformed"
                else:
                    assert (code, body["error"]["message"]) == ("bad_signature", "token signature is not valid"), \
                        (method, where, bad[:20])
                assert 'error="invalid_token"' in r.headers["www-authenticate"]
                assert body["id"] == 9
    # the mangled root (one character changed) is a signature failure, the truncated one malformed
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_raw_header_bytes_are_refused_not_crashed(http, tokens, which):
    """Header values that are not ASCII (latin-1 bytes, UTF-8, a NUL-free control character)."""
    urls, seen = http
    before = len(seen[which])
    for value in (b"\xff\xfe", "é".encode(), b"Bearer \xe9\xe9", b"\x01" + tokens["root"].encode()):
        for name in (b"X-MCPVault-Token", b"Authorization", b"Mcp-Method"):
            extra = [(name, value)]
            if name == b"Mcp-Method":
                extra += [(b"Authorization", f"Bearer {tokens['root']}".encode())]
            r = httpx2.post(urls[which], content=json.dumps(_call()), headers=[(k.encode(), v.encode())
                                                                               for k, v in HEADERS] + extra)
            assert r.status_code in (400, 401), (name, value, r.status_code, r.text[:200])
            assert r.json()["error"]["data"]["code"] in CODES
            assert tokens["root"] not in r.text
    assert len(seen[which]) == before


@pytest.mark.parametrize("framework", ["sdk", "fastmcp"])
def test_garbage_tokens_on_every_method_in_process(keys, tokens, framework):
    """The message layer decides every method but the lifecycle's (an in-process client cannot attach a token to
    initialize): each one, with each bad token, is the same typed refusal, and nothing runs."""
    seen = []
    server = _sdk_server(keys[1], seen) if framework == "sdk" else _fastmcp_server(keys[1], seen)

    async def main():
        got = []
        async with Client(server._mcp_server if framework == "fastmcp" else server, mode="legacy") as c:
            send = c.session._dispatcher.send_raw_request
            for bad in tokens["garbage"]:
                for key in ("token", "mcpvault/token"):
                    for method, params in METHODS:
                        got.append((bad, method, await _code_of(send(method, {**params, "_meta": {key: bad}}))))
        return got

    for bad, method, code in anyio.run(main):
        expected = "limits_exceeded" if len(bad) > 65536 else \
            "bad_signature" if bad == tokens["garbage"][2] else "malformed_token"
        assert code == (-32011, expected), (bad[:16], method, code)
    assert seen == []


# ---------------------------------------------------------------------------------------------------------------
# Bodies, ids, notifications

def _cs(sql):
    return ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"sql":%s}}}'
            % sql)


@pytest.mark.parametrize("which", ["a", "f"])
def test_bodies_that_are_not_json_rpc(http, tokens, which):
    urls, seen = http
    root = tokens["root"]
    before = len(seen[which])
    bodies = {
        "not json": b"{nope",
        "not utf-8": _cs('"\xff"'.encode("latin-1").decode("latin-1")).encode("latin-1"),
        "raw lone surrogate": _cs('"X"').encode().replace(b"X", b"\xed\xa0\x80"),
        "escaped lone surrogate": _cs('"\\ud800"').encode(),
        "NaN": _cs("NaN").encode(),
        "Infinity": _cs("-Infinity").encode(),
        "BOM": b"\xef\xbb\xbf" + _cs('"x"').encode(),
        "trailing": _cs('"x"').encode() + b" {}",
        "deep": b"[" * 200 + b"]" * 200,
        "deep in arguments": _cs("[" * 5000 + "]" * 5000).encode(),
        "huge": _cs('"' + "a" * (4 * 1024 * 1024 + 1) + '"').encode(),
        "jsonrpc 1.0": b'{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{}}}',
        "no tool": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}',
        "arguments array": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":[]}}',
        "params array": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["db_query"]}',
        "method number": b'{"jsonrpc":"2.0","id":1,"method":5}',
        "method empty": b'{"jsonrpc":"2.0","id":1,"method":""}',
        "a number": b"42",
        "a string": b'"tools/call"',
        "null": b"null",
    }
    for what, body in bodies.items():
        r = _post(urls[which], body, _bearer(root))
        _refused(r, 400, "invalid_request", root)
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_odd_ids_and_notifications(http, tokens, which):
    urls, seen = http
    root = tokens["root"]
    before = len(seen[which])
    for rid in ("1.5", "null", "true", "{}", "[]", "1e3", "18446744073709551616000", "-99999999999999999999"):
        body = ('{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"db_query","arguments":{"sql":"x"}}}'
                % rid)
        _refused(_post(urls[which], body, _bearer(root)), 400, "invalid_request", root)
    # a tools/call sent as a notification is never run
    note = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "db_query", "arguments": {"sql": "n"}}}
    _refused(_post(urls[which], note, _bearer(root)), 400, "invalid_request", root)
    # a refused notification of another method is refused too (no token)
    r = _post(urls[which], {"jsonrpc": "2.0", "method": "notifications/initialized"})
    _refused(r, 401, "missing_token")
    # an integer beyond 2^64 where a limit applies: never satisfies it
    big = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":%s}}}'
    for n in (str(2 ** 64 + 5), str(-(2 ** 64)), "1e2", "100.0", "true", '"5"'):
        _refused(_post(urls[which], big % n, _bearer(tokens["narrow"])), 403, "argument_not_allowed",
                 tokens["narrow"])
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_batches(http, tokens, which):
    urls, seen = http
    root = tokens["root"]
    before = len(seen[which])
    # empty: one error (JSON-RPC: an empty array is not a batch)
    _refused(_post(urls[which], b"[]", _bearer(root)), 400, "invalid_request", root)
    # 5,000 messages: refused before anything is verified
    r = _post(urls[which], [_call(i) for i in range(5000)], _bearer(root))
    _refused(r, 400, "invalid_request", root)
    # a refused message refuses the batch: one error per request, with its id (duplicate ids kept)
    for ids in ([1, 2], [1, 1]):
        r = _post(urls[which], [_call(ids[0]), _call(ids[1], "admin_delete", {"id": "1"})], _bearer(root))
        body = _refused(r, 403, "tool_not_allowed", root)
        assert isinstance(body, list) and [e["id"] for e in body] == ids
    # a request without an id inside a batch, a nested batch, junk members
    for batch in ([_call(1), {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "db_query"}}],
                  [[_call(1)]], [1, 2], [_call(1), "x"], [_call(1), {"jsonrpc": "2.0", "id": 2.5, "method": "ping"}]):
        _refused(_post(urls[which], batch, _bearer(root)), 400, "invalid_request", root)
    # a batch of notifications without a token
    _refused(_post(urls[which], [{"jsonrpc": "2.0", "method": "notifications/initialized"}]), 401, "missing_token")
    assert len(seen[which]) == before


@pytest.mark.parametrize("which", ["a", "f"])
def test_a_batch_refused_as_a_whole_is_answered_with_an_array(http, tokens, which):
    """JSON-RPC 2.0 ("Batch") and SCHEMA.md ("One refused message refuses the batch: the answer is an array with one
    error per request"): a valid, non-empty batch refused because of its headers or its tokens is answered with an
    array, as the batch over 100 messages is."""
    urls, _ = http
    root, wide = tokens["root"], tokens["wide"]
    batch = [_call(1), {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    r = _post(urls[which], batch, _bearer(root) + [("Mcp-Method", "tools/call")])
    assert isinstance(_refused(r, 400, "invalid_request", root), list)
    r = _post(urls[which], [_call(1, meta={"token": root}), _call(2, meta={"token": wide})])
    assert isinstance(_refused(r, 400, "invalid_request", root, wide), list)


def test_hostile_values_in_process(keys, tokens):
    """What an in-process client can hand the message layer that no JSON body can carry: typed refusals."""
    seen = []
    server = _sdk_server(keys[1], seen)

    def nest(n):
        x = []
        for _ in range(n):
            x = [x]
        return x

    async def main():
        got = {}
        async with Client(server, mode="legacy") as c:
            send = c.session._dispatcher.send_raw_request
            narrow = tokens["narrow"]
            for what, value in [("nan", float("nan")), ("inf", float("inf")), ("lone surrogate", "\ud800"),
                                ("bytes", b"x"), ("set", {1}), ("deep", nest(300))]:
                got[what] = await _code_of(send("tools/call", {"name": "db_query", "arguments": {
                    "sql": "v", "max_rows": 5, "x": value}, "_meta": {"token": narrow}}))
            for what, value in [("2^64+5", 2 ** 64 + 5), ("-2^64", -(2 ** 64)), ("2^70", 2 ** 70), ("bool", True),
                                ("float", 100.0), ("string", "5")]:
                got[what] = await _code_of(send("tools/call", {"name": "db_query", "arguments": {
                    "sql": "v", "max_rows": value}, "_meta": {"token": narrow}}))
            got["no params"] = await _code_of(send("tools/call", None))
            got["meta list"] = await _code_of(send("tools/call", {"name": "db_query", "arguments": {},
                                                                  "_meta": {"token": [narrow]}}))
        return got

    got = anyio.run(main)
    for what in ("nan", "inf", "lone surrogate", "bytes", "set", "deep", "no params"):
        assert got[what] == (-32600, "invalid_request"), what
    for what in ("2^64+5", "-2^64", "2^70", "bool", "float", "string"):
        assert got[what] == (-32013, "argument_not_allowed"), what
    assert got["meta list"] == (-32011, "missing_token")
    assert seen == []


# ---------------------------------------------------------------------------------------------------------------
# Single use: 50 at once to two servers sharing one SQLite store

def test_single_use_fifty_parallel_calls_two_servers_one_sqlite_store(http, keys):
    urls, seen = http
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s"})
    distinct = v.attenuate(root, {"single_use": True})
    same = v.attenuate(root, {"single_use": True})
    before = len(seen["a"]) + len(seen["b"])

    async def fire(token, same_id):
        results = [None] * 50
        async with httpx2.AsyncClient(timeout=60) as hc:
            async def one(i):
                url = urls["a"] if i % 2 == 0 else urls["b"]
                call = _call(7 if same_id else 1000 + i, args={"sql": "once-same" if same_id else "once"})
                results[i] = await hc.post(url, content=json.dumps(call), headers=HEADERS + _bearer(token))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
        return results

    # 50 different requests: one runs, every other is replayed
    results = anyio.run(fire, distinct, False)
    ran = [s for s in seen["a"] + seen["b"] if s[1] == "once"]
    assert len(ran) == 1
    codes = [(r.status_code, _rpc_code(r)) for r in results]
    assert sum(1 for c in codes if c == (200, "allowed")) == 1, codes
    assert all(c == (200, "allowed") or c[1] == (-32011, "replayed") for c in codes), codes
    # the same request 50 times: one execution; the others get its recorded response or in_flight (409)
    results = anyio.run(fire, same, True)
    ran = [s for s in seen["a"] + seen["b"] if s[1] == "once-same"]
    assert len(ran) == 1
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"]["data"]["code"] == "in_flight"
        else:
            body = r.json()
            assert r.status_code == 200 and "error" not in body or \
                body["error"]["data"]["code"] == "in_flight", r.text[:200]
    assert len(seen["a"]) + len(seen["b"]) == before + 2


def test_single_use_fifty_parallel_in_process_two_servers_one_sqlite_store(keys, tmp_path):
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s"})
    single = v.attenuate(root, {"single_use": True})
    seen = []
    spec = f"sqlite:{tmp_path / 'inproc.db'}"
    one, two = _sdk_server(keys[1], seen, store=spec), _sdk_server(keys[1], seen, store=spec)

    async def main():
        results = []
        async with Client(one, mode="legacy") as c1, Client(two, mode="legacy") as c2:
            for c in (c1, c2):
                await c.list_tools(meta={"token": root})

            async def go(i):
                c = c1 if i % 2 else c2
                # other arguments on each: 50 different requests (the same request again is a retry)
                results.append(await _code_of(c.call_tool("db_query", {"sql": "parallel", "max_rows": i},
                                                          meta={"token": single})))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(go, i)
        return results

    results = anyio.run(main)
    assert len(seen) == 1
    assert results.count("allowed") == 1
    assert set(r for r in results if r != "allowed") == {(-32011, "replayed")}


# ---------------------------------------------------------------------------------------------------------------
# Holder-bound tokens: stolen from a log, used without its proof or with another call's

def test_holder_bound_token_without_or_with_the_wrong_proof_over_http(http, tokens, keys, holder):
    urls, seen = http
    v = MCPVault()
    bound = tokens["bound"]
    before = len(seen["a"])
    url = urls["a"]
    _refused(_post(url, _call(1, args={"sql": "x"}), _bearer(bound)), 401, "proof_required", bound)
    _refused(_post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, _bearer(bound)), 401,
             "proof_required", bound)
    for_x = v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "x"})
    other_proofs = [v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "y"}),   # other arguments
                    v.sign_call(bound, holder[0], tool="admin_delete", arguments={"sql": "x"}),   # other tool
                    v.sign_call(bound, holder[0], method="tools/list"),                       # other method
                    v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "x"}, audience="elsewhere"),
                    v.sign_call(bound, keys[0], tool="db_query", arguments={"sql": "x"}),        # another key
                    v.sign_call(tokens["wide"], holder[0], tool="db_query", arguments={"sql": "x"}),  # another token
                    "mvp1.0.0.x", "garbage"]
    for i, proof in enumerate(other_proofs):
        r = _post(url, _call(10 + i, args={"sql": "x"}, meta={"mcpvault/proof": proof}), _bearer(bound))
        body = _refused(r, 401, "bad_proof", bound, proof)
        assert body["error"]["message"] == "the call's proof is not valid"
        r = _post(url, _call(20 + i, args={"sql": "x"}), _bearer(bound) + [("X-MCPVault-Proof", proof)])
        _refused(r, 401, "bad_proof", bound, proof)
    old = v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "x"}, now=int(time.time()) - 300)
    _refused(_post(url, _call(30, args={"sql": "x"}, meta={"mcpvault/proof": old}), _bearer(bound)), 401,
             "proof_expired", bound)
    assert len(seen["a"]) == before
    # the right proof runs once; the same proof on another request (from a log) is replayed
    r = _post(url, _call(40, args={"sql": "x"}, meta={"mcpvault/proof": for_x}), _bearer(bound))
    assert r.status_code == 200 and _rpc_code(r) == "allowed"
    r = _post(url, _call(41, args={"sql": "x"}, meta={"mcpvault/proof": for_x}), _bearer(bound))
    assert _rpc_code(r) == (-32011, "replayed") and bound not in r.text
    assert len(seen["a"]) == before + 1


def test_holder_bound_token_in_process(keys, tokens, holder):
    v = MCPVault()
    bound = tokens["bound"]
    seen = []
    server = _sdk_server(keys[1], seen, store="memory")

    async def main():
        async with Client(server, mode="legacy") as c:
            await c.list_tools(meta={"token": tokens["root"]})
            got = [await _code_of(c.call_tool("db_query", {"sql": "x"}, meta={"token": bound}))]
            for proof in (v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "y"}),
                          v.sign_call(bound, holder[0], tool="admin_delete", arguments={"id": "1"}),
                          v.sign_call(bound, keys[0], tool="db_query", arguments={"sql": "x"})):
                got.append(await _code_of(c.call_tool("db_query", {"sql": "x"},
                                                      meta={"token": bound, "mcpvault/proof": proof})))
            good = v.sign_call(bound, holder[0], tool="db_query", arguments={"sql": "x"})
            got.append(await _code_of(c.call_tool("db_query", {"sql": "x"},
                                                  meta={"token": bound, "mcpvault/proof": good})))
            got.append(await _code_of(c.call_tool("db_query", {"sql": "x"},
                                                  meta={"token": bound, "mcpvault/proof": good})))
        return got

    assert anyio.run(main) == [(-32011, "proof_required"), (-32011, "bad_proof"), (-32011, "bad_proof"),
                               (-32011, "bad_proof"), "allowed", (-32011, "replayed")]
    assert seen == [("db_query", "x", 10)]


# ---------------------------------------------------------------------------------------------------------------
# The native extension and the component give the same answers

def test_backends_agree_on_hostile_inputs(keys, tokens, holder):
    if mcpvault._native is None:
        pytest.fail("the native extension is not installed: both backends must be compared")
    root, wide, narrow, bound = tokens["root"], tokens["wide"], tokens["narrow"], tokens["bound"]
    now = int(time.time())
    proof = MCPVault().sign_call(bound, holder[0], tool="db_query", arguments={"sql": "x"}, now=now)
    call = json.dumps(_call(1, args={"sql": "x"}))
    inputs = [
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body": call},
        {"http_method": "POST", "headers": {"x-mcpvault-token": f"{root},{wide}"}, "body": call},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}, Bearer {wide}"}, "body": call},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}", "mcp-method": "tools/call, tools/list"},
         "body": call},
        {"http_method": "GET", "headers": {"authorization": f"Bearer {root}", "mcp-method": "tools/call"}},
        {"http_method": "POST", "headers": {}, "body": json.dumps(_call(meta={"token": root, "mcpvault/token": wide}))},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body": "[]"},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"},
         "body": json.dumps([_call(i) for i in range(5000)])},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"},
         "body": json.dumps([_call(1), _call(1, "admin_delete", {"id": "1"})])},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body": _cs("NaN")},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body": _cs('"\\ud800"')},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body": "[" * 200 + "]" * 200},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"}, "body_error": "not_utf8"},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {narrow}"},
         "body": '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"max_rows":%d}}}'
                 % (2 ** 64 + 5)},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"},
         "body": '{"jsonrpc":"2.0","id":18446744073709551616000,"method":"tools/list"}'},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {root}"},
         "body": '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"db_query","arguments":{}}}'},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {bound}"}, "body": call},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {bound}", "x-mcpvault-proof": proof},
         "body": json.dumps(_call(1, args={"sql": "y"}))},
        {"http_method": "POST", "headers": {"authorization": f"Bearer {bound}", "x-mcpvault-proof": proof},
         "body": call},
    ] + [{"http_method": "POST", "headers": {"x-mcpvault-token": bad},
          "body": json.dumps({"jsonrpc": "2.0", "id": 3, "method": m, "params": p})}
         for bad in tokens["garbage"] for m, p in HTTP_METHODS[:4]]

    def run(backend):
        vault = MCPVault(backend=backend, store="memory")
        guard = vault.guard({"public_key": keys[1]})
        out = []
        for inp in inputs:
            outcome = guard.check(inp, now)
            for d in outcome.get("decisions") or []:
                d.pop("cache_hit", None)
            out.append(outcome)
        return out

    native, component = run("native"), run("component")
    for inp, a, b in zip(inputs, native, component):
        assert a == b, json.dumps(inp)[:200]
    # and the outcomes are refusals where they must be
    assert [o["allowed"] for o in native[:6]] == [True, False, False, False, False, False]


@pytest.mark.parametrize("how", ["mount", "root_path", "fastmcp_mount"])
def test_an_app_mounted_under_a_prefix_keeps_its_http_layer(keys, tokens, how):
    # Starlette's Mount and `uvicorn --root-path` hand the app its full path (/api/mcp): the HTTP layer guards it
    # (no token: 401; headers that disagree with the body: invalid_request), and the handler's request body is the
    # message handed on, without the token
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import Mount

    seen = []
    if how == "fastmcp_mount":
        server = _fastmcp_server(keys[1], seen, store="memory")
        inner = server.http_app(path="/mcp", stateless_http=True, json_response=True)
        lifespan = inner.lifespan
    else:
        server = _sdk_server(keys[1], seen, store="memory")
        inner = server.streamable_http_app(stateless_http=True, json_response=True)

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with server.session_manager.run():
                yield

    servers = _Servers()
    try:
        if how == "root_path":
            # behind a proxy that strips /api: uvicorn hands the app path /api/mcp, root_path /api
            url = servers.start(inner, "/mcp", root_path="/api")
        else:
            url = servers.start(Starlette(routes=[Mount("/api", app=inner)], lifespan=lifespan), "/api/mcp")
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}
        assert _post(url, init).status_code == 401
        _refused(_post(url, {"jsonrpc": "2.0", "id": 2, "method": "ping"}), 401, "missing_token")
        _refused(_post(url, _call(3), [*_bearer("garbage-SECRET-7d1f")]), 401, "malformed_token", "garbage-SECRET-7d1f")
        lying = [*_bearer(tokens["wide"]), ("Mcp-Method", "tools/list"), ("Mcp-Name", "db_query")]
        _refused(_post(url, _call(4, "admin_delete", {"id": "1"}), lying), 400, "invalid_request")
        assert ("admin_delete", "1") not in seen
        ok = _post(url, _call(5, meta={"mcpvault/token": tokens["root"]}))
        assert ok.status_code == 200 and ("db_query", "c5", 10) in seen, ok.text[:300]
    finally:
        servers.stop()


def test_the_message_layer_alone_hands_the_handler_a_body_without_the_token(keys, tokens):
    # no HTTP layer in front (an app the guard's path does not cover, an SSE transport): the body the handler can
    # read is the message handed on, without the token; Mcp-Method/Mcp-Name are checked against the message
    from mcp.server.mcpserver import Context

    seen, bodies = [], []
    server = _sdk_server(keys[1], seen, store="memory")

    @server.tool()
    async def body_of(ctx: Context) -> str:
        bodies.append((await ctx.request_context.request.body()).decode())
        return "ok"

    # the HTTP layer guards another path only: every request here reaches the message layer alone
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    for m in app.user_middleware:
        if "paths" in m.kwargs:
            m.kwargs["paths"] = ["/elsewhere"]
    app.middleware_stack = None
    wide_body = MCPVault().mint(keys[0], {"tools": ["body_of", "db_query", "admin_delete"], "ttl": 600,
                                          "issuer": "auth-server", "subject": "agent-b"})
    servers = _Servers()
    try:
        url = servers.start(app)
        r = _post(url, _call(1, "body_of", {}, meta={"mcpvault/token": wide_body}))
        assert r.status_code == 200 and bodies, r.text[:300]
        assert wide_body not in bodies[0] and json.loads(bodies[0])["params"]["name"] == "body_of"
        lying = [("Mcp-Method", "tools/call"), ("Mcp-Name", "db_query")]
        r = _post(url, _call(2, "admin_delete", {"id": "1"}, meta={"mcpvault/token": wide_body}), lying)
        assert _rpc_code(r)[1] == "invalid_request" and ("admin_delete", "1") not in seen, r.text[:300]
    finally:
        servers.stop()


def test_session_book_a_subjects_flood_pushes_out_only_its_own():
    """The HTTP layer's session book: one subject's flood of initializes pushes out only its own sessions; a full book
    forgets the oldest of all (what the core says to keep and forget is tested through HTTP above)."""
    from mcpvault.mcp import _SessionBook
    book = _SessionBook(100, 10)
    book.bind("victim", "agent-a")
    for i in range(1, 90):
        book.bind(f"s-{i}", f"subject-{i % 20}")
    for i in range(60):
        book.bind(f"flood-{i}", "agent-z")
    assert book["victim"] == "agent-a" and book["s-1"] == "subject-1"
    assert "flood-49" not in book and book["flood-50"] == "agent-z"
    assert len(book.subjects) == 100
    book.bind("late", "agent-b")
    assert "victim" not in book and book["late"] == "agent-b"
    book.forget("late")
    book.forget("never-bound")
    assert sum(len(own) for own in book.by_subject.values()) == len(book.subjects) == 99
    for sid, subject in [("", "s"), (None, "s"), ("x", None), (7, "s")]:
        book.bind(sid, subject)
    assert len(book.subjects) == 99


@pytest.mark.parametrize("which", ["a", "f"])
def test_half_a_million_tiny_objects_are_refused_before_they_are_parsed(http, tokens, which):
    urls, seen = http
    before = len(seen[which])
    body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"db_query","arguments":{"sql":"x","a":[%s]}}}' % \
        ",".join(['{"":0}'] * 500_000)
    started = time.monotonic()
    for headers in ([], _bearer(tokens["root"])):
        _refused(_post(urls[which], body, headers), 400, "invalid_request", tokens["root"])
    print(f"500,000 objects refused twice in {time.monotonic() - started:.2f} s")
    assert len(seen[which]) == before
