"""The stateful half: every tests/vectors/state case through the guard on SQLite, Redis and memory; revocation and
single-use tokens through `verify`; stores shared with the CLI."""
import json
import subprocess

import pytest

from conftest import STATE
from mcpvault import MCPVault, McpVaultError

NOW = 1_800_000_000


def test_there_are_state_vectors():
    assert len(STATE) >= 50


def run_case(case, store_spec, fresh=None):
    """Every step of `case` on a new vault over `store_spec` (none: a case without a store runs without one)."""
    with_store = case["options"]["store"]
    vault = MCPVault(store=store_spec if with_store else None)
    if with_store:
        if fresh:
            fresh(vault)
        for rid in case["revoked"]:
            vault.revoke(rid, NOW)
    guard = vault.guard(case["options"])
    for i, step in enumerate(case["steps"]):
        outcome = guard.check(step["input"], step["now"])
        # `cache_hit` depends on the component's cache and its history: the vectors never hold it
        for d in outcome["decisions"]:
            d.pop("cache_hit", None)
        assert outcome == step["expect"], f"step {i}"
        if "complete" in step and outcome["call_key"] and with_store:
            guard.complete(outcome["call_key"], step["complete"], outcome["keep_until"], outcome["keep_for"])
    if with_store:
        assert len(vault.audit_entries()) == case["audit_entries"]
        assert vault.audit_verify()["entries"] == case["audit_entries"]
        vault.store.close()
    else:
        assert case["audit_entries"] == 0


@pytest.mark.parametrize("path", STATE, ids=[p.stem for p in STATE])
def test_state_vector_sqlite(path, tmp_path):
    run_case(json.loads(path.read_text()), f"sqlite:{tmp_path / 'store.db'}")


@pytest.mark.parametrize("path", STATE, ids=[p.stem for p in STATE])
def test_state_vector_redis(path, redis_url):
    run_case(json.loads(path.read_text()), redis_url, fresh=lambda v: v.store._r.flushdb())


@pytest.mark.parametrize("path", STATE, ids=[p.stem for p in STATE])
def test_state_vector_memory(path):
    run_case(json.loads(path.read_text()), "memory")


@pytest.fixture()
def keys(vault):
    return vault.generate_keypair()


def mint(vault, priv, **extra):
    return vault.mint(priv, {"tools": ["db_query"], "ttl": 3600, "issuer": "auth-server", "subject": "agent-a",
                             **extra}, NOW)


def call(tool="db_query", **args):
    return {"tool": tool, "arguments": args, "now": NOW + 10}


def cli_run(cli, *args):
    return subprocess.run([cli, *args], capture_output=True, text=True, env={"MCPVAULT_NOW": str(NOW + 10)})


def test_revoked_by_the_cli_is_refused_by_python(vault, keys, cli, tmp_path):
    priv, pub = keys
    token = mint(vault, priv)
    child = vault.attenuate(token, {"ttl": 600}, NOW)
    store = f"sqlite:{tmp_path / 'shared.db'}"
    py = MCPVault(store=store)
    assert py.verify(child, pub, call())["subject"] == "agent-a"
    root_id = vault.inspect(token)["revocation_ids"][0]
    done = cli_run(cli, "revoke", "--id", root_id, "--store", store)
    assert done.returncode == 0, done.stderr
    for t in (token, child):  # revoking a token revokes its descendants
        with pytest.raises(McpVaultError) as e:
            py.verify(t, pub, call())
        assert e.value.code == "revoked"
    # the chain the CLI and Python share holds: 1 allowed, 2 refused
    assert py.audit_verify()["entries"] == 3
    assert [e["code"] for e in py.audit_entries()] == [None, "revoked", "revoked"]


