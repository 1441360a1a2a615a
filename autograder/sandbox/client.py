"""The grader's side of the sandbox: starts workers, sends calls, enforces limits, survives crashes.

A :class:`Sandbox` owns at most one worker process at a time. A call that crashes the worker,
exits it or runs past its time limit kills that worker; the next call starts a fresh one (which
loads the submission again). Nothing the worker sends is trusted: messages are size-checked,
arrays are read with ``allow_pickle=False`` and every value is plain data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autograder.sandbox import layers, wire
from autograder.sandbox.cgroup import SandboxCgroup
from autograder.sandbox.isolation import (
    INNER_SITE,
    INNER_WORKER,
    Exposure,
    Isolation,
    Requested,
    Tightened,
    UidLease,
    choose_isolation,
    interpreter,
    kill_uid,
    remove_files_of,
    site_entries,
    uid_processes,
    wrap_command,
)
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

_log = logging.getLogger(__name__)

#: faulthandler's "Current thread 0x00007f...": the address, left out of feedback (it is new at every run).
_THREAD_ADDRESS = re.compile(r"((?:Current thread|Thread) )0x[0-9a-f]+ ")

#: The files copied into the worker's own folder (nothing else of the grader's package goes there).
WORKER_FILES = tuple(Path(module.__file__ or "") for module in (wire, layers)) + (
    Path(__file__).with_name("worker.py"),
)
#: Bounds on one reply (forged frames cannot make the grader buffer gigabytes).
REPLY_LIMITS = wire.WireLimits()
_POLL_SECONDS = 0.05
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

    The limits that decide a score count **CPU time** of the student's process tree (where the
    machine can measure it: a cgroup, else the worker's own ``/proc`` entry), so a busy grading
    machine does not fail slow but correct code. Wall-clock time is only a generous backstop
    (``wall_factor`` times the CPU limit, at least ``wall_minimum`` seconds more) against code that
    sleeps or blocks; when it fires, the student is told that the code waited.

    Attributes:
        call_timeout: CPU seconds one call may use.
        load_timeout: CPU seconds loading the submission may use.
        wall_factor: the wall-clock backstop, as a multiple of the CPU limit.
        wall_minimum: the wall-clock backstop is at least the CPU limit plus this many seconds.
        memory_bytes: memory of the sandbox (RLIMIT_AS per process; the whole tree where cgroups work).
        cpu_seconds: CPU-time limit of one worker process (RLIMIT_CPU).
        file_bytes: largest file the worker may write (RLIMIT_FSIZE).
        open_files: open file descriptors (RLIMIT_NOFILE).
        output_chars: printed characters kept per call.
        budget_seconds: wall-clock budget of one whole grading.
        blas_threads: BLAS/OpenMP threads in the worker.
        processes: processes and threads of the sandbox (its uid's, or its cgroup's).
        home_bytes: size of the private, memory-backed home and ``/tmp`` (namespace modes).
        cpus: CPUs the sandbox is pinned to (a cpuset list such as ``"1"``; empty: not pinned).
        isolation: ``auto`` (the strongest available) or a mode of :mod:`autograder.sandbox.isolation`.
    """

    call_timeout: float = 5.0
    load_timeout: float = 20.0
    wall_factor: float = 4.0
    wall_minimum: float = 20.0
    memory_bytes: int = 2 * 1024**3
    cpu_seconds: int = 900
    file_bytes: int = 64 * 1024**2
    open_files: int = 256
    output_chars: int = 4000
    budget_seconds: float = 600.0
    blas_threads: int = 1
    processes: int = 64
    home_bytes: int = 64 * 1024**2
    cpus: str = ""
    isolation: Requested = "auto"

    def wall_limit(self, cpu_limit: float) -> float:
        """The wall-clock backstop for a CPU-time limit."""
        return max(cpu_limit * self.wall_factor, cpu_limit + self.wall_minimum)


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
    """The call did not return within its time limit; the worker was killed.

    Attributes:
        waited: True when the wall-clock backstop fired while the code used little CPU (it slept,
            waited for input or blocked), False when it used up its CPU time.
    """

    def __init__(self, message: str = "", *, waited: bool = False) -> None:
        super().__init__(message)
        self.waited = waited


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
    """A layer description sent instead of a function (see :func:`layers.build_layer`).

    Attributes:
        spec: the description.
    """

    spec: dict[str, Any]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return layers.build_layer(self.spec)(x)


