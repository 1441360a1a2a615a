"""nbgrader: a ready course generated from the single source, graded by our sandbox.

``export(COURSE_DIR)`` (``wsgrade export nbgrader COURSE_DIR``) writes

* ``nbgrader_config.py``: the cell timeout, missing test cells put back at autograde time, hidden
  tests kept out of the feedback, and the autograde pipeline with :class:`SandboxVerdict`;
* ``source/weight_sharing/weight_sharing.ipynb``: the instructor's notebook. Every markdown,
  example and figure cell of ``solutions/weight_sharing.py`` is a plain cell; the cells holding
  ``### BEGIN SOLUTION`` regions are nbgrader solution cells; after each task's function comes a
  read-only autograder test cell worth the task's points, with the task's public examples as visible
  checks and a few more inside ``### BEGIN HIDDEN TESTS`` (both from :mod:`autograder.examples`,
  the table the release's ``test_public.py`` comes from too). The standalone release's "Check
  Part N" cells and its self-study section are left out: under nbgrader the test cells are the
  self-check (see :func:`autograder.release.platform_cells`).

**The verdict is not decided in the student's kernel, and no student code runs there.** nbgrader
scores a test cell by whether it raised in the kernel, after the student's code, which can replace
any checking function (ours, or ``np.allclose``); and that kernel runs with the instructor's rights
(it can open ``gradebook.db``, edit ``nbgrader_config.py``, print the installed reference).
:class:`StudentCodeOut` therefore empties every student code cell before nbgrader's ``Execute``
(the instructor's test cells still run, against nothing); :class:`SandboxVerdict` grades the code
it took out with :func:`autograder.grading.grade_prepared` (student code in a sandboxed worker,
hidden tests in the grader's process) and overwrites each test cell's outputs with the task's
score, which nbgrader reads as partial credit, and the grader's feedback; :class:`StudentCodeBack`
puts the code back for the autograded notebook and the feedback. The visible checks still help the
student in their own notebook; they cannot change the grade.

**What is graded.** The correctness tasks. The speed task (5.2) and the GPU task (5.3) are left
out: their timing bands compare the student's ``conv2d_fast`` with the reference over repeated
timings on the grading machine, which under ``nbgrader autograde`` is whatever machine the
instructor autogrades a whole class on, one student after another next to nbgrader's own kernels,
and rarely has a GPU. Grade them with ``wsgrade grade-all`` (or Gradescope) if they count.

**The reference's private helpers.** The reference keeps ``_check_conv_args``, ``_pair`` and
``_lc_windows`` in a module-level solution region. nbgrader replaces every solution region with
``raise NotImplementedError()``, so such a cell would raise as soon as a student runs the notebook.
:func:`inline_helpers` moves each helper into the solution regions that use it instead, as a nested
function; nbgrader then removes it together with the rest of the solution.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import nbformat
from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbgrader import utils as nbgrader_utils
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Float

from autograder.examples import NBGRADER_HELPERS, nbgrader_checks
from autograder.files import write_generated
from autograder.grading import GradingReport, grade_prepared, require_file_protection
from autograder.release import finalise_notebook, platform_cells, solution_notebook
from autograder.sandbox.client import Limits
from autograder.source import SourceError, inline_helpers, solution_regions
from autograder.submission import PreparedSubmission, cells_digest, code_cells
from autograder.tasks import UNTIMED_TASKS, Task

__all__ = [
    "ASSIGNMENT",
    "CONFIG",
    "PlaceMissingCells",
    "SandboxVerdict",
    "StudentCodeBack",
    "StudentCodeOut",
    "export",
    "grade_cell_id",
    "graded_tasks",
    "inline_helpers",
    "notebook_submission",
    "source_notebook",
]

ASSIGNMENT = "weight_sharing"
NOTEBOOK = "weight_sharing.ipynb"
#: nbgrader metadata schema of the generated cells
_SCHEMA = 3
#: nbgrader_config.py of the exported course, kept as a file beside this module (checked by ruff).
CONFIG = files("autograder.integrations").joinpath("scripts/nbgrader_config.py").read_text()

_HEADER = """\
# Task {id} {function}: {points:g} points.
# Run this cell to check your {function}. Your grade does not come from these checks: when the
# notebook is autograded, the grader's hidden tests run your code in a sandbox (many more inputs,
# with feedback on what went wrong)."""


