"""Where the grader's own failures go, so that "it has been reported" is true.

Every module logs to its own ``logging.getLogger(__name__)`` under the ``autograder`` logger. The
command line sends warnings and errors (an internal error's full traceback among them) to a log
file, :func:`default_log_file`, and prints where it is when something went wrong; ``grade-all``
also keeps one beside its gradebook. Each internal error gets a short id that appears both in the
student's feedback and in the log, so a student's report of "grader error 3f9c2a1b" finds its
traceback.

Nothing here goes to the student: tracebacks of the grader name hidden test files and their lines.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import os
import time
from pathlib import Path

__all__ = ["LOG_ENV", "default_log_file", "error_id", "log_to"]

#: Environment variable naming the log file (default: see :func:`default_log_file`).
LOG_ENV = "WSGRADE_LOG"

_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


def default_log_file() -> Path:
    """``$WSGRADE_LOG``, else ``$XDG_STATE_HOME/wsgrade/grader.log`` (``~/.local/state`` by default)."""
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "wsgrade" / "grader.log"


def log_to(path: Path, level: int = logging.WARNING, *, rotate: bool = True) -> logging.Handler | None:
    """Send the ``autograder`` loggers' records of ``level`` and above to ``path``.

    Args:
        path: the log file; its folder is made if needed.
        level: the lowest level written.
        rotate: keep the file to 3 x 1 MB (a user's log); without, it is appended to whole (a
            run's log, which several processes may write: appends of whole lines do not mix).

    Returns:
        The handler (to remove later), or None when the file cannot be written (a read-only home:
        grading goes on; the command line then names no log file).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            return None
    except OSError:
        return None
    # delay: the file is made only when something is logged (a clean grading leaves nothing)
    handler: logging.Handler = (
        logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=3, encoding="utf-8", delay=True)
        if rotate
        else logging.FileHandler(path, encoding="utf-8", delay=True)
    )
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger("autograder")
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, level))
    return handler


def error_id(*parts: str) -> str:
    """A short id for one internal error, unique across gradings (8 hex digits)."""
    text = "\0".join((*parts, str(time.time_ns()), str(os.getpid())))
    return hashlib.sha256(text.encode()).hexdigest()[:8]
