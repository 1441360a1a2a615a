"""grade-all survives its faults: a pool process killed mid-grading (the OOM killer does this)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from autograder import batch
from autograder.sandbox.client import Limits
from tests.corpus import reference_source


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
