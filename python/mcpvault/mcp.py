"""mcpvault in front of a server of the official MCP Python SDK (``mcp`` 2.x; ``pip install "mcpvault[mcp]"``).

``with_mcpvault(server, public_key_hex=...)`` guards an ``MCPServer`` (formerly FastMCP) or a low-level ``Server``:
every request the server receives (tools, resources, prompts, completion, logging, lists; all but the lifecycle's
``initialize``, ``ping`` and ``server/discover``) is decided by the core's guard before anything else of the server
runs, at the message level (a ``Server.middleware`` entry, so no method can be forgotten); the token and its proofs
are removed before the handler sees the request; list answers keep only what the token grants; a single-use call
runs once and its retries get its recorded response; refusals are MCP errors with the codes of SCHEMA.md ("The
guard"), as in Node's ``withMcpVault``. Over Streamable HTTP, the app of ``server.streamable_http_app()`` also
answers refusals with the HTTP status and ``WWW-Authenticate`` of ``mcpvault-express`` (``McpVaultMiddleware``, an
ASGI middleware that can be used alone as well).

Tokens that pin tools to their definitions (SCHEMA.md, "Pinned tool definitions") are checked at the message level:
at each ``tools/call`` the guard gets the hashes of the server's current tool definitions, read from the server's
own ``tools/list`` handler at that moment, so a pinned tool whose description or schema changed is refused
(``tool_definition_changed``) and left out of ``tools/list``. Calls that need signed approvals (SCHEMA.md, "Signed
approvals") are refused with ``approval_required`` and ``error.data.approval`` (``requestHash``, ``approvers``,
``needed``) until sent again with the approvals in ``params._meta["mcpvault/approvals"]`` (or, over HTTP, the
``X-MCPVault-Approval`` header).

On the client side, ``with_mcpvault_client(client, token=..., holder_key=...)`` makes an ``mcp.Client`` present the
token with every message it sends and, for a holder-bound token, a fresh proof of each (SCHEMA.md, "Holder-bound
tokens and proofs").

Every decision is the core's (the component's ``guard-check``): this module translates and does I/O.
"""

from __future__ import annotations

import collections
import contextvars
import dataclasses
import json
import logging
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import anyio
import anyio.from_thread
import anyio.to_thread

from . import MCPVault, McpVaultError, Guard, _wire

try:
    from mcp.server.lowlevel.server import Server as _LowServer
    from mcp.shared.exceptions import MCPError
    from mcp_types import PaginatedRequestParams, RequestParams
    from mcp_types.methods import serialize_server_result
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('mcpvault.mcp needs the MCP SDK: pip install "mcpvault[mcp]"') from e

__all__ = ["with_mcpvault", "with_mcpvault_client", "McpVaultMiddleware", "facts", "REDACTED", "CHECK_TOOL"]

_log = logging.getLogger("mcpvault.mcp")

#: What replaces the token wherever a handler could otherwise read it.
REDACTED = "[mcpvault: redacted]"
#: The dry-run tool (``check_tool=True``): a reserved name, answered by the core for any valid token.
CHECK_TOOL = "mcpvault.check"
#: Sent before a client can present anything (an in-process or stdio client cannot attach a token to them): not
#: guarded at the message level. Over HTTP the middleware decides them like every request.
LIFECYCLE = frozenset({"initialize", "ping", "server/discover"})
# the core's guard::LIST_METHODS: the answers its filter narrows to what the token may see (skills: fastmcp's skills
# extension, each skill and file a resource URI)
_LISTS = ("tools/list", "resources/list", "resources/templates/list", "prompts/list", "skills/list", "skills/get")
_APPLIED = "_mcpvault_guard"
_TRANSPORT = "mcpvault.transport"  # the ASGI scope key where the HTTP layer hands its token to the message layer
_DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Most pages of the server's own ``tools/list`` read for the definitions of pinned tools.
_MAX_LIST_PAGES = 100
#: The headers the guard reads (the rest of a request's headers stay out of its input).
_GUARD_HEADERS = ("x-mcpvault-token", "x-mcpvault-proof", "x-mcpvault-approval", "authorization", "mcp-method",
                  "mcp-name", "mcp-session-id", "traceparent", "tracestate", "mcp-protocol-version")
#: The headers that carry what the guard spends (replaced whole in what a handler sees), and with them those that may
#: carry the token (replaced whole where no decision named the token).
_SPENT_HEADERS = (b"x-mcpvault-proof", b"x-mcpvault-approval")
_CREDENTIAL_HEADERS = (b"authorization", b"x-mcpvault-token") + _SPENT_HEADERS
#: Where a message carries its token and its proof (the guard's ``META_KEYS`` and ``PROOF_META_KEY``).
TOKEN_META_KEY = "mcpvault/token"
PROOF_META_KEY = "mcpvault/proof"
#: Where a message's ``_meta`` carries a credential: the token (the core's ``META_KEYS``), the proof, the approvals.
_CREDENTIAL_META = ("token", TOKEN_META_KEY, PROOF_META_KEY, "mcpvault/approvals")

