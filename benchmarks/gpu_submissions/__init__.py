"""The GPU check's submissions and verdicts (``benchmarks/gpu_check.sh`` runs this module).

    python -m benchmarks.gpu_submissions write DIR
    python -m benchmarks.gpu_submissions probe SUBMISSION
    python -m benchmarks.gpu_submissions grading NAME RESULTS_JSON --exit-code N [--log FILE] [--gpu-off]
    python -m benchmarks.gpu_submissions junit JUNIT_XML --exit-code N [--log FILE] [--expect 2]
    python -m benchmarks.gpu_submissions benchmark BENCHMARK_JSON --exit-code N [--log FILE]

Every submission is the reference solution with ``conv2d_fast`` replaced, so all but Task 5.3
(and 5.2, which times the CPU) must keep full marks; each says what it must score on a GPU:

========== ================================================================== ===================
name        conv2d_fast                                                        5.3 on a GPU
========== ================================================================== ===================
reference   the reference's own (``_array_module``: CuPy in, CuPy out)         4.00/4.00
numpy-only  the reference's, NumPy only (``xp = np``): correct on the CPU      0.00/4.00, a message
cupy        ``cupy.get_array_module`` and one GEMM per kernel offset           4.00/4.00
cupy-slow   a Python loop over images, output rows and kernel offsets          values right, slow
========== ================================================================== ===================

Each verdict is one line, ``PASS name: ...`` or ``FAIL name: ...``, and the command's exit status
(0 or 1) says which. They are judged from ``wsgrade grade --json``'s results, pytest's JUnit XML
and the conv benchmark's ``--json``, never from what those programs print.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.corpus import Mutant, function_lines, mutant_source, reference_source, reference_with

__all__ = [
    "SUBMISSIONS",
    "Check",
    "GpuSubmission",
    "benchmark_checks",
    "grading_check",
    "junit_check",
    "probe_check",
    "write_submissions",
]

HERE = Path(__file__).resolve().parent
#: The words one of which a clear message about a CPU-only submission on a GPU must contain.
DEVICE_WORDS = ("numpy", "cupy", "gpu")
#: Tasks no submission here is judged on: 5.2 times the CPU (noisy, and not this check's business)
#: and 5.3 is judged by each submission's own expectation.
UNJUDGED_TASKS = ("5.2", "5.3")
#: The worker's environment variables a diagnosis names (those that decide where CuPy is found and what it sees).
WORKER_ENV_SHOWN = ("CUDA_VISIBLE_DEVICES", "PYTHONPATH", "CUDA_PATH", "LD_LIBRARY_PATH")
#: Seconds the probe lets a call take: long enough to measure a slow CUDA start-up, not to hang.
PROBE_TIMEOUT = 45.0
#: Seconds each of the diagnosis's tiny CuPy programs may take.
DIAGNOSIS_TIMEOUT = 30.0


@dataclass(frozen=True)
class Check:
    """One verdict of the GPU check.

    Attributes:
        name: what was checked (a submission, ``hidden-5.3-tests``, ``benchmark <shape>``, ...).
        passed: whether it met its expectation.
        detail: the measured numbers, and what went wrong where something did.
    """

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``PASS name: detail`` or ``FAIL name: detail``."""
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"


def _spliced(file_name: str) -> str:
    """The reference with its ``conv2d_fast`` replaced by the one defined in ``file_name`` (here)."""
    source = (HERE / file_name).read_text()
    start, end = function_lines(source, "conv2d_fast")
    return reference_with("conv2d_fast", "".join(source.splitlines(keepends=True)[start:end]))


def _numpy_only() -> str:
    return mutant_source(
        Mutant("numpy-only", "conv2d_fast", "xp = _array_module(x)", "xp = np  # NumPy only: CuPy input is not handled")
    )


@dataclass(frozen=True)
class GpuSubmission:
    """A submission the GPU check grades.

    Attributes:
        name: its short name, also its folder's name.
        source: builds its ``weight_sharing.py`` from the reference.
        on_gpu: what it must score for Task 5.3 on a GPU: ``full``, ``zero`` (with a message that
            names NumPy, CuPy or the GPU) or ``slow`` (the values test passed, the speed test lost points).
    """

    name: str
    source: Callable[[], str]
    on_gpu: str


