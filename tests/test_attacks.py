"""Hostile submissions: each earns nothing for what it cheats on, and the grader keeps working.

The submissions are the reference (or the student release) with one function replaced by an
attack, or code added at the top. Grading runs as in production: through the CLI or the library.
Every attack on a protection runs in **every isolation mode this machine can run** that claims the
protection (``PROTECTED``: as root in CI, ``full`` and ``uid``; ``user-namespaces`` where the tests
run as a user whose bubblewrap can make user namespaces). ``process`` mode protects no file: the
tests below show that it says so and that the class paths refuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder import replay
from autograder.grading import GradingReport, UnisolatedRefused, grade
from autograder.release import RELEASE_DIR
from autograder.sandbox.client import Limits
from autograder.sandbox.isolation import ALL_PROTECTIONS, INNER_SITE, INNER_WORKER, LEVELS, choose_isolation
from autograder.source import REPO_ROOT, SOLUTION_SOURCE
from autograder.submission import SubmissionError, load_submission
from autograder.tasks import task_by_id
from tests.corpus import reference_source, reference_with


def _available(mode: str) -> bool:
    try:
        choose_isolation(mode)
    except ValueError:
        return False
    return True


MODES = [mode for mode in ("full", "uid", "user-namespaces", "process") if _available(mode)]
PROTECTED = [mode for mode in MODES if mode != "process"]
NAMESPACES = [mode for mode in PROTECTED if choose_isolation(mode).namespaces]
DEDICATED_UID = [mode for mode in PROTECTED if choose_isolation(mode).drops_privileges]
CONV2D_TESTS = "test_part1"
STUBS = (RELEASE_DIR / "weight_sharing.py").read_text()
UID_RANGE = range(1_000_000, 1_000_000 + (1 << 16))

protected = pytest.mark.parametrize("mode", PROTECTED or [pytest.param("none", marks=pytest.mark.skip("no sandbox"))])


def _replace(function: str, code: str) -> str:
    return reference_with(function, code + "\n")


def _grade(
    tmp_path: Path, source: str, mode: str = "auto", select: str = CONV2D_TESTS, **options: object
) -> GradingReport:
    path = tmp_path / "weight_sharing.py"
    path.write_text(source)
    limits = options.pop("limits", None) or Limits(isolation=mode)
    report = grade(path, select=select, performance=False, limits=limits, **options)
    assert not report.internal_errors, [t.output for t in report.internal_errors]
    return report


def _points(report: GradingReport, function: str) -> tuple[float, float]:
    tests = [t for t in report.tests if task_by_id(t.task_id).function == function]
    return sum(t.score for t in tests), sum(t.max_score for t in tests)


def _everything(report: GradingReport) -> str:
    return report.output + "".join(t.output for t in report.tests)


def _cheat_earns_nothing_and_the_rest_is_graded(report: GradingReport, cheater: str = "conv2d") -> None:
    earned, possible = _points(report, cheater)
    assert possible > 0 and earned == 0, f"{cheater} earned {earned}"
    earned, possible = _points(report, "conv2d_layer")
    assert possible > 0 and earned == pytest.approx(possible), "the honest function next to it must keep its points"


@pytest.fixture(autouse=True)
def own_uids(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> range:
    """Sandbox uids of this test only (tests run in parallel): its own slice of the uid range."""
    base = 2_000_000 + int(hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6], 16) % 20_000 * 64
    monkeypatch.setenv("WSGRADE_UID_BASE", str(base))
    monkeypatch.setenv("WSGRADE_UID_SLOTS", "64")
    OWN_UIDS[:] = [range(base, base + 64)]
    return OWN_UIDS[0]


OWN_UIDS: list[range] = [UID_RANGE]


def _sandbox_processes() -> list[int]:
    """Processes of this test's sandbox uids that are alive now (zombies aside)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            except OSError:
                continue
            uid = int(fields.get("Uid", "0").split()[0])
            if uid in OWN_UIDS[0] and not fields.get("State", "").strip().startswith(("Z", "X")):
                found.append(int(entry.name))
    return found


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A TMPDIR of this test's own (0711: the sandbox uid can reach its scratch folder inside)."""
    folder = Path(tempfile.mkdtemp(prefix="wsgrade-test-", dir="/tmp"))
    folder.chmod(0o711)
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _scratch_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("wsgrade-sandbox-*"))


# ---------------------------------------------------------------------------------------------
# Crashes, numpy tricks, memory: every mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_exit_at_import(tmp_path: Path, mode: str) -> None:
    report = _grade(tmp_path, "import sys\nsys.exit(0)\n" + reference_source(), mode)
    assert report.score == 0 and "could not be loaded" in report.output


