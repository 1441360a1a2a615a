"""Grading one submission: load -> run the hidden tests against the sandbox -> score.

The hidden tests are ordinary pytest + hypothesis tests (``autograder/hidden_tests``). They run in
this process, which never imports student code: every call goes through the :class:`Sandbox` to a
worker process. Hypothesis therefore generates the same inputs for every submission (it never
sees the student's module), and the expected answers come from the reference in this process.

Each test carries ``@pytest.mark.graded(task_id, weight=..., public=...)``; a task's points (from
:mod:`autograder.tasks`) are shared between its tests in proportion to their weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pytest

import autograder
from autograder import __version__
from autograder.diagnostics import error_id
from autograder.feedback import CheckFailed, NotImplementedYet
from autograder.reference import reference_submission
from autograder.replay import Recorder, Recording, Replayer, recorded
from autograder.sandbox.client import Limits, Sandbox, SubmissionDoesNotLoad
from autograder.sandbox.isolation import Exposure
from autograder.source import REPO_ROOT, SOLUTION_SOURCE
from autograder.submission import PreparedSubmission, load_submission
from autograder.tasks import ALLOWED_PACKAGES, GPU_PACKAGES, HIDDEN_VISIBILITY, PARTS, contract_functions, task_by_id

__all__ = [
    "GPU_KEY",
    "HIDDEN_TESTS",
    "MISSING_KEY",
    "SANDBOX_KEY",
    "WRONG_FILE",
    "GpuUnavailable",
    "GradingReport",
    "TestResult",
    "UnisolatedRefused",
    "apportion",
    "gpu_available",
    "grade",
    "grade_prepared",
    "prepare_inputs",
    "require_file_protection",
]

_log = logging.getLogger(__name__)

#: A test's verdict, as Gradescope names them.
TestStatus = Literal["passed", "failed", "skipped"]
#: ``grade``: every test, with points; ``check``: the public tests only (the student's self-check).
GradingMode = Literal["grade", "check"]
#: The GPU tests: ``auto`` where CuPy sees a device, ``require`` or ``off``.
GpuChoice = Literal["auto", "require", "off"]

HIDDEN_TESTS = Path(__file__).resolve().parent / "hidden_tests"
SANDBOX_KEY = pytest.StashKey[Sandbox]()
GPU_KEY = pytest.StashKey[str]()
#: Why a contract function is missing, by name (a cell that raised while defining it), for the tests.
MISSING_KEY = pytest.StashKey[dict[str, str]]()
_OUTPUT_LIMIT = 6000
_CELL_ERRORS_SHOWN = 10


@dataclass(frozen=True)
class TestResult:
    """The verdict of one hidden test.

    Attributes:
        name: ``"1.1 conv2d: <what the test checks>"``.
        task_id: the task it scores.
        score: points earned.
        max_score: points possible (0 for a skipped test).
        status: ``passed``, ``failed`` or ``skipped``.
        output: feedback for the student (empty when passed).
        visibility: Gradescope visibility.
        tags: the contract functions it exercises, plus ``performance``/``gpu`` where they apply.
        mistake: the id of the recognised mistake, if any.
        internal_error: True when the test itself broke (a grader bug, not the student's fault).
        seconds: how long it ran.
        gated: failed only because the function's answer was wrong, though what the test checks
            held (a rejection test whose valid call was wrong; inputs left alone, answer wrong).
        traceback: for an internal error, the grader's traceback (for the instructor and the log;
            never in ``output``, which the student reads: it names hidden test files).
    """

    __test__ = False  # not a pytest test class

    name: str
    task_id: str
    score: float
    max_score: float
    status: TestStatus
    output: str
    visibility: str
    tags: tuple[str, ...]
    mistake: str | None = None
    internal_error: bool = False
    seconds: float = 0.0
    gated: bool = False
    traceback: str = ""

    def to_gradescope(self) -> dict[str, Any]:
        """This test in Gradescope's ``results.json`` format.

        Gradescope's ``status`` is ``passed`` or ``failed``; a skipped test (the GPU task on a machine
        without one) has none, and its own status is in ``extra_data`` with the task, the mistake
        and, for an internal error, the grader's traceback.
        """
        extra: dict[str, Any] = {
            "task": self.task_id,
            "status": self.status,
            "mistake": self.mistake,
            "internal_error": self.internal_error,
        }
        if self.traceback:
            extra["traceback"] = self.traceback
        test: dict[str, Any] = {
            "name": self.name,
            "score": round(self.score, 4),
            "max_score": round(self.max_score, 4),
            "status": self.status,
            "output": self.output,
            "visibility": self.visibility,
            "tags": list(self.tags),
            "extra_data": extra,
        }
        if self.status == "skipped":  # Gradescope knows only "passed" and "failed": let it show 0/0 plainly
            del test["status"]
            test["output"] = f"Skipped: {self.output}" if self.output else "Skipped."
        return test


@dataclass(frozen=True)
class GradingReport:
    """The result of grading one submission.

    Attributes:
        tests: every test's verdict, in suite order.
        execution_time: wall seconds of the whole grading.
        output: the report's top text (notes on loading, warnings).
        origin: the path that was graded.
        sha256: hash of the graded code.
        mode: ``grade`` (all tests) or ``check`` (public tests only).
        grader_version: this package's version.
        limits: the resource limits used.
        sandbox: the isolation in force: ``mode``, ``protections`` and ``missing``.
    """

    tests: tuple[TestResult, ...]
    execution_time: float
    output: str
    origin: str
    sha256: str
    mode: GradingMode = "grade"
    grader_version: str = __version__
    limits: dict[str, Any] = field(default_factory=dict)
    sandbox: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Points earned."""
        return sum(test.score for test in self.tests)

    @property
    def max_score(self) -> float:
        """Points possible."""
        return sum(test.max_score for test in self.tests)

    @property
    def internal_errors(self) -> tuple[TestResult, ...]:
        """Tests that broke for a reason that is not the student's."""
        return tuple(test for test in self.tests if test.internal_error)

    def feedback(self) -> list[tuple[str, str]]:
        """What a student should read, as ``(title, text)``: real failures first, in suite order,
        then one entry per task that is missing or not implemented yet (instead of one per test),
        and one for the tests that count only once a function's answers are right.
        """
        failures = [t for t in self.tests if t.status != "passed" and t.output]
        absent = ("not-implemented", "missing-function")  # one line per task, not one per test
        wrong_tasks = {t.task_id for t in failures if not t.gated and t.mistake not in absent}
        real = [
            (t.name, t.output)
            for t in failures
            if t.mistake not in absent and not (t.gated and t.task_id in wrong_tasks)
        ]
        waiting: dict[str, list[TestResult]] = defaultdict(list)
        missing: dict[str, list[TestResult]] = defaultdict(list)
        gated: dict[str, list[TestResult]] = defaultdict(list)
        for test in failures:
            if test.mistake == "not-implemented":
                waiting[test.task_id].append(test)
            elif test.mistake == "missing-function":
                missing[test.task_id].append(test)
            elif test.gated and test.task_id in wrong_tasks:
                gated[test.task_id].append(test)
        for task_id, tests in missing.items():
            task = task_by_id(task_id)
            points = sum(t.max_score - t.score for t in tests)
            real.append(
                (
                    f"{task.function} is missing (Task {task.id})",
                    f"{tests[0].output}\n{len(tests)} test(s) worth {points:.2f} points are waiting for it.",
                )
            )
        for task_id, tests in gated.items():  # shown once, after the failures that explain them
            task = task_by_id(task_id)
            points = sum(t.max_score - t.score for t in tests)
            checks = "; ".join(t.name.partition(": ")[2] for t in tests)
            real.append(
                (
                    f"{task.function}: {len(tests)} more test(s) wait for right answers (Task {task.id})",
                    f"These tests ({checks}) count only when {task.function}'s answers are right, and some above "
                    f"are not. Fix those first; these {points:.2f} points are then judged too.",
                )
            )
        for task_id, tests in waiting.items():
            task = task_by_id(task_id)
            points = sum(t.max_score - t.score for t in tests)
            real.append(
                (
                    f"{task.function} is not implemented yet (Task {task.id})",
                    f"{len(tests)} test(s) worth {points:.2f} points are waiting for {task.function}.",
                )
            )
        return real

    def part_scores(self) -> dict[int, tuple[float, float]]:
        """Part number -> (earned, possible)."""
        totals: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for test in self.tests:
            part = task_by_id(test.task_id).part
            totals[part][0] += test.score
            totals[part][1] += test.max_score
        return {part: (round(v[0], 4), round(v[1], 4)) for part, v in sorted(totals.items())}

    def to_gradescope(self) -> dict[str, Any]:
        """The report in Gradescope's ``results.json`` format (our extras under ``extra_data``).

        The total is the sum of the rounded test scores, so the file adds up exactly.
        """
        tests = [test.to_gradescope() for test in self.tests]
        return {
            "score": round(sum(test["score"] for test in tests), 4),
            "execution_time": round(self.execution_time, 3),
            "output": self.output,
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": tests,
            "extra_data": {
                "max_score": round(self.max_score, 4),
                "mode": self.mode,
                "origin": self.origin,
                "sha256": self.sha256,
                "grader_version": self.grader_version,
                "parts": {PARTS[part]: {"score": s, "max_score": m} for part, (s, m) in self.part_scores().items()},
                "mistakes": sorted({t.mistake for t in self.tests if t.mistake}),
                "internal_errors": len(self.internal_errors),
                "limits": self.limits,
                "sandbox": self.sandbox,
            },
        }


