"""The notebooks run top to bottom in a real Jupyter kernel (nbclient), as a student would run them.

* The solution notebook runs without an error and every figure cell draws exactly one image. There
  is one self-check cell per part (``wsgrade check weight_sharing.ipynb -k test_partN``); each one
  selects the test module of its part, and the one for Part 4 runs and reports every public test
  passing (each costs a grading of a few seconds, so the others are not run).
* The student notebook fails only with the stubs' ``NotImplementedError``: the first error is the
  first call of an unimplemented function, nothing else goes wrong before it, and no later cell
  fails for another reason (a figure cell never trips over a name that an earlier failing cell did
  not define).

The kernel is this interpreter (a kernelspec written to a temporary ``JUPYTER_PATH``), so the tests
use the same environment as the rest of the suite, and ``wsgrade`` is put first on the kernel's
``PATH``. Cells run in a temporary folder holding the notebook, because a self-check grades the file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.grading import HIDDEN_TESTS
from autograder.release import solution_notebook, student_notebook

nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

KERNEL = "weight-sharing-tests"
CELL_TIMEOUT = 120
FIGURES = 4  # the figure cells of Parts 1, 2 and 4 (two in Part 4)
RUN_CHECK = "test_part4"  # the self-check the solution test runs
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PASS_LINE = re.compile(r"(\d+) of (\d+) public tests pass")


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernelspec for this interpreter, ``wsgrade`` on PATH, the default inline backend; returns a work dir."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "weight sharing tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent), prepend=":")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let ipykernel choose its inline backend
    work = tmp_path / "work"
    work.mkdir()
    return work


def _execute(nb: nbformat.NotebookNode, work: Path, *, allow_errors: bool) -> nbformat.NotebookNode:
    """Save ``nb`` as ``work/weight_sharing.ipynb`` (what a self-check grades), then run it in ``work``."""
    nbformat.write(nb, work / "weight_sharing.ipynb")
    client = nbclient.NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()
    return nb


def _is_figure(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "plt." in cell.source


def _is_self_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "wsgrade check" in cell.source


def _selection(cell: nbformat.NotebookNode) -> str:
    found = re.search(r"wsgrade check weight_sharing\.ipynb -k (\w+)", cell.source)
    assert found, f"a self-check must grade weight_sharing.ipynb with -k:\n{cell.source}"
    return found.group(1)


def _skip_self_checks(nb: nbformat.NotebookNode, keep: str) -> nbformat.NotebookNode:
    for cell in filter(_is_self_check, nb.cells):
        if _selection(cell) != keep:
            cell.source = "# self-check skipped by the test"
    return nb


def _text(cell: nbformat.NotebookNode) -> str:
    return _ANSI.sub("", "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream"))


def _errors(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode, nbformat.NotebookNode]]:
    return [
        (index, cell, out)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]


def test_there_is_a_self_check_per_part_and_each_selects_its_part() -> None:
    selections = [_selection(cell) for cell in student_notebook().cells if _is_self_check(cell)]
    assert selections == [f"test_part{part}" for part in range(1, 7)]
    for selection in selections:  # `-k test_partN` matches the module names test_partN_*.py
        modules = sorted(HIDDEN_TESTS.glob(f"{selection}_*.py"))
        assert modules, f"-k {selection} selects no test module in {HIDDEN_TESTS}"
        assert any("public=True" in module.read_text() for module in modules), f"-k {selection}: no public test"


@pytest.mark.slow
def test_solution_notebook_runs_and_draws_every_figure(kernel_env: Path) -> None:
    nb = _skip_self_checks(solution_notebook(), keep=RUN_CHECK)
    nb = _execute(nb, kernel_env, allow_errors=False)  # raises on the first error
    assert _errors(nb) == []

    figures = [cell for cell in nb.cells if _is_figure(cell)]
    assert len(figures) == FIGURES
    for cell in figures:
        assert cell.source.rstrip().endswith("plt.show()"), f"end figure cell {cell.id} with plt.show()"
        images = [out for out in cell.outputs if "image/png" in out.get("data", {})]
        assert len(images) == 1, f"figure cell {cell.id} produced {len(images)} images:\n{cell.source}"

    (check,) = (cell for cell in nb.cells if _is_self_check(cell) and _selection(cell) == RUN_CHECK)
    counts = _PASS_LINE.findall(_text(check))
    assert counts, f"the self-check printed no result line:\n{_text(check)}"
    passed, total = map(int, counts[-1])
    assert passed == total > 0, _text(check)


@pytest.mark.slow
def test_student_notebook_fails_only_with_not_implemented_error(kernel_env: Path) -> None:
    nb = _execute(_skip_self_checks(student_notebook(), keep="test_part1"), kernel_env, allow_errors=True)

    errors = _errors(nb)
    assert errors, "the stubs raised nothing"
    first_index, first_cell, first = errors[0]
    assert first.ename == "NotImplementedError", f"{first.ename}: {first.evalue}\n{first_cell.source}"
    assert first.evalue.startswith("Task 1.1: conv2d"), first.evalue
    # Run All stops here: every cell above it ran cleanly, and it is the first cell calling a task.
    above = [cell for cell in nb.cells[:first_index] if cell.cell_type == "code"]
    assert above and all(cell.execution_count for cell in above)
    assert "conv2d(" in first_cell.source and not _is_figure(first_cell)

    other = [(cell.id, out.ename, out.evalue) for _, cell, out in errors if out.ename != "NotImplementedError"]
    assert other == [], "a cell failed for a reason other than a stub"
    assert all(re.match(r"Task \d\.\d: \w+ is not implemented yet", out.evalue) for _, _, out in errors)
    for cell in filter(_is_figure, nb.cells):  # each needs a student function: an error, not an empty plot
        assert any(cell is failed for _, failed, _ in errors), cell.source
        assert not any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source

    (check,) = (cell for cell in nb.cells if _is_self_check(cell) and _selection(cell) == "test_part1")
    stub_check = _text(check)
    passed, total = map(int, _PASS_LINE.findall(stub_check)[-1])
    assert passed == 0 < total, stub_check
    assert "conv2d is not implemented yet (Task 1.1)" in stub_check
