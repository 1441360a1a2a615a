"""Gradescope: ``wsgrade export gradescope FILE.zip`` writes the autograder zip an instructor uploads.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` there once, as root, when
it builds the assignment's image, then, for each submission, runs ``/autograder/run_autograder``
(a copy of the one in the zip) with the student's files in ``/autograder/submission`` and reads
``/autograder/results/results.json``. The zip holds:

* ``setup.sh``: makes a virtual environment with Python 3.11 and installs this package, editable
  from ``/autograder/source``, with its dependencies from the package index only, pinned by
  ``requirements/constraints.txt``. Assumed: an Ubuntu base image (Gradescope's default, 22.04)
  with ``python3.11`` or an apt archive that has it (22.04's does; 24.04's does not). Without
  Python 3.11 it stops with a message that says which base image to pick.
* ``run_autograder``: grades the submission with the sandboxed grader (``wsgrade grade
  SUBMISSION --json results.json``, run from the unpacked tree) and, if the grader leaves no
  valid ``results.json`` (a crash, a missing environment, the time limit), writes one with score 0
  and a message saying that the grader, not the student's code, failed.
* the source tree the grader needs: ``autograder/`` (hidden tests included; the sandbox keeps
  them away from student code at run time), ``solutions/`` (the reference), ``pyproject.toml``,
  ``README.md`` and ``requirements/constraints.txt``.

Both scripts read their paths from the environment, so that the project's tests can run them in
a temporary folder laid out like ``/autograder``:

* ``WSGRADE_AUTOGRADER_ROOT``: the folder holding ``source/``, ``submission/`` and ``results/``
  (default ``/autograder``).
* ``WSGRADE_VENV``: the virtual environment (default ``/opt/wsgrade-venv``). It must stay
  readable by the sandbox's unprivileged worker, which runs its interpreter while the grader's
  files and, where namespaces are allowed, ``/tmp`` are hidden from it: hence outside
  ``/autograder`` and ``/tmp``. ``setup.sh`` reuses one that exists and only installs into it.
* ``WSGRADE_PYTHON``: the interpreter ``setup.sh`` makes the environment with (default
  ``python3.11``; a bare name is installed with apt when missing).
* ``WSGRADE_TIME_LIMIT``: seconds ``run_autograder`` lets the grader run (default 540, under
  Gradescope's default timeout of 600); the grader's own budget is 90% of it, so that it
  normally finishes and reports the tests it could not run.
* ``WSGRADE_DRY_RUN=1``: ``run_autograder`` exits with status 3 (the grader failed) when it had to
  write the score-0 ``results.json``; without it the status is 0 either way (Gradescope reads only
  the file).

A relative path in these variables is taken from the folder the script was started in.

The zip is deterministic: entries sorted, timestamps fixed, modes fixed (the two scripts
executable), so the same tree gives the same bytes.
"""

from __future__ import annotations

import zipfile
from importlib.resources import files
from pathlib import Path

from autograder.files import atomic_output
from autograder.source import REPO_ROOT

__all__ = ["RUN_AUTOGRADER", "SETUP_SH", "SHIPPED", "bundle_files", "export"]

#: The two scripts Gradescope runs, kept as files beside this module (checked by shellcheck in the
#: tests): setup.sh builds the image once, run_autograder grades one submission.
SETUP_SH = files("autograder.integrations").joinpath("scripts/setup.sh").read_text()
RUN_AUTOGRADER = files("autograder.integrations").joinpath("scripts/run_autograder").read_text()

SHIPPED = ("README.md", "pyproject.toml", "requirements/constraints.txt", "autograder", "solutions")

_SKIPPED_FOLDERS = {"__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".ipynb_checkpoints"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold
_SCRIPT_MODE, _FILE_MODE = 0o100755, 0o100644


def bundle_files(root: Path = REPO_ROOT) -> dict[str, Path]:
    """The files of the source tree that go into the zip.

    Args:
        root: the repository (default: the one this package is in).

    Returns:
        Archive name (POSIX path) -> file, sorted by name; caches, compiled files and build
        metadata are left out.

    Raises:
        ValueError: if something in :data:`SHIPPED` is missing (not a checkout of the project).
    """
    files: dict[str, Path] = {}
    for name in SHIPPED:
        path = root / name
        if not path.exists():
            raise ValueError(f"{path} is missing: export the Gradescope autograder from a checkout of the project")
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for candidate in candidates:
            relative = candidate.relative_to(root)
            if candidate.is_symlink() or relative.name.endswith(_SKIPPED_SUFFIXES):
                continue
            if any(part in _SKIPPED_FOLDERS or part.endswith(".egg-info") for part in relative.parts):
                continue
            files[relative.as_posix()] = candidate
    return dict(sorted(files.items()))


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_TIMESTAMP)
    info.create_system = 3  # Unix, so that unzip applies the mode
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def export(dest: Path) -> list[Path]:
    """Write the Gradescope autograder zip (see the module docstring for what it holds).

    Args:
        dest: the ``.zip`` to write; an existing file is replaced.

    Returns:
        ``[dest]``.

    Raises:
        ValueError: if ``dest`` does not end in ``.zip`` or is a folder, or the source tree is incomplete.
    """
    dest = Path(dest)
    if dest.suffix != ".zip" or dest.is_dir():
        raise ValueError(f"{dest}: give the path of the .zip to write, e.g. weight_sharing_autograder.zip")
    entries = [("run_autograder", RUN_AUTOGRADER.encode(), _SCRIPT_MODE), ("setup.sh", SETUP_SH.encode(), _SCRIPT_MODE)]
    entries += [(name, path.read_bytes(), _FILE_MODE) for name, path in bundle_files().items()]
    with atomic_output(dest) as stream, zipfile.ZipFile(stream, "w") as archive:
        for name, data, mode in sorted(entries):
            archive.writestr(_entry(name, mode), data, compresslevel=9)
    return [dest]
