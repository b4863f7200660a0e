"""Scopes in grants and restrictions, and the server's policy in the guard (mappings, tool_mappings, rules,
on_soft_rule): the same core decides as on every other host (SCHEMA.md, "Server policy")."""
import json
import logging

import pytest

from mcpvault import MCPVault, McpVaultError

NOW = 1_800_000_000

POLICY = {
    "mappings": {"read_file": "filesystem:files:read"},
    "tool_mappings": [
        {"tool": "write_file", "service": "filesystem", "scope": "files:write:sandbox",
         "when": {"path": {"startsWith": "/tmp/"}}, "priority": 10},
        {"tool": "write_file", "service": "filesystem", "scope": "files:write"},
    ],
    "rules": [
        {"id": "no-etc", "tool": "read_file", "when": {"path": {"startsWith": "/etc/"}}, "enforcement": "hard",
         "message": "system files are off limits"},
        {"id": "big-write", "tool": "write_file", "when": {"size": {"gt": 1000}}, "enforcement": "soft"},
        {"id": "log-file", "when": {"path": {"glob": "*.log"}}, "enforcement": "soft"},
    ],
}


@pytest.fixture()
def keys(vault):
    return vault.generate_keypair()


def grant(**extra):
    return {"ttl": 3600, "issuer": "auth-server", "subject": "agent-a", **extra}


