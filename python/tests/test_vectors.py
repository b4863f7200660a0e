"""Every shared vector, through the component, gives the native runner's answer."""
import json

import pytest

from conftest import VECTORS
from mcpvault import McpVaultError


def test_there_are_vectors():
    assert len(VECTORS) >= 40


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(vault, path):
    case = json.loads(path.read_text())
    assert case["operation"] == "verify"
    req = dict(case["request"])
    req["now"] = case["now"]
    expect = case["expect"]
    try:
        got = {"ok": vault.verify(case["token"], case["public_key"], req)}
    except McpVaultError as e:
        got = {"error": e.code}
    assert got == expect


AUDIT = sorted((VECTORS[0].parent / "audit").glob("*.json")) if VECTORS else []


def test_there_are_audit_vectors():
    assert len(AUDIT) >= 8


@pytest.mark.parametrize("path", AUDIT, ids=[p.stem for p in AUDIT])
def test_audit_vector(vault, path):
    """The audit chain and call keys through the component: the same bytes as every other host."""
    case = json.loads(path.read_text())
    if case["operation"] == "audit_append":
        entries = []
        for r in case["records"]:
            entries.append(vault.audit_append(entries[-1] if entries else None, r))
        assert {"entries": entries} == case["expect"]
    elif case["operation"] == "audit_verify":
        out = vault.audit_verify(case["entries"])
        got = {"break": out["break"]} if "break" in out else {"ok": out}
        assert got == case["expect"]
    else:
        assert case["operation"] == "call_key"
        assert vault.call_key(case["request_id"], case["method"], case["tool"], case["arguments"]) == case["expect"]
