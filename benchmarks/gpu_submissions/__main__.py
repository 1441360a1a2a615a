"""``python -m benchmarks.gpu_submissions``: the command line that ``benchmarks/gpu_check.sh`` calls.

It only parses, calls :mod:`benchmarks.gpu_submissions`, prints one line per verdict and exits 0
when every verdict passed, 1 otherwise (2 for bad usage, from argparse).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.gpu_submissions import (
    Check,
    benchmark_checks,
    grading_check,
    junit_check,
    probe_check,
    write_submissions,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_submissions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write DIR/<name>/weight_sharing.py for each submission; print 'name path'")
    write.add_argument("folder", type=Path)
    probe = sub.add_parser("probe", help="a CuPy array through the sandbox's worker and back")
    probe.add_argument("submission", type=Path)
    for command, what in (
        ("grading", "wsgrade's results.json"),
        ("junit", "pytest's JUnit XML"),
        ("benchmark", "the benchmark's JSON"),
    ):
        judged = sub.add_parser(command, help=f"judge {what}")
        if command == "grading":
            judged.add_argument("name", help="the submission's name")
        judged.add_argument("results", type=Path, help=what)
        judged.add_argument("--exit-code", type=int, required=True, help="the program's exit status")
        judged.add_argument("--log", type=Path, help="what it printed (quoted when it wrote no results)")
        if command == "grading":
            judged.add_argument("--gpu-off", action="store_true", help="it ran with --gpu off: 5.3 must be skipped")
        if command == "junit":
            judged.add_argument("--expect", type=int, default=2, help="tests that must pass (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every verdict passed, else 1.
    """
    args = _parser().parse_args(argv)
    if args.command == "write":
        for name, path in write_submissions(args.folder).items():
            print(name, path)
        return 0
    checks: list[Check]
    if args.command == "probe":
        checks = [probe_check(args.submission)]
    elif args.command == "grading":
        checks = [grading_check(args.name, args.results, exit_code=args.exit_code, log=args.log, gpu=not args.gpu_off)]
    elif args.command == "junit":
        checks = [
            junit_check("hidden-5.3-tests", args.results, exit_code=args.exit_code, log=args.log, expect=args.expect)
        ]
    else:
        checks = benchmark_checks(args.results, exit_code=args.exit_code, log=args.log)
    for check in checks:
        print(check.line())
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
