"""Replay the hidden tests' inputs instead of drawing them anew at every grading.

The hidden suite's hypothesis tests are derandomised (``hidden_tests/conftest.py``), so a test that
passes runs on the same examples whatever the submission: hypothesis picks each example from the
test's own seed and from the examples before it, and those all passed. Drawing them took about a
third of a warm grading (hypothesis's engine, and the strategies building the arrays). So they are
drawn once, while the reference is graded with a :class:`Recorder`, and later gradings replay them
with a :class:`Replayer`:

* each example's inputs (the ``@given`` arguments, then what each ``data.draw`` returned, in order)
  are pickled the moment hypothesis draws them, before the test can change them, in one stream per
  example so that objects shared between them stay shared;
* a replayed test runs its body on those inputs, in order, under the same seeded global PRNGs that
  hypothesis sets for each example;
* the moment anything differs from a clean pass (a check fails, the student's code raises or hangs,
  the test draws something else, more or less), the replay stops and hypothesis runs the test from
  its first example, as it always did, so that a failure is found, shrunk and reported exactly as
  without replay. Only tests that pass are decided by the replay alone.

The recording is the grader's own data, written by the grader's process from the reference, never by
or near a student's code. It is keyed by a digest of the grader's source (the hidden tests, the
strategies, the reference) and the versions of Python, hypothesis, numpy and pytest; kept in a folder
only the grader's user may enter (``$WSGRADE_CACHE``, else ``$XDG_CACHE_HOME/wsgrade``, else
``~/.cache/wsgrade``); and read only while that folder and the file belong to this user and nobody
else may write to them. Where none of that works the grading draws its inputs as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import is_hypothesis_test
from hypothesis.control import BuildContext
from hypothesis.core import StateForActualGivenExecution
from hypothesis.errors import StopTest
from hypothesis.internal.conjecture.data import Status
from hypothesis.internal.entropy import deterministic_PRNG
from hypothesis.strategies._internal.core import DataObject

__all__ = ["Recorder", "Recording", "Replayer", "cache_dir", "fingerprint", "recorded"]

_log = logging.getLogger(__name__)
_PACKAGE = Path(__file__).resolve().parent
_KEEP = 8  # recordings kept in the cache folder (other grader versions on this machine)


class _DataMarker:
    """Stands for the ``st.data()`` argument in a recording (it is replayed by :class:`_ReplayedData`)."""

    def __reduce__(self) -> str:
        return "_DATA"  # pickled by name: the same object comes back


_DATA = _DataMarker()


class _Diverged(Exception):
    """The replayed test did not draw what the recording holds."""


class _Stopped(BaseException):
    """Ends a replayed example where hypothesis stopped it (a ``BaseException``, as hypothesis's own
    ``StopTest``, so that no check catches it)."""


@dataclass(frozen=True)
class Recording:
    """The recorded inputs of one version of the hidden suite.

    Attributes:
        key: the :func:`fingerprint` it was recorded under.
        examples: by test node id, one ``(stopped, stream)`` per example in hypothesis's order: the
            example's pickle stream, and whether hypothesis stopped it at the draw after the last
            one recorded (its choices ran out) instead of letting it pass.
        unrecorded: the hypothesis tests that were not recorded (they always run under hypothesis).
    """

    key: str
    examples: dict[str, tuple[tuple[bool, bytes], ...]]
    unrecorded: tuple[str, ...] = ()


@functools.cache
def fingerprint() -> str:
    """A digest of everything the recorded inputs depend on.

    Returns:
        The hex digest of the grader's source files (the hidden tests and strategies among them),
        the reference solution and the versions of Python, hypothesis, numpy and pytest.
    """
    from autograder.source import SOLUTION_SOURCE

    digest = hashlib.sha256()
    for part in (sys.version, hypothesis.__version__, np.__version__, pytest.__version__):
        digest.update(part.encode() + b"\0")
    sources = sorted(_PACKAGE.rglob("*.py")) + ([SOLUTION_SOURCE] if SOLUTION_SOURCE.exists() else [])
    for path in sources:
        digest.update(str(path.relative_to(path.parents[1])).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir() -> Path:
    """The folder of the recordings: ``$WSGRADE_CACHE``, else ``$XDG_CACHE_HOME/wsgrade``, else
    ``~/.cache/wsgrade``."""
    if os.environ.get("WSGRADE_CACHE"):
        return Path(os.environ["WSGRADE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wsgrade"


def _private(path: Path) -> bool:
    """Whether ``path`` belongs to this user and nobody else may write to it."""
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _recording_path(key: str) -> Path:
    return cache_dir() / f"inputs-{key[:32]}.pickle"


_LOADED: dict[str, Recording] = {}


def _load(key: str) -> Recording | None:
    """The recording for ``key``: from this process's memory, else from the cache folder."""
    if key in _LOADED:
        return _LOADED[key]
    path = _recording_path(key)
    try:
        if not path.exists():
            return None
        if not (_private(path.parent) and _private(path)):
            _log.warning("not replaying the inputs recorded in %s: others may write there", path)
            return None
        recording = pickle.loads(path.read_bytes())  # the grader's own file, checked just above
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as problem:
        _log.warning("not replaying the inputs recorded in %s: %s", path, problem)
        return None
    if not isinstance(recording, Recording) or recording.key != key:
        return None
    _LOADED[key] = recording
    return recording


