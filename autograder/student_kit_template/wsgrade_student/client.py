"""Running the student's code: the grader's own worker, in a separate process of this Python.

The worker (a verbatim copy of the grader's) loads the submission exactly as the grader does
(each notebook cell on its own, the release's worked examples skipped, numpy and the standard
library only on ``sys.path``) and answers call requests on a pipe. Unlike the grader this is the
student's own code on the student's own machine: there is no sandbox, only a time limit per call.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._sandbox import WORKER, wire

__all__ = ["DoesNotLoad", "Reply", "Worker"]


class DoesNotLoad(Exception):
    """Running the submission's code failed; the message says why."""


@dataclass(frozen=True)
class Reply:
    """What one call gave.

    Attributes:
        kind: ``returned``, ``raised``, ``missing``, ``timeout`` or ``crashed``.
        value: the returned value (``returned``).
        error: the exception's record (``raised``): type, mro, message, traceback.
        output: what the call printed.
        mutated: the array arguments it modified in place.
        problem: why it timed out or crashed.
    """

    kind: str
    value: Any = None
    error: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    mutated: tuple[str, ...] = ()
    problem: str = ""


class Worker:
    """One submission's worker process, restarted after a time-out or a crash.

    Args:
        submission: the worker's submission record (kind, cells, filename, skip, labels).
        functions: the contract's function names.
        call_timeout: seconds one call may take.
        load_timeout: seconds loading the code may take.
    """

    def __init__(
        self, submission: dict[str, Any], functions: list[str], *, call_timeout: float, load_timeout: float = 60.0
    ) -> None:
        self.submission = submission
        self.functions = functions
        self.call_timeout = call_timeout
        self.load_timeout = load_timeout
        self.folder = tempfile.TemporaryDirectory(prefix="wsgrade-check-")
        self.process: subprocess.Popen[bytes] | None = None
        self.req_fd = self.resp_fd = -1
        self.defined: tuple[str, ...] = ()
        self.load_problem: str | None = None
        self.restarts = 0

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        self.folder.cleanup()

    def close(self) -> None:
        """End the worker process, if one runs."""
        if self.process is None:
            return
        for fd in (self.req_fd, self.resp_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):  # the process group: whatever the student's code started ends too
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def _spawn(self) -> None:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        config = {
            "req_fd": req_r,
            "resp_fd": resp_w,
            "submission": self.submission,
            "functions": self.functions,
            "output_limit": 4000,
            "gpu": False,
            "rlimits": {"RLIMIT_CORE": 0},
        }
        path = Path(self.folder.name) / "config.json"
        path.write_text(json.dumps(config))
        site = str(Path(np.__file__).resolve().parent.parent)  # numpy's folder: the worker sees nothing else
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER), str(path), site],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(req_r, resp_w),
            cwd=self.folder.name,
            start_new_session=True,
        )
        os.close(req_r)
        os.close(resp_w)
        self.req_fd, self.resp_fd = req_w, resp_r
        self.restarts += 1

    def load(self) -> tuple[tuple[str, ...], list[dict[str, Any]], str]:
        """Start the worker and run the submission's code.

        Returns:
            The contract functions it defines, the notebook cells that raised, what it printed.

        Raises:
            DoesNotLoad: when running the code raised, hung or crashed.
        """
        if self.load_problem is not None:
            raise DoesNotLoad(self.load_problem)
        self._spawn()
        deadline = time.monotonic() + self.load_timeout
        try:
            alive, _ = wire.read_message(self.resp_fd, deadline)
            if alive.get("alive") is not True:
                raise DoesNotLoad("the worker did not start")
            ready, _ = wire.read_message(self.resp_fd, deadline)
        except wire.WireTimeout:
            self.close()
            self.load_problem = (
                f"loading your code took more than {self.load_timeout:g} s (code at the top level of the file "
                "runs when it is loaded: move experiments into functions)"
            )
            raise DoesNotLoad(self.load_problem) from None
        except wire.WireError:
            self.close()
            self.load_problem = "the process running your code died while loading it"
            raise DoesNotLoad(self.load_problem) from None
        if ready.get("ok") is not True:
            self.close()
            error = ready.get("error") or {}
            self.load_problem = (
                f"running your file raised {str(error.get('type'))[:200]}: {str(error.get('message'))[:2000]}\n"
                f"{str(error.get('traceback', ''))[:4000]}"
            )
            raise DoesNotLoad(self.load_problem)
        self.defined = tuple(str(name) for name in ready.get("functions", ()))
        return self.defined, list(ready.get("cell_errors", [])), str(ready.get("output", ""))

    def call(self, function: str, request: dict[str, Any], frames: list[bytes], argnames: list[str]) -> Reply:
        """Call one function of the submission.

        Args:
            function: its name.
            request: the encoded ``args`` and ``kwargs`` (the grader's wire format).
            frames: the arrays they refer to.
            argnames: the contract's parameter names.

        Returns:
            The reply.

        Raises:
            DoesNotLoad: when the code cannot be loaded again after a time-out or crash.
        """
        if self.process is None:
            self.load()
        if function not in self.defined:
            return Reply("missing")
        header = {**request, "function": function, "argnames": argnames, "device": ""}
        deadline = time.monotonic() + self.call_timeout
        try:
            wire.write_message(self.req_fd, header, frames)
            reply, out_frames = wire.read_message(self.resp_fd, deadline)
        except wire.WireTimeout:
            self.close()
            return Reply(
                "timeout",
                problem=f"{function} did not return within {self.call_timeout:g} s (an endless loop, or far too slow?)",
            )
        except wire.WireError:
            self.close()
            return Reply("crashed", problem=f"the process running {function} died")
        output = str(reply.get("output", ""))
        if reply.get("ok") is not True:
            if reply.get("missing") is True:
                return Reply("missing")
            return Reply("raised", error=dict(reply.get("error") or {}), output=output)
        value = wire.decode(reply.get("result"), out_frames)
        mutated = tuple(str(name) for name in reply.get("mutated", []))
        return Reply("returned", value=value, output=output, mutated=mutated)
