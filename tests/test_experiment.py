"""The self-study experiment (``wsgrade experiment``): what it shows, and whose code it runs.

One quick run (about 7 s) on the stub release checks the fallback to the reference and the ordering
the experiment is about; the accuracies are compared with each other, never with fixed numbers.
The other tests shrink the training to two steps, since they are about the plumbing.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the [experiment] extra is not installed")

from autograder import experiment  # after the skip: it imports scikit-learn
from autograder.cli import main
from autograder.experiment import FUNCTIONS, ExperimentResult, Settings, run_experiment
from autograder.release import RELEASE_DIR, solution_notebook

STUB = RELEASE_DIR / "weight_sharing.py"
OTHERS = ("locally connected", "dense")

PARTIAL = """
import numpy as np

from autograder.reference import load_reference


def conv2d_layer(x, weight, bias=None, stride=1, padding=0):
    return load_reference().conv2d_layer(x, weight, bias, stride, padding)


def conv2d_backward(dout, x, weight, stride=1, padding=0):
    return x, weight


def locally_connected2d(x, weight, bias=None, stride=1):
    return np.zeros((x.shape[0], weight.shape[2], weight.shape[0], weight.shape[1]))


def shift2d(x, dy, dx, circular=False):
    raise ValueError("shifting is for tomorrow")


print("top-level code must not run")
undefined_name + 1
"""


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResult:
    """The quick experiment on the student release, whose every function is a stub."""
    return run_experiment(submission=STUB, out_dir=tmp_path_factory.mktemp("experiment"), quick=True, seed=0)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``quick`` two training steps on 20 images: enough to exercise everything but the learning."""
    monkeypatch.setattr(experiment, "QUICK", Settings(steps=2, sizes=(20,)))


def test_a_stub_submission_falls_back_to_the_reference_for_every_function(stub_run: ExperimentResult) -> None:
    assert [impl.function for impl in stub_run.implementations] == list(FUNCTIONS)
    text = stub_run.text()
    for impl in stub_run.implementations:
        assert not impl.yours
        assert impl.note == "yours is not implemented yet"
        assert f"  {impl.function:<29} reference (yours is not implemented yet)\n" in text
    assert stub_run.notes == ()


def test_the_conv_net_keeps_its_accuracy_under_shifts_better_than_the_others(stub_run: ExperimentResult) -> None:
    conv = stub_run.accuracy["conv"]
    for other in OTHERS:
        theirs = stub_run.accuracy[other]
        # At every training-set size: it loses less to a 1-pixel shift, and stays clearly above the
        # others (who fall to chance, 10%) at 2 and 3 pixels.
        assert np.all(conv[:, 0] - conv[:, 1] < theirs[:, 0] - theirs[:, 1]), (other, conv, theirs)
        assert np.all(conv[:, 2:] > theirs[:, 2:] + 0.05), (other, conv, theirs)


def test_the_conv_net_needs_fewer_examples_on_shifted_digits(stub_run: ExperimentResult) -> None:
    assert stub_run.sizes == (50, 1347)
    conv_on_50 = stub_run.accuracy["conv"][0, 2:]
    for other in OTHERS:  # trained on 50 images it beats the others trained on all 1,347 of them
        assert np.all(conv_on_50 > stub_run.accuracy[other][-1, 2:]), (other, stub_run.accuracy)


def test_the_run_reports_parameters_table_and_figures(stub_run: ExperimentResult) -> None:
    assert stub_run.parameters == {"conv": 1418, "locally connected": 18682, "dense": 1560}
    text = stub_run.text()
    assert "locally connected      18,682   13.17x" in text
    assert "dense                   1,560    1.10x" in text
    assert "trained on   0 px   1 px   2 px   3 px" in text
    for path in stub_run.figures:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    assert (stub_run.figures[0].parent / "results.txt").read_text() == text + "\n"


def test_the_result_names_which_implementation_ran(tmp_path: Path, tiny: None) -> None:
    submission = tmp_path / "weight_sharing.py"
    submission.write_text(PARTIAL)
    result = run_experiment(submission=submission, out_dir=tmp_path / "out", quick=True, seed=0)
    described = {impl.function: impl.describe() for impl in result.implementations}
    assert described["conv2d_layer"] == "yours"
    assert described["conv2d_backward"] == "reference (yours returns 2 value(s) instead of 3)"
    assert described["locally_connected2d"].startswith("yours (differs from the reference by up to ")
    assert described["locally_connected2d_backward"] == "reference (not defined in your submission)"
    assert described["shift2d"] == "reference (yours raised ValueError: shifting is for tomorrow)"
    assert result.notes == ()  # the print and the NameError are top-level code, which is not run
    assert "  conv2d_layer                  yours\n" in result.text()


def test_a_notebook_runs_its_definitions_only(tmp_path: Path, tiny: None) -> None:
    notebook = tmp_path / "weight_sharing.ipynb"  # holds examples, figures and this experiment's own cell
    nbformat.write(solution_notebook(), notebook)
    result = run_experiment(submission=notebook, out_dir=tmp_path / "out", quick=True, seed=0)
    assert [impl.describe() for impl in result.implementations] == ["yours"] * len(FUNCTIONS)
    assert result.notes == ()


def test_the_same_seed_gives_the_same_numbers(tmp_path: Path, tiny: None) -> None:
    first = run_experiment(submission=None, out_dir=tmp_path / "a", quick=True, seed=3)
    second = run_experiment(submission=None, out_dir=tmp_path / "b", quick=True, seed=3)
    for model, accuracy in first.accuracy.items():
        assert np.array_equal(accuracy, second.accuracy[model]), model
    assert [impl.describe() for impl in first.implementations] == ["reference"] * len(FUNCTIONS)


def test_bad_input_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed must be >= 0"):
        run_experiment(submission=None, out_dir=tmp_path, quick=True, seed=-1)
    (tmp_path / "notes.txt").write_text("not code")
    with pytest.raises(ValueError, match=r"notes\.txt is not a submission"):
        run_experiment(submission=tmp_path / "notes.txt", out_dir=tmp_path, quick=True, seed=0)


def test_the_command_prints_the_table(tmp_path: Path, tiny: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_layer                  reference" in out
    assert f"wrote {tmp_path / 'accuracy_vs_shift.png'}" in out
    assert main(["experiment", "--quick", "--out", str(tmp_path), "--submission", str(tmp_path / "missing.py")]) == 1


def test_without_the_experiment_extra_the_command_says_what_to_install() -> None:
    """scikit-learn and matplotlib are not grading dependencies: a machine without them is told the extra."""
    import subprocess
    import sys

    code = "import sys; sys.modules['sklearn'] = None; from autograder.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-c", code, "experiment", "--quick"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "[experiment] extra" in result.stderr and "pip install" in result.stderr
    assert "Traceback" not in result.stderr
