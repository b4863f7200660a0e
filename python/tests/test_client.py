"""Holder-bound tokens from Python: MCPVault.sign_call (the component's sign-call: the host's clock and os.urandom)
checked by the core (verify with a proof, without and with a store) and by the CLI, and the CLI's proofs by Python;
with_mcpvault_client on the MCP SDK's Client, in process against with_mcpvault (the same token without the key is
refused proof_required, another key's proofs bad_proof) and over Streamable HTTP (uvicorn on 127.0.0.1)."""
import json
import subprocess
import time

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpvault import MCPVault, McpVaultError
from mcpvault.mcp import CHECK_TOOL, PROOF_HEADER, PROOF_META_KEY, TOKEN_META_KEY, with_mcpvault_client
from test_mcp import _post, _ran, code_of, http_server, make_server  # noqa: F401 (http_server: a fixture)

ARGS = {"sql": "select 1", "max_rows": 5}
LIMIT = {"tool": "db_query", "arg": "max_rows", "op": "max", "value": 100}


def bound(keys, holder, **extra):
    """A token for db_query (max_rows <= 100), the prompt greeting and the resources under file:///srv/, bound to
    the holder's key."""
    grant = {"tools": ["db_query"], "ttl": 600, "issuer": "auth-server", "subject": "agent-a", "holder": holder[1],
             "resources": ["file:///srv/*"], "prompts": ["greeting"], "arg_limits": [LIMIT], **extra}
    return MCPVault().mint(keys[0], grant)


def refused(fn):
    with pytest.raises(McpVaultError) as e:
        fn()
    return e.value.code


def test_a_python_proof_verifies_in_the_core_for_its_call_only(keys, holder, thief):
    v = MCPVault()
    token = bound(keys, holder)
    now = int(time.time())
    proof = v.sign_call(token, holder[0], tool="db_query", arguments=ARGS)
    mvp, iat, nonce, sig = proof.split(".")
    assert (mvp, len(nonce), len(sig)) == ("mvp1", 32, 86)
    assert abs(int(iat) - now) <= 2
    facts = v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS, "proof": proof})
    assert (facts["tool"], facts["holder"]) == ("db_query", holder[1])
    # canonical arguments: another key order and spacing is the same call
    assert v.verify(token, keys[1], {"tool": "db_query", "arguments": json.dumps({"max_rows": 5, "sql": "select 1"},
                                                                               indent=2), "proof": proof})["verified"]
    # no proof, another call, another key, another audience, too late or too early
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS})) == "proof_required"
    for req in ({"tool": "db_query", "arguments": {**ARGS, "max_rows": 6}},
                {"tool": "db_query", "arguments": ARGS, "audience": "db-server"},
                {"method": "prompts/get", "prompt": "greeting"}):
        assert refused(lambda: v.verify(token, keys[1], {**req, "proof": proof})) == "bad_proof", req
    stolen = v.sign_call(token, thief[0], tool="db_query", arguments=ARGS)
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS, "proof": stolen})) == \
        "bad_proof"
    for at in (now + 61 + 5, now - 6 - 5):
        assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS, "proof": proof,
                                                         "now": at})) == "proof_expired"
    old = v.sign_call(token, holder[0], tool="db_query", arguments=ARGS, now=now - 120)
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS, "proof": old})) == \
        "proof_expired"
    # every proof has its own nonce (os.urandom)
    assert len({v.sign_call(token, holder[0], tool="db_query", arguments=ARGS).split(".")[2] for _ in range(20)}) == 20
    # a proof proves nothing more: the token's limits hold
    big = {**ARGS, "max_rows": 1000}
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": big, "proof": v.sign_call(
        token, holder[0], tool="db_query", arguments=big)})) == "argument_not_allowed"


def test_proofs_of_resources_prompts_and_audiences(keys, holder):
    v = MCPVault()
    token = bound(keys, holder, audience="db-server")
    read = v.sign_call(token, holder[0], method="resources/read", name="file:///srv/a", audience="db-server")
    assert v.verify(token, keys[1], {"method": "resources/read", "resource": "file:///srv/a", "audience": "db-server",
                                     "proof": read})["holder"] == holder[1]
    assert refused(lambda: v.verify(token, keys[1], {"method": "resources/read", "resource": "file:///srv/b",
                                                     "audience": "db-server", "proof": read})) == "bad_proof"
    prompt = v.sign_call(token, holder[0], method="prompts/get", name="greeting", audience="db-server")
    assert v.verify(token, keys[1], {"method": "prompts/get", "prompt": "greeting", "audience": "db-server",
                                     "proof": prompt})["verified"]
    listing = v.sign_call(token, holder[0], method="tools/list", audience="db-server")
    assert v.verify(token, keys[1], {"method": "tools/list", "audience": "db-server", "proof": listing})["verified"]
    no_aud = v.sign_call(token, holder[0], method="tools/list")
    assert refused(lambda: v.verify(token, keys[1], {"method": "tools/list", "audience": "db-server",
                                                     "proof": no_aud})) == "bad_proof"


