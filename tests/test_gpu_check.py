"""The GPU check (``benchmarks/gpu_check.sh``), on its CPU side: this machine has no GPU.

What can be checked here: the script's usage and its exits where there is no GPU or the install
fails; that its submissions load and grade as planned with ``--gpu off`` (the CuPy ones fall back
to NumPy); that ``--gpu require`` fails loudly; and that every verdict the script prints on a GPU
(gradings, the hidden tests' JUnit XML, the benchmark's JSON, the sandbox probe's diagnosis) says
PASS and FAIL when it should, fed with real CPU results and with GPU results made from them.
"""

from __future__ import annotations

import ast
import copy
import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.conv_benchmark import CUPY_REFERENCE, TORCH_CUDA
from benchmarks.gpu_submissions import (
    SUBMISSIONS,
    benchmark_checks,
    cupy_diagnosis,
    grading_check,
    junit_check,
    probe_check,
    write_submissions,
)
from tests.corpus import reference_source

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
EXIT_USAGE, EXIT_NO_GPU, EXIT_SETUP = 2, 3, 4
NAMES = [submission.name for submission in SUBMISSIONS]
HAS_GPU_NODE = bool(glob.glob("/dev/nvidia[0-9]*"))


def _fake_nvidia_smi(folder: Path, listing: str, status: int = 0) -> dict[str, str]:
    """An environment whose PATH starts with a fake ``nvidia-smi -L`` printing ``listing``."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{listing}'\nexit {status}\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def _script(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


# -- the script itself ----------------------------------------------------------------------------


def test_the_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shellcheck_finds_nothing() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install -y shellcheck)")
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument: --bogus"),
        (["--budget", "soon"], "--budget must be a whole number of seconds, not 'soon'"),
        (["--wheels", "/no/such/folder"], "--wheels /no/such/folder is not a folder"),
        (["--python"], "--python needs a value"),
    ],
)
def test_bad_usage_exits_2_and_names_the_problem(args: list[str], message: str) -> None:
    done = _script(*args)
    assert done.returncode == EXIT_USAGE
    assert message in done.stderr
    assert "PASS" not in done.stdout


def test_help_lists_every_check_and_exit_status() -> None:
    done = _script("--help")
    assert done.returncode == 0
    for word in ("gpu", "install", "sandbox-probe", *NAMES, "hidden-5.3-tests", "benchmark SHAPE", "3 no CUDA GPU"):
        assert word in done.stdout


@pytest.mark.skipif(HAS_GPU_NODE, reason="this machine has an NVIDIA device node")
@pytest.mark.parametrize("smi", ["none on PATH", "lists no GPU"])
def test_without_a_gpu_it_says_so_and_exits_3_before_installing(tmp_path: Path, smi: str) -> None:
    if smi == "none on PATH":
        if shutil.which("nvidia-smi") or Path("/usr/local/nvidia/bin/nvidia-smi").exists():
            pytest.skip("this machine has an nvidia-smi")
        env = dict(os.environ)
    else:
        env = _fake_nvidia_smi(tmp_path / "bin", "No devices were found", status=6)
    work = tmp_path / "work"
    done = _script("--workdir", str(work), env=env, timeout=30)
    assert done.returncode == EXIT_NO_GPU, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("SKIP gpu: no CUDA GPU on this machine")
    assert ("not found" if smi == "none on PATH" else "lists none") in lines[0]
    assert not work.exists()  # nothing was installed


@pytest.mark.slow
def test_with_a_gpu_listed_an_offline_install_that_cannot_work_exits_4(tmp_path: Path) -> None:
    env = _fake_nvidia_smi(tmp_path / "bin", "GPU 0: NVIDIA Fake (UUID: GPU-0)")
    wheels, work = tmp_path / "no-wheels", tmp_path / "work"
    wheels.mkdir()
    done = _script(
        "--python", sys.executable, "--inherit-packages", "--wheels", str(wheels), "--workdir", str(work), env=env
    )
    assert done.returncode == EXIT_SETUP, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PASS gpu: GPU 0: NVIDIA Fake (UUID: GPU-0)"
    assert lines[1].startswith("FAIL install: pip install exited")
    assert len(lines) == 2
    assert work.stat().st_mode & 0o777 == 0o755  # the sandbox's own user must reach the venv
    # --inherit-packages: the new venv sees this interpreter's packages (numpy, say) through a .pth file
    assert list(work.glob("venv/lib/python*/site-packages/gpu_check_inherited.pth"))
    seen = subprocess.run(
        [str(work / "venv" / "bin" / "python"), "-c", "import numpy; print(numpy.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert seen.returncode == 0, seen.stderr
    assert Path(seen.stdout.strip()).resolve() == Path(np.__file__).resolve()
    assert (work / "logs" / "install.log").is_file()


# -- the submissions ------------------------------------------------------------------------------


def _functions(source: str) -> dict[str, str]:
    return {node.name: ast.dump(node) for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def test_each_submission_is_the_reference_with_only_conv2d_fast_changed(tmp_path: Path) -> None:
    written = write_submissions(tmp_path)
    assert list(written) == NAMES
    reference = _functions(reference_source())
    for name, path in written.items():
        assert path == tmp_path / name / "weight_sharing.py"
        mine = _functions(path.read_text())
        assert set(mine) == set(reference)
        changed = {function for function in reference if mine[function] != reference[function]}
        assert changed == (set() if name == "reference" else {"conv2d_fast"}), name
    assert "xp = np  # NumPy only" in written["numpy-only"].read_text()


@pytest.fixture(scope="module")
def graded_on_cpu(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, Path]]:
    """Each submission graded with ``--gpu off`` (the CPU timing tests left out: 5.2 is not judged).

    Returns:
        Name -> (results.json, wsgrade's exit status, its log).
    """
    folder = tmp_path_factory.mktemp("gpu_check")
    graded = {}
    for name, path in write_submissions(folder / "submissions").items():
        results, log = folder / f"{name}.json", folder / f"{name}.log"
        done = subprocess.run(
            [sys.executable, "-m", "autograder", "grade", "--gpu", "off", "-k", "not test_speed", "-q"]
            + ["--json", str(results), str(path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        log.write_text(done.stdout + done.stderr)
        graded[name] = (results, done.returncode, log)
    return graded


def _scores(results: Path, task: str) -> tuple[float, float]:
    tests = [test for test in json.loads(results.read_text())["tests"] if test["extra_data"]["task"] == task]
    return round(sum(test["score"] for test in tests), 4), round(sum(test["max_score"] for test in tests), 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_submission_grades_on_the_cpu_with_the_gpu_off(
    graded_on_cpu: dict[str, tuple[Path, int, Path]], name: str
) -> None:
    results, code, log = graded_on_cpu[name]
    assert code == 0, log.read_text()
    check = grading_check(name, results, exit_code=code, log=log, gpu=False)
    assert check.passed, check.line()
    assert check.line().startswith(f"PASS {name}: 5.3 0.00/0.00")
    report = json.loads(results.read_text())
    gpu_tests = [test for test in report["tests"] if test["extra_data"]["task"] == "5.3"]
    assert [test["extra_data"]["status"] for test in gpu_tests] == ["skipped", "skipped"]
    assert all("status" not in test for test in gpu_tests), "Gradescope's status is passed or failed only"
    assert all("--gpu off" in test["output"] for test in gpu_tests)
    assert _scores(results, "5.1") == (6.0, 6.0)  # the CuPy ones fell back to NumPy and are correct
    assert report["extra_data"]["internal_errors"] == 0


@pytest.mark.slow
def test_gpu_require_without_a_device_fails_loudly_and_the_verdict_quotes_it(tmp_path: Path) -> None:
    path = write_submissions(tmp_path)["reference"]
    results, log = tmp_path / "results.json", tmp_path / "log"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", "--gpu", "require", "--json", str(results), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    log.write_text(done.stdout + done.stderr)
    assert done.returncode == 3
    assert "--gpu require" in done.stderr
    assert "CUDA device" in done.stderr
    assert not results.exists()
    check = grading_check("reference", results, exit_code=done.returncode, log=log)
    assert not check.passed
    assert "exited 3 and wrote no results.json" in check.detail
    assert "--gpu require" in check.detail


# -- the verdicts on a GPU, from CPU results turned into GPU ones -----------------------------------


def _on_gpu(results: Path, tmp_path: Path, values: dict[str, Any], speed: dict[str, Any]) -> Path:
    """The CPU results with the two 5.3 tests as a GPU run would report them (2 points each)."""
    report = copy.deepcopy(json.loads(results.read_text()))
    gpu_tests = [test for test in report["tests"] if test["extra_data"]["task"] == "5.3"]
    for test, outcome in zip(gpu_tests, (values, speed), strict=True):
        test.update({"max_score": 2.0, "status": "passed", "output": "", **outcome})
        test["score"] = outcome.get("score", 2.0 if test["status"] == "passed" else 0.0)
    report["score"] = sum(test["score"] for test in report["tests"])
    report["extra_data"]["max_score"] += 4.0
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(report))
    return path


PASSED: dict[str, Any] = {}
TYPE_ERROR = {
    "status": "failed",
    "output": "Called conv2d_fast(x, weight, bias=OnDevice(array=array([1.0])), stride=2, padding=1) with\n"
    "  x = OnDevice(array=array([[[[0.5]]]]))\n"
    "it raised TypeError: Implicit conversion to a NumPy array is not allowed. Please use `.get()`\n"
    "Traceback (most recent call last):\n"
    '  File "weight_sharing.py", line 996, in conv2d_fast\n',
}
DIED = {
    "status": "failed",
    "output": "Called conv2d_fast(x, weight) with\n  x = OnDevice(array=array([0.5]))\n"
    "the process running conv2d_fast died: it exited with status 1",
}
VAGUE = {"status": "failed", "output": "something went wrong"}
SLOW = {"status": "failed", "score": 0.8, "output": "GPU: resnet-stage-3x3 ...: 6.1x, between 4x and 10x"}
SKIPPED = {"status": "skipped", "max_score": 0.0, "score": 0.0, "output": "no CUDA device with CuPy"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "values", "speed", "passes", "says"),
    [
        ("reference", PASSED, PASSED, True, "5.3 4.00/4.00"),
        ("reference", PASSED, SLOW, False, "expected full marks for 5.3"),
        ("reference", SKIPPED, SKIPPED, False, "5.3 was skipped under --gpu require"),
        ("reference", DIED, DIED, False, "expected full marks for 5.3; the process running conv2d_fast died"),
        ("cupy", PASSED, PASSED, True, "5.3 4.00/4.00"),
        ("cupy", TYPE_ERROR, TYPE_ERROR, False, "expected full marks for 5.3; it raised TypeError"),
        ("numpy-only", TYPE_ERROR, TYPE_ERROR, True, "5.3 says: it raised TypeError: Implicit conversion"),
        ("numpy-only", DIED, DIED, False, "does not say what is wrong with the device"),
        ("numpy-only", VAGUE, VAGUE, False, "does not say what is wrong with the device"),
        ("numpy-only", PASSED, TYPE_ERROR, False, "a NumPy-only conv2d_fast earned 5.3 points"),
        ("cupy-slow", PASSED, SLOW, True, "5.3 2.80/4.00, 5.2 "),
        ("cupy-slow", PASSED, SLOW, True, "5.3 says: GPU: resnet-stage-3x3 ...: 6.1x, between 4x and 10x"),
        ("cupy-slow", PASSED, PASSED, False, "the slow submission kept every GPU speed point"),
        ("cupy-slow", TYPE_ERROR, SLOW, False, "values were judged wrong on the GPU"),
    ],
)
def test_gpu_verdicts(
    graded_on_cpu: dict[str, tuple[Path, int, Path]],
    tmp_path: Path,
    name: str,
    values: dict[str, Any],
    speed: dict[str, Any],
    passes: bool,
    says: str,
) -> None:
    results, _, log = graded_on_cpu[name]
    check = grading_check(name, _on_gpu(results, tmp_path, values, speed), exit_code=0, log=log)
    assert check.passed is passes, check.line()
    assert says in check.detail


@pytest.mark.slow
def test_a_verdict_fails_on_lost_points_elsewhere_and_on_internal_errors(
    graded_on_cpu: dict[str, tuple[Path, int, Path]], tmp_path: Path
) -> None:
    results, _, log = graded_on_cpu["reference"]
    report = json.loads(_on_gpu(results, tmp_path, PASSED, PASSED).read_text())
    first = report["tests"][0]
    first.update({"score": 0.0, "status": "failed"})
    first["extra_data"]["internal_error"] = True
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(report))
    check = grading_check("reference", path, exit_code=3, log=log)
    assert not check.passed
    assert "wsgrade exited 3" in check.detail
    assert "internal errors in 1 test(s)" in check.detail
    assert f"lost points outside 5.2/5.3: {first['extra_data']['task']}" in check.detail


def test_an_unknown_submission_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no GPU-check submission 'gpu'; they are reference, numpy-only"):
        grading_check("gpu", tmp_path / "results.json", exit_code=0)


# -- the hidden 5.3 tests run directly ----------------------------------------------------------------


@pytest.mark.slow
def test_the_hidden_gpu_tests_run_directly_and_skip_here(tmp_path: Path) -> None:
    """The script's exact pytest command: here both tests skip, which its verdict calls a FAIL."""
    path = write_submissions(tmp_path)["reference"]
    junit = tmp_path / "hidden.xml"
    hidden = ROOT / "autograder" / "hidden_tests"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-c", str(hidden / "pytest.ini"), str(hidden / "test_part5_speed.py")]
        + ["-k", "test_gpu", "--gpu", "require", "--submission", str(path), "--junitxml", str(junit)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check = junit_check("hidden-5.3-tests", junit, exit_code=done.returncode)
    assert not check.passed
    assert "0 passed, 0 failed, 0 errors, 2 skipped" in check.detail
    assert "no CUDA device" in check.detail


def test_the_junit_verdict_passes_two_passed_tests(tmp_path: Path) -> None:
    junit = tmp_path / "passed.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="2" time="3.5">'
        '<testcase name="test_gpu_returns" time="1"/><testcase name="test_gpu_speed" time="2"/>'
        "</testsuite></testsuites>"
    )
    check = junit_check("hidden-5.3-tests", junit, exit_code=0)
    assert check.line() == "PASS hidden-5.3-tests: 2 passed, 0 failed, 0 errors, 0 skipped in 3.5 s"
    assert not junit_check("hidden-5.3-tests", junit, exit_code=1).passed
    failed = tmp_path / "failed.xml"
    failed.write_text(
        '<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="2" time="1.0">'
        '<testcase name="test_gpu_speed" time="1"/><testcase name="test_gpu_returns" time="1">'
        '<failure message="autograder.feedback.CheckFailed: Called conv2d_fast(x, weight) with">'
        ">           raise CheckFailed(text)\n"
        "E           autograder.feedback.CheckFailed: Called conv2d_fast(x, weight) with\n"
        "E             x = OnDevice(array=array([[0.5]]))\n"
        "E           the process running conv2d_fast died: it exited with status 1\n\n"
        "autograder/checks.py:209: CheckFailed</failure></testcase></testsuite></testsuites>"
    )
    check = junit_check("hidden-5.3-tests", failed, exit_code=1)
    assert check.line() == (
        "FAIL hidden-5.3-tests: expected 2 passed (pytest exited 1): 1 passed, 1 failed, 0 errors, 0 skipped in 1.0 s; "
        "first: the process running conv2d_fast died: it exited with status 1"
    )
    missing = junit_check("hidden-5.3-tests", tmp_path / "none.xml", exit_code=4, log=None)
    assert missing.detail == "exited 4 and wrote no JUnit XML; last line of its log: no log"


# -- the benchmark --------------------------------------------------------------------------------


def test_the_cuda_benchmark_refuses_clearly_without_cupy(tmp_path: Path) -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    out = tmp_path / "benchmark.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.conv_benchmark", "--device", "cuda", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--device cuda needs CuPy with a CUDA device" in done.stderr
    assert not out.exists()
    log = tmp_path / "log"
    log.write_text(done.stderr)
    (check,) = benchmark_checks(out, exit_code=done.returncode, log=log)
    assert not check.passed
    assert "exited 2 and wrote no benchmark JSON" in check.detail
    assert "needs CuPy" in check.detail


def _case(shape: str, dtype: str, cupy_s: float, torch_s: float | None, agrees: bool | None) -> dict[str, Any]:
    seconds = {CUPY_REFERENCE: cupy_s} | ({TORCH_CUDA: torch_s} if torch_s is not None else {})
    return {"shape": shape, "dtype": dtype, "flops": 1, "seconds": seconds, "agrees": agrees}


def test_the_benchmark_verdict_has_one_line_per_shape(tmp_path: Path) -> None:
    path = tmp_path / "benchmark.json"
    cases = [
        _case("cifar-first-layer", "float64", 0.002, 0.001, True),
        _case("cifar-first-layer", "float32", 0.001, 0.0005, True),
        _case("resnet-stage-3x3", "float64", 0.004, 0.002, False),
        _case("stem-7x7-stride-2", "float64", 0.003, None, None),
    ]
    path.write_text(json.dumps({"device": "cuda", "torch": "2.11.0", "cases": cases}))
    checks = benchmark_checks(path, exit_code=0)
    assert [check.line() for check in checks] == [
        "PASS benchmark cifar-first-layer: float64 CuPy reference 2.00 ms, torch CUDA 1.00 ms (2.0x); "
        "float32 CuPy reference 1.00 ms, torch CUDA 0.50 ms (2.0x)",
        "FAIL benchmark resnet-stage-3x3: float64: the CuPy reference and torch disagree; "
        "float64 CuPy reference 4.00 ms, torch CUDA 2.00 ms (2.0x)",
        f"FAIL benchmark stem-7x7-stride-2: float64: {TORCH_CUDA} did not run",
    ]
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "torch": None, "cases": cases[:1]}))
    (check,) = benchmark_checks(path, exit_code=0)
    assert check.detail.startswith("no torch with CUDA in the venv (--inherit-packages from a Python that has it)")


