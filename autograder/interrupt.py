"""SIGTERM unwinds like Ctrl-C, so that every sandbox is closed on the way out.

A grading machine stops a grader with SIGTERM (a time-out, ``kill``); Python's default would end
the process at once and leave workers and scratch folders behind. pytest treats KeyboardInterrupt
as "stop the session" and tears its fixtures (the sandboxes among them) down;
:func:`autograder.grading.grade_prepared` then raises it again, and the command line exits 143.
"""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["stop_on_sigterm"]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in the main thread.

    Returns:
        The previous handler, for ``signal.signal`` to put back.
    """
    return signal.signal(signal.SIGTERM, _raise_interrupt)
