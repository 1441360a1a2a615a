"""The student kit: exported by the real CLI, installed with pip into a fresh venv (numpy only), run as students do.

It must hold no line of the reference's solutions or of the hidden tests, pass the reference,
call every stub not implemented, and give a corpus mutant the feedback `wsgrade check` gives.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.cli import EXIT_BAD_INPUT
from autograder.grading import HIDDEN_TESTS, grade
from autograder.release import RELEASE_DIR, build_release
from autograder.source import BEGIN, END, SOLUTION_SOURCE
from autograder.student_kit import KIT_PACKAGE, grader_helpers_source, loading_source, wheel_name
from autograder.tasks import TASKS
from tests.corpus import all_mutants, mutant_source, reference_source

pytestmark = pytest.mark.slow  # a real export and a pip install: about 30 s
#: The grader's modules whose helpers the kit carries (copied or generated): public, not secret.
CARRIED_MODULES = (
    "checks.py",
    "feedback.py",
    "submission.py",
    "sandbox/wire.py",
    "sandbox/worker.py",
    "sandbox/layers.py",
)
MIN_SECRET_LENGTH = 30  # shorter lines ("return out", "H, W = x.shape") say nothing about a solution


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("kit") / "student"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "autograder", "export", "student", str(dest)], check=True, capture_output=True
    )
    print(f"export: {time.perf_counter() - started:.1f} s")
    return dest


@pytest.fixture(scope="module")
def kit_bin(kit: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv of this Python (no system site-packages) with the kit installed: numpy is its only dependency."""
    venv = tmp_path_factory.mktemp("venv") / "kit"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(kit / wheel_name())], check=True
    )
    print(f"venv + pip install: {time.perf_counter() - started:.1f} s")
    installed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True).stdout
    assert "autograder" not in installed and "weight-sharing" not in installed
    return venv / "bin"


def _kit_texts(kit: Path) -> dict[str, str]:
    """Every file of the kit as text, the wheel's members included."""
    texts = {}
    for path in kit.iterdir():
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                for name in wheel.namelist():
                    texts[name] = wheel.read(name).decode()
        else:
            texts[path.name] = path.read_text()
    return texts


def _nontrivial(lines: list[str]) -> set[str]:
    return {line.strip() for line in lines if len(line.strip()) > MIN_SECRET_LENGTH}


def _only_text(line: str) -> bool:
    """A line that is only a string literal (a message's words), possibly with a comma or closing bracket."""
    try:
        node = ast.parse(line.strip().rstrip(",)").lstrip("("), mode="eval").body
    except SyntaxError:
        return line.strip().startswith(('"', 'f"', "'"))
    return isinstance(node, ast.Constant | ast.JoinedStr) and isinstance(getattr(node, "value", ""), str)


def _secret_lines() -> set[str]:
    """The reference's solution lines and the hidden tests' lines, less what is public anyway (the release,
    and the grader's own modules whose helpers the kit carries)."""
    secret: set[str] = set()
    inside = False
    for line in SOLUTION_SOURCE.read_text().splitlines():
        inside = (inside or line.strip() == BEGIN) and line.strip() != END
        if inside:
            secret |= _nontrivial([line])
    for path in HIDDEN_TESTS.glob("*.py"):
        secret |= _nontrivial(path.read_text().splitlines())
    release = build_release()
    notebook = json.loads(release.pop("weight_sharing.ipynb"))
    public = [*release.values(), *("".join(cell["source"]) for cell in notebook["cells"])]
    public += [(HIDDEN_TESTS.parent / module).read_text() for module in CARRIED_MODULES]
    text = "\n".join(public)
    return {line for line in secret if line not in text}


def test_kit_holds_no_line_of_the_reference_or_the_hidden_tests(kit: Path) -> None:
    texts = _kit_texts(kit)
    assert f"{KIT_PACKAGE}/public_cases.json" in texts
    code = "\n".join(text for name, text in texts.items() if name.endswith(".py"))
    everything = "\n".join(texts.values())
    secrets = _secret_lines()
    assert len(secrets) > 1000  # the scan looks at something
    # Code may appear nowhere; the words of a public test's hint may appear in the recorded cases (the
    # grader shows them to students), never in the kit's code.
    leaked = sorted(line for line in secrets if line in (code if _only_text(line) else everything))
    assert not leaked, "the kit holds lines of the reference or the hidden tests:\n" + "\n".join(leaked[:20])


def test_kit_holds_no_function_body_of_the_reference(kit: Path) -> None:
    """Reformatting cannot hide a solution: each statement of a reference function, unparsed, is absent too."""
    kit_code = [ast.unparse(ast.parse(text)) for name, text in _kit_texts(kit).items() if name.endswith(".py")]
    release = ast.unparse(ast.parse(build_release()["weight_sharing.py"]))
    statements = set()
    for node in ast.parse(reference_source()).body:
        if isinstance(node, ast.FunctionDef):
            for statement in ast.walk(node):
                if isinstance(statement, ast.stmt) and statement is not node:
                    text = ast.unparse(statement)
                    if len(text) > MIN_SECRET_LENGTH and text not in release:
                        statements.add(text)
    assert len(statements) > 100
    found = sorted(s for s in statements if any(s in code for code in kit_code))
    assert not found, "the kit holds statements of the reference:\n" + "\n".join(found[:10])


