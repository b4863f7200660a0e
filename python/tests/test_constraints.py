"""Argument constraints (issue 20) minted through Python: every limit type, the hostile inputs each must refuse, nested
paths and arrays, number limits from floats, attenuation, inspect, and limits the core refuses at mint."""
import math

import pytest

from mcpvault import MCPVault, McpVaultError

NOW = 1_800_000_000
TOOLS = ["file_read", "fetch", "net", "deploy", "tool", "pay", "batch"]
LIMITS = [
    {"tool": "file_read", "arg": "path", "op": "under", "value": "/srv/public/"},
    {"tool": "fetch", "arg": "url", "op": "url", "value": "https://*.example.com"},
    {"tool": "net", "arg": "ip", "op": "cidr", "value": "10.0.0.0/8"},
    {"tool": "deploy", "arg": "cluster", "op": "glob", "value": "staging-*"},
    {"tool": "deploy", "arg": "config.mode", "op": "eq", "value": "ro"},
    {"tool": "tool", "arg": "name", "op": "matches", "value": "^[a-z]+$"},
    {"tool": "pay", "arg": "amount", "op": "max", "value": 99.5},
    {"tool": "pay", "arg": "amount", "op": "min", "value": 0.0},
    {"tool": "batch", "arg": "items[*]", "op": "one_of", "value": ["a", "b"]},
    {"tool": "batch", "arg": "items", "op": "max_items", "value": 3},
    {"tool": "batch", "arg": "items", "op": "min_items", "value": 1},
]
OTHER = {"deploy": {"cluster": "staging-eu", "config": {"mode": "ro"}}}

# (tool, argument, value, allowed)
CASES = [
    ("file_read", "path", "/srv/public/docs/a.txt", True),
    ("file_read", "path", "/srv/public", True),
    ("file_read", "path", "/srv/public/a/../b//c/", True),
    ("file_read", "path", "/srv/public/../../etc/passwd", False),
    ("file_read", "path", "/srv/public/../secret", False),
    ("file_read", "path", "/srv/publicity/x", False),
    ("file_read", "path", "/srv/public/%2e%2e/%2e%2e/etc/passwd", False),
    ("file_read", "path", "/srv/public/%2fetc", False),
    ("file_read", "path", "/srv/public/\u0000/x", False),
    ("file_read", "path", "/srv/public/\uff0e\uff0e/\uff0e\uff0e/etc/passwd", False),
    ("file_read", "path", "/srv/public\u2215..\u2215etc", False),
    ("file_read", "path", "/srv/public\\..\\..\\etc", False),
    ("file_read", "path", "srv/public/x", False),
    ("file_read", "path", "/etc/passwd", False),
    ("file_read", "path", ["/srv/public/x"], False),
    ("fetch", "url", "https://api.example.com/v1/users", True),
    ("fetch", "url", "HTTPS://API.Example.COM:443/x", True),
    ("fetch", "url", "https://api.example.com@evil.net/", False),
    ("fetch", "url", "https://user:pw@api.example.com/", False),
    ("fetch", "url", "https://evil.net\\@api.example.com/", False),
    ("fetch", "url", "https://api.example.com.evil.net/", False),
    ("fetch", "url", "https://evilexample.com/", False),
    ("fetch", "url", "https://example.com/", False),
    ("fetch", "url", "http://api.example.com/", False),
    ("fetch", "url", "https://api.example.com:8443/", False),
    ("fetch", "url", "https://api.example.com./", False),
    ("fetch", "url", "https://ex%61mple.example.com/", False),
    ("fetch", "url", "https://b\u00fccher.example.com/", False),
    ("fetch", "url", "javascript:alert(1)//api.example.com", False),
    ("net", "ip", "10.1.2.3", True),
    ("net", "ip", "::ffff:10.0.0.1", True),
    ("net", "ip", "11.0.0.1", False),
    ("net", "ip", "010.0.0.1", False),
    ("net", "ip", "0x0a.0.0.1", False),
    ("net", "ip", "10.1", False),
    ("net", "ip", "167772161", False),
    ("net", "ip", "::10.0.0.1", False),
    ("net", "ip", "10.0.0.1%eth0", False),
    ("net", "ip", "10.0.0.0/8", False),
    ("deploy", "cluster", "staging-eu", True),
    ("deploy", "cluster", "staging-", True),
    ("deploy", "cluster", "prod-staging-eu", False),
    ("deploy", "cluster", "Staging-eu", False),
    ("deploy", "cluster", "staging", False),
    ("deploy", "cluster", "prod\nstaging-eu", False),
    ("tool", "name", "abc", True),
    ("tool", "name", "abc1", False),
    ("tool", "name", "ABC", False),
    ("tool", "name", "abc\n", False),
    ("tool", "name", "", False),
    ("pay", "amount", 99.5, True),
    ("pay", "amount", 99, True),
    ("pay", "amount", 0, True),
    ("pay", "amount", -0.0, True),
    ("pay", "amount", 99.51, False),
    ("pay", "amount", 100, False),
    ("pay", "amount", -0.01, False),
    ("pay", "amount", 1e300, False),
    ("pay", "amount", "50", False),
    ("pay", "amount", True, False),
    ("batch", "items", ["a", "b", "a"], True),
    ("batch", "items", ["a"], True),
    ("batch", "items", [], False),
    ("batch", "items", ["a", "b", "a", "b"], False),
    ("batch", "items", ["a", "c"], False),
    ("batch", "items", ["a", 1], False),
    ("batch", "items", ["a", ["b"]], False),
    ("batch", "items", "a", False),
]