def apportion(points: float, weights: list[tuple[str, float]]) -> dict[str, float]:
    """Share a task's points among its tests by weight, in hundredths that add up exactly.

    Largest-remainder rounding: the shares are floored to 0.01 and the leftover hundredths go to
    the tests with the largest remainders (ties to the earlier test), so a perfect score is
    exactly the task's points and reports never show 94.0003.

    Args:
        points: the task's points.
        weights: ``(test id, weight)`` for every test of the task.

    Returns:
        Test id -> its maximum score.
    """
    total = sum(weight for _, weight in weights)
    exact = [(test, 100 * points * weight / total) for test, weight in weights]
    floors = {test: int(value) for test, value in exact}
    leftover = round(100 * points) - sum(floors.values())
    by_remainder = sorted(range(len(exact)), key=lambda i: -(exact[i][1] - floors[exact[i][0]]))
    for index in by_remainder[:leftover]:
        floors[exact[index][0]] += 1
    return {test: hundredths / 100 for test, hundredths in floors.items()}


class UnisolatedRefused(RuntimeError):
    """A platform path (grade-all, Gradescope, nbgrader, otter) would run student code unprotected."""


def require_file_protection(limits: Limits | None, *, allow_unisolated: bool, where: str) -> None:
    """Refuse to grade a class where student code could read other files (``process`` isolation).

    Args:
        limits: the limits (their ``isolation`` is the requested mode).
        allow_unisolated: the instructor's explicit permission to grade unprotected.
        where: the command or platform, for the message.

    Raises:
        UnisolatedRefused: when the isolation would not protect files and no permission was given.
    """
    from autograder.sandbox.isolation import choose_isolation

    isolation = choose_isolation((limits or Limits()).isolation)
    if not isolation.protects_files and not allow_unisolated:
        raise UnisolatedRefused(
            f"{where}: refusing to grade with {isolation.mode} isolation, where student code could read any file this "
            "user can (the reference, other students' submissions). Run as root, or where bubblewrap can make user "
            "namespaces, for a real sandbox; or pass --allow-unisolated to grade anyway"
        )


