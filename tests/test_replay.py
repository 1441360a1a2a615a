"""Replaying the hidden tests' recorded inputs (``autograder/replay.py``) changes no verdict.

The replay must make the very calls hypothesis makes, in the same order, and give every submission
the same report; a test that does anything but pass on its recording must be left to hypothesis;
and the recording, a pickle, must never be read from where someone else could have written it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from autograder import grading, replay
from autograder.checks import SubmissionProxy
from autograder.grading import grade
from autograder.release import RELEASE_DIR
from autograder.sandbox.client import Sandbox
from autograder.source import REPO_ROOT
from tests.corpus import reference_source
from tests.test_grading import _without_timing

EXAMPLES = REPO_ROOT / "examples" / "submissions"


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reference") / "weight_sharing.py"
    path.write_text(reference_source())
    return path


def test_a_replayed_grading_makes_the_calls_hypothesis_makes_in_its_order(
    reference_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call of the student's code, test by test: its function and its arguments, pickled."""
    grade(reference_file, performance=False, select="hand_example")  # records the inputs, if not yet done
    calls: dict[str, list[str]] = defaultdict(list)
    current = {"test": ""}
    original_call = Sandbox.call

    def call(self: Sandbox, function: str, args: tuple[Any, ...] = (), kwargs: Any = None, **options: Any) -> Any:
        calls[current["test"]].append(hashlib.sha256(pickle.dumps((function, args, kwargs))).hexdigest())
        return original_call(self, function, args, kwargs, **options)

    original_begin = SubmissionProxy.begin_test

    def begin(self: Any) -> None:
        current["test"] = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        original_begin(self)

    replayers: list[replay.Replayer] = []

    class Watched(replay.Replayer):
        def __init__(self, recording: replay.Recording) -> None:
            super().__init__(recording)
            replayers.append(self)

    monkeypatch.setattr(Sandbox, "call", call)
    monkeypatch.setattr(SubmissionProxy, "begin_test", begin)
    monkeypatch.setattr(grading, "Replayer", Watched)
    drawn = grade(reference_file, performance=False, replay=False)
    drawn_calls, calls = dict(calls), defaultdict(list)
    replayed = grade(reference_file, performance=False)
    assert _without_timing(replayed) == _without_timing(drawn)
    assert dict(calls) == drawn_calls
    (replayer,) = replayers
    recording = replayer.recording
    assert len(recording.examples) == 27 and not recording.unrecorded  # every hypothesis test of the suite
    assert sorted(replayer.replayed) == sorted(recording.examples) and not replayer.redrawn
    assert sum(len(examples) for examples in recording.examples.values()) > 600


@pytest.mark.parametrize(
    "path",
    [
        EXAMPLES / "carol_classic_mistakes.py",
        EXAMPLES / "bob_partial",
        RELEASE_DIR / "weight_sharing.py",
    ],
    ids=["carol (classic mistakes)", "bob (partial)", "the stubs"],
)
def test_a_submission_with_mistakes_gets_the_same_report_with_and_without_replay(path: Path) -> None:
    replayed, drawn = grade(path, performance=False), grade(path, performance=False, replay=False)
    assert _without_timing(replayed) == _without_timing(drawn)
    assert replayed.score < replayed.max_score


_CRASHES = """
def conv2d(image, kernel):
    import os
    if image.shape[0] == 5:
        os.abort()  # the worker dies
    return _reference_conv2d(image, kernel)
"""


def test_a_crash_gets_the_same_verdict_with_and_without_replay(tmp_path: Path) -> None:
    """A crash stops the replay: hypothesis then meets it again, counts it and shrinks as
    it would have without replay (a crash counted twice would leave it fewer tries), and the crash's
    last words are the dying worker's own. Only the report's note on restarts can differ: the
    replay's crash restarted the worker once more."""
    source = reference_source().replace("def conv2d(", "def _reference_conv2d(", 1)
    path = tmp_path / "weight_sharing.py"
    path.write_text(source + _CRASHES)
    replayed = grade(path, performance=False, select="conv2d_matches")
    drawn = grade(path, performance=False, select="conv2d_matches", replay=False)
    assert _without_timing(replayed)["tests"] == _without_timing(drawn)["tests"]
    assert replayed.score == drawn.score < replayed.max_score
    (test,) = replayed.tests
    assert "it was stopped by an abort" in test.output and test.output.count("Fatal Python error") == 1


