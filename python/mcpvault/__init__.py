"""mcpvault: capability tokens for MCP tool calls.

Every answer comes from the same Rust core as the CLI, the Rust hosts and the npm build, in one of two builds:

- the native extension ``mcpvault._native`` (crates/python, in the platform wheels): the server's path, ``verify``
  and the guard, at native speed;
- the mcpvault WebAssembly component (world ``mcpvault:authz/authorizer``) through wasmtime's component API: every
  function, on any platform. With the extension it is loaded only when a function the extension does not have is
  first called (minting, attenuating, signing, inspecting).

``MCPVault(backend=...)`` or the environment's ``MCPVAULT_BACKEND`` (``native`` or ``component``) chooses; the
default is the extension when it is installed. With a store (memory, SQLite, Redis) verification runs the core's
guard: revocation, single-use spends and the audit chain; the store only reads and writes, the core decides.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from wasmtime import Engine, Store, WasiConfig
# wasmtime-py's C bindings, for the verify path's call (_StringResult); the package pins wasmtime's version
from wasmtime import _ffi as _wffi
from wasmtime.component._enter import enter_wasm as _enter_wasm
from wasmtime.component import Component, Linker, Record, Variant

from . import telemetry

try:
    from . import _native
except ImportError:  # a build without the extension (the pure wheel): the component does everything
    _native = None  # type: ignore[assignment]

__all__ = ["MCPVault", "McpVaultError", "Guard", "COMPONENT_PATH", "tool_hashes"]

_log = logging.getLogger("mcpvault")

COMPONENT_PATH = os.path.join(os.path.dirname(__file__), "mcpvault.wasm")
_INTERFACE = "mcpvault:authz/authorize@0.1.0"
_GUARD_INTERFACE = "mcpvault:authz/guard@0.1.0"
_FUNCS = {
    _INTERFACE: ("keygen", "mint", "attenuate", "verify", "inspect", "audit-append", "audit-verify", "call-key",
                 "sign-call", "request-hash", "approve", "tool-hashes"),
    _GUARD_INTERFACE: ("guard-check", "guard-resume", "store-decide", "redis-call", "redis-answer", "revocation-id",
                       "audit-failed", "guard-filter", "call-target"),
}

# What the extension's module answers, by the component's name (a vault adds its own guard's `guard-check`);
# everything else is the component's.
_NATIVE = {"guard-resume": "guard_resume", "store-decide": "store_decide", "redis-call": "redis_call",
           "redis-answer": "redis_answer",
           "revocation-id": "revocation_id", "audit-failed": "audit_failed", "guard-filter": "guard_filter",
           "call-target": "call_target"}
_BACKENDS = ("native", "component")
_VERIFIER = ("[constructor]verifier", "[method]verifier.verify-json", "[method]verifier.stats")
_U32_MAX = 2 ** 32 - 1

# Compiling the component is the slow part of loading it: once per path and process.
_compiled: Dict[str, Tuple[Engine, Component]] = {}
_compiled_lock = threading.Lock()


def _compile(path: str) -> Tuple[Engine, Component]:
    with _compiled_lock:
        if path not in _compiled:
            engine = Engine()
            _compiled[path] = (engine, Component.from_file(engine, path))
        return _compiled[path]


class _StringResult:
    """Calls a component function that returns ``result<string, error>``, reading its type once.

    wasmtime-py's ``Func.__call__`` reads the function's type again through its C API on every call, parameter by
    parameter and field by field: for a verify that is more than the cached verify itself. Here the parameter types
    are read once; an ``ok`` string is read directly and anything else (an error record) is lifted by wasmtime-py's
    own code. Parameters are lowered by wasmtime-py's own types (the same ``TypeError`` for a wrong type)."""

    def __init__(self, store: Store, func: Any) -> None:
        fty = func.type(store)
        self._raw = func._func
        self._params = [ty for _, ty in fty.params]
        self._result = fty.result
        self._ok = _wffi.WASMTIME_COMPONENT_RESULT.value
        self._string = _wffi.WASMTIME_COMPONENT_STRING.value

    def __call__(self, store: Store, *params: Any) -> Any:
        ffi = _wffi
        if len(params) != len(self._params):
            raise TypeError(f"expected {len(self._params)} parameters, got {len(params)}")
        args = (ffi.wasmtime_component_val_t * len(params))()
        lowered = 0
        try:
            for ty, val in zip(self._params, params):
                ty.convert_to_c(store, val, ctypes.pointer(args[lowered]))
                lowered += 1
            result = ffi.wasmtime_component_val_t()
            _enter_wasm(lambda: ffi.wasmtime_component_func_call(ctypes.byref(self._raw), store._context(), args,
                                                                 lowered, ctypes.byref(result), 1))
            payload = result.of.result.val
            if result.kind == self._ok and result.of.result.is_ok and payload \
                    and payload.contents.kind == self._string:
                text = ffi.to_str(payload.contents.of.string)
                ffi.wasm_byte_vec_delete(ctypes.byref(payload.contents.of.string))
                # as wasmtime-py's own lift: the string is freed, then the boxed value around it
                payload.contents.kind = ffi.WASMTIME_COMPONENT_BOOL
                payload.contents.of.boolean = False
                ffi.wasmtime_component_val_delete(payload)
                return text
            return self._result.convert_from_c(result)
        finally:
            for i in range(lowered):
                ffi.wasmtime_component_val_delete(ctypes.byref(args[i]))


