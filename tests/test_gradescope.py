"""The Gradescope autograder zip: its contents, its setup.sh, and run_autograder in a Gradescope-like folder.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once and then
``/autograder/run_autograder`` per submission. Here the zip is unpacked into a temporary folder
with the same layout (``WSGRADE_AUTOGRADER_ROOT``), and ``run_autograder`` uses this project's
virtual environment (``WSGRADE_VENV``) instead of one made by ``setup.sh``, which would install
from PyPI. ``setup.sh`` itself runs against a fake environment that records what pip is asked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.grading import grade
from autograder.integrations.gradescope import RUN_AUTOGRADER, SETUP_SH, bundle_files, export
from tests.corpus import all_mutants, mutant_source, reference_source

STATUSES = {"passed", "failed"}  # Gradescope's; a skipped test has no status (see TestResult.to_gradescope)
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
VENV = Path(sys.prefix)
#: what setup.sh must not contain: downloads from anywhere but the package index
NOT_THE_INDEX = ("curl", "wget", "http:", "https:", "git clone", "--index-url", "--extra-index-url", "--find-links")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exported autograder zip."""
    return export(tmp_path_factory.mktemp("export") / "autograder.zip")[0]


def gradescope_root(bundle: Path, root: Path) -> Path:
    """Lay the zip out as Gradescope does: ``source/`` unpacked, ``run_autograder`` copied next to it.

    Args:
        bundle: the autograder zip.
        root: the folder that plays ``/autograder``.

    Returns:
        ``root``, holding ``source/``, an empty ``submission/`` and ``run_autograder``.
    """
    source = root / "source"
    with zipfile.ZipFile(bundle) as archive:
        for info in archive.infolist():
            target = source / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod(stat.S_IMODE(info.external_attr >> 16))
    (root / "submission").mkdir()
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    return root