def graded_tasks() -> tuple[Task, ...]:
    """The tasks nbgrader grades: all but the timed ones (see the module docstring)."""
    return UNTIMED_TASKS


def grade_cell_id(task: Task) -> str:
    """The nbgrader ``grade_id`` of a task's test cell: ``test_1_1`` for Task 1.1."""
    return "test_" + task.id.replace(".", "_")


def _cell_metadata(
    grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None
) -> dict[str, dict[str, object]]:
    """nbgrader cell metadata, schema 3."""
    meta: dict[str, object] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": _SCHEMA,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def _test_cell(task: Task) -> NotebookNode:
    """A task's read-only test cell: its examples from :mod:`autograder.examples`, the hidden ones marked."""
    visible, hidden = nbgrader_checks(task.id)
    source = "\n".join(
        [
            _HEADER.format(id=task.id, function=task.function, points=task.points),
            visible,
            "### BEGIN HIDDEN TESTS",
            hidden,
            "### END HIDDEN TESTS",
        ]
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata = _cell_metadata(grade_cell_id(task), grade=True, solution=False, locked=True, points=task.points)
    return cell


def source_notebook(text: str | None = None) -> NotebookNode:
    """The nbgrader source notebook (see the module docstring).

    Args:
        text: the percent script; the single source when omitted.

    Returns:
        The notebook, with deterministic cell ids and no outputs.

    Raises:
        SourceError: if a task's function is not defined in any cell, or as :func:`inline_helpers`.
    """
    nb = solution_notebook(text)
    # leave out cells only the instructor's copy needs (the text about the reference's private helpers)
    wanted = platform_cells(nb.cells)
    kept = [cell for cell in wanted if "solution-only" not in cell.metadata.get("tags", [])]
    code = [cell for cell in kept if cell.cell_type == "code"]
    for cell, source in zip(code, inline_helpers([cell.source for cell in code]), strict=True):
        cell.source = source
    waiting = list(graded_tasks())
    helpers = nbformat.v4.new_code_cell(NBGRADER_HELPERS.rstrip("\n"))
    helpers.metadata = _cell_metadata("check_helpers", grade=False, solution=False, locked=True)
    cells: list[NotebookNode] = []
    for cell in kept:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        if not cell.source:
            continue  # it held only the reference's helpers
        regions, tree = solution_regions(cell.source, "source notebook")
        functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        if regions:
            if helpers not in cells:  # the checks go right before the first solution cell
                cells.append(helpers)
            first = next(f for f in functions if f.lineno <= regions[0].begin < (f.end_lineno or f.lineno))
            cell.metadata = _cell_metadata("solution_" + first.name, grade=False, solution=True, locked=False)
        cells.append(cell)
        for task in [t for t in waiting if t.function in {f.name for f in functions}]:
            cells.append(_test_cell(task))
            waiting.remove(task)
    if waiting:
        raise SourceError("no cell defines " + ", ".join(f"{t.function} (Task {t.id})" for t in waiting))
    return finalise_notebook(nb, cells)


def export(course_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Write a ready nbgrader course: its configuration and the assignment's source notebook.

    Args:
        course_dir: the course folder (created if missing); run nbgrader from there.
        overwrite: replace files that exist with other content (by default that is an error).

    Returns:
        The files written.

    Raises:
        FileExistsError: if a file exists with other content and ``overwrite`` is False.
        SourceError: if the single source breaks the rules of :func:`source_notebook`.
    """
    files = {
        course_dir / "nbgrader_config.py": CONFIG,
        course_dir / "source" / ASSIGNMENT / NOTEBOOK: nbformat.writes(source_notebook()) + "\n",
    }
    return write_generated(files, overwrite=overwrite)


def _is_test_cell(cell: NotebookNode) -> bool:
    """An autograder test cell: a grade cell that is not a solution cell."""
    return nbgrader_utils.is_grade(cell) and not nbgrader_utils.is_solution(cell)


def notebook_submission(nb: NotebookNode, *, origin: str, sources: dict[int, str] | None = None) -> PreparedSubmission:
    """The student's code in a submitted notebook: every code cell except the test cells.

    Shell and magic lines are removed as ``wsgrade grade`` does for any notebook.

    Args:
        nb: the notebook.
        origin: where it came from, for the report.
        sources: cell index -> source, for cells whose source was taken out (:class:`StudentCodeOut`).

    Returns:
        The submission, ready for :func:`autograder.grading.grade_prepared`.
    """
    sources = sources or {}
    # Test cells stay in the list as empty raw cells, so that cells keep the numbers Jupyter shows.
    kept = [
        {"cell_type": "raw", "source": "", "metadata": {}}
        if _is_test_cell(cell)
        else {"cell_type": cell.cell_type, "source": sources.get(index, cell.source), "metadata": dict(cell.metadata)}
        for index, cell in enumerate(nb.cells)
    ]
    examples: list[int] = []
    positions: list[int] = []
    cells, removed = code_cells(kept, examples=examples, positions=positions)
    notes = (f"{removed} shell/magic line(s) (starting with ! or %) were not run",) if removed else ()
    return PreparedSubmission(
        "cells", cells, NOTEBOOK, origin, cells_digest(cells), notes, tuple(examples), tuple(positions)
    )


def _verdict_outputs(task: Task, report: GradingReport, notes: str, execution_count: int | None) -> list[NotebookNode]:
    """The outputs that replace a test cell's: the feedback as text, then the score as the result."""
    tests = [test for test in report.tests if test.task_id == task.id]
    score = round(sum(test.score for test in tests), 4)
    lines = [
        f"Task {task.id} {task.function}: {score:g} of {task.points:g} points, from the grader's tests "
        "run on your code in a sandbox (the checks in this cell do not decide the grade)."
    ]
    for test in tests:
        mark = "passed" if test.status == "passed" else test.status.upper()
        lines.append(f"  {mark:<7} {test.name} ({test.score:.4g} of {test.max_score:.4g})")
        if test.output and test.status != "passed":
            lines.append(textwrap.indent(test.output.rstrip(), " " * 10))
    if notes:
        lines += ["", "Notes on your notebook:", textwrap.indent(notes, "  ")]
    return [
        nbformat.v4.new_output("stream", name="stdout", text="\n".join(lines) + "\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(score)}, execution_count=execution_count),
    ]


_STASH = "wsgrade_student_code"


#: Cell metadata key that marks a test cell :class:`PlaceMissingCells` put back.
ADDED_BACK = "wsgrade_added_back"


class PlaceMissingCells(OverwriteCells):
    """nbgrader's ``OverwriteCells``, which never crashes on a notebook that lacks its neighbours.

    A missing grade cell goes after the nearest earlier cell of the source notebook that the
    submission has, or at the end when it has none (a foreign notebook: nbgrader's own step raises
    ``KeyError`` there and the whole autograde run fails). Each cell put back is marked with
    :data:`ADDED_BACK`, so that :class:`SandboxVerdict` can say so.
    """

    def add_missing_grade_cells(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        """Put back every missing grade cell, in source order."""
        source_nb = self.gradebook.find_notebook(self.notebook_id, self.assignment_id)
        order = [cell.name for cell in source_nb.source_cells]
        by_name = {cell.name: cell for cell in source_nb.source_cells}
        solutions = {cell.name for cell in source_nb.solution_cells}

        def grade_id(cell: NotebookNode) -> str | None:
            meta = cell.metadata.get("nbgrader", {})
            return meta.get("grade_id") if meta.get("grade") or meta.get("solution") else None

        for grade_cell in sorted(source_nb.grade_cells, key=lambda cell: order.index(cell.name)):
            present = {grade_id(cell): index for index, cell in enumerate(nb.cells)}
            if grade_cell.name in present:
                continue
            self.log.warning("Missing grade cell %s encountered, adding to notebook", grade_cell.name)
            cell = self.missing_cell_transform(
                by_name[grade_cell.name], grade_cell.max_score, is_solution=grade_cell.name in solutions
            )
            cell.metadata[ADDED_BACK] = True
            earlier = [present[name] for name in order[: order.index(grade_cell.name)] if name in present]
            nb.cells.insert(max(earlier) + 1 if earlier else len(nb.cells), cell)
        return nb, resources


#: What a student whose notebook had none of the assignment's cells reads first.
FOREIGN_NOTEBOOK = (
    "This is not the notebook released for this assignment: none of its graded cells were in it, so "
    "they were added at the end. Your code was graded as it stands. Next time, hand in the notebook "
    "from the assignment's folder (the one with the task cells)."
)


class StudentCodeOut(NbGraderPreprocessor):
    """Take the student's code out of the notebook before nbgrader's ``Execute`` runs it.

    Every code cell that is not a test cell is emptied; its source is kept in the resources for
    :class:`SandboxVerdict` (which grades it in the sandbox) and :class:`StudentCodeBack`. The test
    cells (the instructor's code) still execute, against no student code at all.
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        """Empty the student's code cells, keeping their sources in ``resources``."""
        kept: dict[int, str] = {}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and not _is_test_cell(cell):
                kept[index] = cell.source
                cell.source = ""
        resources[_STASH] = {"sources": kept, "submission": notebook_submission(nb, origin="", sources=kept)}
        return nb, resources


class StudentCodeBack(NbGraderPreprocessor):
    """Put back the code :class:`StudentCodeOut` took out (for the autograded notebook and feedback)."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        """Restore the sources kept in ``resources``."""
        for index, source in resources.get(_STASH, {}).get("sources", {}).items():
            nb.cells[index].source = source
        return nb, resources


class SandboxVerdict(NbGraderPreprocessor):
    """Grade the submitted notebook in the wsgrade sandbox and write each test cell's verdict.

    Runs in ``nbgrader autograde`` after ``Execute``: each of our test cells (``grade_id``
    ``test_<task>``) gets two outputs, the grader's feedback (stdout) and the task's score, the
    sum of its tests' scores rounded to 4 places, as the cell's result, which nbgrader's
    ``SaveAutoGrades`` reads as partial credit. Whatever the student's kernel printed or raised in
    those cells is discarded. Other grade cells an instructor may have added are left alone.
    """

    call_timeout = Float(10.0, help="seconds one call of student code may take").tag(config=True)
    memory_mb = Float(2048.0, help="memory limit of student code, in MiB").tag(config=True)
    budget = Float(600.0, help="wall-clock budget of grading one notebook, in seconds").tag(config=True)
    allow_unisolated = Bool(
        False, help="grade even where student code's file access cannot be restricted (process isolation)"
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        """Grade ``nb`` and overwrite its test cells' outputs.

        Args:
            nb: the executed notebook.
            resources: nbgrader's resources (assignment, student, notebook ids).

        Returns:
            The notebook with the verdicts, and the resources unchanged.
        """
        info = resources.get("nbgrader", {})
        origin = f"{info.get('student', '?')}/{info.get('assignment', '?')}/{info.get('notebook', '?')}"
        limits = Limits(
            call_timeout=self.call_timeout,
            memory_bytes=int(self.memory_mb * 1024**2),
            budget_seconds=self.budget,
        )
        require_file_protection(limits, allow_unisolated=self.allow_unisolated, where="nbgrader autograde")
        stashed = resources.get(_STASH, {})
        submission = stashed.get("submission") or notebook_submission(nb, origin=origin)
        submission = replace(submission, origin=origin)
        report = grade_prepared(submission, performance=False, gpu="off", limits=limits)
        if report.internal_errors:
            self.log.warning("%s: %d test(s) hit an internal grader error", origin, len(report.internal_errors))
        tasks = {grade_cell_id(task): task for task in graded_tasks()}
        notes = report.output
        test_cells = [cell for cell in nb.cells if _is_test_cell(cell)]
        if test_cells and all(cell.metadata.get(ADDED_BACK) for cell in test_cells):
            self.log.warning("%s: not the assignment's notebook; graded its code as it stands", origin)
            notes = f"{FOREIGN_NOTEBOOK}\n{notes}".rstrip("\n")
        for cell in nb.cells:
            task = tasks.get(cell.metadata.get("nbgrader", {}).get("grade_id", "")) if _is_test_cell(cell) else None
            if task is not None:
                cell.outputs = _verdict_outputs(task, report, notes, cell.get("execution_count"))
                notes = ""  # the notes go with the first test cell only
        self.log.info("%s: %.4g of %.4g points from the wsgrade sandbox", origin, report.score, report.max_score)
        return nb, resources
