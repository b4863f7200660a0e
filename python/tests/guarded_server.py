"""A tiny MCP server guarded by mcpvault, run by the tests as a subprocess: over stdio
(`python guarded_server.py stdio`) or Streamable HTTP (`python guarded_server.py http PORT`).

MCPVAULT_PUBLIC_KEY: the issuer's key. MCPVAULT_TEST_STORE: the store (default memory). MCPVAULT_TEST_LOG: a file
that gets one line per tool execution (the tests count executions there)."""
import os
import sys

from mcp.server.mcpserver import MCPServer

from mcpvault.mcp import facts, with_mcpvault

mcp = MCPServer("guarded")


def _ran(line: str) -> None:
    log = os.environ.get("MCPVAULT_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@mcp.tool()
def db_query(sql: str, max_rows: int = 10, leak: str = "") -> str:
    """Runs a query (pretends to)."""
    f = facts()
    _ran(f"db_query {sql} {max_rows} {leak} {f['subject'] if f else None}")
    return f"db_query ok {sql} {max_rows} {leak}"


@mcp.tool()
def admin_delete(id: str) -> str:
    _ran(f"admin_delete {id}")
    return f"admin_delete ok {id}"


@mcp.tool()
def file_read(path: str) -> str:
    _ran(f"file_read {path}")
    return f"file_read ok {path}"


@mcp.resource("file:///srv/readme")
def readme() -> str:
    return "public readme"


@mcp.resource("file:///etc/passwd")
def passwd() -> str:
    _ran("passwd read")
    return "root:x:0:0"


@mcp.prompt()
def greeting() -> str:
    return "hello"


@mcp.prompt()
def secret() -> str:
    _ran("secret prompt")
    return "the secret prompt"


with_mcpvault(mcp, public_key_hex=os.environ["MCPVAULT_PUBLIC_KEY"], audience=os.environ.get("MCPVAULT_AUDIENCE"),
              store=os.environ.get("MCPVAULT_TEST_STORE", "memory"), check_tool=True)

if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        mcp.run()
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