class McpVaultError(Exception):
    """A typed mcpvault failure. ``code`` is the stable snake_case code.

    ``approval``: for ``approval_required``, what the call needs (SCHEMA.md, "Signed approvals"): a dict
    ``{"request_hash", "approvers", "needed"}`` — have ``needed`` of ``approvers`` sign ``request_hash``
    (:meth:`MCPVault.approve`) and send the call again with the approvals; ``None`` for every other code."""

    def __init__(self, code: str, message: str, failed_block: Optional[int] = None,
                 failed_check: Optional[str] = None, approval: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.failed_block = failed_block
        self.failed_check = failed_check
        self.approval: Optional[Dict[str, Any]] = None if approval is None else {
            "request_hash": approval["request_hash"], "approvers": list(approval["approvers"]),
            "needed": approval["needed"]}


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


# wasmtime-py wraps an integer outside a WIT type's range instead of refusing it (2**64 - 1 as an s64 is -1: a
# `min` of 2**64 - 1 would become a `min` of -1), so every integer is checked here first.
_S64 = (-(2 ** 63), 2 ** 63 - 1)
_U64 = (0, 2 ** 64 - 1)
_U32 = (0, 2 ** 32 - 1)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``, as JavaScript's ``JSON.stringify`` writes them."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _int(value: Any, bounds: Tuple[int, int], what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise McpVaultError("invalid_request", f"{what} must be an integer from {bounds[0]} to {bounds[1]}")
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return _int(value, _S64, "an integer limit value")
    if isinstance(value, (bool, str)):
        return value  # the WIT scalar variant is untagged in wasmtime-py
    raise McpVaultError("invalid_request", f"limit value {value!r} is not a string, integer or boolean")


# Ops whose value is a string, and their WIT case.
_TEXT_OPS = {"prefix": "prefix", "under": "under", "url": "url", "cidr": "cidr", "glob": "glob", "matches": "matches"}
_COUNT_OPS = {"max_items": "max-items", "min_items": "min-items"}


def _arg_limit(limit: Mapping[str, Any]) -> Record:
    """One ``{"tool", "arg", "op", "value"}`` entry (the core's JSON) as the WIT ``arg-limit``. ``max``/``min`` take
    an ``int`` (the argument must be an integer) or a ``float`` (any JSON number, compared as a double:
    ``max-num``/``min-num``; ``100.0`` is a number limit, ``100`` an integer one)."""
    _known(limit, ("tool", "arg", "op", "value"), "an arg_limits entry")
    op = limit.get("op")
    value = limit.get("value")
    if op in ("max", "min"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise McpVaultError("invalid_request", f"{op} needs an integer or a number")
        # a NaN or an infinity reaches the core, which refuses it (invalid_request)
        rule = Variant(op, _int(value, _S64, op)) if isinstance(value, int) else Variant(f"{op}-num", float(value))
    elif op in _TEXT_OPS:
        if not isinstance(value, str):
            raise McpVaultError("invalid_request", f"{op} needs a string")
        rule = Variant(_TEXT_OPS[op], value)
    elif op in _COUNT_OPS:
        rule = Variant(_COUNT_OPS[op], _int(value, _U32, op))
    elif op == "eq":
        rule = Variant("eq", _scalar(value))
    elif op == "one_of":
        if not isinstance(value, (list, tuple)):
            raise McpVaultError("invalid_request", "one_of needs a list")
        rule = Variant("one-of", [_scalar(v) for v in value])
    else:
        raise McpVaultError("invalid_request", f"unknown limit op {op!r} (expected prefix, eq, one_of, max, min, "
                                               "under, url, cidr, glob, matches, max_items, min_items)")
    for key in ("tool", "arg"):
        if not isinstance(limit.get(key), str):
            raise McpVaultError("invalid_request", f"an arg_limits entry's {key} must be a string")
    return _record(tool=limit["tool"], arg=limit["arg"], rule=rule)


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


def _quotas(d: Mapping[str, Any], key: str, fields: Tuple[str, ...]) -> List[Record]:
    """``rate`` / ``budget``: one mapping or a list of them (SCHEMA.md, "Quotas")."""
    v = d.get(key)
    if v is None:
        return []
    items = [v] if isinstance(v, Mapping) else v
    if not isinstance(items, (list, tuple)):
        raise McpVaultError("invalid_request", f"{key} must be a mapping or a list of mappings")
    out = []
    for q in items:
        if not isinstance(q, Mapping):
            raise McpVaultError("invalid_request", f"{key} must be a mapping or a list of mappings")
        _known(q, fields, key)
        rec = {"max": _opt_int(q, "max") or 0, "period": _opt_int(q, "period") or 0}
        if "arg" in fields:
            rec["tool"] = _opt_str(q, "tool") or ""
            rec["arg"] = _opt_str(q, "arg") or ""
        else:
            rec["tool"] = _opt_str(q, "tool")
        out.append(_record(**rec))
    return out


def _opt_int(d: Mapping[str, Any], key: str, bounds: Tuple[int, int] = _U64) -> Optional[int]:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise McpVaultError("invalid_request", f"{key} must be a non-negative integer")
    return _int(v, bounds, key)


def _now(now: Any) -> Optional[int]:
    return None if now is None else _int(now, _U64, "now")


def _names(d: Mapping[str, Any], key: str) -> Optional[List[str]]:
    """A list of tool or scope names (``None`` when absent); a bare string is refused, not split into letters."""
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        raise McpVaultError("invalid_request", f"{key} must be a list")
    return [str(t) for t in v]


def _opt_str(d: Mapping[str, Any], key: str) -> Optional[str]:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise McpVaultError("invalid_request", f"{key} must be a string")
    return v


def _pins(d: Mapping[str, Any]) -> List[Record]:
    """``pin``: ``{tool: hash}`` as the WIT ``list<tool-pin>`` (the core checks names and hashes)."""
    v = d.get("pin")
    if v is None:
        return []
    if not isinstance(v, Mapping):
        raise McpVaultError("invalid_request", "pin must be a mapping of tool names to definition hashes")
    out = []
    for tool, h in v.items():
        if not isinstance(tool, str) or not isinstance(h, str):
            raise McpVaultError("invalid_request", "pin maps tool names (strings) to hashes (strings)")
        out.append(_record(tool=tool, hash=h))
    return out


def _requirements(d: Mapping[str, Any]) -> List[Record]:
    """``require_approval``: one ``{"tool", "approvers", "needed"?}`` or a list of them, as the WIT
    ``list<approval-requirement>`` (``needed`` defaults to 1; the core checks the keys and the count)."""
    v = d.get("require_approval")
    if v is None:
        return []
    items = [v] if isinstance(v, Mapping) else v
    if not isinstance(items, (list, tuple)):
        raise McpVaultError("invalid_request", "require_approval must be a mapping or a list of mappings")
    out = []
    for r in items:
        if not isinstance(r, Mapping):
            raise McpVaultError("invalid_request", "require_approval must be a mapping or a list of mappings")
        _known(r, ("tool", "approvers", "needed"), "require_approval")
        tool = _opt_str(r, "tool")
        if tool is None:
            raise McpVaultError("invalid_request", "a require_approval entry names its tool")
        approvers = _names(r, "approvers") or []
        needed = _opt_int(r, "needed", _U32)
        out.append(_record(tool=tool, approvers=approvers, needed=1 if needed is None else needed))
    return out


def _approvals(request: Mapping[str, Any]) -> List[str]:
    """A request's ``approvals``: a list of approval strings (none: empty)."""
    v = request.get("approvals")
    if v is None:
        return []
    if not isinstance(v, (list, tuple)) or not all(isinstance(a, str) for a in v):
        raise McpVaultError("invalid_request", "approvals must be a list of strings")
    return list(v)


def _call_target(method: Any, tool: Any, name: Any, arguments: Any) -> Tuple[Optional[str], Optional[str]]:
    """The target and arguments (JSON text) of the call a proof or a request hash names."""
    if tool is not None and name is not None and tool != name:
        raise McpVaultError("invalid_request", "give tool or name, not both")
    if not isinstance(method, str) or method == "":
        raise McpVaultError("invalid_request", "method must be a non-empty string")
    target = tool if tool is not None else name
    if target is not None and not isinstance(target, str):
        raise McpVaultError("invalid_request", "tool and name must be strings")
    if arguments is not None and not isinstance(arguments, Mapping):
        raise McpVaultError("invalid_request", "arguments must be a JSON object (a dict)")
    return target, None if arguments is None else json.dumps(dict(arguments), ensure_ascii=False)


def _wire(value: Any) -> Any:
    """A value as its JSON wire form: pydantic models (the MCP SDK's results and tools) as the SDK sends them
    (by alias, ``None`` fields left out), inside lists and dicts too."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v) for v in value]
    return value


_ABSENT_IF_NONE = ("tool", "scope", "prompts", "holder", "proof_nonce")
_ABSENT_IF_EMPTY = ("nonces", "scopes", "resources", "pins", "approvals", "quotas")
# json.dumps(..., ensure_ascii=False) makes an encoder on every call
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _native_error(e: Exception) -> McpVaultError:
    """The extension's ``NativeError`` (code, message, failed_block, failed_check, approval) as the package's."""
    code, message, failed_block, failed_check, approval = e.args
    return McpVaultError(code, message, failed_block, failed_check, None if approval is None else {
        "request_hash": approval[0], "approvers": approval[1], "needed": approval[2]})


_default_vault: Optional["MCPVault"] = None
_default_lock = threading.Lock()


def tool_hashes(tools_list: Any) -> Dict[str, str]:
    """``{name: hash}`` for every tool of a ``tools/list`` answer (:meth:`MCPVault.tool_hashes`, on a vault this
    module keeps): what ``pin`` and ``tool_definition`` take."""
    global _default_vault
    with _default_lock:
        if _default_vault is None:
            _default_vault = MCPVault()
        vault = _default_vault
    return vault.tool_hashes(tools_list)


class MCPVault:
    """Mint, attenuate, verify and inspect mcpvault tokens; with a store, revoke them and keep single-use tokens
    and the audit chain.

    ``store``: none (the default: no revocation, no audit, a single-use token's ``tools/call`` refused), ``"memory"``,
    ``"sqlite:FILE"`` (the CLI's and mcpvault-store's tables) or ``"redis://HOST:PORT[/DB]"`` (needs
    ``mcpvault[redis]``).

    ``cache``: keep up to this many verified signature chains (default 0: off), as npm's ``new MCPVault({cache})``:
    a token seen before under the same key has only its checks run again, with the current time and request; a
    token differing in any byte, or another key, misses; a failure is never kept; the least recently used chain
    makes room. Answers and errors are those of a vault without a cache. :meth:`cache_stats` reads its counters.

    Loads the component once into one wasmtime store. Calls on one instance are
    serialised by a lock; for parallel verification use one instance per thread.
    """

    def __init__(self, component_path: str = COMPONENT_PATH, *, store: Optional[str] = None, cache: int = 0,
                 backend: Optional[str] = None) -> None:
        if isinstance(cache, bool) or not isinstance(cache, int) or not 0 <= cache <= _U32_MAX:
            raise McpVaultError("invalid_request", "cache must be a non-negative integer (at most 2**32 - 1)")
        if backend is None:
            backend = os.environ.get("MCPVAULT_BACKEND") or ("native" if _native is not None else "component")
        if backend not in _BACKENDS:
            raise McpVaultError("invalid_request", "backend must be native or component")
        if backend == "native" and _native is None:
            raise McpVaultError("invalid_request", "backend native: mcpvault._native is not installed (a wheel for "
                                                   "this platform has it; `make python-native` builds it)")
        #: ``"native"`` (the extension answers the server's path) or ``"component"`` (the component answers all).
        self.backend = backend
        self._component_path = component_path
        self._cache = cache
        self._lock = threading.Lock()
        self._loaded = False
        if backend == "native":
            self._native_verifier = _native.Verifier(cache)
            # this vault's guard (its verified-chain cache), as the component keeps one per instance
            self._native_guard = _native.GuardHost()
            self._natives = {name: getattr(_native, f) for name, f in _NATIVE.items()}
            self._natives["guard-check"] = self._native_guard.check
        else:
            self._load()
        self.store = None
        if store is not None:
            from .store import open_store
            if not isinstance(store, str):
                raise McpVaultError("invalid_request", "store must be memory, sqlite:FILE or redis://HOST:PORT[/DB]")
            try:
                self.store = open_store(store)
            except ValueError as e:
                raise McpVaultError("invalid_request", str(e)) from None

    def _load(self) -> None:
        """Instantiates the component (once per vault; compiled once per path and process). Call with the lock
        held, or before the vault is shared."""
        if self._loaded:
            return
        component_path = self._component_path
        if not os.path.exists(component_path):
            raise FileNotFoundError(
                f"{component_path} is missing: run `make component` before `pip install ./python`")
        engine, component = _compile(os.path.abspath(component_path))
        self._engine = engine
        self._store = Store(self._engine)
        self._store.set_wasi(WasiConfig())
        linker = Linker(self._engine)
        linker.add_wasip2()
        self._instance = linker.instantiate(self._store, component)
        self._funcs = {}
        for interface, names in _FUNCS.items():
            iface = self._instance.get_export_index(self._store, interface)
            if iface is None:
                raise RuntimeError(f"the component does not export {interface}")
            for name in names:
                idx = self._instance.get_export_index(self._store, name, iface)
                func = self._instance.get_func(self._store, idx) if idx is not None else None
                if func is None:
                    raise RuntimeError(f"the component does not export {interface}#{name}")
                self._funcs[name] = func
        iface = self._instance.get_export_index(self._store, _INTERFACE)
        verifier = {}
        for name in _VERIFIER:
            idx = self._instance.get_export_index(self._store, name, iface)
            func = self._instance.get_func(self._store, idx) if idx is not None else None
            if func is None:
                raise RuntimeError(f"the component does not export {_INTERFACE}#{name}")
            verifier[name] = func
        # verify goes through one `verifier` of the component, kept for this vault's life (with cache 0 it keeps
        # only the last public key it parsed)
        self._verifier = verifier["[constructor]verifier"](self._store, self._cache)
        self._verify_json = _StringResult(self._store, verifier["[method]verifier.verify-json"])
        self._verifier_stats = verifier["[method]verifier.stats"]
        self._loaded = True

    def _call(self, name: str, *args: Any) -> Any:
        native = self._natives.get(name) if self.backend == "native" else None
        if native is not None:
            try:
                return native(*args)
            except _native.NativeError as e:
                raise _native_error(e) from None
        with self._lock:
            self._load()
            ret = self._funcs[name](self._store, *args)
        return self._result(ret)

    def _result(self, ret: Any) -> Any:
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
        ask = getattr(e, "approval", None)
        return McpVaultError(
            str(getattr(e, "code")).replace("-", "_"),
            getattr(e, "message"),
            getattr(e, "failed-block"),
            getattr(e, "failed-check"),
            None if ask is None else _plain(ask),
        )

    def generate_keypair(self) -> Tuple[str, str]:
        """Returns ``(private_key_hex, public_key_hex)``."""
        kp = self._call("keygen")
        return getattr(kp, "private-key"), getattr(kp, "public-key")

    def mint(self, private_key: str, grant: Mapping[str, Any], now: Optional[int] = None) -> str:
        """Mints a token; ``grant`` has tools and/or scopes (at least one of either: a call the server maps to a
        granted scope is allowed too), ttl, issuer, subject and optionally audience, max_depth, arg_limits,
        single_use, resources (URI prefixes or globs) and prompts (names): none granted, none readable unless the
        server opens them.

        ``pin``: ``{tool: hash}``, each tool pinned to the hash of its definition (:func:`tool_hashes` of the
        server's ``tools/list``): a call of it is refused (``tool_definition_changed``) once the server describes it
        otherwise (SCHEMA.md, "Pinned tool definitions"). ``require_approval``: a list of ``{"tool", "approvers",
        "needed"}`` (``needed`` defaults to 1; one mapping alone is a list of one): calls of ``tool`` need ``needed``
        signed approvals by distinct keys of ``approvers`` (Ed25519 public keys, hex; SCHEMA.md, "Signed
        approvals")."""
        _known(grant, ("tools", "scopes", "resources", "prompts", "ttl", "issuer", "subject", "audience", "max_depth",
                       "arg_limits", "single_use", "rate", "budget", "holder", "pin", "require_approval"), "grant")
        tools = _names(grant, "tools")
        g = _record(
            tools=[] if tools is None else tools,
            scopes=_names(grant, "scopes") or [],
            resources=_names(grant, "resources") or [],
            prompts=_names(grant, "prompts") or [],
            ttl=_opt_int(grant, "ttl") or 0,
            issuer=_opt_str(grant, "issuer") or "",
            subject=_opt_str(grant, "subject") or "",
            audience=_opt_str(grant, "audience"),
            max_depth=_opt_int(grant, "max_depth", _U32),
            arg_limits=_limits(grant),
            single_use=_flag(grant, "single_use"),
            rate=_quotas(grant, "rate", ("tool", "max", "period")),
            budget=_quotas(grant, "budget", ("tool", "arg", "max", "period")),
            holder=_opt_str(grant, "holder"),
            pin=_pins(grant),
            require_approval=_requirements(grant),
        )
        return self._call("mint", private_key, g, _now(now))

    def attenuate(self, token: str, restriction: Mapping[str, Any], now: Optional[int] = None,
                  *, warnings: Optional[List[str]] = None) -> str:
        """Returns a narrower token. Pass a list as ``warnings`` to collect what
        narrowed less than asked (e.g. tools the parent does not grant). ``scopes`` keeps those scopes; with
        ``tools`` given and ``scopes`` not, the narrower token keeps no scope. ``pin`` and ``require_approval`` as
        for :meth:`mint`: they add to the parent's (a block cannot remove a pin or a requirement; pinning a tool
        the parent pins to another hash makes it uncallable)."""
        _known(restriction, ("tools", "scopes", "resources", "prompts", "ttl", "audience", "max_depth", "arg_limits",
                             "single_use", "rate", "budget", "holder", "pin", "require_approval"), "restriction")
        r = _record(
            tools=_names(restriction, "tools"),
            scopes=_names(restriction, "scopes"),
            resources=_names(restriction, "resources"),
            prompts=_names(restriction, "prompts"),
            ttl=_opt_int(restriction, "ttl"),
            audience=_opt_str(restriction, "audience"),
            max_depth=_opt_int(restriction, "max_depth", _U32),
            arg_limits=_limits(restriction),
            single_use=_flag(restriction, "single_use"),
            rate=_quotas(restriction, "rate", ("tool", "max", "period")),
            budget=_quotas(restriction, "budget", ("tool", "arg", "max", "period")),
            holder=_opt_str(restriction, "holder"),
            pin=_pins(restriction),
            require_approval=_requirements(restriction),
        )
        out = self._call("attenuate", token, r, _now(now))
        if warnings is not None:
            warnings.extend(getattr(out, "warnings"))
        return getattr(out, "token")

    def verify(self, token: str, public_key: str, request: Mapping[str, Any],
               request_id: Optional[str] = None) -> Dict[str, Any]:
        """Verifies ``token`` for one call; returns the authorized facts as a dict
        or raises ``McpVaultError``.

        With a store, runs the core's guard on one JSON-RPC message built from ``request`` (as the CLI's
        ``verify --store`` does): a revoked token is ``revoked``; a single-use token's ``tools/call`` spends its
        nonces (another call later is ``replayed``; the same call again within the retry window ``in_flight``, until
        its response is recorded with :meth:`Guard.complete`); the decision is appended to the audit chain.
        ``request_id`` is the JSON-RPC id (default ``""``): the same call sent again with it is a retry, not a replay.

        Without a store, verifies the token alone; a single-use token is then left to the guard, which refuses its
        ``tools/call`` (``replayed``: nothing could spend it), as every host does.

        ``scope``: the scope the server maps this call to (a token granting it allows the call); a server with a
        policy lets :meth:`guard` map calls instead (``mappings``, ``tool_mappings``).

        ``proof``: the call's proof (:meth:`sign_call`), for a token bound to a holder key (without one such a token
        is ``proof_required``). Without a store it is checked, not spent; with one the guard spends it (used once:
        ``replayed`` after). The facts then name the ``holder``.

        ``tool_definition``: the hash of the called tool's definition as the server describes it now
        (:func:`tool_hashes` of its ``tools/list``), for a token that pins the tool (without it, or with another hash,
        such a call is ``tool_definition_changed``); the facts name the token's ``pins`` (``{tool: [hash, ...]}``).

        ``approvals``: signed approvals of this call (:meth:`approve`), for a token that requires them (without
        enough, ``approval_required``: the error's ``approval`` names the request hash to approve). Without a store
        they are checked, not spent; with one the guard spends each (an approval approves one call once). The facts
        name the ``approvals`` that counted (``[{"approver", "nonce", "expires_at"}]``)."""
        _known(request, ("method", "requested_tool", "tool", "arguments", "audience", "scope", "resource", "prompt",
                         "proof", "tool_definition", "approvals", "now"), "request")
        if request_id is not None and not isinstance(request_id, str):
            raise McpVaultError("invalid_request", "request_id must be a string")
        if self.store is None:
            facts = self._verify_token(token, public_key, request)
            if not facts.get("nonces"):
                return facts
        return self._verify_guarded(token, public_key, request, request_id)

    def cache_stats(self) -> Dict[str, int]:
        """``{"hits", "misses", "entries", "capacity"}`` of the verified-chain cache (``MCPVault(cache=N)``; all 0
        without one)."""
        if self.backend == "native":
            return dict(zip(("hits", "misses", "entries", "capacity"), self._native_verifier.stats()))
        with self._lock:
            s = self._verifier_stats(self._store, self._verifier)
        return {k: getattr(s, k) for k in ("hits", "misses", "entries", "capacity")}

    @staticmethod
    def _request_fields(request: Mapping[str, Any]) -> Dict[str, Any]:
        """The fields of the WIT ``request`` record (snake_case)."""
        arguments = request.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        return {
            "method": _opt_str(request, "method"),
            "tool": request.get("requested_tool", request.get("tool")),
            "arguments": arguments,
            "audience": _opt_str(request, "audience"),
            "scope": _opt_str(request, "scope"),
            "resource": _opt_str(request, "resource"),
            "prompt": _opt_str(request, "prompt"),
            "now": _opt_int(request, "now"),
            "tool_definition": _opt_str(request, "tool_definition"),
            "approvals": _approvals(request),
            "proof": _opt_str(request, "proof"),
        }

    def _verify_token(self, token: str, public_key: str, request: Mapping[str, Any]) -> Dict[str, Any]:
        fields = self._request_fields(request)
        if fields["tool"] is not None and not isinstance(fields["tool"], str):
            # not a string: the typed call refuses it as it always did
            return self._verify_typed(token, public_key, fields)
        # the verifier's JSON method: the same record as text, one string each way (_StringResult)
        text = _encode(fields)
        try:
            if self.backend == "native":
                try:
                    return self._facts(self._native_verifier.verify(token, public_key, text))
                except _native.NativeError as e:
                    raise _native_error(e) from None
            with self._lock:
                self._load()
                ret = self._verify_json(self._store, self._verifier, token, public_key, text)
        except UnicodeEncodeError:
            # a lone surrogate in a field: raised as the typed call raises it, naming its place in that field
            return self._verify_typed(token, public_key, fields)
        return self._facts(json.loads(self._result(ret)))

    def _verify_typed(self, token: str, public_key: str, fields: Mapping[str, Any]) -> Dict[str, Any]:
        """The component's free ``verify`` (typed records, no verifier kept): what ``verify`` answered before the
        verifier resource, and the reference the tests hold the verifier to."""
        return self._facts(_plain(self._call("verify", token, public_key, _record(**fields))))

    @staticmethod
    def _facts(facts: Dict[str, Any]) -> Dict[str, Any]:
        result: Dict[str, Any] = {"verified": True}
        result.update(facts)
        # absent rather than empty, as in the core's JSON: tool (other methods), nonces (not single-use), scopes and
        # resources (none granted), scope (none asked), prompts (none granted), holder (not holder-bound),
        # proof_nonce (no proof), pins (none pinned), approvals (none needed), quotas (none carried)
        for k in _ABSENT_IF_NONE:
            if k in result and result[k] is None:
                del result[k]
        for k in _ABSENT_IF_EMPTY:
            if k in result and not result[k]:
                del result[k]
        if isinstance(result.get("pins"), list):
            # the typed record's list<tool-pins> as the core's JSON: {tool: [hash, ...]}
            result["pins"] = {p["tool"]: p["hashes"] for p in result["pins"]}
        if "quotas" in result:
            # as the core's JSON: the kind's name, no tool (every tool) or arg (a rate) when there is none
            result["quotas"] = [{k: str(v) if k == "kind" else v for k, v in q.items() if v is not None}
                                for q in result["quotas"]]
        return result

    def _verify_guarded(self, token: str, public_key: str, request: Mapping[str, Any],
                        request_id: Optional[str]) -> Dict[str, Any]:
        """`verify` through the guard: the message as the CLI's `verify` builds it."""
        if not isinstance(token, str):
            raise McpVaultError("invalid_request", "token must be a string")
        method = _opt_str(request, "method") or "tools/call"
        tool = request.get("requested_tool", request.get("tool"))
        arguments = request.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError as e:
                raise McpVaultError("invalid_request", f"arguments are not JSON: {e}") from None
        params: Dict[str, Any] = {}
        if tool is not None:
            params = {"name": tool, "arguments": {} if arguments is None else arguments}
        elif _opt_str(request, "resource") is not None:
            params = {"uri": request["resource"]}
        elif _opt_str(request, "prompt") is not None:
            params = {"name": request["prompt"]}
        meta: Dict[str, Any] = {}
        proof = _opt_str(request, "proof")
        if proof is not None:
            meta["mcpvault/proof"] = proof
        approvals = _approvals(request)
        if approvals:
            meta["mcpvault/approvals"] = approvals
        if meta:
            params["_meta"] = meta
        message = {"jsonrpc": "2.0", "id": request_id or "", "method": method, "params": params}
        if request.get("scope") is not None:
            # the guard maps a call to its scope from its own policy: a store-backed verify of a scope is the
            # guard's simple mapping of this tool
            scope = _opt_str(request, "scope")
        else:
            scope = None
        # the caller runs what is allowed: a retry of a call another server recorded is refused, never run again
        options: Dict[str, Any] = {"public_key": public_key, "verify_only": True}
        if scope is not None and isinstance(tool, str):
            options["mappings"] = {tool: scope}
        audience = _opt_str(request, "audience")
        if audience is not None:
            options["audience"] = audience
        guard = Guard(self, options, _check_now=False)
        input: Dict[str, Any] = {"body": json.dumps(message), "fallback_token": token}
        definition = _opt_str(request, "tool_definition")
        if definition is not None and isinstance(tool, str):
            # the server's current definition of the called tool, as a host fills it from its tools/list
            input["tool_definitions"] = {tool: definition}
        outcome = guard.check(input, _opt_int(request, "now"))
        if outcome["allowed"] and outcome.get("facts") is not None:
            return outcome["facts"]
        d = next((d for d in outcome["decisions"] if not d["allowed"]), None)
        if d is None:  # pragma: no cover - an allowed outcome always has facts here
            raise McpVaultError("internal_error", "internal error")
        raise McpVaultError(d["code"] or "internal_error", d["message"] or "", d.get("failed_block"),
                            d.get("failed_check"), d.get("approval"))

    def guard(self, options: Mapping[str, Any]) -> "Guard":
        """The server-side guard for ``options`` (``public_key``, and optionally ``audience``, ``retry_window``,
        ``tool``, ``check_tool``, ``defer_spend``, ``forward_proofs``, ``defer_pins``, ``realm``,
        ``resource_metadata``, ``max_body_containers`` and ``max_body_values`` (default 10,000 and 100,000: a body
        holding more objects and arrays, or values, is refused before it is parsed); SCHEMA.md, "The guard") on this vault's store. ``store`` is set from the vault:
        ``True`` when it has one.

        The server's policy (SCHEMA.md, "Server policy"), decided by the core: ``mappings`` (``{tool: scope}``; an
        unmapped tool maps to ``TOOL:call``), ``tool_mappings`` (``[{"tool", "service"?, "scope", "when"?,
        "priority"?}]``: the highest priority that matches wins, then declaration order), ``rules`` (``[{"id",
        "tool"?, "when"?, "enforcement": "hard" | "soft" | "approval", "message"?, "approvers"?, "needed"?}]``: a
        hard rule refuses with ``rule_violation``, a soft rule allows and is named in the decision's ``soft_rules``,
        an approval rule requires ``needed`` (default 1) signed approvals of the call by its ``approvers``). ``when``
        maps argument paths to matchers written as @apoa/mcp writes them: ``startsWith``, ``equals``, ``in``, ``lt``,
        ``lte``, ``gt``, ``gte``, ``glob``, and ``under`` (a path the directory holds, ``.`` segments and repeated
        slashes resolved; a path with a ``..`` segment, which the kernel resolves through symbolic links, is of another
        type and a hard rule refuses it: use it for paths, since ``startsWith`` compares the text as written). ``on_soft_rule``: a function called with each allowed decision whose
        ``soft_rules`` is not empty (it observes only: what it raises is logged, the decision stands).

        Bad options raise here (``invalid_key``, or ``invalid_request`` naming what is wrong: an unknown matcher key,
        a bad glob, two rules with one id)."""
        return Guard(self, options)

    def revoke(self, revocation_id: str, now: Optional[int] = None) -> str:
        """Revokes a revocation id in the store (from ``inspect(token)["revocation_ids"]`` or the CLI's
        ``revocation-ids``): every token whose chain holds it is refused with ``revoked``. Only full ids (128 hex):
        anything else is ``invalid_request``. Returns the id as stored."""
        if self.store is None:
            raise McpVaultError("invalid_request", "revoke needs a store: MCPVault(store=...)")
        if not isinstance(revocation_id, str):
            raise McpVaultError("invalid_request", "a revocation id is a string")
        rid = self._call("revocation-id", revocation_id)
        self.store.revoke(rid, int(time.time()) if now is None else now)
        return rid

    def audit_entries(self) -> List[Dict[str, Any]]:
        """The store's audit chain, in order."""
        if self.store is None:
            raise McpVaultError("invalid_request", "the audit chain needs a store: MCPVault(store=...)")
        return [json.loads(line) for line in self.store.audit_lines()]

    def audit_append(self, prev: Optional[Mapping[str, Any]], record: Mapping[str, Any]) -> Dict[str, Any]:
        """The audit entry after `prev` (None for the first) for `record`: a dict with time, allowed, code, method,
        tool, subject, issuer, revocation_ids, request_id and, for an approved call, approvers. The core computes the
        hash chain (SCHEMA.md)."""
        return json.loads(self._audit_line(None if prev is None else json.dumps(prev), record))

    def _audit_line(self, prev: Optional[str], record: Mapping[str, Any]) -> str:
        """The entry after the entry `prev` (JSON text, as stored) for `record`, as the JSON text to store."""
        fields = dict(
            time=_int(int(record["time"]), _U64, "time"),
            allowed=bool(record["allowed"]),
            code=_opt_str(record, "code"),
            method=str(record["method"]),
            tool=_opt_str(record, "tool"),
            subject=_opt_str(record, "subject"),
            issuer=_opt_str(record, "issuer"),
            revocation_ids=[str(i) for i in record.get("revocation_ids") or []],
            request_id=_opt_str(record, "request_id"),
            approvers=[str(a) for a in record.get("approvers") or []],
            replayed_response=record.get("replayed_response") is True,
        )
        if self.backend == "native":
            try:
                return _native.audit_append(prev, json.dumps(fields))
            except _native.NativeError as e:
                raise _native_error(e) from None
        return self._call("audit-append", prev, _record(**fields))

    def audit_verify(self, entries: Optional[List[Mapping[str, Any]]] = None) -> Dict[str, Any]:
        """`{"entries", "head"}` for a sound chain, or `{"break": {"index", "seq", "kind", "detail"}}` for the first
        edited, deleted or reordered entry. ``entries``: a list of entries; none means the store's chain, as
        stored."""
        if entries is None:
            if self.store is None:
                raise McpVaultError("invalid_request", "audit_verify() needs entries or a store")
            lines = self.store.audit_lines()
        else:
            lines = [json.dumps(e) for e in entries]
        with self._lock:
            self._load()
            ret = self._funcs["audit-verify"](self._store, lines)
        if not isinstance(ret, Variant):  # pragma: no cover - both sides are records
            raise McpVaultError("internal_error", "unexpected audit-verify answer")
        if ret.tag == "ok":
            return {"entries": ret.payload.entries, "head": ret.payload.head}
        b = _plain(ret.payload)
        return {"break": {"index": b["index"], "seq": b["seq"], "kind": str(b["kind"]), "detail": b["detail"]}}

    def call_key(self, request_id: str, method: str, tool: Optional[str], arguments: Mapping[str, Any]) -> str:
        """The key that tells a retry of a JSON-RPC request from a replay (hex; the same on every host)."""
        req = _record(method=method, tool=tool, arguments=json.dumps(dict(arguments)), audience=None, scope=None,
                      resource=None, prompt=None, now=None, tool_definition=None, approvals=[], proof=None)
        return self._call("call-key", request_id, req)

    def inspect(self, token: str) -> Dict[str, Any]:
        """The token's blocks, facts, checks and revocation ids; no key, not verified."""
        return json.loads(self._call("inspect", token))

    def sign_call(self, token: str, holder_private_key: str, *, tool: Optional[str] = None,
                  arguments: Optional[Mapping[str, Any]] = None, audience: Optional[str] = None,
                  method: Optional[str] = None, name: Optional[str] = None, now: Optional[int] = None,
                  message: Optional[Mapping[str, Any]] = None) -> str:
        """The proof of one call of a holder-bound token, signed with the holder's private key (64 hex): send it as
        ``params._meta["mcpvault/proof"]`` (or the ``X-MCPVault-Proof`` header of a request of one message). Fresh
        for 60 seconds, used once (SCHEMA.md, "Holder-bound tokens and proofs");
        :func:`mcpvault.mcp.with_mcpvault_client` signs every message of an MCP client.

        What it binds: ``method`` (default ``tools/call``), the call's target — ``tool`` for ``tools/call``, or
        ``name``: the resource URI of ``resources/read`` / ``resources/subscribe``, the prompt of ``prompts/get`` —
        its ``arguments`` (a tool call's; canonical JSON, so key order and spacing do not matter) and the server's
        ``audience`` (when it names one). Or ``message``: the JSON-RPC message itself (``{"method", "params"}``), and
        the core reads what the guard will authorize it as (``call_target``), instead of ``method``, ``tool``,
        ``name`` and ``arguments``. ``now``: unix seconds (default this machine's clock); the nonce is 16 bytes of
        ``os.urandom``: the component reads neither."""
        method, target, args = self._target(message, method, tool, name, arguments, token)
        at = int(time.time()) if now is None else _int(now, _U64, "now")
        return self._call("sign-call", token, holder_private_key, method, target, args,
                          _opt_str({"audience": audience}, "audience"), at, os.urandom(16))

    def request_hash(self, token: str, *, tool: Optional[str] = None, arguments: Optional[Mapping[str, Any]] = None,
                     audience: Optional[str] = None, method: Optional[str] = None, name: Optional[str] = None,
                     message: Optional[Mapping[str, Any]] = None) -> str:
        """The request hash of one call of ``token`` (64 hex): what an approver signs (:meth:`approve`), and what an
        ``approval_required`` refusal names (``McpVaultError.approval["request_hash"]``; over MCP
        ``error.data.approval.requestHash``). It binds the token (its last revocation id), ``method``, the call's
        target (``tool``, or ``name`` as for :meth:`sign_call`; or the whole ``message``), its canonical
        ``arguments`` and the server's ``audience`` (when it names one): an approval of it approves exactly that call
        (SCHEMA.md, "Signed approvals")."""
        method, target, args = self._target(message, method, tool, name, arguments, token)
        return self._call("request-hash", token, method, target, args, _opt_str({"audience": audience}, "audience"))

    def call_target(self, message: Mapping[str, Any], token: Optional[str] = None) -> Dict[str, Any]:
        """What a proof or an approval of ``message`` (one JSON-RPC request or notification as a client sends it:
        ``{"method", "params"}``) signs, by the guard's own rule: ``{"method", "name"?, "arguments"}``. ``token``: the
        token sent with it (an argument that is the token is not signed: the guard removes it). A message the guard
        refuses as malformed is ``invalid_request``."""
        if token is not None and not isinstance(token, str):
            raise McpVaultError("invalid_request", "token must be a string")
        if not isinstance(message, Mapping):
            raise McpVaultError("invalid_request", "a message is a JSON object (a dict)")
        try:
            text = json.dumps(dict(message), ensure_ascii=False)
            return json.loads(self._call("call-target", text, token))
        except (TypeError, ValueError, UnicodeEncodeError) as e:  # not JSON, or a lone surrogate in a string
            raise McpVaultError("invalid_request", f"message: {e}") from None

    def _target(self, message: Optional[Mapping[str, Any]], method: Optional[str], tool: Any, name: Any,
                arguments: Any, token: Any) -> Tuple[str, Optional[str], Optional[str]]:
        """(method, target, arguments as JSON text) of what a proof or a request hash names."""
        if message is None:
            method = "tools/call" if method is None else method
            target, args = _call_target(method, tool, name, arguments)
            return method, target, args
        if not (method is None and tool is None and name is None and arguments is None):
            raise McpVaultError("invalid_request", "give message, or method, tool, name and arguments, not both")
        t = self.call_target(message, token if isinstance(token, str) else None)
        return t["method"], t.get("name"), json.dumps(t["arguments"], ensure_ascii=False)

    def approve(self, approver_private_key: str, request_hash: str, ttl: int = 300, *,
                now: Optional[int] = None) -> str:
        """An approval of the call whose request hash is ``request_hash``, signed with the approver's private key
        (64 hex): ``mva1.APPROVER.EXP.NONCE.SIGNATURE``, valid ``ttl`` seconds (1 to 3600) from ``now`` (unix
        seconds; default this machine's clock); the nonce is 16 bytes of ``os.urandom``. The client sends the call
        again with it in ``params._meta["mcpvault/approvals"]`` (a list; ``verify(..., {"approvals": [...]})``):
        it approves that one call once."""
        if not isinstance(request_hash, str):
            raise McpVaultError("invalid_request", "request_hash must be a string (64 hex)")
        at = int(time.time()) if now is None else _int(now, _U64, "now")
        return self._call("approve", approver_private_key, request_hash, _int(ttl, _U64, "ttl"), at,
                          os.urandom(16))

    def tool_hashes(self, tools_list: Any) -> Dict[str, str]:
        """``{name: hash}``: the definition hash of every tool of a ``tools/list`` answer — the result
        (``{"tools": [...]}``, or the MCP SDK's ``ListToolsResult``), the JSON-RPC response or the list of tools —
        what ``pin`` and ``tool_definition`` take: the SHA-256 of the canonical JSON of each tool's ``name``,
        ``description``, ``inputSchema``, ``outputSchema`` and ``annotations`` (SCHEMA.md, "Pinned tool
        definitions")."""
        try:
            text = json.dumps(_wire(tools_list), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise McpVaultError("invalid_request", f"a tools/list result is JSON: {e}") from None
        return json.loads(self._call("tool-hashes", text))


class _StoreCore:
    """What a store asks the core, handed to its ``check``: called as ``decide(ask, read)`` (``store-decide``: the
    atomic step on what the store read); a Redis store sends ``redis_call(ask)`` to spend.lua and reads its reply with
    ``redis_answer(ask, reply)``."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call

    def __call__(self, ask: Dict[str, Any], read: Dict[str, Any]) -> Dict[str, Any]:
        return json.loads(self._call("store-decide", json.dumps(ask), json.dumps(read)))  # type: ignore[no-any-return]

    def redis_call(self, ask: Dict[str, Any]) -> Dict[str, Any]:
        return json.loads(self._call("redis-call", json.dumps(ask)))  # type: ignore[no-any-return]

    def redis_answer(self, ask: Dict[str, Any], reply: List[Any]) -> Dict[str, Any]:
        return json.loads(self._call("redis-answer", json.dumps(ask), json.dumps(reply)))  # type: ignore[no-any-return]


class Guard:
    """The core's guard on a vault's store: what an MCP server decides around a token (SCHEMA.md, "The guard").

    ``check(input, now)`` runs one request: the guard's check, the store's atomic step (the component's
    ``store-decide`` inside the store's transaction; Redis: ``spend.lua``), the guard's resume, and the audit records
    appended to the store's chain. The outcome is the core's JSON as a dict: ``allowed``, ``status``, ``headers``,
    ``response`` (the refusal to send), ``forward`` (the message to hand on, without the token), ``answers``,
    ``facts``, ``decisions``, ``audit``, and for a single-use call ``call_key`` and ``keep_until``: after the handler
    ran, record its response with :meth:`complete` so that a retry gets it instead of a second execution.
    """

    def __init__(self, vault: MCPVault, options: Mapping[str, Any], *, _check_now: bool = True) -> None:
        if not isinstance(options, Mapping):
            raise McpVaultError("invalid_request", "options must be a mapping")
        options = dict(options)
        on_soft_rule = options.pop("on_soft_rule", None)
        if on_soft_rule is not None and not callable(on_soft_rule):
            raise McpVaultError("invalid_request", "on_soft_rule must be a function")
        self._on_soft_rule = on_soft_rule
        self._vault = vault
        self._store_core = _StoreCore(vault._call)
        try:
            self._options = json.dumps({**options, "store": vault.store is not None})
        except (TypeError, ValueError) as e:
            raise McpVaultError("invalid_request", f"options: {e}") from None
        if _check_now:
            # the options are checked now (a bad key is invalid_key here, not on the first request)
            vault._call("guard-check", self._options, "{}", 0)

    def check(self, input: Mapping[str, Any], now: Optional[int] = None) -> Dict[str, Any]:
        """Decides ``input`` (``GuardInput``: ``http_method``, ``headers``, ``body`` as JSON text,
        ``body_error``, ``transport_token``, ``fallback_token``, ``replay_checked``, ``session_subject``,
        ``tool_definitions``: ``{tool: hash}`` of the server's current tool definitions, :func:`tool_hashes`, or a function
        that reads them, called only when the guard says a pinned call of a valid token needs them) at ``now``
        (unix seconds; default the clock). Returns the outcome dict. With ``opentelemetry-api`` installed, every
        decision is also a span and counted in the metrics (SCHEMA.md, "Telemetry")."""
        if not isinstance(input, Mapping):
            raise McpVaultError("invalid_request", "input must be a mapping")
        if now is not None and (isinstance(now, bool) or not isinstance(now, int) or now < 0):
            raise McpVaultError("invalid_request", "now must be a non-negative integer")
        now = _now(now)
        if not telemetry.enabled():
            return self._check(input, now)
        start = time.time_ns()
        outcome = self._check(input, now)
        telemetry.record(outcome, start, time.time_ns(), input.get("headers"))
        return outcome

    def _check(self, input: Mapping[str, Any], now: Optional[int]) -> Dict[str, Any]:
        v = self._vault
        input = dict(input)
        read = input.get("tool_definitions")
        if callable(read):
            # read the definitions only when the guard says a pinned call of a valid token needs them, then decide
            # again with them (nothing was done yet: a refusal, or before the store)
            del input["tool_definitions"]
        check = json.loads(v._call("guard-check", self._options, json.dumps(input), now))
        needs = check.get("needs_tool_definitions") if check["step"] == "ask" \
            else check["outcome"].get("needs_tool_definitions")
        if needs and callable(read):
            try:
                definitions = read()
            except Exception:
                _log.exception("mcpvault: reading the server's tool definitions failed; pinned tools are refused")
                definitions = None
            input["tool_definitions"] = dict(definitions) if isinstance(definitions, Mapping) else {}
            check = json.loads(v._call("guard-check", self._options, json.dumps(input), now))
        if check["step"] == "done":
            outcome = check["outcome"]
        else:
            answer: Dict[str, Any]
            if v.store is None:  # pragma: no cover - the guard asks only when a store is attached
                answer = {"error": "no store"}
            else:
                try:
                    answer = v.store.check(check["ask"], self._store_core)
                except Exception as e:  # the store failed (what it read included): the guard refuses (internal_error)
                    answer = {"error": f"{type(e).__name__}: {e}"}
            outcome = json.loads(v._call("guard-resume", self._options, json.dumps(check["pending"]),
                                         json.dumps(answer)))
        if v.store is not None:
            for record in outcome["audit"]:
                try:
                    v.store.append_audit(lambda prev, r=record: v._audit_line(prev, r))
                except Exception as e:
                    outcome = json.loads(v._call("audit-failed", self._options, json.dumps(outcome),
                                                 f"{type(e).__name__}: {e}"))
                    break
        if self._on_soft_rule is not None:
            for d in outcome.get("decisions") or []:
                if d.get("allowed") and d.get("soft_rules"):
                    try:
                        self._on_soft_rule(d)
                    except Exception:  # a hook observes decisions; it cannot change one
                        _log.exception("mcpvault: on_soft_rule raised")
        return outcome


    def complete(self, call_key: str, response: Any, keep_until: int, keep_for: Optional[int] = None) -> None:
        """Records the response (``{"result": ...}`` or ``{"error": ...}``) of the single-use call ``call_key`` until
        ``keep_until`` (the outcome's ``call_key``, ``keep_until`` and ``keep_for``: Redis expires by ``keep_for``
        seconds on its own clock): a retry within the window gets it."""
        if self._vault.store is None:
            raise McpVaultError("invalid_request", "complete needs a store: MCPVault(store=...)")
        # JSON as the other hosts record it: NaN and infinities are null (JSON has none; recorded as Python writes
        # them, the retry's read did not parse)
        self._vault.store.complete(call_key, _finite(response), keep_until, keep_for)