SUBMISSIONS: tuple[GpuSubmission, ...] = (
    GpuSubmission("reference", reference_source, "full"),
    GpuSubmission("numpy-only", _numpy_only, "zero"),
    GpuSubmission("cupy", lambda: _spliced("cupy_offsets.py"), "full"),
    GpuSubmission("cupy-slow", lambda: _spliced("cupy_row_loops.py"), "slow"),
)


def write_submissions(folder: Path) -> dict[str, Path]:
    """Write every submission as ``folder/<name>/weight_sharing.py``.

    Args:
        folder: where to write them (created if missing).

    Returns:
        Name -> the file written, in ``SUBMISSIONS`` order.
    """
    written = {}
    for submission in SUBMISSIONS:
        path = folder / submission.name / "weight_sharing.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(submission.source())
        written[submission.name] = path
    return written


def _gist(text: str, limit: int = 220) -> str:
    """One line of a test's output: the verdict, not the call or its arguments.

    The lines that describe the call (``Called ...``) and the indented ones (arguments, traceback
    frames) are passed over; of the rest, the first that names the device is taken, else the first.
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    verdicts = [line for line in lines if not line.startswith(("Called ", " ", "\t"))] or [l.strip() for l in lines]
    if not verdicts:
        return "(no message)"
    chosen = next((line for line in verdicts if any(word in line.lower() for word in DEVICE_WORDS)), verdicts[0])
    return chosen if len(chosen) <= limit else chosen[: limit - 3] + "..."


def _log_tail(log: Path | None) -> str:
    """The last non-empty line of a log, to say why a program produced no results."""
    if log is None or not log.is_file():
        return "no log"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "an empty log"


def _no_results(name: str, what: str, exit_code: int, log: Path | None) -> Check:
    return Check(name, False, f"exited {exit_code} and wrote no {what}; last line of its log: {_log_tail(log)}")


def _task_scores(tests: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    scores: dict[str, tuple[float, float]] = {}
    for test in tests:
        earned, possible = scores.get(test["extra_data"]["task"], (0.0, 0.0))
        scores[test["extra_data"]["task"]] = (earned + test["score"], possible + test["max_score"])
    return scores


def _status(test: dict[str, Any]) -> str:
    """A results.json test's status: Gradescope's (passed, failed), else ours (a skipped test has none there)."""
    return str(test.get("status") or test.get("extra_data", {}).get("status", ""))


def _gpu_problem(on_gpu: str, gpu_tests: list[dict[str, Any]]) -> str | None:
    """What is wrong with the 5.3 results on a GPU for this expectation (None: nothing)."""
    if len(gpu_tests) != 2:
        return f"expected two 5.3 tests (values, then speed), found {len(gpu_tests)}"
    skipped = [test for test in gpu_tests if _status(test) == "skipped"]
    if skipped:
        return f"5.3 was skipped under --gpu require: {_gist(skipped[0]['output'])}"
    values, speed = gpu_tests
    earned = sum(test["score"] for test in gpu_tests)
    possible = sum(test["max_score"] for test in gpu_tests)
    if on_gpu == "full" and earned < possible:
        failing = next(test for test in gpu_tests if test["score"] < test["max_score"])
        return f"expected full marks for 5.3; {_gist(failing['output'])}"
    if on_gpu == "zero":
        if earned > 0:
            return "a NumPy-only conv2d_fast earned 5.3 points"
        if not any(word in values["output"].lower() for word in DEVICE_WORDS):
            return f"the 5.3 message does not say what is wrong with the device: {_gist(values['output'])}"
    if on_gpu == "slow":
        if _status(values) != "passed":
            return f"the slow submission's values were judged wrong on the GPU: {_gist(values['output'])}"
        if speed["score"] >= speed["max_score"]:
            return f"the slow submission kept every GPU speed point: {_gist(speed['output'])}"
    return None


def grading_check(name: str, results: Path, *, exit_code: int, log: Path | None = None, gpu: bool = True) -> Check:
    """Judge one ``wsgrade grade --json`` run of a submission from ``SUBMISSIONS``.

    Args:
        name: the submission's name.
        results: the ``results.json`` it wrote.
        exit_code: wsgrade's exit status.
        log: what wsgrade printed, quoted when it wrote no results.
        gpu: whether the grading ran with a GPU (``--gpu require``); False for ``--gpu off``,
            where both 5.3 tests must be skipped with 0 possible points.

    Returns:
        The verdict.

    Raises:
        KeyError: if ``name`` is not in ``SUBMISSIONS``.
    """
    expectations = {submission.name: submission.on_gpu for submission in SUBMISSIONS}
    if name not in expectations:
        raise KeyError(f"no GPU-check submission {name!r}; they are {', '.join(expectations)}")
    if not results.is_file():
        return _no_results(name, "results.json", exit_code, log)
    report = json.loads(results.read_text())
    tests = report["tests"]
    scores = _task_scores(tests)
    gpu_tests = [test for test in tests if test["extra_data"]["task"] == "5.3"]
    earned, possible = scores.get("5.3", (0.0, 0.0))
    summary = [
        f"5.3 {earned:.2f}/{possible:.2f}",
        "5.2 {:.2f}/{:.2f}".format(*scores.get("5.2", (0.0, 0.0))),
        f"total {report['score']:.2f}/{report['extra_data']['max_score']:.2f}",
        f"{report['execution_time']:.1f} s",
    ]
    problems = []
    if exit_code != 0:
        problems.append(f"wsgrade exited {exit_code}")
    broken = [test["name"] for test in tests if test["extra_data"]["internal_error"]]
    if broken:
        problems.append(f"internal errors in {len(broken)} test(s), first: {broken[0]}")
    short = [task for task, (got, most) in scores.items() if task not in UNJUDGED_TASKS and got < most]
    if short:
        problems.append(f"lost points outside 5.2/5.3: {', '.join(short)}")
    if gpu:
        problem = _gpu_problem(expectations[name], gpu_tests)
        if problem:
            problems.append(problem)
    elif any(_status(test) != "skipped" or test["max_score"] for test in gpu_tests) or not gpu_tests:
        problems.append("with --gpu off, 5.3 must be reported as skipped with 0 possible points")
    if problems:
        return Check(name, False, "; ".join(problems + summary))
    if gpu:  # what a student would read: the values test's message, or the speed test's measurement
        summary.append(f"5.3 says: {_gist(gpu_tests[0]['output'] or gpu_tests[1]['output'])}")
    return Check(name, True, ", ".join(summary))


def _junit_reason(element: ElementTree.Element) -> str:
    """What a failed, broken or skipped test said: for a failure, the grader's verdict (the ``E``
    lines of pytest's report, less the exception's name), else the element's message."""
    marked = [line[1:] for line in (element.text or "").splitlines() if line.startswith("E ")]
    if element.tag == "skipped" or not any(line.strip() for line in marked):
        return element.get("message") or element.text or ""
    indent = min(len(line) - len(line.lstrip()) for line in marked if line.strip())
    marked = [line[indent:] for line in marked]
    first, _, rest = marked[0].partition(": ")
    marked[0] = rest if rest and first.replace(".", "").replace("_", "").isalnum() else marked[0]
    return "\n".join(marked)


