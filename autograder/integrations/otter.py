"""otter-grader: ``wsgrade export otter DIR`` writes an otter-assign master notebook and its config.

``export(DIR)`` writes

* ``weight_sharing.ipynb``: the master notebook, generated from ``solutions/weight_sharing.py``.
  The lecture, worked examples and figures are plain cells (cells tagged ``solution-only`` are
  left out: they introduce the reference's helpers, which are nested here, see below). Each
  graded task is an otter question (``task_1_1`` ... worth the task's points from
  :mod:`autograder.tasks`): its function in a solution block, the solution between otter's
  ``# BEGIN SOLUTION NO PROMPT`` and ``# END SOLUTION`` with a prompt that becomes the same
  ``raise NotImplementedError("Task 1.1: ...")`` stub as in our release, then a public and a
  hidden test cell in otter's OK format (plain asserts of the task's examples, from
  :mod:`autograder.examples`). The first cell is the assignment config: the grading plugin, the
  requirements, Python 3.11, no PDFs, hidden results shown once grades are published.
* ``requirements.txt``: what otter's grading image must install next to otter (this package).

**The verdict is not decided in the student's kernel.** otter runs the tests in the kernel that ran
the student's cells, so an earlier cell can replace otter's doctest runner and pass everything.
The assignment config lists :class:`autograder.integrations.otter_plugin.SandboxVerdict`, which
keeps the submission's code out of otter's kernel and replaces otter's scores and feedback with
the verdict of our sandboxed grader. The test cells stay: ``grader.check("task_1_1")`` is the
student's quick check in the notebook; it cannot change the grade.

**What is graded.** The correctness tasks; the speed task (5.2) and the GPU task (5.3) are left
out (see :data:`autograder.integrations.otter_plugin.GRADED_TASKS`): otter grades on whatever
machine runs ``otter run``/``otter grade``, next to otter's own kernels, rarely with a GPU.

**The reference's private helpers** (``_check_conv_args``, ``_pair``, ``_lc_windows``, in a
module-level solution region) become nested functions inside each solution that uses them
(:func:`autograder.source.inline_helpers`). A module-level region has no otter
question to belong to: left as it is, otter assign would stop on its ``### END SOLUTION``, and
made a solution block of its own it would leave students an empty answer cell that belongs to no
question. Nested, each question's solution is complete on its own, and the helpers vanish from
the student notebook with the rest of the solution: it runs, like our release, up to the first
stub's ``NotImplementedError``.

Then, from ``DIR``::

    otter assign weight_sharing.ipynb dist   # dist/student/ and dist/autograder/ (the autograder zip)
    otter run -a dist/autograder/weight_sharing-autograder_*.zip -o OUT submission.ipynb
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import yaml
from nbformat import NotebookNode

from autograder import __version__
from autograder.examples import otter_checks
from autograder.files import write_generated
from autograder.integrations.otter_plugin import GRADED_TASKS, PLUGIN_NAME, question_name
from autograder.release import finalise_notebook, platform_cells, solution_notebook
from autograder.source import BEGIN, END, SOLUTION_SOURCE, SourceError, inline_helpers, stub_message
from autograder.tasks import Task

__all__ = [
    "ASSIGNMENT",
    "MASTER",
    "REQUIREMENTS",
    "REQUIREMENTS_FILE",
    "assignment_config",
    "export",
    "master_notebook",
]

ASSIGNMENT = "weight_sharing"
MASTER = "weight_sharing.ipynb"
REQUIREMENTS_FILE = "requirements.txt"
#: The source's tag for cells that only make sense next to the reference (its helpers' introduction).
SOLUTION_ONLY = "solution-only"
REQUIREMENTS = f"""\
# Installed by otter's grading image (otter generate adds otter-grader itself). The plugin that
# grades in our sandbox lives in this package, so the image must be able to install it: publish it
# to the index the image uses, or build the image from a checkout (pip install /path/to/checkout).
weight-sharing-autograder=={__version__}
"""

# Lines and first lines that otter assign acts on, were they to occur in our cells (its own patterns).
_OTTER_LINE = re.compile(
    r"# ?SOLUTION|(?i:^\s*#\s*BEGIN\s*IGNORE)"
    r"|# (SEED|IGNORE|END IGNORE|BEGIN PROMPT|END PROMPT|BEGIN PLUGIN|BEGIN PLUGIN EXPORT|END PLUGIN)\s*$"
)
_OTTER_IGNORE_CELL = re.compile(r"(##\s*ignore\s*##\s*|#\s*ignore\s*)", re.IGNORECASE)


def assignment_config() -> dict[str, object]:
    """The otter assignment config written into the master's first cell."""
    return {
        "name": ASSIGNMENT,
        "requirements": REQUIREMENTS_FILE,
        "python_version": "3.11",
        "plugins": [PLUGIN_NAME],
        "export_cell": {"pdf": False},
        "generate": {"pdf": False, "show_hidden": True, "force_public_test_summary": True},
    }


def _raw(text: str) -> NotebookNode:
    return nbformat.v4.new_raw_cell(text)


def _check_otter_safe(cell: NotebookNode) -> None:
    """Refuse a cell that otter assign would silently alter or drop.

    Raises:
        SourceError: naming the cell's first line and what otter would do.
    """
    lines = cell.source.splitlines() or [""]
    if _OTTER_IGNORE_CELL.match(lines[0]):
        raise SourceError(f"otter assign would drop the cell starting {lines[0]!r} (it reads '# ignore')")
    if cell.cell_type == "markdown" and "```otter" in cell.source:
        raise SourceError(f"otter assign would read the cell starting {lines[0]!r} as configuration")
    for line in lines:
        if _OTTER_LINE.search(line) and line.strip() not in (BEGIN, END):
            raise SourceError(f"otter assign would rewrite the line {line.strip()!r} (it holds an otter marker)")


