"""``wsgrade``: the command line. It only parses, calls the library, prints and sets the exit code.

Exit codes: 0 the job completed (whatever the score); 1 bad input (not a submission, a drifted
release); 2 bad usage; 3 the grader itself failed (an internal error, reported in results.json too).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autograder import __version__

if TYPE_CHECKING:
    from autograder.sandbox.client import Limits

__all__ = ["main"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_GRADER_ERROR = 0, 1, 2, 3
EXIT_INTERRUPTED = 128 + 15

_log = logging.getLogger(__name__)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "submissions"


def _cmd_release(args: argparse.Namespace) -> int:
    from autograder.release import RELEASE_DIR, release_drift, write_release

    out = Path(args.out) if args.out else RELEASE_DIR
    if args.check:
        problems = release_drift(out)
        for line in problems:
            print(f"release drift: {out / line}", file=sys.stderr)
        if problems:
            print("run `wsgrade release` to regenerate it from solutions/weight_sharing.py", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"{out} is up to date with solutions/weight_sharing.py")
        return EXIT_OK
    for path in write_release(out):
        print(f"wrote {path}")
    return EXIT_OK


def _limits(args: argparse.Namespace) -> Limits:
    from autograder.sandbox.client import Limits

    defaults = Limits()
    return Limits(
        call_timeout=args.call_timeout if args.call_timeout is not None else defaults.call_timeout,
        memory_bytes=int(args.memory_mb * 1024**2) if args.memory_mb is not None else defaults.memory_bytes,
        budget_seconds=args.budget if args.budget is not None else defaults.budget_seconds,
        isolation=args.isolation,
    )


def _cmd_grade(args: argparse.Namespace) -> int:
    from rich.console import Console

    from autograder.grading import GpuUnavailable, UnisolatedRefused, grade, require_file_protection
    from autograder.report import print_report, write_results_json
    from autograder.submission import SubmissionError

    console = Console(stderr=False)
    try:
        if getattr(args, "require_isolation", False):
            require_file_protection(_limits(args), allow_unisolated=False, where="wsgrade grade --require-isolation")
        report = grade(
            args.path,
            public_only=args.command == "check",
            limits=_limits(args),
            select=args.select,
            gpu=args.gpu,
            performance=not args.no_speed,
        )
    except SubmissionError as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        if getattr(args, "json", None):
            from autograder.report import write_json_atomic

            write_json_atomic({"score": 0, "output": f"Not graded: {problem}", "tests": []}, Path(args.json))
        return EXIT_BAD_INPUT
    except (GpuUnavailable, UnisolatedRefused) as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_GRADER_ERROR
    except Exception as problem:  # the grader itself failed: say so, never blame the student
        _log.exception("grading %s failed", args.path)
        print(
            f"wsgrade: the grader failed ({type(problem).__name__}: {problem}); please report this{_see_log()}",
            file=sys.stderr,
        )
        return EXIT_GRADER_ERROR
    print_report(report, console, show_feedback=not args.quiet)
    if getattr(args, "json", None):
        write_results_json(report, Path(args.json))
        console.print(f"wrote {args.json}")
    if report.internal_errors:
        count = len(report.internal_errors)
        print(f"wsgrade: {count} test(s) hit an internal grader error{_see_log()}", file=sys.stderr)
    return EXIT_GRADER_ERROR if report.internal_errors else EXIT_OK


#: Where this run's warnings and tracebacks go (None where no log file could be opened).
_LOG_FILE: Path | None = None


def _see_log() -> str:
    return f"; the traceback is in {_LOG_FILE}" if _LOG_FILE is not None else ""


def _cmd_grade_all(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autograder.batch import GRADER_LOG, BatchProgress, OutputBusy, OutputUnusable, class_report, grade_all
    from autograder.cluster import ClusterUnavailable
    from autograder.grading import GpuUnavailable, UnisolatedRefused

    scores: list[float] = []
    progress = Progress(
        TextColumn("[bold]grading"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    bar = progress.add_task("", total=None)

    def on_progress(state: BatchProgress) -> None:
        if state.last is not None and state.last.status == "graded":
            scores.append(100 * state.last.score / state.last.max_score if state.last.max_score else 0.0)
        mean = f" · mean {sum(scores) / len(scores):.0f}%" if scores else ""
        retried = f" · retried {state.retried}" if state.retried else ""
        progress.update(
            bar,
            completed=state.done,
            total=state.total,
            description=f"running {state.running} · failed {state.failed} · workers {state.workers}{retried}{mean}",
        )

    with nullcontext() if args.quiet else progress:
        try:
            summary = grade_all(
                Path(args.submissions),
                Path(args.out),
                jobs=args.jobs,
                cluster=args.cluster,
                regrade=args.regrade,
                performance=not args.no_speed,
                limits=_limits(args),
                gpu=args.gpu,
                select=args.select,
                allow_unisolated=args.allow_unisolated,
                on_progress=None if args.quiet else on_progress,
            )
        except (ValueError, UnisolatedRefused, ClusterUnavailable, OutputBusy, OutputUnusable) as problem:
            print(f"wsgrade: {problem}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except GpuUnavailable as problem:
            print(f"wsgrade: {problem}", file=sys.stderr)
            return EXIT_GRADER_ERROR
    errors = f", grader errors {len(summary.grader_errors)}" if summary.grader_errors else ""
    print(
        f"graded {len(summary.graded)}, unchanged and skipped {len(summary.skipped)}{errors}, "
        f"in {summary.seconds:.1f} s"
    )
    print(f"wrote {Path(args.out) / 'grades.csv'} and {Path(args.out) / 'gradebook.sqlite'}")
    if summary.grader_errors:
        print(f"the grader's own errors, with their tracebacks, are in {Path(args.out) / GRADER_LOG}")
    if args.command == "demo":
        print()
        print(class_report(Path(args.out)).text())
    return EXIT_OK


def _cmd_prepare(args: argparse.Namespace) -> int:
    from autograder.grading import prepare_inputs
    from autograder.replay import cache_dir

    started = time.perf_counter()
    recording = prepare_inputs()
    examples = sum(len(streams) for streams in recording.examples.values())
    print(
        f"the inputs of {len(recording.examples)} hypothesis tests ({examples} examples) are recorded in "
        f"{cache_dir()} ({time.perf_counter() - started:.1f} s); every grading with this grader replays them"
    )
    if recording.unrecorded:
        print("not recorded (hypothesis draws them at each grading): " + ", ".join(recording.unrecorded))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from autograder.batch import OutputUnusable, class_report

    try:
        report = class_report(Path(args.out_dir))
    except (FileNotFoundError, OutputUnusable) as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(report.text())
    if args.png:
        from autograder.figures import score_histogram

        try:
            score_histogram(report, Path(args.png))
        except ModuleNotFoundError as problem:
            if (problem.name or "").split(".")[0] != "matplotlib":
                raise
            return _missing_extra(problem, "wsgrade report --png", "class")
        print(f"wrote {args.png}")
    return EXIT_OK


def _cmd_similarity(args: argparse.Namespace) -> int:
    from rich.console import Console

    from autograder.report import write_json_atomic
    from autograder.similarity import default_html_path, print_similarity, similarity_report

    source = Path(args.source)
    html = Path(args.html) if args.html else default_html_path(source)
    try:
        report = similarity_report(source, html=html, top=args.top, noise=args.noise, max_sharing=args.max_sharing)
    except (ValueError, ImportError, OSError) as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console = Console()
    print_similarity(report, console, top=args.top)
    console.print(f"wrote {html}")
    if args.json:
        write_json_atomic(report.to_dict(), Path(args.json))
        console.print(f"wrote {args.json}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    import importlib
    import inspect

    from autograder.integrations import PLATFORMS

    try:
        module = importlib.import_module(
            "autograder.student_kit" if args.platform == "student" else PLATFORMS[args.platform]
        )
    except ImportError as problem:
        print(
            f"wsgrade: exporting to {args.platform} needs its tools ({problem.name} is missing); "
            'install them with: pip install -e ".[platforms]"',
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    options = {"overwrite": True} if args.force and "overwrite" in inspect.signature(module.export).parameters else {}
    try:
        written = module.export(Path(args.dest), **options)
    except (ValueError, FileExistsError) as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _missing_extra(problem: ModuleNotFoundError, command: str, extra: str) -> int:
    """Say which extra a command needs when one of its packages is not installed."""
    print(
        f"wsgrade: {command} needs {problem.name or 'a package'} from the [{extra}] extra, which is not installed: "
        f"pip install 'weight-sharing-autograder[{extra}]' (in a checkout: pip install -e '.[{extra}]')",
        file=sys.stderr,
    )
    return EXIT_BAD_INPUT


def _cmd_experiment(args: argparse.Namespace) -> int:
    try:
        from autograder.experiment import run_experiment
    except ModuleNotFoundError as problem:
        if (problem.name or "").split(".")[0] not in ("sklearn", "matplotlib"):
            raise
        return _missing_extra(problem, "wsgrade experiment", "experiment")
    try:
        result = run_experiment(
            submission=Path(args.submission) if args.submission else None,
            out_dir=Path(args.out),
            quick=args.quick,
            seed=args.seed,
        )
    except ValueError as problem:
        print(f"wsgrade: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(result.text())
    return EXIT_OK


def _add_limit_options(parser: argparse.ArgumentParser, quiet: str = "print the tables without the feedback") -> None:
    parser.add_argument("--call-timeout", type=float, metavar="S", help="seconds one call may take (default 5)")
    parser.add_argument("--memory-mb", type=float, metavar="MB", help="memory limit of student code (default 2048)")
    parser.add_argument(
        "--budget", type=float, metavar="S", help="wall-clock budget of the whole grading (default 600)"
    )
    parser.add_argument(
        "-k", dest="select", metavar="EXPR", help="run only the tests matching this pytest -k expression"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet)
    parser.add_argument(
        "--gpu",
        choices=("auto", "require", "off"),
        default="auto",
        help="GPU tests: auto runs them where CuPy sees a CUDA device, require fails without one, off skips them",
    )
    parser.add_argument("--no-speed", action="store_true", help="leave out the timing tests (Task 5.2/5.3)")
    parser.add_argument(
        "--isolation",
        choices=("auto", "full", "uid", "user-namespaces", "process"),
        default="auto",
        help="how student code is isolated (default: the strongest this machine allows; see README, Security)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    parser = argparse.ArgumentParser(prog="wsgrade", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    release = sub.add_parser("release", help="build the student release from solutions/weight_sharing.py")
    release.add_argument("--out", help="release folder (default: assignments/weight_sharing)")
    release.add_argument("--check", action="store_true", help="fail if the release differs from a fresh build")
    release.set_defaults(func=_cmd_release)

    grade = sub.add_parser("grade", help="grade a submission with the hidden tests (sandboxed)")
    grade.add_argument("path", help="weight_sharing.py, weight_sharing.ipynb, a folder holding one, or a .zip")
    grade.add_argument("--json", metavar="FILE", help="write Gradescope's results.json here")
    grade.add_argument(
        "--require-isolation",
        action="store_true",
        help="refuse to grade where student code's file access cannot be restricted (platform scripts use this)",
    )
    _add_limit_options(grade)
    grade.set_defaults(func=_cmd_grade)

    prepare = sub.add_parser(
        "prepare",
        help="record the hidden tests' inputs now (a few seconds, once per grader version); the first grading "
        "does it otherwise. Where a grading image is built (Gradescope's setup.sh), run this there",
    )
    prepare.set_defaults(func=_cmd_prepare)

    check = sub.add_parser("check", help="self-check: the public tests only, same feedback, a few seconds")
    check.add_argument("path", help="weight_sharing.py, weight_sharing.ipynb, a folder holding one, or a .zip")
    _add_limit_options(check)
    check.set_defaults(func=_cmd_grade)

    batch = sub.add_parser("grade-all", help="grade a folder with one entry per student into a gradebook")
    batch.add_argument("submissions", help="folder: each entry (file, folder or zip) is one student, named by it")
    batch.add_argument("--out", required=True, help="output folder (results, feedback, grades.csv, gradebook.sqlite)")
    batch.add_argument("--jobs", type=int, default=1, help="students graded at once (default 1)")
    batch.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="grade on Dask instead of --jobs: a scheduler's address (tcp://host:8786), or local:N for a new local "
        'cluster of N worker processes (needs pip install -e ".[cluster]"; see README, Grading on a cluster)',
    )
    batch.add_argument("--regrade", action="store_true", help="regrade students whose submission did not change")
    batch.add_argument(
        "--allow-unisolated",
        action="store_true",
        help="grade even where student code's file access cannot be restricted (process isolation; see README)",
    )
    _add_limit_options(batch, quiet="no progress bar: print only the summary at the end")
    batch.set_defaults(func=_cmd_grade_all)

    report = sub.add_parser("report", help="class overview of a grade-all output folder")
    report.add_argument("out_dir", help="the --out folder of grade-all")
    report.add_argument("--png", metavar="FILE", help="also draw the score histogram into a PNG")
    report.set_defaults(func=_cmd_report)

    from autograder.similarity import DEFAULT_MAX_SHARING, DEFAULT_NOISE, DEFAULT_TOP

    similarity = sub.add_parser(
        "similarity", help="copy check: the most similar pairs of students' code, starter code ignored (copydetect)"
    )
    similarity.add_argument(
        "source", help="the --out folder of grade-all, or the submissions folder (one entry per student)"
    )
    similarity.add_argument(
        "--html", metavar="FILE", help="the HTML page (default: OUT/similarity.html, or ./similarity.html)"
    )
    similarity.add_argument("--json", metavar="FILE", help="also write every pair as JSON")
    similarity.add_argument("--top", type=int, default=DEFAULT_TOP, help=f"pairs listed (default {DEFAULT_TOP})")
    similarity.add_argument(
        "--noise",
        type=int,
        default=DEFAULT_NOISE,
        help=f"shortest match counted, in filtered characters (default {DEFAULT_NOISE})",
    )
    similarity.add_argument(
        "--max-sharing",
        type=int,
        default=DEFAULT_MAX_SHARING,
        metavar="N",
        help=f"ignore code found in more than N students, as MOSS's -m does (default {DEFAULT_MAX_SHARING})",
    )
    similarity.set_defaults(func=_cmd_similarity)

    export = sub.add_parser(
        "export", help="write the problem set for nbgrader, otter-grader or Gradescope, or the student kit"
    )
    export.add_argument("platform", choices=("nbgrader", "otter", "gradescope", "student"))
    export.add_argument(
        "dest",
        help="nbgrader: a course folder; otter: a folder; gradescope: the autograder .zip to write; "
        "student: a folder for the release and the self-check wheel (no reference, no hidden tests)",
    )
    export.add_argument("--force", action="store_true", help="replace what an earlier export wrote")
    export.set_defaults(func=_cmd_export)

    experiment = sub.add_parser(
        "experiment", help="train conv, locally-connected and dense nets on digits: why weight sharing generalises"
    )
    experiment.add_argument(
        "--submission", help="use your own layers from this weight_sharing.py/.ipynb where implemented"
    )
    experiment.add_argument(
        "--out", default="out/experiment", help="folder for the figures and table (default out/experiment)"
    )
    experiment.add_argument("--quick", action="store_true", help="a smaller, faster configuration")
    experiment.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    experiment.set_defaults(func=_cmd_experiment)

    demo = sub.add_parser("demo", help="grade the bundled example submissions (the main job of the Quick start)")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.add_argument("--jobs", type=int, default=2, help="students graded at once (default 2)")
    _add_limit_options(demo, quiet="no progress bar: print only the summary and the class report")
    # the bundled examples are our own code: the demo runs wherever the grader does, even unprotected
    demo.set_defaults(func=_cmd_grade_all, submissions=str(EXAMPLES), regrade=True, allow_unisolated=True, cluster=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``wsgrade``.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    from autograder.diagnostics import default_log_file, log_to
    from autograder.interrupt import stop_on_sigterm

    args = build_parser().parse_args(argv)
    global _LOG_FILE
    _LOG_FILE = default_log_file() if log_to(default_log_file()) is not None else None
    previous = stop_on_sigterm()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("wsgrade: interrupted; every sandbox was stopped and nothing more was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