def test_sign_call_refuses_bad_input(keys, holder):
    v = MCPVault()
    token = bound(keys, holder)
    assert refused(lambda: v.sign_call(token, "nothex", tool="db_query")) == "invalid_key"
    assert refused(lambda: v.sign_call("garbage", holder[0], tool="db_query")) == "malformed_token"
    assert refused(lambda: v.sign_call(token, holder[0], tool="a", name="b")) == "invalid_request"
    assert refused(lambda: v.sign_call(token, holder[0], tool="db_query", arguments=[1])) == "invalid_request"
    assert refused(lambda: v.sign_call(token, holder[0], method="")) == "invalid_request"
    assert refused(lambda: v.sign_call(token, holder[0], tool="db_query", now=-1)) == "invalid_request"
    # the WIT function itself: the nonce is exactly 16 bytes from the host
    for n in (b"", b"\x00" * 15, b"\x00" * 17):
        assert refused(lambda: v._call("sign-call", token, holder[0], "tools/call", "db_query", None, None, 1, n)) \
            == "invalid_request"
    fixed = v._call("sign-call", token, holder[0], "tools/call", "db_query", None, None, 1800000000, bytes(range(16)))
    assert fixed.startswith("mvp1.1800000000.000102030405060708090a0b0c0d0e0f.")


def test_with_a_store_a_proof_is_spent_once(keys, holder):
    v = MCPVault(store="memory")
    token = bound(keys, holder)
    proof = v.sign_call(token, holder[0], tool="db_query", arguments=ARGS)
    req = {"tool": "db_query", "arguments": ARGS, "proof": proof}
    assert v.verify(token, keys[1], req, request_id="1")["holder"] == holder[1]
    assert refused(lambda: v.verify(token, keys[1], req, request_id="2")) == "replayed"
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS},
                                    request_id="3")) == "proof_required"
    fresh = v.sign_call(token, holder[0], tool="db_query", arguments=ARGS)
    assert v.verify(token, keys[1], {**req, "proof": fresh}, request_id="4")["tool"] == "db_query"


