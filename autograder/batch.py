"""Grading a whole class: ``wsgrade grade-all`` with a durable SQLite gradebook.

Each entry of the submissions folder is one student (a file, a folder or a zip; its name is the
student id). For each student the grader writes ``students/<id>/results.json`` and
``feedback.md`` (atomically), then records the grading in ``gradebook.sqlite`` in **one
transaction**; that row is what marks the student as done. Killed at any moment and started
again, grade-all regrades only the students without a row for their current content, so there are
no duplicate rows and no half-written files. ``grades.csv`` is rebuilt from the gradebook at the
end. Each student is graded in a worker process of a pool (``--jobs``), each of which runs its own
sandbox for the student's code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from autograder import __version__
from autograder.sandbox.client import Limits
from autograder.tasks import PARTS

__all__ = [
    "BatchSummary",
    "ClassReport",
    "class_report",
    "entry_digest",
    "grade_all",
    "list_entries",
    "open_gradebook",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gradings (
    id INTEGER PRIMARY KEY,
    student TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    status TEXT NOT NULL,            -- graded | not-a-submission | grader-error
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    execution_time REAL NOT NULL,
    output TEXT NOT NULL,
    current INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS one_current_grading ON gradings(student) WHERE current = 1;
CREATE TABLE IF NOT EXISTS test_results (
    grading_id INTEGER NOT NULL REFERENCES gradings(id),
    name TEXT NOT NULL,
    task_id TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    status TEXT NOT NULL,
    mistake TEXT,
    tags TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS test_results_by_grading ON test_results(grading_id);
"""
_HASH_LIMIT = 64 * 1024 * 1024  # bytes hashed per file; beyond it only the size counts
_ID = re.compile(r"[^A-Za-z0-9._-]+")


def open_gradebook(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a gradebook; WAL mode so a reader never sees half a student.

    Args:
        path: the ``.sqlite`` file.

    Returns:
        The connection.
    """
    connection = sqlite3.connect(path, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(_SCHEMA)
    return connection


def list_entries(folder: Path) -> list[tuple[str, Path]]:
    """The students of a submissions folder, sorted: ``(student id, path)``.

    Args:
        folder: the folder.

    Returns:
        One pair per entry (hidden entries are ignored).

    Raises:
        ValueError: if two entries map to the same student id.
    """
    entries: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__MACOSX":
            continue
        student = _ID.sub("_", path.stem if path.is_file() else path.name).strip("_") or "unnamed"
        if student in entries:
            raise ValueError(f"{entries[student].name} and {path.name} are both student {student!r}; rename one")
        entries[student] = path
    return list(entries.items())


def entry_digest(path: Path) -> str:
    """A hash of a student's entry as handed in (file, folder or zip), to skip unchanged work.

    Args:
        path: the entry.

    Returns:
        A hex digest.
    """
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode() + b"\0")
        digest.update(str(file.stat().st_size).encode() + b"\0")
        with open(file, "rb") as handle:
            remaining = _HASH_LIMIT
            while remaining and (chunk := handle.read(min(1 << 20, remaining))):
                digest.update(chunk)
                remaining -= len(chunk)
    return digest.hexdigest()


def _grade_one(student: str, path: str, limits: Limits, out_dir: str, performance: bool) -> dict[str, Any]:
    """Grade one student in a pool process; write their files; return plain data for the gradebook."""
    from autograder.grading import grade
    from autograder.report import feedback_markdown, write_json_atomic, write_text_atomic
    from autograder.similarity import write_submitted_code
    from autograder.submission import SubmissionError

    started = datetime.now(UTC).isoformat(timespec="seconds")
    folder = Path(out_dir) / "students" / student
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any]
    try:
        report = grade(path, limits=limits, performance=performance, hide=(Path(out_dir), Path(path).parent))
    except SubmissionError as problem:
        results = {"score": 0, "execution_time": 0, "output": f"Not graded: {problem}", "tests": []}
        status, feedback, max_score = "not-a-submission", f"# Not graded\n\n{problem}\n", 0.0
    except Exception as problem:  # the grader failed: record it, never blame the student
        message = f"Grader error ({type(problem).__name__}): {problem}"
        results = {"score": 0, "execution_time": 0, "output": message, "tests": []}
        status, feedback, max_score = "grader-error", f"# Grader error\n\n{problem}\n", 0.0
    else:
        results = report.to_gradescope()
        status = "grader-error" if report.internal_errors else "graded"
        feedback, max_score = feedback_markdown(report), report.max_score
    write_json_atomic(results, folder / "results.json")
    write_text_atomic(feedback, folder / "feedback.md")
    write_submitted_code(Path(path), folder)  # for `wsgrade similarity OUT`; never affects the grade
    return {
        "student": student,
        "status": status,
        "started_at": started,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "score": float(results["score"]),
        "max_score": float(max_score),
        "execution_time": float(results["execution_time"]),
        "output": str(results["output"]),
        "tests": [
            (
                t["name"],
                t["extra_data"]["task"],
                t["score"],
                t["max_score"],
                t["status"],
                t["extra_data"]["mistake"],
                json.dumps(t["tags"]),
            )
            for t in results["tests"]
        ],
    }


def _record(connection: sqlite3.Connection, row: dict[str, Any], digest: str) -> None:
    """Store one student's grading: a single transaction, replacing their previous current row."""
    with connection:
        connection.execute("UPDATE gradings SET current = 0 WHERE student = ? AND current = 1", (row["student"],))
        cursor = connection.execute(
            "INSERT INTO gradings (student, content_sha256, grader_version, started_at, finished_at, status, score, "
            "max_score, execution_time, output) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row["student"],
                digest,
                __version__,
                row["started_at"],
                row["finished_at"],
                row["status"],
                row["score"],
                row["max_score"],
                row["execution_time"],
                row["output"],
            ),
        )
        connection.executemany(
            "INSERT INTO test_results (grading_id, name, task_id, score, max_score, status, mistake, tags) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(cursor.lastrowid, *test) for test in row["tests"]],
        )


