"""grade-all: one entry per student, a durable gradebook, resumable after a kill, hostile input survived."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.batch import class_report, grade_all, list_entries
from autograder.release import RELEASE_DIR
from tests.corpus import all_mutants, mutant_source, reference_source


def _class(folder: Path) -> Path:
    """A small class: correct, stub, a mistake, a zip, and entries that are not submissions."""
    folder.mkdir()
    (folder / "ada.py").write_text(reference_source())
    (folder / "ben.py").write_text((RELEASE_DIR / "weight_sharing.py").read_text())
    flip = next(m for m in all_mutants() if m.name == "conv2d-flipped-kernel")
    (folder / "cy").mkdir()
    (folder / "cy" / "weight_sharing.py").write_text(mutant_source(flip))
    with zipfile.ZipFile(folder / "dee.zip", "w") as archive:
        archive.writestr("dee/weight_sharing.py", reference_source())
    (folder / "eve.ipynb").write_text("{this is not json")
    (folder / "fay").mkdir()  # an empty folder
    with zipfile.ZipFile(folder / "gus.zip", "w") as archive:
        archive.writestr("../../escape/weight_sharing.py", "print('out of the sandbox')")
    return folder


def _current_rows(database: Path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT student, status, score FROM gradings WHERE current = 1 ORDER BY student"
        ).fetchall()


@pytest.mark.slow
def test_grade_all_writes_every_output_and_skips_unchanged_work(tmp_path: Path) -> None:
    submissions, out = _class(tmp_path / "submissions"), tmp_path / "out"
    summary = grade_all(submissions, out, jobs=2, performance=False)
    assert sorted(summary.graded) == ["ada", "ben", "cy", "dee", "eve", "fay", "gus"]
    rows = {student: (status, score) for student, status, score in _current_rows(out / "gradebook.sqlite")}
    assert rows["ada"][0] == "graded" and rows["ada"][1] == rows["dee"][1] > rows["cy"][1] > rows["ben"][1] == 0
    for student in ("eve", "fay", "gus"):
        assert rows[student] == ("not-a-submission", 0.0), student
        results = json.loads((out / "students" / student / "results.json").read_text())
        assert results["score"] == 0 and "Not graded" in results["output"]
    assert "unsafe path" in (out / "students" / "gus" / "results.json").read_text()
    assert not (tmp_path / "escape").exists()
    with open(out / "grades.csv") as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(table) == set(rows) and float(table["ada"]["total"]) == rows["ada"][1]
    assert float(table["cy"]["part1"]) < float(table["ada"]["part1"])
    assert "kernel flipped" in (out / "students" / "cy" / "feedback.md").read_text()

    again = grade_all(submissions, out, jobs=2, performance=False)
    assert again.graded == () and len(again.skipped) == 7
    (submissions / "ben.py").write_text(reference_source())
    third = grade_all(submissions, out, jobs=1, performance=False)
    assert third.graded == ("ben",)
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        history = connection.execute("SELECT COUNT(*) FROM gradings WHERE student = 'ben'").fetchone()[0]
    assert history == 2 and len(_current_rows(out / "gradebook.sqlite")) == 7

    report = class_report(out)
    assert len(report.scores) == 4 and {student for student, _ in report.not_graded} == {"eve", "fay", "gus"}
    assert ("flipped-kernel", 1) in report.mistakes
    assert "score histogram" in report.text()


@pytest.mark.slow
def test_killed_halfway_it_resumes_without_duplicates_or_corruption(tmp_path: Path) -> None:
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    for number in range(6):
        (submissions / f"student{number}.py").write_text(reference_source())
    command = [
        sys.executable,
        "-m",
        "autograder",
        "grade-all",
        str(submissions),
        "--out",
        str(out),
        "--jobs",
        "1",
        "--no-speed",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    database = out / "gradebook.sqlite"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if database.exists() and 2 <= len(_safe_rows(database)) < 6:
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(_safe_rows(database))
    assert 2 <= done_before < 6, "the kill must land halfway"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"unchanged and skipped {done_before}" in resumed.stdout
    rows = _current_rows(database)
    assert [student for student, _, _ in rows] == [f"student{n}" for n in range(6)]
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM gradings").fetchone()[0] == 6, "no duplicate rows"
    for number in range(6):
        assert json.loads((out / "students" / f"student{number}" / "results.json").read_text())["score"] > 0


def _safe_rows(database: Path) -> list[tuple[str, str, float]]:
    try:
        return _current_rows(database)
    except sqlite3.Error:
        return []


def test_entries_that_map_to_the_same_student_are_refused(tmp_path: Path) -> None:
    (tmp_path / "ada.py").write_text("x")
    (tmp_path / "ada.zip").write_bytes(b"x")
    with pytest.raises(ValueError, match="both student 'ada'"):
        list_entries(tmp_path)


def test_grade_all_refuses_a_file_instead_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        grade_all(tmp_path / "x.py", tmp_path / "out")
