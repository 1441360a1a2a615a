"""Test adequacy: every mutant loses points on what it breaks and keeps full marks elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.grading import GradingReport, grade
from autograder.tasks import contract_functions, task_by_id
from tests.corpus import Mutant, all_mutants, mutant_source, with_bodies


def scores_by_function(report: GradingReport) -> dict[str, tuple[float, float]]:
    """Contract function -> (earned, possible)."""
    totals: dict[str, tuple[float, float]] = {}
    for test in report.tests:
        function = task_by_id(test.task_id).function
        earned, possible = totals.get(function, (0.0, 0.0))
        totals[function] = (earned + test.score, possible + test.max_score)
    return totals


@pytest.mark.slow
@pytest.mark.parametrize("mutant", all_mutants(), ids=lambda m: m.name)
def test_mutant_loses_points_only_where_broken(mutant: Mutant, tmp_path: Path) -> None:
    path = tmp_path / "weight_sharing.py"
    path.write_text(mutant_source(mutant))
    report = grade(path, performance=False)
    assert not report.internal_errors, [t.output for t in report.internal_errors]
    scores = scores_by_function(report)
    earned, possible = scores[mutant.function]
    assert earned < possible, f"{mutant.name} kept full marks on {mutant.function}: the hidden tests miss this mistake"
    for function, (earned, possible) in scores.items():
        if function != mutant.function and function not in mutant.also_breaks:
            lost = [t.name + "\n" + t.output for t in report.tests if t.score < t.max_score and function in t.tags]
            assert earned == pytest.approx(possible), f"{mutant.name} lost points on {function}:\n" + "\n".join(lost)
    if mutant.mistake:
        recognised = {t.mistake for t in report.tests if t.status == "failed" and mutant.function in t.tags}
        assert mutant.mistake in recognised, f"{mutant.name}: expected the hint {mutant.mistake!r}, got {recognised}"


def test_mutants_apply_to_the_current_reference() -> None:
    """Each mutant's text still occurs exactly once where it says (fails fast when the reference changes)."""
    names = [mutant.name for mutant in all_mutants()]
    assert len(names) == len(set(names))
    for mutant in all_mutants():
        mutant_source(mutant)


REFUSE = '    raise ValueError("refused")\n'


@pytest.mark.slow
@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(False, id="refuses-everything"),
        pytest.param(True, id="refuses-everything-but-says-equivariant"),
    ],
)
def test_code_that_computes_nothing_scores_zero(answer: bool, tmp_path: Path) -> None:
    """Every function only raises ValueError, is_shift_equivariant returns a constant: 0 points.

    Each "rejects bad input" test first checks a valid call (check_accepts), and each
    is_shift_equivariant test has both answers, so refusing everything earns nothing.
    """
    bodies = dict.fromkeys(contract_functions(), REFUSE)
    bodies["is_shift_equivariant"] = f"    return {answer}\n"
    path = tmp_path / "weight_sharing.py"
    path.write_text(with_bodies(bodies))
    report = grade(path, performance=False)
    assert not report.internal_errors, [t.output for t in report.internal_errors]
    earned = [f"{t.score:.2f} {t.name}" for t in report.tests if t.score > 0]
    assert not earned, "\n".join(earned)
    assert report.score == 0


CORRECT = Path(__file__).parent / "corpus" / "correct"


def _as_notebook(source: str, path: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# My solutions"), nbformat.v4.new_code_cell(source)]
    notebook.cells += [nbformat.v4.new_code_cell("print(conv2d(np.ones((3, 3)), np.ones((2, 2))))\n%timeit pass")]
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"
    nbformat.write(notebook, path)
    return path


def _as_zip(source: str, path: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("my_submission/weight_sharing.py", source)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "packaging"),
    [("loops", "py"), ("fft", "py"), ("float32", "py"), ("loops", "ipynb"), ("fft", "zip")],
)
def test_correct_submissions_written_differently_get_full_marks(variant: str, packaging: str, tmp_path: Path) -> None:
    source = (CORRECT / f"{variant}.py").read_text()
    if packaging == "py":
        path = tmp_path / "weight_sharing.py"
        path.write_text(source)
    elif packaging == "ipynb":
        path = _as_notebook(source, tmp_path / "weight_sharing.ipynb")
    else:
        path = _as_zip(source, tmp_path / "submission.zip")
    report = grade(path, performance=False)
    failed = [f"{t.name}\n{t.output}" for t in report.tests if t.status != "passed"]
    assert not failed, "\n\n".join(failed)
    assert report.score == pytest.approx(report.max_score)