_facts: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar("mcpvault_facts", default=None)


def facts() -> Optional[Dict[str, Any]]:
    """The authorized facts (the core's JSON: ``subject``, ``issuer``, ``tools``, ``tool``, ``scopes``,
    ``expires_at``, ...) of the request whose handler is running, or ``None`` outside a guarded handler."""
    f = _facts.get()
    return None if f is None else dict(f)


def _mcp_error(error: Mapping[str, Any]) -> MCPError:
    return MCPError(code=int(error.get("code", -32603)), message=str(error.get("message", "internal error")),
                    data=error.get("data"))


def _response_of(result: Any = None, error: Optional[BaseException] = None) -> Dict[str, Any]:
    """The response to record for a single-use call's retries: the handler's result or its error."""
    if error is None:
        return {"result": result}
    if isinstance(error, MCPError):
        e = {"code": error.code, "message": error.message}
        if error.data is not None:
            e["data"] = error.data
        return {"error": e}
    # what the SDK puts on the wire for it, never the exception's text (a database's password error, a validation
    # error quoting the arguments): the first answer masked it, its retry must not show it
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - the SDK depends on pydantic
        ValidationError = ()  # type: ignore[assignment,misc]
    if isinstance(error, ValidationError):
        return {"error": {"code": -32602, "message": "Invalid request parameters"}}
    return {"error": {"code": -32603, "message": "Internal server error"}}


class _Policy:
    """The options of one guarded server, checked once, and what both layers share: the vault (its store), the
    guards, the hooks, the list filters."""

    def __init__(self, who: str, options: Dict[str, Any]) -> None:
        def fail(message: str) -> TypeError:
            return TypeError(f"{who}: {message}")

        key = options.get("public_key_hex")
        if not isinstance(key, str) or key == "":
            raise fail("public_key_hex is required (the issuer's Ed25519 public key, hex)")
        audience = options.get("audience")
        if audience is not None and (not isinstance(audience, str) or audience == ""):
            raise fail("audience must be a non-empty string")
        for k in ("check_tool", "open_resources", "open_prompts", "defer_spend", "defer_pins"):
            if not isinstance(options.get(k, False), bool):
                raise fail(f"{k} must be True or False")
        for k in ("on_decision", "on_soft_rule", "now"):
            if options.get(k) is not None and not callable(options[k]):
                raise fail(f"{k} must be a function")
        for k in ("realm", "resource_metadata"):
            if options.get(k) is not None and not isinstance(options[k], str):
                raise fail(f"{k} must be a string")
        retry = options.get("retry_window")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise fail("retry_window must be seconds (a non-negative integer)")
        max_body = options.get("max_body_bytes", _DEFAULT_MAX_BODY)
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body <= 0:
            raise fail("max_body_bytes must be a positive integer")
        for k in ("max_body_containers", "max_body_values"):
            v = options.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise fail(f"{k} must be a non-negative integer")
        store, vault = options.get("store"), options.get("vault")
        if store is not None and vault is not None:
            raise fail("give store or vault, not both")
        if vault is not None and not isinstance(vault, MCPVault):
            raise fail("vault must be an MCPVault")
        if store is not None and not isinstance(store, str):
            raise fail("store must be memory, sqlite:FILE or redis://HOST:PORT[/DB]")
        self.vault = vault if vault is not None else MCPVault(store=store)
        self.check_tool = options.get("check_tool", False)
        self.on_decision = options.get("on_decision")
        self.now: Optional[Callable[[], int]] = options.get("now")
        self.max_body_bytes = max_body
        self._options: Dict[str, Any] = {"public_key": key}
        for k in ("audience", "retry_window", "realm", "resource_metadata", "mappings", "tool_mappings", "rules",
                  "max_body_containers", "max_body_values"):
            if options.get(k) is not None:
                self._options[k] = options[k]
        for k in ("check_tool", "open_resources", "open_prompts"):
            if options.get(k):
                self._options[k] = True
        on_soft_rule = options.get("on_soft_rule")
        try:
            # the core checks the key and the policy now (invalid_key, or invalid_request naming what is wrong)
            self.guard = self._guard(options.get("defer_spend", False), on_soft_rule,
                                     defer_pins=options.get("defer_pins", False))
            # the HTTP layer in front of the message layer: revocation only, the message layer spends (it records
            # the responses a retry gets); it hands on the proofs and approvals it checked, for the message layer to
            # check and spend (the core's forward_proofs, as mcpvault-express sets it); it does not know the server's
            # tool definitions, so it leaves pinned tools to the message layer (defer_pins)
            self.http_guard = self._guard(True, on_soft_rule, forward_proofs=True, defer_pins=True)
        except McpVaultError as e:
            raise McpVaultError(e.code, f"{who}: {'public_key_hex: ' if e.code == 'invalid_key' else ''}"
                                        f"{e.message}") from None
        self._lists = _Lists(self.vault, self._options)

    def _guard(self, defer_spend: bool, on_soft_rule: Any, forward_proofs: bool = False,
               defer_pins: bool = False) -> Guard:
        opts = dict(self._options, defer_spend=defer_spend)
        if forward_proofs:
            # an outer layer: the dry-run tool goes on to the message layer, which knows the tool definitions (as
            # rmcp's HTTP layer does; answered here, a dry run of a pinned tool skipped its pins)
            opts["forward_proofs"] = True
            opts.pop("check_tool", None)
        if defer_pins:
            opts["defer_pins"] = True
        if on_soft_rule is not None:
            opts["on_soft_rule"] = on_soft_rule
        return self.vault.guard(opts)

    async def decide(self, guard: Guard, input: Dict[str, Any]) -> Dict[str, Any]:
        """The guard's outcome for ``input`` (in a worker thread: the store may do I/O), reported to on_decision."""
        now = None if self.now is None else self.now()
        outcome = await anyio.to_thread.run_sync(guard.check, input, now)
        if self.on_decision is not None:
            for d in outcome.get("decisions") or []:
                report = dict(d)
                if d.get("allowed") and outcome.get("facts") is not None:
                    report["facts"] = outcome["facts"]
                try:
                    self.on_decision(report)
                except Exception:  # a hook observes decisions; it cannot change one
                    _log.exception("mcpvault: on_decision raised")
        return outcome

    async def complete(self, outcome: Mapping[str, Any], response: Dict[str, Any]) -> None:
        """Records the response of an allowed single-use call for its retries (nothing for other calls)."""
        if not outcome.get("call_key") or self.vault.store is None:
            return
        try:
            await anyio.to_thread.run_sync(self.guard.complete, outcome["call_key"], response,
                                           outcome["keep_until"], outcome.get("keep_for"))
        except Exception:
            # the call ran; a retry will be told in_flight instead of getting this response
            _log.exception("mcpvault: recording a response failed")

    async def filter(self, method: str, result: Any, outcome: Mapping[str, Any], params: Any) -> Any:
        now = None if self.now is None else self.now()
        return await anyio.to_thread.run_sync(self._lists.filter, method, result, outcome, params, now)


