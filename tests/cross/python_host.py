"""The Python side of tests/cross: python_host.py CASES.json ANSWERS.json.

The same server as node_host.mjs and crates/rmcp/tests/cross.rs (tools db_query, file_read, admin_delete; prompts
greeting, secret), an MCPServer of the official SDK (mcp 2.x) guarded by mcpvault.mcp.with_mcpvault, asked each MCP
case by the SDK's own Client (in process, the token in _meta), and each HTTP case over Streamable HTTP (uvicorn on
127.0.0.1, McpVaultMiddleware in front of streamable_http_app()) with httpx2. Writes what each case got, in the shape
the driver (run.mjs) compares."""
import json
import socket
import sys

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from mcpvault import MCPVault
from mcpvault.mcp import with_mcpvault

# one vault (one instance of the component) for both servers
VAULT = MCPVault()


def make_server(spec):
    mcp = MCPServer("cross")

    @mcp.tool()
    def db_query(sql: str = "", max_rows: int = 0) -> str:
        return "db_query ok"

    @mcp.tool()
    def file_read(path: str = "") -> str:
        return "file_read ok"

    @mcp.tool()
    def admin_delete(id: str = "") -> str:
        return "admin_delete ok"

    @mcp.prompt()
    def greeting() -> str:
        return "hello"

    @mcp.prompt()
    def secret() -> str:
        return "secret"

    return with_mcpvault(mcp, public_key_hex=spec["public_key"], audience=spec["audience"], vault=VAULT)


async def ask(c, case):
    """One MCP case through the SDK client: {allowed, result} or {allowed: False, rpc, message, data}."""
    meta = None if case["token"] is None else {"token": case["token"]}
    method, p = case["method"], case.get("params") or {}
    try:
        if method == "tools/call":
            r = await c.call_tool(p["name"], p.get("arguments"), meta=meta)
            return {"allowed": True, "result": {"text": r.content[0].text, "isError": bool(r.is_error)}}
        if method == "tools/list":
            r = await c.list_tools(meta=meta, cache_mode="bypass")
            return {"allowed": True, "result": {"names": [t.name for t in r.tools]}}
        if method == "prompts/get":
            r = await c.get_prompt(p["name"], meta=meta)
            return {"allowed": True, "result": {"text": r.messages[0].content.text}}
        if method == "prompts/list":
            r = await c.list_prompts(meta=meta, cache_mode="bypass")
            return {"allowed": True, "result": {"names": [x.name for x in r.prompts]}}
        raise ValueError(f"no such case method {method}")
    except MCPError as e:
        return {"allowed": False, "rpc": e.code, "message": e.message, "data": e.data}


async def mcp_answers(spec):
    out = {}
    # the initialize handshake, as the Node SDK 1.x client and rmcp's client do
    async with Client(make_server(spec), mode="legacy") as c:
        # the client checks a tool's result against the output schema it listed, and lists (with no token) when it
        # has none: list once with a token that may
        await c.list_tools(meta={"token": spec["lister"]}, cache_mode="bypass")
        for case in spec["mcp"]:
            out[case["name"]] = await ask(c, case)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_answer(r):
    a = {"status": r.status_code, "challenge": r.headers.get("www-authenticate")}
    if r.status_code >= 400:
        try:
            a["body"] = r.json()
        except ValueError:
            a["body"] = r.text
    return a


async def http_answers(spec):
    app = make_server(spec).streamable_http_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    out = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(20):
            while not server.started:
                await anyio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient() as http:
            for case in spec["http"]:
                headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
                if case["token"] is not None:
                    headers["authorization"] = f"Bearer {case['token']}"
                r = await http.post(url, content=case["body"].encode(), headers=headers)
                out[case["name"]] = http_answer(r)
        server.should_exit = True
    return out


async def main(spec):
    return {"mcp": await mcp_answers(spec), "http": await http_answers(spec)}


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    answers = anyio.run(main, spec)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(answers, f)
