"""The grader's side of the sandbox: starts workers, sends calls, enforces limits, survives crashes.

A :class:`Sandbox` owns at most one worker process at a time. A call that crashes the worker,
exits it or runs past its time limit kills that worker; the next call starts a fresh one (which
loads the submission again). Nothing the worker sends is trusted: messages are size-checked,
arrays are read with ``allow_pickle=False`` and every value is plain data.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import autograder
from autograder.sandbox import worker as wire
from autograder.sandbox.isolation import Isolation, choose_isolation, kill_uid, new_uid, prepare_scratch, wrap_command
from autograder.source import SOLUTION_SOURCE
from autograder.submission import PreparedSubmission

__all__ = [
    "ArrayView",
    "CallResult",
    "CallTimeout",
    "FunctionMissing",
    "GradingBudgetExceeded",
    "Layer",
    "Limits",
    "OnDevice",
    "Sandbox",
    "SandboxBroken",
    "SandboxError",
    "StudentRaised",
    "SubmissionDoesNotLoad",
    "WorkerCrashed",
]

WORKER_SOURCE = Path(wire.__file__)
_SIGNAL_MEANINGS = {
    signal.SIGSEGV: "a segmentation fault",
    signal.SIGKILL: "being killed (most often: memory)",
    signal.SIGXCPU: "running out of CPU time",
    signal.SIGXFSZ: "writing too much output to a file",
    signal.SIGABRT: "an abort",
    signal.SIGBUS: "a bus error",
    signal.SIGFPE: "a floating-point exception",
}


@dataclass(frozen=True)
class Limits:
    """Resource limits for student code. Each can be set on the command line.

    Attributes:
        call_timeout: seconds one call may take.
        load_timeout: seconds loading the submission may take.
        memory_bytes: address-space limit of the worker (RLIMIT_AS).
        cpu_seconds: CPU-time limit of one worker (RLIMIT_CPU).
        file_bytes: largest file the worker may write (RLIMIT_FSIZE).
        open_files: open file descriptors (RLIMIT_NOFILE).
        output_chars: printed characters kept per call.
        budget_seconds: wall-clock budget of one whole grading.
        blas_threads: BLAS/OpenMP threads in the worker.
        processes: processes and threads the worker's uid may have (only where it has its own uid).
        isolation: ``auto`` (the strongest available) or a mode of :mod:`autograder.sandbox.isolation`.
    """

    call_timeout: float = 5.0
    load_timeout: float = 20.0
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 900
    file_bytes: int = 64 * 1024**2
    open_files: int = 256
    output_chars: int = 4000
    budget_seconds: float = 600.0
    blas_threads: int = 1
    processes: int = 128
    isolation: str = "auto"


class SandboxError(Exception):
    """Base class: a call did not produce a value."""


class StudentRaised(SandboxError):
    """The student's function raised an exception (reported by name; never re-created here)."""

    def __init__(self, function: str, record: dict[str, Any], output: str = "") -> None:
        self.function = function
        self.type_name: str = record.get("type", "Exception")
        self.mro: tuple[str, ...] = tuple(record.get("mro", ()))
        self.message: str = record.get("message", "")
        self.traceback: str = record.get("traceback", "")
        self.output = output
        super().__init__(f"{function} raised {self.type_name}: {self.message}")

    def is_a(self, name: str) -> bool:
        """Whether the exception is (a subclass of) the named built-in exception."""
        return name in self.mro


class WorkerCrashed(SandboxError):
    """The worker process died during the call (segfault, ``os._exit``, killed for memory, ...)."""


class CallTimeout(SandboxError):
    """The call did not return within its time limit; the worker was killed."""


class FunctionMissing(SandboxError):
    """The submission defines no callable with this name."""


class SubmissionDoesNotLoad(SandboxError):
    """Running the submission's code failed (an exception at import, a crash, or a timeout)."""


class SandboxBroken(RuntimeError):
    """The worker could not even start: the grading environment is broken (a grader error).

    Deliberately not a :class:`SandboxError`: no test may turn it into a verdict on the student.
    """


class GradingBudgetExceeded(SandboxError):
    """The whole grading ran past its wall-clock budget; no more calls are made."""


@dataclass(frozen=True)
class ArrayView:
    """A non-contiguous view to send: the worker rebuilds ``base[slices].transpose(axes)``.

    Attributes:
        base: the contiguous base array.
        slices: one ``(start, stop, step)`` per axis of ``base``.
        axes: the transpose applied after slicing.
    """

    base: np.ndarray
    slices: tuple[tuple[int | None, int | None, int | None], ...]
    axes: tuple[int, ...]

    @property
    def value(self) -> np.ndarray:
        """The view as the grader sees it (same values and strides pattern as in the worker)."""
        return self.base[tuple(slice(*s) for s in self.slices)].transpose(self.axes)


