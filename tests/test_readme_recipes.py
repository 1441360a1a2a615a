"""The README's recipes, run exactly as written, so that the README cannot drift from what works.

A recipe is a fenced ``sh`` block right after a ``<!-- recipe: NAME -->`` line. Each runs with
``bash -e -u -o pipefail`` in a scratch checkout: links to the repository's tracked top-level
entries, a copy of ``dev.sh`` (it works in the folder it lies in) and ``.venv``, a link to the
virtual environment running these tests. Before any recipe, a fixture runs ``./dev.sh setup`` for
that environment in the repository itself, with the interpreter that made it and the extras it
has, so that a recipe's own ``./dev.sh setup`` finds it up to date and installs nothing from the
scratch checkout. That environment's ``bin`` is taken off ``PATH``: the recipe's own
``export PATH=...`` has to put it there. Each recipe has its own ``HOME`` and ``TMPDIR``.

Not run here: the Quick start's ``./dev.sh test``, which is how CI runs this file.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from autograder.integrations.gradescope import export as export_gradescope
from autograder.source import REPO_ROOT
from autograder.tasks import TASKS

README = REPO_ROOT / "README.md"
RECIPE = re.compile(r"^<!-- recipe: (?P<name>[\w-]+) -->\n```sh\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = ("./dev.sh test",)  # lines left out of a recipe (see the module docstring)
TIMEOUT_S = 600
VENV = Path(sys.prefix)
FALLBACK_ENTRIES = ("README.md", "pyproject.toml", "requirements", "autograder", "solutions", "assignments", "examples")
# The nbgrader and otter exports grade the correctness tasks; the timing ones (5.2, 5.3) are not among them.
CORRECTNESS_POINTS = sum(task.points for task in TASKS if task.id not in ("5.2", "5.3"))


def recipes() -> dict[str, str]:
    """Recipe name -> its commands, from the README."""
    found: dict[str, str] = {}
    for match in RECIPE.finditer(README.read_text()):
        assert match["name"] not in found, f"two README recipes are called {match['name']}"
        found[match["name"]] = match["body"]
    return found


def _tracked_entries() -> list[str]:
    """The repository's tracked top-level names (a fixed list where git cannot tell)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return list(FALLBACK_ENTRIES)
    names = {path.split("/", 1)[0] for path in listed.decode().split("\0") if path}
    return sorted(names - {"dev.sh"}) or list(FALLBACK_ENTRIES)


def _environment(home: Path) -> dict[str, str]:
    """The recipes' environment: this venv off PATH; dev.sh told which interpreter and extras it has."""
    venv_bin = (VENV / "bin").resolve()
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != venv_bin]
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    base = getattr(sys, "_base_executable", "") or os.path.realpath(sys.executable)
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return env | {
        "PATH": os.pathsep.join(path),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PYTHON": base,
        "WSGRADE_TORCH": "1" if importlib.util.find_spec("torch") else "0",
    }


