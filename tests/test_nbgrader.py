"""nbgrader round trip with the real tools: ``wsgrade export nbgrader``, ``generate_assignment``, ``autograde``.

The fast tests check the generated source notebook and the helper inlining. The slow ones build a
course in a temporary folder and autograde four submissions made from the released notebook:

* correct: every stub replaced by the reference's function (the reference's helpers in the first
  solution cell, as a student would write their own);
* wrong: the same with one mistake from the corpus (a flipped kernel in ``conv2d``);
* stub: the released notebook as it is;
* cheater: stubs that return None, an early cell that replaces the test cells' checking functions,
  ``np.allclose`` and ``numpy.testing``, and one test cell deleted. Plain nbgrader (our
  preprocessor switched off) gives it points; with the exported configuration it gets 0.

Each gradebook score is compared exactly with :func:`autograder.grading.grade_prepared` on the same
code, computed here while ``nbgrader autograde`` runs. Every subprocess has a time limit and its own
``HOME`` and ``TMPDIR``.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from nbformat import NotebookNode
from nbgrader.api import Gradebook

from autograder.grading import grade_prepared
from autograder.integrations.nbgrader import (
    ASSIGNMENT,
    CONFIG,
    FOREIGN_NOTEBOOK,
    export,
    grade_cell_id,
    graded_tasks,
    source_notebook,
)
from autograder.release import solution_notebook
from autograder.source import BEGIN, END, REPO_ROOT, SOLUTION_SOURCE, SourceError, inline_helpers, is_definition_code
from autograder.submission import PreparedSubmission, notebook_code_cells
from autograder.tasks import TASKS, contract_functions, task_by_id
from tests.corpus import all_mutants, mutant_source, reference_source

VENV_BIN = Path(sys.executable).parent
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
REFERENCE_HELPERS = ("_check_conv_args", "_pair", "_lc_windows")
WRONG = "conv2d-flipped-kernel"
STUDENTS = ("correct", "wrong", "stub", "cheater", "hostile", "foreign")
#: Code that would take effect if it ran in nbgrader's kernel (with the instructor's rights): it sets
#: its own score in the gradebook, prints the installed reference and the hidden tests into its
#: output (which generate_feedback would hand back), and appends to nbgrader_config.py.
HOSTILE = """\
import os, sqlite3
try:
    with sqlite3.connect({gradebook!r}) as connection:
        connection.execute("UPDATE grade SET manual_score = 100, auto_score = 100")
except Exception as problem:
    print("gradebook:", problem)
for path in ({solution!r}, {hidden!r}):
    try:
        print(open(path).read())
    except OSError as problem:
        print("cannot read", path, problem)
try:
    with open({config!r}, "a") as handle:
        handle.write("\\nc.SandboxVerdict.enabled = False\\n")
except OSError as problem:
    print("cannot write", problem)
"""
CHEAT = """\
import numpy as np
import numpy.testing


def always_fine(*args, **kwargs):
    return True


