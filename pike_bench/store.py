"""The record of optimization runs, and what makes a run resumable.

One SQLite file holds every run: its LLM calls, the candidates they produced and the
evaluations of those candidates. Every write is committed before the call returns, so
an interrupted run (Ctrl-C, a killed process, a dead worker) loses at most the write
that was in flight, and rerunning the same command resumes from the record:

- replies are looked up by (run, task, slot): strategies name every request with a
  slot ("r2/s5", "r2/s5/fix1") that is the same on a rerun, so a recorded reply is
  replayed instead of paid for again;
- evaluations are looked up by (run, task, sha256 of the candidate source);
- a query is written down (``open_llm_call``) before it is sent, at its worst-case
  cost, and settled (``close_llm_call``) with its reply or failure: a query in flight
  when the run was killed stays counted at its worst case (marked ``lost`` on resume),
  as the API may have billed it;
- ``spent()`` and ``queries_by_role()`` give what the record already counts, where a resumed budget starts.

    with Store("runs.sqlite") as store:
        run_id = store.start_run("pike-level3-claude", {"budget": 300})
        reply = store.recorded_reply(run_id, task_id, slot, request)
        if reply is None:
            call = store.open_llm_call(run_id, request, reserved=worst_case)
            reply = await proposer.propose(request)
            store.close_llm_call(call, reply)

All SQL of the project lives in this module.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from pike_bench.llm.base import Reply, Request
from pike_bench.ranking import standings

if TYPE_CHECKING:  # only the type: importing the evaluator package pulls in torch
    from pike_bench.evaluate.result import EvalResult

SCHEMA_VERSION = 2

# Baselines whose speedups get their own columns, so reports can sort and filter on them
# in SQL; every speedup is also in the result JSON.
SPEEDUP_COLUMNS = ("eager", "compile", "graph")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,   -- the caller's name for the run: same command, same key
    config      TEXT NOT NULL,          -- JSON, as given at the first start
    starts      INTEGER NOT NULL DEFAULT 1,  -- 1 + the number of resumes
    started_at  REAL NOT NULL,
    resumed_at  REAL,
    finished_at REAL
);

CREATE TABLE IF NOT EXISTS llm_calls (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_id       TEXT NOT NULL,
    slot          TEXT NOT NULL,
    role          TEXT NOT NULL,
    request_model TEXT NOT NULL,        -- as asked ("" is the proposer's default)
    request_hash  TEXT NOT NULL,        -- sha256 of role, model, system, prompt
    system        TEXT NOT NULL,
    prompt        TEXT NOT NULL,
    max_tokens    INTEGER NOT NULL,
    reply_text    TEXT NOT NULL,
    reply_model   TEXT NOT NULL,        -- as answered
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    dollars       REAL NOT NULL,
    seconds       REAL NOT NULL,
    meta          TEXT NOT NULL,        -- JSON
    created_at    REAL NOT NULL,
    status        TEXT NOT NULL DEFAULT 'ok',  -- 'ok', 'pending' (sent, no reply yet), or a failure (llm.base)
    reason        TEXT NOT NULL DEFAULT '',    -- one line, when status is not 'ok'
    reserved      REAL NOT NULL DEFAULT 0      -- the worst case reserved before it was sent
);
CREATE INDEX IF NOT EXISTS llm_calls_by_slot ON llm_calls (run_id, task_id, slot, request_hash);

CREATE TABLE IF NOT EXISTS candidates (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    task_id     TEXT NOT NULL,
    source      TEXT NOT NULL,
    source_hash TEXT NOT NULL,          -- sha256 of source
    parent_ids  TEXT NOT NULL,          -- JSON list of candidate ids
    island      INTEGER,
    round       INTEGER,
    agent       TEXT NOT NULL,
    slot        TEXT NOT NULL,
    llm_call_id INTEGER REFERENCES llm_calls(id),
    created_at  REAL NOT NULL,
    same_as     INTEGER REFERENCES candidates(id),  -- same source as this earlier one: its verdict, no new evaluation
    UNIQUE (run_id, task_id, source_hash, slot)  -- also the index of the lookup by source
);

CREATE TABLE IF NOT EXISTS evaluations (
    id           INTEGER PRIMARY KEY,
    candidate_id INTEGER NOT NULL REFERENCES candidates(id),
    status       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL,
    candidate_ms REAL,                  -- median; NULL when it was not timed
    {", ".join(f"speedup_{b} REAL, speedup_{b}_low REAL, speedup_{b}_high REAL" for b in SPEEDUP_COLUMNS)},
    result       TEXT NOT NULL,         -- EvalResult.to_dict() as JSON
    created_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_candidate ON evaluations (candidate_id);
"""