def _bash(script: str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash, its output kept; on the time limit, kill everything it started."""
    command = ["bash", "-e", "-u", "-o", "pipefail", "-c", script]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"ran past {TIMEOUT_S} s:\n{script}\n{output[-5000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture(scope="module")
def environment_ready(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``./dev.sh setup`` for the venv running the tests, in the repository (see the module docstring)."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the README's recipes need the tests to run in the virtual environment dev.sh makes")
    env = _environment(tmp_path_factory.mktemp("setup-home")) | {"VENV": str(VENV)}
    result = _bash("./dev.sh setup", cwd=REPO_ROOT, env=env)
    assert result.returncode == 0, result.stdout[-5000:]


def run_recipe(name: str, folder: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Run the README recipe ``name`` in a scratch checkout under ``folder``.

    Returns:
        The scratch checkout and the finished process (the recipe's exit status is checked here).
    """
    body = recipes()[name]
    script = "".join(line for line in body.splitlines(keepends=True) if not line.startswith(NOT_RUN))
    checkout = folder / "checkout"
    checkout.mkdir()
    for entry in _tracked_entries():
        if (REPO_ROOT / entry).exists():
            (checkout / entry).symlink_to(REPO_ROOT / entry)
    shutil.copy2(REPO_ROOT / "dev.sh", checkout / "dev.sh")
    (checkout / ".venv").symlink_to(VENV, target_is_directory=True)
    result = _bash(script, cwd=checkout, env=_environment(folder / "home"))
    assert result.returncode == 0, f"README recipe {name!r} failed:\n{script}\n{result.stdout[-6000:]}"
    return checkout, result


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def test_every_readme_recipe_is_run_here() -> None:
    assert sorted(recipes()) == sorted(RECIPE_TESTS), "a README recipe without a test here (or a test without one)"
    for name, body in recipes().items():
        assert body.strip(), f"the README recipe {name!r} is empty"


F = TypeVar("F", bound=Callable[..., None])


def readme_test(function: F) -> F:
    """Mark a recipe test: slow, after ``environment_ready`` (one setup check for the module's worker)."""
    for mark in (pytest.mark.usefixtures("environment_ready"), pytest.mark.slow):
        function = mark(function)
    return function


@readme_test
def test_quick_start(tmp_path: Path) -> None:
    _, result = run_recipe("quick-start", tmp_path)
    assert "is up to date with solutions/weight_sharing.py" in result.stdout
    assert "most common recognised mistakes" in result.stdout


@readme_test
def test_grading_a_class(tmp_path: Path) -> None:
    checkout, result = run_recipe("grading-a-class", tmp_path)
    out = checkout / "grading-output"
    students = sorted(path.name for path in (REPO_ROOT / "examples" / "submissions").iterdir())
    rows = _csv_rows(out / "grades.csv")
    assert sorted(Path(row["student"]).stem for row in rows) == sorted(Path(s).stem for s in students)
    for row in rows:
        feedback = out / "students" / row["student"]
        assert (feedback / "results.json").is_file() and (feedback / "feedback.md").is_file()
    assert "most common recognised mistakes" in result.stdout


@readme_test
def test_nbgrader(tmp_path: Path) -> None:
    checkout, _ = run_recipe("nbgrader", tmp_path)
    course = checkout / "course"
    scores = {row["student_id"]: float(row["score"]) for row in _csv_rows(course / "grades.csv")}
    assert scores == {"solution": CORRECTNESS_POINTS, "unchanged": 0.0}
    for student in scores:
        assert (course / "feedback" / student / "weight_sharing" / "weight_sharing.html").is_file()


@readme_test
def test_otter(tmp_path: Path) -> None:
    checkout, _ = run_recipe("otter", tmp_path)
    results = json.loads((checkout / "otter-course" / "results" / "results.json").read_text())
    names = [test["name"] for test in results["tests"]]
    assert "Autograder Failed" not in names, json.dumps(results)[:3000]
    assert sum(test.get("score", 0) for test in results["tests"]) == CORRECTNESS_POINTS


@readme_test
def test_gradescope_dry_run(tmp_path: Path) -> None:
    checkout, _ = run_recipe("gradescope", tmp_path)
    results = json.loads((checkout / "gradescope-dry-run" / "results" / "results.json").read_text())
    assert not results.get("extra_data", {}).get("grader_failed"), results.get("output")
    assert 0 < results["score"] < 100 and results["tests"], "carol's classic mistakes cost some points, not all"


def test_dry_run_without_the_environment_fails_visibly(tmp_path: Path) -> None:
    """Relative paths, a venv that is not there: a score-0 results.json, and exit 3 in a dry run."""
    root = tmp_path / "dry"
    with zipfile.ZipFile(export_gradescope(tmp_path / "autograder.zip")[0]) as archive:
        archive.extractall(root / "source")
    (root / "submission").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSGRADE_")}
    env |= {"WSGRADE_AUTOGRADER_ROOT": "dry", "WSGRADE_VENV": "no-such-venv"}
    for dry_run, status in (("1", 3), ("0", 0)):
        result = subprocess.run(
            ["bash", "dry/source/run_autograder"],
            cwd=tmp_path,
            env=env | {"WSGRADE_DRY_RUN": dry_run},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == status, result.stdout + result.stderr
        assert f"no {tmp_path}/no-such-venv/bin/python" in result.stdout, "the relative path is taken from here"
        assert "run_autograder: ERROR: the grader failed" in result.stderr
        results = json.loads((root / "results" / "results.json").read_text())
        assert results["score"] == 0 and results["extra_data"] == {"grader_failed": True}


RECIPE_TESTS = {
    "quick-start": test_quick_start,
    "grading-a-class": test_grading_a_class,
    "nbgrader": test_nbgrader,
    "otter": test_otter,
    "gradescope": test_gradescope_dry_run,
}
