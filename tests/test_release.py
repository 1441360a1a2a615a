"""The student release: generated from the single source, never drifting, never leaking a solution."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.reference import load_reference
from autograder.release import (
    RELEASE_DIR,
    SELF_CHECK_TAG,
    build_release,
    release_drift,
    solution_notebook,
    student_notebook,
)
from autograder.source import BEGIN, SourceError, module_text, split_cells, strip_solutions
from autograder.submission import notebook_code_cells
from autograder.tasks import TASKS, contract_functions, tasks_for_function

RELEASE_MODULE = RELEASE_DIR / "weight_sharing.py"
GIVEN_HELPERS = {"_array_module"}  # helpers the release hands to students on purpose


def _functions(source: str) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def test_committed_release_matches_a_fresh_build() -> None:
    assert release_drift() == [], "run `wsgrade release` and commit the result"


def test_release_drift_is_detected(tmp_path: Path) -> None:
    for name, content in build_release().items():
        (tmp_path / name).write_text(content)
    assert release_drift(tmp_path) == []
    (tmp_path / "weight_sharing.py").write_text((tmp_path / "weight_sharing.py").read_text() + "\n# edited by hand\n")
    (tmp_path / "notes.txt").write_text("stray")
    (tmp_path / "README.md").unlink()
    assert sorted(release_drift(tmp_path)) == [
        "README.md: missing",
        "notes.txt: not part of the release",
        "weight_sharing.py: differs from a fresh build",
    ]


def test_every_contract_function_is_a_stub_that_names_its_task() -> None:
    functions = _functions(RELEASE_MODULE.read_text())
    assert set(contract_functions()) | GIVEN_HELPERS == set(functions)
    for name in contract_functions():
        body = functions[name].body
        assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), f"{name} lost its docstring"
        assert len(body) == 2, f"{name}: the stub body must be the docstring and one raise"
        raise_node = body[1]
        assert isinstance(raise_node, ast.Raise) and isinstance(raise_node.exc, ast.Call)
        assert ast.unparse(raise_node.exc.func) == "NotImplementedError"
        message = raise_node.exc.args[0]
        assert isinstance(message, ast.Constant)
        assert f"Task {tasks_for_function(name)[0].id}: {name}" in message.value


def test_stubs_keep_the_reference_signatures_and_docstrings() -> None:
    stubs = _functions(RELEASE_MODULE.read_text())
    reference = _functions(module_text(Path(load_reference().__file__).read_text(), stubs=False))
    for name in contract_functions():
        assert ast.unparse(stubs[name].args) == ast.unparse(reference[name].args), name
        assert ast.unparse(stubs[name].returns) == ast.unparse(reference[name].returns), name  # type: ignore[arg-type]
        assert ast.get_docstring(stubs[name]) == ast.get_docstring(reference[name]), name


def test_no_solution_code_reaches_the_release() -> None:
    reference_helpers = (
        {name for name in _functions(module_text(Path(load_reference().__file__).read_text(), stubs=False))}
        - set(contract_functions())
        - GIVEN_HELPERS
    )
    assert reference_helpers, "the reference has private helpers; this test must see them"
    for name, content in build_release().items():
        assert BEGIN not in content, f"{name} contains a solution marker"
        if name != "test_public.py":
            for helper in reference_helpers:
                assert helper not in content, f"{name} mentions the reference's private helper {helper}"


def test_stub_raises_not_implemented_naming_the_task() -> None:
    namespace: dict[str, object] = {}
    exec(compile(RELEASE_MODULE.read_text(), str(RELEASE_MODULE), "exec"), namespace)
    with pytest.raises(NotImplementedError, match=r"Task 1\.1: conv2d"):
        namespace["conv2d"](None, None)  # type: ignore[operator]


def test_notebook_holds_the_same_functions_as_the_module() -> None:
    notebook = json.loads((RELEASE_DIR / "weight_sharing.ipynb").read_text())
    cells, _ = notebook_code_cells((RELEASE_DIR / "weight_sharing.ipynb").read_text())  # without ! and % lines
    code = "\n".join(cells)
    module_functions = {name: ast.unparse(node) for name, node in _functions(RELEASE_MODULE.read_text()).items()}
    notebook_functions = {name: ast.unparse(node) for name, node in _functions(code).items()}
    assert notebook_functions == module_functions
    assert all(cell.get("id") for cell in notebook["cells"]), "cell ids must be set (and deterministic)"
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")


def test_solution_notebook_keeps_the_solutions() -> None:
    code = "\n".join(cell.source for cell in solution_notebook().cells if cell.cell_type == "code")
    assert BEGIN in code
    assert "raise NotImplementedError" not in code
    assert len(student_notebook().cells) < len(solution_notebook().cells)  # the helpers cell is dropped


def _run_public_tests(tmp_path: Path, module_source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "weight_sharing.py").write_text(module_source)
    (tmp_path / "test_public.py").write_text((RELEASE_DIR / "test_public.py").read_text())
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_public.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_public_tests_pass_on_the_reference(tmp_path: Path) -> None:
    result = _run_public_tests(tmp_path, module_text(Path(load_reference().__file__).read_text(), stubs=False))
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_tests_all_fail_on_the_stubs(tmp_path: Path) -> None:
    result = _run_public_tests(tmp_path, RELEASE_MODULE.read_text())
    assert result.returncode == 1
    assert " passed" not in result.stdout.splitlines()[-1], result.stdout


def test_reference_defines_every_task_function() -> None:
    reference = load_reference()
    for task in TASKS:
        assert callable(getattr(reference, task.function, None)), task.label


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("def conv2d():\n    ### BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def conv2d():\n    ### END SOLUTION\n    pass\n", "without"),
        ("def conv2d():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n    pass\n", "nested"),
        ("def conv2d(:\n    pass\n", "not valid Python"),
        ("def helper():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n", "not a task"),
    ],
)
def test_source_rules_are_enforced_with_a_clear_message(code: str, problem: str) -> None:
    with pytest.raises(SourceError, match=problem):
        strip_solutions(code)


def test_stripping_replaces_function_regions_and_drops_module_regions() -> None:
    code = (
        "### BEGIN SOLUTION\ndef _helper():\n    return 2\n### END SOLUTION\n\n"
        'def dense_params(a, b):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return _helper()\n    ### END SOLUTION\n'
    )
    stripped = strip_solutions(code)
    assert "_helper" not in stripped
    assert "raise NotImplementedError('Task 2.2: dense_params" in stripped
    assert ast.parse(stripped)


def test_reference_module_keeps_source_line_numbers() -> None:
    source = Path(load_reference().__file__).read_text()
    module = module_text(source, stubs=False)
    assert len(module.splitlines()) == len(source.splitlines())
    line = next(n for n, text in enumerate(source.splitlines()) if text.startswith("def conv2d("))
    assert module.splitlines()[line] == source.splitlines()[line]
    _, cells = split_cells(source)
    assert any(cell.kind == "markdown" for cell in cells)


@pytest.mark.parametrize("platform", ["nbgrader", "otter"])
def test_platform_notebooks_hold_only_what_works_on_that_platform(platform: str) -> None:
    """No "Check Part N" text, no `!wsgrade check` or `!wsgrade experiment` cell: a hub may have no wsgrade."""
    pytest.importorskip(platform)
    if platform == "nbgrader":
        from autograder.integrations.nbgrader import source_notebook as build
    else:
        from autograder.integrations.otter import master_notebook as build
    nb = build()
    assert not [cell.source[:80] for cell in nb.cells if "wsgrade" in cell.source or "Check Part" in cell.source]
    release = student_notebook()
    assert sum(SELF_CHECK_TAG in cell.metadata.get("tags", []) for cell in release.cells) == 12, "6 texts, 6 cells"