def _write_grades_csv(connection: sqlite3.Connection, path: Path) -> None:
    from autograder.report import write_text_atomic

    parts = {part: f"part{part}" for part in PARTS}
    rows = connection.execute(
        "SELECT g.student, g.score, g.status, t.task_id, t.score FROM gradings g "
        "LEFT JOIN test_results t ON t.grading_id = g.id WHERE g.current = 1 ORDER BY g.student"
    ).fetchall()
    table: dict[str, dict[str, Any]] = {}
    for student, total, status, task_id, score in rows:
        entry = table.setdefault(student, {"student": student, "total": round(total, 2), "status": status})
        entry.update({column: entry.get(column, 0.0) for column in parts.values()})
        if task_id:
            column = parts[int(task_id.split(".")[0])]
            entry[column] = round(entry[column] + score, 4)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["student", "total", *parts.values(), "status"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.values())
    write_text_atomic(buffer.getvalue(), path)


@dataclass(frozen=True)
class BatchSummary:
    """What a grade-all run did.

    Attributes:
        graded: students graded in this run.
        skipped: students whose content was unchanged since their last grading.
        seconds: wall time of the run.
        slowest: ``(student, seconds)`` of the slowest grading in this run, if any.
    """

    graded: tuple[str, ...]
    skipped: tuple[str, ...]
    seconds: float
    slowest: tuple[str, float] | None


@contextmanager
def _pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_die_with_parent)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _die_with_parent() -> None:
    """A pool process gets SIGTERM when grade-all dies (even by SIGKILL), and so closes its sandboxes."""
    import ctypes
    import signal

    from autograder.interrupt import stop_on_sigterm

    with suppress(OSError, AttributeError):  # not Linux: the pool then outlives a killed grade-all
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    stop_on_sigterm()


#: Gradings of one student that may kill their pool process before it counts as a grader error.
POOL_DEATHS_ALLOWED = 2


