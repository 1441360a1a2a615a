"""How long one grading takes: the correctness suite per submission, end to end through the CLI.

    .venv/bin/python -m benchmarks.grading_benchmark [--repeats 3] [--with-speed] [--worker-starts N]

Grades the reference, the stubs and the bundled examples with ``wsgrade grade PATH --no-speed``
in a fresh process each time (Python start-up, pytest collection, worker start and every hidden
test included) and prints the median wall time per submission. ``--with-speed`` also times one
full grading with the timing tests of Task 5.2. ``--worker-starts N`` first times N starts of a
sandboxed worker (spawn, handshake, loading a one-line module, one call, close) in each isolation
mode this machine offers: the fixed cost of every sandbox.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--with-speed", action="store_true")
    parser.add_argument("--worker-starts", type=int, default=10, metavar="N", help="0 to leave this out")
    args = parser.parse_args()
    if args.worker_starts:
        worker_starts(args.worker_starts)
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference" / "weight_sharing.py"
        reference.parent.mkdir()
        reference.write_text(module_text(SOLUTION_SOURCE.read_text(), stubs=False))
        submissions = {"reference": reference, "stubs": RELEASE_DIR / "weight_sharing.py"}
        submissions |= {path.name: path for path in sorted(EXAMPLES.iterdir())}
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


if __name__ == "__main__":
    main()
