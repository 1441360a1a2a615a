"""The sandbox: student code runs in a worker process; whatever it does, the grader carries on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from autograder.sandbox.client import (
    ArrayView,
    CallTimeout,
    FunctionMissing,
    GradingBudgetExceeded,
    Layer,
    Limits,
    Sandbox,
    SandboxBroken,
    StudentRaised,
    SubmissionDoesNotLoad,
    WorkerCrashed,
)
from autograder.sandbox.wire import Unsupported
from autograder.submission import PreparedSubmission

FAST = Limits(call_timeout=2.0, load_timeout=10.0, memory_bytes=1024**3, output_chars=200)
FUNCTIONS = (
    "ok",
    "boom",
    "quit",
    "hard_exit",
    "segfault",
    "spin",
    "hog",
    "flood",
    "mutate",
    "recurse",
    "subclass",
    "liar",
    "layer_twice",
    "scalar",
    "view_info",
)

HOSTILE = """
import ctypes, os, sys
import numpy as np

def ok(x):
    return x * 2

def boom(x):
    raise ValueError("bad input: " + str(x.shape))

def quit(x):
    sys.exit(3)

def hard_exit(x):
    os._exit(7)

def segfault(x):
    ctypes.string_at(0)

def spin(x):
    while True:
        pass

def hog(x):
    return np.ones((50_000, 50_000))

def flood(x):
    for _ in range(100_000):
        print("spam " * 20)
    return x

def mutate(x, y):
    x += 1
    return y

def recurse(x):
    return recurse(x)

class Sneaky(np.ndarray):
    def __eq__(self, other):
        return True

def subclass(x):
    return x.view(Sneaky)

class Liar:
    def __eq__(self, other):
        return True

def liar(x):
    return Liar()

def layer_twice(layer, x):
    return layer(layer(x))

def scalar(x):
    return np.int64(3), np.float64(0.5), np.bool_(True)

def view_info(x):
    return (x.flags["C_CONTIGUOUS"], x.shape)