_SUITE = """
import os
from hypothesis import given, settings, strategies as st

CALLS = []


@settings(derandomize=True, database=None, max_examples=20)
@given(x=st.integers(0, 50), data=st.data())
def test_sum(x, data):
    y = data.draw(st.integers(0, x))
    if os.environ.get("MORE_DRAWS") == "1":
        data.draw(st.booleans())
    CALLS.append((x, y))
    assert x + y < int(os.environ.get("LIMIT", "1000")), "too big"
"""

_RUN = """
import json, os, sys, pickle, io, contextlib
import pytest
from autograder import replay
suite, mode = sys.argv[1], sys.argv[2]
module = {}
recorder = replay.Recorder()
plugins = [recorder]
if mode != "record":
    with open(suite + ".recording", "rb") as handle:
        replayer = replay.Replayer(pickle.load(handle))
    plugins = [replayer]
log = io.StringIO()
with contextlib.redirect_stdout(log):
    code = pytest.main([suite, "-q", "-p", "no:cacheprovider", "--tb=short"], plugins=plugins)
calls = sys.modules[[n for n in sys.modules if n.endswith("test_suite")][0]].CALLS
if mode == "record":
    with open(suite + ".recording", "wb") as handle:
        pickle.dump(recorder.recording("key"), handle)
    print(json.dumps({"code": int(code), "calls": calls, "recorded": sum(map(len, recorder.examples.values())),
                      "log": log.getvalue()}))
else:
    print(json.dumps({"code": int(code), "calls": calls, "replayed": replayer.replayed, "redrawn": replayer.redrawn,
                      "log": log.getvalue()}))
"""


def _run_suite(folder: Path, mode: str, **env: str) -> dict[str, Any]:
    """Run the small suite above in a fresh process: ``record`` (plain hypothesis, recorded) or ``replay``."""
    folder.mkdir(exist_ok=True)
    suite = folder / "test_suite.py"
    suite.write_text(_SUITE)
    result = subprocess.run(
        [sys.executable, "-c", _RUN, str(suite), mode],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        timeout=120,
        check=True,
    )
    data: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return data


def test_a_test_that_passes_on_its_recording_runs_only_on_it(tmp_path: Path) -> None:
    recorded = _run_suite(tmp_path, "record")
    assert recorded["code"] == 0 and recorded["recorded"] == len(recorded["calls"]) >= 20
    replayed = _run_suite(tmp_path, "replay")
    assert replayed["code"] == 0 and replayed["replayed"] == ["test_suite.py::test_sum"]
    assert replayed["calls"] == recorded["calls"]  # the same inputs, in the same order, and nothing else


def test_a_failure_on_a_recorded_input_is_found_and_shrunk_by_hypothesis(tmp_path: Path) -> None:
    recorded = _run_suite(tmp_path, "record")
    failing = next(n for n, (x, y) in enumerate(recorded["calls"]) if x + y >= 60)
    plain = _run_suite(tmp_path / "plain", "record", LIMIT="60")  # hypothesis alone
    replayed = _run_suite(tmp_path, "replay", LIMIT="60")
    assert replayed["redrawn"] == ["test_suite.py::test_sum"] and not replayed["replayed"]
    assert replayed["code"] == plain["code"] == 1
    shrunk = replayed["log"][replayed["log"].index("Failing test case") :].split("\n=")[0]
    assert "x=30" in shrunk and shrunk in plain["log"]  # x + y == 60, the smallest failure: shrunk as before
    # The replay stopped at the first failing input; then hypothesis ran the test from its start.
    assert replayed["calls"] == recorded["calls"][: failing + 1] + plain["calls"]


