#!/usr/bin/env bash
# The project's entry points on a fresh machine (CPython 3.11, 3.12 or 3.13 with its venv module;
# gcc only where a pinned package has no wheel):
#   ./dev.sh demo    install the grader alone, then grade the bundled example submissions
#   ./dev.sh test    install it with the test tools and the course platforms (nbgrader, otter),
#                    then run the whole test suite (what CI runs); arguments go to pytest
#   ./dev.sh setup   only install what `test` needs (what the README's platform recipes use)
#
# Environment:
#   PYTHON=python3.12  the interpreter that makes the environment (default python3). An environment
#                      made by another interpreter is deleted and made again.
#   VENV=DIR           the virtual environment (default .venv)
#   WSGRADE_TORCH=1    also install torch 2.13.0, the optional oracle of tests/test_reference.py
#                      (those tests skip without it). From PyPI that is a CUDA build of about 3 GB.
#
# Setup is idempotent: it installs only when pyproject.toml, the constraints or the interpreter
# changed, or something asked for is missing. pip is quiet when it succeeds; when it fails, the end
# of its output (its own error) is shown.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
[[ "$VENV" == /* ]] || VENV="$PWD/$VENV"
TORCH="${WSGRADE_TORCH:-0}"
# What `test` and `setup` install besides the package; `demo` needs none of them.
DEV_EXTRAS="test,platforms,class,cluster,experiment"

die() {
    echo "dev.sh: ERROR: $*" >&2
    exit 1
}

# Which interpreter, as "VERSION PREFIX" (the base prefix: the same for a venv made from it).
identity() {
    "$1" -c 'import platform, sys; print(platform.python_implementation() + " " + platform.python_version() + " " + getattr(sys, "base_prefix", sys.prefix))'
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 \
        || die "PYTHON=$PYTHON: no such command. This project needs CPython 3.11, 3.12 or 3.13;" \
            "pick one with e.g. PYTHON=python3.12 ./dev.sh demo (or PYTHON=/path/to/python3)."
    local found
    found="$(identity "$PYTHON")" || die "PYTHON=$PYTHON ($(command -v "$PYTHON")) does not run (see above);" \
        "pick another with e.g. PYTHON=python3.12 ./dev.sh demo (or PYTHON=/path/to/python3)."
    "$PYTHON" -c 'import platform, sys; sys.exit(platform.python_implementation() != "CPython" or not (3, 11) <= sys.version_info[:2] <= (3, 13))' \
        || die "PYTHON=$PYTHON ($(command -v "$PYTHON")) is ${found% *}; this project needs CPython 3.11, 3.12 or 3.13." \
            "Pick another with e.g. PYTHON=python3.12 ./dev.sh demo (or PYTHON=/path/to/python3)."
    "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 \
        || die "PYTHON=$PYTHON (${found% *}, $(command -v "$PYTHON")) has no venv/ensurepip module." \
            "On Debian or Ubuntu: sudo apt-get install python3-venv (for python3.X: python3.X-venv);" \
            "or pick another interpreter with PYTHON=..."
}

# Run pip with its output in a log; on failure show the end of the log (pip's real error).
pip_install() {
    local log="$VENV/pip-install.log"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >"$log" 2>&1; then
        echo "---- the last 40 lines of pip's output (all of it: $log) ----" >&2
        tail -n 40 "$log" >&2
        die "pip install $* failed (see pip's message above)."
    fi
}

# The extras installed so far (a comma list, "" for none), if the environment is up to date.
installed_extras() {
    local state="$VENV/.wsgrade-setup"
    [ -f "$state" ] && [ "$(head -n 1 "$state")" = "$1" ] && sed -n 2p "$state"
}

# setup EXTRAS: make the environment with the package and these extras (comma list, may be "").
setup() {
    check_python
    # One setup at a time in this checkout (CI's test runs and parallel tests call it too).
    if command -v flock >/dev/null 2>&1; then
        exec 9<"${0##*/}"  # this script, in the folder dev.sh changed to
        flock 9
    fi
    local wanted made=""
    wanted="$(identity "$PYTHON")"
    if [ -e "$VENV" ]; then
        [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists but is not a virtual environment; move it away or set VENV=..."
        made="$(identity "$VENV/bin/python" 2>/dev/null)" || made="a broken interpreter"
        if [ "$made" != "$wanted" ]; then
            echo "dev.sh: $VENV was made by $made; PYTHON=$PYTHON is $wanted: making it again"
            rm -rf "$VENV"
        fi
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv $VENV failed (see above)."
    fi
    local needed="$1" key have="" extra missing=0
    if [ "$TORCH" = 1 ]; then
        needed="${needed:+$needed,}torch"
    fi
    key="$({ cat pyproject.toml requirements/constraints.txt; echo "$wanted"; } | sha256sum | cut -c1-16)"
    if have="$(installed_extras "$key")"; then
        for extra in ${needed//,/ }; do
            [[ ",$have," == *",$extra,"* ]] || missing=1
        done
    else
        have="" missing=1
    fi
    if [ "$missing" = 1 ]; then
        local extras
        extras="$(printf '%s,%s\n' "$have" "$needed" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
        echo "dev.sh: setting up $VENV with ${wanted% *} ($(command -v "$PYTHON")), extras [$extras]," \
            "pinned by requirements/constraints.txt ..."
        pip_install --upgrade pip
        pip_install -c requirements/constraints.txt -e ".${extras:+[$extras]}"
        rm -f "$VENV"/.installed-*  # the stamps of an older dev.sh
        printf '%s\n%s\n' "$key" "$extras" >"$VENV/.wsgrade-setup"
        echo "dev.sh: $VENV is ready ($(du -sh "$VENV" | cut -f1))"
    fi
    export PATH="$VENV/bin:$PATH"
    if command -v flock >/dev/null 2>&1; then
        flock -u 9
    fi
}

case "${1:-}" in
    setup)
        setup "$DEV_EXTRAS"
        ;;
    demo)
        setup ""
        wsgrade release --check
        wsgrade demo
        ;;
    test)
        setup "$DEV_EXTRAS"
        shift
        python -m pytest -n 2 --dist loadfile "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo|test|setup   (environment: PYTHON=python3.12, VENV=DIR, WSGRADE_TORCH=1)" >&2
        exit 2
        ;;
esac