class GpuUnavailable(RuntimeError):
    """``--gpu require`` was asked for on a machine without a usable CUDA device."""


def gpu_available() -> bool:
    """Whether CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # ImportError, or CUDA errors when no driver/device is present
        return False


#: A mistake that costs the whole task, not only the test that caught it. A conv2d_fast that returns
#: a wrong value in any timed round cannot keep the points of the other timing tests.
FORFEITING_MISTAKES = {"wrong-when-timed": "a timed call of conv2d_fast returned wrong values"}


def _apply_forfeits(tests: list[TestResult]) -> list[TestResult]:
    """Zero every test of a task where one test found a forfeiting mistake, and say why."""
    forfeited = {t.task_id: FORFEITING_MISTAKES[t.mistake] for t in tests if t.mistake in FORFEITING_MISTAKES}
    result = []
    for test in tests:
        reason = forfeited.get(test.task_id)
        if reason and test.max_score > 0 and test.mistake not in FORFEITING_MISTAKES:
            note = f"Task {test.task_id} is forfeited: {reason} (see the test that caught it)."
            test = replace(
                test,
                score=0.0,
                status="failed",
                output=(note + ("\n" + test.output if test.output else "")),
                mistake=test.mistake or "forfeited",
            )
        result.append(test)
    return result


def submission_exposure(gpu: GpuChoice) -> Exposure:
    """What the student's worker may see: numpy, and CuPy with the GPU's devices where 5.3 runs.

    Args:
        gpu: ``auto``, ``require`` or ``off`` (see :func:`grade_prepared`).
    """
    if gpu == "off" or not gpu_available():
        return Exposure(ALLOWED_PACKAGES)
    from importlib import metadata

    nvidia = tuple(
        name for dist in metadata.distributions() if (name := dist.metadata["Name"] or "").startswith("nvidia-")
    )
    devices = tuple(sorted(str(p) for p in Path("/dev").glob("nvidia*") if not p.is_dir()))
    return Exposure(ALLOWED_PACKAGES + GPU_PACKAGES + nvidia, devices)


def course_files(submission: PreparedSubmission, extra: tuple[Path, ...] = ()) -> tuple[Path, ...]:
    """The paths a sandbox uid must not read where no new root can be built (``uid`` mode).

    The grader's package (hidden tests included), the reference, the checkout around them (its
    ``.git``, examples and tests; not the virtual environment the worker's numpy comes from), the
    folder the submission came from (a class's submissions), every home folder, and ``extra``
    (grade-all's output, Gradescope's folders).
    """
    paths = [Path(autograder.__file__).resolve().parent, SOLUTION_SOURCE.parent, *extra]
    keep = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    if (REPO_ROOT / "pyproject.toml").is_file():
        paths += list(REPO_ROOT.iterdir())  # the venv among them is kept by the filter below
    origin = Path(submission.origin)
    if origin.exists():
        paths.append(origin.resolve().parent)
    home = Path("/home")
    if home.is_dir():
        paths += list(home.iterdir())
    return tuple(
        p for p in paths if _may_tighten(p) and not any(k == p.resolve() or p.resolve() in k.parents for k in keep)
    )


def _may_tighten(path: Path) -> bool:
    """Never a top-level folder (``/``, ``/tmp``) nor a shared sticky one: only course folders."""
    try:
        resolved = path.resolve()
        return resolved.parent != resolved and resolved.parent != Path("/") and not resolved.stat().st_mode & 0o1000
    except OSError:
        return False


def _find_check_failed(exc: BaseException | None) -> CheckFailed | None:
    """Find our verdict inside whatever pytest/hypothesis raised (groups, causes, contexts)."""
    seen: set[int] = set()
    queue = [exc]
    while queue:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CheckFailed):
            return current
        if isinstance(current, NotImplementedYet):
            return current.verdict
        queue += [*getattr(current, "exceptions", ()), current.__cause__, current.__context__]
    return None


@dataclass
class _Record:
    nodeid: str
    name: str
    task_id: str
    weight: float
    public: bool
    tags: tuple[str, ...]
    status: TestStatus
    output: str
    mistake: str | None
    internal_error: bool
    seconds: float
    fraction: float = 0.0
    gated: bool = False
    traceback: str = ""


class _Collector:
    """A pytest plugin that records each graded test's verdict and hands the sandbox to the tests."""

    def __init__(
        self, sandbox: Sandbox, public_only: bool, performance: bool, gpu: GpuChoice, missing: dict[str, str]
    ) -> None:
        self.sandbox = sandbox
        self.missing = missing
        self.public_only = public_only
        self.performance = performance
        self.gpu = gpu
        self.records: list[_Record] = []
        self.weights: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.problems: list[str] = []
        self.interrupted = False

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[SANDBOX_KEY] = self.sandbox
        config.stash[GPU_KEY] = self.gpu
        config.stash[MISSING_KEY] = self.missing

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # Ctrl-C or SIGTERM raise KeyboardInterrupt itself; pytest's own Session.Interrupted (a
        # subclass, for collection errors) is a broken suite, which the collect reports record
        self.interrupted = excinfo.type is KeyboardInterrupt

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a hidden test module that does not import: the suite is broken
            self.problems.append(f"{report.nodeid or 'the hidden tests'} could not be collected: {report.longrepr}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        for item in items:
            marker = item.get_closest_marker("graded")
            if marker is None:
                self.problems.append(f"{item.nodeid} has no graded marker")
                drop.append(item)
                continue
            task = task_by_id(marker.args[0])
            self.weights[task.id].append((item.nodeid, float(marker.kwargs.get("weight", 1))))
            wanted = (marker.kwargs.get("public") or not self.public_only) and (
                self.performance or "performance" not in task.tags
            )
            (keep if wanted else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.records.append(self._record(item, report, call))
        return report

    def _record(self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]) -> _Record:
        marker = item.get_closest_marker("graded")
        assert marker is not None  # items without one were deselected above
        task = task_by_id(marker.args[0])
        doc = (getattr(getattr(item, "function", None), "__doc__", None) or item.name).strip().splitlines()[0]
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            doc += f" [{callspec.id}]"
        tags = tuple(dict.fromkeys((task.function, *marker.kwargs.get("also", ()), *task.tags)))
        status: TestStatus = "passed"
        output, mistake, internal, fraction, gated, trace = "", None, False, 0.0, False, ""
        notes = [str(value) for key, value in report.user_properties if key == "feedback"]
        if report.passed:
            output = "\n".join(notes)
        if report.skipped:
            status = "skipped"
            longrepr = report.longrepr
            output = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
            output = output.removeprefix("Skipped: ")
        elif report.failed:
            status = "failed"
            verdict = _find_check_failed(call.excinfo.value if call.excinfo else None)
            if verdict is not None:
                output, mistake, fraction = verdict.feedback, verdict.mistake, verdict.fraction
                gated = verdict.gated
            else:
                internal = True
                error = call.excinfo.value if call.excinfo else None
                trace = "".join(traceback.format_exception(error)) if error is not None else str(report.longrepr)
                ident = error_id(item.nodeid, trace)
                _log.error("internal error %s in %s:\n%s", ident, item.nodeid, trace.rstrip())
                output = (
                    "The grader could not finish this test (an internal error, not a problem with your code; "
                    f"it has been reported as grader error {ident}): {type(error).__name__}: {error}"
                )
        if len(output) > _OUTPUT_LIMIT:
            output = output[:_OUTPUT_LIMIT] + "\n[... feedback cut]"
        return _Record(
            item.nodeid,
            f"{task.label}: {doc}",
            task.id,
            float(marker.kwargs.get("weight", 1)),
            bool(marker.kwargs.get("public", False)),
            tags,
            status,
            output,
            mistake,
            internal,
            report.duration,
            fraction,
            gated,
            trace if internal else "",
        )


_WHOLE_CELL_LOST = ("SyntaxError", "IndentationError", "TabError")


def _cell_problem(error: dict[str, Any]) -> str:
    """``"a SyntaxError at line 3: invalid syntax, so none of it ran"``, from a worker's cell error."""
    kind = str(error.get("type"))[:100]
    line = error.get("line")
    where = f" at line {line}" if isinstance(line, int) else ""
    consequence = "so none of it ran" if kind in _WHOLE_CELL_LOST else "so it stopped there"
    return f"a {kind}{where}: {str(error.get('message'))[:200]}, {consequence}"


def _cell_label(submission: PreparedSubmission, error: dict[str, Any]) -> str:
    index = error.get("cell")  # 1-based among the code cells, as the worker counts
    return submission.cell_label(index - 1) if isinstance(index, int) else "a cell"


def _describe_cell_error(submission: PreparedSubmission, error: dict[str, Any]) -> str:
    """One line of the report about a notebook cell that raised while the submission loaded."""
    return f"notebook {_cell_label(submission, error)} raised {_cell_problem(error)}"


_DEFINITION = r"^(?:async[ \t]+)?def[ \t]+{name}[ \t]*\("


def _missing_reasons(
    submission: PreparedSubmission, missing: list[str], cell_errors: list[dict[str, Any]]
) -> dict[str, str]:
    """For each missing function that a failing notebook cell tried to define, say so."""
    reasons = {}
    for error in cell_errors:
        index = error.get("cell")
        if not isinstance(index, int) or not 0 < index <= len(submission.cells):
            continue
        code = submission.cells[index - 1]
        for name in missing:
            if name not in reasons and re.search(_DEFINITION.format(name=re.escape(name)), code, re.MULTILINE):
                reasons[name] = (
                    f"{name} is not defined: it is written in notebook {_cell_label(submission, error)}, which "
                    f"raised {_cell_problem(error)}. Fix that cell; every test of {name} waits for it."
                )
    return reasons


@contextlib.contextmanager
def _pytest_environment() -> Iterator[None]:
    """The environment of one run of the hidden suite, the same wherever the grader runs.

    Hypothesis's storage is a temporary folder (nothing persists between gradings). Pytest loads
    no plugin that happens to be installed beside the grader (pytest-randomly reorders tests and
    reseeds, a timeout plugin kills tests, ...), only the ones :func:`_run_pytest` names, and takes
    no options from the environment: ``PYTEST_ADDOPTS=-x`` in a TA's shell stopped every grading
    at its first failed test (a student with one mistake got 0 of 0.89 points).
    """
    with tempfile.TemporaryDirectory(prefix="wsgrade-hypothesis-") as home:
        settings = {
            "HYPOTHESIS_STORAGE_DIRECTORY": home,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTEST_ADDOPTS": None,
            "PYTEST_PLUGINS": None,
        }
        previous = {name: os.environ.get(name) for name in settings}
        try:
            _set_environment(settings)
            yield
        finally:
            _set_environment(previous)


def _set_environment(values: dict[str, str | None]) -> None:
    """Set each variable, removing those whose value is None."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _run_pytest(
    sandbox: Sandbox,
    missing_reasons: dict[str, str],
    *,
    public_only: bool,
    performance: bool,
    gpu: GpuChoice,
    select: str | None,
    pytest_args: list[str],
    plugins: tuple[object, ...] = (),
) -> tuple[_Collector, str]:
    collector = _Collector(sandbox, public_only, performance, gpu, missing_reasons)
    args = [
        str(HIDDEN_TESTS),
        "-c",
        str(HIDDEN_TESTS / "pytest.ini"),
        "--rootdir",
        str(HIDDEN_TESTS),
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        # Hypothesis's own plugin, the one plugin loaded (see _pytest_environment). Not the check for
        # exceptions nobody could raise, which costs two full garbage collections per grading.
        "-p",
        "_hypothesis_pytestplugin",
        "-p",
        "no:unraisableexception",
        "-q",
        # The verdicts are our CheckFailed messages: pytest's own failure report (source and
        # locals of every frame) took 10 s of a stub's grading, and assertion rewriting ~1 s of
        # each grading's collection. The suite has no bare assert; native tracebacks are cheap.
        "--tb=native",
        "--assert=plain",
        *(["-k", select] if select else []),
        *pytest_args,
    ]
    log = io.StringIO()
    with _pytest_environment(), contextlib.redirect_stdout(log):
        code = pytest.main(args, plugins=[collector, *plugins])
    if collector.interrupted:  # Ctrl-C or SIGTERM: pytest has closed its sandboxes; stop
        raise KeyboardInterrupt
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        collector.problems.append(f"pytest stopped with exit code {int(code)} ({pytest.ExitCode(code).name})")
    return collector, log.getvalue()


#: What a student reads first when the submission defines none of the functions.
WRONG_FILE = (
    "Your code defines none of the problem set's functions (conv2d, conv2d_layer, ... "
    "locally_connected2d_backward): this looks like the wrong file. Hand in the weight_sharing "
    "notebook or weight_sharing.py you were given, with your code in it, keeping the functions' names."
)


def _load(sandbox: Sandbox, submission: PreparedSubmission, notes: list[str]) -> dict[str, str]:
    """Start the worker and load the submission; add what the student should know to ``notes``.

    Returns:
        Why a contract function is missing, by name (see :func:`_missing_reasons`).

    Raises:
        SandboxBroken: the environment is broken (a grader error, never a 0 for the student).
    """
    try:
        functions, cell_errors, printed = sandbox.load()
    except SubmissionDoesNotLoad as problem:  # every test will fail with this message
        notes.append(f"Your code could not be loaded, so no test could pass: {problem}")
        return {}
    missing = [name for name in contract_functions() if name not in functions]
    if missing and len(missing) == len(contract_functions()):
        notes.append(WRONG_FILE)
    elif missing:
        notes.append("not defined in your code: " + ", ".join(missing))
    for error in cell_errors[:_CELL_ERRORS_SHOWN]:
        notes.append(_describe_cell_error(submission, error))
    if len(cell_errors) > _CELL_ERRORS_SHOWN:
        notes.append(f"... and {len(cell_errors) - _CELL_ERRORS_SHOWN} more notebook cells raised (ignored)")
    if printed.strip():
        notes.append("your code printed while loading:\n" + printed.rstrip())
    return _missing_reasons(submission, missing, cell_errors)


def _scored(collector: _Collector) -> list[TestResult]:
    """The collected verdicts with their points: each task's shared by weight, then the forfeits."""
    shares = {
        nodeid: share
        for task_id, weights in collector.weights.items()
        for nodeid, share in apportion(task_by_id(task_id).points, weights).items()
    }
    tests = []
    for record in collector.records:
        max_score = 0.0 if record.status == "skipped" else shares[record.nodeid]
        tests.append(
            TestResult(
                record.name,
                record.task_id,
                max_score if record.status == "passed" else round(max_score * record.fraction, 2),
                max_score,
                record.status,
                record.output,
                "visible" if record.public else HIDDEN_VISIBILITY,
                record.tags,
                record.mistake,
                record.internal_error,
                record.seconds,
                record.gated,
                record.traceback,
            )
        )
    return _apply_forfeits(tests)


def grade_prepared(
    submission: PreparedSubmission,
    *,
    public_only: bool = False,
    performance: bool = True,
    gpu: GpuChoice = "auto",
    limits: Limits | None = None,
    select: str | None = None,
    pytest_args: list[str] | None = None,
    hide: tuple[Path, ...] = (),
    replay: bool = True,
    plugins: tuple[object, ...] = (),
) -> GradingReport:
    """Grade an already-loaded submission.

    Args:
        submission: the submission.
        public_only: run only the public tests (``wsgrade check``).
        performance: run the timing tests (False: leave out the tasks tagged ``performance``).
        gpu: ``auto`` runs the GPU tests where CuPy sees a CUDA device (else they are skipped with 0
            possible points), ``require`` fails when there is none, ``off`` skips them.
        limits: resource limits for the student's code.
        select: a pytest ``-k`` expression to run part of the suite (for instructors and tests).
        pytest_args: extra pytest arguments.
        hide: more paths the student's code must not see (e.g. grade-all's output folder).
        replay: run the hypothesis tests on their recorded inputs (see :mod:`autograder.replay`:
            the same verdicts, without drawing the inputs anew); False draws them as hypothesis does.
        plugins: more pytest plugins for the hidden suite's run (the replay's recorder).

    Returns:
        The report.

    Raises:
        GpuUnavailable: when ``gpu="require"`` and no CUDA device is usable.
    """
    if gpu not in ("auto", "require", "off"):
        raise ValueError(f"gpu must be 'auto', 'require' or 'off', not {gpu!r}")
    if gpu == "require" and not gpu_available():
        raise GpuUnavailable("--gpu require: CuPy with a CUDA device is needed, and none is usable here")
    started = time.perf_counter()
    limits = limits or Limits()
    notes = list(submission.notes)
    exposure = submission_exposure(gpu)
    plugins = (*plugins, *(_replayer() if replay else ()))
    with Sandbox(
        submission, contract_functions(), limits, exposure=exposure, hide=course_files(submission, hide)
    ) as sandbox:
        missing_reasons = _load(sandbox, submission, notes)
        collector, log = _run_pytest(
            sandbox,
            missing_reasons,
            public_only=public_only,
            performance=performance,
            gpu=gpu,
            select=select,
            pytest_args=pytest_args or [],
            plugins=plugins,
        )
        restarts = sandbox.workers_started
        isolation = sandbox.isolation
    tests = _scored(collector)
    if collector.problems:
        raise RuntimeError("the hidden test suite is broken: " + "; ".join(collector.problems) + "\n" + log[-3000:])
    if restarts > 1:
        notes.append(f"the process running your code had to be restarted {restarts - 1} time(s) (crashes or time-outs)")
    if not isolation.protects_files:
        notes.insert(0, isolation.describe())  # the report's first line says that files were not protected
    elif isolation.missing:
        notes.append(isolation.describe())
    return GradingReport(
        tests=tuple(tests),
        execution_time=time.perf_counter() - started,
        output="\n".join(notes),
        origin=submission.origin,
        sha256=submission.sha256,
        mode="check" if public_only else "grade",
        limits=asdict(limits),
        sandbox={
            "mode": isolation.mode,
            "protections": list(isolation.protections),
            "missing": list(isolation.missing),
        },
    )


def prepare_inputs() -> Recording:
    """The recorded inputs of the hidden suite's hypothesis tests, recorded now if not yet done
    (waiting while another process records them).

    Returns:
        The recording every grading with this grader replays (see :mod:`autograder.replay`).
    """
    recording = recorded(_record_inputs)
    assert recording is not None  # it waits for the lock
    return recording


def _replayer() -> tuple[Replayer, ...]:
    """The replay plugin; none while another process records the inputs, or where they could not be
    recorded: hypothesis then draws them, with the same verdicts."""
    try:
        recording = recorded(_record_inputs, wait=False)
        return (Replayer(recording),) if recording is not None else ()
    except Exception as problem:  # never lose a grading to the recording: it only saves time
        _log.warning(
            "the hidden tests' inputs are drawn anew: recording them failed (%s: %s)", type(problem).__name__, problem
        )
        return ()


def _record_inputs(key: str) -> Recording:
    """Grade the reference with a :class:`~autograder.replay.Recorder`: the inputs of every hypothesis
    test, to replay in later gradings (a few seconds, once per version of the grader and machine)."""
    started = time.perf_counter()
    recorder = Recorder()
    grade_prepared(reference_submission(), performance=False, gpu="off", replay=False, plugins=(recorder,))
    recording = recorder.recording(key)
    _log.info(
        "recorded the inputs of %d hypothesis tests in %.1f s (%d not recorded: %s)",
        len(recording.examples),
        time.perf_counter() - started,
        len(recording.unrecorded),
        ", ".join(recording.unrecorded) or "none",
    )
    return recording


def grade(path: str | Path, **options: Any) -> GradingReport:
    """Load and grade the submission at ``path`` (see :func:`grade_prepared` for the options).

    Raises:
        autograder.submission.SubmissionError: if ``path`` is not a submission.
    """
    return grade_prepared(load_submission(path), **options)