"""


def _module(code: str) -> PreparedSubmission:
    return PreparedSubmission("module", (textwrap.dedent(code),), "weight_sharing.py", "<test>", "0" * 64)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    with Sandbox(_module(HOSTILE), FUNCTIONS, FAST) as box:
        yield box


X = np.arange(6.0).reshape(2, 3)


def test_plain_call_round_trips_arrays(sandbox: Sandbox) -> None:
    result = sandbox.call("ok", (X,), argnames=("x",))
    assert type(result.value) is np.ndarray
    np.testing.assert_array_equal(result.value, 2 * X)


def test_exception_is_reported_by_name_with_the_student_traceback(sandbox: Sandbox) -> None:
    with pytest.raises(StudentRaised) as raised:
        sandbox.call("boom", (X,), argnames=("x",))
    assert raised.value.type_name == "ValueError" and raised.value.is_a("Exception")
    assert "bad input: (2, 3)" in raised.value.message
    assert "weight_sharing.py" in raised.value.traceback and "worker.py" not in raised.value.traceback


def test_sys_exit_is_an_exception_and_the_worker_survives(sandbox: Sandbox) -> None:
    with pytest.raises(StudentRaised) as raised:
        sandbox.call("quit", (X,), argnames=("x",))
    assert raised.value.type_name == "SystemExit"
    assert sandbox.call("ok", (X,), argnames=("x",)).value.shape == (2, 3)


@pytest.mark.parametrize(
    ("function", "words"), [("hard_exit", "exited with status 7"), ("segfault", "segmentation fault")]
)
def test_a_dying_worker_costs_only_that_call(sandbox: Sandbox, function: str, words: str) -> None:
    sandbox.call("ok", (X,), argnames=("x",))  # a running worker, whichever test ran before this one
    started = sandbox.workers_started
    with pytest.raises(WorkerCrashed, match=words):
        sandbox.call(function, (X,), argnames=("x",))
    assert sandbox.call("ok", (X,), argnames=("x",)).value.shape == (2, 3)
    assert sandbox.workers_started == started + 1


def test_an_endless_loop_is_stopped_at_the_time_limit(sandbox: Sandbox) -> None:
    started = time.monotonic()
    with pytest.raises(CallTimeout, match="used more than 2 s of CPU time") as late:
        sandbox.call("spin", (X,), argnames=("x",))
    assert not late.value.waited
    assert time.monotonic() - started < 10
    assert sandbox.call("ok", (X,), argnames=("x",)).value.shape == (2, 3)


def test_code_that_sleeps_is_stopped_by_the_wall_clock_backstop_and_told_so() -> None:
    limits = Limits(call_timeout=0.5, wall_factor=2.0, wall_minimum=1.0, load_timeout=10.0)
    with Sandbox(_module("import time\ndef nap(x):\n    time.sleep(60)\n"), ("nap",), limits) as box:
        started = time.monotonic()
        with pytest.raises(CallTimeout, match="waited or slept") as late:
            box.call("nap", (X,), argnames=("x",))
        assert late.value.waited and time.monotonic() - started < 5


def test_a_memory_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    with pytest.raises(StudentRaised) as raised:
        sandbox.call("hog", (X,), argnames=("x",))
    assert raised.value.type_name == "MemoryError"


def test_printing_is_captured_and_cut(sandbox: Sandbox) -> None:
    result = sandbox.call("flood", (X,), argnames=("x",))
    assert result.output.startswith("spam spam")
    assert len(result.output) < 400 and "more characters of output cut" in result.output


def test_in_place_modification_is_reported_by_argument_name(sandbox: Sandbox) -> None:
    result = sandbox.call("mutate", (X.copy(), X.copy()), argnames=("x", "y"))
    assert result.mutated == ("x",)


def test_deep_recursion_is_an_ordinary_exception(sandbox: Sandbox) -> None:
    with pytest.raises(StudentRaised) as raised:
        sandbox.call("recurse", (X,), argnames=("x",))
    assert raised.value.type_name == "RecursionError"


@pytest.mark.parametrize("function", ["subclass", "liar"])
def test_objects_that_claim_equality_do_not_cross(sandbox: Sandbox, function: str) -> None:
    value = sandbox.call(function, (X,), argnames=("x",)).value
    assert isinstance(value, Unsupported)  # a plain record: no behaviour of the student's object crosses over
    assert ("Sneaky" if function == "subclass" else "Liar") in value.description


def test_numpy_scalars_arrive_as_plain_python_values(sandbox: Sandbox) -> None:
    assert sandbox.call("scalar", (X,), argnames=("x",)).value == (3, 0.5, True)
    assert [type(v) for v in sandbox.call("scalar", (X,), argnames=("x",)).value] == [int, float, bool]


def test_views_arrive_as_non_contiguous_arrays(sandbox: Sandbox) -> None:
    view = ArrayView(np.ascontiguousarray(X.T), ((None, None, None), (None, None, None)), (1, 0))
    assert sandbox.call("view_info", (view,), argnames=("x",)).value == (False, (2, 3))


def test_layers_are_built_in_the_worker_from_a_description(sandbox: Sandbox) -> None:
    layer = Layer({"kind": "scale", "factor": 3.0})
    x = np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(sandbox.call("layer_twice", (layer, x), argnames=("layer", "x")).value, 9 * x)


def test_a_missing_function_is_reported(sandbox: Sandbox) -> None:
    with Sandbox(_module("def ok(x):\n    return x\n"), ("ok", "other"), FAST) as box, pytest.raises(FunctionMissing):
        box.call("other", (X,), argnames=("x",))


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("import sys\nsys.exit(0)\n", "raised SystemExit"),
        ("def ok(x):\n    return x +\n", "SyntaxError"),
        ("import os\nos._exit(1)\n", "died while loading"),
        ("while True:\n    pass\n", "used more than 2 s of CPU time"),
    ],
)
def test_a_module_that_does_not_load_fails_every_call_quickly(code: str, words: str) -> None:
    limits = Limits(call_timeout=2.0, load_timeout=2.0, output_chars=200)
    with Sandbox(_module(code), ("ok",), limits) as box:
        with pytest.raises(SubmissionDoesNotLoad, match=words):
            box.call("ok", (X,), argnames=("x",))
        started = time.monotonic()
        with pytest.raises(SubmissionDoesNotLoad):
            box.call("ok", (X,), argnames=("x",))
        assert time.monotonic() - started < 0.5, "the load failure must be remembered, not retried"


def test_notebook_cells_that_fail_are_skipped_not_fatal() -> None:
    cells = ("import numpy as np\n", "raise NotImplementedError('Task 1.1')\n", "def ok(x):\n    return x + 1\n")
    submission = PreparedSubmission("cells", cells, "weight_sharing.ipynb", "<test>", "0" * 64)
    with Sandbox(submission, ("ok",), FAST) as box:
        functions, errors, _ = box.load()
        assert functions == ("ok",)
        assert errors[0]["cell"] == 2 and errors[0]["type"] == "NotImplementedError"
        np.testing.assert_array_equal(box.call("ok", (X,), argnames=("x",)).value, X + 1)


def test_the_grading_budget_stops_further_calls() -> None:
    with Sandbox(_module(HOSTILE), FUNCTIONS, Limits(budget_seconds=0.0)) as box, pytest.raises(GradingBudgetExceeded):
        box.call("ok", (X,), argnames=("x",))


WHO = """
import os

