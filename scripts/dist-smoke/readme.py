"""make test-dist: the repository README's Python blocks, in a clean venv with only the wheel installed."""
import os
import re
import sys
import tempfile

from mcpvault import McpVaultError

readme = open(sys.argv[1]).read()
blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
ns = {}
first = blocks[0].strip().splitlines()
exec("\n".join(first[:-1]), ns)
try:
    exec(first[-1], ns)
    raise SystemExit("the first block's last line should raise")
except McpVaultError as e:
    assert e.code == "tool_not_allowed", e.code
second = blocks[1].strip().splitlines()
path = os.path.join(tempfile.mkdtemp(), "vault.db")
second = [line.replace("/var/lib/mcp/vault.db", path) for line in second]
exec("\n".join(second[:-1]), ns)
try:
    exec(second[-1], ns)
    raise SystemExit("the second block's last line should raise")
except McpVaultError as e:
    assert e.code == "revoked", e.code
print("python ok")
