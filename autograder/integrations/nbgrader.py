"""nbgrader: a ready course generated from the single source, graded by our sandbox.

``export(COURSE_DIR)`` (``wsgrade export nbgrader COURSE_DIR``) writes

* ``nbgrader_config.py``: the cell timeout, missing test cells put back at autograde time, hidden
  tests kept out of the feedback, and the autograde pipeline with :class:`SandboxVerdict`;
* ``source/weight_sharing/weight_sharing.ipynb``: the instructor's notebook. Every markdown,
  example and figure cell of ``solutions/weight_sharing.py`` is a plain cell; the cells holding
  ``### BEGIN SOLUTION`` regions are nbgrader solution cells; after each task's function comes a
  read-only autograder test cell worth the task's points, with a few visible checks and more checks
  inside ``### BEGIN HIDDEN TESTS``. The standalone release's "Check Part N" cells and its
  self-study section are left out: under nbgrader the test cells are the self-check (see
  :func:`autograder.release.platform_cells`).

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
#: a shell command or magic, as written in a notebook or as Jupytext writes it in a script

#: nbgrader_config.py of the exported course, kept as a file beside this module (checked by ruff).
CONFIG = files("autograder.integrations").joinpath("scripts/nbgrader_config.py").read_text()

_CHECK_HELPERS = '''# The checks the test cells use. This cell is read-only.
import numpy as np


def check_close(got, expected, what):
    """Fail unless ``got`` is an array of ``expected``'s shape with (nearly) the same values."""
    expected = np.asarray(expected, dtype=float)
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"{what}: expected an array, got {type(got).__name__}")
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if not np.allclose(got, expected, rtol=1e-7, atol=1e-9):
        raise AssertionError(f"{what}:\\nexpected\\n{expected}\\ngot\\n{got}")
    print("ok:", what)


def check_equal(got, expected, what):
    """Fail unless ``got == expected`` (numbers, tuples, booleans)."""
    if not got == expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {got!r}")
    print("ok:", what)


def check_raises(error, what, function, *args, **kwargs):
    """Fail unless ``function(*args, **kwargs)`` raises ``error``."""
    try:
        function(*args, **kwargs)
    except error:
        print("ok:", what)
        return
    raise AssertionError(f"{what}: expected {error.__name__}")
