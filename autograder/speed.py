"""Grading speed fairly on a noisy machine: a ratio to the reference, measured in the same run.

The student's ``conv2d_fast`` and the reference's run in two worker processes with the same BLAS
thread count, pinned to the same CPU. Each round sends both the same *fresh* random inputs, drawn
from a secret seed chosen for every grading (so no answer can be computed in advance), in
alternating order (A B, B A, ...) so that drifts in machine load hit both. The time of a call is
measured here, in the grader, from outside the worker: the **CPU time of the sandbox's whole
process tree** during the call, from its cgroup (so a busy machine slows neither side's number),
or the wall time of the round trip where the machine has no cgroup for it. A student cannot patch
either clock, and nothing the student started survives a timed call (it would otherwise run while
the reference is timed). Every student output is checked, so code that returns garbage, NaN or a
cached answer when it suspects a timing run gets nothing (and forfeits the whole task: see
:func:`autograder.grading.grade_prepared`). The score is the band of the ratio of the medians
(``SPEED_BANDS`` in :mod:`autograder.tasks`); a ratio within ``SPEED_EDGE_MARGIN`` of a band's
edge is measured again with more rounds before it is scored.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autograder.sandbox.client import CallResult
from autograder.tasks import SPEED_BANDS, SPEED_EDGE_MARGIN, SpeedShape

__all__ = ["SpeedVerdict", "band", "call_time", "fresh_inputs", "lease_cpu", "measure_speed", "near_band_edge"]

_log = logging.getLogger(__name__)

ROUNDS = 5
EXTRA_ROUNDS = 4
#: A timed student call may take this many times the reference's warm-up time (at least 3 s):
#: beyond the last band it earns nothing, so waiting longer would only waste the grading budget.
TIMEOUT_FACTOR = 15.0


def band(ratio: float) -> tuple[float, str]:
    """The share of points for a time ratio, and the band in words.

    Args:
        ratio: student time / reference time.

    Returns:
        ``(fraction, description)``.
    """
    lower = 0.0
    for limit, fraction in SPEED_BANDS:
        if ratio <= limit:
            return fraction, f"within {limit:g}x of the reference's time" if lower == 0 else (
                f"between {lower:g}x and {limit:g}x the reference's time"
            )
        lower = limit
    return 0.0, f"more than {SPEED_BANDS[-1][0]:g}x the reference's time"


def near_band_edge(ratio: float) -> bool:
    """Whether a ratio is within the margin of a band edge (and deserves more rounds)."""
    return any(abs(ratio / limit - 1) <= SPEED_EDGE_MARGIN for limit, _ in SPEED_BANDS)


def call_time(result: CallResult) -> float:
    """The time a timed call took: its CPU time measured from outside, else its wall time."""
    return result.cpu_seconds if result.cpu_seconds is not None else result.seconds


def fresh_inputs(shape: SpeedShape, seed: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random ``(x, weight, bias)`` of a speed shape; a new seed for every timed call.

    Args:
        shape: the layer.
        seed: the round's seed (derived from the grading's secret seed).
        dtype: the dtype.

    Returns:
        The arrays.
    """
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal(shape.x).astype(dtype),
        rng.standard_normal(shape.weight).astype(dtype),
        rng.standard_normal(shape.weight[0]).astype(dtype),
    )


@dataclass(frozen=True)
class SpeedVerdict:
    """The outcome of timing one shape.

    Attributes:
        shape: the layer.
        student: seconds of each timed student call.
        reference: seconds of each timed reference call.
        clock: ``"CPU"`` or ``"wall"``: what the seconds are.
    """

    shape: SpeedShape
    student: tuple[float, ...]
    reference: tuple[float, ...]
    clock: str = "wall"

    @property
    def ratio(self) -> float:
        """Median student time over median reference time."""
        return statistics.median(self.student) / statistics.median(self.reference)

    @property
    def fraction(self) -> float:
        """The share of points earned."""
        return band(self.ratio)[0]

    def describe(self) -> str:
        """The measurement in words, for the student."""
        _, words = band(self.ratio)
        return (
            f"{self.shape.name} {self.shape.x} with {self.shape.weight[0]} filters of "
            f"{self.shape.weight[2]}x{self.shape.weight[3]}, stride {self.shape.stride}, padding {self.shape.padding}: "
            f"your conv2d_fast took {1000 * statistics.median(self.student):.0f} ms, the reference "
            f"{1000 * statistics.median(self.reference):.0f} ms ({self.clock} time, median of {len(self.student)} "
            "rounds): "
            f"{self.ratio:.1f}x, {words}, {self.fraction:.0%} of the points"
        )


