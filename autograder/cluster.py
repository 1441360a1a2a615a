"""``grade-all`` on a Dask cluster: one grading per student, submitted to Dask distributed.

``--cluster ADDRESS`` connects to a running scheduler (``dask scheduler`` on a head node, or a
dask-jobqueue ``SLURMCluster``'s ``scheduler_address``); ``--cluster local:N`` starts a
:class:`distributed.LocalCluster` of N worker processes, one thread each. The coordinator (the
``grade-all`` process) stays the only writer of the output folder: a worker gets the loaded
submission, grades it in its own sandbox and returns a :class:`~autograder.batch.GradingOutcome`.

Faults are Dask's: a worker that dies in the middle of a grading (the OOM killer, a SIGKILL, a lost
node) has its grading scheduled again on another worker; a grading that has been on
:data:`CLUSTER_DEATHS_ALLOWED` + 1 dying workers ends in Dask's ``KilledWorker``, which the
coordinator records as a grader error for that student. On a cluster of your own the scheduler's
``distributed.scheduler.allowed-failures`` setting decides that number instead.

Every worker needs this package at the coordinator's version (a worker with another one refuses
to grade) and one thread (``dask worker --nthreads 1``): gradings in one process run one at a
time whatever the thread count, so more threads only leave cores idle.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder import batch
from autograder.batch import EngineState, FinishedGrading, GradingJob, GradingOutcome, JobLoader, lost_outcome

if TYPE_CHECKING:
    from distributed import Client, Future

    from autograder.submission import PreparedSubmission

__all__ = [
    "CLUSTER_DEATHS_ALLOWED",
    "LOCAL_PREFIX",
    "SCHEDULER_SETTINGS",
    "ClusterEngine",
    "ClusterUnavailable",
    "connect",
    "parse_local",
]

#: Workers that may die under one grading before it is a grader error (``--cluster local:N``).
CLUSTER_DEATHS_ALLOWED = 2
#: ``--cluster local:N``: a new local cluster of N worker processes.
LOCAL_PREFIX = "local:"
#: The Dask settings a grading scheduler needs; ``local:N`` uses them, and so should a scheduler of
#: your own (``with dask.config.set(SCHEDULER_SETTINGS): SLURMCluster(...)``, see README).
SCHEDULER_SETTINGS: dict[str, object] = {
    # a grading on dying workers is tried this many more times, then raises KilledWorker
    "distributed.scheduler.allowed-failures": CLUSTER_DEATHS_ALLOWED,
    # one grading per worker thread, none queued behind it: a dying worker takes no innocent with it
    "distributed.scheduler.worker-saturation": 1.0,
}
_log = logging.getLogger(__name__)
_INSTALL = 'pip install -e ".[cluster]"'
_CONNECT_SECONDS = 30


class ClusterUnavailable(RuntimeError):
    """Dask is not installed, or the scheduler cannot be reached; the message says what to do."""


def parse_local(spec: str) -> int | None:
    """The worker count of ``local:N``, or None for a scheduler address.

    Args:
        spec: the ``--cluster`` value.

    Raises:
        ValueError: for ``local:`` followed by anything but a whole number of at least 1.
    """
    if not spec.startswith(LOCAL_PREFIX):
        return None
    count = spec.removeprefix(LOCAL_PREFIX)
    if not count.isdigit() or int(count) < 1:
        raise ValueError(
            f"--cluster {spec!r}: after {LOCAL_PREFIX!r} comes the number of worker processes, e.g. local:4"
        )
    return int(count)


@contextmanager
def connect(spec: str, *, scratch: Path | None = None) -> Iterator[Client]:
    """A Dask client for ``spec``: a new local cluster (``local:N``) or a running scheduler's address.

    Args:
        spec: ``local:N`` or an address such as ``tcp://head-node:8786``.
        scratch: the run's scratch folder, the temporary folder of a new local cluster's workers.

    Yields:
        The client; the local cluster, if one was made, is closed on the way out.

    Raises:
        ClusterUnavailable: Dask is not installed, or no scheduler answers at the address.
        ValueError: for a malformed ``local:N``.
    """
    workers = parse_local(spec)
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as problem:
        raise ClusterUnavailable(
            f"--cluster needs Dask distributed ({problem.name} is missing); install it with: {_INSTALL}"
        ) from None
    if workers is None:
        try:
            client = Client(spec, timeout=_CONNECT_SECONDS)
        except (OSError, TimeoutError, ValueError) as problem:
            raise ClusterUnavailable(
                f"--cluster {spec}: no Dask scheduler answered there within {_CONNECT_SECONDS} s ({problem}); "
                "start one (`dask scheduler`, or a dask-jobqueue cluster, see README) and pass its address"
            ) from None
        with client:
            yield client
        return
    with dask.config.set(SCHEDULER_SETTINGS):
        cluster = LocalCluster(
            n_workers=workers,
            processes=True,
            threads_per_worker=1,
            dashboard_address=None,
            memory_limit=0,
            **({"local_directory": str(scratch), "env": {"TMPDIR": str(scratch)}} if scratch else {}),
        )
    with cluster, Client(cluster) as client:
        yield client


class ClusterEngine:
    """Gradings on a Dask cluster, a bounded window of them submitted at a time.

    Args:
        client: the Dask client.
        prepare: reads each entry on the coordinator.
    """

    def __init__(self, client: Client, prepare: JobLoader) -> None:
        self.client = client
        self.prepare = prepare
        self._state = EngineState(0, 0, 0)
        self._checked = 0.0

    def state(self) -> EngineState:
        """Where the cluster stands: gradings being processed by a worker and workers alive (asked
        of the scheduler at most once a second)."""
        if time.monotonic() - self._checked >= 1.0:
            processing = self.client.processing()
            self._state = EngineState(sum(len(keys) for keys in processing.values()), len(processing), 0)
            self._checked = time.monotonic()
        return self._state

    def _slots(self) -> int:
        return sum(self.client.nthreads().values())

    def results(self, jobs: Iterable[GradingJob]) -> Generator[FinishedGrading | None, None, None]:
        """Grade ``jobs`` on the cluster; see :class:`autograder.batch.Engine`."""
        from distributed import wait
        from distributed.scheduler import KilledWorker

        queue: deque[GradingJob] = deque(jobs)
        pending: dict[Future, tuple[GradingJob, PreparedSubmission]] = {}
        while queue or pending:
            # twice the workers' threads in flight: each worker has its next one at hand, and the
            # coordinator never holds a whole class of loaded submissions (a cluster may grow)
            window = max(2, 2 * self._slots())
            while queue and len(pending) < window:
                job = queue.popleft()
                prepared = self.prepare(job)
                if isinstance(prepared, GradingOutcome):
                    yield FinishedGrading(job, None, prepared)
                    continue
                submission, arguments = prepared
                # looked up now, so that a test's stand-in for it travels to the workers too
                future = self.client.submit(
                    _in_scratch,
                    batch._grade_one,
                    *arguments,
                    key=f"wsgrade-{job.student}-{uuid.uuid4().hex}",
                    pure=False,
                )
                pending[future] = (job, submission)
            if not pending:
                continue
            try:
                done, _ = wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                yield None
                continue
            for future in done:
                job, submission = pending.pop(future)
                yield FinishedGrading(job, submission, _outcome(future, job, KilledWorker))
                future.release()


def _in_scratch(grade: Callable[..., GradingOutcome], *arguments: Any) -> GradingOutcome:
    """On a worker: ``grade(*arguments)`` with every temporary file of the grading (sandboxes,
    hypothesis home, reference twin) in a locked scratch folder of its own.

    A worker killed in the middle of a grading (a SIGKILL, the OOM killer) cannot clean up; its
    folder's lock is then free, and the next grading on that machine removes it.
    """
    with batch.run_scratch() as scratch:
        before = tempfile.tempdir, os.environ.get("TMPDIR")
        tempfile.tempdir = os.environ["TMPDIR"] = str(scratch)
        try:
            return grade(*arguments)
        finally:
            tempfile.tempdir = before[0]
            if before[1] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = before[1]


def _outcome(future: Future, job: GradingJob, killed: type[BaseException]) -> GradingOutcome:
    """The outcome of a finished future: its result, or a grader error saying what went wrong."""
    try:
        result: Any = future.result()
    except killed as problem:
        _log.warning("%s: every Dask worker that graded it died (%s)", job.student, problem)
        return lost_outcome(job.student, f"every Dask worker grading it died; Dask gave up: {problem}")
    except Exception as problem:  # the task could not run (unpicklable, a worker without this package)
        _log.warning("%s: the grading task failed on the cluster", job.student, exc_info=True)
        now = batch._now()
        return GradingOutcome(job.student, "grader-error", None, f"{type(problem).__name__}: {problem}", now, now)
    if not isinstance(result, GradingOutcome):
        raise TypeError(f"a worker returned {type(result).__name__}, not a GradingOutcome")
    return result
