"""Replaying the grader's public tests: each recorded call, judged by the grader's own verdict code.

``public_cases.json`` (recorded by ``wsgrade export student``) holds, for each public test, the
calls it makes. Each call has its request (the grader's wire encoding), the text that describes
it, the reference's answer and the checks the grader makes on it: ``array`` / ``exact`` /
``float`` (a part of the answer against an expected value, with the hints' wrong answers
replayed on this input), ``reference`` (the whole answer against the reference's), ``no-mutation``,
``accepts`` (a valid call that gates a rejection test) and ``raises``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._grader import (
    ACCEPTS_FIRST,
    UNCHANGED_FIRST,
    CheckFailed,
    Hint,
    _check_value,
    check_array,
    check_exact,
    check_float,
    describe_value,
)
from ._loading import SubmissionError, notebook_code_cells
from ._sandbox import wire
from .client import DoesNotLoad, Reply, Worker

__all__ = ["CASES", "KitReport", "KitResult", "check", "load_cases", "prepare"]

CASES = Path(__file__).resolve().parent / "public_cases.json"
_OUTPUT_LIMIT = 6000  # as the grader cuts a test's feedback
_CRASHES_BEFORE_GIVING_UP = 3
_ABSENT = ("not-implemented", "missing-function")


def load_cases(path: Path = CASES) -> dict[str, Any]:
    """The recorded public tests."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _unpack(packed: dict[str, Any]) -> Any:
    frames = [base64.b64decode(frame) for frame in packed["frames"]]
    return wire.decode(packed["data"], frames)


# ---------------------------------------------------------------------------------------------
# The submission
# ---------------------------------------------------------------------------------------------


