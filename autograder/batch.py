"""Grading a whole class: ``wsgrade grade-all`` with a durable SQLite gradebook.

Each entry of the submissions folder is one student (a file, a folder or a zip; its name is the
student id). The ``grade-all`` process is the **coordinator** and the only writer of the output
folder: it reads each entry, hands the loaded code to a grading process, and from the
:class:`GradingOutcome` that comes back (plain, picklable data around a
:class:`~autograder.grading.GradingReport`) writes ``students/<id>/results.json``,
``feedback.md`` and ``submission.py`` (atomically), then records the grading in
``gradebook.sqlite`` in **one transaction**; that row is what marks the student as done. Killed at
any moment and started again, grade-all regrades only the students without a row for their
current content and grading options, so there are no duplicate rows and no half-written files.
``grades.csv`` is rebuilt from the gradebook at the end.

The gradings run in a local pool of processes (``jobs``) or on a Dask cluster
(``cluster``, see :mod:`autograder.cluster`); either way each grading runs its own sandbox for the
student's code, and the row says which worker and which isolation graded it.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from autograder import __version__
from autograder.diagnostics import log_to
from autograder.sandbox.client import Limits
from autograder.tasks import PARTS

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from autograder.grading import GradingReport
    from autograder.submission import PreparedSubmission

__all__ = [
    "POOL_DEATHS_ALLOWED",
    "BatchProgress",
    "BatchSummary",
    "ClassReport",
    "Engine",
    "EngineState",
    "FinishedGrading",
    "GradingJob",
    "GradingOptions",
    "GradingOutcome",
    "JobLoader",
    "OutputBusy",
    "OutputUnusable",
    "Status",
    "class_report",
    "entry_digest",
    "grade_all",
    "list_entries",
    "lost_outcome",
    "open_gradebook",
    "remove_abandoned_scratch",
    "run_scratch",
    "student_id",
]

Status = Literal["graded", "not-a-submission", "grader-error"]

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
#: Schema changes after the first gradebooks, in order; ``PRAGMA user_version`` counts those applied.
#: Only ever append: a gradebook of an older wsgrade is brought up to date when it is opened.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # who graded it: "<hostname> <dask worker address>" or "<hostname> pid <pid>"; empty for old rows
        "ALTER TABLE gradings ADD COLUMN worker TEXT NOT NULL DEFAULT ''",
        # the sandbox's isolation mode (full, uid, user-namespaces, process); empty when nothing ran
        "ALTER TABLE gradings ADD COLUMN isolation TEXT NOT NULL DEFAULT ''",
        # GradingOptions.fingerprint(): a grading counts as current only for the same options
        "ALTER TABLE gradings ADD COLUMN options TEXT NOT NULL DEFAULT ''",
    ),
    (
        # the entry's name as handed in (`王伟.py`, `_..`), beside the file-safe student id
        "ALTER TABLE gradings ADD COLUMN entry TEXT NOT NULL DEFAULT ''",
    ),
)
_HASH_LIMIT = 64 * 1024 * 1024  # bytes hashed per file; beyond it only the size counts
_ID_BYTES = 200  # UTF-8 bytes of an id, well inside the 255 of a file name (and a hash tag's room)
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}


def open_gradebook(path: Path) -> sqlite3.Connection:
    """Open (creating or migrating if needed) a gradebook; WAL mode so a reader never sees half a student.

    Args:
        path: the ``.sqlite`` file.

    Returns:
        The connection.
    """
    connection = sqlite3.connect(path, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.executescript(_SCHEMA)
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version < len(_MIGRATIONS):
        with connection:  # one transaction: a gradebook is migrated entirely or not at all
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")
    return connection


def student_id(name: str) -> str:
    """A readable student id for an entry's name, safe as a folder name on any file system.

    Letters, digits and combining marks of every script are kept (``王伟``, ``José`` in Unicode's
    composed form, ``प्रिया``), and ``.``, ``_`` and ``-`` inside the name; anything else becomes
    ``_``, and the ends lose their dots, dashes and underscores (never ``.`` or ``..``). Where that
    changed the name, a short hash of the original is appended, so that two names that clean up
    alike (``José`` typed decomposed and composed, ``a b`` and ``a+b``, ``_..`` and ``..``) stay
    two students.

    Args:
        name: the entry's name without its extension (a file's stem, a folder's name).

    Returns:
        The id: the name itself where it was already safe.
    """
    composed = unicodedata.normalize("NFC", name)
    kept = (c if c.isalnum() or c in "._-" or unicodedata.category(c).startswith("M") else "\0" for c in composed)
    cleaned = re.sub("\0+", "_", "".join(kept)).strip("._-")
    while len(cleaned.encode()) > _ID_BYTES:  # file names are at most 255 bytes
        cleaned = cleaned[:-1].rstrip("._-")
    if cleaned.upper().partition(".")[0] in _RESERVED:  # Windows device names: CON, NUL, COM1, ...
        cleaned = f"{cleaned}_"
    if cleaned == name:
        return cleaned
    tag = hashlib.sha256(os.fsencode(name)).hexdigest()[:6]
    return f"{cleaned or 'unnamed'}-{tag}"


def list_entries(folder: Path) -> list[tuple[str, Path]]:
    """The students of a submissions folder, sorted: ``(student id, path)`` (see :func:`student_id`).

    Args:
        folder: the folder.

    Returns:
        One pair per entry (hidden entries are ignored).

    Raises:
        ValueError: if two entries are the same student (``ada.py`` and ``ada.zip``), also where
            only letter case tells them apart (they would share a folder on macOS or Windows).
    """
    entries: dict[str, Path] = {}
    folded: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name == "__MACOSX":
            continue
        student = student_id(path.stem if path.is_file() else path.name)
        other = folded.get(student.casefold())
        if other is not None:
            raise ValueError(
                f"{entries[other].name!r} and {path.name!r} are both student {student!r} (letter case aside); "
                "rename one, or move the one that should not be graded out of the folder"
            )
        entries[student] = path
        folded[student.casefold()] = student
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


@dataclass(frozen=True)
class GradingOptions:
    """How every student of a run is graded (``wsgrade grade``'s options, for a class).

    Attributes:
        limits: resource limits (and isolation) for student code.
        performance: run the timing tests (Task 5.2/5.3); ``--no-speed`` is False.
        gpu: ``auto``, ``require`` or ``off`` (see :func:`autograder.grading.grade_prepared`).
        select: a pytest ``-k`` expression: grade only the matching tests.
    """

    limits: Limits = field(default_factory=Limits)
    performance: bool = True
    gpu: Literal["auto", "require", "off"] = "auto"
    select: str | None = None

    def fingerprint(self) -> str:
        """The options as canonical JSON, stored with each row: other options mean a regrade."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class GradingOutcome:
    """What one grading produced: plain, picklable data that a worker hands back to the coordinator.

    Attributes:
        student: the student id.
        status: ``graded``, ``not-a-submission`` or ``grader-error``.
        report: the grading report, when the hidden tests ran.
        message: why there is no report (the entry is not a submission, or the grader failed).
        started_at: when the grading started (ISO 8601, UTC).
        finished_at: when it finished.
        worker: who graded it: ``"<hostname> <dask worker address>"`` or ``"<hostname> pid <pid>"``;
            empty when nothing ran.
        isolation: the sandbox's isolation mode; empty when nothing ran.
        traceback: where the grader itself failed, its traceback (for the grader log, never for
            the student: it names the grader's files).
    """

    student: str
    status: Status
    report: GradingReport | None
    message: str
    started_at: str
    finished_at: str
    worker: str = ""
    isolation: str = ""
    traceback: str = ""

    @property
    def score(self) -> float:
        """Points earned, rounded as in results.json (0 without a report)."""
        return round(sum(round(t.score, 4) for t in self.report.tests), 4) if self.report else 0.0

    @property
    def max_score(self) -> float:
        """Points possible (0 without a report)."""
        return round(self.report.max_score, 4) if self.report else 0.0

    @property
    def execution_time(self) -> float:
        """Seconds the grading took (0 without a report)."""
        return round(self.report.execution_time, 3) if self.report else 0.0

    def results(self) -> dict[str, Any]:
        """Gradescope's ``results.json`` for this student."""
        if self.report is not None:
            return self.report.to_gradescope()
        prefix = "Not graded" if self.status == "not-a-submission" else "Grader error"
        return {"score": 0, "execution_time": 0, "output": f"{prefix}: {self.message}", "tests": []}

    def feedback(self) -> str:
        """The student's ``feedback.md``."""
        from autograder.report import feedback_markdown

        if self.report is not None:
            return feedback_markdown(self.report)
        title = "Not graded" if self.status == "not-a-submission" else "Grader error"
        return f"# {title}\n\n{self.message}\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _worker_name() -> str:
    """``"<hostname> <dask worker address>"`` in a Dask worker, else ``"<hostname> pid <pid>"``."""
    host = socket.gethostname()
    if "distributed" in sys.modules:  # never imported by a local pool process
        from distributed import get_worker

        with suppress(ValueError):  # not in a worker's task
            return f"{host} {get_worker().address}"
    return f"{host} pid {os.getpid()}"


#: One grading at a time per process: pytest's capture, hypothesis and the environment are
#: process-wide, so a Dask worker started with more than one thread still grades one by one.
_ONE_AT_A_TIME = threading.Lock()


def _grade_one(
    student: str, submission: PreparedSubmission, options: GradingOptions, hide: tuple[Path, ...], version: str
) -> GradingOutcome:
    """Grade one loaded submission where this runs (a pool process or a Dask worker); write nothing.

    Args:
        student: the student id.
        submission: the code, loaded by the coordinator.
        options: how to grade.
        hide: paths the student's code must not see (the output and submissions folders).
        version: the coordinator's wsgrade version; a worker with another one refuses to grade.

    Returns:
        The outcome; every failure of the grader is one, never an exception.
    """
    from autograder.grading import grade_prepared

    with _ONE_AT_A_TIME:
        started, worker = _now(), _worker_name()
        if version != __version__:
            message = (
                f"this worker runs wsgrade {__version__} and the coordinator {version}; install the same version on "
                "every worker (pip install on the cluster's environment) and grade again"
            )
            return GradingOutcome(student, "grader-error", None, message, started, _now(), worker)
        try:
            report = grade_prepared(
                submission,
                limits=options.limits,
                performance=options.performance,
                gpu=options.gpu,
                select=options.select,
                hide=hide,
            )
        except Exception as problem:  # the grader failed: record it, never blame the student
            message = f"{type(problem).__name__}: {problem}"
            trace = traceback.format_exc()
            return GradingOutcome(student, "grader-error", None, message, started, _now(), worker, traceback=trace)
        status: Status = "grader-error" if report.internal_errors else "graded"
        return GradingOutcome(student, status, report, "", started, _now(), worker, str(report.sandbox.get("mode", "")))


@dataclass(frozen=True)
class GradingJob:
    """One student to grade: their id, their entry and its digest."""

    student: str
    path: Path
    digest: str


@dataclass(frozen=True)
class FinishedGrading:
    """A finished grading, as an engine yields it to the coordinator."""

    job: GradingJob
    submission: PreparedSubmission | None
    outcome: GradingOutcome


class JobLoader:
    """Read a student's entry on the coordinator: the arguments of :func:`_grade_one`, or the outcome."""

    def __init__(self, options: GradingOptions, hide: tuple[Path, ...]) -> None:
        self.options = options
        self.hide = hide

    def __call__(self, job: GradingJob) -> tuple[PreparedSubmission, tuple[Any, ...]] | GradingOutcome:
        from autograder.submission import SubmissionError, load_submission

        started = _now()
        try:
            submission = load_submission(job.path)
        except SubmissionError as problem:
            return GradingOutcome(job.student, "not-a-submission", None, str(problem), started, _now())
        except Exception as problem:  # a loader bug: the grader's fault, never the student's
            message = f"{type(problem).__name__} while reading the entry: {problem}"
            trace = traceback.format_exc()
            return GradingOutcome(job.student, "grader-error", None, message, started, _now(), traceback=trace)
        return submission, (job.student, submission, self.options, self.hide, __version__)


def lost_outcome(student: str, what: str) -> GradingOutcome:
    """The outcome of a student whose grading killed the process grading it every time it was tried.

    Args:
        student: the student id.
        what: what happened, e.g. ``"the process grading this submission died 3 times"``.
    """
    now = _now()
    message = f"{what}; this is not a verdict on the code. Regrade it with `wsgrade grade` to see more."
    return GradingOutcome(student, "grader-error", None, message, now, now)


class Engine(Protocol):
    """A way to run gradings for the coordinator: the local pool, or a Dask cluster."""

    def state(self) -> EngineState:
        """Where the gradings in flight stand."""
        ...

    def results(self, jobs: Iterable[GradingJob]) -> Generator[FinishedGrading | None, None, None]:
        """Grade ``jobs``: each finished grading once, in the order they finish; None about once a second."""
        ...


@dataclass(frozen=True)
class EngineState:
    """What the gradings in flight are doing, for the progress bar.

    Attributes:
        running: gradings submitted and not finished (on a cluster: being processed by a worker).
        workers: grading processes alive (pool processes, or the cluster's workers).
        retried: gradings started again after their process died.
    """

    running: int
    workers: int
    retried: int


class _PoolEngine:
    """Gradings in a local pool of spawned processes; a dead process costs a retry, then its student."""

    def __init__(self, jobs: int, prepare: JobLoader, scratch: Path) -> None:
        self.jobs = max(1, jobs)
        self.prepare = prepare
        self.scratch = scratch
        self.running = 0
        self.retried = 0

    def state(self) -> EngineState:
        return EngineState(self.running, self.jobs, self.retried)

    def results(self, jobs: Iterable[GradingJob]) -> Generator[FinishedGrading | None, None, None]:
        queue: deque[GradingJob] = deque(jobs)
        deaths: Counter[str] = Counter()
        loaded: dict[str, tuple[PreparedSubmission, tuple[Any, ...]]] = {}
        while queue:
            with _pool(self.jobs, self.scratch) as pool:
                pending: dict[Future[GradingOutcome], GradingJob] = {}
                broken = False
                while (queue and not broken) or pending:
                    while queue and not broken and len(pending) < self.jobs:
                        if any(deaths[j.student] for j in pending.values()) or (deaths[queue[0].student] and pending):
                            break  # a grading that killed a pool process is tried again on its own
                        job = queue.popleft()
                        prepared = loaded.get(job.student) or self.prepare(job)
                        if isinstance(prepared, GradingOutcome):
                            yield FinishedGrading(job, None, prepared)
                            continue
                        loaded[job.student] = prepared
                        pending[pool.submit(_grade_one, *prepared[1])] = job
                    self.running = len(pending)
                    if not pending:
                        continue
                    done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                    if not done:
                        yield None  # a tick: the progress bar's clock and counts
                    for future in done:
                        job = pending.pop(future)
                        self.running = len(pending)
                        submission = loaded[job.student][0]
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:  # a pool process died: each grading then in it is tried again
                            broken = True
                            deaths[job.student] += 1
                            if deaths[job.student] <= POOL_DEATHS_ALLOWED:
                                self.retried += 1
                                queue.appendleft(job)
                                continue
                            outcome = lost_outcome(
                                job.student,
                                f"the process grading this submission died {deaths[job.student]} times (killed, most "
                                "often for memory, by the machine)",
                            )
                        del loaded[job.student]
                        yield FinishedGrading(job, submission, outcome)


@contextmanager
def _pool(jobs: int, scratch: Path) -> Iterator[ProcessPoolExecutor]:
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_start_pool_process,
        initargs=(str(scratch), os.getpid()),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_pool_process(scratch: str, coordinator: int) -> None:
    """Set up a pool process: its temporary files go in the run's scratch folder, and it dies with
    grade-all (even one killed by SIGKILL, even before this ran).

    Its parent's death sends it SIGTERM (``PR_SET_PDEATHSIG``, Linux), which unwinds the grading
    like Ctrl-C and so closes its sandboxes; but the pool's own loop would then wait for the next
    grading for ever, so a watchdog thread ends the process once its parent is gone.
    """
    import ctypes
    import signal

    from autograder.interrupt import stop_on_sigterm

    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    told = False
    with suppress(OSError, AttributeError):  # not Linux: the watchdog alone, within a second
        told = ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM)) == 0  # PR_SET_PDEATHSIG
    stop_on_sigterm()
    # The coordinator's pid comes from the coordinator: a process still starting when grade-all was
    # killed would otherwise take its new parent (init) for grade-all and wait on it for ever.
    watchdog = threading.Thread(target=_exit_without_parent, args=(coordinator, told), daemon=True)
    watchdog.start()