def who():
    return [os.getpid(), os.getppid(), os.getuid()]
"""


@pytest.mark.parametrize("mode", ["full", "uid", "process"])
def test_student_code_runs_in_another_process_and_where_isolated_as_another_user(mode: str) -> None:
    from autograder.sandbox.isolation import choose_isolation

    try:
        choose_isolation(mode)
    except ValueError as problem:
        pytest.skip(f"{mode} isolation is not available here: {problem}")
    with Sandbox(_module(WHO), ("who",), replace(FAST, isolation=mode)) as box:
        pid, parent, uid = box.call("who").value
        host_pid = box._worker.host_pid if box._worker else None
    assert host_pid is not None and host_pid != os.getpid(), "a worker process, not the grader's"
    if mode == "process":
        assert pid == host_pid and parent == os.getpid()
    else:  # in its own PID namespace (full) or not (uid), and never as the grader's user
        assert uid != os.getuid(), "student code runs as an unprivileged uid of its own"


#: A grader process that tightens a folder (uid mode's Tightened), then restores it when told.
HOLDER = """
import sys
from pathlib import Path
from autograder.sandbox.isolation import Tightened
held = Tightened([Path(sys.argv[1])])
print("held", flush=True)
if sys.stdin.readline().strip() == "restore":
    held.restore()
