"""Defence in depth around the worker process, as much as the machine allows.

Levels, chosen once per process by probing what works (``choose_isolation``):

``full`` (root, namespaces allowed: CI, a grading server)
    The worker starts in fresh PID, mount and network namespaces (``unshare``). Inside, before it
    runs anything of the student's, a small script covers the grader's package, the reference
    solution and the world-writable folders (``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``)
    with empty tmpfs mounts, binds the sandbox's scratch folder at ``/mnt``, and drops to a
    dedicated unprivileged uid (``setpriv``: no groups, no capabilities, no new privileges). The
    worker is PID 1 of its namespace: when it is killed, every process it started dies with it,
    double-forked daemons included. The network namespace has no interfaces but a down loopback.
``uid`` (root, namespaces refused: a Docker container such as Gradescope's)
    The worker drops to a dedicated uid; the grader's package and the reference are made
    unreadable to other users (``chmod go-rwx``); at the end every process of that uid is killed.
    Not available: network isolation, private ``/tmp``.
``user-namespaces`` (not root, unprivileged user namespaces allowed: many laptops)
    Namespaces and tmpfs hiding as in ``full``, but the worker keeps the student's own uid.
``process`` (anything else)
    A separate process with resource limits, and nothing more.

Every level also applies the worker's rlimits (memory, CPU time, file size, open files,
processes) and the per-call time limits of :mod:`autograder.sandbox.client`. The report of every
grading lists the protections that were not available.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

__all__ = ["MODES", "Isolation", "choose_isolation", "kill_uid", "prepare_scratch", "wrap_command"]

MODES = ("auto", "full", "uid", "user-namespaces", "process")
INNER_SCRATCH = "/mnt"
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_UID_BASE = 1_000_000
_uids = count()

ALL_PROTECTIONS = {
    "separate process": "student code runs in its own process with memory, CPU, file and process limits",
    "separate user": "the worker runs as a dedicated unprivileged uid with no capabilities",
    "grader files hidden": "the reference, the hidden tests and the grader's outputs are unreadable",
    "no network": "the worker has no network interface",
    "private /tmp": "the worker's /tmp, /var/tmp and /dev/shm are private and vanish with it",
    "all processes killed": "every process the worker started is killed when grading ends",
}

# The namespace's setup, run as (namespace) root before anything of the student's. Arguments:
# the scratch folder; the interpreter folders that lie under a world-writable folder (read twice:
# first bound into the scratch, then back at their own paths once /tmp & co. are covered); "--";
# the paths to hide; "--"; the command to exec.
_SETUP = r"""
set -e
mount --make-rprivate /
scratch="$1"
shift
n=0
for keep in "$@"; do
    if [ "$keep" = "--" ]; then break; fi
    mkdir -p "$scratch/keep/$n"
    mount --bind "$keep" "$scratch/keep/$n"
    n=$((n + 1))
done
mount --rbind "$scratch" /mnt
for d in /tmp /var/tmp /dev/shm /run/lock; do
    if [ -d "$d" ]; then mount -t tmpfs -o size=64m,mode=1777 tmpfs "$d"; fi
done
n=0
while [ "$1" != "--" ]; do
    mkdir -p "$1"
    mount --bind "/mnt/keep/$n" "$1"
    n=$((n + 1))
    shift
done
shift
while [ "$1" != "--" ]; do
    if [ -e "$1" ]; then mount -t tmpfs -o size=4k,mode=0700 tmpfs "$1"; fi
    shift
