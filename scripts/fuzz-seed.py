#!/usr/bin/env python3
"""Seeds the fuzz corpora from tests/vectors: `fuzz-seed.py VECTORS CORPUS`.

inspect: each vector's token bytes; verify: 2-byte length + token bytes +
request JSON (the verify target's input layout); boundary: requests, grants,
restrictions and audit records as JSON text; attenuate: restrictions;
arg_spec: the CLI's limit syntax. Files are named by content hash, so rerunning
adds nothing twice and a corpus the fuzzer grew is kept.
"""
import base64
import glob
import hashlib
import json
import os
import sys

vectors, corpus = sys.argv[1], sys.argv[2]


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


restrictions = [
    {"tools": ["db_query"]},
    {"ttl": 60},
    {"audience": "mcp.example.com", "max_depth": 2},
    {"arg_limits": [{"tool": "db_query", "arg": "max_rows", "max": 10}]},
    {"arg_limits": [{"tool": "file_read", "arg": "path", "prefix": "/srv/"}]},
    {"arg_limits": [{"tool": "db_query", "arg": "table", "one_of": ["users", "orders"]}]},
    {"single_use": True, "tools": []},
]
for r in restrictions:
    put("attenuate", json.dumps(r))
    put("boundary", json.dumps(r))
put("boundary", json.dumps({"tools": ["db_query"], "ttl": 600, "issuer": "i", "subject": "s"}))
for spec in ["db_query.max_rows<=100", "github.search.page>=1", "file_read.path^=/srv/public/",
             "db_query.table=users", 'db_query.code="5"', "db_query.table in users,orders", "a.b=true"]:
    put("arg_spec", spec)

for path in sorted(glob.glob(os.path.join(vectors, "**", "*.json"), recursive=True)):
    case = json.load(open(path))
    token = case.get("token")
    if isinstance(token, str):
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raw = token.encode()
        put("inspect", raw)
        request = json.dumps(case.get("request", {})).encode()
        put("verify", len(raw).to_bytes(2, "big") + raw + request)
    if "request" in case:
        put("boundary", json.dumps(case["request"]))
        put("boundary", json.dumps(case["request"].get("arguments", {})))
    for record in case.get("records", []) or []:
        put("boundary", json.dumps(record))
