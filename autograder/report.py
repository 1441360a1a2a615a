"""Rendering a grading report: the terminal table, Gradescope's results.json, Markdown feedback.

This is the last stage of grading and, with loading, the only one that touches files.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.files import write_atomic
from autograder.grading import GradingReport
from autograder.tasks import PARTS, task_by_id

__all__ = ["feedback_markdown", "print_report", "write_json_atomic", "write_results_json", "write_text_atomic"]

_STATUS_STYLE = {"passed": "green", "failed": "red", "skipped": "yellow"}


def print_report(report: GradingReport, console: Console | None = None, *, show_feedback: bool = True) -> None:
    """Print a table per part (test, points, status), then the feedback of failed tests.

    Args:
        report: the report.
        console: where to print (default: standard output).
        show_feedback: print each failure's feedback below the tables.
    """
    console = console or Console()
    title = "Self-check (public tests only)" if report.mode == "check" else "Grading report"
    console.print(Text.assemble((title, "bold"), " for ", report.origin))
    if report.output:
        console.print(Text(report.output), style="dim")
    by_part: dict[int, list] = {}
    for test in report.tests:
        by_part.setdefault(task_by_id(test.task_id).part, []).append(test)
    graded = report.mode == "grade"
    for part, tests in sorted(by_part.items()):
        if graded:
            earned, possible = report.part_scores()[part]
            summary = f"{earned:g} of {possible:g} points"
        else:  # the self-check awards no points: count the passing tests
            summary = f"{sum(t.status == 'passed' for t in tests)} of {len(tests)} public tests pass"
        console.print(Text(f"Part {part}: {PARTS[part]} ({summary})", style="bold"))  # as wide as the line
        table = Table(expand=False)
        table.add_column("test")
        if graded:
            table.add_column("points", justify="right")
        table.add_column("status")
        for test in tests:
            points = [f"{test.score:.2f}/{test.max_score:.2f}"] if graded else []
            # Names are plain text: a test id like "[cifar-first-layer]" is not Rich markup.
            table.add_row(Text(test.name), *points, Text(test.status, style=_STATUS_STYLE.get(test.status, "")))
        console.print(table)
    feedback = report.feedback()
    if show_feedback and feedback:
        console.rule("Feedback")
        for title, text in feedback:
            console.print(Text(title, style="bold"))
            console.print(Text(text))
            console.print()
    if report.mode == "grade":
        console.print(
            f"[bold]Score: {report.score:.2f} / {report.max_score:.2f}[/bold]   ({report.execution_time:.1f} s)"
        )
    else:
        passed = sum(test.status == "passed" for test in report.tests)
        console.print(
            f"[bold]{passed} of {len(report.tests)} public tests pass[/bold]   ({report.execution_time:.1f} s)"
        )
    if report.internal_errors:
        console.print(f"[red]{len(report.internal_errors)} test(s) hit an internal grader error (see above).[/red]")


def write_text_atomic(text: str, path: Path) -> None:
    """Write a file so that readers see the old file or the new one, never half of one.

    Args:
        text: the content.
        path: the destination.
    """
    write_atomic(path, text)


def write_json_atomic(data: object, path: Path) -> None:
    """Write JSON atomically (see :func:`write_text_atomic`).

    Args:
        data: JSON-able data.
        path: the destination.
    """
    write_text_atomic(json.dumps(data, indent=2) + "\n", path)


def write_results_json(report: GradingReport, path: Path) -> None:
    """Write Gradescope's ``results.json`` atomically.

    Args:
        report: the report.
        path: the destination.
    """
    write_json_atomic(report.to_gradescope(), path)


def feedback_markdown(report: GradingReport) -> str:
    """The report as Markdown, for a student's feedback file.

    Args:
        report: the report.

    Returns:
        Markdown text.
    """
    lines = [f"# Feedback: {report.score:.2f} / {report.max_score:.2f}", ""]
    if report.output:
        lines += ["```", report.output, "```", ""]
    for part, (earned, possible) in report.part_scores().items():
        lines += [
            f"## Part {part}: {PARTS[part]} ({earned:g} of {possible:g} points)",
            "",
            "| test | points | status |",
            "|---|---|---|",
        ]
        for test in (t for t in report.tests if task_by_id(t.task_id).part == part):
            lines.append(f"| {test.name} | {test.score:.2f}/{test.max_score:.2f} | {test.status} |")
        lines.append("")
    feedback = report.feedback()
    if feedback:
        lines += ["## What to fix first", ""]
        for title, text in feedback:
            lines += [f"**{title}**", "", "```", text, "```", ""]
    return "\n".join(lines)
