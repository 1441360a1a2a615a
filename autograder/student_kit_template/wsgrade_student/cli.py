"""``wsgrade check PATH [-k EXPR]`` (also ``wscheck PATH``): the self-check, as the course's grader words it.

Exit codes, as the instructor's ``wsgrade``: 0 when the check ran (whatever it found), 1 for a path
that is not a submission, 2 for a command the kit does not have.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from ._loading import SubmissionError
from .engine import check

__all__ = ["check_main", "main"]

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
_INSTRUCTOR_ONLY = (
    "wsgrade {command} is not part of the student kit, which runs the public tests only (`wsgrade check`). "
    "Studying on your own? Install the instructor package instead (the course repository's README, Quick start): "
    "it has `wsgrade grade` with the full hidden tests and `wsgrade experiment`."
)


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="weight_sharing.ipynb, weight_sharing.py, or a folder holding one")
    parser.add_argument("-k", dest="select", metavar="EXPR", help="only the tests whose id matches (e.g. test_part1)")
    parser.add_argument("--call-timeout", type=float, default=5.0, metavar="S", help="seconds one call may take")
    parser.add_argument("-q", "--quiet", action="store_true", help="print the table without the feedback")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")


def _run_check(args: argparse.Namespace) -> int:
    try:
        report = check(args.path, select=args.select, call_timeout=args.call_timeout)
    except (SubmissionError, OSError, ValueError) as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(report.text(show_feedback=not args.quiet))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report.to_dict(), handle, indent=2)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``wsgrade check PATH``; other commands of the instructor's ``wsgrade`` say where they are."""
    parser = argparse.ArgumentParser(prog="wsgrade", description="The weight-sharing problem set's self-check.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (student kit)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check_options(sub.add_parser("check", help="run the grader's public tests on your code, same feedback"))
    for command in ("grade", "experiment"):
        sub.add_parser(command, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command != "check":
        print(_INSTRUCTOR_ONLY.format(command=args.command), file=sys.stderr)
        return EXIT_USAGE
    return _run_check(args)


def check_main(argv: list[str] | None = None) -> int:
    """``wscheck PATH``: the same as ``wsgrade check PATH``."""
    parser = argparse.ArgumentParser(prog="wscheck", description="Run the grader's public tests on your code.")
    _add_check_options(parser)
    return _run_check(parser.parse_args(argv))
