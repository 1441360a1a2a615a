"""grade-all survives its faults: a pool process killed mid-grading (the OOM killer does this), a full
disk, a damaged gradebook, a second run on the same folder, and grade-all itself killed."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autograder import batch
from autograder.batch import BatchProgress, OutputUnusable, grade_all, open_gradebook, remove_abandoned_scratch
from autograder.cli import main
from autograder.sandbox.client import Limits
from autograder.sandbox.isolation import choose_isolation
from tests.corpus import reference_source

FAST = "dense_hand_examples"  # one quick hidden test: these tests are about the run, not the grading


def _grade_or_die(student: str, submission: Any, options: Any, hide: tuple[Path, ...], version: str) -> Any:
    """The real grading, except that the pool process grading 'victim' is killed with SIGKILL (and
    'flaky' once); ``hide[0]`` is the output folder."""
    if student == "victim" or (student == "flaky" and not (hide[0] / "flaky-died").exists()):
        (hide[0] / f"{student}-died").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return batch._grade_one(student, submission, options, hide, version)  # the real one: a spawned process


@pytest.mark.slow
def test_a_killed_pool_process_costs_only_its_student(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for student in ("alice", "flaky", "victim", "zoe"):
        (submissions / f"{student}.py").write_text(reference_source())
    monkeypatch.setattr(batch, "_grade_one", _grade_or_die)
    out = tmp_path / "out"
    summary = batch.grade_all(
        submissions, out, jobs=2, performance=False, limits=Limits(call_timeout=5.0), allow_unisolated=True
    )
    assert sorted(summary.graded) == ["alice", "flaky", "victim", "zoe"]
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        rows = dict(connection.execute("SELECT student, status FROM gradings WHERE current = 1").fetchall())
    assert rows == {"alice": "graded", "flaky": "graded", "victim": "grader-error", "zoe": "graded"}
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        (message,) = connection.execute("SELECT output FROM gradings WHERE student = 'victim'").fetchone()
    assert "died 3 times" in message and "not a verdict on the code" in message
    assert json.loads((out / "students" / "alice" / "results.json").read_text())["score"] > 90


def _class(folder: Path, *students: str) -> Path:
    folder.mkdir(exist_ok=True)
    for student in students:
        (folder / f"{student}.py").write_text(reference_source())
    return folder


def _rows(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        return connection.execute("SELECT student, status FROM gradings ORDER BY student").fetchall()


@contextlib.contextmanager
def _tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A real file system of ``size`` (tmpfs) at ``mount``, mounted here (root only: else a skip)."""
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB file system (tmpfs), mounted by the test."""
    with _tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def _fill(disk: Path) -> Path:
    """Fill the file system to the last byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_a_full_disk_stops_with_a_clear_message_keeps_every_row_and_resumes(tmp_path: Path, small_disk: Path) -> None:
    submissions, out = _class(tmp_path / "submissions", "ada", "ben", "cy"), small_disk / "out"
    filled: list[Path] = []

    def fill_after_the_first(progress: BatchProgress) -> None:
        if progress.last is not None and not filled:
            filled.append(_fill(small_disk))

    with pytest.raises(OutputUnusable) as stopped:
        grade_all(submissions, out, jobs=1, performance=False, select=FAST, on_progress=fill_after_the_first)
    message = str(stopped.value)
    assert str(out / "students") in message and "is full" in message and "run the same command again" in message
    assert len(_rows(out)) == 1, "the student recorded before the disk filled is kept"
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    filled[0].unlink()
    resumed = grade_all(submissions, out, jobs=1, performance=False, select=FAST)
    assert len(resumed.graded) == 2 and len(resumed.skipped) == 1
    assert [status for _, status in _rows(out)] == ["graded"] * 3, "one row each, none lost, none twice"
    assert (out / "grades.csv").read_text().count("\n") == 4