# -- the sandbox probe and its diagnosis ----------------------------------------------------------------


@pytest.mark.slow
def test_the_probe_fails_here_and_says_cupy_is_missing(tmp_path: Path) -> None:
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    check = probe_check(write_submissions(tmp_path)["reference"])
    assert not check.passed
    assert check.name == "sandbox-probe"
    assert "diagnosis: CuPy fails even in a plain process of the grader's Python" in check.detail
    assert "No module named 'cupy'" in check.detail


FAKE_CUPY = """
import mmap
import os

import numpy

# A real CUDA context reserves far more address space than a worker's RLIMIT_AS allows.
_reserved = mmap.mmap(-1, 3 * 1024**3)


class runtime:
    @staticmethod
    def getDeviceCount():
        if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return 1


class cuda:
    runtime = runtime


arange = numpy.arange
"""


def test_the_diagnosis_names_each_worker_setting_that_breaks_cupy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text(textwrap.dedent(FAKE_CUPY))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    both = cupy_diagnosis(2 * 1024**3, {**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert both.startswith("diagnosis: CuPy works in a plain process but fails under the worker's RLIMIT_AS")
    assert "2048 MiB" in both
    assert "with the worker's environment (CUDA_VISIBLE_DEVICES='', PYTHONPATH=" in both
    assert both.endswith("RuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected")
    hidden = cupy_diagnosis(8 * 1024**3, {"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": "0"})
    assert hidden == (
        "diagnosis: CuPy works in a plain process but fails with the worker's environment "
        "(CUDA_VISIBLE_DEVICES='0'): ModuleNotFoundError: No module named 'cupy'"
    )
    fine = cupy_diagnosis(8 * 1024**3, dict(os.environ))
    assert fine.startswith("diagnosis: CuPy works in a plain process, also under the worker's memory limit")