def junit_check(name: str, junit: Path, *, exit_code: int, log: Path | None = None, expect: int = 2) -> Check:
    """Judge a direct pytest run of hidden tests from its JUnit XML: all ``expect`` tests passed.

    Args:
        name: the check's name.
        junit: pytest's ``--junitxml`` file.
        exit_code: pytest's exit status.
        log: what pytest printed, quoted when it wrote no XML.
        expect: how many tests must have run and passed (none skipped).

    Returns:
        The verdict.
    """
    if not junit.is_file():
        return _no_results(name, "JUnit XML", exit_code, log)
    root = ElementTree.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return Check(name, False, f"{junit} holds no testsuite")
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    detail = (
        f"{passed} passed, {counts['failures']} failed, {counts['errors']} errors, {counts['skipped']} skipped "
        f"in {float(suite.get('time', '0')):.1f} s"
    )
    if exit_code == 0 and passed == expect == counts["tests"]:
        return Check(name, True, detail)
    reasons = [
        _junit_reason(element)
        for case in suite.iter("testcase")
        for element in case
        if element.tag in ("failure", "error", "skipped")
    ]
    first = f"; first: {_gist(reasons[0])}" if reasons else ""
    return Check(name, False, f"expected {expect} passed (pytest exited {exit_code}): {detail}{first}")


