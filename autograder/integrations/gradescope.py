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
from pathlib import Path

from autograder.files import atomic_output
from autograder.source import REPO_ROOT

__all__ = ["RUN_AUTOGRADER", "SETUP_SH", "SHIPPED", "bundle_files", "export"]

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, in /autograder/source when it builds the autograder image.
# It installs the grader into a virtual environment: Python packages come from the package index
# only (pip's default index), pinned by requirements/constraints.txt; nothing else is downloaded.
# Needs Python >= 3.11 (3.11 is what the pins are tested with). On Gradescope's Ubuntu 22.04 base
# image, python3.11 and python3.11-venv come from Ubuntu's own archive; Ubuntu 24.04's archive has
# no python3.11, so choose the 22.04 base image (or set WSGRADE_PYTHON to an interpreter >= 3.11).
#
# Environment (defaults are Gradescope's layout):
#   WSGRADE_AUTOGRADER_ROOT  folder holding source/                   (default /autograder)
#   WSGRADE_VENV             virtual environment to make or reuse     (default /opt/wsgrade-venv)
#   WSGRADE_PYTHON           interpreter that makes the environment   (default python3.11)
# A relative path is taken from the folder this script was started in.
set -euo pipefail

absolute() {
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac
}
source_dir="$(absolute "${WSGRADE_AUTOGRADER_ROOT:-/autograder}")/source"
venv="$(absolute "${WSGRADE_VENV:-/opt/wsgrade-venv}")"
python="${WSGRADE_PYTHON:-python3.11}"

die() {
    echo "setup.sh: ERROR: $*" >&2
    exit 1
}

usable() {
    command -v "$python" >/dev/null 2>&1 && "$python" -c 'import ensurepip, venv' >/dev/null 2>&1
}

if [ ! -x "$venv/bin/python" ]; then
    if ! usable && [[ "$python" != */* ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: installing $python and $python-venv from the base image's apt archive"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$python" "$python-venv" \
            || echo "setup.sh: apt-get could not install $python" >&2
    fi
    usable || die "$python with its venv module is needed and not available. On Gradescope, choose the" \
        "Ubuntu 22.04 base image (its archive has python3.11 and python3.11-venv), or set WSGRADE_PYTHON" \
        "to a Python >= 3.11 that has the venv module."
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is Python $("$python" -c 'import sys; print(sys.version.split()[0])'); the grader needs >= 3.11"
    "$python" -m venv "$venv" || die "could not create the virtual environment $venv"
fi

echo "setup.sh: installing the grader from $source_dir into $venv (pinned by requirements/constraints.txt)"
"$venv/bin/python" -m pip install --no-input --disable-pip-version-check --no-cache-dir \
    -c "$source_dir/requirements/constraints.txt" -e "$source_dir" \
    || die "pip could not install the grader and its pinned dependencies (see pip's message above)"
"$venv/bin/python" -c 'import autograder.grading, autograder.report' \
    || die "the grader was installed but does not import (see the traceback above)"
echo "setup.sh: done"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this once per submission, as root, in a fresh container of the image setup.sh
# built. It grades /autograder/submission with the sandboxed grader into
# /autograder/results/results.json. Whatever happens, it leaves a valid results.json: if the grader
# fails (a crash, a missing environment, the time limit), it writes a score of 0 with a message
# that says the grader failed, not the student's code. Standard output (the grader's report and
# what went wrong) is shown to instructors only.
#
# Environment (defaults are Gradescope's layout):
#   WSGRADE_AUTOGRADER_ROOT  folder holding source/, submission/, results/   (default /autograder)
#   WSGRADE_VENV             virtual environment made by setup.sh            (default /opt/wsgrade-venv)
#   WSGRADE_TIME_LIMIT       seconds the grader may run; keep it under the assignment's autograder
#                            timeout (default 540; Gradescope's default timeout is 600)
#   WSGRADE_DRY_RUN=1        a dry run: exit with status 3 when the grader failed. Otherwise the exit
#                            status is 0 either way: Gradescope reads only results.json.
# A relative path is taken from the folder this script was started in (it changes to source/).
set -uo pipefail

absolute() {
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac
}
root="$(absolute "${WSGRADE_AUTOGRADER_ROOT:-/autograder}")"
venv="$(absolute "${WSGRADE_VENV:-/opt/wsgrade-venv}")"
if [ -d "$venv" ]; then
    venv="$(cd "$venv" && pwd -P)"  # its real path: the sandbox mounts real paths for the worker
fi
limit="${WSGRADE_TIME_LIMIT:-540}"
python="$venv/bin/python"
results="$root/results/results.json"

case "$limit" in
    '' | *[!0-9]*)
        echo "WSGRADE_TIME_LIMIT=$limit is not a whole number of seconds; using 540"
        limit=540
        ;;
esac

mkdir -p "$root/results"
rm -f "$results"
[ -x "$python" ] || echo "no $python: setup.sh did not make the environment (see the build log)"
cd "$root/source" || echo "no folder $root/source"
export PYTHONPATH="$root/source"  # the unpacked tree: the grader finds solutions/ next to autograder/

"$python" -c '
import sys, autograder
print("wsgrade", autograder.__version__, "from", autograder.__path__[0], "on Python", sys.version.split()[0])
'
# -P: nothing in the current folder shadows an import. --require-isolation: refuse to grade where
# student code's file access cannot be restricted (set WSGRADE_ALLOW_UNISOLATED=1 to grade anyway).
isolation=--require-isolation
[ "${WSGRADE_ALLOW_UNISOLATED:-0}" = 1 ] && isolation=
timeout --kill-after=10 "$limit" \
    "$python" -P -m autograder grade "$root/submission" --json "$results" --budget "$((limit * 9 / 10))" $isolation
status=$?
echo "the grader exited with status $status"

if timeout 60 "$python" -I -c '
import json, math, sys
with open(sys.argv[1]) as stream:
    data = json.load(stream)
score = data["score"]
assert isinstance(score, (int, float)) and math.isfinite(score), "score is not a number"
assert isinstance(data.get("tests", []), list), "tests is not a list"
' "$results"; then
    exit 0
fi

case "$status" in
    124 | 137) reason="it ran past its time limit of $limit seconds" ;;
    *) reason="it stopped with exit status $status" ;;
esac
echo "no valid results.json from the grader ($reason): writing a score of 0"
message="The autograder could not grade this submission: the grading program itself failed ($reason)."
message+=" This is not a verdict on your code. Please tell your course staff: they can see the details"
message+=" in the autograder output. The score of 0 stands only until the submission is graded again."
cat >"$results.partial" <<EOF
{
  "score": 0,
  "output": "$message",
  "visibility": "visible",
  "stdout_visibility": "hidden",
  "tests": [],
  "extra_data": {"grader_failed": true}
}
EOF
mv "$results.partial" "$results"
echo "run_autograder: ERROR: the grader failed ($reason); $results holds a score of 0 that says so" >&2
if [ "${WSGRADE_DRY_RUN:-0}" = 1 ]; then
    exit 3
fi
"""

#: What the zip carries from the repository besides the two scripts (folders are walked).
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
