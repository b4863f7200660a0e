"""The Python API: the README snippet verbatim, errors, limits, inspect."""
import pytest

from mcpvault import MCPVault, McpVaultError

NOW = 1_800_000_000


def test_readme_snippet_runs_verbatim():
    from mcpvault import MCPVault, McpVaultError
    vault = MCPVault()
    priv_key, pub_key = vault.generate_keypair()
    token = vault.mint(priv_key, {"tools": ["db_query"], "ttl": 3600, "issuer": "auth-server", "subject": "agent-a"})
    delegated = vault.attenuate(token, {"tools": ["db_query"], "ttl": 300})
    facts = vault.verify(delegated, pub_key, {"requested_tool": "db_query"})   # dict of authorized facts
    with pytest.raises(McpVaultError) as err:
        vault.verify(token, pub_key, {"requested_tool": "admin_delete"})       # raises McpVaultError
    assert err.value.code == "tool_not_allowed"
    assert facts["verified"] is True
    assert facts["tools"] == ["db_query"]
    assert facts["depth"] == 1 and facts["subject"] == "agent-a"
    assert len(facts["revocation_ids"]) == 2


def test_keys_are_hex(vault):
    priv, pub = vault.generate_keypair()
    assert len(priv) == 64 and len(pub) == 64
    int(priv, 16), int(pub, 16)
    assert vault.generate_keypair() != (priv, pub)


def test_attenuation_narrows_and_warns(vault):
    priv, pub = vault.generate_keypair()
    token = vault.mint(priv, {"tools": ["db_query", "file_read"], "ttl": 3600, "issuer": "i", "subject": "s"}, NOW)
    warnings = []
    narrow = vault.attenuate(token, {"tools": ["db_query", "admin"], "ttl": 60}, NOW, warnings=warnings)
    assert any('"admin" is not granted' in w for w in warnings)
    facts = vault.verify(narrow, pub, {"requested_tool": "db_query", "now": NOW})
    assert facts["tools"] == ["db_query"] and facts["expires_at"] == NOW + 60
    for tool in ("file_read", "admin"):
        with pytest.raises(McpVaultError) as e:
            vault.verify(narrow, pub, {"requested_tool": tool, "now": NOW})
        assert e.value.code == "tool_not_allowed"
        assert e.value.failed_check.startswith("check if request_tool")
    with pytest.raises(McpVaultError) as e:
        vault.verify(narrow, pub, {"requested_tool": "db_query", "now": NOW + 60})
    assert e.value.code == "expired" and e.value.failed_block == 1


def test_argument_limits(vault):
    priv, pub = vault.generate_keypair()
    grant = {
        "tools": ["db_query", "file_read"], "ttl": 600, "issuer": "i", "subject": "s", "audience": "srv",
        "arg_limits": [
            {"tool": "db_query", "arg": "max_rows", "op": "max", "value": 100},
            {"tool": "db_query", "arg": "table", "op": "one_of", "value": ["users", "orders"]},
            {"tool": "db_query", "arg": "dry_run", "op": "eq", "value": True},
            {"tool": "file_read", "arg": "path", "op": "prefix", "value": "/srv/public/"},
        ],
    }
    token = vault.mint(priv, grant, NOW)
    ok = {"requested_tool": "db_query", "audience": "srv", "now": NOW,
          "arguments": {"max_rows": 100, "table": "users", "dry_run": True}}
    assert vault.verify(token, pub, ok)["tool"] == "db_query"
    for bad in ({"max_rows": 101}, {"max_rows": "5"}, {"table": "secrets"}, {"dry_run": 1}):
        req = dict(ok, arguments={**ok["arguments"], **bad})
        with pytest.raises(McpVaultError) as e:
            vault.verify(token, pub, req)
        assert e.value.code == "argument_not_allowed", bad
    with pytest.raises(McpVaultError) as e:
        vault.verify(token, pub, {"requested_tool": "file_read", "audience": "srv", "now": NOW,
                                  "arguments": {"path": "/etc/passwd"}})
    assert e.value.code == "argument_not_allowed"
    with pytest.raises(McpVaultError) as e:
        vault.verify(token, pub, dict(ok, audience="other"))
    assert e.value.code == "wrong_audience"
    facts = vault.verify(token, pub, {"method": "tools/list", "audience": "srv", "now": NOW})
    assert "tool" not in facts


