"""MCPVault(cache=N): the component's `verifier` resource answers every vector exactly as the free `verify` does."""
import json

import pytest

from conftest import VECTORS
from mcpvault import MCPVault, McpVaultError


@pytest.fixture(scope="module")
def cached():
    return MCPVault(cache=64)


@pytest.fixture(scope="module")
def uncached():
    return MCPVault()


def outcome(f):
    """The answer, or every field of the error."""
    try:
        return {"ok": f()}
    except McpVaultError as e:
        return {"error": [e.code, e.message, e.failed_block, e.failed_check, e.approval]}


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_cached_and_uncached(vault, cached, uncached, path):
    case = json.loads(path.read_text())
    req = dict(case["request"])
    req["now"] = case["now"]
    token, key = case["token"], case["public_key"]
    # the free, typed `verify` of the component: what MCPVault.verify called before the verifier resource
    reference = outcome(lambda: vault._verify_typed(token, key, vault._request_fields(req)))
    # the verify path through the resource, without and with a cache (a miss, then a hit when the chain verified)
    assert outcome(lambda: uncached._verify_token(token, key, req)) == reference
    assert outcome(lambda: cached._verify_token(token, key, req)) == reference
    assert outcome(lambda: cached._verify_token(token, key, req)) == reference
    # and the public API: the same facts or the same error either way
    public = outcome(lambda: uncached.verify(token, key, req))
    assert outcome(lambda: cached.verify(token, key, req)) == public
    assert public.get("ok", {"error": None}) == case["expect"].get("ok", {"error": None})
    if "error" in case["expect"]:
        assert public["error"][0] == case["expect"]["error"]


@pytest.fixture(scope="module")
def issued(uncached):
    priv, pub = uncached.generate_keypair()
    token = uncached.mint(priv, {"tools": ["read_file"], "ttl": 60, "issuer": "i", "subject": "s",
                                 "arg_limits": [{"tool": "read_file", "arg": "path", "op": "prefix",
                                                 "value": "/data/"}]}, now=1_700_000_000)
    return token, pub


def test_hits_rerun_the_checks(issued):
    token, pub = issued
    v = MCPVault(cache=2)
    ok = {"tool": "read_file", "arguments": {"path": "/data/a"}, "now": 1_700_000_010}
    assert v.cache_stats() == {"hits": 0, "misses": 0, "entries": 0, "capacity": 2}
    first = v.verify(token, pub, ok)
    assert v.verify(token, pub, ok) == first
    assert v.cache_stats() == {"hits": 1, "misses": 1, "entries": 1, "capacity": 2}
    # a hit still checks the arguments and the time of this call
    with pytest.raises(McpVaultError) as e:
        v.verify(token, pub, {**ok, "arguments": {"path": "/etc/passwd"}})
    assert e.value.code == "argument_not_allowed"
    with pytest.raises(McpVaultError) as e:
        v.verify(token, pub, {**ok, "now": 1_700_000_060})
    assert e.value.code == "expired"
    assert v.cache_stats()["hits"] == 3


def test_a_changed_token_or_key_misses(issued, uncached):
    token, pub = issued
    v = MCPVault(cache=8)
    ok = {"tool": "read_file", "arguments": {"path": "/data/a"}, "now": 1_700_000_010}
    v.verify(token, pub, ok)
    i = len(token) // 2
    tampered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
    other = uncached.generate_keypair()[1]
    for t, k in ((tampered, pub), (token, other)):
        expected = outcome(lambda: uncached.verify(t, k, ok))
        assert "error" in expected
        assert outcome(lambda: v.verify(t, k, ok)) == expected
    stats = v.cache_stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (0, 3, 1)


def test_least_recently_used_makes_room(uncached):
    priv, pub = uncached.generate_keypair()
    tokens = [uncached.mint(priv, {"tools": [f"t{i}"], "ttl": 60, "issuer": "i", "subject": "s"}, now=1_700_000_000)
              for i in range(3)]
    v = MCPVault(cache=2)
    for i, t in enumerate(tokens):
        v.verify(t, pub, {"tool": f"t{i}", "now": 1_700_000_001})
    assert v.cache_stats()["entries"] == 2
    v.verify(tokens[0], pub, {"tool": "t0", "now": 1_700_000_001})  # evicted: verified again
    assert v.cache_stats()["misses"] == 4


@pytest.mark.parametrize("bad", [-1, 2 ** 32, True, "8", 1.5, None])
def test_cache_must_be_a_count(bad):
    with pytest.raises(McpVaultError) as e:
        MCPVault(cache=bad)
    assert e.value.code == "invalid_request"


def test_bad_request_fields_fail_as_before(issued, vault):
    token, pub = issued
    v = MCPVault(cache=4)

    def answer(f):
        try:
            return None, f()
        except Exception as e:  # the same exception, whichever path raised it
            return type(e), str(e)

    for req in ({"tool": 5}, {"tool": "read_file", "arguments": "[1]"}, {"tool": "read_file", "arguments": "{"},
                {"tool": "read_file", "now": -1}, {"tool": "read_file", "audience": 3}, {"tool": "read_\ud800"}):
        ref = answer(lambda: vault._verify_typed(token, pub, vault._request_fields(req)))
        assert ref[0] is not None, req
        assert answer(lambda: v.verify(token, pub, req)) == ref, req