@pytest.fixture(scope="module")
def keys(vault):
    return vault.generate_keypair()


@pytest.fixture(scope="module")
def token(vault, keys):
    return vault.mint(keys[0], {"tools": TOOLS, "ttl": 600, "issuer": "i", "subject": "s", "arg_limits": LIMITS}, NOW)


def _verify(vault, token, pub, tool, arguments):
    return vault.verify(token, pub, {"requested_tool": tool, "arguments": arguments, "now": NOW})


@pytest.mark.parametrize("tool,arg,value,allowed", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_type_allows_and_refuses(vault, keys, token, tool, arg, value, allowed):
    arguments = {**OTHER.get(tool, {}), arg: value}
    if allowed:
        assert _verify(vault, token, keys[1], tool, arguments)["tool"] == tool
    else:
        with pytest.raises(McpVaultError) as e:
            _verify(vault, token, keys[1], tool, arguments)
        assert e.value.code == "argument_not_allowed", value
        assert e.value.failed_block == 0
        assert e.value.failed_check.startswith(f'check if request_tool("{tool}")')


def test_a_missing_argument_is_refused_and_other_tools_are_unlimited(vault, keys, token):
    for tool in TOOLS:
        with pytest.raises(McpVaultError) as e:
            _verify(vault, token, keys[1], tool, {})
        assert e.value.code == "argument_not_allowed", tool
    # a nested path: the object is there, the key is not; the key at the top level is not the nested one
    for arguments in ({"cluster": "staging-eu", "config": {}}, {"cluster": "staging-eu", "config.mode": "ro"},
                      {"cluster": "staging-eu", "config": {"mode": "rw"}}, {"cluster": "staging-eu", "config": "ro"}):
        with pytest.raises(McpVaultError) as e:
            _verify(vault, token, keys[1], "deploy", arguments)
        assert e.value.code == "argument_not_allowed", arguments


def test_the_refusing_check_names_the_derived_fact(vault, keys, token):
    for tool, arguments, fact in (
        ("file_read", {"path": "/srv/public/../../etc/passwd"}, "request_arg_path"),
        ("fetch", {"url": "https://api.example.com@evil.net/"}, "request_arg_url"),
        ("net", {"ip": "11.0.0.1"}, "request_arg_ip"),
        ("pay", {"amount": 100}, "request_arg_num"),
        ("batch", {"items": ["a", "b", "c", "a"]}, "request_arg_array"),
    ):
        with pytest.raises(McpVaultError) as e:
            _verify(vault, token, keys[1], tool, arguments)
        assert fact in e.value.failed_check, (tool, e.value.failed_check)


def test_a_store_guarded_verify_refuses_the_same(keys, token):
    guarded = MCPVault(store="memory")
    assert _verify(guarded, token, keys[1], "net", {"ip": "::ffff:10.0.0.1"})["tool"] == "net"
    with pytest.raises(McpVaultError) as e:
        _verify(guarded, token, keys[1], "file_read", {"path": "/srv/public/../../etc/passwd"})
    assert e.value.code == "argument_not_allowed" and "request_arg_path" in e.value.failed_check
    assert [x["allowed"] for x in guarded.audit_entries()] == [True, False]


def test_float_and_integer_bounds(vault, keys):
    def mint(value):
        return vault.mint(keys[0], {"tools": ["pay"], "ttl": 600, "issuer": "i", "subject": "s",
                                    "arg_limits": [{"tool": "pay", "arg": "amount", "op": "max", "value": value}]}, NOW)
    as_number, as_integer = mint(100.0), mint(100)
    # 100.0 is a number limit (any JSON number), 100 an integer one (the argument must be an integer)
    assert _verify(vault, as_number, keys[1], "pay", {"amount": 99.5})
    assert _verify(vault, as_number, keys[1], "pay", {"amount": 100})
    assert _verify(vault, as_number, keys[1], "pay", {"amount": 1e2})
    with pytest.raises(McpVaultError) as e:
        _verify(vault, as_integer, keys[1], "pay", {"amount": 99.5})
    assert e.value.code == "argument_not_allowed"
    assert _verify(vault, as_integer, keys[1], "pay", {"amount": 100})
    blocks = vault.inspect(as_number)["blocks"]
    assert blocks[0]["arg_limits"] == [{"tool": "pay", "arg": "amount", "op": "max", "value": 100.0}]
    assert isinstance(blocks[0]["arg_limits"][0]["value"], float)
    assert isinstance(vault.inspect(as_integer)["blocks"][0]["arg_limits"][0]["value"], int)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(McpVaultError) as e:
            mint(bad)
        assert e.value.code == "invalid_request"


def test_inspect_reads_every_type_back_canonical(vault, token):
    got = vault.inspect(token)["blocks"][0]["arg_limits"]
    want = [dict(l) for l in LIMITS]
    want[0]["value"] = "/srv/public"  # normalised
    key = lambda l: (l["tool"], l["arg"], l["op"], str(l["value"]))
    assert sorted(got, key=key) == sorted(want, key=key)


def test_attenuation_narrows_and_every_block_holds(vault, keys, token):
    narrow = vault.attenuate(token, {"arg_limits": [
        {"tool": "file_read", "arg": "path", "op": "under", "value": "/srv/public/docs"},
        {"tool": "fetch", "arg": "url", "op": "url", "value": "https://api.example.com/v1/"},
        {"tool": "net", "arg": "ip", "op": "cidr", "value": "10.1.0.0/16"},
        {"tool": "batch", "arg": "items", "op": "max_items", "value": 2},
    ]}, NOW)
    ok = [("file_read", {"path": "/srv/public/docs/a"}), ("fetch", {"url": "https://api.example.com/v1/x"}),
          ("net", {"ip": "10.1.0.9"}), ("batch", {"items": ["a", "b"]})]
    for tool, arguments in ok:
        assert _verify(vault, narrow, keys[1], tool, arguments)["depth"] == 1
    for tool, arguments, block in [
        ("file_read", {"path": "/srv/public/other"}, 1),  # inside the parent's directory, not the child's
        ("file_read", {"path": "/srv/public/docs/../../../etc/passwd"}, 0),  # the root's still holds
        ("fetch", {"url": "https://www.example.com/v1/x"}, 1),
        ("fetch", {"url": "https://api.example.com/v10"}, 1),
        ("fetch", {"url": "https://api.example.com/v1/../admin"}, 1),
        ("net", {"ip": "10.2.0.1"}, 1),
        ("batch", {"items": ["a", "b", "a"]}, 1),
        ("batch", {"items": ["a", "z"]}, 0),
    ]:
        with pytest.raises(McpVaultError) as e:
            _verify(vault, narrow, keys[1], tool, arguments)
        assert (e.value.code, e.value.failed_block) == ("argument_not_allowed", block), arguments


def test_a_limit_on_a_tool_the_token_does_not_grant_is_refused(vault, keys, token):
    with pytest.raises(McpVaultError) as e:
        vault.mint(keys[0], {"tools": ["deploy"], "ttl": 60, "issuer": "i", "subject": "s", "arg_limits": [
            {"tool": "deploy.config", "arg": "mode", "op": "eq", "value": "ro"}]}, NOW)
    assert e.value.code == "invalid_request" and "does not grant" in e.value.message
    with pytest.raises(McpVaultError) as e:
        vault.attenuate(token, {"arg_limits": [{"tool": "admin", "arg": "x", "op": "glob", "value": "a*"}]}, NOW)
    assert e.value.code == "invalid_request" and "does not grant" in e.value.message
    # a restriction that keeps some tools: a limit on a tool it drops is refused too
    with pytest.raises(McpVaultError) as e:
        vault.attenuate(token, {"tools": ["net"], "arg_limits": [
            {"tool": "fetch", "arg": "url", "op": "url", "value": "https://a.example.com"}]}, NOW)
    assert e.value.code == "invalid_request"


@pytest.mark.parametrize("limit", [
    {"op": "under", "value": "srv/public"},
    {"op": "under", "value": "/srv/../../etc"},
    {"op": "under", "value": 5},
    {"op": "url", "value": "https://user@api.example.com"},
    {"op": "url", "value": "https://api.*.com"},
    {"op": "url", "value": "example.com"},
    {"op": "cidr", "value": "10.0.0.1/8"},
    {"op": "cidr", "value": "10.0.0.0/33"},
    {"op": "cidr", "value": "10.0.0.0"},
    {"op": "glob", "value": "staging-[ab]"},
    {"op": "matches", "value": "(a"},
    {"op": "matches", "value": "\\d+"},
    {"op": "matches", "value": ""},
    {"op": "max_items", "value": -1},
    {"op": "max_items", "value": 1.5},
    {"op": "min_items", "value": 2 ** 32},
    {"op": "max", "value": "5"},
    {"op": "max", "value": True},
    {"op": "regex", "value": "."},
    {"op": "under", "value": "/srv", "arg": "paths[*]"},
    {"op": "max", "value": 1.5, "arg": "amounts[*]"},
    {"op": "eq", "value": "x", "arg": "a..b"},
    {"op": "eq", "value": "x", "arg": "a[*].b"},
])
def test_limits_the_core_cannot_decide_on_are_refused_at_mint(vault, keys, limit):
    entry = {"tool": "t", "arg": limit.get("arg", "a"), "op": limit["op"], "value": limit["value"]}
    with pytest.raises(McpVaultError) as e:
        vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s", "arg_limits": [entry]}, NOW)
    assert e.value.code == "invalid_request", limit


def test_an_unknown_field_in_a_limit_is_refused(vault, keys):
    with pytest.raises(McpVaultError) as e:
        vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s",
                             "arg_limits": [{"tool": "t", "arg": "a", "op": "max", "valeu": 5}]}, NOW)
    assert e.value.code == "invalid_request" and "valeu" in e.value.message