def test_revoked_in_python_is_refused_by_the_cli(vault, keys, cli, tmp_path):
    priv, pub = keys
    token = mint(vault, priv)
    store = f"sqlite:{tmp_path / 'shared.db'}"
    verify = ["verify", "--token", token, "--pubkey", pub, "--tool", "db_query", "--store", store]
    ok = cli_run(cli, *verify)
    assert ok.returncode == 0, ok.stderr
    py = MCPVault(store=store)
    rid = vault.inspect(token)["revocation_ids"][0]
    assert py.revoke(rid.upper()) == rid  # stored as the CLI stores it
    refused = cli_run(cli, *verify)
    assert refused.returncode == 1 and refused.stderr.startswith("mcpvault: revoked:"), refused.stderr
    audit = cli_run(cli, "audit", "verify", "--store", store)
    assert audit.returncode == 0 and audit.stdout.startswith("ok: 2 entries"), audit.stdout + audit.stderr
    assert py.audit_verify()["entries"] == 2


def test_only_full_revocation_ids(vault, keys, tmp_path):
    priv, pub = keys
    token = mint(vault, priv)
    rid = vault.inspect(token)["revocation_ids"][0]
    py = MCPVault(store=f"sqlite:{tmp_path / 's.db'}")
    for bad in (rid[:16], rid[:-1], "g" * 128, "", 42):
        with pytest.raises(McpVaultError) as e:
            py.revoke(bad)
        assert e.value.code == "invalid_request"
    assert py.verify(token, pub, call())["tool"] == "db_query"  # a prefix revoked nothing
    with pytest.raises(McpVaultError) as e:
        vault.revoke(rid)  # no store
    assert e.value.code == "invalid_request"


@pytest.mark.parametrize("spec", ["memory", "sqlite", "redis"])
def test_single_use_once(vault, keys, spec, tmp_path, request):
    priv, pub = keys
    if spec == "sqlite":
        spec = f"sqlite:{tmp_path / 's.db'}"
    elif spec == "redis":
        spec = request.getfixturevalue("redis_url")
    py = MCPVault(store=spec)
    once = mint(vault, priv, single_use=True)
    facts = py.verify(once, pub, call(table="users"), request_id="1")
    assert len(facts["nonces"]) == 1
    with pytest.raises(McpVaultError) as e:  # another call: the nonce is spent
        py.verify(once, pub, call(table="orders"), request_id="2")
    assert e.value.code == "replayed"
    with pytest.raises(McpVaultError) as e:  # the same call again: a retry of a call still running
        py.verify(once, pub, call(table="users"), request_id="1")
    assert e.value.code == "in_flight"
    # other methods do not spend it
    assert py.verify(once, pub, {"method": "tools/list", "now": NOW + 10})["nonces"] == facts["nonces"]


def test_without_a_store_single_use_is_refused(vault, keys):
    priv, pub = keys
    once = mint(vault, priv, single_use=True)
    with pytest.raises(McpVaultError) as e:
        vault.verify(once, pub, call())
    assert e.value.code == "replayed"
    assert len(vault.verify(once, pub, {"method": "tools/list", "now": NOW})["nonces"]) == 1


def test_guard_retry_gets_the_recorded_response(vault, keys, tmp_path):
    priv, pub = keys
    once = mint(vault, priv, single_use=True)
    py = MCPVault(store=f"sqlite:{tmp_path / 's.db'}")
    guard = py.guard({"public_key": pub})
    msg = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "db_query", "arguments": {}}}
    inp = {"headers": {"Authorization": f"Bearer {once}"}, "body": json.dumps(msg)}
    first = guard.check(inp, NOW)
    assert first["allowed"] and first["forward"] == msg and first["call_key"]
    guard.complete(first["call_key"], {"result": {"content": []}}, first["keep_until"], first["keep_for"])
    again = guard.check(inp, NOW + 5)
    assert again["allowed"] and again["forward"] is None
    assert again["answers"] == [{"jsonrpc": "2.0", "id": 7, "result": {"content": []}}]
    later = guard.check(inp, NOW + 60)  # past the retry window
    assert not later["allowed"] and later["decisions"][0]["code"] == "replayed" and later["status"] == 401


