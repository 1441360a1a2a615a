"""Hostile submissions: each earns nothing for what it cheats on, and the grader keeps working.

The submissions are the reference with one function replaced by an attack (or code added at the
top). Grading runs as in production: through the CLI or the library, with the strongest isolation
this machine allows (``full`` as root in CI; ``test_degraded_mode_is_reported`` covers the rest).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.grading import GradingReport, grade
from autograder.sandbox.client import Limits
from autograder.sandbox.isolation import choose_isolation
from autograder.source import REPO_ROOT, SOLUTION_SOURCE
from autograder.tasks import task_by_id
from tests.corpus import reference_source, reference_with

FULL = choose_isolation().mode == "full"
needs_full = pytest.mark.skipif(not FULL, reason="needs root and namespaces (CI runs as root)")
CONV2D_TESTS = "test_part1"


def _replace(function: str, code: str) -> str:
    return reference_with(function, code + "\n")


def _grade(tmp_path: Path, source: str, select: str = CONV2D_TESTS, **options: object) -> GradingReport:
    path = tmp_path / "weight_sharing.py"
    path.write_text(source)
    report = grade(path, select=select, performance=False, **options)
    assert not report.internal_errors, [t.output for t in report.internal_errors]
    return report


def _points(report: GradingReport, function: str) -> tuple[float, float]:
    tests = [t for t in report.tests if task_by_id(t.task_id).function == function]
    return sum(t.score for t in tests), sum(t.max_score for t in tests)


def _cheat_earns_nothing_and_the_rest_is_graded(report: GradingReport, cheater: str = "conv2d") -> None:
    earned, possible = _points(report, cheater)
    assert possible > 0 and earned == 0, f"{cheater} earned {earned}"
    earned, possible = _points(report, "conv2d_layer")
    assert possible > 0 and earned == pytest.approx(possible), "the honest function next to it must keep its points"


def test_exit_at_import(tmp_path: Path) -> None:
    report = _grade(tmp_path, "import sys\nsys.exit(0)\n" + reference_source())
    assert report.score == 0 and "could not be loaded" in report.output


def test_exit_mid_call(tmp_path: Path) -> None:
    attack = "def conv2d(image, kernel):\n    import os\n    os._exit(0)\n"
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


def test_replacing_numpy_and_builtins(tmp_path: Path) -> None:
    attack = """
import math
import numpy.testing
np.allclose = np.array_equal = np.array_equiv = math.isclose = lambda *a, **k: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None


def conv2d(image, kernel):
    return np.zeros((1, 1))
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


def test_objects_and_subclasses_that_claim_equality(tmp_path: Path) -> None:
    attack = """
class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)

    def __array_ufunc__(self, *args, **kwargs):
        return np.zeros(())


def conv2d(image, kernel):
    return np.zeros((image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)).view(AlwaysEqual)
"""
    report = _grade(tmp_path, _replace("conv2d", attack))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert any("ndarray subclass" in t.output for t in report.tests)


def test_looking_for_the_expected_answer_in_memory(tmp_path: Path) -> None:
    attack = """
def conv2d(image, kernel):
    import gc, inspect
    shape = (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    for frame in inspect.stack():
        for value in frame.frame.f_locals.values():
            if isinstance(value, np.ndarray) and value.shape == shape and value is not image:
                return value
    for obj in gc.get_objects():
        if isinstance(obj, np.ndarray) and obj.shape == shape and obj is not image:
            return obj
    return np.zeros(shape)
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


@needs_full
def test_reading_or_importing_the_reference_and_hidden_tests(tmp_path: Path) -> None:
    hidden_test = REPO_ROOT / "autograder" / "hidden_tests" / "test_part1_convolution.py"
    attack = f"""
def conv2d(image, kernel):
    for path in {str(SOLUTION_SOURCE)!r}, {str(hidden_test)!r}:
        try:
            print(open(path).read()[:3000])
        except OSError as problem:
            print("cannot read", path, problem)
    from autograder.reference import load_reference
    return load_reference().conv2d(image, kernel)
"""
    report = _grade(tmp_path, _replace("conv2d", attack))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    everything = report.output + "".join(t.output for t in report.tests)
    assert "BEGIN SOLUTION" not in everything and "graded(" not in everything
    assert "cannot read" in everything


@needs_full
def test_writing_into_the_grader_and_forging_results(tmp_path: Path) -> None:
    targets = [SOLUTION_SOURCE, REPO_ROOT / "autograder" / "tasks.py", tmp_path / "results.json"]
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in targets[:2]}
    attack = f"""
def conv2d(image, kernel):
    import os, time
    forged = '{{"score": 100, "tests": []}}'
    for path in {[str(t) for t in targets]!r}:
        try:
            with open(path, "a") as handle:
                handle.write(forged)
        except OSError as problem:
            print("cannot write", path, problem)
    if os.fork() == 0:  # a daemon that outlives the call and forges the results later
        os.setsid()
        if os.fork() == 0:
            time.sleep(3)
            with open({str(tmp_path / "results.json")!r}, "w") as handle:
                handle.write(forged)
        os._exit(0)
    return np.zeros((1, 1))