#: Seconds an orphaned pool process has to close its sandboxes before it exits anyway.
_ORPHAN_GRACE_S = 10.0


def _exit_without_parent(parent: int, told: bool) -> None:
    """A pool process's watchdog: once grade-all is gone, unwind the grading (SIGTERM, unless the
    kernel sent it already) and exit after a grace period, even if the pool's loop still waits."""
    import signal

    while os.getppid() == parent:
        time.sleep(0.5)
    if not told:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_ORPHAN_GRACE_S)
    os._exit(128 + signal.SIGTERM)


#: Gradings of one student that may kill their pool process before it counts as a grader error.
POOL_DEATHS_ALLOWED = 2


def _write_student_files(out_dir: Path, done: FinishedGrading) -> None:
    """The coordinator writes a student's results.json, feedback.md and submission.py (atomically)."""
    from autograder.report import write_json_atomic, write_text_atomic
    from autograder.similarity import CODE_FILE, submitted_code

    folder = out_dir / "students" / done.job.student
    with _guard(folder, out_dir):
        folder.mkdir(parents=True, exist_ok=True)
    with _guard(folder / "results.json", out_dir):
        write_json_atomic(done.outcome.results(), folder / "results.json")
    with _guard(folder / "feedback.md", out_dir):
        write_text_atomic(done.outcome.feedback(), folder / "feedback.md")
    with _guard(folder / CODE_FILE, out_dir):
        if done.submission is not None:  # for `wsgrade similarity OUT`; never affects the grade
            write_text_atomic(submitted_code(done.submission), folder / CODE_FILE)
        else:  # an older copy would stand for an entry that is no longer a submission
            (folder / CODE_FILE).unlink(missing_ok=True)


