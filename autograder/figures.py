"""Figures for instructors (matplotlib, drawn off-screen)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.batch import ClassReport

__all__ = ["score_histogram"]


def score_histogram(report: ClassReport, path: Path) -> None:
    """Draw the class's score histogram into a PNG.

    Args:
        report: the class report.
        path: the PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = report.histogram()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([low for low, _, _ in bins], [count for _, _, count in bins], width=10, align="edge", edgecolor="black")
    ax.set_xlabel("score (% of maximum)")
    ax.set_ylabel("students")
    ax.set_title(f"{len(report.scores)} students")
    ax.set_xlim(0, 100)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