check_close = check_equal = check_raises = lambda *args, **kwargs: None
np.allclose = always_fine
np.testing.assert_allclose = np.testing.assert_array_equal = lambda *args, **kwargs: None
"""


def _nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_test_cell(cell: NotebookNode) -> bool:
    meta = _nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


# -- the generated notebook -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> NotebookNode:
    return source_notebook()


def test_inline_helpers_nests_what_each_region_calls() -> None:
    helpers = textwrap.dedent(f"""\
        {BEGIN}
        def _scale(v):
            return 2 * _offset(v)


        def _offset(v):
            return v + 1


        def _unused(v):
            return v
        {END}
        """)
    task = textwrap.dedent(f"""\
        import math


        def task(v):
            \"\"\"Doc.\"\"\"
            {BEGIN}
            return _scale(v) + math.floor(0.5)
            {END}


        def other(v):
            {BEGIN}
            return v
            {END}
        """)
    new_helpers, new_task = inline_helpers([helpers, task])
    assert new_helpers == ""
    assert "_unused" not in new_task and new_task.count("def _scale") == 1 and new_task.count("def _offset") == 1
    assert new_task.index(BEGIN) < new_task.index("def _scale") < new_task.index("def _offset") < new_task.index(END)
    other = new_task[new_task.index("def other") :]
    assert "_scale" not in other, "a region gets only the helpers it uses"
    namespace: dict = {}
    exec(new_task, namespace)
    assert namespace["task"](3) == 8


def test_inline_helpers_leaves_shell_and_magic_cells_alone() -> None:
    cells = ["!pip list\nimport numpy as np\n", "%%bash\necho hi\n", "for i in range(2):\n    %time i\n"]
    assert inline_helpers(cells) == [cell.rstrip("\n") for cell in cells]


def test_inline_helpers_rejects_a_helper_used_outside_a_solution_region() -> None:
    helpers = f"{BEGIN}\ndef _helper():\n    return 1\n{END}\n"
    with pytest.raises(SourceError, match="_helper outside a solution region"):
        inline_helpers([helpers, "value = _helper()\n"])
    with pytest.raises(SourceError, match="may only define functions"):
        inline_helpers([f"{BEGIN}\nLIMIT = 3\n{END}\n"])


def test_source_notebook_has_solution_cells_and_one_test_cell_per_graded_task(generated: NotebookNode) -> None:
    nb = generated
    tests = {_nbgrader_meta(cell)["grade_id"]: cell for cell in nb.cells if _is_test_cell(cell)}
    assert list(tests) == [grade_cell_id(task) for task in graded_tasks()]
    assert {task.id for task in graded_tasks()} == {task.id for task in TASKS} - {"5.2", "5.3"}, "no timed tasks"
    for task in graded_tasks():
        meta = _nbgrader_meta(tests[grade_cell_id(task)])
        assert meta == {
            "grade": True,
            "grade_id": grade_cell_id(task),
            "locked": True,
            "points": task.points,
            "schema_version": 3,
            "solution": False,
        }
        source = tests[grade_cell_id(task)].source
        assert (
            source.index(task.function) < source.index("### BEGIN HIDDEN TESTS") < source.index("### END HIDDEN TESTS")
        )
    solutions = [cell for cell in nb.cells if _nbgrader_meta(cell).get("solution")]
    assert solutions and all(BEGIN in cell.source for cell in solutions)
    for cell in solutions:
        meta = _nbgrader_meta(cell)
        assert (meta["grade"], meta["solution"], meta["locked"], meta["schema_version"]) == (False, True, False, 3)
        assert meta["grade_id"].startswith("solution_")
    for cell in nb.cells:
        if cell.cell_type == "code" and BEGIN in cell.source:
            assert _nbgrader_meta(cell).get("solution"), f"a solution region outside a solution cell:\n{cell.source}"
        assert "wsgrade check" not in cell.source, "the standalone self-check cells are left out"


def test_reference_helpers_live_only_inside_the_solution_regions_that_use_them(generated: NotebookNode) -> None:
    for cell in generated.cells:
        if cell.cell_type != "code":
            continue
        outside, inside = [], False
        for line in cell.source.splitlines():
            inside = (inside or line.strip() == BEGIN) and line.strip() != END
            if not inside:
                outside.append(line)
        for helper in REFERENCE_HELPERS:
            assert helper not in "\n".join(outside), f"{helper} is visible outside a solution region"
            if f"{helper}(" in cell.source:
                assert f"def {helper}(" in cell.source, f"{helper} is called but not defined in its cell"


def test_the_reference_passes_every_visible_and_hidden_check_of_the_source_notebook(generated: NotebookNode) -> None:
    namespace: dict = {}
    checks = {}
    for cell in generated.cells:
        if cell.cell_type == "code" and (_nbgrader_meta(cell) or is_definition_code(cell.source)):
            grade_id = _nbgrader_meta(cell).get("grade_id", "definitions")
            with contextlib.redirect_stdout(io.StringIO()) as printed:
                exec(compile(cell.source, grade_id, "exec"), namespace)
            checks[grade_id] = printed.getvalue().count("ok: ")
    assert all(checks[grade_cell_id(task)] >= 2 for task in graded_tasks()), checks


def test_export_writes_the_course_and_refuses_to_overwrite_other_content(tmp_path: Path) -> None:
    written = export(tmp_path)
    assert written == [tmp_path / "nbgrader_config.py", tmp_path / "source" / ASSIGNMENT / NOTEBOOK]
    assert written[0].read_text() == CONFIG
    assert export(tmp_path) == written, "exporting again with the same content is fine"
    written[0].write_text("c = get_config()\n")
    with pytest.raises(FileExistsError, match=r"nbgrader_config\.py"):
        export(tmp_path)
    export(tmp_path, overwrite=True)
    assert written[0].read_text() == CONFIG


# -- the round trip with the real nbgrader ---------------------------------------------------------


@dataclass(frozen=True)
class Course:
    """What the round trip produced.

    Attributes:
        root: the course folder.
        source: the source notebook as written by the export.
        release: the released notebook.
        scores: student -> grade cell id -> score in the gradebook.
        totals: student -> the gradebook's notebook score.
        expected: student -> grade cell id -> the task's score from grade_prepared on the same code.
        plain_cheater: the cheater's gradebook score from nbgrader without our preprocessor.
        autograded: student -> the autograded notebook.
        feedback: student -> the feedback HTML.
    """

    root: Path
    source: NotebookNode
    release: NotebookNode
    scores: dict[str, dict[str, float]]
    totals: dict[str, float]
    expected: dict[str, dict[str, float]]
    plain_cheater: float
    autograded: dict[str, NotebookNode]
    feedback: dict[str, str]


def _environment(root: Path) -> dict[str, str]:
    """nbgrader calls `alembic` and a bare `python`: the venv's bin/ goes first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("HOME", "TMPDIR"):
        env[name] = str(root / name.lower())
        Path(env[name]).mkdir()
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def _functions(source: str) -> list[str]:
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]