def test_exit_mid_call(tmp_path: Path) -> None:
    attack = "def conv2d(image, kernel):\n    import os\n    os._exit(0)\n"
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


def test_replacing_numpy_and_builtins(tmp_path: Path) -> None:
    attack = """
import math
import numpy.testing
np.allclose = np.array_equal = np.array_equiv = math.isclose = lambda *a, **k: True
np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None


def conv2d(image, kernel):
    return np.zeros((1, 1))
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


def test_objects_and_subclasses_that_claim_equality(tmp_path: Path) -> None:
    attack = """
class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool)

    def __array_ufunc__(self, *args, **kwargs):
        return np.zeros(())


def conv2d(image, kernel):
    return np.zeros((image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)).view(AlwaysEqual)
"""
    report = _grade(tmp_path, _replace("conv2d", attack))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert any("ndarray subclass" in t.output for t in report.tests)


def test_looking_for_the_expected_answer_in_memory(tmp_path: Path) -> None:
    attack = """
def conv2d(image, kernel):
    import gc, inspect
    shape = (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    for frame in inspect.stack():
        for value in frame.frame.f_locals.values():
            if isinstance(value, np.ndarray) and value.shape == shape and value is not image:
                return value
    for obj in gc.get_objects():
        if isinstance(obj, np.ndarray) and obj.shape == shape and obj is not image:
            return obj
    return np.zeros(shape)
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack)))


def test_memory_bombs_deep_recursion_and_output_floods(tmp_path: Path) -> None:
    attack = """
def conv2d(image, kernel):
    if image.shape[0] % 3 == 0:
        return bytearray(50 * 2**30)
    if image.shape[0] % 3 == 1:
        return conv2d(image, kernel)
    while True:
        print("flood " * 1000)
"""
    report = _grade(tmp_path, _replace("conv2d", attack), limits=Limits(call_timeout=2.0, memory_bytes=1024**3))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert max(len(t.output) for t in report.tests) < 7000


# ---------------------------------------------------------------------------------------------
# Files: default-deny in the namespace modes, permissions in uid mode
# ---------------------------------------------------------------------------------------------

#: Walks every readable folder from / for a solution (a .py or .ipynb defining conv2d_backward
#: with a body), runs it and re-exports its functions; prints where it found what.
DISK_THIEF = r"""
import json, os, sys


def _steal():
    found = []
    for root, dirs, files in os.walk("/", onerror=lambda e: None):
        if root.startswith(("/proc", "/sys", "/dev")):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d not in ("site-packages", "dist-packages", "node_modules")]
        for name in files:
            if not name.endswith((".py", ".ipynb")) or name == "worker.py":
                continue
            path = os.path.join(root, name)
            try:
                if os.path.getsize(path) > 2_000_000:
                    continue
                text = open(path, encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            if "def conv2d_backward" not in text or "NotImplementedError(\"Task 6" in text:
                continue
            if name.endswith(".ipynb"):
                try:
                    cells = json.loads(text)["cells"]
                    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
                except Exception:
                    continue
            found.append(path)
            stolen = {}
            try:
                exec(compile(text, path, "exec"), stolen)
            except BaseException:
                continue
            if callable(stolen.get("conv2d")):
                globals().update({k: v for k, v in stolen.items() if callable(v) and not k.startswith("__")})
                break
    print("THIEF found:", found[:5])


_steal()
"""


@protected
def test_a_disk_search_thief_finds_nothing(tmp_path: Path, mode: str) -> None:
    (tmp_path / "classmate").mkdir()
    (tmp_path / "classmate" / "weight_sharing.py").write_text(reference_source())  # beside the thief's file
    report = _grade(tmp_path, STUBS + DISK_THIEF, mode, select="test_part1 or test_part6")
    _the_thief_found_nothing(report, tmp_path, mode)


def _the_thief_found_nothing(report: GradingReport, tmp_path: Path, mode: str) -> None:
    found = eval(report.output[report.output.index("THIEF found: ") + 13 :].split("\n")[0])  # our own repr
    if choose_isolation(mode).namespaces:
        assert found == [] and report.score == 0, (found, report.score)
        return
    # uid mode protects by permissions what holds course data (the grader's checkout and package, the
    # submissions, outputs, scratch folders, home folders); a copy someone left world-readable
    # elsewhere on the machine is outside that promise (README, Security), and CI's machine has none.
    protected_places = (str(REPO_ROOT), str(tmp_path), "/home", "/root", "/tmp/wsgrade-sandbox-", "/tmp/pytest-of-")
    assert not [path for path in found if path.startswith(protected_places)], found
    if not found:
        assert report.score == 0