def _record(connection: sqlite3.Connection, job: GradingJob, outcome: GradingOutcome, options: str) -> None:
    """Store one student's grading from its outcome: one transaction, replacing their current row."""
    report = outcome.report
    with connection:
        connection.execute("UPDATE gradings SET current = 0 WHERE student = ? AND current = 1", (job.student,))
        cursor = connection.execute(
            "INSERT INTO gradings (student, content_sha256, grader_version, started_at, finished_at, status, score, "
            "max_score, execution_time, output, worker, isolation, options, entry) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.student,
                job.digest,
                report.grader_version if report else __version__,
                outcome.started_at,
                outcome.finished_at,
                outcome.status,
                outcome.score,
                outcome.max_score,
                outcome.execution_time,
                report.output if report else str(outcome.results()["output"]),
                outcome.worker,
                outcome.isolation,
                options,
                job.path.name,
            ),
        )
        connection.executemany(
            "INSERT INTO test_results (grading_id, name, task_id, score, max_score, status, mistake, tags) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    cursor.lastrowid,
                    test.name,
                    test.task_id,
                    round(test.score, 4),
                    round(test.max_score, 4),
                    test.status,
                    test.mistake,
                    json.dumps(list(test.tags)),
                )
                for test in (report.tests if report else ())
            ],
        )