"""


def _holder(folder: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="uid mode (and its Tightened) is for graders running as root")
def test_tightened_folders_stay_hidden_until_the_last_grader_on_the_machine_is_done(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir(mode=0o755)
    first = _holder(course)
    course.chmod(0o755)  # someone gives it back while the first grading runs: the next one hides it again
    second = _holder(course)  # another process: a second grade-all pool process, another CI worker
    assert _mode(course) == 0o700
    first.communicate("restore\n", timeout=30)
    assert _mode(course) == 0o700, "the first to finish must not uncover the folder for the other"
    second.communicate("restore\n", timeout=30)
    assert _mode(course) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="uid mode (and its Tightened) is for graders running as root")
def test_a_killed_grader_does_not_leave_the_course_unreadable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    course, other = tmp_path / "course", tmp_path / "other"
    course.mkdir(mode=0o750)
    other.mkdir(mode=0o755)
    killed = _holder(course)
    killed.kill()  # SIGKILL: no restore
    killed.wait()
    assert _mode(course) == 0o700
    from autograder.sandbox.isolation import Tightened

    Tightened([other]).restore()  # the next grading on the machine, whatever it hides
    assert _mode(course) == 0o750 and _mode(other) == 0o755
    assert f"{course.resolve()} was hidden by graders that died (pids [{killed.pid}])" in caplog.text  # the grader log


def test_a_worker_that_cannot_start_is_a_grader_error_not_a_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autograder.sandbox.client.interpreter", lambda: Path("/nonexistent/python3"))
    with (
        Sandbox(_module(HOSTILE), FUNCTIONS, FAST) as box,
        pytest.raises(SandboxBroken, match="not with the submission"),
    ):
        box.load()


def test_the_new_root_is_built_from_the_allowlist_only() -> None:
    """bwrap binds the interpreter, its standard library, system libraries, numpy and the worker's
    folder: no other path of the project, no site-packages, no home folder."""
    from autograder.sandbox import isolation

    mode = isolation.choose_isolation()
    if not mode.namespaces:
        pytest.skip("needs a namespace isolation mode")
    args = isolation.new_root_arguments(mode, Path("/w"), Path("/e"), isolation.Exposure(), 1 << 20)
    sources = [args[i + 1] for i, arg in enumerate(args) if arg in ("--ro-bind", "--bind", "--dev-bind")]
    numpy_entries = {str(p) for p in isolation.site_entries(("numpy",))}
    assert numpy_entries and numpy_entries <= set(sources)
    assert str(isolation.interpreter()) in sources
    for source in sources:
        if source in numpy_entries or source in ("/w", "/e"):
            continue
        assert "site-packages" not in source and "dist-packages" not in source, source
        assert not source.startswith(("/home", "/work", str(Path(__file__).resolve().parent.parent))), source


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6.0).reshape(2, 3),
        np.zeros((3, 0, 2)),
        np.array(3.5),
        np.array([True, False]),
        np.arange(4, dtype=np.complex128),
        np.arange(3, dtype=">f8"),
        np.arange(3, dtype=np.float16),
        np.arange(24).reshape(2, 3, 4)[:, ::2].T,
    ],
    ids=["2d", "empty", "0d", "bool", "complex", "big-endian", "float16", "strided-view"],
)
def test_arrays_cross_a_real_pipe_as_npy_files_and_arrive_writeable(array: np.ndarray) -> None:
    import io

    from autograder.sandbox import wire

    frames: list[wire.Frame] = []
    encoded = wire.encode({"x": array}, frames)
    expected = io.BytesIO()
    np.lib.format.write_array(expected, np.asarray(array, order="C"), allow_pickle=False)
    assert wire.frame_bytes(frames[0]) == expected.getvalue(), "the frame is exactly a .npy file"
    read_end, write_end = os.pipe()
    try:
        writer = threading.Thread(target=wire.write_message, args=(write_end, {"value": encoded}, frames))
        writer.start()
        header, received = wire.read_message(read_end, time.monotonic() + 10, wire.WireLimits())
        writer.join()
    finally:
        os.close(read_end)
        os.close(write_end)
    got = wire.decode(header["value"], received)["x"]
    assert type(got) is np.ndarray and got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array) and got.flags.writeable


@pytest.mark.parametrize("blocking", [False, True], ids=["non-blocking", "blocking"])
def test_a_message_cut_short_or_a_full_pipe_ends_at_the_deadline(blocking: bool) -> None:
    """The grader's ends of the pipes are non-blocking, the student kit's blocking. On both, a message
    that stops halfway, or a reader that stops reading an 8 MB message, costs the deadline and no
    more (a blocking write used to wait for ever)."""
    from autograder.sandbox import wire

    read_end, write_end = os.pipe()
    try:
        os.set_blocking(read_end, blocking)
        os.set_blocking(write_end, blocking)
        frames: list[wire.Frame] = []
        header = {"value": wire.encode({"x": np.zeros(1000)}, frames)}
        whole = b"".join(bytes(part) for part in wire._message_parts(header, frames))
        os.write(write_end, whole[: len(whole) // 2])
        started = time.monotonic()
        with pytest.raises(wire.WireTimeout, match="did not arrive"):
            wire.read_message(read_end, started + 0.3, wire.WireLimits())
        assert 0.3 <= time.monotonic() - started < 2.0
        big = [np.zeros(1 << 20)]  # 8 MB: more than the pipe holds, and nobody reads it
        started = time.monotonic()
        with pytest.raises(wire.WireTimeout, match="stopped reading"):
            wire.write_message(write_end, {"value": wire.encode({"x": big[0]}, frames)}, frames, started + 0.3)
        assert 0.3 <= time.monotonic() - started < 2.0
    finally:
        os.close(read_end)
        os.close(write_end)


def test_frames_that_need_pickle_or_are_cut_short_are_refused() -> None:
    import io

    from autograder.sandbox import wire

    objects = io.BytesIO()
    np.lib.format.write_array(objects, np.array([1, "x"], dtype=object), allow_pickle=True)
    fortran = io.BytesIO()
    np.lib.format.write_array(fortran, np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    assert np.array_equal(wire.decode({"__array__": 0}, [bytearray(fortran.getvalue())]), np.arange(6.0).reshape(2, 3))
    with pytest.raises(wire.WireError, match="object array"):
        wire.decode({"__array__": 0}, [bytearray(objects.getvalue())])
    with pytest.raises(wire.WireError, match="data bytes"):
        wire.decode({"__array__": 0}, [bytearray(fortran.getvalue()[:-1])])
