"""The stores a guard keeps its state in: memory, SQLite and Redis.

A store only reads and writes. What it decides inside its transaction comes from the component
(``store-decide``, the core's ``state::decide``); Redis runs ``spend.lua``, the same rules as one atomic script.
SQLite uses ``schema.sql`` and Redis the keys of mcpvault-store, so the CLI (``mcpvault revoke --store``), Node
servers and Python servers share one store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = ["open_store", "MemoryStore", "SqliteStore", "RedisStore"]

_HERE = os.path.dirname(__file__)
_P = "mcpvault:"

#: ``decide(ask, read) -> {"answer", "write"}``: the core's ``store-decide``. The guard passes a callable that also
#: has ``redis_call(ask) -> {"keys", "args"}`` and ``redis_answer(ask, reply) -> answer`` (the core's ``redis-call``
#: and ``redis-answer``: what spend.lua is sent and what its reply means), which the Redis store uses.
Decide = Callable[[Dict[str, Any], Dict[str, Any]], Dict[str, Any]]


def _packaged(name: str) -> str:
    path = os.path.join(_HERE, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: run `make component` before `pip install ./python`")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _text(value: Any) -> str:
    """JSON text as the other hosts write it (compact)."""
    return json.dumps(value, separators=(",", ":"))


# The fewest audit entries a MemoryStore keeps (the core's `state::MEMORY_AUDIT_KEEP`): a process's memory is no
# audit log, so at twice this the oldest half goes and the chain goes on from the newest entry. A log that keeps
# everything is SQLite's or Redis's.
MEMORY_AUDIT_KEEP = 10_000


class MemoryStore:
    """One process, nothing kept across restarts; the newest MEMORY_AUDIT_KEEP to twice that audit entries."""

    kind = "memory"

    def __init__(self) -> None:
        self._revoked: set = set()
        self._nonces: Dict[str, Tuple[str, int, int]] = {}  # nonce -> (call key, spent at, keep until)
        self._recorded: Dict[str, Tuple[Any, int]] = {}  # call key -> (response, keep until)
        self._counts: Dict[str, Tuple[float, int]] = {}  # quota counter -> (used, keep until)
        self._swept = [-1, -1]  # when the spent rows and the counters were last swept
        self._audit: List[str] = []
        self._lock = threading.Lock()

    def revoke(self, revocation_id: str, now: int) -> None:
        with self._lock:
            self._revoked.add(revocation_id)

    def check(self, ask: Dict[str, Any], decide: Decide) -> Dict[str, Any]:
        with self._lock:
            spend = ask.get("spend")
            # a sweep is O(rows): once per second at most (a row written since has `until` after its writing)
            # due by the guard's `now` and by this process's clock (a `now` set far ahead sweeps nothing still due)
            if spend and min(spend["now"], int(time.time())) > self._swept[0]:
                now = min(spend["now"], int(time.time()))
                self._nonces = {n: r for n, r in self._nonces.items() if r[2] > now}
                self._recorded = {k: r for k, r in self._recorded.items() if r[1] > now}
                self._swept[0] = now
            quotas = ask.get("quotas") or []
            counted = min((q["until"] - q["ttl"] for q in quotas), default=None)
            counted = None if counted is None else min(counted, int(time.time()))
            if counted is not None and counted > self._swept[1]:
                self._counts = {k: r for k, r in self._counts.items() if r[1] > counted}
                self._swept[1] = counted
            read = {
                "revoked": [i for i in ask.get("revocation_ids", []) if i in self._revoked],
                "held": [],
                "recorded": None,
                "used": [self._counts.get(q["key"], (0, 0))[0] for q in quotas],
            }
            if spend:
                for n in spend["nonces"]:
                    row = self._nonces.get(n)
                    read["held"].append(None if row is None else {"call_key": row[0], "at": row[1]})
                rec = self._recorded.get(spend["call_key"])
                read["recorded"] = None if rec is None else rec[0]
            decision = decide(ask, read)
            for row in decision["write"]:
                self._nonces[row["nonce"]] = (row["call_key"], row["at"], row["until"])
            for row in decision.get("counts", []):
                self._counts[row["key"]] = (row["used"], row["until"])
            return decision["answer"]

    def complete(self, call_key: str, response: Any, keep_until: int, keep_for: Optional[int] = None) -> None:
        with self._lock:
            self._recorded[call_key] = (response, keep_until)

    def append_audit(self, append: Callable[[Optional[str]], str]) -> str:
        with self._lock:
            line = append(self._audit[-1] if self._audit else None)
            self._audit.append(line)
            if len(self._audit) >= 2 * MEMORY_AUDIT_KEEP:
                del self._audit[:MEMORY_AUDIT_KEEP]
            return line

    def audit_lines(self) -> List[str]:
        with self._lock:
            return list(self._audit)

    def close(self) -> None:
        pass


# A row is swept once due by the guard's `now` and by SQLite's own clock: a `now` set far ahead (a test clock, a
# host clock that jumped) must not delete spent nonces and counters that are still due when time comes back.
_DUE = "keep_until <= MIN(?, CAST(strftime('%s', 'now') AS INTEGER))"


class SqliteStore:
    """A SQLite file (``schema.sql``): WAL, a busy timeout, and every step in one ``BEGIN IMMEDIATE`` transaction,
    so processes sharing the file spend a nonce once."""

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        # autocommit mode: the transactions below are explicit
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_packaged("schema.sql"))
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # a failed step or COMMIT (disk full, I/O error) leaves no transaction open on the shared connection:
                # else every later BEGIN fails and every request is refused until a restart
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    def revoke(self, revocation_id: str, now: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO mcpvault_revoked (id, revoked_at) VALUES (?, ?)", (revocation_id, now))

    def check(self, ask: Dict[str, Any], decide: Decide) -> Dict[str, Any]:
        with self._tx() as db:
            read: Dict[str, Any] = {"revoked": [], "held": [], "recorded": None, "used": []}
            quotas = ask.get("quotas") or []
            for q in quotas:
                row = db.execute("SELECT used FROM mcpvault_quotas WHERE key = ?", (q["key"],)).fetchone()
                read["used"].append(0 if row is None else row[0])
            for i in ask.get("revocation_ids", []):
                if db.execute("SELECT 1 FROM mcpvault_revoked WHERE id = ?", (i,)).fetchone():
                    read["revoked"].append(i)
            spend = ask.get("spend")
            if spend:
                now = spend["now"]
                db.execute("DELETE FROM mcpvault_nonces WHERE " + _DUE, (now,))
                db.execute("DELETE FROM mcpvault_results WHERE " + _DUE, (now,))
                for n in spend["nonces"]:
                    row = db.execute("SELECT call_key, spent_at FROM mcpvault_nonces WHERE nonce = ?", (n,)).fetchone()
                    read["held"].append(None if row is None else {"call_key": row[0], "at": max(row[1], 0)})
                row = db.execute("SELECT response FROM mcpvault_results WHERE call_key = ?",
                                 (spend["call_key"],)).fetchone()
                read["recorded"] = None if row is None else json.loads(row[0])
            decision = decide(ask, read)
            for w in decision["write"]:
                db.execute("INSERT OR REPLACE INTO mcpvault_nonces (nonce, call_key, spent_at, keep_until) "
                           "VALUES (?, ?, ?, ?)", (w["nonce"], w["call_key"], w["at"], w["until"]))
            counts = decision.get("counts", [])
            for c in counts:
                db.execute("INSERT OR REPLACE INTO mcpvault_quotas (key, used, keep_until) VALUES (?, ?, ?)",
                           (c["key"], c["used"], c["until"]))
            if counts:
                db.execute("DELETE FROM mcpvault_quotas WHERE " + _DUE,
                           (min(c["until"] - c["ttl"] for c in counts),))
            return decision["answer"]

    def complete(self, call_key: str, response: Any, keep_until: int, keep_for: Optional[int] = None) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO mcpvault_results (call_key, response, keep_until) VALUES (?, ?, ?)",
                       (call_key, _text(response), keep_until))

    def append_audit(self, append: Callable[[Optional[str]], str]) -> str:
        with self._tx() as db:
            row = db.execute("SELECT entry FROM mcpvault_audit ORDER BY seq DESC LIMIT 1").fetchone()
            line = append(None if row is None else row[0])
            db.execute("INSERT INTO mcpvault_audit (seq, entry) VALUES (?, ?)", (json.loads(line)["seq"], line))
            return line

    def audit_lines(self) -> List[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT entry FROM mcpvault_audit ORDER BY seq")]

    def close(self) -> None:
        self._db.close()


class RedisStore:
    """Redis (``pip install mcpvault[redis]``): revocations in a set, spends by ``spend.lua`` in one atomic step,
    the audit list appended by ``audit.lua`` only while its head is the one the entry follows (a conflicting append
    retries)."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        try:
            import redis  # type: ignore[import-not-found]
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("a redis:// store needs the redis package: pip install 'mcpvault[redis]'") from e
        self._redis_mod = redis
        self._r = redis.Redis.from_url(url)
        self._r.ping()
        self._spend = self._r.register_script(_packaged("spend.lua"))
        self._append = self._r.register_script(_packaged("audit.lua"))

    def revoke(self, revocation_id: str, now: int) -> None:
        self._r.sadd(f"{_P}revoked", revocation_id)

    def check(self, ask: Dict[str, Any], decide: Decide) -> Dict[str, Any]:
        # the decision is spend.lua's, made inside Redis; what it is sent and what its reply means are the core's
        call = decide.redis_call(ask)  # type: ignore[attr-defined]
        reply = [v.decode() if isinstance(v, bytes) else v for v in self._spend(keys=call["keys"], args=call["args"])]
        return decide.redis_answer(ask, reply)  # type: ignore[attr-defined,no-any-return]

    def complete(self, call_key: str, response: Any, keep_until: int, keep_for: Optional[int] = None) -> None:
        # Redis's own clock: expire after keep_for seconds (a skew with the guard's clock cannot shorten it)
        self._r.set(f"{_P}result:{call_key}", _text(response), ex=max(1, keep_for or 1))

    def append_audit(self, append: Callable[[Optional[str]], str]) -> str:
        # the entry is the core's, on the head read here; audit.lua writes it only if the head did not move (0: read it
        # again) and raises, writing nothing, when Redis refuses the list (a key of another type)
        head_key = f"{_P}audit:head"
        for _ in range(1000):
            head = self._r.get(head_key)
            text = None if head is None else head.decode()
            line = append(text)
            if self._append(keys=[f"{_P}audit", head_key], args=[text or "", line]) == 1:
                return line
        raise RuntimeError("audit append kept conflicting")

    def audit_lines(self) -> List[str]:
        return [v.decode() for v in self._r.lrange(f"{_P}audit", 0, -1)]

    def close(self) -> None:
        self._r.close()


def open_store(spec: str) -> Any:
    """``memory``, ``sqlite:FILE`` or ``redis://HOST:PORT[/DB]`` (also ``rediss://``)."""
    if spec == "memory":
        return MemoryStore()
    if spec.startswith("sqlite:"):
        return SqliteStore(spec[len("sqlite:"):])
    if spec.startswith(("redis://", "rediss://")):
        return RedisStore(spec)
    raise ValueError(f"unknown store {spec!r}: memory, sqlite:FILE or redis://HOST:PORT[/DB]")