Call = Callable[[tuple[np.ndarray, np.ndarray, np.ndarray], float | None], CallResult]


def measure_speed(
    shape: SpeedShape,
    student: Call,
    reference: Call,
    check: Callable[[CallResult, CallResult, tuple[np.ndarray, ...]], None],
    *,
    seed: int,
    rounds: int = ROUNDS,
) -> SpeedVerdict:
    """Time the student's function against the reference's on one shape (see the module docstring).

    Args:
        shape: the layer.
        student: makes one student call with the given inputs and timeout.
        reference: makes one reference call with the given inputs.
        check: raises when the student's result (first) does not match the reference's (second).
        seed: the first round's seed.
        rounds: timed rounds before any re-measurement.

    Returns:
        The verdict.
    """
    warm_inputs = fresh_inputs(shape, seed)
    warm_reference = reference(warm_inputs, None)
    timeout = max(3.0, TIMEOUT_FACTOR * call_time(warm_reference))
    check(student(warm_inputs, timeout), warm_reference, warm_inputs)
    student_times: list[float] = []
    reference_times: list[float] = []
    clocks: set[str] = set()

    def run(count: int) -> None:
        for _ in range(count):
            inputs = fresh_inputs(shape, seed + 1 + len(student_times))
            if len(student_times) % 2 == 0:
                mine = student(inputs, timeout)
                theirs = reference(inputs, None)
            else:
                theirs = reference(inputs, None)
                mine = student(inputs, timeout)
            check(mine, theirs, inputs)
            student_times.append(call_time(mine))
            reference_times.append(call_time(theirs))
            clocks.add("CPU" if mine.cpu_seconds is not None and theirs.cpu_seconds is not None else "wall")

    def verdict() -> SpeedVerdict:
        clock = "CPU" if clocks == {"CPU"} else "wall"
        return SpeedVerdict(shape, tuple(student_times), tuple(reference_times), clock)

    run(rounds)
    if near_band_edge(verdict().ratio):
        _log.info("%s: ratio %.3f is near a band edge; %d more rounds", shape.name, verdict().ratio, EXTRA_ROUNDS)
        run(EXTRA_ROUNDS)
    return verdict()


@contextlib.contextmanager
def lease_cpu() -> Iterator[str]:
    """A CPU of this process's affinity for one grading's speed twins, not held by another grading.

    Both twins of a grading run pinned to one CPU. Chosen by pid alone, two gradings at once
    (``grade-all --jobs 2``) took the same CPU half the time and shared it while the other one
    idled: the same CPU-time ratios, twice the wall time. Each CPU is leased with ``flock`` on a
    file in a private folder of this user's; when all are taken (more gradings than CPUs) or the
    folder is not safely ours, the pid decides as before.

    Yields:
        The CPU, as a cpuset list (``"1"``).
    """
    allowed = sorted(os.sched_getaffinity(0))
    first = os.getpid() % len(allowed)
    order = allowed[first:] + allowed[:first]
    folder = Path(tempfile.gettempdir()) / f"wsgrade-cpus-{os.getuid()}"
    with contextlib.ExitStack() as stack:
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.stat(follow_symlinks=False)
            safe = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
        except OSError:
            safe = False
        for cpu in order if safe else ():
            fd = os.open(folder / f"cpu-{cpu}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            stack.callback(os.close, fd)
            yield str(cpu)
            return
        yield str(order[0])
