"""mcpvault's Python package against the `tenuo` wheel, in one process (issue 19, item 4).

    python bench/python_vs_tenuo.py OUT.json [--component PATH] [--quick]

Measures, interleaved round by round so that a drift in the machine's speed cancels within a round:
- mcpvault, cold: `MCPVault().verify` (no cache: every signature checked on every call), on the package's default
  build (the native extension when installed; with --component, the component at PATH);
- mcpvault, cached: `MCPVault(cache=1024).verify` of a token it verified before;
- mcpvault, holder-bound: a token bound to a holder key and the call's proof (`sign_call`), cold and cached: the
  like-for-like of tenuo's proof of possession (two signatures cold, the proof's alone cached);
- with the extension: the same cold and cached verify on the component alone (`backend="component"`);
- mcpvault, before: the component's free, typed `verify`, which `MCPVault.verify` called before the resource;
- tenuo: `Authorizer.authorize_one(warrant, tool, args, signature=pop)` (the warrant parsed once, its proof of
  possession signed once), and the same after parsing the warrant from its text, as a server receives it.
The same call on both sides: one tool, one argument limited to a prefix (`/data/`), at 0 and 1 attenuation blocks
(tenuo: a root warrant; `authorize_one` takes one warrant). Writes medians of the per-round figures (µs per call)
and the median of the per-round ratios mcpvault ÷ tenuo. Without tenuo importable, writes mcpvault alone and why.
"""
from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import sys
import time