def _write_grades_csv(connection: sqlite3.Connection, path: Path) -> None:
    from autograder.report import write_text_atomic

    parts = {part: f"part{part}" for part in PARTS}
    rows = connection.execute(
        "SELECT g.student, g.entry, g.score, g.status, t.task_id, t.score FROM gradings g "
        "LEFT JOIN test_results t ON t.grading_id = g.id WHERE g.current = 1 ORDER BY g.student"
    ).fetchall()
    table: dict[str, dict[str, Any]] = {}
    for student, name, total, status, task_id, score in rows:
        entry = table.setdefault(
            student, {"student": student, "total": round(total, 2), "status": status, "entry": name}
        )
        entry.update({column: entry.get(column, 0.0) for column in parts.values()})
        if task_id:
            column = parts[int(task_id.split(".")[0])]
            entry[column] = round(entry[column] + score, 4)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["student", "total", *parts.values(), "status", "entry"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.values())
    write_text_atomic(buffer.getvalue(), path)


@dataclass(frozen=True)
class BatchSummary:
    """What a grade-all run did.

    Attributes:
        graded: students graded in this run.
        skipped: students whose content and options were unchanged since their last grading.
        grader_errors: students of this run whose grading failed for a reason that is not theirs.
        seconds: wall time of the run.
    """

    graded: tuple[str, ...]
    skipped: tuple[str, ...]
    grader_errors: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class BatchProgress:
    """Where a grade-all run stands, after each student and about once a second.

    Attributes:
        done: students finished in this run.
        total: students to grade in this run.
        running: gradings in flight.
        failed: students of this run recorded as grader errors.
        workers: grading processes (or cluster workers) alive.
        retried: gradings started again after their process died.
        last: the outcome just recorded (None for a tick of the clock).
    """

    done: int
    total: int
    running: int
    failed: int
    workers: int
    retried: int
    last: GradingOutcome | None