def run_script(
    command: list[str], root: Path, *, timeout: float = 300, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run one of the zip's scripts with ``root`` as ``/autograder`` and the given environment variables.

    Args:
        command: the command line.
        root: the folder that plays ``/autograder`` (also the working directory, as on Gradescope).
        timeout: seconds before the test gives up.
        **variables: environment variables to set (``WSGRADE_VENV`` defaults to this project's venv).

    Returns:
        The finished process, output captured as text.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env |= {"WSGRADE_AUTOGRADER_ROOT": str(root), "WSGRADE_VENV": str(VENV), **variables}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def read_results(root: Path) -> dict:
    """``results/results.json``, checked against Gradescope's format.

    Args:
        root: the folder that plays ``/autograder``.

    Returns:
        The parsed file.
    """
    data = json.loads((root / "results" / "results.json").read_text())
    assert isinstance(data["score"], int | float) and math.isfinite(data["score"])
    assert isinstance(data["output"], str) and data["stdout_visibility"] in VISIBILITIES
    for test in data["tests"]:
        assert {"name", "score", "max_score", "output", "visibility", "tags"} <= set(test)
        assert test.get("status", "passed") in STATUSES and test["visibility"] in VISIBILITIES
        assert "status" in test or (test["extra_data"]["status"] == "skipped" and test["max_score"] == 0)
        assert 0 <= test["score"] <= test["max_score"] + 1e-9
    return data


def fake_python(venv: Path, body: str) -> Path:
    """Make ``venv/bin/python`` a shell script, standing in for a virtual environment's interpreter.

    Args:
        venv: the fake environment's folder.
        body: the script after its ``#!/bin/sh`` line.

    Returns:
        ``venv``.
    """
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + body)
    python.chmod(0o755)
    return venv


def test_zip_holds_the_scripts_and_the_source_tree_only(bundle: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        assert archive.testzip() is None
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert set(names) == {"run_autograder", "setup.sh", *bundle_files()}
    for required in (
        "pyproject.toml",
        "README.md",
        "requirements/constraints.txt",
        "solutions/weight_sharing.py",
        "autograder/cli.py",
        "autograder/sandbox/worker.py",
        "autograder/hidden_tests/pytest.ini",
        "autograder/hidden_tests/test_part1_convolution.py",
    ):
        assert required in names, required
    for name in names:
        assert name.split("/")[0] not in {"tests", "assignments", "examples", ".venv", "benchmarks"}, name
        assert not {"__pycache__", ".hypothesis"} & set(name.split("/")) and ".egg-info" not in name, name
        assert not name.endswith(".pyc"), name
    shipped_python = {name for name in names if name.startswith("autograder/") and name.endswith(".py")}
    repository_python = {
        path.relative_to(Path(__file__).parent.parent).as_posix()
        for path in (Path(__file__).parent.parent / "autograder").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert shipped_python == repository_python
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        mode = stat.S_IMODE(info.external_attr >> 16)
        assert mode == (0o755 if info.filename in ("run_autograder", "setup.sh") else 0o644), info.filename
    print(f"\n{bundle.name}: {len(names)} files, {bundle.stat().st_size:,} bytes")


def test_export_is_deterministic_and_the_cli_writes_the_same_zip(bundle: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autograder", "export", "gradescope", "again.zip"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote again.zip" in result.stdout
    assert (tmp_path / "again.zip").read_bytes() == bundle.read_bytes()
    refused = subprocess.run(
        [sys.executable, "-m", "autograder", "export", "gradescope", "autograder.tar"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and ".zip" in refused.stderr


def test_scripts_are_valid_bash(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            assert archive.read(name).decode() == text
            assert text.startswith("#!/usr/bin/env bash\n")
            (tmp_path / name).write_text(text)
            result = subprocess.run(["bash", "-n", str(tmp_path / name)], capture_output=True, text=True)
            assert result.returncode == 0, f"{name}: {result.stderr}"


def test_setup_installs_the_grader_from_the_index_pinned_by_the_constraints(bundle: Path, tmp_path: Path) -> None:
    for forbidden in NOT_THE_INDEX:
        assert forbidden not in SETUP_SH, f"setup.sh must install from the package index only, not via {forbidden}"
    root = gradescope_root(bundle, tmp_path / "autograder")
    source = root / "source"
    log = tmp_path / "calls.log"
    venv = fake_python(tmp_path / "venv", f'printf "%s\\n" "$@" "---" >> "{log}"\n')
    result = run_script(["bash", str(source / "setup.sh")], root, timeout=60, WSGRADE_VENV=str(venv))
    assert result.returncode == 0, result.stdout + result.stderr
    calls = [call.strip("\n").split("\n") for call in log.read_text().split("---\n") if call.strip()]
    install, smoke_test, prepare = calls
    assert install[:3] == ["-m", "pip", "install"]
    assert install[install.index("-c") + 1] == str(source / "requirements" / "constraints.txt")
    assert install[install.index("-e") + 1] == str(source)
    assert smoke_test[0] == "-c" and "import autograder.grading" in smoke_test[1]
    assert prepare == ["-m", "autograder", "prepare"]  # the hidden tests' inputs, recorded into the image


def test_setup_fails_loudly_without_python_3_11(bundle: Path, tmp_path: Path) -> None:
    root = gradescope_root(bundle, tmp_path / "autograder")
    result = run_script(
        ["bash", str(root / "source" / "setup.sh")],
        root,
        timeout=60,
        WSGRADE_VENV=str(tmp_path / "venv"),
        WSGRADE_PYTHON=str(tmp_path / "missing" / "python3.11"),
    )
    assert result.returncode != 0
    assert "ERROR" in result.stderr and "Ubuntu 22.04" in result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["correct", "wrong"])
def test_run_autograder_grades_like_the_library(bundle: Path, tmp_path: Path, kind: str) -> None:
    root = gradescope_root(bundle, tmp_path / "autograder")
    if kind == "correct":
        code = reference_source()
    else:
        code = mutant_source(next(m for m in all_mutants() if m.name == "conv2d-flipped-kernel"))
    (root / "submission" / "weight_sharing.py").write_text(code)
    result = run_script([str(root / "run_autograder")], root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"from {root / 'source' / 'autograder'}" in result.stdout, "graded with the unpacked tree"
    data = read_results(root)
    direct = grade(root / "submission").to_gradescope()
    # Untimed tests are equal exactly; a timed one (5.2) may move by one band step between two runs
    # on a busy machine (README, "Measured": the documented tolerance).
    keys = ("name", "max_score")
    assert [[t.get(k) for k in keys] for t in data["tests"]] == [[t.get(k) for k in keys] for t in direct["tests"]]
    for ours, theirs in zip(data["tests"], direct["tests"], strict=True):
        if "performance" in ours["tags"]:
            assert ours["score"] == pytest.approx(theirs["score"], abs=0.5), ours["name"]
        else:
            assert (ours["score"], ours.get("status")) == (theirs["score"], theirs.get("status")), ours["name"]
    if kind == "correct":
        assert all(t.get("status") != "failed" for t in data["tests"])
        assert data["score"] == pytest.approx(data["extra_data"]["max_score"], abs=1e-3)  # tests are rounded
    else:
        assert data["score"] < data["extra_data"]["max_score"]
        assert any(t.get("status") == "failed" and "conv2d" in t["tags"] for t in data["tests"])
    print(f"\n{kind}: {data['score']} / {data['extra_data']['max_score']}")


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["grader-crashes", "grader-hangs", "no-environment"])
def test_a_failing_grader_still_leaves_score_zero_and_a_message(bundle: Path, tmp_path: Path, failure: str) -> None:
    root = gradescope_root(bundle, tmp_path / "autograder")
    (root / "submission" / "weight_sharing.py").write_text(reference_source())
    variables = {}
    if failure == "grader-crashes":
        (root / "source" / "autograder" / "grading.py").write_text('raise RuntimeError("a bug in the grader")\n')
    elif failure == "grader-hangs":
        hanging = 'case " $* " in *" -m autograder "*) exec sleep 120 ;; esac\n' + f'exec "{sys.executable}" "$@"\n'
        variables = {"WSGRADE_VENV": str(fake_python(tmp_path / "venv", hanging)), "WSGRADE_TIME_LIMIT": "3"}
    else:
        variables = {"WSGRADE_VENV": str(tmp_path / "no-venv")}
    result = run_script([str(root / "run_autograder")], root, timeout=120, **variables)
    assert result.returncode == 0, result.stdout + result.stderr
    data = read_results(root)
    assert data["score"] == 0 and data["tests"] == []
    assert "the grading program itself failed" in data["output"] and "not a verdict on your code" in data["output"]
    if failure == "grader-hangs":
        assert "time limit of 3 seconds" in data["output"]
    assert "writing a score of 0" in result.stdout