# What each older schema version lacks: applied in order on opening an older file.
_UPGRADES = {
    2: [
        "ALTER TABLE llm_calls ADD COLUMN status TEXT NOT NULL DEFAULT 'ok'",
        "ALTER TABLE llm_calls ADD COLUMN reason TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE llm_calls ADD COLUMN reserved REAL NOT NULL DEFAULT 0",
        "ALTER TABLE candidates ADD COLUMN same_as INTEGER REFERENCES candidates(id)",
    ],
}

# Queries that have no reply to replay: sent and never answered.
_UNANSWERED = ("pending", "lost")
# Tables that only add to a record, made where missing each time a file is opened: a file
# of any version gains them, and a pike-bench that does not know them reads on as before,
# so they need no schema version.
# reviews: candidates flagged suspicious that a person read and accepted (`pike accept`);
# they count as a task's best from then on, in every run that has them.
# compile_builds: each build of the compile baseline, by what decides its compiled code:
# the task file, the GPU, torch and the compile mode. Inductor's cache beside the record
# makes a second build of the same key a load (cache hits) rather than a compile.
_ADDED_TABLES = """
CREATE TABLE IF NOT EXISTS compile_builds (
    id            INTEGER PRIMARY KEY,
    task_id       TEXT NOT NULL,
    task_sha256   TEXT NOT NULL,
    device_name   TEXT NOT NULL,
    torch_version TEXT NOT NULL,
    compile_mode  TEXT NOT NULL,
    seconds       REAL NOT NULL,        -- construction and first call
    cache_hits    INTEGER NOT NULL,     -- inductor FX graph cache
    cache_misses  INTEGER NOT NULL,
    created_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS compile_builds_by_key
    ON compile_builds (task_sha256, device_name, torch_version, compile_mode);
CREATE TABLE IF NOT EXISTS reviews (
    task_id     TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    note        TEXT NOT NULL,          -- who accepted it and on what evaluation
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, source_hash)
);
"""

# The latest evaluation of each candidate: a candidate evaluated again is judged by its newest result.
_LATEST_EVALUATION = "e.id = (SELECT MAX(id) FROM evaluations WHERE candidate_id = c.id)"


class StoreError(Exception):
    """The file cannot be used as a store (e.g. it was written by a newer pike-bench)."""


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def request_hash(request: Request) -> str:
    """What a reply answered: the role, model, system text and prompt of its request.

    The other fields (max_tokens, task bookkeeping) do not change what was asked."""
    asked = json.dumps([request.role, request.model, request.system, request.prompt])
    return hashlib.sha256(asked.encode("utf-8")).hexdigest()


