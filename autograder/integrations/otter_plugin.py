"""The otter-grader plugin that puts our sandboxed verdict in place of otter's own.

otter grades a notebook by running it, and its tests, in one kernel: any earlier cell of the
student's can replace otter's doctest runner and pass everything. Worse, the grading process then
unpickles the results file that kernel wrote, and ``dill``-loads a ``.OTTER_LOG`` handed in with
the submission, so code of the student's could run in the grading process itself. The plugin
closes all three doors with otter's documented plugin events, which run in the grading process:

* ``before_grading`` deletes a submitted ``.OTTER_LOG`` before otter loads it;
* ``before_execution`` blanks every code cell, so nothing of the submission runs in otter's kernel
  (otter still executes its own cells and checks; they fail on the missing functions and do not
  count);
* ``after_grading`` grades the submission file in our sandbox
  (:func:`autograder.grading.grade_prepared`, timing tests left out) and replaces otter's results
  with one question per task: our score, and our feedback for each of our tests.

The assignment lists the plugin in its config (see :mod:`autograder.integrations.otter`); the
package must be importable where ``otter run`` or ``otter assign`` runs.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import os
import tempfile
from pathlib import Path

import nbformat
from otter.plugins import AbstractOtterPlugin
from otter.test_files import GradingResults
from otter.test_files.abstract_test import TestCase, TestCaseResult
from otter.test_files.ok_test import OKTestFile

from autograder import __version__
from autograder.grading import GradingReport, TestResult, grade_prepared, require_file_protection
from autograder.submission import PreparedSubmission, SubmissionError, load_submission
from autograder.tasks import UNTIMED_TASKS, Task

__all__ = ["GRADED_TASKS", "PLUGIN_NAME", "SandboxVerdict", "prepare_submission", "question_name"]

#: What an otter assignment config lists to load this plugin.
PLUGIN_NAME = f"{__name__}.SandboxVerdict"

#: The tasks an otter assignment grades: all but the timing tasks (otter's runners are shared machines).
GRADED_TASKS: tuple[Task, ...] = UNTIMED_TASKS

_OTTER_LOG = ".OTTER_LOG"
_BLANKED = "# not run by otter: weight_sharing's grader runs this notebook's code in its sandbox"
_GRADER_CALLS = ("check", "check_all", "export")


def question_name(task: Task) -> str:
    """The otter question of a task: ``task_1_1`` for Task 1.1."""
    return "task_" + task.id.replace(".", "_")


def _is_otter_boilerplate(code: str) -> bool:
    """Whether a cell holds only what otter assign writes into the student notebook.

    That is ``import otter``, ``grader = otter.Notebook("...")`` and ``grader.check("...")`` /
    ``grader.check_all()`` / ``grader.export(...)`` with constant arguments: nothing of the
    student's can hide in such a cell.

    Args:
        code: the cell's source.

    Returns:
        True for a non-empty cell of those statements only.
    """
    try:
        statements = ast.parse(code).body
    except SyntaxError:
        return False

    def constant_call(node: ast.expr, owner: str, names: tuple[str, ...]) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == owner
            and node.func.attr in names
            and all(isinstance(arg, ast.Constant) for arg in node.args)
            and all(isinstance(keyword.value, ast.Constant) for keyword in node.keywords)
        )

    def boilerplate(node: ast.stmt) -> bool:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names] == ["otter"] and node.names[0].asname is None
        if isinstance(node, ast.Assign):
            return [ast.unparse(target) for target in node.targets] == ["grader"] and constant_call(
                node.value, "otter", ("Notebook",)
            )
        return isinstance(node, ast.Expr) and constant_call(node.value, "grader", _GRADER_CALLS)

    return bool(statements) and all(boilerplate(node) for node in statements)


def prepare_submission(path: str | Path) -> PreparedSubmission:
    """Load a submission handed to otter, leaving out otter's own cells.

    The cells otter assign adds (``import otter``, ``grader.check(...)``, ``grader.export(...)``)
    are blanked, not removed, so cell numbers in the feedback still match the student's notebook.

    Args:
        path: the submitted notebook or script.

    Returns:
        The submission as :func:`autograder.submission.load_submission` prepares it.

    Raises:
        autograder.submission.SubmissionError: if ``path`` is not a submission.
    """
    submission = load_submission(path)
    if submission.kind != "cells":
        return submission
    cells = tuple("" if _is_otter_boilerplate(code) else code for code in submission.cells)
    return dataclasses.replace(submission, cells=cells)


def _test_file(task: Task, tests: list[TestResult]) -> OKTestFile:
    """One otter question holding our verdict on one task.

    Args:
        task: the task.
        tests: our results for its tests.

    Returns:
        An otter test file whose cases are our tests and whose score is our score for the task.
    """
    cases = [_case(test.name, test.max_score, hidden=test.visibility != "visible") for test in tests]
    test_file = OKTestFile(question_name(task), f"weight_sharing grader: Task {task.id}", cases, all_or_nothing=False)
    test_file.test_case_results = [
        TestCaseResult(test_case=case, message=test.output or test.status, passed=test.status == "passed")
        for case, test in zip(cases, tests, strict=True)
    ]
    test_file.update_score(sum(test.score for test in tests))
    return test_file


def _case(name: str, points: float, *, hidden: bool) -> TestCase:
    """An otter test case that stands for one of our tests (it holds no code: it never runs)."""
    return TestCase(name=name, body="", hidden=hidden, points=points, success_message=None, failure_message=None)


def _unloadable(task: Task, problem: SubmissionError) -> OKTestFile:
    """A question scored 0 because the submission could not be read at all."""
    case = _case(f"{task.label}: the submission", task.points, hidden=False)
    test_file = OKTestFile(question_name(task), f"weight_sharing grader: Task {task.id}", [case], all_or_nothing=False)
    test_file.test_case_results = [TestCaseResult(test_case=case, message=str(problem), passed=False)]
    return test_file


class SandboxVerdict(AbstractOtterPlugin):
    """Replace otter's results with the verdict of weight_sharing's sandboxed grader.

    Configured in the otter assignment as ``autograder.integrations.otter_plugin.SandboxVerdict``;
    it takes no options.
    """

    def before_grading(self, config: object) -> None:
        """Delete a submitted ``.OTTER_LOG``: otter would ``dill``-load it in this process.

        Args:
            config: otter's autograder config (unused).
        """
        (Path(self.submission_path).parent / _OTTER_LOG).unlink(missing_ok=True)

    def before_execution(self, submission: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """Blank every code cell, so that no code of the submission runs in otter's kernel.

        Args:
            submission: the submission as otter is about to execute it (a script arrives as a
                one-cell notebook).

        Returns:
            A copy with each code cell's source replaced by a comment.
        """
        blanked = copy.deepcopy(submission)
        for cell in blanked.cells:
            if cell.cell_type == "code":
                cell.source = _BLANKED
        return blanked

    def after_grading(self, results: GradingResults) -> None:
        """Grade the submission in the sandbox and make that the only result otter reports.

        Args:
            results: otter's results, replaced in place.
        """
        results.clear_results()
        # Where student code's file access cannot be restricted, refuse (a visible failure, not a 0).
        allow = os.environ.get("WSGRADE_ALLOW_UNISOLATED", "0") == "1"
        require_file_protection(None, allow_unisolated=allow, where="otter (WSGRADE_ALLOW_UNISOLATED=1 to override)")
        try:
            submission = prepare_submission(self.submission_path)
        except SubmissionError as problem:
            for task in GRADED_TASKS:
                results.results[question_name(task)] = _unloadable(task, problem)
            results.set_output(f"This submission could not be graded: {problem}")
            return
        # An empty working folder: nothing next to the submission can shadow an import or a conftest.
        with tempfile.TemporaryDirectory(prefix="wsgrade-otter-") as empty, contextlib.chdir(empty):
            report = grade_prepared(submission, performance=False)
        for task in GRADED_TASKS:
            tests = [test for test in report.tests if test.task_id == task.id]
            results.results[question_name(task)] = _test_file(task, tests)
        results.set_output(_summary(report))


def _summary(report: GradingReport) -> str:
    """The text otter shows above the questions."""
    lines = [
        f"Graded by the weight_sharing grader {__version__} in its sandbox: "
        f"{report.score:.2f} / {report.max_score:.2f} points. "
        "The checks in the notebook are for you; they do not decide the grade."
    ]
    if report.output:
        lines += ["", report.output]
    return "\n".join(lines)