def _save(recording: Recording) -> None:
    """Write the recording into the cache folder (atomically), and drop the oldest ones."""
    path = _recording_path(recording.key)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pickle.dumps(recording, protocol=pickle.HIGHEST_PROTOCOL))
        partial.replace(path)
        older = sorted(path.parent.glob("inputs-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)[_KEEP:]
        for stale in older:
            stale.unlink(missing_ok=True)
    except OSError as problem:  # a full or read-only disk: this process still replays from memory
        partial.unlink(missing_ok=True)
        _log.warning("could not keep the recorded inputs in %s: %s", path, problem)


@contextlib.contextmanager
def _cache_lock(*, wait: bool) -> Iterator[bool | None]:
    """Hold the cache folder's lock (one recording at a time).

    Yields:
        True when held; False when the folder cannot be used (the recording is then kept in this
        process's memory only); None when another process holds it and ``wait`` is False.

    A folder that others may write to is not used at all (and not tightened either: whatever lies in
    it may have been planted).
    """
    folder = cache_dir()
    descriptor = None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _private(folder):
            descriptor = os.open(folder / "inputs.lock", os.O_RDWR | os.O_CREAT, 0o600)
        else:
            _log.warning("recorded inputs are kept in memory only: others may write to %s", folder)
    except OSError as problem:
        _log.warning("recorded inputs are kept in memory only (%s: %s)", folder, problem)
    if descriptor is None:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield True
    finally:
        os.close(descriptor)


def recorded(record: Callable[[str], Recording], *, wait: bool = True) -> Recording | None:
    """The recording of this version of the hidden suite, made with ``record`` if there is none yet.

    Args:
        record: makes the recording under the key it is given (it grades the reference).
        wait: while another process on this machine records (grade-all's pool, a Dask
            ``LocalCluster``), wait for it; False returns None at once instead, and that grading
            draws its inputs meanwhile.

    Returns:
        The recording, or None (another process is recording and ``wait`` is False).
    """
    key = fingerprint()
    found = _load(key)
    if found is not None:
        return found
    with _cache_lock(wait=wait) as usable:
        if usable is None:
            return None
        found = _load(key) if usable else None
        if found is None:
            found = record(key)
            if usable:
                _save(found)
    _LOADED[key] = found
    return found


def _strategy_label(strategy: Any) -> str:
    """A cheap name of a strategy (``maybe_views``, ``SampledFromStrategy``), to check a replayed draw."""
    function = getattr(strategy, "function", None)
    return getattr(function, "__qualname__", None) or type(strategy).__name__


@contextlib.contextmanager
def _replaced(owner: type, name: str, wrapper: Callable[..., Any]) -> Iterator[None]:
    original = owner.__dict__[name]

    def replacement(this: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(original, this, *args, **kwargs)

    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


@dataclass
class Recorder:
    """A pytest plugin that records the inputs of every hypothesis test that passes.

    Attributes:
        examples: by node id, the examples recorded so far.
        spoiled: the hypothesis tests that cannot be replayed (one did not pass cleanly, or its
            inputs could not be pickled).
    """

    examples: dict[str, list[tuple[bool, bytes]]] = field(default_factory=dict)
    spoiled: set[str] = field(default_factory=set)
    _test: str | None = None
    _stream: io.BytesIO | None = None
    _pickler: pickle.Pickler | None = None
    _started: bool = False
    _stopped_at_draw: bool = False

    def recording(self, key: str) -> Recording:
        """What was recorded, as a :class:`Recording` under ``key``."""
        kept = {test: tuple(streams) for test, streams in self.examples.items() if test not in self.spoiled}
        return Recording(key, kept, tuple(sorted(self.spoiled)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        if not is_hypothesis_test(getattr(item, "obj", None)):
            return (yield)
        self._test = item.nodeid
        self.examples[item.nodeid] = []
        try:
            with (
                _replaced(StateForActualGivenExecution, "execute_once", self._execute_once),
                _replaced(BuildContext, "prep_args_kwargs_from_strategies", self._prep),
                _replaced(DataObject, "draw", self._draw),
            ):
                return (yield)
        except BaseException:
            self.spoiled.add(item.nodeid)
            raise
        finally:
            self._test = None

    def _execute_once(self, original: Callable[..., Any], state: Any, data: Any, **options: Any) -> Any:
        self._stream = io.BytesIO()
        self._pickler = pickle.Pickler(self._stream, protocol=pickle.HIGHEST_PROTOCOL)
        self._started = self._stopped_at_draw = False
        if options.get("example_kwargs") is not None:  # an explicit @example
            self._dump(options["example_kwargs"], given=True)
        try:
            result = original(state, data, **options)
        except StopTest:
            # Hypothesis ended this example inside one of the test's own draws: its choices ran
            # out (an overrun) once the test had begun. Replayed, the test stops at that draw too.
            self._end(data, stopped=self._stopped_at_draw)
            raise
        except BaseException:
            self._end(data, stopped=None)  # a failure: hypothesis shrinks, and this test is not replayed
            raise
        self._end(data, stopped=False)
        return result

    def _end(self, data: Any, *, stopped: bool | None) -> None:
        stream, self._stream, self._pickler = self._stream, None, None
        if not self._started or self._test is None or stream is None:
            return  # no example began (hypothesis stopped while drawing the @given arguments)
        passed = stopped is False and data.status == Status.VALID
        if not (passed or (stopped and data.status < Status.VALID)):
            self.spoiled.add(self._test)
        elif self._test not in self.spoiled:
            self.examples[self._test].append((bool(stopped), stream.getvalue()))

    def _prep(self, original: Callable[..., Any], context: Any, strategies: dict[str, Any]) -> Any:
        kwargs, labels = original(context, strategies)
        self._dump(kwargs, given=True)
        return kwargs, labels

    def _draw(self, original: Callable[..., Any], data: Any, strategy: Any, label: Any = None) -> Any:
        try:
            value = original(data, strategy, label)
        except StopTest:
            self._stopped_at_draw = True
            raise
        if self._started:
            self._dump((_strategy_label(strategy), value), given=False)
        return value

    def _dump(self, value: Any, *, given: bool) -> None:
        if self._pickler is None or self._test is None:
            return
        if given:
            value = {name: _DATA if isinstance(v, DataObject) else v for name, v in value.items()}
            self._started = True
        try:
            self._pickler.dump(value)
        except Exception as problem:  # anything unpicklable: this test is not replayed
            _log.info("the inputs of %s are not recorded: %s", self._test, problem)
            self.spoiled.add(self._test)
            self._pickler = None


class _ReplayedData:
    """The ``st.data()`` argument of a replayed example: each draw returns the recorded value."""

    def __init__(self, reader: pickle.Unpickler, *, stopped: bool) -> None:
        self._reader = reader
        self._stopped = stopped

    def draw(self, strategy: Any, label: Any = None) -> Any:
        try:
            name, value = self._reader.load()
        except EOFError:
            if self._stopped:
                raise _Stopped from None
            raise _Diverged("the test drew more than was recorded") from None
        if name != _strategy_label(strategy):
            raise _Diverged(f"the test drew from {_strategy_label(strategy)}, the recording from {name}")
        return value


def _replay_example(test: Callable[..., Any], fixtures: dict[str, Any], stopped: bool, stream: bytes) -> None:
    source = io.BytesIO(stream)
    reader = pickle.Unpickler(source)
    given = reader.load()
    data = _ReplayedData(reader, stopped=stopped)
    try:
        with deterministic_PRNG():
            test(**fixtures, **{name: data if value is _DATA else value for name, value in given.items()})
    except _Stopped:
        return  # where hypothesis stopped it: every recorded draw was made
    if stopped:
        raise _Diverged("the test ended before the draw where its example stopped")
    if source.tell() != len(stream):
        raise _Diverged("the test drew less than was recorded")


@dataclass
class Replayer:
    """A pytest plugin that runs each recorded hypothesis test on its recorded inputs.

    A test whose replay does anything but pass runs under hypothesis from its first example (see the
    module docstring). Before it does, each of the test's fixtures that has a ``replay_stopped()``
    method is told, so that it can put back per-test state that the replay changed.

    Attributes:
        recording: the inputs.
        replayed: the tests that the replay decided (they passed).
        redrawn: the tests that ran under hypothesis after their replay stopped.
    """

    recording: Recording
    replayed: list[str] = field(default_factory=list)
    redrawn: list[str] = field(default_factory=list)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        examples = self.recording.examples.get(pyfuncitem.nodeid)
        if not examples or not is_hypothesis_test(pyfuncitem.obj):
            return None
        test = pyfuncitem.obj.hypothesis.inner_test
        fixtures = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        notes = len(pyfuncitem.user_properties)
        try:
            for stopped, stream in examples:
                _replay_example(test, fixtures, stopped, stream)
        except KeyboardInterrupt:
            raise
        except BaseException:  # a failure, a skip, a divergence: hypothesis decides
            del pyfuncitem.user_properties[notes:]
            for value in fixtures.values():  # e.g. the submission's proxy: its per-test state
                tell = getattr(value, "replay_stopped", None)
                if callable(tell):
                    tell()
            self.redrawn.append(pyfuncitem.nodeid)
            return None  # pytest's own pytest_pyfunc_call runs the test under hypothesis
        self.replayed.append(pyfuncitem.nodeid)
        return True