def prepare(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Read a submission as the grader does: a ``.py`` module, or a notebook's code cells.

    Args:
        path: ``weight_sharing.py``, ``weight_sharing.ipynb`` or a folder holding one.

    Returns:
        The worker's submission record and notes for the student.

    Raises:
        SubmissionError: when the path is not a submission.
    """
    notes: list[str] = []
    if path.is_dir():
        found = [path / name for name in ("weight_sharing.ipynb", "weight_sharing.py") if (path / name).is_file()]
        if not found:
            raise SubmissionError(f"no weight_sharing.py or weight_sharing.ipynb in {path}")
        if len(found) == 2:
            found.sort(key=lambda p: p.read_text(errors="replace").count("raise NotImplementedError"))
            notes.append(f"both files are there; checked {found[0].name}, which has fewer stubs left")
        path = found[0]
    if not path.is_file() or path.suffix not in (".py", ".ipynb"):
        raise SubmissionError(f"{path} is not a weight_sharing.py or weight_sharing.ipynb file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return {"kind": "module", "cells": [text], "filename": "weight_sharing.py", "skip": [], "labels": []}, notes
    examples: list[int] = []
    positions: list[int] = []
    cells, removed = notebook_code_cells(text, name=path.name, examples=examples, positions=positions)
    if removed:
        notes.append(f"{removed} shell/magic line(s) (starting with ! or %) were not run")
    submission = {
        "kind": "cells",
        "cells": list(cells),
        "filename": "weight_sharing.ipynb",
        "skip": examples,
        "labels": [f"cell {number}" for number in positions],
    }
    return submission, notes


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


class _Outcome:
    """A call that returned, as the grader's verdict functions see it (``value``, ``float32``, ``fail``)."""

    def __init__(self, call: dict[str, Any], reply: Reply) -> None:
        self.call = call
        self.function: str = call["function"]
        self.value = reply.value
        self.output = reply.output
        self.mutated = reply.mutated

    @property
    def float32(self) -> bool:
        value = self.value if isinstance(self.value, tuple) else (self.value,)
        arrays = [v for v in value if isinstance(v, np.ndarray)]
        return bool(self.call["inputs_float32"]) or any(a.dtype == np.float32 for a in arrays)

    def fail(self, problem: str, *, hint: Hint | None = None) -> CheckFailed:
        text = f"{self.call['describe']}\n{problem}"
        if self.output.strip():
            text += f"\nYour function printed:\n{self.output.rstrip()}"
        return CheckFailed(text, hint=hint.text if hint else None, mistake=hint.mistake if hint else None)


def _replayed(wrong: Any) -> Callable[[], Any]:
    """A hint's wrong answer, replayed at export time on this very input."""
    return lambda: wrong


def _hints(spec: dict[str, Any]) -> list[Hint]:
    hints = []
    for hint in spec.get("hints", ()):
        hints.append(Hint(hint["mistake"], hint["text"], _replayed(_unpack(hint["wrong"]))))
    return hints


def _part(outcome: _Outcome, part: list[int]) -> Any:
    value = outcome.value
    for index in part:
        if type(value) not in (tuple, list) or len(value) <= index:
            expected = _unpack(outcome.call["reference"]["returned"])
            raise outcome.fail(
                f"the result should be a {type(expected).__name__} of {len(expected)} values; "
                f"got {describe_value(outcome.value)}"
            )
        value = value[index]
    return value


def _matches_reference(outcome: _Outcome) -> None:
    expected = _unpack(outcome.call["reference"]["returned"])
    _check_value(outcome, expected, outcome.value, "the result")  # type: ignore[arg-type]


def _gated(prefix: str, failed: CheckFailed) -> CheckFailed:
    if failed.mistake == "not-implemented":
        return failed
    return CheckFailed(f"{prefix}\n{failed.message}", hint=failed.hint, mistake=failed.mistake, gated=True)


def _judge(outcome: _Outcome, spec: dict[str, Any]) -> None:
    """Apply one recorded check to a call that returned; raise CheckFailed as the grader does."""
    kind = spec["kind"]
    function = outcome.function
    if kind == "array":
        got = _part(outcome, spec["part"])
        scale = None if spec["scale"] is None else _unpack(spec["scale"])
        expected = _unpack(spec["expected"])
        check_array(outcome, expected, value=got, what=spec["what"], scale=scale, hints=_hints(spec))  # type: ignore[arg-type]
    elif kind == "exact":
        got = _part(outcome, spec["part"])
        check_exact(outcome, _unpack(spec["expected"]), value=got, what=spec["what"], hints=_hints(spec))  # type: ignore[arg-type]
    elif kind == "float":
        check_float(outcome, _unpack(spec["expected"]), tolerance=spec["tolerance"], what=spec["what"])  # type: ignore[arg-type]
    elif kind == "reference":
        _matches_reference(outcome)
    elif kind == "no-mutation":
        if outcome.mutated:
            names = ", ".join(f"`{name}`" for name in outcome.mutated)
            raise CheckFailed(
                f"{function} modified its {names} argument in place. The caller's arrays must not change: "
                "work on a copy (e.g. np.pad or x.copy()) or build a new output array.",
                mistake="mutates-input",
            )
        try:
            _matches_reference(outcome)
        except CheckFailed as failed:
            raise _gated(UNCHANGED_FIRST.format(function=function), failed) from None
    elif kind == "accepts":
        try:
            _matches_reference(outcome)
        except CheckFailed as failed:
            raise _gated(ACCEPTS_FIRST.format(function=function), failed) from None
    elif kind == "raises":
        raise CheckFailed(
            f"{outcome.call['describe']}\nexpected {spec['error']} because {spec['because']}; it returned "
            f"{describe_value(outcome.value)}",
            hint=f"check the input and raise {spec['error']} with a message that names the problem",
            mistake="missing-validation",
        )
    else:
        raise ValueError(f"public_cases.json: unknown check {kind!r} (a newer kit is needed)")


def _raised(call: dict[str, Any], reply: Reply) -> CheckFailed:
    """The grader's failure for a call that raised."""
    error = reply.error
    text = f"{call['describe']}\nit raised {error.get('type', 'Exception')}: {error.get('message', '')}"
    if error.get("traceback"):
        text += f"\n{str(error['traceback']).rstrip()}"
    if reply.output.strip():
        text += f"\nYour function printed:\n{reply.output.rstrip()}"
    if "NotImplementedError" in error.get("mro", ()):
        return CheckFailed(f"{call['function']} is not implemented yet ({call['label']}).", mistake="not-implemented")
    return CheckFailed(text, mistake="raised")


class _Session:
    """The calls of one check run: the worker, and which functions hung or crashed in the current test."""

    def __init__(self, worker: Worker, missing: dict[str, str]) -> None:
        self.worker = worker
        self.missing = missing
        self.stuck: dict[str, str] = {}
        self.crashes: dict[str, int] = {}

    def run_call(self, call: dict[str, Any]) -> None:
        function = call["function"]
        if function in self.stuck:
            raise CheckFailed(self.stuck[function])
        frames = [base64.b64decode(frame) for frame in call["frames"]]
        try:
            reply = self.worker.call(function, call["request"], frames, call["argnames"])
        except DoesNotLoad as problem:
            raise CheckFailed(f"Your code could not be loaded: {problem}") from None
        checks = call["checks"]
        raises = next((spec for spec in checks if spec["kind"] == "raises"), None)
        accepts = any(spec["kind"] == "accepts" for spec in checks)
        try:
            self._verdict(call, reply, raises)
        except CheckFailed as failed:
            if accepts:
                raise _gated(ACCEPTS_FIRST.format(function=function), failed) from None
            raise

    def _verdict(self, call: dict[str, Any], reply: Reply, raises: dict[str, Any] | None) -> None:
        function = call["function"]
        if reply.kind in ("timeout", "crashed"):
            text = f"{call['describe']}\n{reply.problem}"
            crashes = self.crashes[function] = self.crashes.get(function, 0) + 1
            if reply.kind == "timeout" or crashes >= _CRASHES_BEFORE_GIVING_UP:
                self.stuck[function] = text
            raise CheckFailed(text, mistake="timeout" if reply.kind == "timeout" else "crash")
        if reply.kind == "missing":
            raise CheckFailed(
                self.missing.get(function)
                or f"Your code defines no function named {function}. Keep the names of the starter file: the "
                "grader calls each function by its name.",
                mistake="missing-function",
            )
        if reply.kind == "raised":
            mro = reply.error.get("mro", ())
            if raises is not None and raises["error"] in mro:
                return
            if raises is not None and "NotImplementedError" not in mro:
                raise CheckFailed(
                    f"{call['describe']}\nexpected {raises['error']} because {raises['because']}; it raised "
                    f"{reply.error.get('type')}: {reply.error.get('message')}",
                    mistake="wrong-exception",
                )
            raise _raised(call, reply)
        outcome = _Outcome(call, reply)
        for spec in call["checks"]:
            if spec["kind"] != "accepts":
                _judge(outcome, spec)
            else:
                _matches_reference(outcome)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KitResult:
    """One public test's verdict.

    Attributes:
        name: ``"1.1 conv2d: <what the test checks>"``, as the grader names it.
        task: the task id.
        status: ``passed`` or ``failed``.
        output: the feedback (empty when passed).
        mistake: the recognised mistake's id, if any.
        gated: failed only because the function's answers were wrong.
    """

    name: str
    task: str
    status: str
    output: str = ""
    mistake: str | None = None
    gated: bool = False


@dataclass(frozen=True)
class KitReport:
    """The self-check's result.

    Attributes:
        tests: every public test's verdict, in the grader's order.
        notes: what the student should know about how the code was loaded.
        origin: the path checked.
        seconds: how long it took.
        tasks: task id -> (function, part).
        parts: part number -> name.
    """

    tests: tuple[KitResult, ...]
    notes: tuple[str, ...]
    origin: str
    seconds: float
    tasks: dict[str, tuple[str, int]] = field(default_factory=dict)
    parts: dict[int, str] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        """How many public tests pass."""
        return sum(test.status == "passed" for test in self.tests)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "origin": self.origin,
            "passed": self.passed,
            "total": len(self.tests),
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
            "tests": [test.__dict__ for test in self.tests],
        }

    def feedback(self) -> list[tuple[str, str]]:
        """``(title, text)`` to read: real failures first, then one entry per task not written yet
        (as the grader's report groups them)."""
        failures = [t for t in self.tests if t.status != "passed" and t.output]
        wrong = {t.task for t in failures if not t.gated and t.mistake not in _ABSENT}
        entries = [
            (t.name, t.output) for t in failures if t.mistake not in _ABSENT and not (t.gated and t.task in wrong)
        ]
        groups: dict[tuple[str, str], list[KitResult]] = defaultdict(list)
        for test in failures:
            if test.mistake in _ABSENT:
                groups[(str(test.mistake), test.task)].append(test)
            elif test.gated and test.task in wrong:
                groups[("gated", test.task)].append(test)
        order = {"missing-function": 0, "gated": 1, "not-implemented": 2}
        for (kind, task), tests in sorted(groups.items(), key=lambda item: order[item[0][0]]):
            function = self.tasks.get(task, (task, 0))[0]
            if kind == "missing-function":
                entries.append(
                    (f"{function} is missing (Task {task})", f"{tests[0].output}\n{len(tests)} test(s) wait for it.")
                )
            elif kind == "gated":
                checks = "; ".join(t.name.partition(": ")[2] for t in tests)
                entries.append(
                    (
                        f"{function}: {len(tests)} more test(s) wait for right answers (Task {task})",
                        f"These tests ({checks}) count only when {function}'s answers are right, and some above "
                        "are not. Fix those first; these tests are then judged too.",
                    )
                )
            else:
                entries.append(
                    (
                        f"{function} is not implemented yet (Task {task})",
                        f"{len(tests)} test(s) are waiting for {function}.",
                    )
                )
        return entries

    def text(self, *, show_feedback: bool = True) -> str:
        """The report for a terminal: a table per part, the feedback, the count of passing tests."""
        lines = [f"Self-check (public tests only) for {self.origin}"]
        lines += list(self.notes)
        by_part: dict[int, list[KitResult]] = defaultdict(list)
        for test in self.tests:
            by_part[self.tasks.get(test.task, ("", 0))[1]].append(test)
        for part, tests in sorted(by_part.items()):
            passing = sum(t.status == "passed" for t in tests)
            lines += ["", f"Part {part}: {self.parts.get(part, '')} ({passing} of {len(tests)} public tests pass)"]
            width = max(len(t.name) for t in tests)
            lines += [f"  {t.name.ljust(width)}  {t.status}" for t in tests]
        feedback = self.feedback()
        if show_feedback and feedback:
            lines += ["", "-" * 30 + " Feedback " + "-" * 30]
            for title, text in feedback:
                lines += [title, text, ""]
        lines += ["", f"{self.passed} of {len(self.tests)} public tests pass   ({self.seconds:.1f} s)"]
        return "\n".join(lines)