@dataclass(frozen=True)
class OnDevice:
    """An array the worker must move to the GPU (as a CuPy array) before the call.

    The grader never needs CuPy for this: the array travels as ``.npy`` with a device mark.

    Attributes:
        array: the array.
    """

    array: np.ndarray


@dataclass(frozen=True)
class Layer:
    """A layer description sent instead of a function (see :func:`worker.build_layer`).

    Attributes:
        spec: the description.
    """

    spec: dict[str, Any]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return wire.build_layer(self.spec)(x)


@dataclass(frozen=True)
class CallResult:
    """What came back from one call.

    Attributes:
        value: the decoded return value (plain data only).
        output: what the call printed (bounded).
        mutated: names of array arguments the call modified in place.
        seconds: wall time of the round trip, measured here.
        device: ``"cupy"`` when the value arrived as a CuPy array, else ``""``.
        lines: lines of the submission executed by the call, when counting was asked for.
    """

    value: Any
    output: str
    mutated: tuple[str, ...]
    seconds: float
    device: str = ""
    lines: int | None = None


def _encode_request(value: Any, frames: list[bytes], uses: set[str]) -> Any:
    """Encode a call argument (arrays, views, layers and containers of them)."""
    if isinstance(value, ArrayView):
        frames.append(wire._array_to_frame(value.base))
        return {
            "__array__": len(frames) - 1,
            "view": {"slices": [list(s) for s in value.slices], "axes": list(value.axes)},
        }
    if isinstance(value, Layer):
        return {"__layer__": _encode_request(value.spec, frames, uses)}
    if isinstance(value, OnDevice):
        uses.add("cupy")
        frames.append(wire._array_to_frame(value.array))
        return {"__array__": len(frames) - 1, "device": "cupy"}
    if type(value).__module__.split(".")[0] == "cupy":
        uses.add("cupy")
        frames.append(wire._array_to_frame(value.get()))
        return {"__array__": len(frames) - 1, "device": "cupy"}
    if isinstance(value, dict):
        return {"__dict__": {k: _encode_request(v, frames, uses) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_request(v, frames, uses) for v in value]}
    if isinstance(value, list):
        return [_encode_request(v, frames, uses) for v in value]
    return wire.encode(value, frames)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    req_fd: int
    resp_fd: int
    functions: tuple[str, ...] = ()
    load_output: str = ""
    cell_errors: list[dict[str, Any]] = field(default_factory=list)


