"""mcpvault.mcp: with_mcpvault on servers of the official MCP Python SDK, with the SDK's own client in process,
over stdio (a subprocess) and over Streamable HTTP (uvicorn on 127.0.0.1); the guard vectors through both layers;
a CLI-minted token attenuated in Python; attacker cases."""
import asyncio
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from starlette.requests import Request

from conftest import ROOT, STATE, _free_port
from mcpvault import MCPVault, McpVaultError
from mcpvault.mcp import CHECK_TOOL, REDACTED, McpVaultMiddleware, facts, with_mcpvault

HERE = pathlib.Path(__file__).resolve().parent
SERVER = HERE / "guarded_server.py"
LIMIT = {"tool": "db_query", "arg": "max_rows", "op": "max", "value": 100}


@pytest.fixture(scope="module")
def tokens(keys):
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query", "file_read", "admin_delete"], "ttl": 3600, "issuer": "auth-server",
                            "subject": "agent-a", "resources": ["file:///srv/*"], "prompts": ["greeting"]})
    narrow = v.attenuate(root, {"tools": ["db_query"], "arg_limits": [LIMIT]})
    plain = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "auth-server", "subject": "agent-b"})
    return {"root": root, "narrow": narrow, "plain": plain, "single": v.attenuate(root, {"single_use": True})}


async def code_of(awaitable):
    """The (JSON-RPC code, mcpvault code) of a refusal, or "allowed"."""
    try:
        await awaitable
    except MCPError as e:
        return e.code, (e.data or {}).get("code")
    return "allowed"


def make_server(public_key, seen=None, **options):
    mcp = MCPServer("in-process")

    @mcp.tool()
    def db_query(sql: str, max_rows: int = 10, leak: str = "") -> str:
        if seen is not None:
            seen.append({"sql": sql, "max_rows": max_rows, "leak": leak, "facts": facts()})
        return f"db_query ok {sql} {max_rows}"

    @mcp.tool()
    def admin_delete(id: str) -> str:
        if seen is not None:
            seen.append({"admin_delete": id})
        return "deleted"

    @mcp.resource("file:///srv/readme")
    def readme() -> str:
        return "public readme"

    @mcp.resource("file:///etc/passwd")
    def passwd() -> str:
        if seen is not None:
            seen.append({"read": "passwd"})
        return "root:x:0:0"

    @mcp.prompt()
    def greeting() -> str:
        return "hello"

    @mcp.prompt()
    def secret() -> str:
        return "secret"

    return with_mcpvault(mcp, public_key_hex=public_key, **options)


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # the 2026-07-28 per-request era and the initialize handshake
def test_in_process_allowed_refused_filtered_stripped(keys, tokens, mode):
    seen, decisions = [], []
    mcp = make_server(keys[1], seen, check_tool=True, on_decision=decisions.append)
    narrow, root = tokens["narrow"], tokens["root"]

    async def main():
        async with Client(mcp, mode=mode) as c:
            for key in ("token", "mcpvault/token"):
                meta = {key: narrow, "progressToken": 7}
                assert [t.name for t in (await c.list_tools(meta=meta)).tools] == ["db_query", CHECK_TOOL]
                ok = await c.call_tool("db_query", {"sql": "s", "max_rows": 3, "leak": narrow}, meta=meta)
                assert ok.content[0].text == "db_query ok s 3"
                assert await code_of(c.call_tool("admin_delete", {"id": "1"}, meta=meta)) == (-32013, "tool_not_allowed")
                assert await code_of(c.call_tool("db_query", {"sql": "s", "max_rows": 101}, meta=meta)) == \
                    (-32013, "argument_not_allowed")
            assert await code_of(c.call_tool("db_query", {"sql": "s"})) == (-32011, "missing_token")
            assert await code_of(c.list_tools(cache_mode="refresh")) == (-32011, "missing_token")
            assert await code_of(c.call_tool("db_query", {"sql": "s"}, meta={"token": "garbage"})) == \
                (-32011, "malformed_token")
            # every other method is decided too
            assert await code_of(c.list_prompts(cache_mode="refresh")) == (-32011, "missing_token")
            assert await code_of(c.get_prompt("greeting", meta={"token": "garbage"})) == (-32011, "malformed_token")
            assert await code_of(c.read_resource("file:///etc/passwd", meta={"token": "garbage"})) == \
                (-32011, "malformed_token")
            assert await code_of(c.read_resource("file:///etc/passwd", meta={"token": root})) == \
                (-32013, "resource_not_allowed")
            assert (await c.read_resource("file:///srv/readme", meta={"token": root})).contents[0].text == \
                "public readme"
            assert await code_of(c.get_prompt("secret", meta={"token": root})) == (-32013, "prompt_not_allowed")
            # lists keep what the token grants
            assert [r.uri for r in (await c.list_resources(meta={"token": root})).resources] == ["file:///srv/readme"]
            assert [p.name for p in (await c.list_prompts(meta={"token": root})).prompts] == ["greeting"]
            assert sorted(t.name for t in (await c.list_tools(meta={"token": root})).tools) == \
                sorted(["admin_delete", "db_query", CHECK_TOOL])
            # a token that grants no resource and no prompt lists none (the server opens neither)
            assert (await c.list_resources(meta={"token": tokens["plain"]})).resources == []
            assert (await c.list_prompts(meta={"token": tokens["plain"]})).prompts == []
            assert [r.uri for r in (await c.list_resources(meta={"token": narrow})).resources] == \
                ["file:///srv/readme"]
            # the dry run answers without running anything, and needs a valid token itself
            dry = await c.call_tool(CHECK_TOOL, {"tool": "admin_delete"}, meta={"token": narrow})
            assert [dry.structured_content["allowed"], dry.structured_content["code"]] == [False, "tool_not_allowed"]
            dry = await c.call_tool(CHECK_TOOL, {"tool": "db_query", "arguments": {"max_rows": 5}},
                                    meta={"token": narrow})
            assert dry.structured_content["allowed"] is True
            assert await code_of(c.call_tool(CHECK_TOOL, {"tool": "db_query"})) == (-32011, "missing_token")

    anyio.run(main)
    # the handler ran for the allowed calls only, never saw the token, and read the facts
    assert [(s["sql"], s["max_rows"], s["leak"]) for s in seen] == [("s", 3, ""), ("s", 3, "")]
    assert all(s["facts"]["subject"] == "agent-a" and s["facts"]["tool"] == "db_query" for s in seen)
    refused = [d["code"] for d in decisions if not d["allowed"]]
    assert refused[:2] == ["tool_not_allowed", "argument_not_allowed"]
    assert all(d["facts"]["subject"] in ("agent-a", "agent-b") for d in decisions if d["allowed"])
    assert any(d["allowed"] and d["facts"].get("tool") == "db_query" for d in decisions)


