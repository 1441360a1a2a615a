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
import unicodedata
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autograder.batch import class_report, grade_all, list_entries, student_id
from autograder.cli import main
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


def test_student_ids_are_unique_readable_and_safe_for_any_name(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "José")
    names = ["王伟.py", "李娜.py", "José.py", "Josè.py", f"{decomposed}.py", "a b.py", "a+b.py", "CON.py", "ok-1.py"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "_..").mkdir()
    entries = dict(list_entries(tmp_path))
    by_name = {path.name: student for student, path in entries.items()}
    assert len(entries) == len(names) + 1, "every entry is its own student"
    assert by_name["王伟.py"] == "王伟" and by_name["李娜.py"] == "李娜" and by_name["ok-1.py"] == "ok-1"
    assert by_name["José.py"] == "José" and by_name["Josè.py"] == "Josè"
    assert by_name[f"{decomposed}.py"].startswith("José-"), "the decomposed spelling is a second student"
    assert by_name["_.."].startswith("unnamed-") and by_name["a b.py"] != by_name["a+b.py"]
    assert by_name["CON.py"] != "CON"  # a device name on Windows
    for student in entries:
        assert student not in (".", "..") and "/" not in student and "\0" not in student
        assert student == unicodedata.normalize("NFC", student) and len(student.encode()) <= 255
    assert student_id("ada") == "ada" and student_id("x" * 400) != student_id("x" * 401)


def test_entries_differing_only_in_letter_case_are_refused(tmp_path: Path) -> None:
    (tmp_path / "Ada.py").write_text("x")
    (tmp_path / "ada.py").write_text("x")
    with pytest.raises(ValueError, match="letter case aside"):
        list_entries(tmp_path)


@pytest.mark.slow
def test_hostile_names_are_graded_into_their_own_folders_and_keep_their_names(tmp_path: Path) -> None:
    submissions, out = tmp_path / "submissions", tmp_path / "out"
    submissions.mkdir()
    for name in ("王伟.py", "李娜.py", "José.py", "Josè.py"):
        (submissions / name).write_text(reference_source())
    (submissions / "_..").mkdir()
    (submissions / "_.." / "weight_sharing.py").write_text(reference_source())
    summary = grade_all(submissions, out, jobs=2, performance=False, select="dense_hand_examples")
    assert len(summary.graded) == 5
    assert not (out / "results.json").exists() and not (out / "feedback.md").exists()
    assert sorted(p.name for p in (out / "students").iterdir()) == sorted(summary.graded)
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        rows = dict(connection.execute("SELECT entry, student FROM gradings WHERE current = 1").fetchall())
    assert set(rows) == {"王伟.py", "李娜.py", "José.py", "Josè.py", "_.."}
    assert rows["王伟.py"] == "王伟" and rows["_.."].startswith("unnamed-")
    with open(out / "grades.csv", encoding="utf-8") as handle:
        assert {row["entry"]: row["student"] for row in csv.DictReader(handle)} == rows
    for student in summary.graded:
        assert json.loads((out / "students" / student / "results.json").read_text())["score"] > 0


def _one_student(tmp_path: Path) -> Path:
    submissions = tmp_path / "submissions"
    submissions.mkdir(exist_ok=True)
    (submissions / "ada.py").write_text(reference_source())
    return submissions


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "students" / "ada" / "results.json").read_text())


def _names(out: Path) -> list[str]:
    return [test["name"] for test in _results(out)["tests"]]


def _isolation(out: Path) -> str:
    with sqlite3.connect(out / "gradebook.sqlite") as connection:
        return connection.execute("SELECT isolation FROM gradings WHERE current = 1").fetchone()[0]


_BASE = "dense_hand_examples"
_GPU = f"{_BASE} or test_gpu_returns"


def _limit(out: Path, name: str) -> Any:
    return _results(out)["extra_data"]["limits"][name]


def _tagged(out: Path, tag: str) -> bool:
    return any(tag in test["tags"] for test in _results(out)["tests"])


def _said(out: Path, words: str) -> bool:
    return any(words in test["output"] for test in _results(out)["tests"])


# grade's options that grade-all takes: (the options, the -k of the run, how their effect shows), each
# with a run that shows the difference where the default would pass the check too
OPTION_EFFECTS: list[tuple[list[str], str, Callable[[Path, str], bool]]] = [
    (["--no-speed"], _GPU, lambda out, _: not _tagged(out, "performance")),
    ([], _GPU, lambda out, _: _tagged(out, "performance")),
    (["--gpu", "off"], _GPU, lambda out, _: _said(out, "(--gpu off)")),
    ([], _GPU, lambda out, _: not _said(out, "(--gpu off)")),
    (["--call-timeout", "7"], _BASE, lambda out, _: _limit(out, "call_timeout") == 7),
    (["--memory-mb", "1500"], _BASE, lambda out, _: _limit(out, "memory_bytes") == 1500 << 20),
    (["--budget", "300"], _BASE, lambda out, _: _limit(out, "budget_seconds") == 300),
    (
        ["-k", "dense_matches_formula"],
        "",
        lambda out, _: [n[:40] for n in _names(out)] == ["2.2 dense_params: matches the formula wi"],
    ),
    (["--isolation", "process", "--allow-unisolated"], _BASE, lambda out, _: _isolation(out) == "process"),
    (["-q"], _BASE, lambda _, printed: "grading" not in printed and "graded 1" in printed),
    ([], _BASE, lambda _, printed: "grading" in printed and "graded 1" in printed),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "select", "took_effect"),
    [pytest.param(*case, id=f"{' '.join(case[0]) or 'defaults'} [-k {case[1]}]") for case in OPTION_EFFECTS],
)
def test_every_grade_option_that_grade_all_takes_reaches_the_grading(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    select: str,
    took_effect: Callable[[Path, str], bool],
) -> None:
    out = tmp_path / "out"
    command = ["grade-all", str(_one_student(tmp_path)), "--out", str(out), *(["-k", select] if select else [])]
    assert main([*command, *options]) == 0
    printed = capsys.readouterr().out
    assert took_effect(out, printed), (options, printed, _results(out)["tests"])


@pytest.mark.slow
def test_gpu_require_without_a_gpu_is_refused_before_grading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autograder.grading import gpu_available

    if gpu_available():
        pytest.skip("this machine has a GPU: --gpu require grades")
    out = tmp_path / "out"
    assert main(["grade-all", str(_one_student(tmp_path)), "--out", str(out), "--gpu", "require"]) == 3
    assert "--gpu require" in capsys.readouterr().err and not (out / "gradebook.sqlite").exists()


@pytest.mark.slow
def test_other_options_regrade_what_a_partial_run_recorded(tmp_path: Path) -> None:
    submissions, out = _one_student(tmp_path), tmp_path / "out"
    assert grade_all(submissions, out, performance=False, select=_BASE).graded == ("ada",)
    assert grade_all(submissions, out, performance=False, select=_BASE).skipped == ("ada",)
    assert grade_all(submissions, out, performance=False, select=f"{_BASE} or dense_matches").graded == ("ada",)