def test_the_cli_verifies_python_proofs_and_python_the_clis(cli, keys, holder, tmp_path):
    v = MCPVault()
    key_file = tmp_path / "holder.json"
    subprocess.run([cli, "keygen", "--out", str(key_file)], check=True, capture_output=True)
    cli_holder = json.loads(key_file.read_text())
    token = bound(keys, ("", cli_holder["public_key"]))
    args = json.dumps(ARGS)
    mine = v.sign_call(token, cli_holder["private_key"], tool="db_query", arguments=ARGS)
    # the CLI's verify runs the guard, which spends a proof in a store (none: a holder-bound call is refused)
    verify = [cli, "verify", "--token", token, "--pubkey", keys[1], "--tool", "db_query", "--store",
              f"sqlite:{tmp_path / 'vault.db'}", "--proof", mine, "--args"]
    out = subprocess.run(verify + [json.dumps({**ARGS, "max_rows": 6})], capture_output=True, text=True)
    assert out.returncode == 1 and "bad_proof" in out.stderr, out.stderr
    out = subprocess.run(verify + [args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["holder"] == cli_holder["public_key"]
    out = subprocess.run(verify + [args, "--request-id", "other"], capture_output=True, text=True)
    assert out.returncode == 1 and "replayed" in out.stderr, out.stderr
    theirs = subprocess.run([cli, "sign-call", "--key", str(key_file), "--token", token, "--tool", "db_query",
                             "--args", args], capture_output=True, text=True, check=True).stdout.strip()
    assert v.verify(token, keys[1], {"tool": "db_query", "arguments": ARGS, "proof": theirs})["verified"]
    assert refused(lambda: v.verify(token, keys[1], {"tool": "db_query", "arguments": {}, "proof": theirs})) == \
        "bad_proof"


def test_the_signed_target_is_the_guards_rule(vault):
    """The client signs what the core's call_target answers (the guard's own rule, not a copy in Python)."""
    t = vault.call_target
    assert t({"method": "tools/call", "params": {"name": "db_query", "arguments": ARGS}}) == \
        {"method": "tools/call", "name": "db_query", "arguments": ARGS}
    assert t({"method": "tools/call", "params": {"name": "db_query"}}) == \
        {"method": "tools/call", "name": "db_query", "arguments": {}}
    assert t({"method": "tools/call", "params": {"name": CHECK_TOOL, "arguments": {"tool": "x"}}}) == \
        {"method": "mcpvault/check", "arguments": {}}
    assert t({"method": "resources/read", "params": {"uri": "file:///a"}}) == \
        {"method": "resources/read", "name": "file:///a", "arguments": {}}
    assert t({"method": "resources/subscribe", "params": {"uri": "file:///a"}})["name"] == "file:///a"
    assert t({"method": "prompts/get", "params": {"name": "greeting", "arguments": {"a": "b"}}}) == \
        {"method": "prompts/get", "name": "greeting", "arguments": {}}
    assert t({"method": "tools/list", "params": {"cursor": "c"}}) == {"method": "tools/list", "arguments": {}}
    assert t({"method": "notifications/initialized"}) == {"method": "notifications/initialized", "arguments": {}}
    for bad in ({"method": "tools/call", "params": {}}, {"params": {}}, {"method": "resources/read"}):
        with pytest.raises(McpVaultError) as e:
            t(bad)
        assert e.value.code == "invalid_request"


def test_a_proof_of_a_message_is_a_proof_of_its_call(vault):
    priv, pub = vault.generate_keypair()
    hpriv, hpub = vault.generate_keypair()
    token = vault.mint(priv, {"tools": ["db_query"], "ttl": 60, "issuer": "i", "subject": "s", "holder": hpub})
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "db_query", "arguments": ARGS}}
    proof = vault.sign_call(token, hpriv, message=message)
    assert vault.verify(token, pub, {"tool": "db_query", "arguments": ARGS, "proof": proof})["holder"] == hpub
    assert vault.request_hash(token, message=message) == vault.request_hash(token, tool="db_query", arguments=ARGS)
    with pytest.raises(McpVaultError) as e:
        vault.sign_call(token, hpriv, message=message, tool="db_query")
    assert e.value.code == "invalid_request"


def guarded(keys, seen=None, **options):
    """test_mcp's server (tools, the resource file:///srv/readme, the prompt greeting) on a memory store."""
    return make_server(keys[1], seen, store="memory", check_tool=True, **options)


async def exercise(c):
    """Everything a holder-bound token's client does, each message with its own proof; the token's limits hold."""
    for i in range(3):
        result = await c.call_tool("db_query", {"sql": "s", "max_rows": i + 1})
        assert result.content[0].text == f"db_query ok s {i + 1}"
    assert [t.name for t in (await c.list_tools(cache_mode="refresh")).tools] == ["db_query", CHECK_TOOL]
    assert (await c.read_resource("file:///srv/readme", cache_mode="refresh")).contents[0].text == "public readme"
    assert (await c.get_prompt("greeting")).messages[0].content.text == "hello"
    dry = await c.call_tool(CHECK_TOOL, {"tool": "db_query", "arguments": ARGS})
    # the dry run is authorized with the check's own proof; the call it asks about carries none
    assert dry.structured_content["code"] == "proof_required"
    assert await code_of(c.call_tool("db_query", {"sql": "s", "max_rows": 1000})) == (-32013, "argument_not_allowed")
    assert await code_of(c.call_tool("admin_delete", {"id": "1"})) == (-32013, "tool_not_allowed")
    assert await code_of(c.read_resource("file:///etc/passwd", cache_mode="refresh")) == \
        (-32013, "resource_not_allowed")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_in_process_the_wrapped_client_calls_a_holder_bound_tokens_tools(keys, holder, mode):
    seen, decisions = [], []
    mcp = guarded(keys, seen, on_decision=decisions.append)
    token = bound(keys, holder)

    async def main():
        async with with_mcpvault_client(Client(mcp, mode=mode), token=token, holder_key=holder[0]) as c:
            await exercise(c)

    anyio.run(main)
    # the handler ran for the allowed calls, saw neither the token nor a proof, and read the holder in the facts
    assert [(s["sql"], s["max_rows"]) for s in seen] == [("s", 1), ("s", 2), ("s", 3)]
    assert all(s["facts"]["holder"] == holder[1] and "proof_nonce" in s["facts"] for s in seen)
    assert len({s["facts"]["proof_nonce"] for s in seen}) == 3
    assert not any(d["code"] in ("proof_required", "bad_proof", "replayed") for d in decisions)


