#!/usr/bin/env bash
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
# Record the hidden tests' inputs into the image once: each grading then replays them (about a
# second less per submission) instead of recording them first. Gradings work without it.
"$venv/bin/python" -m autograder prepare \
    || echo "setup.sh: WARNING: could not record the hidden tests' inputs (see above); each grading draws them" >&2
echo "setup.sh: done"