def grade_all(
    submissions: Path,
    out_dir: Path,
    *,
    jobs: int = 1,
    cluster: str | None = None,
    regrade: bool = False,
    performance: bool = True,
    limits: Limits | None = None,
    gpu: Literal["auto", "require", "off"] = "auto",
    select: str | None = None,
    allow_unisolated: bool = False,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchSummary:
    """Grade every student in ``submissions`` into ``out_dir`` (see the module docstring).

    Args:
        submissions: the folder with one entry per student.
        out_dir: where results, feedback, grades.csv and gradebook.sqlite go.
        jobs: students graded at once in the local pool (ignored with ``cluster``).
        cluster: grade on Dask instead: a scheduler's address (``tcp://host:8786``), or ``local:N``
            for a new local cluster of N worker processes (see :mod:`autograder.cluster`).
        regrade: regrade students whose content did not change.
        performance: run the timing tests (Task 5.2/5.3).
        limits: resource limits for student code.
        gpu: the GPU tests: ``auto``, ``require`` or ``off``.
        select: grade only the tests matching this pytest ``-k`` expression.
        allow_unisolated: grade even where student code's files are not protected (``process``
            isolation); without it such a run is refused.
        on_progress: called after each student and about once a second with where the run stands.

    Returns:
        A summary of the run.

    Raises:
        ValueError: if ``submissions`` is not a folder, two entries share an id, or ``cluster`` is
            not an address.
        autograder.grading.UnisolatedRefused: for unprotected isolation without ``allow_unisolated``.
        autograder.grading.GpuUnavailable: ``gpu="require"`` for a local run on a machine without one.
        autograder.cluster.ClusterUnavailable: Dask is not installed or the scheduler cannot be reached.
    """
    from autograder.grading import GpuUnavailable, gpu_available, require_file_protection

    require_file_protection(limits, allow_unisolated=allow_unisolated, where="grade-all")
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a folder; grade-all expects a folder with one entry per student")
    if gpu == "require" and cluster is None and not gpu_available():  # on a cluster, the workers' GPUs count
        raise GpuUnavailable("--gpu require: CuPy with a CUDA device is needed, and none is usable here")
    started = time.perf_counter()
    options = GradingOptions(limits or Limits(), performance, gpu, select)
    fingerprint = options.fingerprint()
    entries = list_entries(submissions)
    gradebook = out_dir / "gradebook.sqlite"
    with _guard(out_dir, out_dir):
        out_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        # The students' code and feedback are for the course staff only: no other user of the
        # machine (a later class's sandbox among them) may read a past run's folder.
        students = out_dir / "students"
        students.mkdir(mode=0o750, exist_ok=True)
        students.chmod(0o750)
    with _lock_output(out_dir), run_scratch() as scratch, _grader_log(out_dir / GRADER_LOG):
        with _guard(gradebook, out_dir):
            connection = open_gradebook(gradebook)
        with closing(connection):
            with _guard(gradebook, out_dir):
                current = {
                    student: (digest, saved)
                    for student, digest, saved in connection.execute(
                        "SELECT student, content_sha256, options FROM gradings "
                        "WHERE current = 1 AND grader_version = ? AND status != 'grader-error'",
                        (__version__,),
                    )
                }
            todo, skipped = [], []
            for student, path in entries:
                digest = entry_digest(path)
                if not regrade and current.get(student) == (digest, fingerprint):
                    skipped.append(student)
                else:
                    todo.append(GradingJob(student, path, digest))
            graded: list[str] = []
            failed: list[str] = []
            prepare = JobLoader(options, (out_dir.resolve(), submissions.resolve()))
            with _engine(jobs, cluster, prepare, scratch) as engine:

                def report(last: GradingOutcome | None) -> None:
                    if on_progress:
                        state = engine.state()
                        on_progress(
                            BatchProgress(
                                len(graded), len(todo), state.running, len(failed), state.workers, state.retried, last
                            )
                        )

                report(None)
                with closing(engine.results(todo)) as results:
                    for done in results:
                        if done is None:
                            report(None)
                            continue
                        _write_student_files(out_dir, done)
                        with _guard(gradebook, out_dir):
                            _record(connection, done.job, done.outcome, fingerprint)
                        _log_outcome(done.outcome)
                        graded.append(done.job.student)
                        if done.outcome.status == "grader-error":
                            failed.append(done.job.student)
                        report(done.outcome)
                with _guard(out_dir / "grades.csv", out_dir):
                    _write_grades_csv(connection, out_dir / "grades.csv")
    return BatchSummary(tuple(graded), tuple(skipped), tuple(failed), time.perf_counter() - started)


#: The log beside the gradebook: one line per student graded, every grader error with its traceback.
GRADER_LOG = "grader.log"


@contextmanager
def _grader_log(path: Path) -> Iterator[None]:
    """Log this run's ``autograder`` records of level INFO and above to ``path`` (appended)."""
    handler = log_to(path, level=logging.INFO, rotate=False)
    _log.info("grade-all %s started (pid %d)", __version__, os.getpid())
    try:
        yield
    finally:
        _log.info("grade-all finished")
        if handler is not None:
            logging.getLogger("autograder").removeHandler(handler)
            handler.close()


def _log_outcome(outcome: GradingOutcome) -> None:
    """One line per student; a grader error with its message and every traceback it has."""
    where = f" on {outcome.worker}" if outcome.worker else ""
    if outcome.status == "graded":
        _log.info("%s: %.2f / %.2f%s (%s)", outcome.student, outcome.score, outcome.max_score, where, outcome.isolation)
    elif outcome.status == "not-a-submission":
        _log.info("%s: not a submission: %s", outcome.student, outcome.message)
    else:
        trace = f"\n{outcome.traceback.rstrip()}" if outcome.traceback else ""
        _log.error("%s: grader error%s: %s%s", outcome.student, where, outcome.message, trace)
    for test in outcome.report.internal_errors if outcome.report else ():
        _log.error("%s: internal error in %s:\n%s", outcome.student, test.name, test.traceback.rstrip())


class OutputUnusable(RuntimeError):
    """grade-all cannot go on with its output folder (a full disk, a damaged gradebook, no rights).

    The message names the file and says what to do; everything recorded before is kept.
    """


class OutputBusy(RuntimeError):
    """Another grade-all holds the output folder's lock."""


_LOCK_FILE = ".grade-all.lock"


@contextmanager
def _lock_output(out_dir: Path) -> Iterator[None]:
    """Hold ``OUT/.grade-all.lock`` (an ``flock``, released by the kernel if this process dies)."""
    path = out_dir / _LOCK_FILE
    with _guard(path, out_dir):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode(errors="replace").strip() or "a process that has not said which"
            raise OutputBusy(
                f"{out_dir} is being graded by another grade-all ({holder}); two runs on one folder would grade "
                "every student twice. Wait for it to finish (or stop it), then run again: this run would only "
                "grade what that one leaves to do"
            ) from None
        with suppress(OSError):  # who holds it, for the message above; a full disk must not stop the run
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {_now()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


#: Each run's scratch folder in the temporary folder: every sandbox, hypothesis home and reference
#: twin of its pool processes (or local cluster's workers) lives inside, and its ``lock`` is held
#: while the run lives. A later run removes those whose lock is free: an earlier run was killed.
_RUN_PREFIX = "wsgrade-run-"
_RUN_LOCK = "lock"
_UNLOCKED_GRACE_S = 600  # a folder without its lock file yet may be a run starting this very moment


@contextmanager
def run_scratch() -> Iterator[Path]:
    """A scratch folder in the temporary folder, locked while it lives, after removing those of
    runs that were killed (see :func:`remove_abandoned_scratch`).

    Yields:
        The folder (0755: a sandbox uid passes through it to its own scratch folder inside).
    """
    base = Path(tempfile.gettempdir())
    remove_abandoned_scratch(base)
    folder = Path(tempfile.mkdtemp(prefix=_RUN_PREFIX, dir=base))
    folder.chmod(0o755)  # a sandbox uid passes through to its own scratch folder inside
    fd = os.open(folder / _RUN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def remove_abandoned_scratch(base: Path) -> list[Path]:
    """Remove the scratch folders of grade-all runs that were killed (their lock is free).

    Args:
        base: the temporary folder the runs used.

    Returns:
        The folders removed.
    """
    removed = []
    for folder in base.glob(f"{_RUN_PREFIX}*"):
        try:
            fd = os.open(folder / _RUN_LOCK, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            with suppress(OSError):
                if time.time() - folder.stat().st_mtime > _UNLOCKED_GRACE_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextmanager
def _guard(file: Path, out_dir: Path) -> Iterator[None]:
    """Turn a failure to write ``file`` (or read the gradebook) into :class:`OutputUnusable`."""
    try:
        yield
    except (OSError, sqlite3.Error) as problem:
        raise OutputUnusable(_explain(problem, file, out_dir)) from problem


def _explain(problem: OSError | sqlite3.Error, file: Path, out_dir: Path) -> str:
    gradebook = out_dir / "gradebook.sqlite"
    code = getattr(problem, "sqlite_errorcode", None)
    kept = f"Every student recorded before is kept in {gradebook}"
    if (isinstance(problem, OSError) and problem.errno in (errno.ENOSPC, errno.EDQUOT)) or code == sqlite3.SQLITE_FULL:
        try:
            free = f"{shutil.disk_usage(out_dir).free / 1024**2:.1f} MB free"
        except OSError:
            free = "free space unknown"
        return (
            f"{file}: the disk (or quota) holding {out_dir} is full ({free}). {kept}; free some space there, then run "
            "the same command again: it goes on with the students not yet recorded"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return (
            f"{gradebook} is damaged ({problem}); nothing more was written to it. Move it aside "
            f"(mv {gradebook} {gradebook}.damaged) and run again: every student is then regraded into a new "
            f"gradebook. Rows may be saved from the old one with: sqlite3 {gradebook}.damaged .recover | "
            "sqlite3 recovered.sqlite"
        )
    reason = problem.strerror if isinstance(problem, OSError) and problem.strerror else str(problem)
    return f"{file} cannot be written or read ({reason}). {kept}; fix that, then run the same command again"


@contextmanager
def _engine(jobs: int, cluster: str | None, prepare: JobLoader, scratch: Path) -> Iterator[Engine]:
    if cluster is None:
        yield _PoolEngine(jobs, prepare, scratch)
        return
    from autograder.cluster import ClusterEngine, connect

    with connect(cluster, scratch=scratch) as client:
        yield ClusterEngine(client, prepare)


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
        OutputUnusable: the gradebook cannot be read (damaged, not a gradebook, unreadable).
    """
    path = out_dir / "gradebook.sqlite"
    if not path.exists():
        raise FileNotFoundError(f"no gradebook in {out_dir}; run `wsgrade grade-all SUBMISSIONS --out {out_dir}` first")
    with _guard(path, out_dir), closing(open_gradebook(path)) as connection:
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