def test_the_handler_sees_no_token_in_meta(keys, tokens):
    """The handler's params and ctx.meta lose the token; the rest of _meta stays."""
    got = []

    async def call_tool(ctx, params):
        got.append((ctx.meta, params.meta, params.arguments))
        return {"content": [{"type": "text", "text": "ran"}]}

    async def list_tools(ctx, params):
        return {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("db_query", "file_read")]}

    low = with_mcpvault(Server("low", on_list_tools=list_tools, on_call_tool=call_tool), public_key_hex=keys[1])

    async def main():
        async with Client(low, mode="legacy") as c:
            assert [t.name for t in (await c.list_tools(meta={"token": tokens["narrow"]})).tools] == ["db_query"]
            await c.call_tool("db_query", {"max_rows": 1}, meta={"token": tokens["narrow"], "progressToken": 3})
            assert await code_of(c.call_tool("file_read", {}, meta={"token": tokens["narrow"]})) == \
                (-32013, "tool_not_allowed")

    anyio.run(main)
    assert len(got) == 1
    assert tokens["narrow"] not in json.dumps([str(g) for g in got])
    assert got[0][2] == {"max_rows": 1}
    assert "3" in str(got[0][0])  # progressToken kept


def test_a_server_without_tools_gets_the_dry_run_tool(keys, tokens):
    bare = with_mcpvault(Server("bare"), public_key_hex=keys[1], check_tool=True)

    async def main():
        async with Client(bare, mode="legacy") as c:
            assert [t.name for t in (await c.list_tools(meta={"token": tokens["narrow"]})).tools] == [CHECK_TOOL]
            dry = await c.call_tool(CHECK_TOOL, {"tool": "db_query", "arguments": {"max_rows": 9}},
                                    meta={"token": tokens["narrow"]})
            assert dry.structured_content["allowed"] is True

    anyio.run(main)


def test_options_are_checked_when_wrapping(keys):
    ok = {"public_key_hex": keys[1]}
    for server, options, message in [
        (object(), ok, "expected an MCPServer or a low-level Server"),
        (MCPServer("x"), {}, "public_key_hex is required"),
        (MCPServer("x"), {**ok, "check_tool": "yes"}, "check_tool must be True or False"),
        (MCPServer("x"), {**ok, "extra": 1}, "unknown option 'extra'"),
        (MCPServer("x"), {**ok, "store": 3}, "store must be"),
        (MCPServer("x"), {**ok, "retry_window": 1.5}, "retry_window must be seconds"),
        (MCPServer("x"), {**ok, "on_decision": 1}, "on_decision must be a function"),
        (MCPServer("x"), {**ok, "store": "memory", "vault": MCPVault()}, "not both"),
    ]:
        with pytest.raises(TypeError, match=re.escape(message)):
            with_mcpvault(server, **options)
    with pytest.raises(McpVaultError) as e:
        with_mcpvault(MCPServer("x"), public_key_hex="abcd")
    assert e.value.code == "invalid_key" and "public_key_hex" in str(e.value)
    with pytest.raises(McpVaultError) as e:
        with_mcpvault(MCPServer("x"), public_key_hex=keys[1], rules=[{"id": "r", "enforcement": "sometimes"}])
    assert e.value.code == "invalid_request"
    twice = with_mcpvault(MCPServer("x"), **ok)
    with pytest.raises(TypeError, match="already applied"):
        with_mcpvault(twice, **ok)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_fifty_parallel_single_use_calls_run_once(keys, tokens, store, tmp_path):
    seen = []
    spec = "memory" if store == "memory" else f"sqlite:{tmp_path / 'store.db'}"
    mcp = make_server(keys[1], seen, store=spec)

    async def main():
        async with Client(mcp, mode="legacy") as c:
            await c.list_tools(meta={"token": tokens["root"]})  # the client validates results on the listed schemas
            results = [None] * 50

            async def one(i):
                results[i] = await code_of(c.call_tool("db_query", {"sql": "once"}, meta={"token": tokens["single"]}))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(one, i)
            return results

    results = anyio.run(main)
    assert len(seen) == 1
    assert results.count("allowed") == 1
    assert sorted(set(r for r in results if r != "allowed")) == [(-32011, "replayed")]