@pytest.mark.parametrize("call,code", [
    (lambda v, pub, tok: v.verify("garbage", pub, {"requested_tool": "x"}), "malformed_token"),
    (lambda v, pub, tok: v.verify(tok, "abcd", {"requested_tool": "x"}), "invalid_key"),
    (lambda v, pub, tok: v.verify(tok, v.generate_keypair()[1], {"requested_tool": "db_query"}), "bad_signature"),
    (lambda v, pub, tok: v.verify(tok, pub, {"requested_tool": "db_query", "arguments": "[1]"}), "invalid_request"),
    (lambda v, pub, tok: v.mint("zz", {"tools": ["x"], "ttl": 1, "issuer": "i", "subject": "s"}), "invalid_key"),
    (lambda v, pub, tok: v.mint(v.generate_keypair()[0], {"tools": [], "ttl": 1, "issuer": "i", "subject": "s"}), "invalid_request"),
    (lambda v, pub, tok: v.attenuate(tok, {}), "invalid_request"),
    (lambda v, pub, tok: v.attenuate("garbage", {"ttl": 5}), "malformed_token"),
    (lambda v, pub, tok: v.inspect("garbage"), "malformed_token"),
    (lambda v, pub, tok: v.mint(v.generate_keypair()[0], {"tools": ["x"], "ttl": 1, "issuer": "i", "subject": "s",
                                                            "arg_limits": [{"tool": "x", "arg": "a", "op": "regex", "value": "."}]}), "invalid_request"),
    # a typo is an error, never a silently wider token
    (lambda v, pub, tok: v.attenuate(tok, {"tll": 5}), "invalid_request"),
    (lambda v, pub, tok: v.attenuate(tok, {"ttl": 5, "single_use": "yes"}), "invalid_request"),
    (lambda v, pub, tok: v.mint(v.generate_keypair()[0], {"tools": ["x"], "ttl": 1, "issuer": "i", "subject": "s", "maxdepth": 1}), "invalid_request"),
    (lambda v, pub, tok: v.verify(tok, pub, {"requested_tool": "db_query", "argumnets": {}}), "invalid_request"),
    # the documented maximum token size
    (lambda v, pub, tok: v.verify("A" * (64 * 1024 + 4), pub, {"requested_tool": "db_query"}), "limits_exceeded"),
])
def test_errors_have_codes(vault, call, code):
    priv, pub = vault.generate_keypair()
    tok = vault.mint(priv, {"tools": ["db_query"], "ttl": 600, "issuer": "i", "subject": "s"})
    with pytest.raises(McpVaultError) as e:
        call(vault, pub, tok)
    assert e.value.code == code
    assert e.value.message and e.value.message == e.value.message.strip()


def test_inspect(vault):
    priv, _ = vault.generate_keypair()
    tok = vault.mint(priv, {"tools": ["db_query"], "ttl": 600, "issuer": "i", "subject": "s"}, NOW)
    tok = vault.attenuate(tok, {"ttl": 60}, NOW)
    info = vault.inspect(tok)
    assert info["verified"] is False
    assert [b["index"] for b in info["blocks"]] == [0, 1]
    assert info["blocks"][1]["expires_at"] == NOW + 60
    assert "mcpvault(1)" in info["blocks"][0]["source"]


def test_readme_python_block_runs_as_written():
    """The repository README's Python blocks, executed as written by scripts/dist-smoke/readme.py (the same script
    make test-dist runs against the wheel): the facts of the first, then tool_not_allowed, then revoked on a store."""
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "scripts/dist-smoke/readme.py"), str(root / "README.md")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "python ok"


def test_single_use_tokens_carry_a_nonce(vault):
    priv, pub = vault.generate_keypair()
    once = vault.mint(priv, {"tools": ["db_query"], "ttl": 60, "issuer": "i", "subject": "s", "single_use": True})
    facts = vault.verify(once, pub, {"method": "tools/list"})
    assert len(facts["nonces"]) == 1 and len(facts["nonces"][0]) == 32
    # without a store nothing can spend the nonce: a single-use token's tools/call is refused, as on every host
    with pytest.raises(McpVaultError) as e:
        vault.verify(once, pub, {"tool": "db_query"})
    assert e.value.code == "replayed"
    plain = vault.mint(priv, {"tools": ["db_query"], "ttl": 60, "issuer": "i", "subject": "s"})
    assert "nonces" not in vault.verify(plain, pub, {"tool": "db_query"})
    hop = vault.attenuate(plain, {"single_use": True})
    assert len(vault.verify(hop, pub, {"method": "tools/list"})["nonces"]) == 1