@dataclass(frozen=True)
class CallResult:
    """What came back from one call.

    Attributes:
        value: the decoded return value (plain data only).
        output: what the call printed (bounded).
        mutated: names of array arguments the call modified in place.
        seconds: wall time of the round trip, measured here.
        device: ``"cupy"`` when the value arrived as a CuPy array, else ``""``.
        cpu_seconds: CPU time of the sandbox's processes during the call, measured here from
            outside, for ``exclusive`` (timed) calls (None otherwise, or where the machine gives no
            such measure).
    """

    value: Any
    output: str
    mutated: tuple[str, ...]
    seconds: float
    device: str = ""
    cpu_seconds: float | None = None


def _encode_request(value: Any, frames: list[wire.Frame], uses: set[str]) -> Any:
    """Encode a call argument (arrays, views, layers and containers of them)."""
    if isinstance(value, ArrayView):
        frames.append(wire.array_to_frame(value.base))
        return {
            "__array__": len(frames) - 1,
            "view": {"slices": [list(s) for s in value.slices], "axes": list(value.axes)},
        }
    if isinstance(value, Layer):
        return {"__layer__": _encode_request(value.spec, frames, uses)}
    if isinstance(value, OnDevice):
        uses.add("cupy")
        frames.append(wire.array_to_frame(value.array))
        return {"__array__": len(frames) - 1, "device": "cupy"}
    if isinstance(value, dict):
        return {"__dict__": {k: _encode_request(v, frames, uses) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_request(v, frames, uses) for v in value]}
    if isinstance(value, list):
        return [_encode_request(v, frames, uses) for v in value]
    return wire.encode(value, frames)


