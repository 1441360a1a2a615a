"""What a student reads: feedback ordering, broken notebook cells, gated tests, and the printed report."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import nbformat
import pytest
from rich.console import Console

from autograder.checks import UNCHANGED_FIRST
from autograder.grading import GradingReport, TestResult, grade
from autograder.release import build_release, solution_notebook
from autograder.report import feedback_markdown, print_report
from autograder.submission import SubmissionError, notebook_code_cells
from tests.corpus import reference_source


def _cell_defining(nb: nbformat.NotebookNode, name: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and f"def {name}(" in c.source)


def test_a_syntax_error_names_the_cell_as_jupyter_counts_it_and_each_missing_function_once(tmp_path: Path) -> None:
    nb = solution_notebook()
    index = _cell_defining(nb, "shift2d")
    source = nb.cells[index].source
    line = source[: source.index("def shift2d(")].count("\n") + 1
    nb.cells[index].source = source.replace("def shift2d(", "def shift2d(x,,", 1)
    path = tmp_path / "weight_sharing.ipynb"
    nbformat.write(nb, path)

    report = grade(path, performance=False, select="shift2d or circular_conv2d or conv2d_hand")

    cell = f"cell {index + 1}"  # its position among all cells, markdown included, counted from 1
    assert any(f"notebook {cell} raised a SyntaxError at line {line}" in note for note in report.output.splitlines())
    shift_tests = [t for t in report.tests if t.task_id == "4.1"]
    assert shift_tests and all(t.status == "failed" and t.mistake == "missing-function" for t in shift_tests)
    assert f"written in notebook {cell}" in shift_tests[0].output
    feedback = dict(report.feedback())
    missing = [title for title in feedback if title.endswith("is missing (Task 4.1)")]
    assert missing == ["shift2d is missing (Task 4.1)"], list(feedback)
    assert "SyntaxError" in feedback[missing[0]] and f"{len(shift_tests)} test(s)" in feedback[missing[0]]
    assert not any(title.startswith("4.1 shift2d:") for title in feedback), "one entry for the task, not per test"
    assert any(t.task_id == "1.1" and t.status == "passed" for t in report.tests), "the other cells still ran"


def test_a_no_mutation_test_failed_by_wrong_values_says_so_and_waits_behind_the_real_failure(tmp_path: Path) -> None:
    source = reference_source()
    definition = r"(\ndef conv2d\(image: np.ndarray, kernel: np.ndarray\)[^\n]*\n)"
    flipped = re.sub(definition, r"\1    kernel = kernel[::-1, ::-1]\n", source, count=1)
    assert flipped != source
    path = tmp_path / "weight_sharing.py"
    path.write_text(flipped)

    report = grade(path, performance=False, select="test_conv2d_")

    unchanged = next(t for t in report.tests if "leaves its input arrays unchanged" in t.name)
    assert unchanged.status == "failed" and unchanged.gated
    assert UNCHANGED_FIRST.format(function="conv2d") in unchanged.output
    titles = [title for title, _ in report.feedback()]
    assert titles[-1] == "conv2d: 2 more test(s) wait for right answers (Task 1.1)", titles
    assert unchanged.name not in titles
    assert all(not t.gated for t in report.tests if t.name in titles)


def _report(mode: str, name: str) -> GradingReport:
    test = TestResult(name, "5.2", 1.5, 1.5, "passed", "", "visible", ("conv2d_fast",))
    return GradingReport(
        tests=(test,), execution_time=1.0, output="", origin="[bold]student[/bold].py", sha256="0" * 64, mode=mode
    )


def _printed(report: GradingReport) -> str:
    stream = io.StringIO()
    print_report(report, Console(file=stream, width=200, color_system=None))
    return stream.getvalue()


def test_the_printed_report_shows_names_and_origins_literally() -> None:
    text = _printed(_report("grade", "5.2 conv2d_fast: is within 2x [cifar-first-layer]"))
    assert "[cifar-first-layer]" in text
    assert "[bold]student[/bold].py" in text
    assert "Part 5: Performance (1.5 of 1.5 points)" in text
    assert "1.50/1.50" in text


def test_the_self_check_report_counts_passing_tests_and_shows_no_points_column() -> None:
    text = _printed(_report("check", "5.1 conv2d_fast: hand example"))
    assert "Part 5: Performance (1 of 1 public tests pass)" in text
    assert "points" not in text and "1.50" not in text


def test_feedback_markdown_headers_say_points() -> None:
    assert "## Part 5: Performance (1.5 of 1.5 points)" in feedback_markdown(_report("grade", "5.2 x"))


def test_cells_are_numbered_among_all_cells_and_magic_lines_keep_line_numbers() -> None:
    notebook = {
        "cells": [
            {"cell_type": "markdown", "source": "# title"},
            {"cell_type": "code", "source": "!pip install numpy\nx = 1\n%time y = 2\nz = 3"},
            {"cell_type": "raw", "source": ""},
            {"cell_type": "code", "source": ["def f():\n", "    return 1\n"]},
        ]
    }
    positions: list[int] = []
    cells, removed = notebook_code_cells(json.dumps(notebook), positions=positions)
    assert positions == [2, 4]
    assert removed == 2
    assert cells[0].splitlines() == ["", "x = 1", "", "z = 3"], "line 4 is still line 4"


@pytest.mark.parametrize("words", ["100 points where the grader has no GPU", "the total is\n104", "is 94"])
def test_the_student_rubric_says_how_the_total_is_formed(words: str) -> None:
    assert words in build_release()["README.md"]


def test_an_old_format_notebook_is_converted_and_a_sloppy_current_one_loses_nothing() -> None:
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [
            {
                "cells": [
                    {"cell_type": "markdown", "source": "# hi"},
                    {"cell_type": "code", "input": "x = 1", "outputs": []},
                ]
            }
        ],
    }
    positions: list[int] = []
    assert notebook_code_cells(json.dumps(v3), positions=positions)[0] == ("x = 1\n",) and positions == [2]
    broken = {**v3, "worksheets": [{"cells": [{"cell_type": "code", "input": "x = 1"}]}]}
    with pytest.raises(SubmissionError, match="not a valid Jupyter notebook"):
        notebook_code_cells(json.dumps(broken))
    sloppy = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "y = 2"}]}  # no metadata anywhere
    assert notebook_code_cells(json.dumps(sloppy))[0] == ("y = 2\n",)


def test_a_hint_that_matches_only_by_coincidence_is_not_shown(tmp_path: Path) -> None:
    """A stride applied to the rows only once matched "kernel flipped" on hypothesis's shrunk input;
    a hint is now confirmed on generic values of the same shapes before it is shown."""
    from tests.corpus import all_mutants, mutant_source

    mutant = next(m for m in all_mutants() if m.name == "layer-stride-rows-only")
    path = tmp_path / "weight_sharing.py"
    path.write_text(mutant_source(mutant))
    report = grade(path, performance=False, select="test_layer_stride_and_padding")
    (test,) = report.tests
    assert test.status == "failed"
    assert "Hint:" not in test.output and test.mistake is None, test.output
