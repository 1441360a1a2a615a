"""Stability of the speed grade: the same submission, graded 10 times while every core is kept busy.

    .venv/bin/python -m benchmarks.speed_stability [--runs 10] [--busy N] [--no-load]

Grades Task 5.2 (the timing tests only) for two submissions: the reference's own conv2d_fast
handed in as a student's, and a slower, honest one (conv2d_layer's loop over kernel offsets used
as conv2d_fast). Meanwhile processes spin on every core (``--busy``, default: the machine's core
count). Prints the points and time ratio of every run and whether all runs agree.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import tempfile
import time
from pathlib import Path

from autograder.grading import grade
from tests.corpus import reference_source, reference_with

SLOWER_FAST = '''
def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    """An honest, vectorised but slower conv2d_fast: one einsum per kernel offset."""
    return conv2d_layer(x, weight, bias, stride=stride, padding=padding)
'''


def _spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def _submissions(folder: Path) -> dict[str, Path]:
    reference = folder / "reference" / "weight_sharing.py"
    reference.parent.mkdir()
    reference.write_text(reference_source())
    slower = folder / "slower" / "weight_sharing.py"
    slower.parent.mkdir()
    slower.write_text(reference_with("conv2d_fast", SLOWER_FAST))
    return {"reference as a student": reference, "one einsum per kernel offset": slower}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--busy", type=int, default=multiprocessing.cpu_count(), help="spinning processes")
    parser.add_argument("--no-load", action="store_true", help="do not keep any core busy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        submissions = _submissions(Path(tmp))
        spinners = []
        if not args.no_load:
            for _ in range(args.busy):
                spinner = multiprocessing.Process(target=_spin, args=(time.time() + 24 * 3600,), daemon=True)
                spinner.start()
                spinners.append(spinner)
            print(f"{args.busy} spinning processes keep {args.busy} cores busy")
        try:
            for label, path in submissions.items():
                outcomes = []
                print(f"\n{label}")
                for run in range(1, args.runs + 1):
                    started = time.perf_counter()
                    report = grade(path, select="test_speed")
                    speed = [t for t in report.tests if t.task_id == "5.2"]
                    points = tuple(round(t.score, 2) for t in speed)
                    ratios = [
                        match.group(1) if (match := re.search(r": ([\d.]+x), ", t.output)) else "?" for t in speed
                    ]
                    outcomes.append(points)
                    print(
                        f"  run {run:2d}: points {points} of {tuple(round(t.max_score, 2) for t in speed)}"
                        f"  ratios {ratios}  ({time.perf_counter() - started:.1f} s)"
                    )
                same = sum(outcome == outcomes[0] for outcome in outcomes)
                print(f"  same speed points in {same} of {len(outcomes)} runs")
        finally:
            for spinner in spinners:
                spinner.terminate()


if __name__ == "__main__":
    main()