class _Lists:
    """List answers with only what the token may use: the core's ``Guard::filter`` (WIT ``guard-filter``), by the
    guard's options — tools granted by name or reached through a scope the policy maps them to (and the dry-run tool
    on the first page), resources, resource templates and prompts the token grants (or all when the options open
    them); no token verified: empty lists. Lists are advisory: every call is decided on its own."""

    def __init__(self, vault: MCPVault, options: Mapping[str, Any]) -> None:
        self._vault = vault
        self._options = json.dumps(dict(options))

    def filter(self, method: str, result: Any, outcome: Mapping[str, Any], params: Any, now: Optional[int]) -> Any:
        if method not in _LISTS:
            return result
        result = dict(result) if isinstance(result, Mapping) else {}
        first_page = not (isinstance(params, Mapping) and params.get("cursor") is not None)
        facts = outcome.get("facts")
        return json.loads(self._vault._call("guard-filter", self._options, method, json.dumps(result),
                                            json.dumps(facts), first_page))


def _header_map(headers: Any) -> Dict[str, str]:
    """The headers the guard reads, from a Starlette ``Headers`` or ASGI header pairs: a header sent more than once
    is its values joined by ``", "`` (as Node joins them), so the guard sees every one (two tokens are refused)."""
    values: Dict[str, List[str]] = {}
    if headers is None:
        return {}
    if isinstance(headers, list):
        for k, v in headers:
            name = k.decode("latin-1").lower()
            if name in _GUARD_HEADERS:
                values.setdefault(name, []).append(v.decode("latin-1"))
    else:
        for name in _GUARD_HEADERS:
            if hasattr(headers, "getlist"):
                got = [v for v in headers.getlist(name) if isinstance(v, str)]
            else:
                v = headers.get(name) if hasattr(headers, "get") else None
                got = [v] if isinstance(v, str) else []
            if got:
                values[name] = got
    return {name: ", ".join(vs) for name, vs in values.items()}


#: The MCP sessions' subjects an HTTP layer keeps at most (the oldest forgotten first); of them, at most
#: _SESSIONS_PER_SUBJECT of one subject (a subject holding that many loses its own oldest, so its further initializes
#: push out no other subject's session).
_SESSIONS_KEPT = 10_000
_SESSIONS_PER_SUBJECT = 1_000


