"""Fair at any machine load: the same submission gets the same score on a busy machine.

The time limits that decide a score count CPU time of the student's process tree, and the
release's worked-example and figure cells (tagged ``EXAMPLE_TAG`` from the single source) are not
run when a notebook is graded, so a slow first implementation cannot lose its points while the
notebook's own demonstrations call it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from autograder.grading import GradingReport, grade
from autograder.release import solution_notebook, student_notebook
from autograder.submission import EXAMPLE_TAG, load_submission

SLOW_CONV2D = '''
def conv2d(image, kernel):
    """A per-pixel loop in pure Python that returns float32: correct, and slow."""
    shape = _fast_conv2d(image, kernel).shape  # the reference's checks and output shape
    kh, kw = np.shape(kernel)
    out = np.zeros(shape, dtype=np.float32)
    for i in range(shape[0]):
        for j in range(shape[1]):
            total = 0.0
            for m in range(kh):
                for n in range(kw):
                    total += float(image[i + m, j + n]) * float(kernel[m, n])
            out[i, j] = total
    return out
'''


def _slow_notebook(path: Path) -> Path:
    """The solution notebook with conv2d replaced by a slow loop (its worked examples call it)."""
    nb = solution_notebook()
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def conv2d(" in c.source)
    cell.source = cell.source.replace("def conv2d(", "def _fast_conv2d(", 1) + "\n\n" + SLOW_CONV2D
    examples = [c for c in nb.cells if EXAMPLE_TAG in c.metadata.get("tags", [])]
    assert any("conv2d(" in c.source for c in examples), "the worked examples must call conv2d"
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def _busy_cores() -> Iterator[None]:
    """Both cores kept busy by processes of the test's own, bounded in time, ended afterwards."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 600\nwhile time.time() < end: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    time.sleep(0.5)
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _scores(report: GradingReport) -> dict[str, float]:
    return {test.name: test.score for test in report.tests}


def test_the_release_tags_its_examples_and_the_loader_skips_only_those() -> None:
    nb = student_notebook()
    tagged = [i for i, c in enumerate(nb.cells) if EXAMPLE_TAG in c.metadata.get("tags", [])]
    assert tagged and all(nb.cells[i].cell_type == "code" for i in tagged)
    assert not any("def " in nb.cells[i].source and "NotImplementedError" in nb.cells[i].source for i in tagged)
    nb.cells.append(nbformat.v4.new_code_cell("print('a cell the student added')"))
    nb.cells[tagged[0]].source += "\n\ndef helper():\n    return 1\n"  # defines something: it runs
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"wsgrade-load-{os.getpid()}.ipynb"
    try:
        nbformat.write(nb, path)
        submission = load_submission(path)
    finally:
        path.unlink(missing_ok=True)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(submission.cells) == len(code)
    assert len(submission.skip_cells) == len(tagged) - 1
    assert len(code) - 1 not in submission.skip_cells, "a cell the student added still runs"


def test_examples_that_would_hang_or_exit_do_not_cost_points(tmp_path: Path) -> None:
    nb = solution_notebook()
    example = next(c for c in nb.cells if EXAMPLE_TAG in c.metadata.get("tags", []))
    example.source = "import time, sys\ntime.sleep(1000)\nsys.exit(1)\n"
    nbformat.write(nb, tmp_path / "weight_sharing.ipynb")
    report = grade(tmp_path / "weight_sharing.ipynb", select="test_part1", performance=False)
    assert report.score == report.max_score, report.output


@pytest.mark.slow
def test_a_slow_correct_submission_scores_the_same_on_a_busy_machine(tmp_path: Path) -> None:
    path = _slow_notebook(tmp_path / "weight_sharing.ipynb")
    idle = grade(path, select="test_part1", performance=False)
    assert idle.score > 0.9 * idle.max_score, idle.output
    with _busy_cores():
        busy = grade(path, select="test_part1", performance=False)
    assert _scores(busy) == _scores(idle)
    assert json.dumps(busy.output).count("could not be loaded") == 0
