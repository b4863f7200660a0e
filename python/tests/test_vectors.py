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