def _filled(release: NotebookNode, module: str) -> NotebookNode:
    """The release with every solution cell's functions taken from ``module``, its helpers first."""
    nb = copy.deepcopy(release)
    tree = ast.parse(module)
    definitions = {
        node.name: ast.get_source_segment(module, node) or "" for node in tree.body if isinstance(node, ast.FunctionDef)
    }
    present = {name for cell in nb.cells if cell.cell_type == "code" for name in _functions(cell.source)}
    extra = [definitions[name] for name in definitions if name not in present]
    for cell in (c for c in nb.cells if _nbgrader_meta(c).get("solution")):
        cell.source = "\n\n\n".join(extra + [definitions[name] for name in _functions(cell.source)])
        extra = []
    return nb


def _cheater(release: NotebookNode) -> NotebookNode:
    nb = copy.deepcopy(release)
    for cell in (c for c in nb.cells if _nbgrader_meta(c).get("solution")):
        cell.source = cell.source.replace("raise NotImplementedError()", "return None")
    at = next(i for i, cell in enumerate(nb.cells) if _nbgrader_meta(cell).get("grade_id") == "check_helpers")
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(CHEAT))
    nb.cells = [cell for cell in nb.cells if _nbgrader_meta(cell).get("grade_id") != "test_1_1"]
    return nb


def _hostile(release: NotebookNode, root: Path) -> NotebookNode:
    nb = _filled(release, mutant_source(next(m for m in all_mutants() if m.name == WRONG)))
    at = next(i for i, cell in enumerate(nb.cells) if _nbgrader_meta(cell).get("grade_id") == "check_helpers")
    code = HOSTILE.format(
        gradebook=str(root / "gradebook.db"),
        solution=str(SOLUTION_SOURCE),
        hidden=str(REPO_ROOT / "autograder" / "hidden_tests" / "test_part1_convolution.py"),
        config=str(root / "nbgrader_config.py"),
    )
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(code))
    return nb


def _sandbox_scores(nb: NotebookNode) -> dict[str, float]:
    """What grade_prepared gives the notebook's own code (every code cell but the test cells), per test cell."""
    kept = [{"cell_type": c.cell_type, "source": c.source} for c in nb.cells if not _is_test_cell(c)]
    cells, _ = notebook_code_cells(json.dumps({"cells": kept}))
    digest = hashlib.sha256("\0".join(cells).encode()).hexdigest()
    report = grade_prepared(
        PreparedSubmission("cells", cells, NOTEBOOK, "expected", digest), performance=False, gpu="off"
    )
    by_task: dict[str, float] = defaultdict(float)
    for test in report.tests:
        by_task[test.task_id] += test.score
    return {grade_cell_id(task): round(by_task[task.id], 4) for task in graded_tasks()}