"""
    (tmp_path / "weight_sharing.py").write_text(_replace("conv2d", attack))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            "weight_sharing.py",
            "--json",
            "results.json",
            "-k",
            CONV2D_TESTS,
            "--no-speed",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    time.sleep(4)  # the daemon, had it survived, would have written by now
    import json

    data = json.loads((tmp_path / "results.json").read_text())
    conv2d = [t for t in data["tests"] if t["tags"][0] == "conv2d"]
    assert conv2d and all(t["score"] == 0 for t in conv2d)
    assert data["score"] < 100
    after = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in targets[:2]}
    assert before == after, "the grader's files must not change"


@needs_full
def test_threads_and_children_that_outlive_the_call(tmp_path: Path) -> None:
    marker = f"wsgrade-attack-{os.getpid()}"
    attack = f"""
def conv2d(image, kernel):
    import subprocess, threading, time
    subprocess.Popen(["sh", "-c", "exec -a {marker} sleep 1000"])
    threading.Thread(target=lambda: time.sleep(1000), daemon=False).start()
    return np.zeros((1, 1))
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert not leftovers, "a process started by student code survived the grading"


@needs_full
def test_network_connections_fail(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []

    def accept() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection, _ = server.accept()
                received.append(connection.recv(100))
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    attack = f"""
def conv2d(image, kernel):
    import socket
    with socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=2) as connection:
        connection.sendall(b"leaked")
    return np.zeros((1, 1))
"""
    report = _grade(tmp_path, _replace("conv2d", attack))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert not received
    server.close()


def test_memory_bombs_deep_recursion_and_output_floods(tmp_path: Path) -> None:
    attack = """
def conv2d(image, kernel):
    if image.shape[0] % 3 == 0:
        return bytearray(50 * 2**30)
    if image.shape[0] % 3 == 1:
        return conv2d(image, kernel)
    while True:
        print("flood " * 1000)
"""
    path = tmp_path / "weight_sharing.py"
    path.write_text(_replace("conv2d", attack))
    report = grade(path, select=CONV2D_TESTS, performance=False, limits=Limits(call_timeout=2.0, memory_bytes=1024**3))
    assert not report.internal_errors
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert max(len(t.output) for t in report.tests) < 7000


@pytest.mark.slow
def test_timing_tricks_gain_nothing(tmp_path: Path) -> None:
    attack = """
def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    import time
    real_sleep = time.sleep
    time.perf_counter = time.monotonic = time.time = lambda: 0.0  # the grader times in its own process
    out = conv2d_layer(x, weight, bias, stride=stride, padding=padding)
    if x.size > 100_000:
        real_sleep(2.5)  # slow in the timed calls
    return out
"""
    path = tmp_path / "weight_sharing.py"
    path.write_text(_replace("conv2d_fast", attack))
    report = grade(path, select="test_speed")
    speed = [t for t in report.tests if t.task_id == "5.2"]
    assert speed and all(t.score < t.max_score for t in speed)
    for test in speed:
        measured = re.search(r"your conv2d_fast took (\d+) ms", test.output)
        assert "took more than" in test.output or (measured and int(measured.group(1)) >= 2500), test.output


def test_degraded_mode_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "weight_sharing.py"
    path.write_text(reference_source())
    report = grade(path, select="test_conv2d_hand", performance=False, limits=Limits(isolation="process"))
    assert report.score == report.max_score
    assert "not available here: separate user, grader files hidden, no network" in report.output
    assert report.to_gradescope()["extra_data"]["sandbox"]["mode"] == "process"


@pytest.fixture
def _restore_modes() -> Iterator[None]:
    """uid mode hides the grader's folders by permission; give them their modes back afterwards."""
    folders = [REPO_ROOT / "autograder", SOLUTION_SOURCE.parent]
    modes = {folder: folder.stat().st_mode for folder in folders}
    yield
    for folder, mode in modes.items():
        folder.chmod(mode)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.usefixtures("_restore_modes")
def test_uid_mode_where_namespaces_are_refused(tmp_path: Path) -> None:
    """The Docker/Gradescope path: a dedicated uid, the reference hidden by permissions; it says what is missing."""
    attack = f"""
def conv2d(image, kernel):
    try:
        print(open({str(SOLUTION_SOURCE)!r}).read()[:3000])
    except OSError as problem:
        print("cannot read", problem)
    from autograder.reference import load_reference
    return load_reference().conv2d(image, kernel)
"""
    report = _grade(tmp_path, _replace("conv2d", attack), limits=Limits(isolation="uid"))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    everything = report.output + "".join(t.output for t in report.tests)
    assert "BEGIN SOLUTION" not in everything and "cannot read" in everything
    sandbox = report.to_gradescope()["extra_data"]["sandbox"]
    assert sandbox["mode"] == "uid" and set(sandbox["missing"]) == {"no network", "private /tmp"}
    assert "not available here: no network, private /tmp" in report.output
