"""The worked examples' table: right on the reference, wrong on the stubs, the same in every rendering.

The examples run here directly, in this process, with no nbgrader, otter or pytest subprocess: each
example's setup, call and comparison against the reference's functions and against the release's
stubs. The three renderings (nbgrader's test cells, otter's test cells, the release's
``test_public.py``) are then compared call by call; test_release, test_otter and test_nbgrader run
them with the real tools.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from typing import Any

import numpy as np
import pytest

from autograder.examples import (
    ATOL,
    EXAMPLES,
    RTOL,
    Example,
    functions_called,
    nbgrader_checks,
    otter_checks,
    public_tests_module,
)
from autograder.reference import load_reference
from autograder.release import RELEASE_DIR
from autograder.tasks import UNTIMED_TASKS, contract_functions, task_by_id

ALL = [
    pytest.param(task_id, example, id=f"{task_id}-{visibility}-{example.what}")
    for task_id, examples in EXAMPLES.items()
    for visibility, group in (("public", examples.public), ("hidden", examples.hidden))
    for example in group
]


def _functions(module: Any) -> dict[str, Any]:
    return {name: getattr(module, name) for name in contract_functions()}


def _stubs() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile((RELEASE_DIR / "weight_sharing.py").read_text(), "stubs", "exec"), namespace)
    return {name: namespace[name] for name in contract_functions()}


REFERENCE = _functions(load_reference())
STUBS = _stubs()


def _run(example: Example, functions: dict[str, Any]) -> None:
    """Run one example the way every rendering means it; AssertionError when it does not hold."""
    namespace: dict[str, Any] = {"np": np, **functions}
    exec(compile(example.setup, f"setup of {example.what!r}", "exec"), namespace)
    if example.compare == "raises":
        assert example.error is not None
        with pytest.raises(example.error):
            eval(example.call, namespace)
        return
    got = eval(example.call, namespace)
    if example.compare == "close":
        expected = np.asarray(eval(example.expected, namespace), dtype=float)
        assert isinstance(got, np.ndarray), f"{example.what}: got a {type(got).__name__}"
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=example.what)
    elif example.compare == "equal":
        assert got == eval(example.expected, namespace), example.what
    else:
        assert bool(got) == (example.compare == "true"), example.what


def _calls(source: str) -> set[str]:
    """Every call of a contract function in ``source``, as ``ast.unparse`` writes it."""
    contract = set(contract_functions())
    return {
        ast.unparse(node)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in contract
    }


def _public_tests() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(public_tests_module())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_untimed_task_has_public_and_hidden_examples_in_task_order() -> None:
    assert list(EXAMPLES) == [task.id for task in UNTIMED_TASKS]
    for task_id, examples in EXAMPLES.items():
        assert examples.public and examples.hidden, task_id


@pytest.mark.parametrize(("task_id", "example"), ALL)
def test_the_example_calls_its_tasks_function(task_id: str, example: Example) -> None:
    code = "\n".join([example.setup, example.call, example.expected])
    assert task_by_id(task_id).function in functions_called(code)


@pytest.mark.parametrize(("task_id", "example"), ALL)
def test_the_example_holds_for_the_reference(task_id: str, example: Example) -> None:
    _run(example, REFERENCE)


@pytest.mark.parametrize(("task_id", "example"), ALL)
def test_the_example_fails_on_the_stubs(task_id: str, example: Example) -> None:
    with pytest.raises(NotImplementedError, match=re.escape(f"Task {task_id}:")):
        _run(example, STUBS)


@pytest.mark.parametrize("task_id", list(EXAMPLES))
def test_the_three_renderings_of_a_task_make_the_same_calls(task_id: str) -> None:
    examples = EXAMPLES[task_id]
    visible, nbgrader_hidden = nbgrader_checks(task_id)
    public, otter_hidden = otter_checks(task_id)
    prefix = "test_" + task_id.replace(".", "_") + "_"
    module = public_tests_module()
    pytest_tests = [
        ast.get_source_segment(module, node) or "" for name, node in _public_tests().items() if name.startswith(prefix)
    ]
    assert len(pytest_tests) == len(examples.public), "one pytest test per public example"
    wanted = set().union(*(_calls(f"{e.setup}\n{e.call}\n{e.expected}") for e in examples.public))
    assert _calls(visible) == _calls(public) == _calls("\n".join(pytest_tests)) == wanted
    wanted = set().union(*(_calls(f"{e.setup}\n{e.call}\n{e.expected}") for e in examples.hidden))
    assert _calls(nbgrader_hidden) == _calls(otter_hidden) == wanted
    for example in examples.public:
        assert all(example.what in text for text in (visible, public, "\n".join(pytest_tests))), example.what
    for example in examples.hidden:
        assert all(example.what in text for text in (nbgrader_hidden, otter_hidden)), example.what
        assert json.dumps(example.what) not in module, "hidden examples stay out of the release"


def test_each_public_test_imports_only_the_functions_it_uses() -> None:
    tests = _public_tests()
    assert len(tests) == sum(len(examples.public) for examples in EXAMPLES.values()), "test names are unique"
    for name, node in tests.items():
        imports = [statement for statement in node.body if isinstance(statement, ast.ImportFrom)]
        assert len(imports) == 1 and imports[0].module == "weight_sharing", name
        rest = "\n".join(ast.unparse(statement) for statement in node.body[1:])
        assert [alias.name for alias in imports[0].names] == functions_called(rest), name
    docstring = ast.get_docstring(ast.parse(public_tests_module())) or ""
    assert "pytest test_public.py" in docstring and "a good sign, not a guarantee" in docstring


@pytest.mark.parametrize("task_id", list(EXAMPLES))
def test_otter_cells_pass_silently_on_the_reference_and_fail_on_the_stubs(task_id: str) -> None:
    """Each cell on its own (otter runs them in one kernel, after the student's code); silent, as a doctest."""
    for cell in otter_checks(task_id):
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            exec(compile(cell, f"otter {task_id}", "exec"), {"np": np, **REFERENCE})
        assert printed.getvalue() == "", "a doctest that prints fails"
        with pytest.raises(NotImplementedError):
            exec(compile(cell, f"otter {task_id}", "exec"), {"np": np, **STUBS})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"what": "x", "call": "conv2d(a)", "expected": "1", "compare": "near"}, "compare='near' is not one of"),
        ({"what": "x", "call": "conv2d(a)"}, "compare='close' needs an expected value"),
        ({"what": "x", "call": "conv2d(a)", "expected": "1", "compare": "true"}, "takes no expected value"),
        ({"what": "x", "call": "conv2d(a)", "compare": "raises"}, "compare='raises' needs an error type"),
        ({"what": "x", "call": "conv2d(a)", "expected": "1", "error": ValueError}, "takes no error type"),
        ({"what": "x", "call": "conv2d(a", "expected": "1"}, "call='conv2d\\(a' is not an expression"),
        ({"what": "x", "call": "conv2d(a)", "expected": "1", "setup": "a ="}, "setup='a =' is not statements"),
        ({"what": "two\nlines", "call": "conv2d(a)", "expected": "1"}, "give one line"),
    ],
)
def test_a_malformed_example_is_refused_naming_the_field(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Example(**arguments)


def test_an_unknown_task_is_refused_naming_the_tasks_with_examples() -> None:
    with pytest.raises(KeyError, match=r"no examples for task '5\.2'.*1\.1, 1\.2"):
        nbgrader_checks("5.2")