@pytest.mark.parametrize("spec", ["memory", "sqlite"])
def test_guard_records_a_response_holding_nan_as_json_does(vault, keys, tmp_path, spec):
    # helper 40: a response recorded with NaN or an infinity (Python writes them, JSON has none) made the retry's
    # check raise invalid_request: recorded as JavaScript records it (null), the retry gets it
    priv, pub = keys
    once = mint(vault, priv, single_use=True)
    py = MCPVault(store=f"sqlite:{tmp_path / 's.db'}" if spec == "sqlite" else "memory")
    guard = py.guard({"public_key": pub})
    msg = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "db_query", "arguments": {}}}
    inp = {"headers": {"Authorization": f"Bearer {once}"}, "body": json.dumps(msg)}
    first = guard.check(inp, NOW)
    inf = {"result": {"structuredContent": {"v": [float("inf"), float("nan"), -float("inf"), 1.5]}}}
    guard.complete(first["call_key"], inf, first["keep_until"], first["keep_for"])
    again = guard.check(inp, NOW + 5)
    assert again["allowed"] and again["answers"][0]["result"] == {"structuredContent": {"v": [None, None, None, 1.5]}}


def test_guard_refuses_when_the_store_reads_what_does_not_parse(vault, keys):
    # what a store read is the server's: one the core cannot parse refuses the request (internal_error, 500), never
    # raises as if the caller had sent it
    priv, pub = keys
    once = mint(vault, priv, single_use=True)
    py = MCPVault(store="memory")
    guard = py.guard({"public_key": pub})
    msg = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "db_query", "arguments": {}}}
    inp = {"headers": {"Authorization": f"Bearer {once}"}, "body": json.dumps(msg)}
    first = guard.check(inp, NOW)
    py.store.complete(first["call_key"], {"result": float("nan")}, first["keep_until"], first["keep_for"])
    again = guard.check(inp, NOW + 5)
    assert not again["allowed"] and again["status"] == 500 and again["decisions"][0]["code"] == "internal_error"


def test_verify_refuses_the_retry_of_a_call_another_server_recorded(vault, keys, tmp_path):
    # helper 40: verify answered the retry of a recorded call with its facts, and its caller ran the call again
    priv, pub = keys
    once = mint(vault, priv, single_use=True)
    db = f"sqlite:{tmp_path / 's.db'}"
    guard = MCPVault(store=db).guard({"public_key": pub})
    msg = {"jsonrpc": "2.0", "id": "9", "method": "tools/call", "params": {"name": "db_query", "arguments": {}}}
    first = guard.check({"headers": {"Authorization": f"Bearer {once}"}, "body": json.dumps(msg)}, NOW + 10)
    assert first["allowed"]
    guard.complete(first["call_key"], {"result": {"content": []}}, first["keep_until"], first["keep_for"])
    other = MCPVault(store=db)
    for request_id in ("9", "9", "10"):
        with pytest.raises(McpVaultError) as e:
            other.verify(once, pub, call(), request_id=request_id)
        assert e.value.code == "replayed"


def test_guard_bad_options_and_input(vault, keys):
    _, pub = keys
    for options, code in (({"public_key": "zz"}, "invalid_key"), ({"public_key": pub, "bogus": 1}, "invalid_request"),
                          ({"public_key": pub, "retry_window": "x"}, "invalid_request"), ([], "invalid_request")):
        with pytest.raises(McpVaultError) as e:
            vault.guard(options)
        assert e.value.code == code, options
    guard = vault.guard({"public_key": pub})
    with pytest.raises(McpVaultError) as e:
        guard.check({"bogus": True})
    assert e.value.code == "invalid_request"
    # every guard function answers bad JSON with invalid_request, never a trap
    for name, args in (("guard-check", ("{", "{}", None)), ("guard-check", (guard._options, "[", None)),
                       ("guard-resume", (guard._options, "{}", "{}")), ("store-decide", ("{}", "{}")),
                       ("audit-failed", (guard._options, "{}", "x"))):
        with pytest.raises(McpVaultError) as e:
            vault._call(name, *args)
        assert e.value.code == "invalid_request", name
    # what a store read is the store's: one that does not parse is the server's failure
    with pytest.raises(McpVaultError) as e:
        vault._call("store-decide", '{"revocation_ids": []}', "nope")
    assert e.value.code == "internal_error"
    nothing = vault.guard({"public_key": pub}).check({}, NOW)  # no body, no token
    assert (nothing["status"], nothing["decisions"][0]["code"]) == (401, "missing_token")