def test_without_a_store_a_single_use_call_never_runs(keys, tokens):
    seen = []
    mcp = make_server(keys[1], seen)

    async def main():
        async with Client(mcp, mode="legacy") as c:
            return await code_of(c.call_tool("db_query", {"sql": "x"}, meta={"token": tokens["single"]}))

    assert anyio.run(main) == (-32011, "replayed")
    assert seen == []


def test_a_token_in_the_wrong_place_is_no_token(keys, tokens):
    seen = []
    mcp = make_server(keys[1], seen)

    async def main():
        async with Client(mcp, mode="legacy") as c:
            # as an argument, in _meta under another name: not a presented token; the call is refused
            assert await code_of(c.call_tool("db_query", {"sql": "s", "token": tokens["root"]})) == \
                (-32011, "missing_token")
            assert await code_of(c.call_tool("db_query", {"sql": "s"}, meta={"authorization": tokens["root"]})) == \
                (-32011, "missing_token")
            assert await code_of(c.call_tool("db_query", {"sql": "s"},
                                              meta={"token": {"token": tokens["root"]}})) == \
                (-32011, "missing_token")

    anyio.run(main)
    assert seen == []


def test_a_request_sent_as_a_notification_never_runs(keys, tokens):
    """The SDK hands a message without an id to the middleware as a notification: a tools/call never reaches the
    server; the guard's refusal is reported. Client notifications (notifications/*) pass."""
    decisions, handed = [], []
    server = with_mcpvault(Server("n"), public_key_hex=keys[1], on_decision=decisions.append)
    guard = server.middleware[-1]

    async def call_next(ctx):
        handed.append(ctx.method)

    async def main():
        for method, params in [("tools/call", {"name": "db_query", "arguments": {}, "_meta": {"token": tokens["root"]}}),
                               ("tools/list", {"_meta": {"token": "garbage"}}),
                               ("notifications/initialized", None)]:
            ctx = ServerRequestContext(session=None, lifespan_context={}, protocol_version="2025-11-25",
                                       method=method, params=params, request_id=None)
            assert await guard(ctx, call_next) is None

    anyio.run(main)
    assert handed == ["notifications/initialized"]
    assert [(d["method"], d["code"]) for d in decisions] == [("tools/call", "invalid_request"),
                                                             ("tools/list", "malformed_token")]


# ---------------------------------------------------------------------------------------------------------------
# The guard vectors through both layers: the message layer (with_mcpvault's Server.middleware entry) and the HTTP
# layer (McpVaultMiddleware).

def _vector_cases():
    cases = []
    for path in STATE:
        case = json.loads(path.read_text())
        if case["operation"] == "guard" and "tool" not in case["options"]:
            cases.append(pytest.param(case, id=path.stem))
    return cases


_PLAIN = ("http_method", "headers", "body")


def _plain(inp):
    """A step that is only an HTTP request (what a host hands on from a layer in front is not)."""
    return all(k in _PLAIN or (k == "replay_checked" and v is False) for k, v in inp.items())


def _options(case, now, http=False):
    o = dict(case["options"])
    options = {"public_key_hex": o.pop("public_key"), "now": lambda: now[0]}
    uses_store = o.pop("store")
    for k in ("audience", "retry_window", "check_tool", "realm", "resource_metadata", "mappings", "tool_mappings",
              "rules", "open_resources", "open_prompts"):
        if k in o:
            options[k] = o.pop(k)
    if o.pop("defer_spend", False):
        if not http:
            pytest.skip("defer_spend: a layer in front of the one that spends (the HTTP layer's option)")
        options["defer_spend"] = True
    if o.pop("defer_pins", False):
        if not http:
            pytest.skip("defer_pins: a layer in front of the one that knows the tool definitions (the HTTP layer's)")
        options["defer_pins"] = True
    if o:
        pytest.skip(f"options with_mcpvault does not take: {sorted(o)}")
    vault = MCPVault(store="memory" if uses_store else None)
    for rid in case["revoked"]:
        vault.revoke(rid, 0)
    options["vault"] = vault
    return options, vault


