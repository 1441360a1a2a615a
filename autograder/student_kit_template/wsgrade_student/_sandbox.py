"""In this repository: the grader's sandbox worker and wire format (copied verbatim into the exported kit)."""

from __future__ import annotations

from pathlib import Path

from autograder.sandbox import wire

__all__ = ["WORKER", "wire"]

#: The grader's sandbox worker.
WORKER = Path(wire.__file__).resolve().parent / "worker.py"
