"""The class copy check: real copydetect on a small class with one disguised copy."""

from __future__ import annotations

import ast
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.cli import EXIT_BAD_INPUT, EXIT_OK, main
from autograder.release import RELEASE_DIR
from autograder.similarity import CODE_FILE, default_html_path, similarity_report, submitted_code
from autograder.submission import load_submission

REPO = Path(__file__).resolve().parent.parent
CORRECT = REPO / "tests" / "corpus" / "correct"
STUB = (RELEASE_DIR / "weight_sharing.py").read_text()
RENAMES = {
    "_two": "as_pair",
    "_is_whole": "integral",
    "value": "val",
    "weight": "kernel_bank",
    "bias": "offset",
    "out": "result",
    "x": "inputs",
    "stride": "step",
    "padding": "pad_by",
}


def _disguise(source: str) -> str:
    """The same code renamed and reformatted: other names, no comments, 2-space indents, more blank lines."""
    docstring_end = ast.parse(source).body[0].end_lineno or 0
    source = "\n".join(source.splitlines()[docstring_end:])
    for old, new in RENAMES.items():
        source = re.sub(rf"\b{re.escape(old)}\b", new, source)
    lines = []
    for line in source.splitlines():
        if line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent % 4 == 0:
            line = " " * (indent // 2) + line.lstrip(" ")
        lines.append(line)
        if line.lstrip().startswith(("def ", "return ")):
            lines.append("")
    disguised = '"""My own solutions to the weight sharing problem set."""\n' + "\n".join(lines) + "\n"
    compile(disguised, "disguised.py", "exec")  # still a working program, not just text
    return disguised


def _class(folder: Path) -> Path:
    """ada and bea hand in the same code (bea's disguised); cal, dan, eve wrote their own; fay and gus
    handed in the stubs; hal's file is empty and notes.txt is no submission."""
    folder.mkdir()
    loops = (CORRECT / "loops.py").read_text()
    (folder / "ada.py").write_text(loops)
    (folder / "bea").mkdir()
    (folder / "bea" / "weight_sharing.py").write_text(_disguise(loops))
    (folder / "cal.py").write_text((CORRECT / "fft.py").read_text())
    with zipfile.ZipFile(folder / "dan.zip", "w") as archive:
        archive.writestr("dan/weight_sharing.py", (CORRECT / "float32.py").read_text())
    shutil.copytree(REPO / "examples" / "submissions" / "alice_complete", folder / "eve")
    (folder / "fay.py").write_text(STUB)
    (folder / "gus").mkdir()
    (folder / "gus" / "weight_sharing.ipynb").write_text((RELEASE_DIR / "weight_sharing.ipynb").read_text())
    (folder / "hal.py").write_text("")
    (folder / "notes.txt").write_text("see you in class")
    return folder


@pytest.fixture(scope="module")
def report_and_html(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("similarity")
    html = root / "report" / "similarity.html"
    return similarity_report(_class(root / "class"), html=html), html


def test_the_disguised_copy_is_the_top_pair(report_and_html) -> None:
    report, _ = report_and_html
    assert report.students == ("ada", "bea", "cal", "dan", "eve", "fay", "gus")
    top = report.pairs[0]
    assert {top.student_a, top.student_b} == {"ada", "bea"}
    assert top.similarity_a >= 0.9 and top.similarity_b >= 0.9, top
    assert top.regions_a and top.regions_b
    ada_lines = len((CORRECT / "loops.py").read_text().splitlines())
    assert all(1 <= first <= last <= ada_lines for first, last in top.regions_a)
    matched = sum(last - first + 1 for first, last in top.regions_a)
    assert matched >= 0.7 * ada_lines, top.regions_a  # whole functions match, not scattered lines


def test_independent_implementations_score_clearly_lower(report_and_html) -> None:
    report, _ = report_and_html
    top, others = report.pairs[0], report.pairs[1:]
    assert others, "independent correct solutions share the interface, so some overlap is expected"
    assert max(p.similarity for p in others) <= 0.6
    assert top.similarity - max(p.similarity for p in others) >= 0.3


def test_the_starter_code_is_ignored(report_and_html, tmp_path: Path) -> None:
    report, _ = report_and_html
    stubs = report.pair("fay", "gus")  # the stub file and the stub notebook: the same starter code
    assert stubs is None or stubs.similarity < 0.05, stubs
    # The same two students, compared without the starter code removed, would look identical.
    folder = tmp_path / "stubs"
    folder.mkdir()
    (folder / "fay.py").write_text(STUB)
    (folder / "gus.py").write_text(STUB)
    assert similarity_report(folder).pairs == ()
    flagged = similarity_report(folder, starter=()).pairs
    assert len(flagged) == 1 and flagged[0].similarity > 0.99


def test_broken_entries_are_reported_and_skipped(report_and_html) -> None:
    report, _ = report_and_html
    skipped = dict(report.skipped)
    assert set(skipped) == {"hal.py", "notes.txt"}
    assert "empty" in skipped["hal.py"]
    assert "not a submission" in skipped["notes.txt"]


def test_the_html_page_shows_the_matching_code(report_and_html) -> None:
    report, html = report_and_html
    assert report.html == str(html)
    page = html.read_text()
    assert "<i>ada</i>" in page and "<i>bea</i>" in page
    assert "highlight-red" in page and "highlight-green" in page
    assert "def conv2d" in page  # the highlighted code itself is on the page


def test_to_dict_is_json(report_and_html) -> None:
    report, _ = report_and_html
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["pairs"][0]["students"]) == {"ada", "bea"}
    assert data["skipped"][0]["entry"] == "hal.py"


def test_code_shared_by_many_students_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.py").write_text((CORRECT / "fft.py").read_text())
    assert similarity_report(folder).pairs[0].similarity > 0.99
    common = similarity_report(folder, max_sharing=2)
    assert common.pairs == () and common.common_fingerprints > 0


def test_a_grade_all_folder_is_read_from_the_stored_code(tmp_path: Path) -> None:
    """OUT/students/<id>/submission.py, as grade-all stores it; a student without one is listed."""
    out = tmp_path / "out"
    (out / "students").mkdir(parents=True)
    (out / "gradebook.sqlite").write_bytes(b"")
    loops = (CORRECT / "loops.py").read_text()
    for student, code in (("ada", loops), ("bea", _disguise(loops)), ("cal", (CORRECT / "fft.py").read_text())):
        (out / "students" / student).mkdir()
        (out / "students" / student / CODE_FILE).write_text(code)
    (out / "students" / "hal").mkdir()
    report = similarity_report(out, html=default_html_path(out))
    assert report.students == ("ada", "bea", "cal")
    assert {report.pairs[0].student_a, report.pairs[0].student_b} == {"ada", "bea"}
    assert [entry for entry, _ in report.skipped] == ["hal"]
    assert (out / "similarity.html").is_file()


def test_notebook_code_is_stored_cell_by_cell() -> None:
    code = submitted_code(load_submission(REPO / "examples" / "submissions" / "alice_complete"))
    assert code.startswith("# %% code cell 1\n")
    compile(code, "alice", "exec")


@pytest.mark.slow
def test_grade_all_stores_the_code_for_the_check(tmp_path: Path) -> None:
    from autograder.batch import grade_all

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    loops = (CORRECT / "loops.py").read_text()
    (submissions / "ada.py").write_text(loops)
    (submissions / "bea.py").write_text(_disguise(loops))
    (submissions / "hal.py").write_text("")
    out = tmp_path / "out"
    grade_all(submissions, out, jobs=2, performance=False)
    assert (out / "students" / "ada" / CODE_FILE).read_text() == loops
    assert not (out / "students" / "hal" / CODE_FILE).exists()
    report = similarity_report(out)
    assert report.students == ("ada", "bea")
    assert report.pairs[0].similarity >= 0.9
    assert dict(report.skipped).keys() == {"hal"}


def test_cli_prints_the_pairs_and_writes_html_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "class"
    folder.mkdir()
    loops = (CORRECT / "loops.py").read_text()
    (folder / "ada.py").write_text(loops)
    (folder / "bea.py").write_text(_disguise(loops))
    (folder / "cal.py").write_text((CORRECT / "fft.py").read_text())
    monkeypatch.chdir(tmp_path)  # the default page goes to the current folder, never into the class
    assert main(["similarity", str(folder), "--json", str(tmp_path / "pairs.json")]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "most similar pairs" in printed and "ada" in printed and "bea" in printed
    assert (tmp_path / "similarity.html").is_file()
    assert not (folder / "similarity.html").exists()
    assert set(json.loads((tmp_path / "pairs.json").read_text())["pairs"][0]["students"]) == {"ada", "bea"}


def _bad_source(root: Path, case: str) -> Path:
    source = root / case
    if case != "missing-folder":
        source.mkdir()
    if case == "one-student":
        (source / "ada.py").write_text(STUB)
    if case == "only-broken":
        (source / "ada.py").write_text("")
        (source / "bea.txt").write_text("hello")
    return source


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-folder", "is not a folder"),
        ("one-student", "1 student(s) with readable code; a similarity check needs at least two"),
        ("empty-folder", "0 student(s) with readable code"),
        ("only-broken", "ada.py: ada.py is empty"),
    ],
)
def test_cli_bad_input_is_a_clear_message_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    source = _bad_source(tmp_path, case)
    assert main(["similarity", str(source), "--html", str(tmp_path / "page.html")]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("wsgrade: ") and message in error
    assert "Traceback" not in error and not (tmp_path / "page.html").exists()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("top", 0, "top must be at least 1"),
        ("noise", 2, "noise must be at least 5"),
        ("max_sharing", 1, "max_sharing must be at least 2"),
        ("top", 2.5, "top must be an integer"),
        ("noise", True, "noise must be an integer"),
    ],
)
def test_invalid_options_name_the_option(tmp_path: Path, option: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        similarity_report(tmp_path, **{option: value})  # type: ignore[arg-type]
