"""Building the student release from the single source.

``wsgrade release`` writes ``assignments/weight_sharing/``; ``wsgrade release --check`` (and a test)
fails when the committed copy differs from a fresh build. Nothing in the release is edited by hand.
"""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import nbformat

from autograder.examples import public_tests_module
from autograder.source import BEGIN, REPO_ROOT, SOLUTION_SOURCE, is_definition_code, module_text, strip_solutions
from autograder.submission import EXAMPLE_TAG
from autograder.tasks import ALLOWED_PACKAGES, PARTS, TASKS, UNTIMED_TASKS

__all__ = [
    "RELEASE_DIR",
    "SELF_CHECK_TAG",
    "build_release",
    "finalise_notebook",
    "platform_cells",
    "release_drift",
    "solution_notebook",
    "student_notebook",
    "write_release",
]

RELEASE_DIR = REPO_ROOT / "assignments" / "weight_sharing"

#: The tag of the standalone release's "Check Part N" cells (the text and the ``!wsgrade check``
#: cell): a platform with its own checks (nbgrader's test cells, otter's ``grader.check``) drops them.
SELF_CHECK_TAG = "self-check"
#: The heading of the ungraded self-study section, which runs ``wsgrade experiment``.
SELF_STUDY_HEADING = "## Self-study"

_MODULE_DOCSTRING = '''"""Weight sharing in convolutional networks: your solutions.

Implement every function whose body raises NotImplementedError; the message names the task.
weight_sharing.ipynb explains each task with figures and worked examples (it holds the same
functions: hand in either file). Check your work with

    pytest test_public.py            # public examples, in your own Python
    wsgrade check weight_sharing.py  # the grader's public tests, in its sandbox

Do not rename functions or their arguments: the grader calls them by these names.
Generated from the reference by `wsgrade release`; do not edit the copy in the course repository.
"""
'''