def test_generated_helpers_are_the_graders_own(kit: Path) -> None:
    """The kit's copies of the grader's helpers are generated at export: they cannot drift from the grader's."""
    texts = _kit_texts(kit)
    assert texts[f"{KIT_PACKAGE}/_grader.py"] == grader_helpers_source()
    assert texts[f"{KIT_PACKAGE}/_loading.py"] == loading_source()
    for name in ("worker.py", "wire.py", "layers.py"):
        assert texts[f"{KIT_PACKAGE}/{name}"] == (HIDDEN_TESTS.parent / "sandbox" / name).read_text()


def _wscheck(kit_bin: Path, path: Path, *extra: str) -> dict:
    out = path.parent / "report.json"
    started = time.perf_counter()
    done = subprocess.run(
        [kit_bin / "wscheck", str(path), "--json", str(out), *extra], capture_output=True, text=True, timeout=120
    )
    print(f"wscheck {path.name}: {time.perf_counter() - started:.1f} s")
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    report["stdout"] = done.stdout
    return report


def test_the_reference_passes_every_public_test(kit_bin: Path, tmp_path: Path) -> None:
    path = tmp_path / "weight_sharing.py"
    path.write_text(reference_source())
    report = _wscheck(kit_bin, path)
    assert report["total"] >= 15
    assert report["passed"] == report["total"], report["stdout"]
    assert f"{report['total']} of {report['total']} public tests pass" in report["stdout"]


def test_the_release_notebook_is_not_implemented_task_by_task(kit_bin: Path, kit: Path) -> None:
    report = _wscheck(kit_bin, kit / "weight_sharing.ipynb")
    assert report["passed"] == 0
    assert {test["mistake"] for test in report["tests"]} == {"not-implemented"}
    public_tasks = {test["task"] for test in report["tests"]}
    for task in TASKS:
        if task.id in public_tasks:
            assert f"{task.function} is not implemented yet (Task {task.id})" in report["stdout"]
    # `wsgrade check` as the notebook's own cells call it, with -k
    done = subprocess.run(
        [kit_bin / "wsgrade", "check", str(kit / "weight_sharing.ipynb"), "-k", "test_part1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "0 of 3 public tests pass" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["conv2d-flipped-kernel", "layer-missing-bias"])
def test_a_mutant_gets_the_feedback_wsgrade_check_gives(name: str, kit_bin: Path, tmp_path: Path) -> None:
    mutants = {mutant.name: mutant for mutant in all_mutants()}
    if name not in mutants:
        pytest.skip(f"the corpus has no mutant {name}")
    path = tmp_path / "weight_sharing.py"
    path.write_text(mutant_source(mutants[name]))
    kit_report = _wscheck(kit_bin, path)
    grader = {test.name: test for test in grade(path, public_only=True).tests}
    kit_tests = {test["name"]: test for test in kit_report["tests"]}
    assert set(kit_tests) == set(grader)
    assert {n for n, t in kit_tests.items() if t["status"] == "failed"} == {
        n for n, t in grader.items() if t.status == "failed"
    }
    assert any(t["status"] == "failed" for t in kit_tests.values())
    for test_name, test in kit_tests.items():
        if test["status"] == "failed":
            assert test["output"] == grader[test_name].output  # the same call, expected, got and hint
            assert test["mistake"] == grader[test_name].mistake
    if mutants[name].mistake:
        assert mutants[name].mistake in {t["mistake"] for t in kit_tests.values()}


def test_a_foreign_notebook_is_told_it_is_the_wrong_file_as_the_grader_tells_it(kit_bin: Path, tmp_path: Path) -> None:
    from autograder.grading import WRONG_FILE

    path = tmp_path / "weight_sharing.ipynb"
    cells = [nbformat.v4.new_code_cell("def fit(x, y):\n    return x")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    report = _wscheck(kit_bin, path)
    assert report["passed"] == 0 and WRONG_FILE in report["stdout"].replace("\n", " ").replace("  ", " ")


def test_the_kit_says_where_the_other_commands_are(kit_bin: Path) -> None:
    done = subprocess.run([kit_bin / "wsgrade", "grade", "x.py"], capture_output=True, text=True)
    assert done.returncode == 2 and "instructor package" in done.stderr


def test_export_refuses_a_folder_in_use(kit: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "export", "student", str(kit)], capture_output=True, text=True
    )
    assert done.returncode == EXIT_BAD_INPUT and "--force" in done.stderr


def test_the_student_readme_says_how_to_install_the_kit() -> None:
    readme = (RELEASE_DIR / "README.md").read_text()
    assert "pip install wsgrade_student" in readme
    assert "instructor package" in readme