class Store:
    """One SQLite file in WAL mode; every write is committed before the method returns.

    One connection, shared by the threads and tasks of one process: asyncio code that
    hands writes to threads (``asyncio.to_thread``) goes through the lock, so a write and
    its commit are never interleaved with another's.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, so a single statement is committed when it
        # returns; statements that belong together go through _transaction().
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        try:
            with self._lock:
                self._configure()
                self._migrate()
                self._db.executescript(_ADDED_TABLES)
        except BaseException:
            self._db.close()  # a refused file is not left open
            raise

    def _configure(self) -> None:
        # WAL: readers (a report while the run goes on) do not block the writer, and a
        # killed writer leaves the committed transactions intact.
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns, even across a power cut; one fsync
        # per write is nothing next to an LLM call or an evaluation.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")


    def _migrate(self) -> None:
        found = self._schema_version()
        if found is not None and found > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {found} was written by a newer pike-bench (this one reads {SCHEMA_VERSION})"
            )
        if found == SCHEMA_VERSION:
            return
        if found is not None:
            self._upgrade(found)
            return
        # A new file: the schema and its version in one transaction, so two processes that
        # open the same new file at once both find it whole. (executescript cannot run
        # inside _transaction(): it commits whatever is pending first.)
        script = (
            f"BEGIN IMMEDIATE;\n{_SCHEMA}\n"
            f"INSERT INTO schema_version (version) SELECT {SCHEMA_VERSION} "
            "WHERE NOT EXISTS (SELECT 1 FROM schema_version);\nCOMMIT;"
        )
        try:
            self._db.executescript(script)
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _upgrade(self, found: int) -> None:
        with self._transaction() as db:
            if db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] != found:
                return  # another process upgraded it meanwhile
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in _UPGRADES[version]:
                    db.execute(statement)
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _schema_version(self) -> int | None:
        exists = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if exists is None:
            return None
        return self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    # -- plumbing -----------------------------------------------------------------------

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> "_Transaction":
        """Statements that stand or fall together; the caller holds the lock."""
        return _Transaction(self._db)

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- runs ---------------------------------------------------------------------------

    def start_run(self, key: str, config: dict) -> int:
        """The id of the run named key: a new run, or the existing one (a resume, counted in starts).

        A resumed run keeps the config of its first start: the key says which run this is."""
        now = time.time()
        with self._lock, self._transaction() as db:
            row = db.execute("SELECT id FROM runs WHERE key = ?", (key,)).fetchone()
            if row is None:
                return db.execute(
                    "INSERT INTO runs (key, config, started_at) VALUES (?, ?, ?)", (key, _to_json(config), now)
                ).lastrowid
            # Running again, so not finished until finish_run says so again.
            db.execute(
                "UPDATE runs SET starts = starts + 1, resumed_at = ?, finished_at = NULL WHERE id = ?", (now, row["id"])
            )
            # Queries the last start sent and never heard back from: they stay counted at
            # their worst case (the API may have billed them) and are not replayed.
            db.execute(
                "UPDATE llm_calls SET status = 'lost', reason = 'the run ended before its reply came back"
                " (counted at its worst case)' WHERE run_id = ? AND status = 'pending'", (row["id"],)
            )
            return row["id"]

    def finish_run(self, run_id: int) -> None:
        with self._lock:
            changed = self._db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (time.time(), run_id)).rowcount
        if changed == 0:
            raise KeyError(f"no run {run_id} in {self.path}")

    def run(self, run_id: int) -> dict | None:
        """The run's row: key, config, starts, started_at, resumed_at, finished_at."""
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _row_dict(rows[0], json_columns=("config",)) if rows else None

    def forget_run(self, run_id: int) -> dict[str, int]:
        """Delete a run and what it recorded (queries, candidates, evaluations), so that the
        same command starts it afresh: for a run whose verdicts judged the machine (a GPU
        out of memory because of a neighbour, a broken driver). The compile baseline's
        builds and the reviews belong to the task and stay. Returns what was deleted."""
        with self._lock, self._transaction() as db:
            counts = {table: db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
                      for table in ("llm_calls", "candidates")}
            db.execute("DELETE FROM evaluations WHERE candidate_id IN (SELECT id FROM candidates WHERE run_id = ?)",
                       (run_id,))
            db.execute("DELETE FROM candidates WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM llm_calls WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return counts

    # -- LLM calls ----------------------------------------------------------------------

    def open_llm_call(self, run_id: int, request: Request, reserved: float) -> int:
        """A query about to be sent, written down first: until close_llm_call it counts at
        `reserved` dollars (its worst case), so a run killed meanwhile still counts it."""
        with self._lock:
            return self._db.execute(
                "INSERT INTO llm_calls (run_id, task_id, slot, role, request_model, request_hash, system, prompt,"
                " max_tokens, reply_text, reply_model, input_tokens, output_tokens, dollars, seconds, meta, created_at,"
                " status, reserved) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', 0, 0, ?, 0, '{}', ?, 'pending', ?)",
                (
                    run_id, request.task_id, request.slot, request.role, request.model, request_hash(request),
                    request.system, request.prompt, request.max_tokens, reserved, time.time(), reserved,
                ),
            ).lastrowid

    def close_llm_call(self, call_id: int, reply: Reply) -> None:
        """The query's reply or failure, and the dollars it really cost."""
        with self._lock:
            self._db.execute(
                "UPDATE llm_calls SET reply_text = ?, reply_model = ?, input_tokens = ?, output_tokens = ?,"
                " dollars = ?, seconds = ?, meta = ?, status = ?, reason = ? WHERE id = ?",
                (
                    reply.text, reply.model, reply.input_tokens, reply.output_tokens, reply.dollars, reply.seconds,
                    _to_json(reply.meta), reply.status, reply.reason, call_id,
                ),
            )

    def recorded_reply(self, run_id: int, task_id: str, slot: str, request: Request) -> Reply | None:
        """The reply recorded for this slot, if it answered this very request; else None.

        Only a reply to the same role, model, system text and prompt is replayed. The
        slot says where a request sits in the search, not what it asks: on a rerun the
        same slot can carry another prompt (an edited template, another model, or another
        parent because an evaluation's timing came out differently), and replaying the
        old answer would hand the search code that answers a question it did not ask, and
        hide the change. So a mismatch returns None and the caller pays for a fresh reply.
        """
        rows = self._read(
            "SELECT id, reply_text, reply_model, input_tokens, output_tokens, dollars, seconds, meta, status, reason"
            " FROM llm_calls WHERE run_id = ? AND task_id = ? AND slot = ? AND request_hash = ?"
            f" AND status NOT IN {_UNANSWERED} ORDER BY id DESC LIMIT 1",
            (run_id, task_id, slot, request_hash(request)),
        )
        if not rows:
            return None
        row = rows[0]
        return Reply(
            text=row["reply_text"],
            model=row["reply_model"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            dollars=row["dollars"],
            seconds=row["seconds"],
            meta={**json.loads(row["meta"]), "llm_call_id": row["id"]},
            status=row["status"],
            reason=row["reason"],
        )

    def spent(self, run_id: int, task_id: str) -> tuple[int, float]:
        """LLM queries and dollars recorded for the task in this run (a query still in flight,
        or lost with a killed run, at its worst case): where a resumed budget starts."""
        count, dollars = self._read(
            "SELECT COUNT(*), COALESCE(SUM(dollars), 0.0) FROM llm_calls WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        )[0]
        return count, dollars

    def queries_by_role(self, run_id: int, task_id: str) -> dict[str, int]:
        rows = self._read(
            "SELECT role, COUNT(*) AS n FROM llm_calls WHERE run_id = ? AND task_id = ? GROUP BY role", (run_id, task_id)
        )
        return {row["role"]: row["n"] for row in rows}

    def llm_calls(self, run_id: int, task_id: str) -> list[dict]:
        rows = self._read("SELECT * FROM llm_calls WHERE run_id = ? AND task_id = ? ORDER BY id", (run_id, task_id))
        return [_row_dict(row, json_columns=("meta",)) for row in rows]

    # -- candidates and evaluations -----------------------------------------------------

    def record_candidate(
        self,
        run_id: int,
        task_id: str,
        source: str,
        *,
        parent_ids: list[int],
        island: int | None,
        round: int | None,
        agent: str,
        slot: str,
        llm_call_id: int | None,
        same_as: int | None = None,
    ) -> int:
        """Record a candidate; the same source from the same slot again returns the existing id."""
        digest = source_hash(source)
        with self._lock, self._transaction() as db:
            same = db.execute(
                "SELECT id FROM candidates WHERE run_id = ? AND task_id = ? AND source_hash = ? AND slot = ?",
                (run_id, task_id, digest, slot),
            ).fetchone()
            if same is not None:
                return same["id"]
            return db.execute(
                "INSERT INTO candidates (run_id, task_id, source, source_hash, parent_ids, island, round, agent, slot,"
                " llm_call_id, created_at, same_as) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, task_id, source, digest, _to_json(list(parent_ids)), island, round, agent, slot,
                    llm_call_id, time.time(), same_as,
                ),
            ).lastrowid

    def record_evaluation(self, candidate_id: int, result: EvalResult) -> int:
        """Record the candidate's evaluation; returns its id. A later one supersedes it in best()."""
        row = {
            "candidate_id": candidate_id,
            "status": result.status,
            "reason": result.reason,
            "detail": result.detail,
            "candidate_ms": result.timing.median_ms if result.timing is not None else None,
            **_speedup_columns(result),
            "result": _to_json(result.to_dict()),
            "created_at": time.time(),
        }
        columns = ", ".join(row)
        values = ", ".join(f":{name}" for name in row)
        compiled = result.baselines.get("compile")
        with self._lock, self._transaction() as db:
            if compiled is not None and compiled.build is not None:
                db.execute(
                    "INSERT INTO compile_builds (task_id, task_sha256, device_name, torch_version, compile_mode,"
                    " seconds, cache_hits, cache_misses, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (result.task_id, result.task_sha256, result.device_name, result.torch_version, result.compile_mode,
                     compiled.build.seconds, compiled.build.cache_hits, compiled.build.cache_misses, time.time()),
                )
            return db.execute(f"INSERT INTO evaluations ({columns}) VALUES ({values})", row).lastrowid

    def compile_builds(self, task_sha256: str | None = None) -> list[dict]:
        """The compile baseline's builds, oldest first (all, or one task file's)."""
        where, params = ("WHERE task_sha256 = ?", (task_sha256,)) if task_sha256 else ("", ())
        return [dict(row) for row in self._read(f"SELECT * FROM compile_builds {where} ORDER BY id", params)]

    def recorded_evaluation(self, run_id: int, task_id: str, source: str) -> dict | None:
        """The result (EvalResult.to_dict()) of the latest evaluation of this source in this run, if any.

        Any slot's candidate with the same source counts: the code is what was evaluated."""
        rows = self._read(
            "SELECT e.result FROM evaluations e JOIN candidates c ON c.id = e.candidate_id"
            " WHERE c.run_id = ? AND c.task_id = ? AND c.source_hash = ? ORDER BY e.id DESC LIMIT 1",
            (run_id, task_id, source_hash(source)),
        )
        return json.loads(rows[0]["result"]) if rows else None

    def run_ids(self, keys: list[str]) -> list[int]:
        """The ids of the runs named by these keys that the record holds."""
        marks = ", ".join("?" * len(keys))
        return [row["id"] for row in self._read(f"SELECT id FROM runs WHERE key IN ({marks}) ORDER BY id", keys)]

    def verdict_of_other_runs(self, run_ids: list[int], task_id: str, source: str) -> dict | None:
        """The latest evaluation of this source in one of these runs (the same command with
        another budget), if it judged the code rather than the machine: not where the worker
        crashed or ran out of time, nor where the GPU's memory ran out (another task in
        flight may have held it)."""
        marks = ", ".join("?" * len(run_ids))
        rows = self._read(
            "SELECT e.result FROM evaluations e JOIN candidates c ON c.id = e.candidate_id"
            f" WHERE c.run_id IN ({marks}) AND c.task_id = ? AND c.source_hash = ?"
            " AND e.status NOT IN ('crashed', 'timeout') AND e.reason NOT LIKE '%CUDA out of memory%'"
            " ORDER BY e.id DESC LIMIT 1",
            (*run_ids, task_id, source_hash(source)),
        )
        return json.loads(rows[0]["result"]) if rows else None

    def first_evaluated(self, run_id: int, task_id: str, source: str) -> int | None:
        """The earliest candidate of this run with this source that has an evaluation."""
        rows = self._read(
            "SELECT c.id FROM candidates c WHERE c.run_id = ? AND c.task_id = ? AND c.source_hash = ?"
            " AND EXISTS (SELECT 1 FROM evaluations e WHERE e.candidate_id = c.id) ORDER BY c.id LIMIT 1",
            (run_id, task_id, source_hash(source)),
        )
        return rows[0]["id"] if rows else None

    def has_evaluation(self, candidate_id: int) -> bool:
        return bool(self._read("SELECT 1 FROM evaluations WHERE candidate_id = ? LIMIT 1", (candidate_id,)))

    def best(self, run_id: int, task_id: str) -> dict | None:
        """The fastest correct candidate: id, source, slot, agent, candidate_ms, speedups, reviewed.

        "correct" counts, and "suspicious" once a person has accepted it (`record_review`;
        ``reviewed`` is then True). Ranked as the search ranks them, by the speedup over
        the fastest baseline timed beside each (pike_bench.ranking), then by median time:
        the speedup is paired with the baselines in the same rounds, so it survives the
        drift that moves absolute times between evaluations made minutes apart; the time
        decides only where no baseline was timed."""
        columns = ", ".join(f"e.speedup_{b}" for b in SPEEDUP_COLUMNS)
        rows = self._read(
            "SELECT c.id, c.source, c.slot, c.agent, e.id AS evaluation_id, e.candidate_ms,"
            f" e.status = 'suspicious' AS reviewed, {columns}"
            " FROM candidates c JOIN evaluations e ON e.candidate_id = c.id"
            f" WHERE c.run_id = ? AND c.task_id = ? AND {_LATEST_EVALUATION} AND (e.status = 'correct'"
            " OR (e.status = 'suspicious' AND EXISTS (SELECT 1 FROM reviews r"
            " WHERE r.task_id = c.task_id AND r.source_hash = c.source_hash)))",
            (run_id, task_id),
        )
        if not rows:
            return None
        over = standings([row_speedups(row) for row in rows])
        best = {k: v for k, v in dict(min(zip(rows, over), key=_rank)[0]).items() if not k.startswith("speedup_")}
        result = self._read("SELECT result FROM evaluations WHERE id = ?", (best["evaluation_id"],))[0]["result"]
        best["speedups"] = json.loads(result)["speedups"]
        best["reviewed"] = bool(best["reviewed"])
        return best

    def record_review(self, task_id: str, source: str, note: str) -> int:
        """A person accepted this flagged candidate: it may be the task's best. Returns how
        many of the record's candidates have this source (0: none yet; it counts when one does)."""
        digest = source_hash(source)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO reviews (task_id, source_hash, note, created_at) VALUES (?, ?, ?, ?)",
                       (task_id, digest, note, time.time()))
            return db.execute("SELECT COUNT(*) FROM candidates WHERE task_id = ? AND source_hash = ?",
                              (task_id, digest)).fetchone()[0]

    def candidates(self, run_id: int, task_id: str) -> list[dict]:
        """Every candidate of the task in this run, oldest first, with its latest evaluation (None if none).

        ``rule`` (the rule it broke) is read from the result JSON: NULL in records older than it."""
        speedups = ", ".join(f"e.speedup_{b}, e.speedup_{b}_low, e.speedup_{b}_high" for b in SPEEDUP_COLUMNS)
        rows = self._read(
            "SELECT c.*, e.id AS evaluation_id, e.status, e.reason, json_extract(e.result, '$.rule') AS rule,"
            " e.candidate_ms, " + speedups +
            " FROM candidates c LEFT JOIN evaluations e ON e.candidate_id = c.id AND " + _LATEST_EVALUATION +
            " WHERE c.run_id = ? AND c.task_id = ? ORDER BY c.id",
            (run_id, task_id),
        )
        return [_row_dict(row, json_columns=("parent_ids",)) for row in rows]