@pytest.mark.parametrize("case", _vector_cases())
def test_vector_through_the_http_layer(case):
    """Every step that is an HTTP request (method, headers, body): the status, headers and JSON-RPC answer of a
    refusal, and the body handed on, are the vector's."""
    now = [0]
    options, vault = _options(case, now, http=True)
    forwarded = []

    async def app(scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        forwarded.append(json.loads(body) if body else None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guarded = McpVaultMiddleware(app, **options)
    ran = 0

    async def main():
        nonlocal ran
        transport = httpx2.ASGITransport(app=guarded)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as http:
            for i, step in enumerate(case["steps"]):
                inp = step["input"]
                if not _plain(inp):
                    return  # a later step depends on this one
                now[0] = step["now"]
                forwarded.clear()
                r = await http.request(inp.get("http_method", "POST"), "/mcp", headers=inp.get("headers", {}),
                                       content=inp.get("body", "").encode())
                expect = step["expect"]
                ran += 1
                if not expect["allowed"]:
                    assert r.status_code == expect["status"], f"step {i}"
                    assert r.json() == expect["response"], f"step {i}"
                    for k, v in expect["headers"].items():
                        assert r.headers[k] == v, f"step {i}"
                    assert forwarded == []
                elif expect["forward"] is None and expect["answers"]:
                    assert r.status_code == 200 and forwarded == []
                    answer = r.json()
                    assert answer == (expect["answers"] if isinstance(answer, list) else expect["answers"][0])
                else:
                    assert r.status_code == 200
                    want = expect["forward"]
                    assert forwarded == [want if want is not None else
                                         (json.loads(inp["body"]) if inp.get("body") else None)], f"step {i}"
                if "complete" in step and expect.get("call_key") and vault.store is not None:
                    vault.store.complete(expect["call_key"], step["complete"], expect["keep_until"],
                                         expect["keep_for"])

    anyio.run(main)
    if ran == len(case["steps"]) and vault.store is not None:
        assert len(vault.audit_entries()) == case["audit_entries"]


def _single_requests(case):
    """The case's steps when each is one JSON-RPC request an MCP server dispatches (else None)."""
    steps = []
    for step in case["steps"]:
        inp = step["input"]
        if not _plain(inp) or inp.get("http_method", "POST") != "POST":
            return None
        if any(h.lower() in ("mcp-method", "mcp-name") for h in inp.get("headers", {})):
            return None
        try:
            message = json.loads(inp.get("body", ""))
        except ValueError:
            return None
        if not isinstance(message, dict) or "method" not in message or "id" not in message:
            return None
        if not isinstance(message["method"], str) or message["method"] in ("initialize", "ping"):
            return None
        steps.append((step, message))
    return steps


class StillRunning(BaseException):
    pass


@pytest.mark.parametrize("case", _vector_cases())
def test_vector_through_the_message_layer(case):
    """Every case made of JSON-RPC requests, as the SDK hands them to the server's middleware (the token from the
    HTTP headers or _meta): the MCP error of a refusal, the guard's own answers, and the params the handler gets are
    the vector's; decisions and the audit chain too."""
    steps = _single_requests(case)
    if steps is None:
        pytest.skip("not requests an MCP server dispatches one by one (HTTP-only, batch, notification)")
    now = [0]
    options, vault = _options(case, now)
    decisions = []
    server = with_mcpvault(Server("vectors"), on_decision=decisions.append, **options)
    guard = server.middleware[-1]

    async def main():
        for i, (step, message) in enumerate(steps):
            now[0] = step["now"]
            decisions.clear()
            expect = step["expect"]
            headers = [(k.lower().encode(), v.encode()) for k, v in step["input"].get("headers", {}).items()]
            request = Request({"type": "http", "method": "POST", "path": "/mcp", "headers": headers})
            ctx = ServerRequestContext(session=None, lifespan_context={}, protocol_version="2025-11-25",
                                       method=message["method"], params=message.get("params"),
                                       request_id=message["id"], request=request)
            handed = []

            done = step.get("complete")

            async def call_next(inner):
                handed.append(inner)
                if done is None:
                    raise StillRunning()  # a handler that has not finished: nothing is recorded
                if "error" in done:
                    raise MCPError(done["error"]["code"], done["error"]["message"], done["error"].get("data"))
                return done["result"]

            try:
                got = await guard(ctx, call_next)
            except StillRunning:
                assert expect["allowed"] and not expect["answers"] and len(handed) == 1, f"step {i}"
                assert handed[0].params == expect["forward"].get("params"), f"step {i}"
            except MCPError as e:
                error = {"code": e.code, "message": e.message}
                if e.data is not None:
                    error["data"] = e.data
                if done is not None and "error" in done and handed:
                    # the handler's error, as the client gets it (and recorded for a retry)
                    assert expect["allowed"] and error == done["error"], f"step {i}"
                elif expect["allowed"]:
                    # a retry answered with the recorded error
                    assert handed == [] and error == expect["answers"][0]["error"], f"step {i}"
                else:
                    assert error == expect["response"]["error"], f"step {i}"
                    assert handed == []
            else:
                assert expect["allowed"], f"step {i}"
                if expect["answers"]:
                    assert handed == [] and got == expect["answers"][0]["result"], f"step {i}"
                else:
                    assert len(handed) == 1
                    assert handed[0].params == expect["forward"].get("params"), f"step {i}"
                    assert handed[0].request.headers.get("authorization") in (None, f"Bearer {REDACTED}")
            for d in decisions:
                d.pop("cache_hit", None)
                d.pop("facts", None)
            assert decisions == expect["decisions"], f"step {i}"

    anyio.run(main)
    if vault.store is not None:
        assert len(vault.audit_entries()) == case["audit_entries"]


def test_the_vectors_run_through_the_message_layer():
    """Guards the skip above: most cases are requests a server dispatches."""
    assert sum(_single_requests(c.values[0]) is not None for c in _vector_cases()) >= 30


# ---------------------------------------------------------------------------------------------------------------
# Parity: a token minted by the CLI, attenuated in Python, gets the codes the Node wrapper gives (the same codes its
# tests assert: npm/mcpvault-mcp/test/wrapper.test.mjs).

def test_cli_token_attenuated_in_python_same_codes_as_node(cli, tmp_path):
    key_file = tmp_path / "key.json"
    done = subprocess.run([cli, "keygen", "--out", str(key_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    public = json.loads(key_file.read_text())["public_key"]
    minted = subprocess.run([cli, "mint", "--key", str(key_file), "--tools", "db_query,file_read,admin_delete",
                             "--ttl", "3600", "--issuer", "auth-server", "--subject", "agent-a",
                             "--audience", "db-server"], capture_output=True, text=True)
    assert minted.returncode == 0, minted.stderr
    root = minted.stdout.strip()
    v = MCPVault()
    narrow = v.attenuate(root, {"tools": ["db_query"], "arg_limits": [LIMIT]})
    elsewhere = v.attenuate(root, {"audience": "mail-server"})
    seen = []
    mcp = make_server(public, seen, audience="db-server")
    expected = [
        (narrow, "db_query", {"sql": "s", "max_rows": 3}, "allowed"),
        (narrow, "admin_delete", {"id": "1"}, (-32013, "tool_not_allowed")),
        (narrow, "db_query", {"sql": "s", "max_rows": 101}, (-32013, "argument_not_allowed")),
        (root, "admin_delete", {"id": "1"}, "allowed"),
        (elsewhere, "db_query", {"sql": "s"}, (-32011, "wrong_audience")),
        (None, "db_query", {"sql": "s"}, (-32011, "missing_token")),
        ("garbage", "db_query", {"sql": "s"}, (-32011, "malformed_token")),
        (root[:-8] + "AAAAAAAA", "db_query", {"sql": "s"}, (-32011, "bad_signature")),
    ]

    async def main():
        async with Client(mcp, mode="legacy") as c:
            # the client validates results against the listed schemas: it lists the tools (with a token) first
            await c.list_tools(meta={"token": root})
            return [await code_of(c.call_tool(tool, args, meta={"token": t} if t else None))
                    for t, tool, args, _ in expected]

    got = anyio.run(main)
    assert got[:7] == [e[3] for e in expected][:7]
    assert got[7][0] == -32011  # a changed signature: bad_signature or malformed_token, refused either way
    assert len(seen) == 2


# ---------------------------------------------------------------------------------------------------------------
# A real client over stdio and over Streamable HTTP, against guarded_server.py in a subprocess.

def _env(keys, tmp_path, **extra):
    env = dict(os.environ, MCPVAULT_PUBLIC_KEY=keys[1], MCPVAULT_TEST_LOG=str(tmp_path / "ran.log"), **extra)
    env["PYTHONPATH"] = str(HERE)
    return env


def _ran(tmp_path):
    log = tmp_path / "ran.log"
    return log.read_text().splitlines() if log.exists() else []


def test_stdio_real_client(keys, tokens, tmp_path):
    params = StdioServerParameters(command=sys.executable, args=[str(SERVER), "stdio"], env=_env(keys, tmp_path))
    narrow, root = tokens["narrow"], tokens["root"]

    async def main():
        async with Client(params) as c:
            assert [t.name for t in (await c.list_tools(meta={"token": narrow})).tools] == ["db_query", CHECK_TOOL]
            ok = await c.call_tool("db_query", {"sql": "q", "max_rows": 5, "leak": narrow}, meta={"token": narrow})
            assert ok.content[0].text.startswith("db_query ok q 5")
            assert await code_of(c.call_tool("admin_delete", {"id": "7"}, meta={"token": narrow})) == \
                (-32013, "tool_not_allowed")
            assert await code_of(c.call_tool("db_query", {"sql": "q", "max_rows": 500}, meta={"token": narrow})) == \
                (-32013, "argument_not_allowed")
            assert await code_of(c.call_tool("db_query", {"sql": "q"})) == (-32011, "missing_token")
            assert await code_of(c.read_resource("file:///etc/passwd", meta={"token": "garbage"})) == \
                (-32011, "malformed_token")
            assert await code_of(c.get_prompt("secret", meta={"token": root})) == (-32013, "prompt_not_allowed")
            assert [p.name for p in (await c.list_prompts(meta={"token": root})).prompts] == ["greeting"]
            dry = await c.call_tool(CHECK_TOOL, {"tool": "admin_delete"}, meta={"token": narrow})
            assert dry.structured_content["code"] == "tool_not_allowed"
            # single use over stdio with the server's memory store: once, then replayed
            assert (await c.call_tool("db_query", {"sql": "one"}, meta={"token": tokens["single"]})).is_error is False
            assert await code_of(c.call_tool("db_query", {"sql": "two"}, meta={"token": tokens["single"]})) == \
                (-32011, "replayed")

    anyio.run(main)
    assert _ran(tmp_path) == ["db_query q 5  agent-a", "db_query one 10  agent-a"]


@pytest.fixture()
def http_server(keys, tmp_path):
    """guarded_server.py over Streamable HTTP (uvicorn on 127.0.0.1, a free port), stopped at the end."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "http", str(port)],
                            env=_env(keys, tmp_path, MCPVAULT_AUDIENCE="db-server"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the server exited with {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("the server did not listen")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def http_client(url, token, statuses):
    async def hook(response):
        statuses.append((response.status_code, response.headers.get("www-authenticate")))

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, event_hooks={"response": [hook]})


def test_http_real_client(keys, http_server, tmp_path):
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query", "file_read", "admin_delete"], "ttl": 3600, "issuer": "auth-server",
                            "subject": "agent-a", "audience": "db-server"})
    narrow = v.attenuate(root, {"tools": ["db_query"], "arg_limits": [LIMIT]})

    async def main():
        statuses = []
        async with await http_client(http_server, narrow, statuses) as hc:
            async with Client(streamable_http_client(http_server, http_client=hc)) as c:
                assert [t.name for t in (await c.list_tools()).tools] == ["db_query", CHECK_TOOL]
                ok = await c.call_tool("db_query", {"sql": "select 1", "max_rows": 100, "leak": narrow})
                assert ok.content[0].text.startswith("db_query ok select 1 100")
                statuses.clear()
                assert await code_of(c.call_tool("admin_delete", {"id": "7"})) == (-32013, "tool_not_allowed")
                assert statuses[-1][0] == 403
                assert statuses[-1][1].startswith('Bearer realm="mcpvault", error="insufficient_scope"')
                assert 'scope="admin_delete"' in statuses[-1][1]
                assert await code_of(c.call_tool("db_query", {"sql": "x", "max_rows": 1000})) == \
                    (-32013, "argument_not_allowed")
                assert statuses[-1][0] == 403
                dry = await c.call_tool(CHECK_TOOL, {"tool": "admin_delete", "arguments": {"id": "7"}})
                assert [dry.structured_content["allowed"], dry.structured_content["failedBlock"]] == [False, 1]
        # no token, a garbage one, another audience: refused before any MCP message is handled
        expired = v.mint(keys[0], {"tools": ["db_query"], "ttl": 60, "issuer": "i", "subject": "s",
                                   "audience": "db-server"}, int(time.time()) - 120)
        elsewhere = v.attenuate(root, {"audience": "mail-server"})
        for token, code, challenge in [(None, "missing_token", 'Bearer realm="mcpvault"'),
                                       ("garbage", "malformed_token", 'error="invalid_token"'),
                                       (expired, "expired", 'error="invalid_token"'),
                                       (elsewhere, "wrong_audience", 'error="invalid_token"')]:
            statuses = []
            async with await http_client(http_server, token, statuses) as hc:
                with pytest.raises(BaseException) as e:
                    async with Client(streamable_http_client(http_server, http_client=hc)):
                        pass
                assert code in str(e.value.exceptions if hasattr(e.value, "exceptions") else e.value) or \
                    code in repr(e.value)
                assert statuses[0][0] == 401
                assert challenge in statuses[0][1]

    anyio.run(main)
    assert _ran(tmp_path) == ["db_query select 1 100  agent-a"]


def test_http_pins_and_approvals(keys, http_server, tmp_path):
    """Over Streamable HTTP, through both layers: the HTTP layer does not know the tool definitions (defer_pins) and
    lets a pinned call through for the message layer, which checks it against the server's tools/list; approvals in
    _meta or in the X-MCPVault-Approval header are checked by the HTTP layer, handed on, and spent once by the
    message layer."""
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query", "file_read"], "ttl": 3600, "issuer": "i", "subject": "s",
                            "audience": "db-server"})
    approver = v.generate_keypair()

    async def session(token, *calls, **headers):
        statuses = []
        async with await http_client(http_server, token, statuses) as hc:
            hc.headers.update(headers)
            async with Client(streamable_http_client(http_server, http_client=hc)) as c:
                names = sorted(t.name for t in (await c.list_tools()).tools)
                return names, [await code_of(call(c)) for call in calls], statuses

    def call(tool, args, **meta):
        return lambda c: c.call_tool(tool, args, meta=meta or None)

    async def main():
        names, _, _ = await session(root)
        assert names == sorted(["db_query", "file_read", CHECK_TOOL])
        async with await http_client(http_server, root, []) as hc:
            async with Client(streamable_http_client(http_server, http_client=hc)) as c:
                hashes = v.tool_hashes(await c.list_tools())
        pinned = v.attenuate(root, {"pin": {"db_query": hashes["db_query"]},
                                    "require_approval": {"tool": "file_read", "approvers": [approver[1]]}})
        wrong = v.attenuate(root, {"pin": {"db_query": "ab" * 32}})
        args = {"path": "/a"}
        h = v.request_hash(pinned, tool="file_read", arguments=args, audience="db-server")
        approval = v.approve(approver[0], h)
        names, codes, statuses = await session(
            pinned, call("db_query", {"sql": "pinned"}), call("file_read", args),
            call("file_read", args, **{"mcpvault/approvals": [approval]}),
            call("file_read", args, **{"mcpvault/approvals": [approval]}))
        assert names == sorted(["db_query", "file_read", CHECK_TOOL])
        assert codes == ["allowed", (-32013, "approval_required"), "allowed", (-32011, "replayed")]
        # a pin to another definition: the HTTP layer defers, the message layer refuses and hides the tool
        names, codes, _ = await session(wrong, call("db_query", {"sql": "wrong"}), call("file_read", {"path": "/b"}))
        assert names == sorted(["file_read", CHECK_TOOL])
        assert codes == [(-32013, "tool_definition_changed"), "allowed"]
        # its dry run goes on to the message layer, which knows the definitions (the HTTP layer answered it before,
        # its pins deferred: "allowed")
        async with await http_client(http_server, wrong, []) as hc:
            async with Client(streamable_http_client(http_server, http_client=hc)) as c:
                dry = await c.call_tool(CHECK_TOOL, {"tool": "db_query", "arguments": {"sql": "x"}})
        assert (dry.structured_content["allowed"], dry.structured_content["code"]) == \
            (False, "tool_definition_changed")
        # an approval in the header, for the one call it approves
        h2 = v.request_hash(pinned, tool="file_read", arguments={"path": "/c"}, audience="db-server")
        header = {"X-MCPVault-Approval": v.approve(approver[0], h2)}
        _, codes, _ = await session(pinned, call("file_read", {"path": "/c"}), call("file_read", {"path": "/d"}),
                                    **header)
        assert codes == ["allowed", (-32013, "approval_required")]

    anyio.run(main)
    assert _ran(tmp_path) == ["db_query pinned 10  s", "file_read /a", "file_read /b", "file_read /c"]


def _post(url, body, token=None, **headers):
    h = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **headers}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return httpx2.post(url, content=body if isinstance(body, (str, bytes)) else json.dumps(body), headers=h)


def test_http_attacker_cases(keys, http_server, tmp_path):
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s", "audience": "db-server"})
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "admin_delete", "arguments": {"id": "1"}}}
    # garbage token on resources/read
    r = _post(http_server, {"jsonrpc": "2.0", "id": 1, "method": "resources/read",
                            "params": {"uri": "file:///etc/passwd"}}, "garbage")
    assert (r.status_code, r.json()["error"]["data"]["code"]) == (401, "malformed_token")
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # a notification where a request was expected: never run
    r = _post(http_server, {"jsonrpc": "2.0", "method": "tools/call",
                            "params": {"name": "db_query", "arguments": {"sql": "x"}}}, root)
    assert (r.status_code, r.json()["error"]["data"]["code"]) == (400, "invalid_request")
    # the token in the wrong place: in the arguments, in a cookie
    r = _post(http_server, {**call, "params": {"name": "db_query", "arguments": {"sql": "x", "token": root}}})
    assert (r.status_code, r.json()["error"]["data"]["code"]) == (401, "missing_token")
    r = _post(http_server, call, None, Cookie=f"token={root}")
    assert r.status_code == 401
    # a _meta token that differs from the header's
    r = _post(http_server, {**call, "params": {"name": "db_query", "arguments": {}, "_meta": {"token": "other"}}}, root)
    assert (r.status_code, r.json()["error"]["data"]["code"]) == (400, "invalid_request")
    # a batch: one refused message refuses the batch, nothing runs
    batch = [{**call, "id": 1, "params": {"name": "db_query", "arguments": {"sql": "b"}}}, {**call, "id": 2}]
    r = _post(http_server, batch, root)
    assert r.status_code == 403
    assert [e["error"]["data"]["code"] for e in r.json()] == ["tool_not_allowed", "tool_not_allowed"]
    # headers that disagree with the body, a body that is not JSON, not UTF-8, too deep
    r = _post(http_server, {**call, "params": {"name": "db_query", "arguments": {}}}, root, **{"Mcp-Name": "other"})
    assert (r.status_code, r.json()["error"]["data"]["code"]) == (400, "invalid_request")
    for body in ("{not json", b"\xff\xfe", "[" * 200 + "]" * 200):
        r = _post(http_server, body, root)
        assert (r.status_code, r.json()["error"]["data"]["code"]) == (400, "invalid_request"), body
    assert _ran(tmp_path) == []


def test_http_fifty_parallel_identical_single_use_calls_run_once(keys, http_server, tmp_path):
    """The same request 50 times at once (one id, one single-use token): one execution; the others are in flight
    (409) or get the recorded response."""
    v = MCPVault()
    root = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s", "audience": "db-server"})
    single = v.attenuate(root, {"single_use": True})

    async def main():
        sent = []

        async def capture(request):
            if b"tools/call" in request.content:
                sent.append((dict(request.headers), request.content))

        # the request the SDK's client sends for this call, then the same bytes 49 more times at once
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {single}"},
                                      event_hooks={"request": [capture]}) as hc:
            async with Client(streamable_http_client(http_server, http_client=hc)) as c:
                first = await c.call_tool("db_query", {"sql": "once"})
                assert first.is_error is False
        headers, body = sent[0]
        headers.pop("content-length", None)
        results = []
        async with httpx2.AsyncClient() as http:
            async def one():
                r = await http.post(http_server, content=body, headers=headers)
                results.append(r.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(one)
        return results

    results = anyio.run(main)
    assert len(results) == 50
    assert all(s in (200, 409) for s in results), results
    assert _ran(tmp_path) == ["db_query once 10  s"]


# ---------------------------------------------------------------------------------------------------------------
# The README's server, run as it is written.

def _readme_snippet():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python MCP server", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_mcp_server(keys, tokens, tmp_path):
    code = _readme_snippet()
    assert len(code.strip().splitlines()) <= 12
    script = tmp_path / "server.py"
    script.write_text(code)
    params = StdioServerParameters(command=sys.executable, args=[str(script)],
                                   env=dict(os.environ, MCPVAULT_PUBLIC_KEY=keys[1]))

    async def main():
        async with Client(params) as c:
            names = [t.name for t in (await c.list_tools(meta={"token": tokens["narrow"]})).tools]
            ok = await c.call_tool("db_query", {"sql": "select 1", "max_rows": 5}, meta={"token": tokens["narrow"]})
            refused = await code_of(c.call_tool("db_query", {"sql": "select 1"}))
            return names, ok, refused

    names, ok, refused = anyio.run(main)
    assert names == ["db_query", CHECK_TOOL]
    assert ok.is_error is False
    assert refused == (-32011, "missing_token")


def test_a_recorded_error_is_what_the_sdk_sends_never_the_exceptions_text():
    # a single-use call's retry gets the recorded response: the SDK masked the handler's exception on the first
    # answer, so the record must not carry its text (a password error, a validation error quoting the arguments)
    from pydantic import BaseModel

    from mcpvault.mcp import _response_of

    class Args(BaseModel):
        amount: int

    try:
        Args(amount="hunter2")
    except Exception as e:
        validation = e
    secret = RuntimeError("password authentication failed for user 'admin' at db.internal:5432")
    assert _response_of(error=secret) == {"error": {"code": -32603, "message": "Internal server error"}}
    assert _response_of(error=validation) == {"error": {"code": -32602, "message": "Invalid request parameters"}}
    mcp_error = MCPError(-32000, "told on purpose")
    assert _response_of(error=mcp_error)["error"]["message"] == "told on purpose"
    assert _response_of({"content": []}) == {"result": {"content": []}}


def test_sixty_concurrent_pinned_calls_finish():
    # the guard's worker threads (anyio's 40) each waited on definitions(), which waited for one of them to hash: at
    # 40 pinned calls in flight nothing ever finished again (helper 34)
    v = MCPVault()
    priv, pub = v.generate_keypair()
    server = MCPServer("pins")

    @server.tool()
    def db_query(sql: str) -> str:
        return "rows"

    with_mcpvault(server, public_key_hex=pub)
    guard = next(m for m in server._lowlevel_server.middleware if type(m).__name__ == "_MessageGuard")

    def ctx_of(params, rid):
        return ServerRequestContext(session=None, lifespan_context={}, protocol_version="2025-11-25",
                                    method="tools/call", params=params, request_id=rid, request=None)

    async def main():
        hashes = await guard.definitions(ctx_of({}, 0))
        tok = v.mint(priv, {"tools": ["db_query"], "ttl": 600, "issuer": "i", "subject": "s",
                            "pin": {"db_query": hashes["db_query"]}})
        ran = []

        async def call_next(ctx):
            ran.append(ctx.request_id)
            return {"content": []}

        async def one(i):
            params = {"name": "db_query", "arguments": {"sql": "1"}, "_meta": {"token": tok}}
            await guard(ctx_of(params, i), call_next)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for i in range(60):
                    tg.start_soon(one, i)
        return ran

    # fail_after is only the hang's bound: the old code never finished
    assert sorted(anyio.run(main)) == list(range(60))


def test_messages_that_pass_undecided_lose_their_credentials(keys):
    # initialize, ping and the client's notifications pass without a decision: they went on with the token and the
    # proof in their _meta, and the SDK keeps initialize's params as the session's client_params, which every tool
    # handler can read (helper 34)
    from mcp.server.mcpserver import Context

    from mcpvault.mcp import with_mcpvault_client

    v = MCPVault()
    hpriv, hpub = v.generate_keypair()
    token = v.mint(keys[0], {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s", "holder": hpub})
    seen = {}
    server = MCPServer("x")

    @server.tool()
    def db_query(sql: str, ctx: Context) -> str:
        seen["client_params"] = repr(ctx.session.client_params)
        return "ok"

    with_mcpvault(server, public_key_hex=keys[1], store="memory")

    async def main():
        async with with_mcpvault_client(Client(server, mode="legacy"), token=token, holder_key=hpriv) as c:
            await c.send_ping()
            assert (await c.call_tool("db_query", {"sql": "1"})).content[0].text == "ok"

    anyio.run(main)
    assert "InitializeRequestParams" in seen["client_params"]
    assert token not in seen["client_params"] and "mvp1." not in seen["client_params"], seen["client_params"]


def test_the_handler_sees_no_proof_or_approval_header():
    # spent by the guard, they reached the handler as sent (helper 34); the token is replaced wherever it appears
    from mcpvault.mcp import _redacted_request

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [
        (b"authorization", b"Bearer TOKEN"), (b"x-mcpvault-proof", b"mvp1.1.ab.sig"),
        (b"x-mcpvault-approval", b"mva1.x.y.z"), (b"accept", b"application/json")]}
    headers = dict(_redacted_request(Request(scope), "TOKEN").headers)
    assert headers == {"authorization": f"Bearer {REDACTED}", "x-mcpvault-proof": REDACTED,
                       "x-mcpvault-approval": REDACTED, "accept": "application/json"}


def test_a_notification_over_http_without_the_http_layer_is_decided(keys, tokens):
    # the SSE transport's POSTs reach the message layer with no HTTP layer in front, and the session id is in every
    # URL: a client's notifications went on without a token (helper 34; the SDK's dispatcher applies cancelled and
    # progress before any middleware, as the README says)
    server = MCPServer("sse")
    with_mcpvault(server, public_key_hex=keys[1])
    guard = next(m for m in server._lowlevel_server.middleware if type(m).__name__ == "_MessageGuard")
    told = []

    async def call_next(ctx):
        told.append(ctx.params)

    def ctx_of(meta, request):
        params = {"x": 3, **({"_meta": meta} if meta else {})}
        return ServerRequestContext(session=None, lifespan_context={}, protocol_version="2025-11-25",
                                    method="notifications/roots/list_changed", params=params, request_id=None,
                                    request=request)

    http = Request({"type": "http", "method": "POST", "path": "/messages/", "headers": []})

    async def main():
        await guard(ctx_of(None, http), call_next)  # no token: dropped
        await guard(ctx_of({"token": "garbage"}, http), call_next)  # a bad one: dropped
        await guard(ctx_of({"token": tokens["narrow"]}, http), call_next)  # a valid one: told, without it
        await guard(ctx_of(None, None), call_next)  # stdio / in process: the one client's

    anyio.run(main)
    assert told == [{"x": 3, "_meta": {}}, {"x": 3}]


def test_a_message_over_the_body_limits_is_refused_unless_the_server_raises_them(keys, tokens):
    rows = [[str(i)] for i in range(10_001)]

    def server(**options):
        ran = []
        mcp = MCPServer("bulk")

        @mcp.tool()
        def load(rows: list) -> str:
            ran.append(len(rows))
            return "loaded"

        return with_mcpvault(mcp, public_key_hex=keys[1], **options), ran

    root = tokens["root"]
    strict, ran = server()

    async def call(mcp):
        async with Client(mcp, mode="legacy") as c:
            return await code_of(c.call_tool("load", {"rows": rows}, meta={"token": root}))

    # root grants db_query, file_read, admin_delete: the body is refused before the token is even asked about load
    assert anyio.run(call, strict) == (-32600, "invalid_request") and ran == []
    raised, ran = server(max_body_containers=20_000, max_body_values=200_000)
    assert anyio.run(call, raised) == (-32013, "tool_not_allowed") and ran == []
    with pytest.raises(TypeError, match="max_body_values must be a non-negative integer"):
        server(max_body_values="many")