'''

_HEADER = """\
# Task {id} {function}: {points:g} points.
# Run this cell to check your {function}. Your grade does not come from these checks: when the
# notebook is autograded, the grader's hidden tests run your code in a sandbox (many more inputs,
# with feedback on what went wrong)."""

#: task id -> (visible checks, hidden checks); both run in the kernel, for the student's benefit only
_CHECKS: dict[str, tuple[str, str]] = {
    "1.1": (
        """\
image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
check_close(conv2d(image, kernel), [[-4.0, -4.0], [-4.0, -4.0]], "conv2d does not flip the kernel")
check_equal(conv2d(np.ones((5, 7)), np.ones((2, 3))).shape, (4, 5), "conv2d output shape")""",
        """\
check_close(
    conv2d(np.arange(12.0).reshape(3, 4), np.array([[1.0, 2.0]])),
    [[2.0, 5.0, 8.0], [14.0, 17.0, 20.0], [26.0, 29.0, 32.0]],
    "conv2d with a rectangular kernel",
)
check_raises(ValueError, "conv2d: kernel larger than the image", conv2d, np.ones((2, 2)), np.ones((3, 3)))
check_raises(ValueError, "conv2d: 3-D image", conv2d, np.ones((2, 2, 2)), np.ones((1, 1)))""",
    ),
    "1.2": (
        """\
x = np.arange(16.0).reshape(1, 1, 4, 4)
out = conv2d_layer(x, np.ones((1, 1, 3, 3)), np.array([0.5]), stride=2, padding=1)
check_close(out, [[[[10.5, 24.5], [51.5, 90.5]]]], "conv2d_layer with bias, stride 2 and padding 1")""",
        """\
rng = np.random.default_rng(12)
x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 2, 3))
expected = [[sum(conv2d(x[n, c], w[o, c]) for c in range(3)) for o in range(4)] for n in range(2)]
check_close(conv2d_layer(x, w), expected, "conv2d_layer sums conv2d over input channels")
one_channel, two_channels = np.ones((1, 1, 4, 4)), np.ones((1, 2, 4, 4))
check_raises(ValueError, "conv2d_layer: mismatched channels", conv2d_layer, two_channels, np.ones((1, 3, 2, 2)))
check_raises(ValueError, "conv2d_layer: stride 0", conv2d_layer, one_channel, np.ones((1, 1, 2, 2)), stride=0)""",
    ),
    "2.1": (
        """\
check_equal(conv_output_size(32, 5), 28, "conv_output_size(32, 5)")
check_equal(conv_output_size(224, 11, stride=4, padding=2), 55, "AlexNet's first layer")""",
        """\
check_equal(conv_output_size(7, 3, stride=2, padding=1), 4, "conv_output_size(7, 3, stride=2, padding=1)")
check_raises(ValueError, "conv_output_size: the kernel does not fit", conv_output_size, 2, 5)""",
    ),
    "2.2": (
        """\
check_equal(dense_params(1024, 64, bias=False), 65_536, "dense 1024 -> 64 without bias")""",
        """\
check_equal(dense_params(10, 3), 33, "dense 10 -> 3 with bias")""",
    ),
    "2.3": (
        """\
check_equal(conv2d_params(1, 8, 3, bias=False), 72, "eight 3x3 filters")
check_equal(conv2d_params(3, 64, (3, 3)), 1_792, "VGG's first layer")""",
        """\
check_equal(conv2d_params(3, 4, (2, 5)), 124, "a rectangular kernel with bias")""",
    ),
    "2.4": (
        """\
check_equal(locally_connected2d_params(224, 1, 1, 3, bias=False), 443_556, "the slide's unshared 3x3 filter")""",
        """\
check_equal(locally_connected2d_params((5, 6), 2, 3, (2, 3)), 624, "rectangular input and kernel")
check_equal(locally_connected2d_params((5, 6), 1, 1, 2, stride=2), 30, "stride 2")""",
    ),
    "2.5": (
        """\
lenet5 = [
    {"type": "conv2d", "out_channels": 6, "kernel_size": 5},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dense", "out_features": 120},
    {"type": "dense", "out_features": 84},
    {"type": "dense", "out_features": 10},
]
summary = network_summary(lenet5, (1, 32, 32))
check_equal([tuple(shape) for shape, _ in summary[:2]], [(6, 28, 28), (6, 14, 14)], "LeNet-5's first shapes")
check_equal(sum(params for _, params in summary), 61_706, "LeNet-5's parameters")""",
        """\
padded = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]
check_equal(network_summary(padded, (3, 8, 8)), [((4, 8, 8), 112)], "a padded conv layer")
check_raises(ValueError, "network_summary: unknown layer", network_summary, [{"type": "softmax2d"}], (1, 4, 4))
dense = [{"type": "dense", "out_features": 2}]
check_raises(ValueError, "network_summary: dense before flatten", network_summary, dense, (1, 4, 4))""",
    ),
    "3.1": (
        """\
x = np.arange(9.0).reshape(1, 1, 3, 3)
weight = np.arange(9.0).reshape(3, 3, 1, 1, 1, 1)  # a 1x1 filter of its own at each position
check_close(locally_connected2d(x, weight, np.ones((3, 3, 1))), x**2 + 1, "per-position 1x1 filters with bias")""",
        """\
check_raises(
    ValueError, "locally_connected2d: positions do not match", locally_connected2d,
    np.ones((1, 1, 4, 4)), np.ones((2, 2, 1, 1, 2, 2)),
)
rng = np.random.default_rng(31)
x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4)
lc_w, lc_b = np.broadcast_to(w, (4, 4, 4, 3, 2, 2)), np.broadcast_to(b, (4, 4, 4))
check_close(locally_connected2d(x, lc_w, lc_b), conv2d_layer(x, w, b), "tied weights give the convolution")""",
    ),
    "3.2": (
        """\
w, b = np.arange(24.0).reshape(4, 3, 2, 1), np.arange(4.0)
lc_w, lc_b = conv_as_locally_connected(w, b, (2, 3))
check_equal((lc_w.shape, lc_b.shape), ((2, 3, 4, 3, 2, 1), (2, 3, 4)), "conv_as_locally_connected shapes")
check_close(lc_w[1, 2], w, "every position holds the conv filters")""",
        """\
check_equal(conv_as_locally_connected(w, None, 2)[1], None, "no bias in, no bias out")
lc_w[0, 0] += 1.0  # must be a new, writeable array
check_close(w, np.arange(24.0).reshape(4, 3, 2, 1), "the conv weights are not changed through the result")""",
    ),
    "4.1": (
        """\
x = np.array([[1.0, 2.0], [3.0, 4.0]])
check_close(shift2d(x, 1, 0), [[0.0, 0.0], [1.0, 2.0]], "shift down")
check_close(shift2d(x, 0, -1), [[2.0, 0.0], [4.0, 0.0]], "shift left")
check_close(shift2d(x, 0, 1, circular=True), [[2.0, 1.0], [4.0, 3.0]], "circular shift right")""",
        """\
check_close(shift2d(np.ones((2, 3, 3)), 5, 0), np.zeros((2, 3, 3)), "a shift larger than the image")
check_raises(ValueError, "shift2d: 1-D input", shift2d, np.ones(3), 1, 0)""",
    ),
    "4.2": (
        """\
x = np.arange(12.0).reshape(1, 1, 3, 4)
w = np.zeros((1, 1, 3, 3))
w[0, 0, 1, 1] = 1.0
check_close(circular_conv2d(x, w), x, "the centre tap is the identity")
w = np.zeros((1, 1, 3, 3))
w[0, 0, 1, 2] = 1.0
check_close(circular_conv2d(x, w), np.roll(x, -1, axis=3), "the right-hand tap reads the right neighbour")""",
        """\
check_raises(ValueError, "circular_conv2d: even kernel", circular_conv2d, np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)))
check_close(circular_conv2d(x, w, np.array([2.0])), np.roll(x, -1, axis=3) + 2.0, "bias")""",
    ),
    "4.3": (
        """\
x = np.arange(16.0).reshape(1, 1, 4, 4)
check_equal(equivariance_error(lambda v: 2 * v, x, 1, 2), 0.0, "a pointwise layer is equivariant")
position_bias = np.arange(16.0).reshape(4, 4)
error = np.abs(position_bias - np.roll(position_bias, (1, 2), axis=(0, 1))).max()
check_equal(equivariance_error(lambda v: v + position_bias, x, 1, 2), error, "a position-dependent bias")""",
        """\
def crop(v):
    return v[..., 1:, :]


check_raises(ValueError, "equivariance_error: the layer changes the size", equivariance_error, crop, x, 1, 0)""",
    ),
    "4.4": (
        """\
rng = np.random.default_rng(44)
x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
check_equal(is_shift_equivariant(lambda v: circular_conv2d(v, w), x, [(1, 0), (0, 1), (2, 3)]), True, "circular conv")
bias = rng.standard_normal((6, 6))
check_equal(is_shift_equivariant(lambda v: v + bias, x, [(1, 0)]), False, "a position-dependent bias")""",
        """\
def subsample_then_repeat(v):
    return np.repeat(np.repeat(v[..., ::2, ::2], 2, axis=-2), 2, axis=-1)


check_equal(is_shift_equivariant(subsample_then_repeat, x, [(2, 0), (0, 4)]), True, "stride 2, even shifts")
check_equal(is_shift_equivariant(subsample_then_repeat, x, [(2, 0), (1, 0)]), False, "stride 2, an odd shift last")
check_equal(is_shift_equivariant(lambda v: v[..., 1:, 1:], x, [(1, 0)]), False, "a layer that changes the size")""",
    ),
    "5.1": (
        """\
rng = np.random.default_rng(51)
x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
expected = conv2d_layer(x, w, b, stride=2, padding=1)
check_close(conv2d_fast(x, w, b, stride=2, padding=1), expected, "conv2d_fast matches conv2d_layer")""",
        """\
x = np.arange(16.0).reshape(1, 1, 4, 4)
out = conv2d_fast(x, np.ones((1, 1, 3, 3)), np.array([0.5]), stride=2, padding=1)
check_close(out, [[[[10.5, 24.5], [51.5, 90.5]]]], "conv2d_fast with bias, stride 2 and padding 1")
two_channels = np.ones((1, 2, 4, 4))
check_raises(ValueError, "conv2d_fast: mismatched channels", conv2d_fast, two_channels, np.ones((1, 3, 2, 2)))""",
    ),
    "6.1": (
        """\
x = np.arange(9.0).reshape(1, 1, 3, 3)
dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), x, np.ones((1, 1, 2, 2)))
check_close(db, [4.0], "the bias gradient is a sum over the 4 positions")
check_close(dw, [[[[8.0, 12.0], [20.0, 24.0]]]], "the weight gradient is a sum over positions")
check_close(dx, [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]], "the input gradient")""",
        """\
dx, dw, db = conv2d_backward(np.ones((1, 1, 3, 3)), x, np.ones((1, 1, 3, 3)), padding=1)
check_close(dx, [[[[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]]], "the input gradient with padding 1")
check_close(db, [9.0], "the bias gradient with padding 1")""",
    ),
    "6.2": (
        """\
x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
weight = np.array([5.0, 6.0, 7.0, 8.0]).reshape(2, 2, 1, 1, 1, 1)
dx, dw, db = locally_connected2d_backward(np.ones((1, 1, 2, 2)), x, weight)
check_close(dx, weight.reshape(1, 1, 2, 2), "the input gradient of per-position 1x1 filters")
check_close(dw, x.reshape(2, 2, 1, 1, 1, 1), "each position's weight gradient")
check_close(db, np.ones((2, 2, 1)), "each position's bias gradient")""",
        """\
rng = np.random.default_rng(62)
x, w, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((2, 3, 4, 4))
_, dw_conv, _ = conv2d_backward(dout, x, w)
_, dw_local, _ = locally_connected2d_backward(dout, x, np.broadcast_to(w, (4, 4, 3, 2, 2, 2)))
check_close(dw_local.sum(axis=(0, 1)), dw_conv, "summed over positions, the tied gradient is the conv gradient")""",
    ),
}


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
    visible, hidden = _CHECKS[task.id]
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
    helpers = nbformat.v4.new_code_cell(_CHECK_HELPERS.rstrip("\n"))
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