def test_a_test_that_draws_other_than_recorded_runs_under_hypothesis(tmp_path: Path) -> None:
    _run_suite(tmp_path, "record")
    plain = _run_suite(tmp_path / "plain", "record", MORE_DRAWS="1")
    replayed = _run_suite(tmp_path, "replay", MORE_DRAWS="1")
    assert replayed["redrawn"] == ["test_suite.py::test_sum"] and replayed["code"] == 0
    assert replayed["calls"] == plain["calls"]


_PLANTED = """
import os, pickle
class Planted:
    def __reduce__(self):
        return (os.system, ("touch " + {marker!r},))
with open({path!r}, "wb") as handle:
    pickle.dump(Planted(), handle)
"""

_GRADE = """
import sys
from autograder import grading
report = grading.grade(sys.argv[1], performance=False, select="matches_formula")
print(report.score, report.max_score)
"""


def test_a_recording_where_others_may_write_is_never_loaded(tmp_path: Path, reference_file: Path) -> None:
    """A pickle runs code when it is loaded: one in a folder that others may write to is ignored."""
    cache, marker = tmp_path / "cache", tmp_path / "planted-code-ran"
    cache.mkdir()
    env = {**os.environ, "WSGRADE_CACHE": str(cache)}
    key = subprocess.run(
        [sys.executable, "-c", "from autograder import replay; print(replay.fingerprint())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    planted = cache / f"inputs-{key[:32]}.pickle"
    subprocess.run([sys.executable, "-c", _PLANTED.format(marker=str(marker), path=str(planted))], check=True)
    for folder_mode, file_mode in ((0o777, 0o600), (0o700, 0o666)):
        cache.chmod(folder_mode)
        planted.chmod(file_mode)
        result = subprocess.run(
            [sys.executable, "-c", _GRADE, str(reference_file)], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, result.stderr
        score, possible = map(float, result.stdout.split())
        assert score == possible > 0
        assert "others may write there" in result.stderr
        assert not marker.exists()


def test_the_recording_is_kept_where_only_the_grader_may_look(tmp_path: Path, reference_file: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "WSGRADE_CACHE": str(cache)}
    prepared = subprocess.run(
        [sys.executable, "-m", "autograder", "prepare"], capture_output=True, text=True, env=env, timeout=300
    )
    assert prepared.returncode == 0, prepared.stderr
    assert "the inputs of 27 hypothesis tests" in prepared.stdout and str(cache) in prepared.stdout
    result = subprocess.run(  # loads what prepare recorded
        [sys.executable, "-c", _GRADE, str(reference_file)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    (recording,) = cache.glob("inputs-*.pickle")
    assert cache.stat().st_mode & 0o777 == 0o700 and recording.stat().st_mode & 0o777 == 0o600
    assert "others may write" not in result.stderr
    assert not list(cache.glob("*.partial"))


def test_a_grading_whose_recording_fails_draws_its_inputs(
    tmp_path: Path, reference_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(key: str) -> replay.Recording:
        raise OSError("no space left on device")

    monkeypatch.setenv("WSGRADE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(replay, "_LOADED", {})
    monkeypatch.setattr(grading, "_record_inputs", broken)
    report = grade(reference_file, performance=False, select="matches_formula")
    assert report.score == report.max_score > 0
    assert "recording them failed (OSError: no space left on device)" in caplog.text


def test_a_grading_does_not_wait_while_another_process_records(
    tmp_path: Path, reference_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """grade-all's pool: while one process records, the others grade at once, drawing their inputs."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("WSGRADE_CACHE", str(cache))
    monkeypatch.setattr(replay, "_LOADED", {})
    with open(cache / "inputs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a pool process recording would
        report = grade(reference_file, performance=False, select="matches_formula")
    assert report.score == report.max_score > 0
    assert not list(cache.glob("inputs-*")) and not replay._LOADED  # it neither recorded nor waited