def message(tool, id=1, **arguments):
    return json.dumps({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": tool, "arguments": arguments}})


def check(guard, token, tool, **arguments):
    return guard.check({"headers": {"Authorization": f"Bearer {token}"}, "body": message(tool, **arguments)}, NOW)


def test_scope_grants_verify_by_the_mapped_scope(vault, keys):
    priv, pub = keys
    token = vault.mint(priv, grant(scopes=["filesystem:files:read"]), NOW)
    facts = vault.verify(token, pub, {"tool": "read_file", "scope": "filesystem:files:read", "now": NOW})
    assert facts["scopes"] == ["filesystem:files:read"] and facts["scope"] == "filesystem:files:read"
    assert facts["tools"] == [] and facts["tool"] == "read_file"
    for scope in ("filesystem:files:write", None):
        with pytest.raises(McpVaultError) as e:
            vault.verify(token, pub, {"tool": "read_file", "scope": scope, "now": NOW})
        assert e.value.code == "tool_not_allowed", scope
    # tools and scopes together: either lets a call through
    both = vault.mint(priv, grant(tools=["db_query"], scopes=["filesystem:files:read"]), NOW)
    assert vault.verify(both, pub, {"tool": "db_query", "now": NOW})["tools"] == ["db_query"]
    assert "scope" not in vault.verify(both, pub, {"tool": "db_query", "now": NOW})
    # a token without scopes has no "scopes" key, as in the core's JSON
    plain = vault.mint(priv, grant(tools=["db_query"]), NOW)
    assert "scopes" not in vault.verify(plain, pub, {"tool": "db_query", "now": NOW})


def test_scope_grants_are_checked(vault, keys):
    priv, _ = keys
    for bad, what in ((grant(), "at least one tool or scope"), (grant(tools=[], scopes=[]), "at least one tool or scope"),
                      (grant(scopes=["has space"]), "must be 1-128 characters"),
                      (grant(scopes="filesystem:files:read"), "scopes must be a list"),
                      (grant(scopes=["a"], scope=["b"]), "unknown field 'scope'")):
        with pytest.raises(McpVaultError) as e:
            vault.mint(priv, bad, NOW)
        assert e.value.code == "invalid_request" and what in e.value.message, bad


def test_attenuation_narrows_scopes_and_a_tools_restriction_drops_them(vault, keys):
    priv, pub = keys
    root = vault.mint(priv, grant(tools=["db_query"], scopes=["filesystem:files:read", "filesystem:files:write"]), NOW)
    warnings = []
    narrow = vault.attenuate(root, {"scopes": ["filesystem:files:read", "mail:send"]}, NOW, warnings=warnings)
    facts = vault.verify(narrow, pub, {"tool": "read_file", "scope": "filesystem:files:read", "now": NOW})
    assert facts["scopes"] == ["filesystem:files:read"] and facts["depth"] == 1
    for scope in ("filesystem:files:write", "mail:send"):
        with pytest.raises(McpVaultError) as e:
            vault.verify(narrow, pub, {"tool": "write_file", "scope": scope, "now": NOW})
        assert e.value.code == "tool_not_allowed", scope
    # with tools set and scopes absent, the block keeps no scope: the tool still passes, the scope no longer does
    tools_only = vault.attenuate(root, {"tools": ["db_query"]}, NOW)
    assert vault.verify(tools_only, pub, {"tool": "db_query", "now": NOW})["tools"] == ["db_query"]
    with pytest.raises(McpVaultError) as e:
        vault.verify(tools_only, pub, {"tool": "read_file", "scope": "filesystem:files:read", "now": NOW})
    assert e.value.code == "tool_not_allowed"
    with pytest.raises(McpVaultError) as e:
        vault.attenuate(root, {"scopes": "filesystem:files:read"}, NOW)
    assert e.value.code == "invalid_request"


def test_a_store_backed_verify_of_a_scope_agrees(keys, tmp_path):
    priv, pub = keys
    vault = MCPVault(store=f"sqlite:{tmp_path / 's.db'}")
    token = vault.mint(priv, grant(scopes=["filesystem:files:read"]), NOW)
    facts = vault.verify(token, pub, {"tool": "read_file", "scope": "filesystem:files:read", "now": NOW})
    assert facts["scope"] == "filesystem:files:read" and facts["scopes"] == ["filesystem:files:read"]
    with pytest.raises(McpVaultError) as e:
        vault.verify(token, pub, {"tool": "read_file", "now": NOW})
    assert e.value.code == "tool_not_allowed"
    vault.store.close()


def test_guard_maps_tools_to_scopes(vault, keys):
    priv, pub = keys
    guard = vault.guard({"public_key": pub, **POLICY})
    reader = vault.mint(priv, grant(scopes=["filesystem:files:read", "filesystem:files:write:sandbox"]), NOW)
    # the simple mapping
    out = check(guard, reader, "read_file", path="/srv/a.txt")
    assert out["allowed"], out["decisions"]
    assert out["decisions"][0]["scope"] == "filesystem:files:read"
    assert out["facts"]["scope"] == "filesystem:files:read"
    # the conditional mapping with the higher priority, then the fallback mapping (not granted)
    out = check(guard, reader, "write_file", path="/tmp/x")
    assert out["allowed"] and out["decisions"][0]["scope"] == "filesystem:files:write:sandbox"
    out = check(guard, reader, "write_file", path="/home/x")
    assert not out["allowed"]
    assert (out["decisions"][0]["code"], out["status"]) == ("tool_not_allowed", 403)
    # an unmapped tool maps to TOOL:call
    auto = vault.mint(priv, grant(scopes=["db_query:call"]), NOW)
    out = check(guard, auto, "db_query", sql="select 1")
    assert out["allowed"] and out["decisions"][0]["scope"] == "db_query:call"
    # a token granting the tool itself still passes whatever the mapping
    by_tool = vault.mint(priv, grant(tools=["write_file"]), NOW)
    assert check(guard, by_tool, "write_file", path="/home/x")["allowed"]


def test_guard_rules_hard_and_soft(vault, keys):
    priv, pub = keys
    heard = []
    guard = vault.guard({"public_key": pub, **POLICY, "on_soft_rule": heard.append})
    token = vault.mint(priv, grant(tools=["read_file", "write_file"]), NOW)
    # a hard rule refuses a call the token allows: rule_violation, 403, no challenge
    out = check(guard, token, "read_file", path="/etc/passwd")
    d = out["decisions"][0]
    assert (out["allowed"], out["status"], d["code"]) == (False, 403, "rule_violation")
    assert "no-etc" in d["message"] and "system files are off limits" in d["message"]
    assert out["headers"] == {}
    assert out["response"]["error"]["data"]["code"] == "rule_violation"
    assert heard == []
    # soft rules allow, and the decision names them, in declaration order
    out = check(guard, token, "write_file", path="/tmp/app.log", size=5000)
    assert out["allowed"] and out["decisions"][0]["soft_rules"] == ["big-write", "log-file"]
    assert heard == [out["decisions"][0]]
    # no soft rule fired: not called, and no soft_rules key
    out = check(guard, token, "write_file", path="/tmp/app.txt", size=5)
    assert out["allowed"] and "soft_rules" not in out["decisions"][0]
    assert len(heard) == 1
    # the token's refusal comes first: a soft rule on a refused call is not reported
    narrow = vault.mint(priv, grant(tools=["read_file"]), NOW)
    out = check(guard, narrow, "write_file", path="/tmp/app.log", size=5000)
    assert out["decisions"][0]["code"] == "tool_not_allowed" and len(heard) == 1


def test_on_soft_rule_observes_only(vault, keys, caplog):
    priv, pub = keys

    def boom(decision):
        raise RuntimeError("hook failed")

    guard = vault.guard({"public_key": pub, "rules": [{"id": "watch", "enforcement": "soft"}], "on_soft_rule": boom})
    token = vault.mint(priv, grant(tools=["db_query"]), NOW)
    with caplog.at_level(logging.ERROR, logger="mcpvault"):
        out = check(guard, token, "db_query")
    assert out["allowed"] and out["decisions"][0]["soft_rules"] == ["watch"]
    assert "on_soft_rule raised" in caplog.text
    with pytest.raises(McpVaultError) as e:
        vault.guard({"public_key": pub, "on_soft_rule": "not a function"})
    assert e.value.code == "invalid_request"


def test_guard_dry_run_names_scope_mapping_and_rule(vault, keys):
    priv, pub = keys
    guard = vault.guard({"public_key": pub, "check_tool": True, **POLICY})
    token = vault.mint(priv, grant(tools=["read_file"], scopes=["filesystem:files:write:sandbox"]), NOW)
    body = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "mcpvault.check", "arguments": {"tool": "write_file", "arguments": {"path": "/tmp/a.log"}}}})
    out = guard.check({"headers": {"Authorization": f"Bearer {token}"}, "body": body}, NOW)
    answer = out["answers"][0]["result"]["structuredContent"]
    assert answer["allowed"] is True
    assert (answer["scope"], answer["mapping"], answer["softRules"]) == \
        ("filesystem:files:write:sandbox", "tool_mappings[0]", ["log-file"])
    body = json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {
        "name": "mcpvault.check", "arguments": {"tool": "read_file", "arguments": {"path": "/etc/shadow"}}}})
    out = guard.check({"headers": {"Authorization": f"Bearer {token}"}, "body": body}, NOW)
    answer = out["answers"][0]["result"]["structuredContent"]
    assert (answer["allowed"], answer["code"], answer["rule"]) == (False, "rule_violation", "no-etc")


