"""otter-grader round trip with the real tools: ``wsgrade export otter``, ``otter assign``, ``otter run``.

One ``otter assign`` makes the student notebook and the autograder zip. From the student notebook
come four submissions, each run through ``otter run`` (no Docker) with the exported plugin:

* correct: every stub replaced by the reference's function;
* wrong: the same with one mistake from the corpus (partial credit on one task);
* stub: the student notebook as released;
* cheater: stub functions, an early cell that replaces otter's doctest runner, and a ``.OTTER_LOG``
  whose unpickling runs code (both real attacks on plain otter: a control run without the plugin
  gives full marks and runs the log's code in otter's grading process).

The otter runs go two at a time in background threads while the expected verdicts are computed
here with :func:`autograder.grading.grade_prepared`; each subprocess has a time limit and its own
``TMPDIR``.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("otter")

from otter.test_files import GradingResults
from otter.test_files.ok_test import OKTestFile

from autograder.grading import GradingReport, grade_prepared
from autograder.integrations.otter import MASTER, export
from autograder.integrations.otter_plugin import GRADED_TASKS, SandboxVerdict, prepare_submission, question_name
from autograder.release import RELEASE_DIR
from autograder.source import is_definition_code
from autograder.submission import load_submission
from tests.corpus import all_mutants, mutant_source, reference_source

# One otter assign and five otter runs feed every test here: ``pytest -n 2 --dist loadfile``
# (./dev.sh test) runs the module on one xdist worker, so they are made once.
pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 420
MUTANT = next(m for m in all_mutants() if m.name == "layer-missing-bias")
HELPERS = ("_check_conv_args", "_pair", "_lc_windows")
SUBMISSIONS = ("correct", "wrong", "stub", "cheater")
# Markers go into the TMPDIR of the otter run that executes them (each run has its own).
CHEAT = """\
import os
import otter.test_files.ok_test as ok_test
ok_test.run_doctest = lambda name, doctest_string, global_environment: (True, "")  # every otter test passes
try:
    get_ipython()  # defined only in a Jupyter kernel: otter's
    open(os.path.join(os.environ["TMPDIR"], "kernel-marker"), "w").write("the submission ran in otter's kernel")
except NameError:
    pass
"""
PAYLOAD = "import os; open(os.path.join(os.environ['TMPDIR'], 'log-marker'), 'w').write('a submitted log ran code')"


class _Payload:
    """Unpickling this runs :data:`PAYLOAD`: what a crafted ``.OTTER_LOG`` could do to otter."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (PAYLOAD,)


def _run(command: list[str], *, cwd: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """Run one of otter's commands with the venv first on PATH, its own TMPDIR and a time limit."""
    tmp = scratch / "tmp"
    tmp.mkdir(parents=True)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp)}
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # otter and the kernels it started
            output, _ = process.communicate()
            pytest.fail(f"{' '.join(command[:2])} ran past {TIMEOUT_S} s:\n{output[-3000:]}")
    assert process.returncode == 0, f"{' '.join(command)} exited {process.returncode}:\n{output[-5000:]}"
    return subprocess.CompletedProcess(command, process.returncode, output)


def _functions(source: str) -> dict[str, str]:
    """Top-level function name -> its source (decorators included)."""
    lines = source.splitlines()
    return {
        node.name: "\n".join(lines[min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1 : node.end_lineno])
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef)
    }


def _is_python(cell: nbformat.NotebookNode) -> bool:
    """A code cell without shell or magic lines (``!wsgrade check ...``), which are not Python."""
    return cell.cell_type == "code" and not any(line.lstrip()[:1] in ("!", "%") for line in cell.source.splitlines())


