"""make test-dist: the repository README's Python blocks, in a clean venv with only the wheel installed."""
import os
import re
import sys
import tempfile

from mcpvault import McpVaultError

readme = open(sys.argv[1]).read()
blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
ns = {}


def run(block, code, replace=()):
    """Executes a README block; its last line is documented to raise McpVaultError with `code`."""
    lines = block.strip().splitlines()
    for old, new in replace:
        lines = [line.replace(old, new) for line in lines]
    exec("\n".join(lines[:-1]), ns)
    try:
        exec(lines[-1], ns)
    except McpVaultError as e:
        assert e.code == code, e.code
    else:
        raise SystemExit(f"the block's last line should raise {code}")


run(blocks[0], "tool_not_allowed")
assert ns["facts"]["tools"] == ["db_query"], ns["facts"]
run(blocks[1], "revoked", [("/var/lib/mcp/vault.db", os.path.join(tempfile.mkdtemp(), "vault.db"))])
print("python ok")
