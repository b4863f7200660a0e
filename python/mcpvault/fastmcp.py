"""mcpvault in front of a server of the standalone ``fastmcp`` package (4.x; ``pip install "mcpvault[fastmcp]"``).

``with_mcpvault(server, public_key_hex=...)`` guards a ``fastmcp.FastMCP`` with the semantics of
:func:`mcpvault.mcp.with_mcpvault` (and Node's ``withMcpVault``), by the same code: every request the server receives
(all but the lifecycle's ``initialize``, ``ping`` and ``server/discover``) is decided by the core's guard before
anything of fastmcp runs; the token, its proofs and approvals are removed before fastmcp's middleware and the
handler see the request; list answers keep only what the token grants (the core's ``guard-filter``); a single-use
call runs once and its retries get its recorded response; refusals are MCP errors with the codes and ``error.data``
of SCHEMA.md ("The guard"); ``check_tool=True`` adds the dry-run tool ``mcpvault.check``, answered by the core; a
token pinning a tool is refused ``tool_definition_changed`` once fastmcp's own ``tools/list`` describes the tool
otherwise. Over Streamable HTTP, ``server.http_app()`` (and so ``server.run("http")``) has ``McpVaultMiddleware``
in front of the MCP endpoint: the HTTP statuses and ``WWW-Authenticate`` of ``mcpvault-express``. The deprecated
SSE transport (``http_app(transport="sse")``) has the message layer alone, which reads the token from each POST's
headers or ``_meta``.

Why not a fastmcp ``Middleware`` (``server.add_middleware``)? fastmcp 4 runs on the MCP SDK's low-level ``Server``
(``server._mcp_server``) and its own middleware chain is a step inside that server: the hooks of tools, resources,
prompts and lists (``on_call_tool``, ``on_list_tools``, ...) run inside the SDK's handler, after routing and params
validation, with a rebuilt message that has no ``_meta`` (no token); edits a hook makes to any other message reach
``ctx.params`` only (``ctx.meta`` and the HTTP request keep the token); a tool's exception becomes an ``isError``
result outside the chain, so a single-use call would record another response than the one its client got; list hooks
get fastmcp ``Tool`` objects, not the wire answer the core filters; and a mounted server's chain runs again for its
parent's calls (a guard there would spend a single-use token twice). So the guard is the SDK-level middleware entry
of :mod:`mcpvault.mcp` (``_MessageGuard``), placed in front of fastmcp's root dispatch (``FastMCPServerMiddleware``)
in ``server._mcp_server.middleware``: fastmcp's middleware, its request context (``Context``, ``get_http_headers()``,
``ctx.request_context.meta``) and the handlers see only what the guard handed on.

Tested with fastmcp 4.2.3 (on mcp 2.3.0). Every decision is the core's: this module translates and does I/O.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Mapping

from .mcp import (CHECK_TOOL, REDACTED, McpVaultMiddleware, _APPLIED, _LowServer, _MessageGuard, _OPTIONS, _Policy,
                  _known_options, facts)

try:
    import fastmcp as _fastmcp
    from fastmcp import FastMCP
    from fastmcp.server.low_level import FastMCPServerMiddleware
    from starlette.middleware import Middleware as _ASGIMiddleware
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('mcpvault.fastmcp needs fastmcp 4.x: pip install "mcpvault[fastmcp]"') from e

__all__ = ["with_mcpvault", "McpVaultMiddleware", "facts", "REDACTED", "CHECK_TOOL"]

#: The transports of ``FastMCP.http_app`` that serve Streamable HTTP (the HTTP layer goes in front of their path).
_STREAMABLE = ("http", "streamable-http")


class _FastMCPMessageGuard(_MessageGuard):
    """mcp.py's message guard, with the tool definitions of a fastmcp call.

    fastmcp runs another version of a tool than the one it lists when the call names one
    (``params._meta.fastmcp.version``): ``tools/list`` shows the highest version only, so the listed definition is
    not the definition of what runs. For such a call the guard gets no definition of the called tool — a token that
    pins it is refused (``tool_definition_changed``); other tokens are unaffected."""

    async def definitions(self, ctx: Any) -> Dict[str, str]:
        hashes = await super().definitions(ctx)
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        meta = params.get("_meta")
        selector = meta.get("fastmcp") if isinstance(meta, Mapping) else None
        name = params.get("name")
        if isinstance(selector, Mapping) and "version" in selector and isinstance(name, str):
            hashes = {k: v for k, v in hashes.items() if k != name}
        return hashes


def with_mcpvault(server: Any, **options: Any) -> Any:
    """Guards ``server`` (a ``fastmcp.FastMCP`` of fastmcp 4.x) and returns it.

    Options as :func:`mcpvault.mcp.with_mcpvault`: ``public_key_hex`` (required), ``audience``, ``store``
    (``"memory"``, ``"sqlite:FILE"``, ``"redis://HOST:PORT[/DB]"``) or ``vault``, ``check_tool``, ``retry_window``,
    ``mappings``, ``tool_mappings``, ``rules``, ``open_resources``, ``open_prompts``, ``on_decision``,
    ``on_soft_rule``, ``now``, and for HTTP ``realm``, ``resource_metadata``, ``max_body_bytes``.

    The token is read from ``params._meta.token`` / ``params._meta["mcpvault/token"]``, or over HTTP from
    ``X-MCPVault-Token`` / ``Authorization: Bearer`` (with a fastmcp ``auth=`` provider, which owns
    ``Authorization``, send it as ``X-MCPVault-Token``). A handler reads the authorized facts with :func:`facts`.

    Apply it to the server that is served: a server mounted into another (``parent.mount(child)``) is run by its
    parent's low-level server, so guard the parent."""
    if not isinstance(server, FastMCP):
        raise TypeError("with_mcpvault: expected a fastmcp.FastMCP server (fastmcp 4.x); for a server of the MCP "
                        "SDK use mcpvault.mcp.with_mcpvault")
    low = getattr(server, "_mcp_server", None)
    root = [i for i, m in enumerate(getattr(low, "middleware", None) or []) if isinstance(m, FastMCPServerMiddleware)]
    if not isinstance(low, _LowServer) or len(root) != 1:
        raise TypeError("with_mcpvault: this FastMCP has no MCP SDK server with fastmcp's root dispatch in its "
                        f"middleware (fastmcp {getattr(_fastmcp, '__version__', '?')}; tested with 4.2.3)")
    if getattr(low, _APPLIED, None) is not None:
        raise TypeError("with_mcpvault: already applied to this server")
    _known_options(options, _OPTIONS, "with_mcpvault")
    policy = _Policy("with_mcpvault", options)
    guard = _FastMCPMessageGuard(policy, low)
    # in front of fastmcp's root dispatch: before its middleware chain, its request context and every handler
    low.middleware.insert(root[0], guard)
    setattr(low, _APPLIED, guard)

    build = server.http_app
    signature = inspect.signature(build)

    def http_app(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        given = bound.arguments
        if given.get("transport", "http") in _STREAMABLE:
            path = given.get("path")
            if path is None:
                path = _fastmcp.settings.streamable_http_path
            # after fastmcp's own (request context, Host/Origin guard, an auth provider's), before the caller's
            given["middleware"] = [_ASGIMiddleware(McpVaultMiddleware, paths=[path], _policy=policy),
                                   *(given.get("middleware") or [])]
        return build(*bound.args, **bound.kwargs)

    http_app.__doc__ = build.__doc__
    server.http_app = http_app
    return server