class _SessionBook:
    """The sessions an HTTP layer saw opened: each one's subject (what the core's session book says to keep and
    forget), the oldest first."""

    def __init__(self, kept: int = _SESSIONS_KEPT, per_subject: int = _SESSIONS_PER_SUBJECT) -> None:
        self.kept = kept
        self.per_subject = per_subject
        self.subjects: "collections.OrderedDict[str, str]" = collections.OrderedDict()
        # each subject's session ids, oldest first
        self.by_subject: "Dict[str, collections.OrderedDict[str, None]]" = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self.subjects

    def __getitem__(self, session_id: str) -> str:
        return self.subjects[session_id]

    def forget(self, session_id: str) -> None:
        subject = self.subjects.pop(session_id, None)
        if subject is not None:
            own = self.by_subject[subject]
            del own[session_id]
            if not own:
                del self.by_subject[subject]

    def bind(self, session_id: Any, subject: Any) -> None:
        if not isinstance(session_id, str) or not session_id or not isinstance(subject, str):
            return
        self.forget(session_id)
        own = self.by_subject.get(subject)
        if own is not None and len(own) >= self.per_subject:
            # a subject at its most sessions loses its own oldest
            self.forget(next(iter(own)))
        elif len(self.subjects) >= self.kept:
            self.forget(next(iter(self.subjects)))
        self.subjects[session_id] = subject
        self.by_subject.setdefault(subject, collections.OrderedDict())[session_id] = None


def _route_path(scope: Dict[str, Any]) -> Any:
    """The path an app mounted under a prefix (Starlette's Mount, ``uvicorn --root-path``) routes on: the request's
    path without its ``root_path`` (as Starlette's ``get_route_path``)."""
    path = scope.get("path")
    root = scope.get("root_path") or ""
    if not isinstance(path, str) or not root or not path.startswith(root):
        return path
    rest = path[len(root):]
    return rest if rest == "" or rest.startswith("/") else path