def test_json_pointer_and_array_index_paths(vault, keys):
    tok = vault.mint(keys[0], {"tools": ["q"], "ttl": 60, "issuer": "i", "subject": "s", "arg_limits": [
        {"tool": "q", "arg": "/a.b", "op": "eq", "value": 1},
        {"tool": "q", "arg": "rows.0.id", "op": "max", "value": 10},
        {"tool": "q", "arg": "tags[*]", "op": "glob", "value": "env:*"},
    ]}, NOW)
    ok = {"a.b": 1, "rows": [{"id": 3}, {"id": 99}], "tags": ["env:prod", "env:"]}
    assert _verify(vault, tok, keys[1], "q", ok)
    # a pointer's segment reads an object's key as written ("0" included), an array's element by its decimal index
    assert _verify(vault, tok, keys[1], "q", {**ok, "rows": {"0": {"id": 1}}})
    nested_not_dotted = {k: v for k, v in ok.items() if k != "a.b"}
    for bad in ({**ok, "a.b": 2}, {**nested_not_dotted, "a": {"b": 1}}, {**ok, "rows": [{"id": 11}]},
                {**ok, "rows": []}, {**ok, "tags": ["env:prod", "team:x"]}, {**ok, "tags": "env:prod"}):
        with pytest.raises(McpVaultError) as e:
            _verify(vault, tok, keys[1], "q", bad)
        assert e.value.code == "argument_not_allowed", bad