@protected
def test_a_grading_that_ends_first_uncovers_nothing_for_the_one_still_running(tmp_path: Path, mode: str) -> None:
    """Two gradings at once on one machine (``grade-all --jobs 2``, two graders, two CI workers).

    In uid mode both tighten the same checkout; the first to finish must not give the folders their
    modes back while the other's student code still runs. The thief waits, inside its sandbox, for
    the other grader's process to end, then searches the disk.
    """
    first = tmp_path / "first"
    first.mkdir()
    (first / "weight_sharing.py").write_text("import time\ntime.sleep(4)\n" + reference_source())
    command = [sys.executable, "-m", "autograder", "grade", str(first / "weight_sharing.py"), "-q", "--no-speed"]
    other = subprocess.Popen(
        [*command, "-k", "test_shift2d_hand_example", "--isolation", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        begun = time.monotonic()
        while other.poll() is None and time.monotonic() < begun + 60:
            if _sandbox_processes() if mode in DEDICATED_UID else time.monotonic() > begun + 2:
                break  # its student code is running (it sleeps at import)
            time.sleep(0.05)
        assert other.poll() is None, "the first grading ended before its sandbox was seen"
        wait = f"""
import time
def _running(pid):
    try:
        return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False
while _running({other.pid}):
    time.sleep(0.05)
"""
        thief = DISK_THIEF.replace('os.walk("/"', f"os.walk({str(REPO_ROOT)!r}")  # where uid mode protects
        report = _grade(tmp_path, STUBS + wait + thief, mode, select="test_part1 or test_part6")
        assert other.wait(timeout=120) == 0, other.stdout.read() if other.stdout else ""
    finally:
        other.kill()
        other.wait()
    _the_thief_found_nothing(report, tmp_path, mode)


@protected
def test_the_git_object_store_is_out_of_reach(tmp_path: Path, mode: str) -> None:
    attack = f"""
import os, zlib
for root, dirs, files in os.walk({str(REPO_ROOT / ".git")!r}):
    for name in files:
        try:
            data = zlib.decompress(open(os.path.join(root, name), "rb").read())
        except Exception:
            continue
        if b"def conv2d(" in data and b"NotImplementedError" not in data:
            body = data.split(b"\\0", 1)[1].decode("utf-8", "replace")
            stolen = {{}}
            try:
                exec(body, stolen)
            except BaseException:
                continue
            if callable(stolen.get("conv2d")):
                globals().update({{k: v for k, v in stolen.items() if callable(v)}})
                print(body[:3000])
                break
print("GIT", os.path.exists({str(REPO_ROOT / ".git")!r}), os.access({str(REPO_ROOT)!r}, os.R_OK))
"""
    report = _grade(tmp_path, STUBS + attack, mode)
    assert report.score == 0
    everything = _everything(report)
    assert "BEGIN SOLUTION" not in everything and "@graded(" not in everything


@protected
def test_reading_or_importing_the_reference_and_hidden_tests(tmp_path: Path, mode: str) -> None:
    hidden_test = REPO_ROOT / "autograder" / "hidden_tests" / "test_part1_convolution.py"
    attack = f"""
def conv2d(image, kernel):
    for path in {str(SOLUTION_SOURCE)!r}, {str(hidden_test)!r}:
        try:
            print(open(path).read()[:3000])
        except OSError as problem:
            print("cannot read", path, problem)
    from autograder.reference import load_reference
    return load_reference().conv2d(image, kernel)
"""
    report = _grade(tmp_path, _replace("conv2d", attack), mode)
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    everything = _everything(report)
    assert "BEGIN SOLUTION" not in everything and "graded(" not in everything
    assert "cannot read" in everything


@protected
def test_the_recorded_inputs_of_the_hidden_tests_are_out_of_reach(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The grader keeps the hidden tests' inputs in a pickle (``autograder/replay.py``): reading it
    would show the inputs, and replacing it would run the thief's code in the grader."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("WSGRADE_CACHE", str(cache))
    monkeypatch.setattr(replay, "_LOADED", {})  # record into this test's folder, not from memory
    _grade(tmp_path, reference_source(), mode, select="hand_example")
    (recording,) = cache.glob("inputs-*.pickle")
    before = hashlib.sha256(recording.read_bytes()).hexdigest()
    attack = f"""
def conv2d(image, kernel):
    import glob, os, pickle
    class Planted:
        def __reduce__(self):
            return (os.system, ("touch " + {str(tmp_path / "planted-code-ran")!r},))
    places = glob.glob({str(cache)!r} + "/*") + glob.glob(os.path.expanduser("~/.cache/wsgrade/*"))
    for path in places or [{str(recording)!r}]:
        try:
            print("read", path, open(path, "rb").read(16))
        except OSError as problem:
            print("cannot read", path, problem)
        try:
            with open(path, "wb") as handle:
                pickle.dump(Planted(), handle)
            print("replaced", path)
        except OSError as problem:
            print("cannot write", path, problem)
    return np.zeros((1, 1))
"""
    report = _grade(tmp_path, _replace("conv2d", attack), mode)
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert "cannot read" in _everything(report) and "replaced" not in _everything(report)
    monkeypatch.setattr(replay, "_LOADED", {})  # the next grading loads the file again
    _grade(tmp_path, reference_source(), mode, select="hand_example")
    assert hashlib.sha256(recording.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in cache.iterdir()) == sorted(["inputs.lock", recording.name])
    assert not (tmp_path / "planted-code-ran").exists()


@protected
def test_writing_into_the_grader_and_forging_results(tmp_path: Path, mode: str) -> None:
    targets = [SOLUTION_SOURCE, REPO_ROOT / "autograder" / "tasks.py", tmp_path / "results.json"]
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in targets[:2]}
    modes = {path: path.stat().st_mode for path in targets[:2]}
    attack = f"""
def conv2d(image, kernel):
    import os, time
    forged = '{{"score": 100, "tests": []}}'
    for path in {[str(t) for t in targets]!r}:
        try:
            with open(path, "a") as handle:
                handle.write(forged)
        except OSError as problem:
            print("cannot write", path, problem)
    if os.fork() == 0:  # a daemon that outlives the call and forges the results later
        os.setsid()
        if os.fork() == 0:
            time.sleep(3)
            with open({str(tmp_path / "results.json")!r}, "w") as handle:
                handle.write(forged)
        os._exit(0)
    return np.zeros((1, 1))
"""
    (tmp_path / "weight_sharing.py").write_text(_replace("conv2d", attack))
    command = [sys.executable, "-m", "autograder", "grade", "weight_sharing.py", "--json", "results.json"]
    result = subprocess.run(
        [*command, "-k", CONV2D_TESTS, "--no-speed", "-q", "--isolation", mode],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    time.sleep(4)  # the daemon, had it survived, would have written by now
    data = json.loads((tmp_path / "results.json").read_text())
    conv2d = [t for t in data["tests"] if t["tags"][0] == "conv2d"]
    assert conv2d and all(t["score"] == 0 for t in conv2d)
    assert data["score"] < 100
    assert before == {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in targets[:2]}
    assert modes == {path: path.stat().st_mode for path in targets[:2]}, "uid mode gives every mode back"


@pytest.mark.skipif(not NAMESPACES, reason="needs a namespace isolation mode")
@pytest.mark.parametrize("mode", NAMESPACES)
def test_the_worker_sees_exactly_the_documented_allowlist(tmp_path: Path, mode: str) -> None:
    """What exists for student code: compared with the allowlist that README and isolation.py document."""
    attack = f"""
def conv2d(image, kernel):
    import os, sys
    seen = {{"/": sorted(os.listdir("/"))}}
    for folder in ("/opt", {INNER_SITE!r}, {INNER_WORKER!r}, "/tmp", "/dev", "/usr", "/usr/bin"):
        seen[folder] = sorted(os.listdir(folder))
    seen["sys.path"] = [p for p in sys.path if os.path.exists(p)]
    seen["writable"] = [p for p in ("/", "/opt", "/usr", "/dev", "/tmp") if os.access(p, os.W_OK)]
    raise ValueError("SEEN" + repr(seen))
"""
    report = _grade(tmp_path, _replace("conv2d", attack), mode, select="test_conv2d_hand")
    text = next(t.output for t in report.tests if "SEEN" in t.output)
    seen = eval(text[text.index("SEEN") + 4 : text.index("}", text.index("SEEN")) + 1])  # our own repr
    interpreter_tops = {Path(p).parts[1] for p in seen["sys.path"] if p.count("/") > 1}
    assert set(seen["/"]) <= {"dev", "etc", "lib", "lib64", "lib32", "opt", "proc", "tmp", "usr"} | interpreter_tops
    assert "home" not in seen["/"]
    assert "work" not in seen["/"] or "work" in interpreter_tops
    assert seen["/opt"] == ["site", "wsgrade"]
    assert seen[INNER_SITE] == ["numpy", "numpy.libs"]
    assert seen[INNER_WORKER] == ["config.json", "layers.py", "wire.py", "worker.py"]
    assert seen["/tmp"] == []
    assert set(seen["/dev"]) <= {
        "core",
        "fd",
        "full",
        "null",
        "ptmx",
        "pts",
        "random",
        "shm",
        "stderr",
        "stdin",
        "stdout",
        "tty",
        "urandom",
        "zero",
    }
    interpreter = Path(sys.executable).resolve()  # Debian's python3 lives in /usr/bin itself
    assert set(seen["/usr/bin"]) <= {"setpriv"} | (
        {interpreter.name} if str(interpreter.parent) == "/usr/bin" else set()
    )
    assert seen["writable"] == ["/tmp"]
    assert not any("site-packages" in p or "dist-packages" in p for p in seen["sys.path"])


@protected
def test_a_classmate_thief_in_grade_all_gets_nothing(tmp_path: Path, mode: str) -> None:
    from autograder.batch import grade_all

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "alice.py").write_text(reference_source())
    thief = r"""
import glob, json, os
def _classmates():
    for pattern in ("/tmp/wsgrade-sandbox-*/worker/config.json", "/tmp/wsgrade-sandbox-*/submission.json",
                    "/tmp/**/alice.py", "/tmp/**/students/*/submission.py", "/tmp/**/results.json"):
        for path in glob.glob(pattern, recursive=True):
            try:
                text = open(path).read()
            except OSError:
                continue
            if path.endswith(".json"):
                try:
                    text = "\n".join(json.loads(text)["submission"]["cells"])
                except Exception:
                    continue
            if "def conv2d(" in text and "NotImplementedError(\"Task 1.1" not in text and "_classmates" not in text:
                stolen = {}
                try:
                    exec(text, stolen)
                    globals().update({k: v for k, v in stolen.items() if callable(v)})
                    print("THIEF stole", path)
                    return
                except BaseException:
                    continue
_classmates()
"""
    (submissions / "zed.py").write_text(STUBS + thief)
    # Last term's class, graded into a folder anyone may traverse: its students/ is the staff's only.
    last_term = Path(tempfile.mkdtemp(prefix="wsgrade-last-term-", dir="/tmp"))
    try:
        last_term.chmod(0o755)
        (last_term / "class").mkdir()
        (last_term / "class" / "bob.py").write_text(reference_source())
        grade_all(
            last_term / "class",
            last_term / "out",
            jobs=1,
            performance=False,
            select="conv2d_hand",
            limits=Limits(isolation=mode),
            allow_unisolated=True,
        )
        assert not (last_term / "out" / "students").stat().st_mode & 0o007
        summary = grade_all(
            submissions,
            tmp_path / "out",
            jobs=2,
            performance=False,
            limits=Limits(isolation=mode),
            allow_unisolated=False,
        )
    finally:
        shutil.rmtree(last_term, ignore_errors=True)
    assert set(summary.graded) == {"alice", "zed"}
    results = {
        s: json.loads((tmp_path / "out" / "students" / s / "results.json").read_text()) for s in ("alice", "zed")
    }
    assert results["zed"]["score"] == 0 and "THIEF stole" not in results["zed"]["output"]
    assert results["alice"]["score"] > 90


@protected
@pytest.mark.slow
def test_the_reference_twins_scratch_is_out_of_reach(tmp_path: Path, mode: str) -> None:
    """While the speed tests run, the reference runs in a twin worker; its code must stay hidden."""
    thief = r"""
def _twin():
    import glob, json
    for path in glob.glob("/tmp/wsgrade-sandbox-*/**/*.json", recursive=True):
        try:
            text = "\n".join(json.load(open(path))["submission"]["cells"])
        except Exception:
            continue
        if "def _twin" in text:
            continue  # its own worker's config, not the twin's
        stolen = {}
        exec(text, stolen)
        return stolen
    return None


def conv2d_backward(dout, x, weight, stride=1, padding=0):
    stolen = _twin()
    if stolen is None:
        raise NotImplementedError("no twin found")
    return stolen["conv2d_backward"](dout, x, weight, stride=stride, padding=padding)
"""
    path = tmp_path / "weight_sharing.py"
    path.write_text(_replace("conv2d_backward", thief))
    report = grade(path, select="test_speed or test_part6", limits=Limits(isolation=mode))
    earned, possible = _points(report, "conv2d_backward")
    assert possible > 0 and earned == 0


@protected
def test_threads_and_children_that_outlive_the_call(tmp_path: Path, mode: str) -> None:
    marker = f"wsgrade-attack-{os.getpid()}-{mode}"
    attack = f"""
def conv2d(image, kernel):
    import os, threading, time
    if os.fork() == 0:
        os.setsid()
        try:
            os.execv("/bin/sleep", ["{marker}", "1000"])
        finally:
            while True:
                time.sleep(1)
    threading.Thread(target=lambda: time.sleep(1000), daemon=False).start()
    return np.zeros((1, 1))
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack), mode))
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert not leftovers, "a process started by student code survived the grading"
    assert not _sandbox_processes()


@protected
def test_a_fork_chain_is_killed_to_the_last_process(tmp_path: Path, mode: str, own_tmp: Path) -> None:
    """Each process forks a child and exits at once: a moving target for a scan of /proc."""
    attack = """
def conv2d(image, kernel):
    import os
    if os.fork() == 0:
        while True:
            try:
                if os.fork() != 0:
                    os._exit(0)
            except OSError:
                pass
    return np.zeros((1, 1))
"""
    _cheat_earns_nothing_and_the_rest_is_graded(_grade(tmp_path, _replace("conv2d", attack), mode))
    time.sleep(0.5)
    assert not _sandbox_processes(), "part of the fork chain outlived the grading"
    assert _scratch_folders(own_tmp) == []


@protected
def test_network_connections_fail(tmp_path: Path, mode: str) -> None:
    if not choose_isolation(mode).namespaces:
        pytest.skip(f"{mode} isolation has no network namespace (documented: 'no network' is missing)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []

    def accept() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection, _ = server.accept()
                received.append(connection.recv(100))
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    attack = f"""
def conv2d(image, kernel):
    import socket
    with socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=2) as connection:
        connection.sendall(b"leaked")
    return np.zeros((1, 1))
"""
    report = _grade(tmp_path, _replace("conv2d", attack), mode)
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert not received
    server.close()


@protected
def test_the_grader_process_cannot_be_read_signalled_or_traced(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"wsgrade-secret-{os.getpid()}"
    monkeypatch.setenv("WSGRADE_TEST_SECRET", secret)
    grader = os.getpid()
    attack = f"""
def conv2d(image, kernel):
    import os, signal
    seen = []
    for pid in ({grader}, os.getppid(), 1):
        for what in ("environ", "cmdline", "maps"):
            try:
                seen.append(open(f"/proc/{{pid}}/{{what}}", "rb").read()[:2000])
            except OSError:
                pass
        try:
            os.listdir(f"/proc/{{pid}}/fd")
            seen.append(b"fd listed")
        except OSError:
            pass
        for sig in (signal.SIGSTOP, signal.SIGTERM):
            try:
                os.kill({grader}, sig)
                seen.append(b"signalled")
            except OSError:
                pass
    print(repr(seen)[:3000])
    return np.zeros((1, 1))
"""
    report = _grade(tmp_path, _replace("conv2d", attack), mode)
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    assert secret not in _everything(report)
    assert "signalled" not in _everything(report)


# ---------------------------------------------------------------------------------------------
# Disk, memory and process limits of the sandbox as a whole
# ---------------------------------------------------------------------------------------------


@protected
def test_a_disk_filler_cannot_fill_the_machine(tmp_path: Path, mode: str) -> None:
    attack = """
def conv2d(image, kernel):
    import os
    chunk = b"x" * (16 << 20)
    for n, folder in enumerate((os.environ.get("HOME", "/tmp"), "/tmp", "/var/tmp", "/dev/shm")):
        written = 0
        for i in range(16):  # up to 256 MiB per folder
            try:
                with open(os.path.join(folder, f"fill{TOKEN}{n}-{i}"), "wb") as handle:
                    handle.write(chunk)
                written += len(chunk)
            except OSError:
                break
        print("wrote", written >> 20, "MiB")
    return np.zeros((1, 1))
"""
    token = secrets.token_hex(4)  # this test's files only: the other xdist worker may run the same attack
    report = _grade(tmp_path, _replace("conv2d", attack.replace("{TOKEN}", token)), mode, select="test_conv2d_hand")
    assert _points(report, "conv2d")[0] == 0
    written = [int(m) for m in re.findall(r"wrote (\d+) MiB", _everything(report))]
    if choose_isolation(mode).namespaces:  # HOME is /tmp, the one writable place: 64 MiB in all
        assert written and sum(written[:1] + written[2:]) <= Limits().home_bytes >> 20, written
    # Nothing it wrote is left anywhere below the shared writable folders (the sandbox's scratch and
    # HOME included). Free space is no measure here: the suite's other worker installs venvs meanwhile.
    pattern = re.compile(rf"fill{token}[0-3]-\d+")
    leftovers = [
        os.path.join(root, name)
        for folder in ("/tmp", "/var/tmp", "/dev/shm")
        for root, _, names in os.walk(folder)
        for name in names
        if pattern.fullmatch(name)
    ]
    assert not leftovers, "what the student wrote was left on the grader's disk"


@protected
def test_a_process_tree_cannot_hold_more_memory_than_the_sandbox(tmp_path: Path, mode: str) -> None:
    """Six children of 700 MiB each stay under the per-process limit (1 GiB) but not under the
    sandbox's (1 GiB, all together) where a cgroup enforces it; the grading goes on either way."""
    attack = """
def conv2d(image, kernel):
    import os, time
    children = []
    for _ in range(6):
        pid = os.fork()
        if pid == 0:
            block = bytearray(700 << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1
            time.sleep(3)
            os._exit(0)
        children.append(pid)
    alive = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        alive += os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    print("children that held their memory:", alive)
    return np.zeros((1, 1))
"""
    limits = Limits(isolation=mode, memory_bytes=1024**3, call_timeout=20.0)
    started = time.monotonic()
    report = _grade(tmp_path, _replace("conv2d", attack), mode, select="test_conv2d_hand", limits=limits)
    assert _points(report, "conv2d")[0] == 0
    assert time.monotonic() - started < 120
    held = [int(m) for m in re.findall(r"children that held their memory: (\d+)", _everything(report))]
    from autograder.sandbox.cgroup import _layout

    if _layout() is not None:
        assert not held or max(held) <= 1, held
    assert not _sandbox_processes()


@pytest.mark.slow
def test_busy_helpers_cannot_slow_the_reference_down(tmp_path: Path) -> None:
    """Helpers that burn CPU while the reference is timed and are stopped while the student's own
    call runs: nothing the student started survives a timed call, so three times the work stays slow."""
    attack = """
_helpers = []


def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    import os, signal
    if not _helpers:
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                while True:
                    pass
            _helpers.append(pid)
    for pid in _helpers:
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass
    for _ in range(3):
        out = conv2d_layer(x, weight, bias, stride=stride, padding=padding)
    for pid in _helpers:
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            pass
    return out
"""
    path = tmp_path / "weight_sharing.py"
    path.write_text(_replace("conv2d_fast", attack))
    report = grade(path, select="test_speed")
    speed = [t for t in report.tests if t.task_id == "5.2"]
    assert speed and all(t.score < t.max_score for t in speed), [t.output for t in speed]
    assert not _sandbox_processes()


# ---------------------------------------------------------------------------------------------
# The pipe: forged replies
# ---------------------------------------------------------------------------------------------

FORGER = """
def conv2d(image, kernel):
    import json, os, struct
    kind = image.shape[0] % 4
    for fd in range(3, 64):
        try:
            if kind == 0:    # one frame of 100 GiB announced
                body = json.dumps({"ok": True, "result": {"__array__": 0}, "nframes": 1}).encode()
                os.write(fd, struct.pack(">I", len(body)) + body + struct.pack(">Q", 100 << 30) + b"x" * 4096)
            elif kind == 1:  # a million tiny frames
                body = json.dumps({"ok": True, "result": None, "nframes": 10**6}).encode()
                os.write(fd, struct.pack(">I", len(body)) + body + (struct.pack(">Q", 1000) + b"y" * 1000) * 2000)
            elif kind == 2:  # JSON nested 100,000 deep
                body = ("[" * 100000 + "]" * 100000).encode()
                os.write(fd, struct.pack(">I", len(body)) + body)
            else:            # a .npy header the size of the frame limit
                body = json.dumps({"ok": True, "result": {"__array__": 0}, "nframes": 1}).encode()
                npy = b"\\x93NUMPY\\x01\\x00" + struct.pack("<H", 65535) + b"{" * 65535
                os.write(fd, struct.pack(">I", len(body)) + body + struct.pack(">Q", len(npy)) + npy)
        except OSError:
            pass
    import time
    time.sleep(30)
"""


def test_forged_replies_cannot_make_the_grader_buffer_or_crash(tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = _grade(tmp_path, _replace("conv2d", FORGER), limits=Limits(call_timeout=2.0, wall_minimum=3.0))
    _cheat_earns_nothing_and_the_rest_is_graded(report)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    assert grown < 512 << 20, f"the grader's memory grew by {grown >> 20} MiB"
    assert any("breaks the rules" in t.output for t in report.tests), [t.output[:300] for t in report.tests]


# ---------------------------------------------------------------------------------------------
# Submissions: links, archives, the grader's own command line
# ---------------------------------------------------------------------------------------------


def test_a_symlinked_folder_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "weight_sharing.py").symlink_to(SOLUTION_SOURCE)
    with pytest.raises(SubmissionError, match="symbolic link"):
        load_submission(folder)
    nested = tmp_path / "nested"
    (nested / "work").mkdir(parents=True)
    (nested / "work" / "weight_sharing.py").write_text(STUBS)
    (nested / "solutions").symlink_to(SOLUTION_SOURCE.parent)
    with pytest.raises(SubmissionError, match="symbolic link"):
        load_submission(nested)
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", str(folder), "--no-speed", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "symbolic link" in result.stderr


def test_a_planted_module_in_the_students_folder_is_not_imported_by_the_grader(tmp_path: Path) -> None:
    forged = '{"score": 100, "tests": []}'
    plant = f"import json\nopen('results.json', 'w').write({forged!r})\nraise SystemExit(0)\n"
    (tmp_path / "weight_sharing.py").write_text(STUBS)
    for name in ("autograder.py", "numpy.py", "rich.py", "pytest.py", "hypothesis.py"):
        (tmp_path / name).write_text(plant)
    wsgrade = Path(sys.executable).with_name("wsgrade")
    done = subprocess.run(
        [str(wsgrade), "grade", ".", "--json", "results.json", "-k", "test_conv2d_hand", "--no-speed", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 0
    (tmp_path / "autograder.py").unlink()  # python -m autograder itself cannot be protected from this one
    (tmp_path / "results.json").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", ".", "--json", "results.json", "-k", "test_conv2d_hand", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 0


# ---------------------------------------------------------------------------------------------
# Stopping the grader
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", PROTECTED)
def test_a_sigtermed_grader_leaves_no_process_and_no_scratch(tmp_path: Path, mode: str, own_tmp: Path) -> None:
    attack = """
def conv2d(image, kernel):
    import os
    for _ in range(2):
        if os.fork() == 0:
            while True:
                pass
    while True:
        pass
"""
    (tmp_path / "weight_sharing.py").write_text(_replace("conv2d", attack))
    grader = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            "weight_sharing.py",
            "-k",
            "test_conv2d_hand",
            "--no-speed",
            "--isolation",
            mode,
            "--call-timeout",
            "60",
            "--json",
            "results.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _sandbox_processes():
        time.sleep(0.2)
    time.sleep(1.0)
    assert _sandbox_processes(), "the attack never started"
    grader.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    grader.wait(timeout=30)
    while _sandbox_processes() and time.monotonic() - stopped < 1.0:
        time.sleep(0.05)
    assert not _sandbox_processes(), "student processes outlived the grader by more than a second"
    assert grader.returncode == 128 + signal.SIGTERM
    assert _scratch_folders(own_tmp) == [], "scratch folders were left behind"
    assert not (tmp_path / "results.json").exists(), "an interrupted grading writes no results"


# ---------------------------------------------------------------------------------------------
# Unprotected modes say so, and the class paths refuse them
# ---------------------------------------------------------------------------------------------


def test_process_mode_says_files_are_not_protected_first(tmp_path: Path) -> None:
    report = _grade(tmp_path, reference_source(), "process", select="test_conv2d_hand")
    assert report.score == report.max_score
    assert report.output.splitlines()[0].startswith("WARNING: files are not protected")
    assert report.to_gradescope()["extra_data"]["sandbox"]["mode"] == "process"


def test_class_grading_refuses_process_mode_unless_allowed(tmp_path: Path) -> None:
    from autograder.batch import grade_all

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / "alice.py").write_text(STUBS)
    with pytest.raises(UnisolatedRefused, match="--allow-unisolated"):
        grade_all(submissions, tmp_path / "out", limits=Limits(isolation="process"), performance=False)
    assert not (tmp_path / "out" / "students").exists()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade-all",
            str(submissions),
            "--out",
            str(tmp_path / "out2"),
            "--isolation",
            "process",
            "--no-speed",
            "-k",
            "test_conv2d_hand",
            "--allow-unisolated",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            str(submissions / "alice.py"),
            "--isolation",
            "process",
            "--require-isolation",
            "--no-speed",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3 and "refusing to grade" in done.stderr  # the grading environment's fault


def test_the_readme_security_table_matches_the_isolation_levels() -> None:
    """Each row of README's table is a protection; each column says yes exactly where the level has it."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("| protection | full") :].split("\n\n")[0].splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[1:] == ["full", "uid", "user-namespaces", "process"]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    assert list(rows) == list(ALL_PROTECTIONS)
    for protection, cells in rows.items():
        for mode, cell in zip(header[1:], cells, strict=True):
            assert cell.startswith("yes") == (protection in LEVELS[mode]), (protection, mode, cell)