def test_store_and_audit_failures_refuse(vault, keys, monkeypatch):
    priv, pub = keys
    token = mint(vault, priv)
    py = MCPVault(store="memory")

    def broken(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(py.store, "append_audit", broken)
    with pytest.raises(McpVaultError) as e:
        py.verify(token, pub, call())
    assert e.value.code == "internal_error"
    monkeypatch.setattr(py.store, "check", broken)
    out = py.guard({"public_key": pub}).check({"headers": {"authorization": f"Bearer {token}"}, "body": json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "db_query"}})}, NOW)
    assert not out["allowed"] and out["status"] == 500 and out["decisions"][0]["code"] == "internal_error"
    assert "disk on fire" in out["decisions"][0]["detail"]


def test_unknown_store(vault):
    for spec in ("postgres://x", "sqlite", 5):
        with pytest.raises(McpVaultError) as e:
            MCPVault(store=spec)
        assert e.value.code == "invalid_request"


def test_audit_verify_without_entries_needs_a_store(vault):
    with pytest.raises(McpVaultError) as e:
        vault.audit_verify()
    assert e.value.code == "invalid_request"


def test_python_readme_store_and_guard_blocks_run(vault, keys, tmp_path):
    """python/README.md's store and guard examples, executed (with a temporary file and stand-ins for the server)."""
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    store_block = next(b for b in blocks if "vault.revoke(" in b)
    guard_block = next(b for b in blocks if "vault.guard(" in b)
    priv, pub = keys
    token, other = mint(vault, priv), mint(vault, priv)
    ns = {"MCPVault": MCPVault, "token": token, "pub_key": pub,
          "revocation_id": vault.inspect(other)["revocation_ids"][0]}
    exec(store_block.replace("/var/lib/mcpvault/store.db", str(tmp_path / "store.db")), ns)
    assert ns["vault"].audit_verify()["entries"] == 1
    sent, handled = [], []
    ns.update(send=lambda *a: sent.append(a), handle=lambda m: handled.append(m) or {"content": []},
              raw_body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                   "params": {"name": "db_query", "arguments": {}}}))
    exec(guard_block, ns)
    assert handled and not sent
    ns["token"] = other  # revoked above
    exec(guard_block, ns)
    assert sent[0][0] == 401 and sent[0][2]["error"]["data"]["code"] == "revoked"


@pytest.mark.parametrize("spec", ["memory", "sqlite", "redis"])
def test_quotas_are_counted_and_shared_by_a_derived_token(vault, keys, spec, tmp_path, request):
    priv, pub = keys
    if spec == "sqlite":
        spec = f"sqlite:{tmp_path / 'q.db'}"
    elif spec == "redis":
        spec = request.getfixturevalue("redis_url")
        import redis
        redis.Redis.from_url(spec).flushdb()
    py = MCPVault(store=spec)
    token = vault.mint(priv, {"tools": ["db_query", "pay"], "ttl": 3600, "issuer": "i", "subject": "s",
                              "rate": {"max": 2, "period": 60},
                              "budget": [{"tool": "pay", "arg": "amount", "max": 10, "period": 86400}]}, now=NOW)
    child = vault.attenuate(token, {"rate": {"tool": "db_query", "max": 5, "period": 60}}, now=NOW)
    assert [q["kind"] for q in py.verify(child, pub, call())["quotas"]] == ["rate", "budget", "rate"]
    py.verify(child, pub, call(table="a"), request_id="1")
    with pytest.raises(McpVaultError) as e:  # the parent's 2 per minute: the child asked for 5, it spends the parent's
        py.verify(child, pub, call(table="c"), request_id="3")
    assert e.value.code == "rate_limited"
    pay = {"tool": "pay", "arguments": {"amount": 7.5}, "now": NOW + 61}
    py.verify(token, pub, pay, request_id="4")
    with pytest.raises(McpVaultError) as e:
        py.verify(token, pub, {**pay, "arguments": {"amount": 3}}, request_id="5")
    assert e.value.code == "budget_exceeded"
    with pytest.raises(McpVaultError) as e:
        vault.mint(priv, {"tools": ["pay"], "ttl": 60, "issuer": "i", "subject": "s", "rate": {"max": 0, "period": 1}})
    assert e.value.code == "invalid_request"
    with pytest.raises(McpVaultError) as e:
        vault.mint(priv, {"tools": ["pay"], "ttl": 60, "issuer": "i", "subject": "s", "rate": [{"max": 1}]})
    assert e.value.code == "invalid_request"


