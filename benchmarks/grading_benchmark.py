"""How long one grading takes: the correctness suite per submission, end to end through the CLI.

    .venv/bin/python -m benchmarks.grading_benchmark [--repeats 3] [--with-speed] [--worker-starts N]

Grades the reference, the stubs and the bundled examples with ``wsgrade grade PATH --no-speed``
in a fresh process each time (Python start-up, pytest collection, worker start and every hidden
test included) and prints the median wall time per submission. ``--with-speed`` also times one
full grading with the timing tests of Task 5.2. ``--worker-starts N`` first times N starts of a
sandboxed worker (spawn, handshake, loading a one-line module, one call, close) in each isolation
mode this machine offers: the fixed cost of every sandbox. The hidden tests' inputs are recorded
first (``wsgrade prepare``, timed: once per grader version and machine), so that every grading
timed replays them, as all but the first on a machine do. ``--breakdown`` grades the reference
once more inside this process and prints where the time went: the grader's imports, worker starts
and loading, pytest's collection, calls of student code (round trips included), hypothesis's
generation and bookkeeping (for the tests not replayed), and the rest of the tests' own work; then
the same warm grading with hypothesis drawing every input, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.release import RELEASE_DIR
from autograder.source import REPO_ROOT, SOLUTION_SOURCE, module_text

EXAMPLES = REPO_ROOT / "examples" / "submissions"


def _wall(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    score = next(
        (line for line in result.stdout.splitlines() if line.startswith("Score:")), result.stderr.strip()[-80:]
    )
    return time.perf_counter() - started, score.split("(")[0].strip()


def worker_starts(count: int) -> None:
    """Print the median time to start a worker, make one call and close it, per isolation mode."""
    from autograder.sandbox.client import Limits, Sandbox
    from autograder.sandbox.isolation import MODES, choose_isolation
    from autograder.submission import PreparedSubmission

    submission = PreparedSubmission("module", ("def ok(x):\n    return x\n",), "weight_sharing.py", "<bench>", "0")
    for mode in MODES[1:]:
        try:
            choose_isolation(mode)
        except ValueError:
            continue
        times = []
        for _ in range(count):
            started = time.perf_counter()
            with Sandbox(submission, ("ok",), Limits(isolation=mode)) as box:
                box.call("ok", (1,))
            times.append(time.perf_counter() - started)
        print(f"worker start + one call + close, {mode:16s} median {1000 * statistics.median(times):6.0f} ms")


class _Stopwatch:
    """Seconds spent inside wrapped functions (not re-entrant: the wrapped ones do not nest)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started
                self.counts[label] = self.counts.get(label, 0) + 1

        setattr(owner, name, timed)


def breakdown(reference: Path) -> None:
    """Grade the reference in this process and print where the wall time went."""
    import_started = time.perf_counter()
    import hypothesis.core
    import pytest

    from autograder import grading
    from autograder.sandbox.client import Sandbox

    imports = time.perf_counter() - import_started
    grading.grade(reference, performance=False)  # warm: the first grading also compiles the hidden tests
    watch = _Stopwatch()
    watch.wrap(Sandbox, "_start", "worker starts (spawn, handshake, load)")
    watch.wrap(Sandbox, "call", "calls of student code (round trips)")
    watch.wrap(hypothesis.core.StateForActualGivenExecution, "execute_once", "hypothesis examples (run)")
    watch.wrap(hypothesis.core.StateForActualGivenExecution, "run_engine", "hypothesis tests (whole)")
    collection: list[float] = []

    class Timer:
        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self) -> None:
            collection.append(time.perf_counter())

        @pytest.hookimpl(trylast=True)
        def pytest_collection_finish(self) -> None:
            collection.append(time.perf_counter())

    original = pytest.main

    def with_timer(args: list[str], plugins: list[object]) -> object:
        return original(args, plugins=[*plugins, Timer()])

    pytest.main = with_timer  # type: ignore[assignment]
    try:
        started, cpu = time.perf_counter(), time.process_time()
        report = grading.grade(reference, performance=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        pytest.main = original
    calls = watch.seconds.get("calls of student code (round trips)", 0.0)
    examples = watch.seconds.get("hypothesis examples (run)", 0.0)
    engine = watch.seconds.get("hypothesis tests (whole)", 0.0) - examples
    tests = sum(test.seconds for test in report.tests)
    rows = [
        ("grader imports (numpy, pytest, hypothesis, autograder)", imports),
        ("pytest collection", collection[1] - collection[0] if len(collection) == 2 else float("nan")),
        *[(label, seconds) for label, seconds in watch.seconds.items() if label.startswith("worker")],
        ("outside the tests (loading, pytest's session, the report)", wall - tests),
        ("calls of student code (round trips)", calls),
        ("hypothesis engine (outside the examples)", engine),
        ("the tests' own work (drawing inputs, references, checks)", tests - calls - engine),
    ]
    print(f"\nwhere one correctness grading of the reference goes ({wall:.2f} s wall, {cpu:.2f} s CPU here):")
    for label, seconds in rows:
        print(f"  {label:62s} {seconds:6.2f} s")
    print(f"  ({watch.counts.get('calls of student code (round trips)', 0)} calls, {len(report.tests)} tests)")
    started, cpu = time.perf_counter(), time.process_time()
    grading.grade(reference, performance=False, replay=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"the same grading with every input drawn by hypothesis (no replay): {wall:.2f} s wall, {cpu:.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-speed", action="store_true")
    parser.add_argument("--worker-starts", type=int, default=10, metavar="N", help="0 to leave this out")
    parser.add_argument("--breakdown", action="store_true", help="also print where one grading's time goes")
    args = parser.parse_args()
    if args.worker_starts:
        worker_starts(args.worker_starts)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference" / "weight_sharing.py"
        reference.parent.mkdir()
        reference.write_text(module_text(SOLUTION_SOURCE.read_text(), stubs=False))
        submissions = {"reference": reference, "stubs": RELEASE_DIR / "weight_sharing.py"}
        submissions |= {path.name: path for path in sorted(EXAMPLES.iterdir())}
        seconds, _ = _wall([sys.executable, "-m", "autograder", "prepare"])
        print(f"recording the hidden tests' inputs (wsgrade prepare; 0 s once done): {seconds:.2f} s")
        print(f"{'submission':32s} {'median s':>9s} {'min s':>7s}  score")
        for name, path in submissions.items():
            runs = [
                _wall([sys.executable, "-m", "autograder", "grade", str(path), "--no-speed", "-q"])
                for _ in range(args.repeats)
            ]
            times = [seconds for seconds, _ in runs]
            print(f"{name:32s} {statistics.median(times):9.2f} {min(times):7.2f}  {runs[0][1]}")
            sys.stdout.flush()
        if args.with_speed:
            seconds, score = _wall([sys.executable, "-m", "autograder", "grade", str(reference), "-q"])
            print(f"{'reference, with speed tests':32s} {seconds:9.2f} {seconds:7.2f}  {score}")
        if args.breakdown:
            breakdown(reference)


if __name__ == "__main__":
    main()
