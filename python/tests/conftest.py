import pathlib

import pytest

from mcpvault import MCPVault

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors").glob("*.json"))


@pytest.fixture(scope="session")
def vault():
    return MCPVault()