#: A student's code that fills its home folder (and the shared temporary folders) to the last byte.
DISK_FILLER = """
import os
for folder in (os.environ["HOME"], "/tmp", "/var/tmp"):
    written = 0
    try:
        with open(os.path.join(folder, "filler"), "wb") as handle:
            while True:
                written += handle.write(b"x" * (1 << 20))
    except OSError as full:
        print(folder == os.environ["HOME"] and "home" or folder, written >> 20, "MiB", full.strerror)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "uid"])
def test_a_student_who_fills_the_disk_costs_the_class_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The output and the run's scratch (so, in uid mode, the sandbox's home) on one small disk."""
    try:
        choose_isolation(mode)
    except ValueError as problem:
        pytest.skip(f"{mode} isolation is not available here: {problem}")
    parent = Path(tempfile.mkdtemp(prefix="wsgrade-test-disk-", dir="/tmp"))
    parent.chmod(0o711)  # a sandbox uid passes through to its scratch folder on the disk
    with contextlib.ExitStack() as cleanup, _tmpfs(parent / "disk", "48m") as disk:
        cleanup.callback(shutil.rmtree, parent, ignore_errors=True)
        monkeypatch.setenv("TMPDIR", str(disk))
        monkeypatch.setattr(tempfile, "tempdir", str(disk))
        submissions, out = _class(tmp_path / "submissions", "ada", "zoe"), disk / "out"
        (submissions / "filler.py").write_text(reference_source() + DISK_FILLER)
        summary = grade_all(submissions, out, jobs=1, performance=False, select=FAST, limits=Limits(isolation=mode))
        assert sorted(summary.graded) == ["ada", "filler", "zoe"] and not summary.grader_errors
        assert [status for _, status in _rows(out)] == ["graded"] * 3
        scores = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
        assert scores["filler"]["total"] == scores["ada"]["total"] != "0", scores
        printed = json.loads((out / "students" / "filler" / "results.json").read_text())["output"]
        home = re.search(r"home (\d+) MiB (.*)", printed)
        assert home, printed
        if mode == "uid":  # its home is on the small disk, which it filled
            assert int(home[1]) > 30 and "No space left" in home[2], printed
        left = [p.name for p in disk.iterdir() if p.name != "out"]
        assert not left and shutil.disk_usage(disk).used < 8 << 20, (left, shutil.disk_usage(disk))