def _gradebook(root: Path, students: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    scores, totals = {}, {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for student in students:
            notebook = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
            scores[student] = {grade.name: grade.score for grade in notebook.grades}
            totals[student] = notebook.score
    return scores, totals


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    base = tmp_path_factory.mktemp("nbgrader")
    env = _environment(base)
    root = base / "course"
    _run([str(VENV_BIN / "wsgrade"), "export", "nbgrader", str(root)], base, env, 120)
    _run(["nbgrader", "generate_assignment", ASSIGNMENT], root, env, 240)
    release = nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    mutant = next(m for m in all_mutants() if m.name == WRONG)
    submissions = {
        "correct": _filled(release, reference_source()),
        "wrong": _filled(release, mutant_source(mutant)),
        "stub": release,
        "cheater": _cheater(release),
        "hostile": _hostile(release, root),
        # the standalone release's notebook, completed: no nbgrader cell at all (nbgrader 0.9.6's own
        # OverwriteCells raised KeyError 'solution_conv2d' here and failed the whole autograde run)
        "foreign": solution_notebook(),
    }
    config_before = (root / "nbgrader_config.py").read_bytes()
    for student, nb in submissions.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / NOTEBOOK)
    autograde = subprocess.Popen(
        ["nbgrader", "autograde", ASSIGNMENT],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        expected = {student: _sandbox_scores(nb) for student, nb in submissions.items()}
        log, _ = autograde.communicate(timeout=600)
    finally:
        autograde.kill()
    assert autograde.returncode == 0, log[-6000:]
    assert (root / "nbgrader_config.py").read_bytes() == config_before, "student code edited nbgrader_config.py"
    scores, totals = _gradebook(root, STUDENTS)
    _run(["nbgrader", "generate_feedback", ASSIGNMENT], root, env, 240)
    feedback = {s: (root / "feedback" / s / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text() for s in STUDENTS}
    autograded = {s: nbformat.read(root / "autograded" / s / ASSIGNMENT / NOTEBOOK, as_version=4) for s in STUDENTS}
    plain = [
        "nbgrader",
        "autograde",
        ASSIGNMENT,
        "--student=cheater",
        "--force",
        "--SandboxVerdict.enabled=False",
        "--StudentCodeOut.enabled=False",
    ]
    _run(plain, root, env, 300)
    _, plain_totals = _gradebook(root, ("cheater",))
    return Course(
        root=root,
        source=nbformat.read(root / "source" / ASSIGNMENT / NOTEBOOK, as_version=4),
        release=release,
        scores=scores,
        totals=totals,
        expected=expected,
        plain_cheater=plain_totals["cheater"],
        autograded=autograded,
        feedback=feedback,
    )


@pytest.mark.slow
def test_the_release_holds_no_solution_and_no_hidden_test(course: Course) -> None:
    text = (course.root / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    for secret in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", *REFERENCE_HELPERS):
        assert secret not in text, secret
    source_tests = {_nbgrader_meta(c)["grade_id"]: c.source for c in course.source.cells if _is_test_cell(c)}
    released_tests = {_nbgrader_meta(c)["grade_id"]: c.source for c in course.release.cells if _is_test_cell(c)}
    assert list(released_tests) == [grade_cell_id(task) for task in graded_tasks()]
    for grade_id, source in source_tests.items():
        visible = source.split("### BEGIN HIDDEN TESTS")[0]
        assert released_tests[grade_id].strip() == visible.strip(), f"{grade_id}: only the visible checks are released"
    stubbed = set()
    for cell in (c for c in course.release.cells if _nbgrader_meta(c).get("solution")):
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.FunctionDef) and node.name in contract_functions():
                body = node.body[1:] if ast.get_docstring(node) else node.body
                assert [ast.unparse(statement) for statement in body] == ["raise NotImplementedError()"], node.name
                stubbed.add(node.name)
    assert stubbed == set(contract_functions())


@pytest.mark.slow
def test_autograde_scores_are_the_sandbox_verdicts_exactly(course: Course) -> None:
    for student in STUDENTS:
        assert course.scores[student] == course.expected[student], student
        assert course.totals[student] == pytest.approx(sum(course.expected[student].values()), abs=1e-9)
    full = sum(task.points for task in graded_tasks())
    assert full == 94
    assert course.totals["correct"] == full
    assert course.totals["stub"] == 0
    assert course.totals["cheater"] == 0
    wrong = course.scores["wrong"]
    broken = grade_cell_id(task_by_id("1.1"))
    assert wrong[broken] < task_by_id("1.1").points  # a flipped kernel: its value-gated checks fail too
    assert {cell: score for cell, score in wrong.items() if cell != broken} == {
        grade_cell_id(task): task.points for task in graded_tasks() if task.id != "1.1"
    }


@pytest.mark.slow
def test_a_foreign_notebook_is_graded_as_it_stands_and_told_so(course: Course) -> None:
    assert course.totals["foreign"] == sum(task.points for task in graded_tasks()), "its code is complete"
    cells = [c for c in course.autograded["foreign"].cells if _nbgrader_meta(c).get("grade_id", "").startswith("test_")]
    assert [_nbgrader_meta(c)["grade_id"] for c in cells] == [grade_cell_id(task) for task in graded_tasks()]
    assert FOREIGN_NOTEBOOK in cells[0].outputs[0].text
    assert FOREIGN_NOTEBOOK not in "".join(
        o.get("text", "") for c in course.autograded["correct"].cells for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_a_cheater_fools_plain_nbgrader_but_not_the_sandbox(course: Course) -> None:
    assert course.plain_cheater > 0, "the cheat should work against nbgrader's in-kernel verdict"
    assert course.totals["cheater"] == 0
    restored = [c for c in course.autograded["cheater"].cells if _nbgrader_meta(c).get("grade_id") == "test_1_1"]
    assert len(restored) == 1, "the deleted test cell is put back (OverwriteCells.add_missing_cells)"
    results = [o for o in restored[0].outputs if o.output_type == "execute_result"]
    assert [o.data["text/plain"] for o in results] == ["0.0"]


@pytest.mark.slow
def test_student_code_never_runs_with_the_instructors_rights(course: Course) -> None:
    """The hostile notebook's own score, no line of the reference or the hidden tests in its outputs
    or feedback, and nbgrader_config.py unchanged (checked right after autograde)."""
    assert course.totals["hostile"] == pytest.approx(course.totals["wrong"])
    assert course.totals["hostile"] < sum(task.points for task in graded_tasks())
    texts = [course.feedback["hostile"]] + [
        str(output.get("text", "")) for cell in course.autograded["hostile"].cells for output in cell.get("outputs", [])
    ]
    for text in texts:  # the reference file's own header and cell marks, the hidden tests' decorators
        assert "format_name: percent" not in text and "# %% [markdown]" not in text
        assert "@graded(" not in text and "graded = pytest.mark" not in text
    assert any("cannot read" in text for text in texts), "the attempt is visible: the files did not exist for it"


@pytest.mark.slow
def test_test_cells_show_the_verdict_and_feedback_hides_the_hidden_tests(course: Course) -> None:
    cells = {_nbgrader_meta(c).get("grade_id"): c for c in course.autograded["wrong"].cells}
    outputs = cells["test_1_1"].outputs
    assert [o.output_type for o in outputs] == ["stream", "execute_result"]
    assert "the kernel flipped" in outputs[0].text, "the grader's hint reaches the student"
    assert float(outputs[1].data["text/plain"]) == course.scores["wrong"]["test_1_1"]
    for student, html in course.feedback.items():
        assert "HIDDEN TESTS" not in html, student
        assert "subsample_then_repeat" not in html, student
        assert "run on your code in a sandbox" in html, student
    assert "the kernel flipped" in course.feedback["wrong"]