done
shift
cd /mnt/home
exec "$@"
"""


def interpreter_paths_to_keep() -> list[str]:
    """The interpreter's folders (venv and base installation) that lie under a folder the sandbox
    covers with a private tmpfs: they are mounted back so that the worker's Python still starts
    (CI clones into /tmp, for instance)."""
    folders = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    covered = [Path(d) for d in _WORLD_WRITABLE]
    keep = {str(f) for f in folders if any(f == c or c in f.parents for c in covered)}
    # a folder inside another kept folder comes back with it
    return sorted(k for k in keep if not any(Path(o) in Path(k).parents for o in keep))


@dataclass(frozen=True)
class Isolation:
    """How the worker is isolated.

    Attributes:
        mode: ``full``, ``uid``, ``user-namespaces`` or ``process`` (see the module docstring).
        protections: the protections in force, named as in ``ALL_PROTECTIONS``.
    """

    mode: str
    protections: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """The protections this machine or user could not provide."""
        return tuple(name for name in ALL_PROTECTIONS if name not in self.protections)

    @property
    def namespaces(self) -> bool:
        """Whether the worker gets its own PID, mount and network namespaces."""
        return self.mode in ("full", "user-namespaces")

    @property
    def drops_privileges(self) -> bool:
        """Whether the worker runs as a dedicated uid."""
        return self.mode in ("full", "uid")

    def describe(self) -> str:
        """One line for the report."""
        if not self.missing:
            return f"sandbox: {self.mode} isolation ({', '.join(self.protections)})"
        return f"sandbox: {self.mode} isolation; not available here: {', '.join(self.missing)}"


def _works(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_NAMESPACES = ["--pid", "--fork", "--kill-child", "--mount", "--net", "--mount-proc"]


@functools.cache
def _probe() -> dict[str, bool]:
    root = os.geteuid() == 0
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    mnt = Path(INNER_SCRATCH).is_dir()
    return {
        "namespaces": bool(root and unshare and mnt) and _works([unshare, *_NAMESPACES, "true"]),  # type: ignore[list-item]
        "setpriv": bool(root and setpriv)
        and _works([setpriv, f"--reuid={_UID_BASE}", f"--regid={_UID_BASE}", "--clear-groups", "true"]),  # type: ignore[list-item]
        "userns": bool(not root and unshare and mnt)
        and _works([unshare, "--user", "--map-root-user", *_NAMESPACES, "true"]),  # type: ignore[list-item]
    }


_LEVELS = {
    "full": (
        "separate process",
        "separate user",
        "grader files hidden",
        "no network",
        "private /tmp",
        "all processes killed",
    ),
    "uid": ("separate process", "separate user", "grader files hidden", "all processes killed"),
    "user-namespaces": (
        "separate process",
        "grader files hidden",
        "no network",
        "private /tmp",
        "all processes killed",
    ),
    "process": ("separate process",),
}


def choose_isolation(requested: str = "auto") -> Isolation:
    """The strongest isolation this machine allows (or the one requested, if it is available).

    Args:
        requested: ``auto`` or one of the modes.

    Returns:
        The isolation.

    Raises:
        ValueError: for an unknown mode, or a mode this machine cannot provide.
    """
    if requested not in MODES:
        raise ValueError(f"isolation must be one of {', '.join(MODES)}; got {requested!r}")
    probe = _probe()
    available = ["process"]
    if probe["userns"]:
        available.insert(0, "user-namespaces")
    if probe["setpriv"]:
        available.insert(0, "uid")
        if probe["namespaces"]:
            available.insert(0, "full")
    mode = available[0] if requested == "auto" else requested
    if mode not in available:
        raise ValueError(f"isolation {mode!r} is not available here (available: {', '.join(available)})")
    return Isolation(mode, _LEVELS[mode])


def new_uid() -> int:
    """A uid for one sandbox, unique among the sandboxes of all grading processes on this machine."""
    return _UID_BASE + 16 * (os.getpid() % 4_000_000) + next(_uids) % 16


def prepare_scratch(isolation: Isolation, scratch: Path, uid: int | None, hide: Sequence[Path]) -> None:
    """Set ownership and permissions so that only the worker's uid can write its home.

    Args:
        isolation: the isolation in force.
        scratch: the sandbox's scratch folder (holding ``worker.py``, ``config.json``, ``home/``).
        uid: the worker's uid, when it drops privileges.
        hide: paths to make unreadable by other users (``uid`` mode, where no mount can hide them).
    """
    if not isolation.drops_privileges or uid is None:
        return
    scratch.chmod(0o755)
    for path in scratch.iterdir():
        if path.is_file():
            path.chmod(0o644)
    os.chown(scratch / "home", uid, uid)
    (scratch / "home").chmod(0o700)
    if isolation.mode == "uid":
        for path in hide:
            if path.exists():
                path.chmod(path.stat().st_mode & 0o700)


def wrap_command(
    isolation: Isolation, argv: list[str], scratch: Path, uid: int | None, hide: Sequence[Path]
) -> tuple[list[str], Path]:
    """The command that starts the worker under ``isolation``, and its working directory.

    Args:
        isolation: the isolation.
        argv: the worker's own command, with paths inside ``scratch``.
        scratch: the scratch folder.
        uid: the worker's uid, when it drops privileges.
        hide: paths the worker must not see.

    Returns:
        ``(argv, cwd)``.
    """
    drop = (
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all"]
        if isolation.drops_privileges and uid is not None
        else []
    )
    if not isolation.namespaces:
        return drop + argv, scratch / "home"
    inner = [arg.replace(str(scratch), INNER_SCRATCH) for arg in argv]
    user = ["--user", "--map-root-user"] if isolation.mode == "user-namespaces" else []
    command = ["unshare", *user, *_NAMESPACES, "sh", "-c", _SETUP, "wsgrade-sandbox", str(scratch)]
    keep = interpreter_paths_to_keep()
    return command + keep + ["--"] + [str(p) for p in hide] + ["--"] + drop + inner, scratch


def kill_uid(uid: int) -> int:
    """Kill every process running as ``uid`` (the worker and anything it left behind).

    Args:
        uid: the sandbox's uid.

    Returns:
        How many processes were signalled.
    """
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if line.split()[1:2] == [str(uid)]:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed
