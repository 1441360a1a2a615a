"""The worker: the only process that runs student code.

The grader starts it as ``python -I -S worker.py CONFIG SITE...`` from its own folder, beside
copies of :mod:`wire` and :mod:`layers`, in a root where the grader's package, the reference and
the hidden tests do not exist (see :mod:`autograder.sandbox.isolation`). ``-I -S``: no
environment variables, no user or system site-packages; the only third-party folders on
``sys.path`` are the ``SITE`` folders with the allowed packages (numpy). It loads the submission,
then answers call requests on a pipe until the pipe closes. Everything it sends back is plain
data (see :mod:`wire`); the grader treats all of it as untrusted.
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

if __name__ == "__main__":  # the worker process: its own folder and the allowed packages, nothing else
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), *sys.argv[2:]]

import numpy as np

try:  # imported by the grader (for tests of this module)
    from autograder.sandbox import layers, wire
except ImportError:  # the worker's own root: the copies beside this file
    import layers  # type: ignore[no-redef]
    import wire  # type: ignore[no-redef]

__all__ = ["main"]


class _BoundedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output cut]"
        self.parts, self.kept, self.dropped = [], 0, 0
        return text


def _exception_record(exc: BaseException, filename_prefix: str) -> dict[str, Any]:
    """Describe an exception raised by student code, keeping only the frames of student files."""
    try:
        message = str(exc)
    except Exception:  # a hostile __str__
        message = "<the exception's message could not be shown>"
    frames: list[traceback.FrameSummary] = []
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(filename_prefix)]
        lines = "".join(traceback.format_list(frames[-5:]))
    except Exception:
        lines = ""
    return {
        "type": type(exc).__name__[:200],
        "mro": [cls.__name__[:200] for cls in type(exc).__mro__][:20],
        "message": message[:4000],
        "traceback": lines[-4000:],
        "line": next((f.lineno for f in reversed(frames) if f.lineno), None),
    }


def _set_limits(limits: dict[str, int]) -> None:
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _load_submission(spec: dict[str, Any], module: Any, skip: set[int]) -> list[dict[str, Any]]:
    """Run the submission's code in ``module``; returns per-cell errors (cells mode only).

    Cells whose index is in ``skip`` (the release's worked examples and figures, which only
    demonstrate the student's functions) are not run.
    """
    errors = []
    for number, code in enumerate(spec["cells"]):
        if number in skip:
            continue
        labels = spec.get("labels") or []
        label = labels[number] if number < len(labels) else f"cell {number + 1}"
        filename = spec["filename"] if spec["kind"] == "module" else f"{spec['filename']} [{label}]"
        try:
            exec(compile(code, filename, "exec"), module.__dict__)
        except BaseException as exc:
            if spec["kind"] == "module":
                raise
            record = _exception_record(exc, spec["filename"])
            if isinstance(exc, SyntaxError):  # its str() repeats the file and line: keep the message
                record["line"], record["message"] = exc.lineno, str(exc.msg)[:4000]
            errors.append({"cell": number + 1, **record})
    return errors


def main() -> None:  # pragma: no cover - runs in the worker process
    """Serve call requests until the request pipe closes."""
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    device_array: type | None = None
    on_device: Callable[[np.ndarray], Any] | None = None
    gpu_error = ""
    if config.get("gpu"):  # captured before any student code runs: only this exact class is a GPU answer
        try:
            import cupy

            device_array, on_device = cupy.ndarray, cupy.asarray
        except Exception as problem:  # reported to the grader: the environment's fault, not the student's
            gpu_error = f"{type(problem).__name__}: {problem}"[:2000]
    _set_limits(config["rlimits"])
    req_fd, resp_fd = config["req_fd"], config["resp_fd"]
    for fd in (req_fd, resp_fd):
        os.set_inheritable(fd, False)
    capture = _BoundedText(config["output_limit"])
    sys.stdout = sys.stderr = capture  # student output, bounded; fd 1 and 2 go to /dev/null or a log
    sys.stdin = io.StringIO()
    sys.setrecursionlimit(config.get("recursion_limit", 3000))

    module = types.ModuleType("weight_sharing")
    module.__file__ = os.path.abspath(config["submission"]["filename"])
    sys.modules["weight_sharing"] = module
    prefix = config["submission"]["filename"]
    # Alive, limits set, numpy imported, nothing of the student's run yet: if the grader never
    # receives this, the environment is broken, which is not the student's fault.
    wire.write_message(resp_fd, {"alive": True, "pid": os.getpid(), "gpu_error": gpu_error}, [])
    try:
        cell_errors = _load_submission(config["submission"], module, set(config["submission"].get("skip", ())))
    except BaseException as exc:
        wire.write_message(
            resp_fd, {"ok": False, "error": _exception_record(exc, prefix), "output": capture.take()}, []
        )
        return
    names = sorted(name for name in config["functions"] if callable(getattr(module, name, None)))
    wire.write_message(
        resp_fd, {"ok": True, "functions": names, "cell_errors": cell_errors, "output": capture.take()}, []
    )

    while True:
        try:
            request, frames = wire.read_message(req_fd)
        except wire.PeerClosed:
            return
        args = wire.decode(request["args"], frames, on_device=on_device, on_layer=layers.build_layer)
        kwargs = wire.decode(request["kwargs"], frames, on_device=on_device, on_layer=layers.build_layer)
        argnames = request["argnames"]
        named = dict(zip(argnames, args, strict=False)) | kwargs
        snapshots = {k: v.copy() for k, v in named.items() if type(v) is np.ndarray}
        function = getattr(module, request["function"], None)
        reply: dict[str, Any]
        out_frames: list[wire.Frame] = []
        if not callable(function):
            reply = {"ok": False, "missing": True}
        else:
            try:
                result = function(*args, **kwargs)
                if device_array is not None and request.get("device") == "cupy":
                    sys.modules["cupy"].cuda.get_current_stream().synchronize()
                reply = {"ok": True, "result": wire.encode(result, out_frames, device_array=device_array)}
            except BaseException as exc:  # SystemExit and KeyboardInterrupt included: report, keep serving
                reply = {"ok": False, "error": _exception_record(exc, prefix)}
        reply["mutated"] = [k for k, v in snapshots.items() if not np.array_equal(v, named[k], equal_nan=True)]
        reply["output"] = capture.take()
        wire.write_message(resp_fd, reply, out_frames)


if __name__ == "__main__":
    main()