def _lost_row(student: str, tries: int) -> dict[str, Any]:
    """The gradebook row of a student whose grading killed its pool process every time."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    message = (
        f"Grader error: the process grading this submission died {tries} times (killed, most often for memory, by "
        "the machine); this is not a verdict on the code. Regrade it with `wsgrade grade` to see more."
    )
    return {
        "student": student,
        "status": "grader-error",
        "started_at": now,
        "finished_at": now,
        "score": 0.0,
        "max_score": 0.0,
        "execution_time": 0.0,
        "output": message,
        "tests": [],
    }


def grade_all(
    submissions: Path,
    out_dir: Path,
    *,
    jobs: int = 1,
    regrade: bool = False,
    performance: bool = True,
    limits: Limits | None = None,
    allow_unisolated: bool = False,
    on_progress: Callable[[str, dict[str, Any], int, int], None] | None = None,
) -> BatchSummary:
    """Grade every student in ``submissions`` into ``out_dir`` (see the module docstring).

    Args:
        submissions: the folder with one entry per student.
        out_dir: where results, feedback, grades.csv and gradebook.sqlite go.
        jobs: students graded at once.
        regrade: regrade students whose content did not change.
        performance: run the timing tests (Task 5.2/5.3).
        limits: resource limits for student code.
        allow_unisolated: grade even where student code's files are not protected (``process``
            isolation); without it such a run is refused.
        on_progress: called after each student with ``(student, row, done, total)``.

    Returns:
        A summary of the run.

    Raises:
        ValueError: if ``submissions`` is not a folder or two entries share an id.
        autograder.grading.UnisolatedRefused: for unprotected isolation without ``allow_unisolated``.
    """
    from autograder.grading import require_file_protection

    require_file_protection(limits, allow_unisolated=allow_unisolated, where="grade-all")
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a folder; grade-all expects a folder with one entry per student")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = limits or Limits()
    entries = list_entries(submissions)
    with closing(open_gradebook(out_dir / "gradebook.sqlite")) as connection:
        current = dict(
            connection.execute(
                "SELECT student, content_sha256 FROM gradings "
                "WHERE current = 1 AND grader_version = ? AND status != 'grader-error'",
                (__version__,),
            ).fetchall()
        )
        todo, skipped = [], []
        for student, path in entries:
            digest = entry_digest(path)
            if not regrade and current.get(student) == digest:
                skipped.append(student)
            else:
                todo.append((student, path, digest))
        graded: list[str] = []
        slowest: tuple[str, float] | None = None
        queue = list(todo)
        deaths: Counter[str] = Counter()
        while queue:
            with _pool(max(1, jobs)) as pool:
                pending: dict[Future[dict[str, Any]], tuple[str, Path, str]] = {}
                broken = False
                while (queue and not broken) or pending:
                    while queue and not broken and len(pending) < max(1, jobs):
                        if any(deaths[s] for s, _, _ in pending.values()) or (deaths[queue[0][0]] and pending):
                            break  # a grading that killed a pool process is tried again on its own
                        student, path, digest = queue.pop(0)
                        future = pool.submit(_grade_one, student, str(path), limits, str(out_dir), performance)
                        pending[future] = (student, path, digest)
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        student, path, digest = pending.pop(future)
                        try:
                            row = future.result()
                        except BrokenProcessPool:  # a pool process died: each grading then in it is tried again
                            broken = True
                            deaths[student] += 1
                            if deaths[student] <= POOL_DEATHS_ALLOWED:
                                queue.insert(0, (student, path, digest))
                                continue
                            row = _lost_row(student, deaths[student])
                        _record(connection, row, digest)
                        graded.append(student)
                        if slowest is None or row["execution_time"] > slowest[1]:
                            slowest = (student, row["execution_time"])
                        if on_progress:
                            on_progress(student, row, len(graded), len(todo))
        _write_grades_csv(connection, out_dir / "grades.csv")
    return BatchSummary(tuple(graded), tuple(skipped), time.perf_counter() - started, slowest)


@dataclass(frozen=True)
class ClassReport:
    """The class overview an instructor reads before the next lecture.

    Attributes:
        scores: ``(student, score, max_score)`` of each current grading.
        failing_tests: ``(test name, students failing it, students graded)``, most failed first.
        mistakes: ``(mistake id, students making it)``, most common first.
        not_graded: ``(student, reason)`` for entries that were not submissions or hit grader errors.
    """

    scores: tuple[tuple[str, float, float], ...]
    failing_tests: tuple[tuple[str, int, int], ...]
    mistakes: tuple[tuple[str, int], ...]
    not_graded: tuple[tuple[str, str], ...]

    def histogram(self, bins: int = 10) -> list[tuple[float, float, int]]:
        """``(low, high, count)`` of scores as a percentage of the maximum."""
        percents = [100 * s / m if m else 0.0 for _, s, m in self.scores]
        width = 100 / bins
        counts = Counter(min(int(p // width), bins - 1) for p in percents)
        return [(i * width, (i + 1) * width, counts.get(i, 0)) for i in range(bins)]

    def text(self) -> str:
        """The report as plain text."""
        lines = [f"{len(self.scores)} students graded"]
        if self.scores:
            percents = [100 * s / m if m else 0.0 for _, s, m in self.scores]
            lines.append(f"mean {statistics.mean(percents):.1f}%, median {statistics.median(percents):.1f}%")
            lines += ["", "score histogram (% of maximum)"]
            top = max(count for _, _, count in self.histogram()) or 1
            for low, high, count in self.histogram():
                lines.append(f"  {low:3.0f}-{high:3.0f}%  {'#' * round(30 * count / top):30s} {count}")
        if self.failing_tests:
            lines += ["", "tests most students fail"]
            lines += [f"  {failed:3d}/{total}  {name}" for name, failed, total in self.failing_tests[:10]]
        if self.mistakes:
            lines += ["", "most common recognised mistakes"]
            lines += [f"  {count:3d} students  {mistake}" for mistake, count in self.mistakes[:10]]
        if self.not_graded:
            lines += ["", "not graded"] + [f"  {student}: {reason[:150]}" for student, reason in self.not_graded]
        return "\n".join(lines)


def class_report(out_dir: Path) -> ClassReport:
    """Build the class overview from a grade-all output folder.

    Args:
        out_dir: the folder holding ``gradebook.sqlite``.

    Returns:
        The report.

    Raises:
        FileNotFoundError: if there is no gradebook there.
    """
    path = out_dir / "gradebook.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"no gradebook in {out_dir}; run `wsgrade grade-all SUBMISSIONS --out {out_dir}` first")
    with closing(open_gradebook(path)) as connection:
        gradings = connection.execute(
            "SELECT id, student, score, max_score, status, output FROM gradings WHERE current = 1 ORDER BY student"
        ).fetchall()
        graded = [g for g in gradings if g[4] == "graded"]
        ids = [g[0] for g in graded]
        placeholders = ",".join("?" * len(ids))
        tests = connection.execute(
            f"SELECT grading_id, name, status, mistake FROM test_results WHERE grading_id IN ({placeholders})", ids
        ).fetchall()
    failures: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    mistakes: dict[str, set[int]] = {}
    for grading_id, name, status, mistake in tests:
        if status == "skipped":
            continue
        seen[name] += 1
        if status == "failed":
            failures[name] += 1
            if mistake and mistake not in ("not-implemented", "raised"):
                mistakes.setdefault(mistake, set()).add(grading_id)
    return ClassReport(
        scores=tuple((g[1], g[2], g[3]) for g in graded),
        failing_tests=tuple(sorted(((n, f, seen[n]) for n, f in failures.items()), key=lambda t: (-t[1], t[0]))),
        mistakes=tuple(sorted(((m, len(s)) for m, s in mistakes.items()), key=lambda t: (-t[1], t[0]))),
        not_graded=tuple((g[1], g[5]) for g in gradings if g[4] != "graded"),
    )
