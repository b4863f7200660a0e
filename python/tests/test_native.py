"""The two builds the package runs on: the native extension (mcpvault._native) and the component.

`make test-python` runs the whole suite once per build (MCPVAULT_BACKEND=native, then component); these tests hold
the selection itself and compare the two builds' answers side by side in one process."""

import json
import os
import pathlib
import threading

import pytest

import mcpvault
from mcpvault import MCPVault, McpVaultError

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors").glob("*.json"))

native_only = pytest.mark.skipif(os.environ.get("MCPVAULT_BACKEND") == "component",
                                 reason="the component-only pass: the extension is not asked for")


def test_the_requested_build_answers():
    wanted = os.environ.get("MCPVAULT_BACKEND")
    if wanted is None:
        pytest.skip("no MCPVAULT_BACKEND: the suite runs on the package's default build")
    assert MCPVault().backend == wanted
    if wanted == "native":
        # the native pass must not quietly fall back to the component
        assert mcpvault._native is not None


@native_only
def test_native_verify_does_not_load_the_component(vault):
    priv, pub = vault.generate_keypair()
    token = vault.mint(priv, {"tools": ["a"], "ttl": 60, "issuer": "i", "subject": "s"})
    server = MCPVault(backend="native", store="memory")
    assert server.verify(token, pub, {"tool": "a"})["tools"] == ["a"]
    with pytest.raises(McpVaultError) as e:
        server.verify(token, pub, {"tool": "b"})
    assert e.value.code == "tool_not_allowed"
    guard = server.guard({"public_key": pub})
    out = guard.check({"body": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                           "params": {"name": "a", "arguments": {}}}), "fallback_token": token})
    assert out["allowed"]
    assert len(server.audit_entries()) == 3  # the refusal is recorded too
    assert not server._loaded, "the server's path loaded the component"
    # the extension has no audit_verify (an operator's check): the component is loaded for it
    assert server.audit_verify()["entries"] == 3
    assert server._loaded


def test_unknown_build_refused():
    with pytest.raises(McpVaultError) as e:
        MCPVault(backend="javascript")
    assert e.value.code == "invalid_request"


def _answer(vault, case):
    req = dict(case["request"], now=case["now"])
    try:
        return {"ok": vault.verify(case["token"], case["public_key"], req)}
    except McpVaultError as e:
        return {"error": [e.code, e.message, e.failed_block, e.failed_check, e.approval]}


@native_only
@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_both_builds_answer_every_vector_alike(path):
    """The same answer, message and failed check included, from the extension and from the component."""
    case = json.loads(path.read_text())
    native, component = MCPVault(backend="native"), MCPVault(backend="component")
    got = _answer(native, case)
    theirs = _answer(component, case)
    assert got == theirs
    # and in the same order (the extension writes the facts' fields itself: one it forgot would show here)
    if "ok" in got:
        assert list(got["ok"]) == list(theirs["ok"])
    assert ("ok" in got) == ("ok" in case["expect"])


@native_only
def test_threads_share_one_native_vault(vault):
    priv, pub = vault.generate_keypair()
    tokens = [vault.mint(priv, {"tools": [f"t{i}"], "ttl": 60, "issuer": "i", "subject": "s"}) for i in range(8)]
    server = MCPVault(backend="native", cache=4)
    errors = []

    def work(i):
        for n in range(50):
            tool = f"t{i}" if n % 2 == 0 else "other"
            try:
                facts = server.verify(tokens[i], pub, {"tool": tool})
                if n % 2 or facts["tools"] != [f"t{i}"]:
                    errors.append((i, n, facts))
            except McpVaultError as e:
                if n % 2 == 0 or e.code != "tool_not_allowed":
                    errors.append((i, n, e.code))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stats = server.cache_stats()
    assert stats["entries"] <= 4 and stats["hits"] + stats["misses"] == 400


def _outcome(vault, *args):
    try:
        return ("ok", vault.verify(*args))
    except McpVaultError as e:
        return ("refused", e.code, e.message, e.failed_block, e.failed_check, e.approval)
    except Exception as e:  # a wrong Python type: the same exception class from both builds
        return ("raised", type(e).__name__)


@native_only
def test_hostile_input_gets_the_same_answer_from_both_builds():
    """Garbage tokens, keys and requests (wrong types, lone surrogates, NaN, huge integers and strings, deep
    nesting, a token mutated byte by byte) are answered alike by the extension and the component: the same code,
    message and failed check, or the same exception class."""
    import random
    native, component = MCPVault(backend="native", cache=8), MCPVault(backend="component", cache=8)
    priv, pub = component.generate_keypair()
    tok = component.mint(priv, {"tools": ["a"], "ttl": 600, "issuer": "i", "subject": "s",
                                "arg_limits": [{"tool": "a", "arg": "x", "op": "max", "value": 5}]})
    deep: object = 1
    for _ in range(200):
        deep = [deep]
    requests = [
        {"tool": "a", "arguments": {"x": 3}}, {"tool": "a", "arguments": {"x": 9}},
        {"tool": "a", "arguments": {"x": float("nan")}}, {"tool": "a", "arguments": {"x": 2 ** 80}},
        {"tool": "a", "arguments": "{\"x\": 1"}, {"tool": "a", "arguments": "[1]"},
        {"tool": "a", "arguments": {"x": "\ud800"}}, {"tool": "\ud800"}, {"tool": 5}, {"tool": None},
        {"tool": "a", "now": -1}, {"tool": "a", "now": 2 ** 64}, {"tool": "a", "now": "1"},
        {"tool": "a", "approvals": ["x"] * 100}, {"tool": "a", "approvals": "x"}, {"tool": "a", "proof": 7},
        {"tool": "a", "proof": "mvp1.1.2.3"}, {"tool": "a", "method": ""},
        {"method": "resources/read", "resource": "file:///x"}, {"tool": "a", "bogus": 1}, [], None,
        {"tool": "a" * 100000}, {"tool": "a", "arguments": {"x": deep}}, {"tool": "a", "tool_definition": "zz"},
    ]
    cases = [(tok, pub, r) for r in requests]
    cases += [(tok, k, {"tool": "a"}) for k in ("zz", pub.upper(), 5, None, "")]
    cases += [(t, pub, {"tool": "a"}) for t in (5, None, "", tok + "A", tok[:-3], "x" * 200000)]
    rnd = random.Random(1)
    for _ in range(200):
        t = list(tok)
        t[rnd.randrange(len(t))] = rnd.choice("ABCxyz019-_=")
        cases.append(("".join(t), pub, {"tool": "a"}))
    differ = [(i, a, b) for i, c in enumerate(cases)
              for a, b in [(_outcome(native, *c), _outcome(component, *c))] if a != b]
    assert differ == []
    assert _outcome(native, *cases[0])[0] == "ok" and _outcome(native, *cases[1])[1] == "argument_not_allowed"