def per_call_us(f, n):
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out = args[0]
    component = args[args.index("--component") + 1] if "--component" in args else None
    quick = "--quick" in args
    rounds = 7 if quick else 15

    import mcpvault
    from mcpvault import MCPVault

    path = component or mcpvault.COMPONENT_PATH
    backend = "component" if component or mcpvault._native is None else "native"
    cold = MCPVault(path, backend=backend)
    cached = MCPVault(path, cache=1024, backend=backend)
    priv, pub = cold.generate_keypair()
    grant = {"tools": ["read_file"], "ttl": 3600, "issuer": "bench", "subject": "agent",
             "arg_limits": [{"tool": "read_file", "arg": "path", "op": "prefix", "value": "/data/"}]}
    call_args = {"path": "/data/report.txt"}
    req = {"tool": "read_file", "arguments": call_args}
    tokens = {0: cold.mint(priv, grant)}
    tokens[1] = cold.attenuate(tokens[0], {"tools": ["read_file"]})
    for d, tok in tokens.items():
        # same answers both ways before anything is timed
        assert cold.verify(tok, pub, req) == cached.verify(tok, pub, req), d
        assert cached.verify(tok, pub, req)["depth"] == d

    cases = {}
    # what MCPVault.verify called before the verifier resource: the free, typed `verify` (records both ways)
    fields = cold._request_fields(req)
    cases["mcpvault_typed_0"] = (lambda: cold._verify_typed(tokens[0], pub, fields), 30 if quick else 60)
    for d, tok in tokens.items():
        cases[f"mcpvault_cold_{d}"] = (lambda tok=tok: cold.verify(tok, pub, req), 30 if quick else 60)
        cases[f"mcpvault_cached_{d}"] = (lambda tok=tok: cached.verify(tok, pub, req), 300 if quick else 600)
    # holder-bound: the proof is signed once per round (it is fresh for 60 s; without a store it is checked, not
    # spent), so every call checks it, as tenuo checks its proof of possession
    holder_priv, holder_pub = cold.generate_keypair()
    bound = cold.mint(priv, dict(grant, holder=holder_pub))
    proofs = {}

    def sign() -> None:
        proofs["req"] = dict(req, proof=cold.sign_call(bound, holder_priv, tool="read_file", arguments=call_args))

    sign()
    assert cold.verify(bound, pub, proofs["req"])["holder"] == holder_pub
    for bad in (req, dict(req, arguments={"path": "/data/other"}, proof=proofs["req"]["proof"])):
        try:
            cold.verify(bound, pub, bad)
        except mcpvault.McpVaultError:
            pass
        else:
            raise SystemExit("mcpvault allowed a call its proof does not cover")
    cases["mcpvault_proof_cold_0"] = (lambda: cold.verify(bound, pub, proofs["req"]), 30 if quick else 60)
    cases["mcpvault_proof_cached_0"] = (lambda: cached.verify(bound, pub, proofs["req"]), 100 if quick else 200)
    if backend == "native":
        wasm_cold = MCPVault(path, backend="component")
        wasm_cached = MCPVault(path, cache=1024, backend="component")
        assert wasm_cold.verify(tokens[0], pub, req) == cold.verify(tokens[0], pub, req)
        cases["component_cold_0"] = (lambda: wasm_cold.verify(tokens[0], pub, req), 30 if quick else 60)
        cases["component_cached_0"] = (lambda: wasm_cached.verify(tokens[0], pub, req), 300 if quick else 600)

    result = {
        "backend": backend,
        "python": platform.python_version(),
        "wasmtime": _version("wasmtime"),
        "component": {"raw": os.path.getsize(path), "gzip": len(gzip.compress(open(path, "rb").read(), 9))},
        "rounds": rounds,
        "tenuo": None,
    }
    try:
        import tenuo  # noqa: F401
        from tenuo import Pattern, SigningKey, Warrant
        from tenuo_core import Authorizer
    except ImportError as e:
        result["tenuo_missing"] = f"{type(e).__name__}: {e}"
    else:
        issuer, agent = SigningKey.generate(), SigningKey.generate()
        warrant = (Warrant.mint_builder().capability("read_file", path=Pattern("/data/*"))
                   .holder(agent.public_key).ttl(3600).mint(issuer))
        text = warrant.to_base64()
        auth = Authorizer(trusted_roots=[issuer.public_key])
        pop = bytes(warrant.sign(agent, "read_file", call_args, int(time.time())))
        auth.authorize_one(warrant, "read_file", call_args, signature=pop)
        # the proof is checked: a call it does not sign, or none, is refused
        for bad in ({"args": {"path": "/data/other"}, "signature": pop}, {"args": call_args}):
            try:
                auth.authorize_one(warrant, "read_file", bad["args"], signature=bad.get("signature"))
            except Exception:
                pass
            else:
                raise SystemExit("tenuo allowed a call its proof does not cover")
        cases["tenuo_authorize_one"] = (
            lambda: auth.authorize_one(warrant, "read_file", call_args, signature=pop), 100 if quick else 200)
        cases["tenuo_parse_authorize_one"] = (
            lambda: auth.authorize_one(Warrant.from_base64(text), "read_file", call_args, signature=pop),
            100 if quick else 200)
        result["tenuo"] = {"version": _version("tenuo"), "warrant_chars": len(text)}
    result["token_chars"] = {d: len(t) for d, t in tokens.items()}

    for f, n in cases.values():  # warm-up
        per_call_us(f, max(n // 10, 5))
    samples = {k: [] for k in cases}
    for _ in range(rounds):
        sign()
        for k, (f, n) in cases.items():
            samples[k].append(per_call_us(f, n))
    result["us"] = {k: statistics.median(v) for k, v in samples.items()}
    if result["tenuo"] is not None:
        base = samples["tenuo_authorize_one"]
        result["ratio_to_tenuo"] = {
            k: statistics.median(a / b for a, b in zip(v, base)) for k, v in samples.items() if not k.startswith("tenuo")}
    result["stats_cached"] = cached.cache_stats()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    for k, v in result["us"].items():
        r = result.get("ratio_to_tenuo", {}).get(k)
        print(f"{k:28} {v:9.1f} µs" + (f"   {r:.2f}× tenuo's authorize_one" if r is not None else ""))
    if result["tenuo"] is None:
        print("tenuo not measured:", result["tenuo_missing"])


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