def _is_example(source: str) -> bool:
    """A code cell that only demonstrates (a worked example, a figure, a self-check), not a definition."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("!", "%")))
    if not code.strip():
        return bool(source.strip())
    try:
        return not is_definition_code(code)
    except SyntaxError:
        return True


def _notebook_from(text: str, *, stubs: bool) -> nbformat.NotebookNode:
    """Turn the percent script into a clean notebook.

    Args:
        text: the percent script.
        stubs: strip solution regions (the student notebook) or keep them (the solution notebook).

    Returns:
        A notebook with deterministic cell ids, no outputs and no Jupytext bookkeeping.
    """
    nb = jupytext.reads(text, fmt="py:percent")
    cells = []
    for cell in nb.cells:
        if stubs and "solution-only" in cell.metadata.get("tags", []):
            continue  # e.g. the text introducing the reference's private helpers
        if cell.cell_type == "code" and stubs and BEGIN in cell.source:
            cell.source = strip_solutions(cell.source, where=SOLUTION_SOURCE.name).rstrip("\n")
            if not cell.source.strip():
                continue
        tags = list(cell.metadata.get("tags", []))  # the instructor's notebook keeps "solution-only"
        if cell.cell_type == "code" and _is_example(cell.source) and EXAMPLE_TAG not in tags:
            tags.append(EXAMPLE_TAG)  # a worked example or figure: the grader does not run it
        cell.metadata = {"tags": tags} if tags else {}
        cells.append(cell)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return finalise_notebook(nb, cells)


def finalise_notebook(nb: nbformat.NotebookNode, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    """Give ``nb`` these cells with deterministic ids (``code-007``), and check it is a valid notebook.

    Every generated notebook (the release's, nbgrader's, otter's) ends here, so that the same
    source always gives byte-identical files.

    Raises:
        nbformat.ValidationError: if the result is not a valid notebook.
    """
    for number, cell in enumerate(cells):
        cell.id = f"{cell.cell_type}-{number:03d}"
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def platform_cells(cells: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """The cells a course platform's notebook keeps: no self-check, no self-study section.

    Students on nbgrader or otter may have no ``wsgrade`` on their hub, and the platform has its
    own checks; the self-study section at the end runs ``wsgrade experiment``.

    Args:
        cells: the cells of the release's (student or solution) notebook.

    Returns:
        The cells without those tagged :data:`SELF_CHECK_TAG`, up to the self-study heading.
    """
    kept = []
    for cell in cells:
        if cell.cell_type == "markdown" and cell.source.startswith(SELF_STUDY_HEADING):
            break
        if SELF_CHECK_TAG not in cell.metadata.get("tags", []):
            kept.append(cell)
    return kept


def student_notebook(text: str | None = None) -> nbformat.NotebookNode:
    """The student notebook: lecture, stubs, worked examples.

    Args:
        text: the percent script; the single source when omitted.

    Returns:
        The notebook.
    """
    return _notebook_from(SOLUTION_SOURCE.read_text() if text is None else text, stubs=True)


def solution_notebook(text: str | None = None) -> nbformat.NotebookNode:
    """The instructor's notebook: the same cells with the solutions in place.

    Args:
        text: the percent script; the single source when omitted.

    Returns:
        The notebook.
    """
    return _notebook_from(SOLUTION_SOURCE.read_text() if text is None else text, stubs=False)


def _student_readme() -> str:
    """The release's README: how to work, how it is graded, the rubric (from the task table)."""
    rows = []
    for part, name in PARTS.items():
        for task in (t for t in TASKS if t.part == part):
            note = " (only where the grader has a GPU)" if "gpu" in task.tags else ""
            rows.append(
                f"| {task.id} | Part {part}: {name} | `{task.function}` — {task.title}{note} | {task.points:g} |"
            )
    total = sum(t.points for t in TASKS if "gpu" not in t.tags)
    gpu_points = sum(t.points for t in TASKS if "gpu" in t.tags)
    timed = sum(t.points for t in TASKS) - sum(t.points for t in UNTIMED_TASKS)
    allowed = ", ".join(ALLOWED_PACKAGES)
    from autograder.student_kit import wheel_name  # here: the kit's module imports this one

    kit = wheel_name()
    return f"""# Problem set: weight sharing in convolutional networks

Open `weight_sharing.ipynb` (or edit `weight_sharing.py`; both hold the same functions) and replace
each `raise NotImplementedError(...)` with your code. The notebook explains every task.

## Check your work

The self-check comes with this folder as `{kit}` (your instructor hands it out; it needs
Python 3.10 or later and numpy, nothing else). Install it once, in one command:

    pip install {kit}

Then, as often as you like:

    pytest test_public.py               # the public examples, run in your own Python
    wsgrade check weight_sharing.ipynb  # the grader's public tests and its feedback, a few seconds

`wsgrade check` (also `wscheck`; the notebook's "Check Part N" cells call it) runs your code in a
separate Python process and compares its answers with the grader's, on the grader's public tests,
with the grader's words. It holds those tests' inputs and expected answers, not the grader's code.

Studying on your own, without a course? Install the instructor package instead (the course
repository: `./dev.sh setup`, see its README): its `wsgrade grade weight_sharing.ipynb` runs the full
hidden tests with their feedback, and `wsgrade experiment` the self-study section. Use one or the
other in an environment, not both: each brings a `wsgrade` command.

The grader runs many more tests than these: generated inputs of every shape (float32 too,
non-contiguous arrays, strides and paddings), the error cases in the docstrings, and a check that
you never modify an input array. When a test fails you see the smallest input that shows the
problem, what was expected, what you returned, and often a hint naming the mistake.

## Rules

- Keep the function names and argument names: the grader calls them that way.
- Use NumPy (CuPy is optional for Part 5). Any correct algorithm is accepted; results are compared
  with tolerances scaled to the size of the numbers summed, so float32 and FFT methods pass.
- The grader runs your code in a sandbox where you may import the standard library and
  {allowed}, nothing else (CuPy too where the GPU task runs). Rely on no file but your own
  submission and on no network: neither is there for your code.
- Do not modify the input arrays.
- Printing is fine; the grader keeps the first few kilobytes of what you print.

## Rubric ({total:g} points)

The total is {total:g} points where the grader has no GPU, as on Gradescope: Task 5.3 is then
reported as skipped with 0 possible points. Where it has one, Task 5.3 adds {gpu_points:g} and the total is
{total + gpu_points:g}. Graded in nbgrader or otter, the timed tasks ({timed:g} points) are left out and the
total is {total + gpu_points - timed:g}.

| task | part | function | points |
|---|---|---|---|
{chr(10).join(rows)}

Within a task, points are shared between several tests, so a half-right function earns part of
its points. Part 5's speed points compare your `conv2d_fast` with the reference measured on the
same machine in the same run: full points within 2x of the reference, partial points down to 10x.
"""


def build_release() -> dict[str, str]:
    """Build every file of the student release.

    Returns:
        File name -> content.

    Raises:
        autograder.source.SourceError: if the single source breaks the rules of ``autograder.source``.
    """
    text = SOLUTION_SOURCE.read_text()
    module = _MODULE_DOCSTRING + "\n" + module_text(text, stubs=True)
    ast.parse(module)  # the release must at least be valid Python
    return {
        "weight_sharing.py": module,
        "weight_sharing.ipynb": nbformat.writes(student_notebook(text)) + "\n",
        "test_public.py": public_tests_module(),
        "README.md": _student_readme(),
    }


def write_release(out_dir: Path = RELEASE_DIR) -> list[Path]:
    """Write the release, replacing what is there.

    Args:
        out_dir: the release folder.

    Returns:
        The files written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in build_release().items():
        path = out_dir / name
        path.write_text(content)
        written.append(path)
    return written


def release_drift(out_dir: Path = RELEASE_DIR) -> list[str]:
    """Compare a release folder with a fresh build.

    Args:
        out_dir: the release folder.

    Returns:
        One line per file that is missing, different or extra; empty when up to date.
    """
    fresh = build_release()
    problems = []
    for name, content in fresh.items():
        path = out_dir / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text() != content:
            problems.append(f"{name}: differs from a fresh build")
    for path in sorted(out_dir.glob("*")) if out_dir.exists() else []:
        if path.name not in fresh and path.is_file():
            problems.append(f"{path.name}: not part of the release")
    return problems
