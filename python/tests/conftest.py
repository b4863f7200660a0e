import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

from mcpvault import MCPVault

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors").glob("*.json"))
STATE = sorted((ROOT / "tests" / "vectors" / "state").glob("*.json"))


@pytest.fixture(scope="session")
def vault():
    return MCPVault()


# Key pairs a test module signs with: one each per module (a module that needs another kind defines its own).
@pytest.fixture(scope="module")
def keys():
    return MCPVault().generate_keypair()


@pytest.fixture(scope="module")
def holder():
    return MCPVault().generate_keypair()


@pytest.fixture(scope="module")
def thief():
    return MCPVault().generate_keypair()


@pytest.fixture(scope="session")
def cli():
    """The mcpvault CLI (`cargo build --bin mcpvault`): $MCPVAULT_CLI, else the debug build."""
    path = os.environ.get("MCPVAULT_CLI") or str(
        pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "debug" / "mcpvault")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the mcpvault CLI is missing at {path}: run `cargo build --bin mcpvault` or set MCPVAULT_CLI")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """A redis-server of this test session on 127.0.0.1 (no persistence), killed at the end."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed: the Redis store tests need it (apt-get install redis-server)")
    import redis
    port = _free_port()
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited with {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer")
        client.close()
        yield url
    finally:
        proc.kill()
        proc.wait()