def test_in_process_without_the_key_proof_required_with_another_bad_proof(keys, holder, thief):
    seen = []
    mcp = guarded(keys, seen)
    token = bound(keys, holder)

    async def main():
        async with with_mcpvault_client(Client(mcp), token=token) as c:
            assert await code_of(c.call_tool("db_query", {"sql": "s"})) == (-32011, "proof_required")
            assert await code_of(c.list_tools(cache_mode="refresh")) == (-32011, "proof_required")
            assert await code_of(c.get_prompt("greeting")) == (-32011, "proof_required")
        async with with_mcpvault_client(Client(mcp), token=token, holder_key=thief[0]) as c:
            assert await code_of(c.call_tool("db_query", {"sql": "s"})) == (-32011, "bad_proof")
        async with Client(mcp) as c:
            assert await code_of(c.call_tool("db_query", {"sql": "s"})) == (-32011, "missing_token")
        # a bearer token (no holder) needs no key: the wrapper only adds it
        plain = MCPVault().mint(keys[0], {"tools": ["db_query"], "ttl": 60, "issuer": "i", "subject": "s"})
        async with with_mcpvault_client(Client(mcp), token=plain) as c:
            assert (await c.call_tool("db_query", {"sql": "b"})).content[0].text == "db_query ok b 10"

    anyio.run(main)
    assert [s["sql"] for s in seen] == ["b"]


def test_in_process_the_proof_binds_the_servers_audience(keys, holder):
    mcp = guarded(keys, audience="db-server")
    token = bound(keys, holder, audience="db-server")

    async def main():
        async with with_mcpvault_client(Client(mcp), token=token, holder_key=holder[0], audience="db-server") as c:
            assert (await c.call_tool("db_query", {"sql": "s", "max_rows": 1})).content[0].text == "db_query ok s 1"
        async with with_mcpvault_client(Client(mcp), token=token, holder_key=holder[0]) as c:
            assert await code_of(c.call_tool("db_query", {"sql": "s", "max_rows": 1})) == (-32011, "bad_proof")

    anyio.run(main)


def test_in_process_a_sent_message_sent_again_is_replayed(keys, holder):
    """What the wrapper sends, copied from a log and sent by another client (another request id): its proof is
    spent."""
    v = MCPVault(store="memory")
    mcp = make_server(keys[1], vault=v)
    token = bound(keys, holder)
    sent = []

    async def main():
        client = with_mcpvault_client(Client(mcp), token=token, holder_key=holder[0])
        async with client as c:
            inner = c.session._dispatcher._inner
            send = inner.send_raw_request

            async def capture(method, params, opts=None):
                sent.append((method, json.loads(json.dumps(params)), opts))
                return await send(method, params, opts)

            inner.send_raw_request = capture
            await c.call_tool("db_query", {"sql": "s", "max_rows": 1})
            await c.call_tool("db_query", {"sql": "t", "max_rows": 1})
        method, params, opts = sent[-1]
        assert method == "tools/call"
        assert params["_meta"][TOKEN_META_KEY] == token
        assert opts["headers"][PROOF_HEADER] == params["_meta"][PROOF_META_KEY]
        # the proof is one of that call (checked by a vault without a store: the server's spent it)
        assert MCPVault().verify(token, keys[1], {"tool": "db_query", "arguments": params["arguments"],
                                                  "proof": params["_meta"][PROOF_META_KEY]})["holder"] == holder[1]
        async with Client(mcp) as c:
            assert await code_of(c.call_tool("db_query", params["arguments"], meta=params["_meta"])) == \
                (-32011, "replayed")

    anyio.run(main)
    # the two calls (and the SDK's own tools/list after the first, for the output schemas), a proof each
    assert [m for m, _, _ in sent if m == "tools/call"] == ["tools/call", "tools/call"]
    assert len({p["_meta"][PROOF_META_KEY] for _, p, _ in sent}) == len(sent)


def test_with_mcpvault_client_checks_its_arguments(keys, holder):
    mcp = guarded(keys)
    for kwargs, message in [({"token": ""}, "token"), ({"token": 7}, "token"),
                            ({"token": "t", "holder_key": 7}, "holder_key"),
                            ({"token": "t", "audience": ""}, "audience"),
                            ({"token": "t", "vault": object()}, "vault")]:
        with pytest.raises(TypeError, match=message):
            with_mcpvault_client(Client(mcp), **kwargs)
    with pytest.raises(TypeError, match="mcp.Client"):
        with_mcpvault_client(object(), token="t")
    c = with_mcpvault_client(Client(mcp), token="t")
    with pytest.raises(TypeError, match="already applied"):
        with_mcpvault_client(c, token="t")

    async def main():
        async with Client(mcp) as entered:
            with pytest.raises(TypeError, match="before entering"):
                with_mcpvault_client(entered, token="t")

    anyio.run(main)