def _redacted_request(request: Any, token: Optional[str], forward: Any = None) -> Any:
    """The HTTP request a handler sees: the token replaced in every header (the proof and approval headers whole), the
    HTTP layer's hand-over removed, and its body the message handed on (without the token) when no HTTP layer in
    front rewrote it."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return request
    from starlette.requests import Request

    new_scope = {k: v for k, v in scope.items() if k != _TRANSPORT}
    t = token.encode("latin-1", "replace") if token else None
    new_scope["headers"] = [
        (k, REDACTED.encode() if k.lower() in _SPENT_HEADERS else v.replace(t, REDACTED.encode()) if t else v)
        for k, v in scope.get("headers", [])
    ]
    out = Request(new_scope)
    if isinstance(forward, Mapping):
        out._body = json.dumps(forward).encode()
    elif hasattr(request, "_body"):
        body = request._body
        out._body = body.replace(token.encode("latin-1", "replace"), REDACTED.encode()) if token else body
    return out


def _scrubbed(ctx: Any) -> Any:
    """A message that passes undecided (``initialize``, ``ping``, ``server/discover``, a client's notification) as
    its handler and the middleware after this one see it: no token, proof or approvals in its ``_meta`` (removed in
    place: the SDK keeps ``initialize``'s params as the session's ``client_params``) or in its request's headers."""
    params = ctx.params
    meta = getattr(ctx, "meta", None)
    if isinstance(params, dict) and isinstance(params.get("_meta"), dict):
        for key in _CREDENTIAL_META:
            params["_meta"].pop(key, None)
        try:
            meta = RequestParams.model_validate(params, by_name=False).meta
        except Exception:
            meta = None
    changes: Dict[str, Any] = {"request": _listing_request(ctx.request)}
    if hasattr(ctx, "meta"):
        changes["meta"] = meta
    return dataclasses.replace(ctx, **changes)


def _listing_request(request: Any) -> Any:
    """The HTTP request the server's ``tools/list`` handler sees when the guard reads the tool definitions, and the
    one a message that passes undecided goes on with: the headers that may carry a token, a proof or an approval
    redacted, the HTTP layer's hand-over removed."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return request
    from starlette.requests import Request

    new_scope = {k: v for k, v in scope.items() if k != _TRANSPORT}
    new_scope["headers"] = [(k, REDACTED.encode() if k.lower() in _CREDENTIAL_HEADERS else v)
                            for k, v in scope.get("headers", [])]
    return Request(new_scope)


class _MessageGuard:
    """The ``Server.middleware`` entry: the core's guard around every request the server receives."""

    def __init__(self, policy: _Policy, server: Any) -> None:
        self.policy = policy
        self.server = server
        self._hash_limiter: Optional[anyio.CapacityLimiter] = None

    async def definitions(self, ctx: Any) -> Dict[str, str]:
        """The hashes of the server's current tool definitions by name (the guard's ``tool_definitions``): its own
        ``tools/list`` handler, asked now, every page, in the shape the SDK sends for this connection's protocol
        version. A server without one, or one that fails, gives none: a pinned tool is then refused, never
        allowed."""
        entry = self.server.get_request_handler("tools/list")
        if entry is None:
            return {}
        tools: List[Any] = []
        cursor: Any = None
        try:
            for _ in range(_MAX_LIST_PAGES):
                wire_params = {} if cursor is None else {"cursor": cursor}
                params = entry.params_type.model_validate(wire_params, by_name=False)
                list_ctx = dataclasses.replace(ctx, method="tools/list", params=wire_params, meta=None,
                                               request=_listing_request(ctx.request))
                result = _wire(await entry.handler(list_ctx, params))
                if not isinstance(result, dict):
                    return {}
                try:
                    # what the client is sent: the fields of its protocol version
                    result = serialize_server_result("tools/list", ctx.protocol_version, result)
                except Exception:
                    pass
                tools.extend(result.get("tools") or [])
                cursor = result.get("nextCursor")
                if not cursor:
                    break
            # hashed in a thread of its own limiter: the guard's worker threads (anyio's default limiter, 40) wait
            # on this coroutine, so with 40 pinned calls in flight a hash waiting for one of them never ran — and
            # every later decision hung with it
            if self._hash_limiter is None:
                self._hash_limiter = anyio.CapacityLimiter(4)
            return await anyio.to_thread.run_sync(self.policy.vault.tool_hashes, tools, limiter=self._hash_limiter)
        except Exception:
            _log.warning("mcpvault: reading the server's tool definitions failed; pinned tools are refused",
                         exc_info=True)
            return {}

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        method = ctx.method
        if method in LIFECYCLE:
            return await call_next(_scrubbed(ctx))
        notification = ctx.request_id is None
        told = notification and isinstance(method, str) and method.startswith("notifications/")
        request = ctx.request
        scope = getattr(request, "scope", None)
        transport = scope.get(_TRANSPORT) if isinstance(scope, dict) else None
        if told and (not isinstance(scope, dict) or transport is not None):
            # what the client tells (initialized, cancelled, progress, roots changed) runs no request handler: over
            # stdio or in process the one client, over HTTP decided by the HTTP layer in front. HTTP without it (the
            # SSE transport's POSTs, whose session id is in every URL) decides it here like any message. (The SDK's
            # dispatcher applies notifications/cancelled and /progress before any middleware: only a layer in front
            # of the SSE POST path decides those — see the README)
            return await call_next(_scrubbed(ctx))
        message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if not notification:
            message["id"] = ctx.request_id
        if ctx.params is not None:
            message["params"] = ctx.params
        input: Dict[str, Any] = {}
        try:
            input["body"] = json.dumps(message)
        except (TypeError, ValueError):
            input["body_error"] = "not_json"
        headers = _header_map(getattr(request, "headers", None))
        if isinstance(transport, dict):
            # the HTTP layer in front decided this request's token: hand it over as the transport's
            headers.pop("authorization", None)
            headers.pop("x-mcpvault-token", None)
            input["transport_token"] = transport["token"]
            if transport.get("replay_checked"):
                input["replay_checked"] = True
            # one message per decision here: the HTTP layer checked Mcp-Method/Mcp-Name against the whole body
            headers.pop("mcp-method", None)
            headers.pop("mcp-name", None)
        input["headers"] = headers
        if method == "tools/call":
            # a token pinning the called tool passes only while the server describes it as it was pinned: the
            # definitions are read (on the event loop, from the guard's worker thread) only when the guard says a
            # pinned call of a valid token needs them
            input["tool_definitions"] = lambda: anyio.from_thread.run(self.definitions, ctx)
        outcome = await self.policy.decide(self.policy.guard, input)
        if told and outcome["allowed"]:
            return await call_next(_scrubbed(ctx))
        if notification:
            # a request sent as a notification (no id) never runs: the guard refused it or it has no answer
            return None
        if not outcome["allowed"]:
            response = outcome.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
            raise _mcp_error(error if isinstance(error, Mapping) else {})
        if outcome.get("answers"):
            # answered by the guard: the dry-run tool, or a retry of a single-use call with its recorded response
            answer = outcome["answers"][0]
            if "error" in answer:
                raise _mcp_error(answer["error"])
            return self._envelope(ctx, answer.get("result"))
        forward = outcome.get("forward")
        params = forward.get("params") if isinstance(forward, Mapping) else ctx.params
        meta = None
        if isinstance(params, Mapping) and "_meta" in params:
            try:
                meta = RequestParams.model_validate(params, by_name=False).meta
            except Exception:
                meta = None
        inner = dataclasses.replace(ctx, params=params, meta=meta,
                                    request=_redacted_request(request, outcome.get("token"), forward))
        reset = _facts.set(outcome.get("facts"))
        try:
            result = await call_next(inner)
        except BaseException as e:
            if isinstance(e, Exception):
                await self.policy.complete(outcome, _response_of(error=e))
            raise
        finally:
            _facts.reset(reset)
        await self.policy.complete(outcome, _response_of(result))
        if method in _LISTS:
            result = await self.policy.filter(method, result, outcome, params)
        return result

    @staticmethod
    def _envelope(ctx: Any, result: Any) -> Any:
        # a result the guard gives itself, in the wire shape the SDK gives a handler's (2026-07-28: resultType)
        if isinstance(result, dict) and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS and "resultType" not in result:
            return {**result, "resultType": "complete"}
        return result


class McpVaultMiddleware:
    """ASGI middleware (Starlette: ``app.add_middleware(McpVaultMiddleware, public_key_hex=...)``) with the HTTP
    answers of ``mcpvault-express``: every HTTP request under ``paths`` (default: every path) is decided by the core's
    guard on its headers (``X-MCPVault-Token``, ``Authorization: Bearer``, ``Mcp-Method``, ``Mcp-Name``) and JSON-RPC
    body; a refusal is answered with its status (401, 403, 400, 409, 500), ``WWW-Authenticate`` and JSON-RPC error;
    an allowed request goes on with the body without the token. Options as :func:`with_mcpvault`, plus ``realm``,
    ``resource_metadata``, ``defer_spend``, ``defer_pins`` and ``max_body_bytes`` (default 4 MiB: larger bodies are
    refused).

    This layer does not know the MCP server's tool definitions: alone, it refuses every call of a tool the token
    pins (``tool_definition_changed``), unless ``defer_pins=True`` says that a layer behind it checks them.

    ``with_mcpvault`` adds it to the app of ``server.streamable_http_app()`` by itself, in front of its message
    layer, which then spends single-use tokens and approvals, records the responses of single-use calls and checks
    pinned tools (this layer then defers pins to it and hands on the proofs and approvals it checked)."""

    def __init__(self, app: Any, *, paths: Optional[Iterable[str]] = None, _policy: Optional[_Policy] = None,
                 **options: Any) -> None:
        self.app = app
        if _policy is None:
            _known_options(options, _OPTIONS + ("defer_spend", "defer_pins"), "McpVaultMiddleware")
            _policy = _Policy("McpVaultMiddleware", options)
            self._guard = _policy.guard
        else:
            self._guard = _policy.http_guard
        self.policy = _policy
        if isinstance(paths, str):
            raise TypeError("McpVaultMiddleware: paths must be a list of paths")
        self.paths = None if paths is None else frozenset(paths)
        self._replay_checked = _policy.vault.store is not None and self._guard is _policy.guard and \
            not options.get("defer_spend", False)
        # each MCP session's subject: the subject of the token whose initialize opened it, bound from the session
        # id the server's answer gives (never from an id a client names); every request naming the session is
        # decided with it, so another subject's token is session_mismatch, and one naming a session this layer did
        # not see opened (or forgot: it keeps the newest _SESSIONS_KEPT) is refused 404, as an unknown session is;
        # the core decides all this (session_book: SCHEMA.md, "Sessions"), this map only keeps
        self._sessions = _SessionBook()

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Dict[str, Any]]],
                       send: Callable[[Dict[str, Any]], Awaitable[None]]) -> None:
        if scope.get("type") != "http" or (self.paths is not None and scope.get("path") not in self.paths
                                           and _route_path(scope) not in self.paths):
            await self.app(scope, receive, send)
            return
        input: Dict[str, Any] = {"http_method": str(scope.get("method", "")),
                                 "headers": _header_map(scope.get("headers", []))}
        # the core refuses a session this layer does not keep (404) and says what to keep and forget
        input["session_book"] = True
        session_id = input["headers"].get("mcp-session-id") or None
        if session_id is not None and session_id in self._sessions:
            input["session_subject"] = self._sessions[session_id]
        chunks: List[bytes] = []
        size = 0
        too_large = False
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.policy.max_body_bytes:
                too_large = True
                break
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        text: Optional[str] = None
        if too_large:
            input["body_error"] = "too_large"
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                input["body_error"] = "not_utf8"
            else:
                if text.strip() != "":
                    input["body"] = text
        outcome = await self.policy.decide(self._guard, input)
        if not outcome["allowed"]:
            extra = {"connection": "close"} if too_large else {}
            await _send_json(send, outcome["status"], {**outcome.get("headers", {}), **extra}, outcome["response"])
            return
        if outcome.get("forward") is None and outcome.get("answers"):
            # every message was answered by the guard (a retry answered with its recorded response)
            batch = text is not None and text.lstrip().startswith("[")
            answers = outcome["answers"]
            if input["headers"].get("mcp-protocol-version") in MODERN_PROTOCOL_VERSIONS:
                answers = [_with_result_type(a) for a in answers]
            await _send_json(send, 200, {}, answers if batch else answers[0])
            return
        ends = outcome.get("ends_session")
        if ends is not None:
            # the session ends: forgotten once the server says so
            answer_delete = send

            async def send(message: Dict[str, Any]) -> None:
                if message.get("type") == "http.response.start" and int(message.get("status", 500)) < 300:
                    self._sessions.forget(ends)
                await answer_delete(message)

        opener = outcome.get("opens_session")
        if opener is not None:
            # the session the transport opens for this initialize: its id is in the answer's headers
            answer = send

            async def send(message: Dict[str, Any]) -> None:
                if message.get("type") == "http.response.start" and int(message.get("status", 500)) < 300:
                    for k, v in message.get("headers", []):
                        if k.lower() == b"mcp-session-id":
                            self._sessions.bind(v.decode("latin-1"), opener)
                await answer(message)

        body = raw if outcome.get("forward") is None else json.dumps(outcome["forward"]).encode()
        inner = dict(scope)
        inner["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"] + \
            [(b"content-length", str(len(body)).encode())]
        inner[_TRANSPORT] = {"token": outcome.get("token"), "facts": outcome.get("facts"),
                             "replay_checked": self._replay_checked}
        sent = False

        async def replay() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(inner, replay, send)