@pytest.mark.parametrize("policy, what", [
    ({"rules": [{"id": "r", "enforcement": "hard", "when": {"path": {"startswith": "/"}}}]}, "startswith"),
    ({"rules": [{"id": "r", "enforcement": "hard", "when": {"path": {"glob": "a[b"}}}]}, "glob"),
    ({"rules": [{"id": "r", "enforcement": "hard"}, {"id": "r", "enforcement": "soft"}]}, "two rules have the id"),
    ({"rules": [{"id": "r", "enforcement": "maybe"}]}, "maybe"),
    ({"rules": [{"id": "r", "enforcement": "hard", "when": {"path": {}}}]}, "empty"),
    ({"mappings": {"read_file": "not a scope"}}, "scope"),
    ({"tool_mappings": [{"tool": "write_file"}]}, "scope"),
    ({"tool_mappings": [{"tool": "w", "scope": "s", "when": {"n": {"lt": "ten"}}}]}, "ten"),
    ({"rules": [{"id": "r", "enforcement": "hard", "severity": "high"}]}, "severity"),
])
def test_bad_policies_are_refused_at_guard(vault, keys, policy, what):
    _, pub = keys
    with pytest.raises(McpVaultError) as e:
        vault.guard({"public_key": pub, **policy})
    assert e.value.code == "invalid_request"
    assert what in e.value.message, e.value.message