def test_http_the_wrapped_client_through_both_layers(keys, holder, thief, http_server, tmp_path):
    """guarded_server.py over Streamable HTTP (the HTTP layer, then the message layer, which spends the proof)."""
    token = bound(keys, holder, audience="db-server")

    async def main():
        for mode in ("auto", "legacy"):
            async with httpx2.AsyncClient() as hc:
                client = Client(streamable_http_client(http_server, http_client=hc), mode=mode)
                async with with_mcpvault_client(client, token=token, holder_key=holder[0], audience="db-server") as c:
                    assert (await c.call_tool("db_query", {"sql": mode, "max_rows": 2})).content[0].text == \
                        f"db_query ok {mode} 2 "
                    assert await code_of(c.call_tool("db_query", {"sql": "x", "max_rows": 1000})) == \
                        (-32013, "argument_not_allowed")
        for key, code in ((None, "proof_required"), (thief[0], "bad_proof")):
            async with httpx2.AsyncClient() as hc:
                client = with_mcpvault_client(Client(streamable_http_client(http_server, http_client=hc)), token=token,
                                              holder_key=key, audience="db-server")
                with pytest.raises(BaseException) as e:
                    async with client:
                        pass
                assert code in repr(e.value)

    anyio.run(main)
    assert _ran(tmp_path) == ["db_query auto 2  agent-a", "db_query legacy 2  agent-a"]


def test_http_a_meta_proof_alone_reaches_the_message_layer(keys, holder, http_server, tmp_path):
    """A client that sends the proof in _meta only (npm's withMcpVaultClient without mcpVaultFetch): the HTTP layer
    hands it to the message layer, which spends it; sent again, it is replayed."""
    v = MCPVault()
    token = bound(keys, holder, audience="db-server")
    version = {"Mcp-Protocol-Version": "2025-11-25"}

    def meta(method, **call):
        return {"token": token, PROOF_META_KEY: v.sign_call(token, holder[0], method=method, audience="db-server",
                                                            **call)}

    init = _post(http_server, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"},
        "_meta": meta("initialize")}})
    assert init.status_code == 200, init.text
    session = {**version, "Mcp-Session-Id": init.headers["mcp-session-id"]}
    r = _post(http_server, {"jsonrpc": "2.0", "method": "notifications/initialized",
                            "params": {"_meta": meta("notifications/initialized")}}, **session)
    assert r.status_code == 202, r.text
    args = {"sql": "meta", "max_rows": 1}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "db_query", "arguments": args, "_meta": meta("tools/call", tool="db_query",
                                                                             arguments=args)}}
    r = _post(http_server, call, **session)
    assert r.status_code == 200, r.text
    assert "db_query ok meta 1" in r.text
    r = _post(http_server, {**call, "id": 2}, **session)
    assert "replayed" in r.text
    assert _ran(tmp_path) == ["db_query meta 1  agent-a"]


def _readme_block(heading):
    import pathlib
    import re
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    return re.search(re.escape(heading) + r".*?```python\n(.*?)```", readme, re.S).group(1)


def test_the_readme_holder_block_runs_as_written(keys):
    """python/README.md's holder-bound block: every line but the last runs, the last raises as its comment says."""
    block = _readme_block("## Holder-bound tokens: a proof with every call")
    lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    env = {"vault": MCPVault(), "priv_key": keys[0], "pub_key": keys[1]}
    exec("\n".join(lines[:-1]), env)
    assert env["proof"].startswith("mvp1.")
    with pytest.raises(McpVaultError) as e:
        exec(lines[-1], env)
    assert e.value.code == "proof_required"


def test_the_readme_client_block_runs_against_a_guarded_server(keys, holder, http_server, tmp_path):
    """python/README.md's with_mcpvault_client block, against guarded_server.py over Streamable HTTP."""
    block = _readme_block("## Clients of the official MCP SDK: `with_mcpvault_client`")
    assert "http://127.0.0.1:8000/mcp" in block
    code = "async def readme():\n" + "".join(
        f"    {line}\n" for line in block.replace("http://127.0.0.1:8000/mcp", http_server).splitlines())
    env = {"token": bound(keys, holder, audience="db-server", arg_limits=[]), "holder_priv": holder[0]}
    exec(code, env)
    anyio.run(env["readme"])
    assert _ran(tmp_path) == ["db_query select 1 10  agent-a"]
