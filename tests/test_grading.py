"""End to end: the grader on the reference, the stubs and the examples, through the library and the CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from autograder.grading import WRONG_FILE, GradingReport, apportion, grade
from autograder.release import RELEASE_DIR, student_notebook
from autograder.tasks import TASKS
from tests.corpus import reference_source

GRADESCOPE_STATUSES = {"passed", "failed"}
GRADESCOPE_VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
CONTRACT = {task.function for task in TASKS}
EXAMPLES = Path(__file__).parent.parent / "examples" / "submissions"


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "weight_sharing.py"
    path.write_text(reference_source())
    return path


@pytest.fixture(scope="module")
def reference_report(reference_file: Path) -> GradingReport:
    return grade(reference_file)


@pytest.fixture(scope="module")
def stub_report() -> GradingReport:
    return grade(RELEASE_DIR / "weight_sharing.py", performance=False)


def test_reference_scores_full_marks(reference_report: GradingReport) -> None:
    failed = [f"{t.name}\n{t.output}" for t in reference_report.tests if t.status == "failed"]
    assert not failed, "\n\n".join(failed)
    assert reference_report.score == pytest.approx(reference_report.max_score)
    ran = {t.task_id for t in reference_report.tests if t.status == "passed"}
    gpu_tasks = {task.id for task in TASKS if "gpu" in task.tags}
    assert ran | gpu_tasks == {task.id for task in TASKS}, "every task has hidden tests"
    assert reference_report.max_score == pytest.approx(sum(t.points for t in TASKS if t.id in ran))


def test_stubs_score_zero_with_a_clear_message(stub_report: GradingReport) -> None:
    assert stub_report.score == 0
    for test in stub_report.tests:
        assert test.status == "failed", test.name
        assert "is not implemented yet (Task" in test.output, test.output
        assert not test.internal_error


def test_feedback_names_each_unimplemented_task_once_after_the_real_failures(stub_report: GradingReport) -> None:
    tasks = {t.task_id for t in stub_report.tests}
    feedback = stub_report.feedback()
    assert len(feedback) == len(tasks), "one line per unimplemented task, not one per test"
    assert all("not implemented yet" in title for title, _ in feedback)
    mixed = replace(
        stub_report,
        tests=(*stub_report.tests, replace(stub_report.tests[0], name="1.1 conv2d: real", mistake="raised")),
    )
    assert mixed.feedback()[0][0] == "1.1 conv2d: real", "a real failure comes before the waiting tasks"


def test_results_json_follows_gradescope_format(reference_report: GradingReport) -> None:
    data = json.loads(json.dumps(reference_report.to_gradescope()))
    assert {"score", "execution_time", "output", "tests"} <= set(data)
    for test in data["tests"]:
        assert {"name", "score", "max_score", "output", "visibility", "tags"} <= set(test)
        assert test.get("status", "passed") in GRADESCOPE_STATUSES and test["visibility"] in GRADESCOPE_VISIBILITIES
        assert "status" in test or test["extra_data"]["status"] == "skipped"
        assert test["tags"][0] in CONTRACT and set(test["tags"]) <= CONTRACT | {"performance", "gpu"}
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))


def test_public_tests_are_visible_and_hidden_ones_wait_for_publication(reference_report: GradingReport) -> None:
    visibilities = {t.visibility for t in reference_report.tests}
    assert visibilities == {"visible", "after_published"}


def _without_timing(report: GradingReport) -> dict:
    data = report.to_gradescope()
    data.pop("execution_time")
    return data


def test_grading_is_deterministic() -> None:
    path = EXAMPLES / "carol_classic_mistakes.py"
    first, second = grade(path, performance=False), grade(path, performance=False)
    assert _without_timing(first) == _without_timing(second)
    assert first.score < first.max_score


_INPUTS_DRAWN = """
import hashlib, pickle, sys
if len(sys.argv) > 2:  # a local module full of literals, as a grader's own modules are
    sys.path.insert(0, sys.argv[2])
    import wsgrade_literals
from autograder import grading
from autograder.sandbox.client import Sandbox
digest, original = hashlib.sha256(), Sandbox.call
def call(self, function, args=(), kwargs=None, **options):
    digest.update(pickle.dumps((function, args, kwargs)))
    return original(self, function, args, kwargs, **options)