@pytest.mark.slow
def test_a_damaged_gradebook_is_named_left_alone_and_a_fresh_one_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submissions, out = _class(tmp_path / "submissions", "ada"), tmp_path / "out"
    command = ["grade-all", str(submissions), "--out", str(out), "-k", FAST, "-q"]
    assert main(command) == 0
    gradebook = out / "gradebook.sqlite"
    for leftover in (out / "gradebook.sqlite-wal", out / "gradebook.sqlite-shm"):
        leftover.unlink(missing_ok=True)
    damaged = b"this is not a database" + gradebook.read_bytes()[22:]
    gradebook.write_bytes(damaged)
    capsys.readouterr()
    assert main(command) == 1
    error = capsys.readouterr().err
    assert f"{gradebook} is damaged" in error and f"mv {gradebook} {gradebook}.damaged" in error, error
    assert "Traceback" not in error and gradebook.read_bytes() == damaged, "the damaged file is left as it was"
    assert main(["report", str(out)]) == 1  # the class overview says the same, no traceback either
    error = capsys.readouterr().err
    assert f"{gradebook} is damaged" in error and "Traceback" not in error, error
    gradebook.rename(out / "gradebook.sqlite.damaged")
    assert main(command) == 0 and _rows(out) == [("ada", "graded")]


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_while_the_first_grades(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    submissions, out = _class(tmp_path / "submissions", "ada", "ben", "cy"), tmp_path / "out"
    command = ["grade-all", str(submissions), "--out", str(out), "-k", FAST, "-q"]
    first = subprocess.Popen([sys.executable, "-m", "autograder", *command], stdout=subprocess.PIPE, text=True)
    lock = out / ".grade-all.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text().startswith("pid")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert main(command) == 1
    error = capsys.readouterr().err
    assert f"{out} is being graded by another grade-all (pid {first.pid} on " in error, error
    assert first.wait(timeout=300) == 0 and "graded 3" in first.stdout.read()  # type: ignore[union-attr]
    assert len(_rows(out)) == 3
    assert main(command) == 0, "the lock goes with the run that held it"


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = set(), [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.add(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
def test_grade_all_killed_takes_its_pool_along_and_the_next_run_sweeps_its_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    submissions, out = _class(tmp_path / "submissions", "ada", "ben", "cy", "dee"), tmp_path / "out"
    command = [sys.executable, "-m", "autograder", "grade-all", str(submissions), "--out", str(out), "--jobs", "2"]
    coordinator = subprocess.Popen(
        [*command, "--no-speed", "-k", FAST, "-q"],
        env={**os.environ, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(scratch.glob("wsgrade-run-*/wsgrade-sandbox-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(scratch.glob("wsgrade-run-*/wsgrade-sandbox-*")), "a grading is under way"
    pool = _descendants(coordinator.pid)
    assert pool
    coordinator.send_signal(signal.SIGKILL)  # grade-all alone, not its process group
    coordinator.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pool if _alive(pid)], "no pool process grades on its own"
    (abandoned,) = scratch.glob("wsgrade-run-*")
    recorded = len(_rows(out)) if (out / "gradebook.sqlite").exists() else 0

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    summary = grade_all(submissions, out, jobs=2, performance=False, select=FAST)
    assert not abandoned.exists() and not list(scratch.iterdir()), "the killed run's scratch is gone, and this one's"
    assert len(summary.skipped) == recorded and len(summary.graded) == 4 - recorded
    assert [status for _, status in _rows(out)] == ["graded"] * 4, "one row each"


def test_only_the_scratch_of_dead_runs_is_removed(tmp_path: Path) -> None:
    live, dead = tmp_path / "wsgrade-run-live", tmp_path / "wsgrade-run-dead"
    for folder in (live, dead):
        folder.mkdir()
        (folder / "lock").touch()
        (folder / "wsgrade-sandbox-x").mkdir()
    with open(live / "lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert remove_abandoned_scratch(tmp_path) == [dead]
    assert live.exists() and not dead.exists()


def test_an_older_gradebook_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    with sqlite3.connect(path) as old:  # the schema of the first gradebooks, with one row
        old.executescript(batch._SCHEMA)
        old.execute(
            "INSERT INTO gradings (student, content_sha256, grader_version, started_at, finished_at, status, score, "
            "max_score, execution_time, output) VALUES ('ada', 'x', '0.1', 't', 't', 'graded', 90, 100, 4, '')"
        )
    old.close()
    connection = open_gradebook(path)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(gradings)")}
    assert {"worker", "isolation", "options", "entry"} <= columns
    assert connection.execute("SELECT student, score, worker FROM gradings").fetchall() == [("ada", 90.0, "")]
    assert connection.execute("PRAGMA user_version").fetchone() == (len(batch._MIGRATIONS),)
    connection.close()
    open_gradebook(path).close()  # a second open migrates nothing twice


def _grader_bug(*args: object, **kwargs: object) -> object:
    raise RuntimeError("a bug in the grader, deep inside")


def _grade_with_a_grader_bug(*args: Any) -> Any:
    """batch._grade_one in the pool process, with a grade_prepared that fails as a grader bug would."""
    import autograder.grading

    autograder.grading.grade_prepared = _grader_bug  # type: ignore[assignment]
    return _ORIGINAL_GRADE_ONE(*args)


_ORIGINAL_GRADE_ONE = batch._grade_one


def test_a_grader_error_goes_to_the_grader_log_with_its_traceback_and_not_to_the_student(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "_grade_one", _grade_with_a_grader_bug)
    out = tmp_path / "out"
    summary = batch.grade_all(_class(tmp_path / "class", "alice"), out, jobs=1, performance=False)
    assert summary.grader_errors == ("alice",)
    log = (out / batch.GRADER_LOG).read_text()
    assert "alice: grader error" in log and "a bug in the grader, deep inside" in log
    assert "Traceback (most recent call last)" in log and "_grader_bug" in log
    feedback = (out / "students" / "alice" / "feedback.md").read_text()
    assert "a bug in the grader" in feedback and "Traceback" not in feedback