def test_memory_store_keeps_the_newest_audit_entries():
    # the core's MEMORY_AUDIT_KEEP to twice it, the newest last: the chain goes on from the newest entry
    from mcpvault.store import MEMORY_AUDIT_KEEP, MemoryStore

    assert MEMORY_AUDIT_KEEP == 10_000
    store = MemoryStore()
    n = 2 * MEMORY_AUDIT_KEEP + 5
    for _ in range(n):
        store.append_audit(lambda prev: json.dumps({"seq": json.loads(prev)["seq"] + 1 if prev else 1}))
    kept = [json.loads(line)["seq"] for line in store.audit_lines()]
    assert MEMORY_AUDIT_KEEP <= len(kept) < 2 * MEMORY_AUDIT_KEEP
    assert kept == list(range(n - len(kept) + 1, n + 1))


def test_sqlite_store_recovers_from_a_failed_commit(tmp_path):
    # a COMMIT that fails (disk full, an I/O error) refuses that request only: the shared connection is left with
    # no open transaction, so the next request's BEGIN IMMEDIATE works
    import sqlite3

    from mcpvault.store import SqliteStore

    store = SqliteStore(str(tmp_path / "c.db"))
    real = store._db

    class FailingCommit:
        failed = False

        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql == "COMMIT" and not FailingCommit.failed:
                FailingCommit.failed = True
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

    store._db = FailingCommit()
    with pytest.raises(sqlite3.OperationalError):
        store.revoke("a" * 128, 1)
    store.revoke("b" * 128, 1)
    assert not real.in_transaction
    rows = {r[0] for r in real.execute("SELECT id FROM mcpvault_revoked")}
    assert rows == {"b" * 128}


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_sweep_at_a_clock_set_far_ahead_keeps_what_is_still_due(vault, keys, tmp_path, kind):
    # a request decided at a clock far ahead (a test clock, a host clock that jumped) sweeps nothing still due by
    # SQLite's own clock: the spent nonce outlives it, so the token does not run again when time comes back
    import time

    priv, pub = keys
    real = int(time.time())
    py = MCPVault(store=f"sqlite:{tmp_path / 'jump.db'}" if kind == "sqlite" else "memory")
    grant = {"tools": ["db_query"], "ttl": 3600, "issuer": "i", "subject": "s", "single_use": True}
    once = vault.mint(priv, grant, now=real)
    py.verify(once, pub, {"tool": "db_query", "now": real}, request_id="1")
    later = real + 10 * 365 * 86400
    py.verify(vault.mint(priv, grant, now=later), pub, {"tool": "db_query", "now": later}, request_id="2")
    with pytest.raises(McpVaultError) as e:
        py.verify(once, pub, {"tool": "db_query", "now": real + 5}, request_id="3")
    assert e.value.code == "replayed"


def test_redis_audit_append_redis_refuses_writes_nothing(redis_url):
    # audit.lua: the list key holding another type is an error with nothing written (EXEC used to move the head anyway)
    import redis
    from mcpvault.store import RedisStore

    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    store = RedisStore(redis_url)
    line = lambda prev: json.dumps({"seq": json.loads(prev)["seq"] + 1 if prev else 1})  # noqa: E731
    store.append_audit(line)
    head = r.get("mcpvault:audit:head")
    r.delete("mcpvault:audit")
    r.set("mcpvault:audit", "not a list")
    with pytest.raises(redis.ResponseError):
        store.append_audit(line)
    assert r.get("mcpvault:audit:head") == head and r.get("mcpvault:audit") == b"not a list"
    r.delete("mcpvault:audit")
    assert json.loads(store.append_audit(line))["seq"] == 2  # the chain goes on from the head the list took