def _proc_cpu_seconds(pid: int) -> float | None:
    """CPU time of a process and of its waited-for children, from ``/proc`` (None if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def _start_time(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 1 << 62


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    req_fd: int
    resp_fd: int
    host_pid: int | None = None
    functions: tuple[str, ...] = ()
    load_output: str = ""
    cell_errors: list[dict[str, Any]] = field(default_factory=list)
    stderr_from: int = 0  # where this worker's output begins in the sandbox's stderr file


class Sandbox:
    """Runs a prepared submission in worker processes and makes calls into it.

    Args:
        submission: the student's code, already read and checked.
        functions: the contract's function names (the worker reports which exist).
        limits: resource limits.
        exposure: what the worker may see besides the interpreter (the allowlist: numpy).
        hide: paths made unreadable to the sandbox uid while it runs, in ``uid`` mode, where no new
            root can be built (the grader's package, the reference, outputs, submissions). The
            namespace modes need no such list: nothing outside the allowlist exists there.
    """

    def __init__(
        self,
        submission: PreparedSubmission,
        functions: tuple[str, ...],
        limits: Limits | None = None,
        *,
        exposure: Exposure | None = None,
        hide: Iterable[Path] = (),
    ) -> None:
        self.submission = submission
        self.functions = functions
        self.limits = limits or Limits()
        self.exposure = exposure or Exposure()
        self.isolation: Isolation = choose_isolation(self.limits.isolation)
        self._lease = UidLease() if self.isolation.drops_privileges else None
        self.uid = self._lease.uid if self._lease else None
        self._tightened = Tightened(hide) if self.isolation.mode == "uid" else None
        self._scratch = Path(tempfile.mkdtemp(prefix="wsgrade-sandbox-"))
        self._cgroup = SandboxCgroup.create(
            self._scratch.name,
            memory_bytes=self.limits.memory_bytes + self.limits.home_bytes,
            processes=self.limits.processes,
        )
        self._pinned = ""
        self._pinned_by_cgroup = False
        self._worker: _Worker | None = None
        if self.limits.cpus:
            self.pin(self.limits.cpus)
        self._load_failure: SubmissionDoesNotLoad | None = None
        self._deadline = time.monotonic() + self.limits.budget_seconds
        self.workers_started = 0
        self.stderr_path = self._scratch / "worker-stderr.log"
        self._write_scratch()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def worker_dir(self) -> Path:
        """The host folder with the worker's files."""
        return self._scratch / "worker"

    def _write_scratch(self) -> None:
        """Lay out the scratch folder: ``worker/`` (code and config), ``site/``, ``home/``, ``empty/``.

        The folder is 0700: in ``uid`` mode it belongs to the sandbox uid (no other sandbox can
        enter it), elsewhere to the grader (the worker sees only what is bound into its root).
        """
        self.worker_dir.mkdir(mode=0o755)
        for source in WORKER_FILES:
            shutil.copyfile(source, self.worker_dir / source.name)
        (self._scratch / "empty").mkdir(mode=0o755)
        if not self.isolation.namespaces:
            (self._scratch / "home").mkdir(mode=0o700)
            site = self._scratch / "site"
            site.mkdir(mode=0o755)
            for entry in site_entries(self.exposure.distributions):
                (site / entry.name).symlink_to(entry)
        if self.uid is not None and not self.isolation.namespaces:
            for path in (self._scratch, *self._scratch.rglob("*")):
                os.chown(path, self.uid, self.uid, follow_symlinks=False)
        for path in self.worker_dir.iterdir():
            path.chmod(0o644)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill any worker and everything it started, delete the scratch folder, restore modes."""
        self._kill()
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self.uid is not None:
            if strays := kill_uid(self.uid):
                _log.info("sandbox uid %d: killed %d processes the student's code left running", self.uid, strays)
            if not self.isolation.namespaces and (left := remove_files_of(self.uid)):
                _log.info("sandbox uid %d: removed %d files it left in the shared temporary folders", self.uid, left)
        shutil.rmtree(self._scratch, ignore_errors=True)
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self._tightened is not None:
            self._tightened.restore()
            self._tightened = None

    def _kill(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        for fd in (worker.req_fd, worker.resp_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            worker.process.kill()
        worker.process.wait()
        if self._cgroup is not None:
            self._cgroup.kill()
        if self.uid is not None:
            kill_uid(self.uid)  # anything the worker left behind, double-forked daemons included

    def _env(self) -> dict[str, str]:
        threads = str(self.limits.blas_threads)
        home = "/tmp" if self.isolation.namespaces else str(self._scratch / "home")
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "VECLIB_MAXIMUM_THREADS": threads,
            "NUMEXPR_NUM_THREADS": threads,
            # no GPU for the worker unless the GPU task runs (then the grader's own choice of devices)
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "") if self.exposure.devices else "",
            **{k: v for k, v in os.environ.items() if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        }

    def _config(self, req_fd: int, resp_fd: int) -> dict[str, Any]:
        return {
            "req_fd": req_fd,
            "resp_fd": resp_fd,
            "submission": {
                "kind": self.submission.kind,
                "cells": list(self.submission.cells),
                "filename": self.submission.filename,
                "skip": list(self.submission.skip_cells),
                "labels": [self.submission.cell_label(i) for i in range(len(self.submission.cells))],
            },
            "functions": list(self.functions),
            "output_limit": self.limits.output_chars,
            "gpu": bool(self.exposure.devices),
            "rlimits": {
                # CUDA reserves far more address space than it uses: on the GPU, memory is bounded by
                # the sandbox's cgroup instead of the address-space limit
                **({} if self.exposure.devices else {"RLIMIT_AS": self.limits.memory_bytes}),
                "RLIMIT_CPU": self.limits.cpu_seconds,
                "RLIMIT_FSIZE": self.limits.file_bytes,
                "RLIMIT_NOFILE": self.limits.open_files,
                "RLIMIT_CORE": 0,
                **({"RLIMIT_NPROC": self.limits.processes} if self.uid is not None else {}),
            },
        }

    def _spawn(self) -> _Worker:
        """Start a worker process under the isolation; nothing of the student's has run yet."""
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        for end in (req_w, resp_w):  # arrays of 25 MB cross in 1 MB writes, not 64 KB ones
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(end, fcntl.F_SETPIPE_SZ, 1 << 20)
        config_path = self.worker_dir / "config.json"
        config_path.write_text(json.dumps(self._config(req_r, resp_w)))
        config_path.chmod(0o644)
        if self.uid is not None and not self.isolation.namespaces:
            os.chown(config_path, self.uid, self.uid)
        inner = INNER_WORKER if self.isolation.namespaces else str(self.worker_dir)
        site = INNER_SITE if self.isolation.namespaces else str(self._scratch / "site")
        argv = [
            str(interpreter()),
            "-I",
            "-S",
            "-X",
            "faulthandler",
            f"{inner}/worker.py",
            f"{inner}/config.json",
            site,
        ]
        command, cwd = wrap_command(
            self.isolation,
            argv,
            worker_dir=self.worker_dir,
            empty=self._scratch / "empty",
            exposure=self.exposure,
            home_bytes=self.limits.home_bytes,
            uid=self.uid,
        )
        if self._cgroup is not None:
            command = self._cgroup.enter_command() + command
        with open(self.stderr_path, "ab") as stderr:
            stderr_from = stderr.tell()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(req_r, resp_w),
                cwd=cwd or self._scratch,
                env=self._env(),
                start_new_session=True,
            )
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(req_w, False)  # both ends that the grader uses: a read or a write that would
        os.set_blocking(resp_r, False)  # block waits in select, until the call's deadline
        self.workers_started += 1
        worker = _Worker(process, req_w, resp_r, stderr_from=stderr_from)
        self._worker = worker
        return worker

    def _handshake(self, worker: _Worker, deadline: float) -> None:
        """Wait for the worker's first word; without it the environment is broken (a grader error)."""
        try:
            alive, _ = wire.read_message(worker.resp_fd, deadline, REPLY_LIMITS)
            if alive.get("alive") is not True:
                raise wire.WireError("it did not report as expected")
        except wire.WireError as problem:
            reason = self._crash_reason(worker) if isinstance(problem, wire.PeerClosed) else str(problem)
            self._kill()
            tail = self._stderr_tail(worker)
            reason += f"; it printed:\n{tail}" if tail and tail not in reason else ""
            raise SandboxBroken(
                f"the grader could not start its worker process ({reason}); this is a problem with the grading "
                f"environment, not with the submission (isolation: {self.isolation.mode}, python: {interpreter()})"
            ) from None
        if alive.get("gpu_error"):
            self._kill()
            raise SandboxBroken(
                "the GPU task runs here, but CuPy does not import in the sandbox "
                f"({str(alive['gpu_error'])[:2000]}); this is a problem with the grading environment, not with the "
                "submission (check the GPU packages in autograder.tasks.GPU_PACKAGES and the devices passed in)"
            )
        worker.host_pid = self._find_worker_pid(worker)
        if self._pinned and worker.host_pid is not None and not self._pinned_by_cgroup:
            with contextlib.suppress(OSError, ValueError):  # the student could widen this one again
                os.sched_setaffinity(worker.host_pid, {int(c) for c in self._pinned.split(",")})

    def _find_worker_pid(self, worker: _Worker) -> int | None:
        """The worker's pid on this machine (inside bwrap it has another in its own namespace)."""
        if not self.isolation.namespaces:
            return worker.process.pid
        if self.uid is not None:
            mine = self._uid_pids()
            return min(mine, key=_start_time) if mine else None
        return None

    def _uid_pids(self) -> list[int]:
        if self.uid is None:
            return []
        # Nothing leaves its cgroup (moving needs root): where there is one, its few pids suffice.
        return uid_processes(self.uid, among=self._cgroup.pids() if self._cgroup is not None else None)

    def _load(self, worker: _Worker) -> None:
        """Wait while the worker runs the submission's code; a failure there is the student's."""
        try:
            ready, _ = self._receive(worker, self.limits.load_timeout)
        except CallTimeout as late:
            self._kill()
            what = (
                f"loading your code waited more than {self.limits.wall_limit(self.limits.load_timeout):g} s without "
                "finishing (it sleeps, waits for input or blocks at the top level of the file)"
                if late.waited
                else f"loading your code used more than {self.limits.load_timeout:g} s of CPU time (code at the top "
                "level of the file runs when it is loaded: move experiments into functions)"
            )
            self._load_failure = SubmissionDoesNotLoad(what)
            raise self._load_failure from None
        except WorkerCrashed as crash:
            self._kill()
            self._load_failure = SubmissionDoesNotLoad(f"the process running your code died while loading it: {crash}")
            raise self._load_failure from None
        if ready.get("ok") is not True:
            self._kill()
            error = ready.get("error")
            record: dict[str, Any] = error if isinstance(error, dict) else {}
            self._load_failure = SubmissionDoesNotLoad(
                f"running your file raised {str(record.get('type'))[:200]}: {str(record.get('message'))[:2000]}\n"
                f"{str(record.get('traceback', ''))[:4000]}"
            )
            raise self._load_failure
        worker.functions = tuple(str(f) for f in ready.get("functions", ()) if f in self.functions)
        worker.load_output = str(ready.get("output", ""))[: self.limits.output_chars + 100]
        errors = ready.get("cell_errors", [])
        worker.cell_errors = [e for e in errors if isinstance(e, dict)][:50] if isinstance(errors, list) else []

    def _start(self) -> _Worker:
        if self._load_failure is not None:
            raise self._load_failure
        worker = self._spawn()
        self._handshake(worker, min(time.monotonic() + self.limits.wall_limit(20.0), self._deadline))
        self._load(worker)
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

    # -- measuring -----------------------------------------------------------------------------

    def pin(self, cpus: str) -> None:
        """Pin the sandbox (this worker and every later one) to ``cpus``, e.g. ``"1"``.

        Through the sandbox's cpuset cgroup where there is one (no process in it can widen it),
        else with ``sched_setaffinity`` on the worker.
        """
        self._pinned = cpus
        self._pinned_by_cgroup = self._cgroup is not None and self._cgroup.pin(cpus)
        worker = self._worker
        if worker is not None and worker.host_pid is not None and not self._pinned_by_cgroup:
            with contextlib.suppress(OSError, ValueError):
                os.sched_setaffinity(worker.host_pid, {int(c) for c in cpus.split(",")})

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the current worker's tree, measured from outside (or None)."""
        if self._cgroup is not None:
            return self._cgroup.cpu_seconds()
        worker = self._worker
        if worker is None or worker.host_pid is None:
            return None
        return _proc_cpu_seconds(worker.host_pid)

    def end_stray_processes(self) -> int:
        """Kill every process of the sandbox but the worker itself (before and after a timed call).

        Returns:
            How many were killed.
        """
        worker = self._worker
        if worker is None or worker.host_pid is None or self.uid is None:
            return 0
        strays = [pid for pid in self._uid_pids() if pid != worker.host_pid]
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return len(strays)

    # -- wire ----------------------------------------------------------------------------------

    def _stderr_tail(self, worker: _Worker, size: int = 1500) -> str:
        """The end of what this worker wrote to stderr (not what the workers before it wrote)."""
        try:
            with open(self.stderr_path, "rb") as handle:
                handle.seek(max(worker.stderr_from, self.stderr_path.stat().st_size - size))
                return handle.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _crash_reason(self, worker: _Worker) -> str:
        try:
            code = worker.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if self._cgroup is not None and self._cgroup.oom_killed():
            return "it was killed for using more memory than the sandbox allows (all its processes together)"
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            try:
                name = _SIGNAL_MEANINGS.get(signal.Signals(number), signal.Signals(number).name)
            except ValueError:
                name = f"signal {number}"
            reason = f"it was stopped by {name}"
        else:
            reason = f"it exited with status {code} (sys.exit or os._exit in your code?)"
        tail = _THREAD_ADDRESS.sub(r"\1", self._stderr_tail(worker))  # an address differs at every run
        return reason + (f"; its last words:\n{tail}" if tail and "Fatal Python error" in tail else "")

    def _receive(
        self, worker: _Worker, cpu_limit: float, started_cpu: float | None = None
    ) -> tuple[dict[str, Any], list[bytearray]]:
        """Wait for one reply within ``cpu_limit`` CPU seconds (and the wall-clock backstop).

        Args:
            worker: the worker.
            cpu_limit: CPU seconds the sandbox may use before replying.
            started_cpu: the sandbox's CPU time when the request was sent (read now if None).

        Raises:
            CallTimeout: the CPU limit or the backstop was passed (``waited`` says which).
            WorkerCrashed: the worker died, or sent something that breaks the wire's rules.
        """
        if started_cpu is None:
            started_cpu = self.cpu_seconds()
        wall = min(time.monotonic() + self.limits.wall_limit(cpu_limit), self._deadline + 1.0)
        if started_cpu is None:  # nothing measures CPU time here: the wall clock is all there is
            wall = min(time.monotonic() + cpu_limit, self._deadline + 1.0)
        while True:
            timeout = min(_POLL_SECONDS * 4, wall - time.monotonic())
            if timeout <= 0:
                raise CallTimeout(waited=started_cpu is not None)
            if select.select([worker.resp_fd], [], [], timeout)[0]:
                break
            used = self.cpu_seconds()
            if started_cpu is not None and used is not None and used - started_cpu > cpu_limit:
                raise CallTimeout(waited=False)
        try:
            return wire.read_message(worker.resp_fd, wall, REPLY_LIMITS)
        except wire.WireTimeout:
            raise CallTimeout(waited=True) from None
        except wire.PeerClosed:
            raise WorkerCrashed(self._crash_reason(worker)) from None
        except wire.WireError as problem:
            raise WorkerCrashed(f"it sent a message that breaks the rules ({problem})") from None

    def _send(self, worker: _Worker, request: dict[str, Any], frames: list[wire.Frame], deadline: float) -> None:
        try:
            wire.write_message(worker.req_fd, request, frames, deadline)
        except wire.WireTimeout:
            raise CallTimeout(waited=True) from None
        except wire.PeerClosed:
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
        exclusive: bool = False,
    ) -> CallResult:
        """Call ``function(*args, **kwargs)`` in the worker.

        Args:
            function: the contract function's name.
            args: positional arguments: arrays, :class:`ArrayView`, :class:`Layer`, plain data.
            kwargs: keyword arguments, likewise.
            argnames: the contract's parameter names, so that the worker can name mutated arguments.
            timeout: CPU seconds for this call (default: the limits' ``call_timeout``).
            exclusive: end every other process of the sandbox before and after the call (timed
                calls: nothing the student started may run while the reference is timed).

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
        frames: list[wire.Frame] = []
        uses: set[str] = set()
        request = {
            "function": function,
            "args": _encode_request(tuple(args), frames, uses)["__tuple__"],
            "kwargs": _encode_request(dict(kwargs or {}), frames, uses),
            "argnames": list(argnames),
            "device": "cupy" if "cupy" in uses else "",
        }
        limit = self.limits.call_timeout if timeout is None else timeout
        if exclusive:
            self.end_stray_processes()
        started, started_cpu = time.perf_counter(), self.cpu_seconds()
        try:
            self._send(worker, request, frames, min(time.monotonic() + self.limits.wall_limit(limit), self._deadline))
            reply, out_frames = self._receive(worker, limit, started_cpu)
        except CallTimeout as late:
            self._kill()
            if late.waited:
                raise CallTimeout(
                    f"{function} did not return within {self.limits.wall_limit(limit):g} s while using little CPU "
                    "time: your code waited or slept (time.sleep, input(), a lock, a pipe?)",
                    waited=True,
                ) from None
            raise CallTimeout(
                f"{function} used more than {limit:g} s of CPU time without returning "
                "(an endless loop, or far too slow?)"
            ) from None
        except WorkerCrashed as crash:
            self._kill()
            raise WorkerCrashed(f"the process running {function} died: {crash}") from None
        seconds = time.perf_counter() - started
        cpu = None
        if exclusive:  # timed calls: their CPU time too, then nothing the call started lives on
            ended_cpu = self.cpu_seconds()
            cpu = ended_cpu - started_cpu if ended_cpu is not None and started_cpu is not None else None
            self.end_stray_processes()
        output = str(reply.get("output", ""))[: self.limits.output_chars + 100]
        if reply.get("ok") is not True:
            if reply.get("missing") is True:
                raise FunctionMissing(f"your code defines no function named {function}")
            error = reply.get("error")
            raise StudentRaised(function, error if isinstance(error, dict) else {}, output)
        try:
            value = wire.decode(reply.get("result"), out_frames)
        except (wire.WireError, RecursionError, MemoryError) as problem:
            self._kill()
            raise WorkerCrashed(f"the result of {function} could not be read ({problem})") from None
        result = reply.get("result")
        device = "cupy" if isinstance(result, dict) and result.get("device") == "cupy" and "cupy" in uses else ""
        mutated_names = reply.get("mutated", [])
        mutated = tuple(
            str(name)
            for name in (mutated_names if isinstance(mutated_names, list) else [])
            if type(name) is str and (name in argnames or name in (kwargs or {}))
        )
        return CallResult(value, output, mutated, seconds, device, cpu)
