"""mcpvault: capability tokens for MCP tool calls.

The API runs the mcpvault WebAssembly component (world ``mcpvault:authz/authorizer``)
through wasmtime's component API; every answer comes from the same Rust core as
the CLI, the Rust hosts and the npm build.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

from wasmtime import Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant

__all__ = ["MCPVault", "McpVaultError", "COMPONENT_PATH"]

COMPONENT_PATH = os.path.join(os.path.dirname(__file__), "mcpvault.wasm")
_INTERFACE = "mcpvault:authz/authorize@0.1.0"


class McpVaultError(Exception):
    """A typed mcpvault failure. ``code`` is the stable snake_case code."""

    def __init__(self, code: str, message: str, failed_block: Optional[int] = None,
                 failed_check: Optional[str] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.failed_block = failed_block
        self.failed_check = failed_check


def _record(**fields: Any) -> Record:
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def _plain(value: Any) -> Any:
    """A component value as plain Python (records → dicts with snake_case keys)."""
    if isinstance(value, Record):
        return {k.replace("-", "_"): _plain(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, int, str)):
        return value  # the WIT scalar variant is untagged in wasmtime-py
    raise McpVaultError("invalid_request", f"limit value {value!r} is not a string, integer or boolean")


def _arg_limit(limit: Mapping[str, Any]) -> Record:
    op = limit.get("op")
    value = limit.get("value")
    if op in ("max", "min"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise McpVaultError("invalid_request", f"{op} needs an integer")
        rule = Variant(op, value)
    elif op == "prefix":
        if not isinstance(value, str):
            raise McpVaultError("invalid_request", "prefix needs a string")
        rule = Variant("prefix", value)
    elif op == "eq":
        rule = Variant("eq", _scalar(value))
    elif op == "one_of":
        if not isinstance(value, (list, tuple)):
            raise McpVaultError("invalid_request", "one_of needs a list")
        rule = Variant("one-of", [_scalar(v) for v in value])
    else:
        raise McpVaultError("invalid_request", f"unknown limit op {op!r}")
    return _record(tool=str(limit.get("tool", "")), arg=str(limit.get("arg", "")), rule=rule)


def _known(d: Mapping[str, Any], keys: Tuple[str, ...], what: str) -> None:
    """Refuses keys this API does not know: a misspelt ``tll`` would otherwise be
    dropped and the token narrow less than its author meant."""
    if not isinstance(d, Mapping):
        raise McpVaultError("invalid_request", f"{what} must be a mapping")
    for k in d:
        if k not in keys:
            raise McpVaultError("invalid_request", f"unknown field {k!r} in {what} (expected {', '.join(keys)})")


def _flag(d: Mapping[str, Any], key: str) -> bool:
    v = d.get(key, False)
    if not isinstance(v, bool):
        raise McpVaultError("invalid_request", f"{key} must be a boolean")
    return v


def _limits(d: Mapping[str, Any]) -> List[Record]:
    return [_arg_limit(l) for l in d.get("arg_limits") or []]


def _opt_int(d: Mapping[str, Any], key: str) -> Optional[int]:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise McpVaultError("invalid_request", f"{key} must be a non-negative integer")
    return v


def _opt_str(d: Mapping[str, Any], key: str) -> Optional[str]:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise McpVaultError("invalid_request", f"{key} must be a string")
    return v


class MCPVault:
    """Mint, attenuate, verify and inspect mcpvault tokens.

    Loads the component once into one wasmtime store. Calls on one instance are
    serialised by a lock; for parallel verification use one instance per thread.
    """

    def __init__(self, component_path: str = COMPONENT_PATH) -> None:
        if not os.path.exists(component_path):
            raise FileNotFoundError(
                f"{component_path} is missing: run `make component` before `pip install ./python`")
        self._engine = Engine()
        self._store = Store(self._engine)
        self._store.set_wasi(WasiConfig())
        linker = Linker(self._engine)
        linker.add_wasip2()
        component = Component.from_file(self._engine, component_path)
        self._instance = linker.instantiate(self._store, component)
        iface = self._instance.get_export_index(self._store, _INTERFACE)
        if iface is None:
            raise RuntimeError(f"the component does not export {_INTERFACE}")
        self._funcs = {}
        for name in ("keygen", "mint", "attenuate", "verify", "inspect", "audit-append", "audit-verify", "call-key"):
            idx = self._instance.get_export_index(self._store, name, iface)
            func = self._instance.get_func(self._store, idx) if idx is not None else None
            if func is None:
                raise RuntimeError(f"the component does not export {_INTERFACE}#{name}")
            self._funcs[name] = func
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            ret = self._funcs[name](self._store, *args)
        # wasmtime-py lifts result<T, error> as a tagged Variant when T is a
        # record, and as the bare payload otherwise.
        if isinstance(ret, Variant):
            if ret.tag == "ok":
                return ret.payload
            raise self._error(ret.payload)
        if isinstance(ret, Record) and hasattr(ret, "code") and hasattr(ret, "failed-check"):
            raise self._error(ret)
        return ret

    @staticmethod
    def _error(e: Record) -> McpVaultError:
        return McpVaultError(
            str(getattr(e, "code")).replace("-", "_"),
            getattr(e, "message"),
            getattr(e, "failed-block"),
            getattr(e, "failed-check"),
        )

    def generate_keypair(self) -> Tuple[str, str]:
        """Returns ``(private_key_hex, public_key_hex)``."""
        kp = self._call("keygen")
        return getattr(kp, "private-key"), getattr(kp, "public-key")

    def mint(self, private_key: str, grant: Mapping[str, Any], now: Optional[int] = None) -> str:
        """Mints a token; ``grant`` has tools, ttl, issuer, subject and optionally
        audience, max_depth, arg_limits."""
        _known(grant, ("tools", "ttl", "issuer", "subject", "audience", "max_depth", "arg_limits", "single_use"), "grant")
        tools = grant.get("tools")
        if not isinstance(tools, (list, tuple)):
            raise McpVaultError("invalid_request", "tools must be a list")
        g = _record(
            tools=[str(t) for t in tools],
            ttl=_opt_int(grant, "ttl") or 0,
            issuer=_opt_str(grant, "issuer") or "",
            subject=_opt_str(grant, "subject") or "",
            audience=_opt_str(grant, "audience"),
            max_depth=_opt_int(grant, "max_depth"),
            arg_limits=_limits(grant),
            single_use=_flag(grant, "single_use"),
        )
        return self._call("mint", private_key, g, now)

    def attenuate(self, token: str, restriction: Mapping[str, Any], now: Optional[int] = None,
                  *, warnings: Optional[List[str]] = None) -> str:
        """Returns a narrower token. Pass a list as ``warnings`` to collect what
        narrowed less than asked (e.g. tools the parent does not grant)."""
        _known(restriction, ("tools", "ttl", "audience", "max_depth", "arg_limits", "single_use"), "restriction")
        tools = restriction.get("tools")
        r = _record(
            tools=None if tools is None else [str(t) for t in tools],
            ttl=_opt_int(restriction, "ttl"),
            audience=_opt_str(restriction, "audience"),
            max_depth=_opt_int(restriction, "max_depth"),
            arg_limits=_limits(restriction),
            single_use=_flag(restriction, "single_use"),
        )
        out = self._call("attenuate", token, r, now)
        if warnings is not None:
            warnings.extend(getattr(out, "warnings"))
        return getattr(out, "token")

    def verify(self, token: str, public_key: str, request: Mapping[str, Any]) -> Dict[str, Any]:
        """Verifies ``token`` for one call; returns the authorized facts as a dict
        or raises ``McpVaultError``."""
        _known(request, ("method", "requested_tool", "tool", "arguments", "audience", "now"), "request")
        tool = request.get("requested_tool", request.get("tool"))
        arguments = request.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        req = _record(
            method=_opt_str(request, "method"),
            tool=tool,
            arguments=arguments,
            audience=_opt_str(request, "audience"),
            now=_opt_int(request, "now"),
        )
        facts = _plain(self._call("verify", token, public_key, req))
        result = {"verified": True}
        # absent rather than empty, as in the core's JSON: tool (other methods), nonces (not single-use)
        result.update({k: v for k, v in facts.items() if not (k == "tool" and v is None) and not (k == "nonces" and not v)})
        return result

    def audit_append(self, prev: Optional[Mapping[str, Any]], record: Mapping[str, Any]) -> Dict[str, Any]:
        """The audit entry after `prev` (None for the first) for `record`: a dict with time, allowed, code, method,
        tool, subject, issuer, revocation_ids, request_id. The core computes the hash chain (SCHEMA.md)."""
        rec = _record(
            time=int(record["time"]),
            allowed=bool(record["allowed"]),
            code=_opt_str(record, "code"),
            method=str(record["method"]),
            tool=_opt_str(record, "tool"),
            subject=_opt_str(record, "subject"),
            issuer=_opt_str(record, "issuer"),
            revocation_ids=[str(i) for i in record.get("revocation_ids") or []],
            request_id=_opt_str(record, "request_id"),
        )
        line = self._call("audit-append", None if prev is None else json.dumps(prev), rec)
        return json.loads(line)

    def audit_verify(self, entries: List[Mapping[str, Any]]) -> Dict[str, Any]:
        """`{"entries", "head"}` for a sound chain, or `{"break": {"index", "seq", "kind", "detail"}}` for the first
        edited, deleted or reordered entry."""
        with self._lock:
            ret = self._funcs["audit-verify"](self._store, [json.dumps(e) for e in entries])
        if not isinstance(ret, Variant):  # pragma: no cover - both sides are records
            raise McpVaultError("internal_error", "unexpected audit-verify answer")
        if ret.tag == "ok":
            return {"entries": ret.payload.entries, "head": ret.payload.head}
        b = _plain(ret.payload)
        return {"break": {"index": b["index"], "seq": b["seq"], "kind": str(b["kind"]), "detail": b["detail"]}}

    def call_key(self, request_id: str, method: str, tool: Optional[str], arguments: Mapping[str, Any]) -> str:
        """The key that tells a retry of a JSON-RPC request from a replay (hex; the same on every host)."""
        req = _record(method=method, tool=tool, arguments=json.dumps(dict(arguments)), audience=None, now=None)
        return self._call("call-key", request_id, req)

    def inspect(self, token: str) -> Dict[str, Any]:
        """The token's blocks, facts, checks and revocation ids; no key, not verified."""
        return json.loads(self._call("inspect", token))