class Sandbox:
    """Runs a prepared submission in worker processes and makes calls into it.

    Args:
        submission: the student's code, already read and checked.
        functions: the contract's function names (the worker reports which exist).
        limits: resource limits.
        hide: more paths the worker must not see (the grader's package and the reference always are).
    """

    def __init__(
        self,
        submission: PreparedSubmission,
        functions: tuple[str, ...],
        limits: Limits | None = None,
        *,
        hide: tuple[Path, ...] = (),
    ) -> None:
        self.submission = submission
        self.functions = functions
        self.limits = limits or Limits()
        self.isolation: Isolation = choose_isolation(self.limits.isolation)
        self.uid = new_uid() if self.isolation.drops_privileges else None
        self.hide = (Path(autograder.__file__).resolve().parent, SOLUTION_SOURCE.parent, *hide)
        self._scratch = Path(tempfile.mkdtemp(prefix="wsgrade-sandbox-"))
        self._worker: _Worker | None = None
        self._load_failure: SubmissionDoesNotLoad | None = None
        self._deadline = time.monotonic() + self.limits.budget_seconds
        self.workers_started = 0
        self.stderr_path = self._scratch / "worker-stderr.log"
        self._write_scratch()

    # -- lifecycle -----------------------------------------------------------------------------

    def _write_scratch(self) -> None:
        shutil.copyfile(WORKER_SOURCE, self._scratch / "worker.py")
        (self._scratch / "home").mkdir()
        spec = {
            "kind": self.submission.kind,
            "cells": list(self.submission.cells),
            "filename": self.submission.filename,
        }
        (self._scratch / "submission.json").write_text(json.dumps(spec))
        prepare_scratch(self.isolation, self._scratch, self.uid, self.hide)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill any worker and delete the scratch folder."""
        self._kill()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _kill(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        for fd in (worker.req_fd, worker.resp_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        if self.uid is not None:
            kill_uid(self.uid)  # anything the worker left behind, double-forked daemons included
        worker.process.wait()

    def _env(self) -> dict[str, str]:
        threads = str(self.limits.blas_threads)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._scratch / "home"),
            "TMPDIR": str(self._scratch / "home"),
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "VECLIB_MAXIMUM_THREADS": threads,
            "NUMEXPR_NUM_THREADS": threads,
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        }

    def _start(self) -> _Worker:
        if self._load_failure is not None:
            raise self._load_failure
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        config = {
            "req_fd": req_r,
            "resp_fd": resp_w,
            "submission": json.loads((self._scratch / "submission.json").read_text()),
            "functions": list(self.functions),
            "output_limit": self.limits.output_chars,
            "rlimits": {
                "RLIMIT_AS": self.limits.memory_bytes,
                "RLIMIT_CPU": self.limits.cpu_seconds,
                "RLIMIT_FSIZE": self.limits.file_bytes,
                "RLIMIT_NOFILE": self.limits.open_files,
                "RLIMIT_CORE": 0,
                **({"RLIMIT_NPROC": self.limits.processes} if self.uid is not None else {}),
            },
        }
        config_path = self._scratch / "config.json"
        config_path.write_text(json.dumps(config))
        config_path.chmod(0o644)
        command, cwd = wrap_command(
            self.isolation,
            [sys.executable, "-I", "-X", "faulthandler", str(self._scratch / "worker.py"), str(config_path)],
            self._scratch,
            self.uid,
            self.hide,
        )
        with open(self.stderr_path, "ab") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(req_r, resp_w),
                cwd=cwd,
                env=self._env(),
                start_new_session=True,
            )
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(req_w, False)
        self.workers_started += 1
        worker = _Worker(process, req_w, resp_r)
        self._worker = worker
        deadline = min(time.monotonic() + self.limits.load_timeout, self._deadline)
        try:
            alive, _ = self._receive(worker, deadline)
            if not alive.get("alive"):
                raise WorkerCrashed("it did not report as expected")
        except (CallTimeout, WorkerCrashed) as problem:
            self._kill()
            raise SandboxBroken(
                f"the grader could not start its worker process ({problem}); this is a problem with the grading "
                f"environment, not with the submission (isolation: {self.isolation.mode}, python: {sys.executable})"
            ) from None
        try:
            ready, _ = self._receive(worker, deadline)
        except CallTimeout:
            self._kill()
            self._load_failure = SubmissionDoesNotLoad(
                f"loading your code took more than {self.limits.load_timeout:g} s (code at the top level of the "
                "file runs when it is loaded: move experiments into functions)"
            )
            raise self._load_failure from None
        except WorkerCrashed as crash:
            self._kill()
            self._load_failure = SubmissionDoesNotLoad(f"the process running your code died while loading it: {crash}")
            raise self._load_failure from None
        if not ready.get("ok"):
            self._kill()
            record = ready.get("error", {})
            self._load_failure = SubmissionDoesNotLoad(
                f"running your file raised {record.get('type')}: {record.get('message')}\n{record.get('traceback', '')}"
            )
            raise self._load_failure
        worker.functions = tuple(ready.get("functions", ()))
        worker.load_output = str(ready.get("output", ""))
        worker.cell_errors = list(ready.get("cell_errors", []))
        return worker

    def load(self) -> tuple[tuple[str, ...], list[dict[str, Any]], str]:
        """Start a worker now (if none runs) and return what loading reported.

        Returns:
            ``(functions defined, cell errors, printed output)``.

        Raises:
            SubmissionDoesNotLoad: if the code cannot be loaded.
        """
        worker = self._worker or self._start()
        return worker.functions, worker.cell_errors, worker.load_output

    # -- wire ----------------------------------------------------------------------------------

    def _crash_reason(self, worker: _Worker) -> str:
        try:
            code = worker.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            reason = f"it was stopped by {_SIGNAL_MEANINGS.get(signal.Signals(-code), signal.Signals(-code).name)}"
        else:
            reason = f"it exited with status {code} (sys.exit or os._exit in your code?)"
        try:
            with open(self.stderr_path, "rb") as handle:
                handle.seek(max(0, self.stderr_path.stat().st_size - 1500))
                tail = handle.read().decode("utf-8", "replace").strip()
        except OSError:
            tail = ""
        return reason + (f"; its last words:\n{tail}" if tail and "Fatal Python error" in tail else "")

    def _read_exactly(self, worker: _Worker, size: int, deadline: float) -> bytes:
        chunks, remaining = [], size
        while remaining:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise CallTimeout
            ready, _, _ = select.select([worker.resp_fd], [], [], timeout)
            if not ready:
                raise CallTimeout
            chunk = os.read(worker.resp_fd, min(remaining, 1 << 20))
            if not chunk:
                raise WorkerCrashed(self._crash_reason(worker))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _receive(self, worker: _Worker, deadline: float) -> tuple[dict[str, Any], list[bytes]]:
        (length,) = wire._HEADER.unpack(self._read_exactly(worker, wire._HEADER.size, deadline))
        if length > wire.MAX_HEADER_BYTES:
            raise WorkerCrashed(f"it sent a message header of {length} bytes (the limit is {wire.MAX_HEADER_BYTES})")
        try:
            header = json.loads(self._read_exactly(worker, length, deadline))
            nframes = int(header["nframes"])
        except (ValueError, KeyError, TypeError) as problem:
            raise WorkerCrashed(f"it sent a malformed message ({problem})") from None
        frames = []
        for _ in range(nframes):
            (size,) = wire._FRAME.unpack(self._read_exactly(worker, wire._FRAME.size, deadline))
            if size > wire.MAX_FRAME_BYTES:
                raise WorkerCrashed(f"it sent an array of {size} bytes (the limit is {wire.MAX_FRAME_BYTES})")
            frames.append(self._read_exactly(worker, size, deadline))
        return header, frames

    def _send(self, worker: _Worker, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise CallTimeout
            _, ready, _ = select.select([], [worker.req_fd], [], timeout)
            if not ready:
                raise CallTimeout
            try:
                view = view[os.write(worker.req_fd, view) :]
            except BrokenPipeError:
                raise WorkerCrashed(self._crash_reason(worker)) from None

    # -- calls ---------------------------------------------------------------------------------

    def call(
        self,
        function: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        argnames: tuple[str, ...] = (),
        timeout: float | None = None,
        count_lines: bool = False,
    ) -> CallResult:
        """Call ``function(*args, **kwargs)`` in the worker.

        Args:
            function: the contract function's name.
            args: positional arguments: arrays, :class:`ArrayView`, :class:`Layer`, plain data.
            kwargs: keyword arguments, likewise.
            argnames: the contract's parameter names, so that the worker can name mutated arguments.
            timeout: seconds for this call (default: the limits' ``call_timeout``).
            count_lines: count the submission's lines the call executes (slows the call down).

        Returns:
            The result.

        Raises:
            StudentRaised, WorkerCrashed, CallTimeout, FunctionMissing, SubmissionDoesNotLoad,
            GradingBudgetExceeded.
        """
        if time.monotonic() > self._deadline:
            raise GradingBudgetExceeded(f"the grading budget of {self.limits.budget_seconds:g} s is used up")
        worker = self._worker or self._start()
        if function not in worker.functions:
            raise FunctionMissing(f"your code defines no function named {function}")
        frames: list[bytes] = []
        uses: set[str] = set()
        request = {
            "function": function,
            "args": _encode_request(tuple(args), frames, uses)["__tuple__"],
            "kwargs": _encode_request(dict(kwargs or {}), frames, uses),
            "argnames": list(argnames),
            "device": "cupy" if "cupy" in uses else "",
            "count_lines": count_lines,
        }
        limit = self.limits.call_timeout if timeout is None else timeout
        deadline = min(time.monotonic() + limit, self._deadline + 1.0)
        started = time.perf_counter()
        try:
            self._send(worker, wire.pack_message(request, frames), deadline)
            reply, out_frames = self._receive(worker, deadline)
        except CallTimeout:
            self._kill()
            raise CallTimeout(
                f"{function} did not return within {limit:g} s (an endless loop, or far too slow?)"
            ) from None
        except WorkerCrashed as crash:
            self._kill()
            raise WorkerCrashed(f"the process running {function} died: {crash}") from None
        seconds = time.perf_counter() - started
        output = str(reply.get("output", ""))[: self.limits.output_chars + 100]
        if not reply.get("ok"):
            if reply.get("missing"):
                raise FunctionMissing(f"your code defines no function named {function}")
            raise StudentRaised(function, reply.get("error") or {}, output)
        try:
            value = wire.decode(reply.get("result"), out_frames)
        except (ValueError, KeyError, IndexError, TypeError) as problem:
            self._kill()
            raise WorkerCrashed(f"the result of {function} could not be read ({problem})") from None
        device = "cupy" if isinstance(reply.get("result"), dict) and reply["result"].get("device") == "cupy" else ""
        mutated = tuple(str(name) for name in reply.get("mutated", []) if name in argnames or name in (kwargs or {}))
        lines = reply.get("lines")
        return CallResult(value, output, mutated, seconds, device, lines if type(lines) is int else None)