def test_the_readme_limits_block_runs_as_written(vault, keys):
    """python/README.md's argument-limits block: every line but the last runs, the last raises as its comment says."""
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"### Argument limits\n\n```python\n(.*?)```", readme, re.S).group(1)
    lines = [l for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]
    env = {"vault": vault, "priv_key": keys[0], "pub_key": keys[1]}
    exec("\n".join(lines[:-1]), env)
    with pytest.raises(McpVaultError) as e:
        exec(lines[-1], env)
    assert e.value.code == "argument_not_allowed" and "request_arg_path" in e.value.failed_check
    assert len(env["limits"]) == 8


@pytest.mark.parametrize("grant", [
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "min", "value": 2 ** 64 - 1}]},  # would wrap to min -1
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "max", "value": 2 ** 63}]},
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "max", "value": -(2 ** 63) - 1}]},
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "eq", "value": 2 ** 70 + 7}]},
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "one_of", "value": [1, 2 ** 64 + 1]}]},
    {"arg_limits": [{"tool": "t", "arg": "a", "op": "max_items", "value": 2 ** 32 + 3}]},
    {"max_depth": 2 ** 32 + 1},
    {"ttl": 2 ** 64 + 60},
])
def test_integers_out_of_range_are_refused_not_wrapped(vault, keys, grant):
    """wasmtime-py wraps an integer outside its WIT type (2**64 - 1 as an s64 is -1): the API refuses it first."""
    with pytest.raises(McpVaultError) as e:
        vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s", **grant}, NOW)
    assert e.value.code == "invalid_request", grant
    with pytest.raises(McpVaultError) as e:
        vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s"}, 2 ** 64 + NOW)
    assert e.value.code == "invalid_request"
    tok = vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s"}, NOW)
    with pytest.raises(McpVaultError) as e:
        vault.attenuate(tok, {"ttl": 5}, 2 ** 64 + NOW)
    assert e.value.code == "invalid_request"
    # the largest values still fit
    assert vault.mint(keys[0], {"tools": ["t"], "ttl": 60, "issuer": "i", "subject": "s", "arg_limits": [
        {"tool": "t", "arg": "a", "op": "min", "value": -(2 ** 63)},
        {"tool": "t", "arg": "a", "op": "max", "value": 2 ** 63 - 1}]}, NOW)