def test_python_readme_policy_block_runs(vault, keys, capsys):
    """python/README.md's scopes-and-policy example, executed."""
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if '"tool_mappings"' in b)
    priv, pub = keys
    ns = {"vault": vault, "priv_key": priv, "pub_key": pub}
    exec(block, ns)
    guard, token = ns["guard"], ns["token"]

    def live(guard, token, tool, **arguments):  # the block mints on the clock
        return guard.check({"headers": {"Authorization": f"Bearer {token}"}, "body": message(tool, **arguments)})

    out = live(guard, token, "read_file", path="/srv/a", size=5000)
    assert out["allowed"] and out["decisions"][0]["scope"] == "filesystem:files:read"
    assert "soft rules" not in capsys.readouterr().out
    assert live(guard, token, "read_file", path="/etc/passwd")["decisions"][0]["code"] == "rule_violation"
    assert live(guard, token, "write_file", path="/tmp/x")["decisions"][0]["code"] == "tool_not_allowed"
    sandbox = vault.mint(priv, grant(scopes=["filesystem:files:write:sandbox"]))
    out = live(guard, sandbox, "write_file", path="/tmp/x", size=5000)
    assert out["allowed"] and out["decisions"][0]["soft_rules"] == ["big"]
    assert "soft rules: ['big']" in capsys.readouterr().out


def test_resources_and_prompts_are_granted_never_open(vault, keys):
    priv, pub = keys
    token = vault.mint(priv, grant(tools=["db_query"], resources=["file:///docs/"], prompts=["summarize"]), NOW)
    read = {"method": "resources/read", "now": NOW}
    facts = vault.verify(token, pub, {**read, "resource": "file:///docs/a.md"})
    assert facts["resources"] == [["file:///docs/*"]] and facts["prompts"] == ["summarize"]
    assert vault.verify(token, pub, {"method": "prompts/get", "prompt": "summarize", "now": NOW})["verified"]
    for req, code in (({**read, "resource": "file:///secret"}, "resource_not_allowed"),
                      ({"method": "prompts/get", "prompt": "translate", "now": NOW}, "prompt_not_allowed")):
        with pytest.raises(McpVaultError) as e:
            vault.verify(token, pub, req)
        assert e.value.code == code, req
    # a token that grants none reads none; no resources/prompts keys in its facts
    plain = vault.mint(priv, grant(tools=["db_query"]), NOW)
    with pytest.raises(McpVaultError) as e:
        vault.verify(plain, pub, {**read, "resource": "file:///docs/a.md"})
    assert e.value.code == "resource_not_allowed"
    assert not {"resources", "prompts"} & set(vault.verify(plain, pub, {"tool": "db_query", "now": NOW}))
    # attenuation narrows them
    narrow = vault.attenuate(token, {"resources": ["file:///docs/public/"], "prompts": []}, NOW)
    assert vault.verify(narrow, pub, {**read, "resource": "file:///docs/public/x"})["verified"]
    with pytest.raises(McpVaultError) as e:
        vault.verify(narrow, pub, {**read, "resource": "file:///docs/a.md"})
    assert e.value.code == "resource_not_allowed"
    with pytest.raises(McpVaultError) as e:
        vault.verify(narrow, pub, {"method": "prompts/get", "prompt": "summarize", "now": NOW})
    assert e.value.code == "prompt_not_allowed"


def test_resources_through_the_guard_and_a_store(keys, tmp_path):
    priv, pub = keys
    vault = MCPVault(store=f"sqlite:{tmp_path / 's.db'}")
    token = vault.mint(priv, grant(tools=["db_query"], resources=["file:///docs/"]), NOW)
    assert vault.verify(token, pub, {"method": "resources/read", "resource": "file:///docs/a", "now": NOW})["verified"]
    with pytest.raises(McpVaultError) as e:
        vault.verify(token, pub, {"method": "resources/read", "resource": "file:///etc/x", "now": NOW})
    assert e.value.code == "resource_not_allowed"
    # a server may open resources to tokens that grant none
    plain = vault.mint(priv, grant(tools=["db_query"]), NOW)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///any"}})
    inp = {"headers": {"Authorization": f"Bearer {plain}"}, "body": body}
    assert vault.guard({"public_key": pub, "open_resources": True}).check(inp, NOW)["allowed"]
    out = vault.guard({"public_key": pub}).check(inp, NOW)
    assert out["decisions"][0]["code"] == "resource_not_allowed"
    vault.store.close()