def benchmark_checks(results: Path, *, exit_code: int, log: Path | None = None) -> list[Check]:
    """Judge ``conv_benchmark --device cuda --json``: one verdict per speed shape.

    A shape passes when the CuPy reference and torch's CUDA conv2d both ran for every dtype and
    agreed on the values; the detail gives their median times and the ratio.

    Args:
        results: the benchmark's JSON.
        exit_code: its exit status.
        log: what it printed, quoted when it wrote no JSON.

    Returns:
        The verdicts, in the order of the speed shapes.
    """
    from benchmarks.conv_benchmark import CUPY_REFERENCE, TORCH_CUDA

    if not results.is_file():
        return [_no_results("benchmark", "benchmark JSON", exit_code, log)]
    data = json.loads(results.read_text())
    by_shape: dict[str, list[dict[str, Any]]] = {}
    for case in data["cases"]:
        by_shape.setdefault(case["shape"], []).append(case)
    checks = []
    for shape, cases in by_shape.items():
        parts, problems = [], []
        for case in cases:
            times = case["seconds"]
            missing = [label for label in (CUPY_REFERENCE, TORCH_CUDA) if label not in times]
            if missing:
                problems.append(f"{case['dtype']}: {' and '.join(missing)} did not run")
                continue
            if not case["agrees"]:
                problems.append(f"{case['dtype']}: the CuPy reference and torch disagree")
            cupy_ms, torch_ms = 1000 * times[CUPY_REFERENCE], 1000 * times[TORCH_CUDA]
            parts.append(
                f"{case['dtype']} CuPy reference {cupy_ms:.2f} ms, torch CUDA {torch_ms:.2f} ms "
                f"({cupy_ms / torch_ms:.1f}x)"
            )
        if data.get("torch") is None:
            problems.append("no torch with CUDA in the venv (--inherit-packages from a Python that has it)")
        checks.append(Check(f"benchmark {shape}", not problems, "; ".join(problems + parts)))
    if exit_code != 0:
        checks.append(Check("benchmark", False, f"exited {exit_code}; last line of its log: {_log_tail(log)}"))
    return checks or [Check("benchmark", False, "no shapes were measured")]


_CUPY_SMOKE = "import cupy; cupy.cuda.runtime.getDeviceCount(); print(int((cupy.arange(4) ** 2).sum()))"