def _with_result_type(answer: Any) -> Any:
    """A JSON-RPC answer of the guard in the shape of MCP 2026-07-28 (a result names its ``resultType``)."""
    result = answer.get("result") if isinstance(answer, dict) else None
    if isinstance(result, dict) and "resultType" not in result:
        return {**answer, "result": {**result, "resultType": "complete"}}
    return answer


async def _send_json(send: Callable[[Dict[str, Any]], Awaitable[None]], status: int, headers: Mapping[str, str],
                     body: Any) -> None:
    data = json.dumps(body).encode()
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    pairs += [(k.lower().encode("latin-1"), str(v).encode("latin-1", "replace")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": int(status), "headers": pairs})
    await send({"type": "http.response.body", "body": data})


_OPTIONS = ("public_key_hex", "audience", "store", "vault", "check_tool", "mappings", "tool_mappings", "rules",
            "open_resources", "open_prompts", "on_decision", "on_soft_rule", "retry_window", "realm",
            "resource_metadata", "max_body_bytes", "max_body_containers", "max_body_values", "now")


def _known_options(options: Mapping[str, Any], known: Sequence[str], who: str) -> None:
    for k in options:
        if k not in known:
            raise TypeError(f"{who}: unknown option {k!r}")


def _lowlevel(server: Any) -> Any:
    low = getattr(server, "_lowlevel_server", server)
    if not isinstance(low, _LowServer):
        raise TypeError("with_mcpvault: expected an MCPServer or a low-level Server of the mcp SDK 2.x")
    return low


async def _no_tools(ctx: Any, params: Any) -> Dict[str, Any]:
    return {"tools": []}


def with_mcpvault(server: Any, **options: Any) -> Any:
    """Guards ``server`` (an ``mcp.server.mcpserver.MCPServer`` or an ``mcp.server.lowlevel.Server``) and returns it.

    Options: ``public_key_hex`` (required: the issuer's Ed25519 public key, hex), ``audience``, ``store``
    (``"memory"``, ``"sqlite:FILE"``, ``"redis://HOST:PORT[/DB]"``: revocation, single use with recorded responses,
    the audit chain; without one a single-use call is refused) or ``vault`` (an ``MCPVault`` and its store),
    ``check_tool`` (add the dry-run tool ``mcpvault.check``), ``retry_window`` (seconds), the server's policy
    decided by the core: ``mappings``, ``tool_mappings``, ``rules`` (SCHEMA.md, "Server policy"),
    ``open_resources`` / ``open_prompts`` (tokens that grant none may read them), ``on_decision(decision)`` (every
    decision, the core's dict; allowed ones carry ``facts``), ``on_soft_rule(decision)``, ``now`` (a clock in unix
    seconds), ``max_body_containers`` / ``max_body_values`` (default 10,000 objects and arrays / 100,000 values: a
    message holding more is refused before the guard parses it; raise them for tools that take bulk rows), and for
    HTTP ``realm``, ``resource_metadata``, ``max_body_bytes``.

    The token is read from ``params._meta.token`` / ``params._meta["mcpvault/token"]``, or over HTTP from
    ``Authorization: Bearer`` / ``X-MCPVault-Token``. A handler reads the authorized facts with :func:`facts`.
    """
    low = _lowlevel(server)
    if getattr(low, _APPLIED, None) is not None:
        raise TypeError("with_mcpvault: already applied to this server")
    _known_options(options, _OPTIONS, "with_mcpvault")
    policy = _Policy("with_mcpvault", options)
    if policy.check_tool and low.get_request_handler("tools/list") is None:
        # a server with no tools gets the dry-run tool (the guard answers its calls)
        low.add_request_handler("tools/list", PaginatedRequestParams, _no_tools)
    guard = _MessageGuard(policy, low)
    # inside the SDK's own middleware (OpenTelemetry, the request-state boundary), in front of the server's own
    i = 0
    while i < len(low.middleware) and type(low.middleware[i]).__module__.split(".")[0] == "mcp":
        i += 1
    low.middleware.insert(i, guard)
    setattr(low, _APPLIED, guard)

    build = server.streamable_http_app

    def streamable_http_app(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        path = kwargs.get("streamable_http_path", "/mcp")
        app.add_middleware(McpVaultMiddleware, paths=[path], _policy=policy)
        return app

    streamable_http_app.__doc__ = build.__doc__
    server.streamable_http_app = streamable_http_app
    return server


#: The header of a proof on HTTP.
PROOF_HEADER = "X-MCPVault-Proof"
_CLIENT_APPLIED = "_mcpvault_client"


class _Signer:
    """What ``with_mcpvault_client`` adds to each outgoing message: the token, and a fresh proof when it has the
    holder's key."""

    def __init__(self, token: str, holder_key: Optional[str], audience: Optional[str], vault: MCPVault) -> None:
        self.token = token
        self.holder_key = holder_key
        self.audience = audience
        self.vault = vault

    def stamp(self, method: str, params: Any, opts: Any) -> "tuple[Dict[str, Any], Any]":
        out: Dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
        meta = dict(out.get("_meta") or {})
        meta[TOKEN_META_KEY] = self.token
        if self.holder_key is not None:
            try:
                # what the guard will authorize the message as: the core's rule (call_target), not a copy of it
                target = self.vault.call_target({"method": method, "params": out}, self.token)
            except McpVaultError as e:
                if e.code != "invalid_request":
                    raise
                # a message the guard refuses as malformed goes as it is, with no proof: the server refuses it
                out["_meta"] = meta
                return out, opts
            proof = self.vault.sign_call(self.token, self.holder_key, method=target["method"], name=target.get("name"),
                                         arguments=target["arguments"], audience=self.audience)
            meta[PROOF_META_KEY] = proof
            # the same proof as a header, for a request over HTTP (a layer that reads proofs from the header only)
            opts = dict(opts or {})
            opts["headers"] = {**(opts.get("headers") or {}), PROOF_HEADER: proof}
        out["_meta"] = meta
        return out, opts


class _SigningDispatcher:
    """The client session's dispatcher, with the token and a proof added to every request and notification it
    sends. Everything else is the SDK's dispatcher."""

    def __init__(self, inner: Any, signer: _Signer) -> None:
        self._inner = inner
        self._signer = signer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def send_raw_request(self, method: str, params: Any, opts: Any = None) -> Any:
        params, opts = self._signer.stamp(method, params, opts)
        return await self._inner.send_raw_request(method, params, opts)

    async def notify(self, method: str, params: Any, opts: Any = None) -> None:
        params, opts = self._signer.stamp(method, params, opts)
        await self._inner.notify(method, params, opts)


def with_mcpvault_client(client: Any, *, token: str, holder_key: Optional[str] = None,
                         audience: Optional[str] = None, vault: Optional[MCPVault] = None) -> Any:
    """Makes ``client`` (an ``mcp.Client`` of the MCP Python SDK 2.x, not yet entered) present ``token`` with every
    message it sends, and returns it.

    The token goes in each request's and notification's ``params._meta["mcpvault/token"]``, where
    :func:`with_mcpvault`, ``McpVaultMiddleware``, Node's ``withMcpVault``/``mcpvault-express`` and the proxy read
    it, over any transport (in process, stdio, Streamable HTTP). With ``holder_key`` (the holder's Ed25519 private
    key, 64 hex) — needed for a token bound to a holder key — every message also carries a fresh proof signed with
    it (:meth:`MCPVault.sign_call`: the time and 16 bytes of ``os.urandom``) in ``_meta["mcpvault/proof"]`` and, on
    HTTP, the ``X-MCPVault-Proof`` header: a ``tools/call`` binds its tool and arguments, ``resources/read`` its URI,
    ``prompts/get`` its prompt, every other method only itself, as the guard checks them. A proof is used once, so a
    retry the SDK sends (an input-required round, a resend after re-listing tools) is signed again. ``audience``:
    the server's audience name, when it has one (a proof binds it). ``vault``: the :class:`MCPVault` that signs
    (default a new one).

    The SDK's client has no hook for this: the wrapper replaces the dispatcher of the session it builds (the
    ``Dispatcher`` protocol of ``mcp.shared.dispatcher``: ``send_raw_request`` and ``notify``); tested with mcp
    2.3.0."""
    if not isinstance(token, str) or token == "":
        raise TypeError("with_mcpvault_client: token must be a non-empty string")
    if holder_key is not None and (not isinstance(holder_key, str) or holder_key == ""):
        raise TypeError("with_mcpvault_client: holder_key must be the holder's private key (hex)")
    if audience is not None and (not isinstance(audience, str) or audience == ""):
        raise TypeError("with_mcpvault_client: audience must be a non-empty string")
    if vault is not None and not isinstance(vault, MCPVault):
        raise TypeError("with_mcpvault_client: vault must be an MCPVault")
    build = getattr(client, "_build_session", None)
    if build is None or not callable(build) or not hasattr(client, "_entered"):
        raise TypeError("with_mcpvault_client: expected an mcp.Client of the mcp SDK 2.x")
    if getattr(client, "_entered", False):
        raise TypeError("with_mcpvault_client: apply it before entering the client (async with)")
    if getattr(client, _CLIENT_APPLIED, None) is not None:
        raise TypeError("with_mcpvault_client: already applied to this client")
    signer = _Signer(token, holder_key, audience, vault if vault is not None else MCPVault())

    async def build_session(exit_stack: Any) -> Any:
        session = await build(exit_stack)
        dispatcher = getattr(session, "_dispatcher", None)
        if dispatcher is None or not hasattr(dispatcher, "send_raw_request") or not hasattr(dispatcher, "notify"):
            raise TypeError("with_mcpvault_client: the mcp SDK's ClientSession has no dispatcher to wrap")
        session._dispatcher = _SigningDispatcher(dispatcher, signer)
        return session

    client._build_session = build_session
    setattr(client, _CLIENT_APPLIED, signer)
    return client
