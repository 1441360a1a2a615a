"""A class of 100 realistic submissions graded with ``wsgrade grade-all --jobs 2``: how long it takes.

    .venv/bin/python -m benchmarks.class_benchmark [--students 100] [--jobs 2] [--with-speed]
    .venv/bin/python -m benchmarks.class_benchmark --cluster local:1 --cluster local:2

The class is generated: a third complete (the reference, and a notebook version), a third with
one classic mistake each (from the mutant corpus), the rest partial (stubs for the later parts),
plus a few zips and a few entries that are not submissions at all. Prints the wall time of the
whole run, the time per student and the class report's first lines. The hidden tests' inputs are
recorded first (``wsgrade prepare``, timed; nothing to do once done), as on any machine that has
graded before: the run measures gradings that replay them. ``--cold`` leaves that out, so that the
run's first grading records them (and the rest of the pool draws theirs meanwhile).

With ``--cluster`` (repeatable) the same class is graded on each Dask cluster in turn (``local:N``
or a scheduler's address) instead of the local pool; the throughput of each, its ratio to the
first, and the measured worker-seconds per submission turned into an estimate for 10,000
submissions on K workers.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from autograder.release import RELEASE_DIR, student_notebook
from tests.corpus import all_mutants, mutant_source, reference_source


def _partial(source: str, stubs: str, keep_parts: int) -> str:
    """The reference with every function of the parts after ``keep_parts`` replaced by its stub."""
    stub_functions = {n.name: n for n in ast.parse(stubs).body if isinstance(n, ast.FunctionDef)}
    stub_lines = stubs.splitlines(keepends=True)
    lines = source.splitlines(keepends=True)
    late = {
        "conv2d_fast": 5,
        "conv2d_backward": 6,
        "locally_connected2d_backward": 6,
        "shift2d": 4,
        "circular_conv2d": 4,
        "equivariance_error": 4,
        "is_shift_equivariant": 4,
    }
    nodes = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and late.get(n.name, 0) > keep_parts]
    for node in sorted(nodes, key=lambda n: -n.lineno):
        stub = stub_functions[node.name]
        replacement = "".join(stub_lines[stub.lineno - 1 : stub.end_lineno])
        lines[node.lineno - 1 : node.end_lineno] = [replacement]
    return "".join(lines)


def make_class(folder: Path, students: int) -> None:
    """Write ``students`` entries into ``folder``."""
    reference, stubs = reference_source(), (RELEASE_DIR / "weight_sharing.py").read_text()
    mutants = all_mutants()
    notebook = student_notebook()
    for number in range(students):
        name = f"student{number:03d}"
        kind = number % 10
        if kind in (0, 1, 2):
            (folder / f"{name}.py").write_text(reference)
        elif kind == 3:
            cells = [
                {
                    "cell_type": "code",
                    "id": "c0",
                    "metadata": {},
                    "outputs": [],
                    "execution_count": None,
                    "source": reference,
                }
            ]
            cells += [c for c in json.loads(json.dumps(notebook))["cells"] if c["cell_type"] == "markdown"][:5]
            (folder / f"{name}.ipynb").write_text(json.dumps({**json.loads(json.dumps(notebook)), "cells": cells}))
        elif kind in (4, 5, 6):
            (folder / f"{name}.py").write_text(mutant_source(mutants[(number * 7) % len(mutants)]))
        elif kind in (7, 8):
            (folder / f"{name}.py").write_text(_partial(reference, stubs, keep_parts=3 + number % 3))
        elif number % 20 == 9:
            with zipfile.ZipFile(folder / f"{name}.zip", "w") as archive:
                archive.writestr(f"{name}/weight_sharing.py", mutant_source(mutants[number % len(mutants)]))
        else:
            (folder / f"{name}.ipynb").write_text("not a notebook")


def _grade(submissions: Path, out: Path, how: list[str], with_speed: bool) -> float:
    """Run ``wsgrade grade-all`` once; print its summary line; return its wall time."""
    command = [sys.executable, "-m", "autograder", "grade-all", str(submissions), "--out", str(out), "-q", *how]
    if not with_speed:
        command.append("--no-speed")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    print(result.stdout.strip().splitlines()[-2] if result.returncode == 0 else result.stderr[-2000:])
    return seconds


def _workers(cluster: str) -> int | None:
    count = cluster.removeprefix("local:")
    return int(count) if cluster.startswith("local:") and count.isdigit() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--with-speed", action="store_true", help="include the timing tests (Task 5.2)")
    parser.add_argument("--cold", action="store_true", help="do not record the hidden tests' inputs first")
    parser.add_argument(
        "--cluster", action="append", metavar="ADDRESS", help="grade on this Dask cluster (local:N or an address)"
    )
    args = parser.parse_args()
    speed = "" if args.with_speed else ", --no-speed"
    with tempfile.TemporaryDirectory() as tmp:
        submissions = Path(tmp) / "submissions"
        submissions.mkdir()
        make_class(submissions, args.students)
        if not args.cold:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "autograder", "prepare"], capture_output=True, check=True)
            seconds = time.perf_counter() - started
            print(f"recording the hidden tests' inputs (wsgrade prepare; 0 s once done): {seconds:.1f} s")
        if not args.cluster:
            seconds = _grade(submissions, Path(tmp) / "out", ["--jobs", str(args.jobs)], args.with_speed)
            print(
                f"{args.students} students, --jobs {args.jobs}{speed}: "
                f"{seconds:.1f} s wall, {seconds / args.students:.2f} s per student"
            )
            report = subprocess.run(
                [sys.executable, "-m", "autograder", "report", str(Path(tmp) / "out")],
                capture_output=True,
                text=True,
                check=False,
            )
            print("\n".join(report.stdout.splitlines()[:4]))
            return
        first: float | None = None
        for number, cluster in enumerate(args.cluster):
            seconds = _grade(submissions, Path(tmp) / f"out{number}", ["--cluster", cluster], args.with_speed)
            throughput = 60 * args.students / seconds
            first = first or throughput
            line = f"--cluster {cluster}{speed}: {seconds:.1f} s wall, {throughput:.1f} submissions/min"
            line += f", {throughput / first:.2f}x the first"
            workers = _workers(cluster)
            if workers:
                cost = seconds * workers / args.students  # worker-seconds per submission, start-up included
                estimate = ", ".join(f"{k} workers {10_000 * cost / k / 3600:.1f} h" for k in (1, 16, 64, 256))
                line += f"; {cost:.2f} worker-s per submission -> 10,000 submissions: {estimate}"
            print(line)


if __name__ == "__main__":
    main()