def _cupy_runs(env: dict[str, str], memory_bytes: int | None) -> str | None:
    """Run a tiny CuPy program in a plain subprocess; None if it worked, else its last error line."""
    import resource
    import subprocess
    import sys

    def limit_memory() -> None:
        if memory_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    try:
        done = subprocess.run(
            [sys.executable, "-c", _CUPY_SMOKE],
            env=env,
            capture_output=True,
            text=True,
            timeout=DIAGNOSIS_TIMEOUT,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {DIAGNOSIS_TIMEOUT:g} s"
    if done.returncode == 0 and done.stdout.strip() == "14":
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def cupy_diagnosis(memory_bytes: int, worker_env: dict[str, str]) -> str:
    """Why CuPy may fail in the worker: a tiny CuPy program in a plain process of the grader's
    Python, then under the worker's address-space limit, then with the worker's environment.

    The worker's other walls (its namespaces, its own uid, what its filesystem shows) are not
    rebuilt here: where all three runs work, the cause lies there.

    Args:
        memory_bytes: the worker's RLIMIT_AS.
        worker_env: the worker's environment variables (it gets no others).

    Returns:
        One sentence for a FAIL line.
    """
    import os

    plain = dict(os.environ)
    problem = _cupy_runs(plain, None)
    if problem:
        return f"diagnosis: CuPy fails even in a plain process of the grader's Python: {problem}"
    findings = []
    problem = _cupy_runs(plain, memory_bytes)
    if problem:
        findings.append(f"under the worker's RLIMIT_AS of {memory_bytes / 1024**2:.0f} MiB: {problem}")
    problem = _cupy_runs(worker_env, None)
    if problem:
        shown = ", ".join(f"{key}={value!r}" for key, value in sorted(worker_env.items()) if key in WORKER_ENV_SHOWN)
        findings.append(
            f"with the worker's environment ({shown or 'none of ' + ', '.join(WORKER_ENV_SHOWN)}): {problem}"
        )
    if not findings:
        return (
            "diagnosis: CuPy works in a plain process, also under the worker's memory limit and with its "
            "environment: the cause lies in the sandbox's other walls (namespaces, uid, filesystem)"
        )
    return "diagnosis: CuPy works in a plain process but fails " + "; and ".join(findings)


def probe_check(submission: Path) -> Check:
    """Send a small CuPy array through the sandbox's worker to the submission's ``conv2d_fast``.

    This is what every 5.3 test does first; alone it takes seconds and, when it fails, says why
    (the worker's own stderr, and :func:`cupy_diagnosis`), so that a broken GPU path in the grader
    is not mistaken for a student's mistake.

    Args:
        submission: a ``weight_sharing.py`` whose ``conv2d_fast`` handles CuPy arrays.

    Returns:
        The verdict: values right, a CuPy array back, and the first call (CUDA's start-up
        included) within the call limit the 5.3 tests give it.
    """
    import numpy as np

    import autograder.grading
    from autograder.reference import load_reference
    from autograder.sandbox.client import Limits, OnDevice, Sandbox
    from autograder.submission import load_submission

    name = "sandbox-probe"
    limits = Limits()
    # What the grader lets a student's worker see under --gpu require, where it decides that.
    exposure = getattr(autograder.grading, "submission_exposure", None)
    options = {"exposure": exposure("require")} if exposure else {}
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    expected = load_reference().conv2d_layer(x, weight, padding=1)
    try:
        with Sandbox(load_submission(submission), ("conv2d_fast",), limits, **options) as box:
            try:
                box.load()
                first, second = (
                    box.call(
                        "conv2d_fast",
                        (OnDevice(x), OnDevice(weight)),
                        {"padding": 1},
                        argnames=("x", "weight"),
                        timeout=PROBE_TIMEOUT,
                    )
                    for _ in range(2)
                )
                times = (
                    f"first call {first.seconds:.2f} s (CUDA start-up included; a test's call may take "
                    f"{limits.call_timeout:g} s), second {1000 * second.seconds:.1f} ms; {box.isolation.mode} isolation"
                )
                if any(call.device != "cupy" for call in (first, second)):
                    problem = f"conv2d_fast got CuPy arrays but a NumPy array came back; {times}"
                elif not all(np.allclose(call.value, expected) for call in (first, second)):
                    problem = f"the values that came back are wrong; {times}"
                elif first.seconds > limits.call_timeout:
                    problem = f"the first CuPy call is too slow for the 5.3 tests; {times}"
                else:
                    return Check(name, True, f"CuPy in, CuPy out, values right; {times}")
            except Exception as error:  # a diagnosis: say what broke, whatever it was
                stderr = box.stderr_path.read_text(errors="replace") if box.stderr_path.is_file() else ""
                words = [line.strip() for line in stderr.splitlines() if line.strip()]
                tail = f"; the worker's last words: {words[-1]}" if words else ""
                problem = f"{type(error).__name__}: {_gist(str(error))}{tail}"
            # The worker's environment, as the sandbox builds it (a private method: this diagnoses
            # the sandbox itself, and must not drift from what the worker gets).
            shown = box.exposure if hasattr(box, "exposure") else None
            seen = (
                f"; the worker may import {', '.join(shown.distributions)} and sees devices "
                f"{', '.join(shown.devices) or 'none'}"
                if shown
                else ""
            )
            return Check(name, False, f"{problem}; {cupy_diagnosis(limits.memory_bytes, box._env())}{seen}")
    except Exception as error:  # the sandbox did not even start
        return Check(name, False, f"the sandbox did not start: {type(error).__name__}: {_gist(str(error))}")