def _selected(nodeid: str, select: str | None) -> bool:
    """pytest's ``-k`` for the test's id: words match as case-insensitive substrings; ``and``, ``or``, ``not``, ()."""
    if not select:
        return True
    tokens = re.findall(r"\(|\)|[^\s()]+", select)
    words = []
    for token in tokens:
        if token in ("and", "or", "not", "(", ")"):
            words.append(token)
        else:
            words.append(str(token.lower() in nodeid.lower()))
    try:
        return bool(eval(" ".join(words), {"__builtins__": {}}, {}))  # only True/False and the operators above
    except SyntaxError:
        raise ValueError(f"-k {select!r} is not a valid expression") from None


def check(
    path: Path, *, select: str | None = None, call_timeout: float = 5.0, cases: dict[str, Any] | None = None
) -> KitReport:
    """Run the public tests on a submission.

    Args:
        path: the submission.
        select: only the tests whose id matches this ``-k`` expression (e.g. ``test_part1``).
        call_timeout: seconds one call may take.
        cases: the recorded public tests (default: the kit's ``public_cases.json``).

    Returns:
        The report.

    Raises:
        SubmissionError: when ``path`` is not a submission.
        ValueError: for a bad ``select``.
    """
    started = time.perf_counter()
    cases = load_cases() if cases is None else cases
    submission, notes = prepare(Path(path))
    tests = [test for test in cases["tests"] if _selected(test["nodeid"], select)]
    results: list[KitResult] = []
    with Worker(submission, cases["functions"], call_timeout=call_timeout) as worker:
        missing: dict[str, str] = {}
        try:
            defined, cell_errors, printed = worker.load()
            absent = [name for name in cases["functions"] if name not in defined]
            if absent and len(absent) == len(cases["functions"]):
                notes.append(cases["messages"]["wrong_file"])
            elif absent:
                notes.append("not defined in your code: " + ", ".join(absent))
            for error in cell_errors[:10]:
                label = submission["labels"][error["cell"] - 1] if submission["labels"] else "a cell"
                notes.append(f"notebook {label} raised a {error.get('type')}: {str(error.get('message'))[:200]}")
            if printed.strip():
                notes.append("your code printed while loading:\n" + printed.rstrip())
        except DoesNotLoad as problem:
            notes.append(f"Your code could not be loaded, so no test could pass: {problem}")
        session = _Session(worker, missing)
        for test in tests:
            session.stuck.clear()
            session.crashes.clear()
            try:
                for call in test["calls"]:
                    session.run_call(call)
            except CheckFailed as failed:
                output = failed.feedback
                if len(output) > _OUTPUT_LIMIT:
                    output = output[:_OUTPUT_LIMIT] + "\n[... feedback cut]"
                results.append(KitResult(test["name"], test["task"], "failed", output, failed.mistake, failed.gated))
            else:
                results.append(KitResult(test["name"], test["task"], "passed"))
    return KitReport(
        tuple(results),
        tuple(notes),
        str(path),
        time.perf_counter() - started,
        {t["id"]: (t["function"], t["part"]) for t in cases["tasks"]},
        {int(part): name for part, name in cases["parts"].items()},
    )