Sandbox.call = call
report = grading.grade(sys.argv[1], performance=False, select="matches_formula or huge", replay=False)
print(digest.hexdigest(), report.score)
"""


def test_the_inputs_drawn_do_not_depend_on_what_the_grader_process_loaded(tmp_path: Path, reference_file: Path) -> None:
    """Hypothesis draws literals from local modules unless told not to: a grader started another way
    (another entry point, an install in site-packages, an edited grader) would test other inputs."""
    literals = tmp_path / "literals"
    literals.mkdir()
    (literals / "wsgrade_literals.py").write_text("".join(f"C{i} = {1000 + 37 * i}\n" for i in range(300)))

    def inputs(*extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", _INPUTS_DRAWN, str(reference_file), *extra],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            cwd=tmp_path,
        )
        return result.stdout.split()[0]

    assert inputs() == inputs(str(literals))


def test_pytest_plugins_and_options_of_the_graders_environment_change_nothing(tmp_path: Path) -> None:
    """A TA's environment may hold any pytest plugin (pytest-randomly reorders and reseeds, a timeout
    plugin kills slow tests) and options (``PYTEST_ADDOPTS=-x``): the hidden suite takes none of them.
    The plugin planted here fails every test."""
    site = tmp_path / "site"
    (site / "wsgrade_planted-1.0.dist-info").mkdir(parents=True)
    (site / "wsgrade_planted-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: wsgrade-planted\nVersion: 1.0\n"
    )
    (site / "wsgrade_planted-1.0.dist-info" / "entry_points.txt").write_text("[pytest11]\nplanted = wsgrade_planted\n")
    for module in ("wsgrade_planted", "wsgrade_planted_by_name"):  # by entry point, and by PYTEST_PLUGINS
        (site / f"{module}.py").write_text(
            "import pytest\n\n@pytest.hookimpl(tryfirst=True)\ndef pytest_runtest_call(item):\n"
            "    raise AssertionError('the planted plugin failed this test')\n"
        )
    (tmp_path / "test_any.py").write_text("def test_any():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    env |= {"PYTHONPATH": str(site), "PYTEST_ADDOPTS": "-x", "PYTEST_PLUGINS": "wsgrade_planted_by_name"}
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_any.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert "the planted plugin failed this test" in plain.stdout  # installed, and pytest loads it
    mistakes = EXAMPLES / "carol_classic_mistakes.py"
    graded = subprocess.run(
        [sys.executable, "-c", _SCORE, str(mistakes)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=True,
    )
    here = grade(mistakes, performance=False, select="hand_example")
    assert 0 < here.score < here.max_score  # some tests fail: -x would leave the others out
    assert graded.stdout.split() == [str(here.score), str(here.max_score)]


_SCORE = """
import sys
from autograder import grading
report = grading.grade(sys.argv[1], performance=False, select="hand_example")
print(report.score, report.max_score)
"""


def test_notebook_folder_and_zip_submissions_grade_like_the_module(tmp_path: Path, reference_file: Path) -> None:
    source = reference_file.read_text()
    notebook = student_notebook()
    definitions = nbformat.v4.new_code_cell(source)
    notebook.cells = [nbformat.v4.new_code_cell("%matplotlib inline\n!pip install numpy"), definitions, *notebook.cells]
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number}"
    # the student notebook's stub cells come after and would overwrite the definitions: drop them
    notebook.cells = [c for c in notebook.cells if "raise NotImplementedError" not in c.source]
    (tmp_path / "nb").mkdir()
    nbformat.write(notebook, tmp_path / "nb" / "weight_sharing.ipynb")
    folder = tmp_path / "folder" / "alice"
    folder.mkdir(parents=True)
    shutil.copy(reference_file, folder / "weight_sharing.py")
    with zipfile.ZipFile(tmp_path / "alice.zip", "w") as archive:
        archive.write(folder / "weight_sharing.py", "alice/weight_sharing.py")
    for path in (tmp_path / "nb" / "weight_sharing.ipynb", tmp_path / "folder", tmp_path / "alice.zip"):
        report = grade(path, performance=False)
        assert report.score == pytest.approx(report.max_score), [t.output for t in report.tests if t.status == "failed"]
    notebook_report = grade(tmp_path / "nb", performance=False)
    assert "shell/magic line(s)" in notebook_report.output


def _wsgrade(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_grade_writes_results_json_and_exits_zero_for_any_score(tmp_path: Path) -> None:
    result = _wsgrade("grade", str(RELEASE_DIR / "weight_sharing.py"), "--json", "out.json", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Score: 0.00" in result.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["score"] == 0 and data["tests"]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("notes.txt", b"hello", "not a submission"),
        ("weight_sharing.ipynb", b"{not json", "not a valid Jupyter notebook"),
        ("weight_sharing.py", b"\xff\xfe\x00bad", "not UTF-8"),
        ("weight_sharing.py", b"", "is empty"),
        ("empty_folder", None, "no weight_sharing.py"),
    ],
)
def test_cli_rejects_what_is_not_a_submission(tmp_path: Path, name: str, content: bytes | None, words: str) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = _wsgrade("grade", str(path), "--json", "out.json", cwd=tmp_path)
    assert result.returncode == 1
    assert words in result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["score"] == 0 and words in data["output"]


def test_cli_check_runs_only_the_public_tests(tmp_path: Path, reference_file: Path) -> None:
    result = _wsgrade("check", str(reference_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "public tests pass" in result.stdout
    assert "Self-check" in result.stdout


def _foreign_notebook(path: Path) -> Path:
    """Another course's homework handed in by mistake."""
    cells = [
        nbformat.v4.new_markdown_cell("# Homework 3: linear regression"),
        nbformat.v4.new_code_cell("import numpy as np\n\ndef fit(x, y):\n    return np.polyfit(x, y, 1)"),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_a_foreign_notebook_is_told_it_is_the_wrong_file(tmp_path: Path) -> None:
    report = grade(_foreign_notebook(tmp_path / "weight_sharing.ipynb"), select="test_part2", performance=False)
    assert report.score == 0 and not report.internal_errors
    assert WRONG_FILE in report.output and "not defined in your code" not in report.output


def test_the_submission_runs_outside_the_grader_process(tmp_path: Path) -> None:
    """The submission prints its pid and uid while it loads; neither is the grader's (uid: where isolated)."""
    path = tmp_path / "weight_sharing.py"
    path.write_text(reference_source() + "\nimport os\nprint('who', os.getpid(), os.getuid())\n")
    report = grade(path, performance=False, select="conv2d_hand")
    who = next(line.split() for line in report.output.splitlines() if line.startswith("who "))
    assert int(who[1]) != os.getpid()
    if report.sandbox.get("mode") != "process":
        assert int(who[2]) != os.getuid()
    assert report.score == report.max_score > 0


@pytest.mark.parametrize("points", [1, 4, 6, 7, 8, 10])
@pytest.mark.parametrize("weights", [[1, 1, 1], [1, 3, 1, 1, 2], [2, 2, 1, 1, 1, 1, 1], [5]])
def test_points_are_apportioned_in_hundredths_that_add_up(points: int, weights: list[int]) -> None:
    shares = apportion(points, [(f"t{i}", float(w)) for i, w in enumerate(weights)])
    assert round(sum(shares.values()), 2) == points
    for i, weight in enumerate(weights):
        assert abs(shares[f"t{i}"] - points * weight / sum(weights)) < 0.01
        assert round(shares[f"t{i}"], 2) == shares[f"t{i}"]


def test_a_broken_hidden_suite_is_a_grader_error_not_a_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Detected from pytest's collection reports, not from words in its output."""
    import shutil

    import autograder.grading as grading

    suite = tmp_path / "hidden_tests"
    shutil.copytree(grading.HIDDEN_TESTS, suite, ignore=shutil.ignore_patterns("test_*.py", "__pycache__"))
    (suite / "test_broken.py").write_text("import a_module_that_does_not_exist\n")
    monkeypatch.setattr(grading, "HIDDEN_TESTS", suite)
    (tmp_path / "weight_sharing.py").write_text("def conv2d(image, kernel):\n    return image\n")
    with pytest.raises(RuntimeError, match="could not be collected"):
        grading.grade(tmp_path / "weight_sharing.py", performance=False)


def test_a_stub_ends_each_test_at_its_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """NotImplementedError is not shrunk: hypothesis used to call a stub hundreds of times per test."""
    from autograder.sandbox.client import Sandbox

    calls = []
    original = Sandbox.call

    def counted(self: Sandbox, function: str, *args: object, **kwargs: object) -> object:
        calls.append(function)
        return original(self, function, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "call", counted)
    report = grade(RELEASE_DIR / "weight_sharing.py", performance=False, select="conv2d_layer or layer_")
    assert report.tests and all(t.mistake == "not-implemented" for t in report.tests)
    assert len(calls) <= 2 * len(report.tests), f"{len(calls)} calls for {len(report.tests)} tests"


def test_an_internal_error_keeps_its_traceback_for_the_instructor_not_the_student(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging
    import shutil

    import autograder.grading as grading
    from autograder.diagnostics import log_to

    suite = tmp_path / "hidden_tests"
    shutil.copytree(grading.HIDDEN_TESTS, suite, ignore=shutil.ignore_patterns("test_*.py", "__pycache__"))
    (suite / "test_buggy.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.graded('1.1')\n"
        "def test_buggy_check(sub):\n"
        "    '''a check with a bug in it'''\n"
        "    secret_table = {}\n"
        "    secret_table['no such key']\n"
    )
    monkeypatch.setattr(grading, "HIDDEN_TESTS", suite)
    (tmp_path / "weight_sharing.py").write_text("def conv2d(image, kernel):\n    return image\n")
    handler = log_to(tmp_path / "grader.log")
    try:
        report = grading.grade(tmp_path / "weight_sharing.py", performance=False)
    finally:
        if handler is not None:
            logging.getLogger("autograder").removeHandler(handler)
            handler.close()
    (broken,) = report.internal_errors
    ident = re.search(r"grader error ([0-9a-f]{8})", broken.output)
    assert ident, broken.output
    assert "secret_table" not in broken.output and "test_buggy.py" not in broken.output, "no hidden source"
    assert "secret_table['no such key']" in broken.traceback
    assert broken.to_gradescope()["extra_data"]["traceback"] == broken.traceback
    log = (tmp_path / "grader.log").read_text()
    assert ident.group(1) in log and "secret_table['no such key']" in log