def row_speedups(row: sqlite3.Row | dict) -> dict[str, float | None]:
    """A candidate's speedup over each baseline, from its evaluation's columns (None: not timed)."""
    return {b: row[f"speedup_{b}"] for b in SPEEDUP_COLUMNS}


def _rank(pair: tuple[sqlite3.Row, float | None]) -> tuple:
    """Sort key of a candidate's row and its standing, best first (Store.best)."""
    row, over = pair
    ms = row["candidate_ms"]
    return (over is None, -(over or 0.0), ms is None, ms or 0.0, row["id"])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

    IMMEDIATE takes the write lock at the start, so a read-then-write (look for an
    existing row, else insert) cannot race another process doing the same."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: type | None, *exc: object) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except BaseException:
                # A failed COMMIT (disk full) leaves the transaction open; close it, then raise.
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        self.db.execute("ROLLBACK")


def _speedup_columns(result: EvalResult) -> dict[str, float | None]:
    columns: dict[str, float | None] = {}
    for baseline in SPEEDUP_COLUMNS:
        speedup = result.speedups.get(baseline)
        columns[f"speedup_{baseline}"] = speedup.value if speedup else None
        columns[f"speedup_{baseline}_low"] = speedup.low if speedup else None
        columns[f"speedup_{baseline}_high"] = speedup.high if speedup else None
    return columns


def _to_json(value: Any) -> str:
    # default=str: a config may hold paths; the record should take them rather than fail mid-run.
    return json.dumps(value, sort_keys=True, default=str)


def _row_dict(row: sqlite3.Row, json_columns: tuple[str, ...] = ()) -> dict:
    values = dict(row)
    for column in json_columns:
        values[column] = json.loads(values[column])
    return values
