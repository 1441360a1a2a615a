"""One cgroup per sandbox, where the machine allows: limits and accounting for the whole tree.

rlimits are per process: a submission that forks can hold the memory limit many times over.
A cgroup bounds the sandbox **as a whole** (``memory.max`` / ``memory.limit_in_bytes``, and
``pids.max``), kills every process in it at the end, and counts the CPU time of the whole tree
(what the time limits that decide a score are measured in). Both cgroup v2 (unified) and v1
hierarchies are supported; where neither is writable (not root, or a container without
delegation) :meth:`SandboxCgroup.create` returns None and the rlimits and the per-uid process
limit are what remains.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SandboxCgroup"]

_log = logging.getLogger(__name__)

_ROOT = Path("/sys/fs/cgroup")


def _own_cgroups() -> dict[str, str]:
    """Controller (``""`` for the unified hierarchy) -> this process's cgroup path."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                groups[controller] = parts[2]
    return groups


@functools.cache
def _layout() -> dict[str, Path] | None:
    """Where new cgroups for memory, pids and cpu accounting go, or None if not writable."""
    if os.geteuid() != 0:
        return None
    own = _own_cgroups()
    unified = _ROOT / own.get("", "/").lstrip("/")
    controllers = unified / "cgroup.controllers"
    if controllers.is_file() and {"memory", "pids"} <= set(controllers.read_text().split()):
        return {"v2": unified}
    layout = {}
    for controller in ("memory", "pids", "cpuacct", "cpuset"):
        base = _ROOT / controller
        if not base.is_dir():
            if controller == "cpuset":  # optional: pinning falls back to sched_setaffinity
                continue
            return None
        layout[controller] = base / own.get(controller, own.get("cpu,cpuacct", "/")).lstrip("/")
    return layout


@dataclass
class SandboxCgroup:
    """The cgroup(s) of one sandbox.

    Attributes:
        paths: the cgroup folders made for it (one in v2; memory, pids and cpuacct in v1).
    """

    paths: tuple[Path, ...]
    #: the open CPU accounting file and its kind (``cpu.stat`` or ``cpuacct.usage``), read with
    #: ``pread`` on every call of student code: opening the file each time cost 0.5 ms a call
    _usage: tuple[int, str] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, processes: int, cpus: str = "") -> SandboxCgroup | None:
        """Make the sandbox's cgroup with its limits, or None where the machine does not allow it.

        Args:
            name: a name unique on this machine (the sandbox's uid or scratch name).
            memory_bytes: memory of the whole tree (tmpfs pages it writes included).
            processes: processes and threads of the whole tree.
            cpus: a cpuset list (``"1"``) the whole tree is pinned to, which a process in it cannot
                widen; empty for no pinning.

        Returns:
            The cgroup, or None.
        """
        layout = _layout()
        if layout is None:
            return None
        made: list[Path] = []
        try:
            if "v2" in layout:
                path = layout["v2"] / f"wsgrade-{name}"
                path.mkdir()
                made.append(path)
                (path / "memory.max").write_text(str(memory_bytes))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
                (path / "pids.max").write_text(str(processes))
                if cpus and (path / "cpuset.cpus").exists():
                    (path / "cpuset.cpus").write_text(cpus)
            else:
                for controller, base in layout.items():
                    path = base / f"wsgrade-{name}"
                    path.mkdir()
                    made.append(path)
                    if controller == "memory":
                        (path / "memory.limit_in_bytes").write_text(str(memory_bytes))
                    elif controller == "pids":
                        (path / "pids.max").write_text(str(processes))
                    elif controller == "cpuset":
                        (path / "cpuset.mems").write_text((base / "cpuset.mems").read_text().strip())
                        (path / "cpuset.cpus").write_text(cpus or (base / "cpuset.cpus").read_text().strip())
        except OSError as problem:
            _log.warning("no cgroup for sandbox %s (%s): only per-process rlimits apply", name, problem)
            cls(tuple(made)).remove()
            return None
        return cls(tuple(made))

    def pin(self, cpus: str) -> bool:
        """Pin every process of the cgroup, now and later, to ``cpus`` (which they cannot widen).

        Returns:
            Whether the machine allowed it (a cpuset controller in the cgroup).
        """
        for path in self.paths:
            if (path / "cpuset.cpus").exists():
                try:
                    (path / "cpuset.cpus").write_text(cpus)
                    return True
                except OSError:
                    return False
        return False

    def enter_command(self) -> list[str]:
        """A prefix that moves the command into the cgroup before it runs (its children follow)."""
        procs = [str(path / "cgroup.procs") for path in self.paths]
        script = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "wsgrade-cgroup", *procs, "--"]

    def _usage_file(self) -> tuple[int, str] | None:
        if self._usage is None:
            for path in self.paths:
                for name in ("cpu.stat", "cpuacct.usage"):
                    with contextlib.suppress(OSError):
                        self._usage = (os.open(path / name, os.O_RDONLY | os.O_CLOEXEC), name)
                        return self._usage
        return self._usage

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used by every process that ran in the cgroup so far."""
        usage = self._usage_file()
        if usage is None:
            return 0.0
        fd, name = usage
        with contextlib.suppress(OSError, ValueError):
            text = os.pread(fd, 4096, 0).decode()
            if name == "cpuacct.usage":
                return int(text) / 1e9
            for line in text.splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
        return 0.0

    def oom_killed(self) -> bool:
        """Whether the memory limit of the whole tree killed a process."""
        for path in self.paths:
            with contextlib.suppress(OSError, ValueError):
                if (path / "memory.events").is_file():
                    events = dict(line.split() for line in (path / "memory.events").read_text().splitlines())
                    return int(events.get("oom_kill", 0)) > 0
                if (path / "memory.failcnt").is_file():
                    return int((path / "memory.failcnt").read_text()) > 0
        return False

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(pid) for pid in (path / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill(self) -> None:
        """Kill every process in the cgroup, until none is left (bounded)."""
        for path in self.paths:
            if (path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (path / "cgroup.kill").write_text("1")
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and delete the cgroup folders."""
        self.kill()
        if self._usage is not None:
            os.close(self._usage[0])
            self._usage = None
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