def _filled(student: nbformat.NotebookNode, module: str) -> nbformat.NotebookNode:
    """The student notebook with each stub replaced by ``module``'s function, its helpers in a new cell."""
    functions = _functions(module)
    notebook = copy.deepcopy(student)
    for cell in notebook.cells:
        if _is_python(cell):
            lines = cell.source.splitlines()
            for node in reversed(ast.parse(cell.source).body):
                if isinstance(node, ast.FunctionDef) and node.name in functions:
                    lines[node.lineno - 1 : node.end_lineno] = functions[node.name].splitlines()
            cell.source = "\n".join(lines)
    first_function = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and "def " in c.source)
    helpers = "\n\n\n".join(functions[name] for name in HELPERS)
    notebook.cells.insert(first_function, nbformat.v4.new_code_cell(helpers))
    return notebook


def _write(notebook: nbformat.NotebookNode, path: Path) -> Path:
    for number, cell in enumerate(notebook.cells):
        cell.id = f"cell-{number:03d}"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def _cheater(student: nbformat.NotebookNode, folder: Path) -> Path:
    """A zip: stub functions, an early cell that makes every otter test pass, a booby-trapped log."""
    notebook = copy.deepcopy(student)
    cells = [c for c in notebook.cells if c.cell_type != "code" or (_is_python(c) and is_definition_code(c.source))]
    notebook.cells = [nbformat.v4.new_code_cell(CHEAT), *cells]
    path = _write(notebook, folder / "cheater" / MASTER)
    archive = folder / "cheater.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(path, MASTER)
        bundle.writestr(".OTTER_LOG", pickle.dumps(_Payload()))
    return archive


def _without_plugin(autograder_zip: Path, target: Path) -> Path:
    """The same autograder zip with the plugin taken out of otter_config.json: plain otter."""
    with zipfile.ZipFile(autograder_zip) as source, zipfile.ZipFile(target, "w") as plain:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "otter_config.json":
                config = json.loads(data)
                config["plugins"] = []
                data = json.dumps(config).encode()
            plain.writestr(item, data)
    return target


@dataclass
class Otter:
    """The outputs of ``otter assign`` and the ``otter run`` calls in flight."""

    student: Path
    autograder_zip: Path
    submissions: dict[str, Path]
    runs: dict[str, Future[dict]]
    control: Future[dict]
    folder: Path


@pytest.fixture(scope="module")
def assigned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Otter]:
    folder = tmp_path_factory.mktemp("otter")
    export(folder / "export")
    _run(
        ["otter", "assign", MASTER, "dist", "--no-run-tests", "--no-pdfs"],
        cwd=folder / "export",
        scratch=folder / "assign",
    )
    dist = folder / "export" / "dist"
    student_path = dist / "student" / MASTER
    (autograder_zip,) = (dist / "autograder").glob("*.zip")
    student = nbformat.read(student_path, as_version=4)
    submissions = {
        "correct": _write(_filled(student, reference_source()), folder / "correct" / MASTER),
        "wrong": _write(_filled(student, mutant_source(MUTANT)), folder / "wrong" / MASTER),
        "stub": student_path,
        "cheater": _cheater(student, folder),
    }

    def otter_run(name: str, submission: Path, ag_zip: Path) -> dict:
        out = folder / "results" / name
        out.mkdir(parents=True)
        command = ["otter", "run", "-a", str(ag_zip), "-o", str(out), "--no-logo", str(submission)]
        _run(command, cwd=folder, scratch=folder / "scratch" / name)
        return json.loads((out / "results.json").read_text())

    plain = _without_plugin(autograder_zip, folder / "plain-otter.zip")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(otter_run, name, path, autograder_zip) for name, path in submissions.items()}
        control = pool.submit(otter_run, "control", submissions["cheater"], plain)
        yield Otter(student_path, autograder_zip, submissions, runs, control, folder)


def _question_scores(results: dict) -> dict[str, float]:
    names = [t["name"] for t in results["tests"]]
    assert "Autograder Failed" not in names, json.dumps(results, indent=1)[:5000]
    return {t["name"]: t["score"] for t in results["tests"] if "score" in t}


def _task_scores(report: GradingReport) -> dict[str, float]:
    return {question_name(task): sum(t.score for t in report.tests if t.task_id == task.id) for task in GRADED_TASKS}


def test_master_notebook_holds_one_question_per_graded_task(assigned: Otter) -> None:
    master = nbformat.read(assigned.folder / "export" / MASTER, as_version=4)
    raw = [cell.source for cell in master.cells if cell.cell_type == "raw"]
    questions = [s.splitlines()[1:] for s in raw if s.startswith("# BEGIN QUESTION")]
    expected = [[f"name: {question_name(t)}", f"points: {t.points:g}"] for t in GRADED_TASKS]
    assert questions == expected
    assert "autograder.integrations.otter_plugin.SandboxVerdict" in raw[0]
    code = "\n".join(cell.source for cell in master.cells if cell.cell_type == "code")
    assert "### BEGIN SOLUTION" not in code and "### END SOLUTION" not in code
    assert all(
        f"def {helper}(" not in line for helper in HELPERS for line in code.splitlines() if not line[:1].isspace()
    )


def test_student_notebook_has_stubs_and_no_solution(assigned: Otter) -> None:
    student = nbformat.read(assigned.student, as_version=4)
    code = "\n".join(cell.source for cell in student.cells if cell.cell_type == "code")
    for helper in HELPERS:
        assert helper not in code
    assert "np.einsum" not in code and "BEGIN SOLUTION" not in code and "BEGIN PROMPT" not in code
    functions = {
        node.name: node
        for cell in student.cells
        if _is_python(cell)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.FunctionDef)
    }
    for task in GRADED_TASKS:
        body = functions[task.function].body
        assert len(body) == 2 and isinstance(body[1], ast.Raise), f"{task.function} is not a stub"
        assert f"Task {task.id}: {task.function}" in ast.unparse(body[1])
    tests = student.metadata["otter"]["tests"]
    assert sorted(tests) == sorted(question_name(t) for t in GRADED_TASKS)
    cases = [case for test in tests.values() for suite in test["suites"] for case in suite["cases"]]
    assert cases and not any(case["hidden"] for case in cases), "hidden tests must stay in the autograder"


def test_only_otters_own_cells_are_left_out_of_grading(assigned: Otter, tmp_path: Path) -> None:
    handed_in = load_submission(assigned.student).cells
    graded = prepare_submission(assigned.student).cells
    assert len(graded) == len(handed_in), "cells are blanked, not removed: feedback keeps the student's numbering"
    blanked = [code for code, kept in zip(handed_in, graded, strict=True) if kept != code]
    assert all(kept in ("", code) for code, kept in zip(handed_in, graded, strict=True))
    assert len(blanked) == len(GRADED_TASKS) + 2, "the init cell, one check per question, the export cell"
    assert all("grader" in code for code in blanked)
    sneaky = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('grader.check(__import__("os").getcwd())')])
    nbformat.write(sneaky, tmp_path / MASTER)
    assert prepare_submission(tmp_path / MASTER).cells == load_submission(tmp_path / MASTER).cells


def test_an_unreadable_submission_scores_zero_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "submission.py"
    empty.write_text("")
    results = GradingResults([])
    SandboxVerdict(str(empty), {}, {}).after_grading(results)
    assert results.total == 0 and results.possible == sum(task.points for task in GRADED_TASKS)
    assert sorted(results.results) == sorted(question_name(task) for task in GRADED_TASKS)
    assert "submission.py is empty" in results.summary() and "could not be graded" in (results.output or "")


def test_a_foreign_notebook_is_told_it_is_the_wrong_file(tmp_path: Path) -> None:
    from autograder.grading import WRONG_FILE

    cells = [nbformat.v4.new_code_cell("def fit(x, y):\n    return x")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / MASTER)
    results = GradingResults([])
    SandboxVerdict(str(tmp_path / MASTER), {}, {}).after_grading(results)
    assert results.total == 0 and results.possible == sum(task.points for task in GRADED_TASKS)
    assert WRONG_FILE in (results.output or "")


def test_a_notebook_of_another_assignment_is_refused_by_otter_with_both_names(assigned: Otter, tmp_path: Path) -> None:
    """otter checks the assignment name in the notebook's metadata before any plugin runs: the
    student reads otter's own message, never a silent 0 (a notebook with our metadata but none of
    our functions gets the sandbox's "wrong file" message instead, above)."""
    foreign = tmp_path / "homework3.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def fit(x, y):\n    return x")]), foreign)
    (tmp_path / "results").mkdir()
    command = ["otter", "run", "-a", str(assigned.autograder_zip), "-o", str(tmp_path / "results"), str(foreign)]
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode != 0
    assert "Received submission for assignment 'None' (this is assignment 'weight_sharing')" in done.stderr, done.stderr


def _run_checks(tests: Path, namespace: dict) -> dict[str, list[bool]]:
    results = {}
    for path in sorted(tests.glob("*.py")):
        test_file = OKTestFile.from_file(str(path))
        test_file.run(namespace)
        results[test_file.name] = [result.passed for result in test_file.test_case_results]
    return results


def test_light_checks_pass_on_the_reference_and_fail_on_the_stubs(assigned: Otter) -> None:
    tests = assigned.folder / "checks"
    with zipfile.ZipFile(assigned.autograder_zip) as archive:
        archive.extractall(tests, [name for name in archive.namelist() if name.startswith("tests/")])
    reference: dict = {}
    exec(compile(reference_source(), "reference", "exec"), reference)
    stubs: dict = {}
    exec(compile((RELEASE_DIR / "weight_sharing.py").read_text(), "stubs", "exec"), stubs)
    passed = _run_checks(tests / "tests", reference)
    assert passed == {question_name(t): [True, True] for t in GRADED_TASKS}
    assert _run_checks(tests / "tests", stubs) == {question_name(t): [False, False] for t in GRADED_TASKS}


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_otter_run_reports_the_sandbox_verdict(assigned: Otter, name: str) -> None:
    expected_report = grade_prepared(prepare_submission(assigned.submissions[name]), performance=False)
    expected = _task_scores(expected_report)
    got = _question_scores(assigned.runs[name].result())
    assert got == {question: round(score, 5) for question, score in expected.items()}
    full = {question_name(t): t.points for t in GRADED_TASKS}
    if name == "correct":
        assert got == full
    elif name == "wrong":
        broken = {question_name(t) for t in GRADED_TASKS if t.function in (MUTANT.function, *MUTANT.also_breaks)}
        assert {q for q in full if got[q] != full[q]} == broken
        assert all(0 < got[q] < full[q] for q in broken), "the missing bias earns partial credit"
    else:
        assert set(got.values()) == {0}
    results = assigned.runs[name].result()
    assert "weight_sharing grader" in results["output"]


def test_cheater_fools_plain_otter_but_not_the_plugin(assigned: Otter) -> None:
    plain = _question_scores(assigned.control.result())
    assert plain == {question_name(t): t.points for t in GRADED_TASKS}, "the attack must work on plain otter"
    control_tmp = assigned.folder / "scratch" / "control" / "tmp"
    assert (control_tmp / "kernel-marker").exists(), "plain otter runs the submission in its kernel"
    assert (control_tmp / "log-marker").exists(), "plain otter unpickles a submitted .OTTER_LOG"
    assert set(_question_scores(assigned.runs["cheater"].result()).values()) == {0}
    plugin_tmp = assigned.folder / "scratch" / "cheater" / "tmp"
    assert not (plugin_tmp / "kernel-marker").exists(), "the plugin keeps the submission out of otter's kernel"
    assert not (plugin_tmp / "log-marker").exists(), "the plugin deletes a submitted .OTTER_LOG unread"