def _otter_solution(code: str, task: Task) -> str:
    """Turn our solution markers into otter's, with our stub as the student's prompt.

    ``### BEGIN SOLUTION`` becomes a prompt (``raise NotImplementedError("Task 1.1: ...")``, kept
    inside a string in the solution so that it never runs there) and ``# BEGIN SOLUTION NO
    PROMPT``; ``### END SOLUTION`` becomes ``# END SOLUTION``.
    """
    out = []
    for line in code.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        if line.strip() == BEGIN:
            out += [
                f'{indent}""" # BEGIN PROMPT',
                f"{indent}raise NotImplementedError({stub_message(task.function)!r})",
                f'{indent}""" # END PROMPT',
                f"{indent}# BEGIN SOLUTION NO PROMPT",
            ]
        elif line.strip() == END:
            out.append(f"{indent}# END SOLUTION")
        else:
            out.append(line)
    return "\n".join(out)


def _question(task: Task, code: str) -> list[NotebookNode]:
    """The cells of one otter question: config, solution block, tests block."""
    public, hidden = otter_checks(task.id)
    return [
        _raw(f"# BEGIN QUESTION\nname: {question_name(task)}\npoints: {task.points:g}"),
        _raw("# BEGIN SOLUTION"),
        nbformat.v4.new_code_cell(_otter_solution(code, task)),
        _raw("# END SOLUTION"),
        _raw("# BEGIN TESTS"),
        nbformat.v4.new_code_cell(public),
        nbformat.v4.new_code_cell("# HIDDEN\n" + hidden),
        _raw("# END TESTS"),
        _raw("# END QUESTION"),
    ]


def _split(code: str, questions: dict[str, Task]) -> list[tuple[Task | None, str]]:
    """Split a definition cell into one chunk per task function and chunks of what lies between.

    A statement's chunk starts at the first unindented line after the previous statement (so
    top-level comments go with the statement below them, and an indented trailing comment such as
    ``    ### END SOLUTION`` stays with the function above it).

    Args:
        code: the cell's source.
        questions: contract function -> the task its question grades.

    Returns:
        ``(task, code)`` per chunk, ``task`` None for code that is not a graded function.
    """
    lines = code.splitlines()
    chunks: list[tuple[Task | None, list[str]]] = []
    previous_end = 0
    for node in ast.parse(code).body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        start = next((i for i in range(previous_end, first) if lines[i] and not lines[i][0].isspace()), first)
        if chunks:
            chunks[-1][1].extend(lines[previous_end:start])
        task = questions.get(node.name) if isinstance(node, ast.FunctionDef) else None
        if task is None and chunks and chunks[-1][0] is None:
            chunks[-1][1].extend(lines[start : node.end_lineno])
        else:
            chunks.append((task, lines[start : node.end_lineno]))
        previous_end = node.end_lineno or node.lineno
    if chunks:
        chunks[-1][1].extend(lines[previous_end:])
    return [(task, "\n".join(chunk).strip("\n")) for task, chunk in chunks if "".join(chunk).strip()]


def master_notebook(text: str | None = None) -> NotebookNode:
    """The otter-assign master notebook (see the module docstring).

    Args:
        text: the percent script; the single source when omitted.

    Returns:
        The notebook, with deterministic cell ids and no outputs.

    Raises:
        SourceError: if a graded task's function is not defined with a solution region, a cell
            holds something otter assign would rewrite, or as
            :func:`autograder.source.inline_helpers`.
    """
    text = SOLUTION_SOURCE.read_text() if text is None else text
    nb = solution_notebook(text)
    # Otter's own grader.check cells are the self-check; the hub may have no wsgrade for the rest.
    nb.cells = [cell for cell in platform_cells(nb.cells) if SOLUTION_ONLY not in cell.metadata.get("tags", [])]
    solutions = [cell for cell in nb.cells if cell.cell_type == "code" and BEGIN in cell.source]
    for cell, source in zip(solutions, inline_helpers([cell.source for cell in solutions]), strict=True):
        cell.source = source
    waiting = {task.function: task for task in GRADED_TASKS}
    config = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(assignment_config(), sort_keys=False).rstrip("\n")
    cells = [_raw(config)]
    for cell in nb.cells:
        _check_otter_safe(cell)
        if cell.cell_type != "code" or BEGIN not in cell.source:
            if cell.source.strip():  # a cell that held only the reference's helpers is gone
                cells.append(cell)
            continue
        for task, chunk in _split(cell.source, waiting):
            if task is None:
                cells.append(nbformat.v4.new_code_cell(chunk))
            elif BEGIN not in chunk:
                raise SourceError(f"{task.function} (Task {task.id}) has no {BEGIN} region")
            else:
                cells += _question(task, chunk)
                del waiting[task.function]
    if waiting:
        raise SourceError("no cell defines " + ", ".join(f"{t.function} (Task {t.id})" for t in waiting.values()))
    return finalise_notebook(nb, cells)


def export(dest: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the otter-assign master notebook and its requirements into ``dest``.

    Args:
        dest: the folder (created if missing); run ``otter assign`` from there.
        overwrite: replace files that exist with other content (by default that is an error, so
            that an instructor's edits to the master are not lost).

    Returns:
        The files written.

    Raises:
        FileExistsError: if a file exists with other content and ``overwrite`` is False.
        SourceError: if the single source breaks the rules of :func:`master_notebook`.
    """
    files = {dest / MASTER: nbformat.writes(master_notebook()) + "\n", dest / REQUIREMENTS_FILE: REQUIREMENTS}
    return write_generated(files, overwrite=overwrite)
