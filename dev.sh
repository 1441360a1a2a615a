#!/usr/bin/env bash
# The project's entry points on a fresh machine (only Python 3.11, pip and gcc needed):
#   ./dev.sh demo    set up, then grade the bundled example submissions (the main job)
#   ./dev.sh test    set up, then run the whole test suite (what CI runs)
#   ./dev.sh setup   only create .venv and install the pinned dependencies
# Setup is idempotent: it reinstalls only when pyproject.toml or the constraints change.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    local stamp
    stamp="$VENV/.installed-$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "setting up $VENV (pinned by requirements/constraints.txt) ..."
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[test,platforms]"
        # torch is an optional oracle for the reference; without it those tests are skipped.
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c requirements/constraints.txt "torch==2.13.0" \
            || echo "torch 2.13.0 could not be installed: the torch oracle tests will be skipped"
        rm -f "$VENV"/.installed-*
        touch "$stamp"
    fi
    export PATH="$PWD/$VENV/bin:$PATH"
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        setup
        wsgrade release --check
        wsgrade demo
        ;;
    test)
        setup
        shift
        python -m pytest -n 2 --dist loadgroup "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo|test|setup" >&2
        exit 2
        ;;
esac
