#!/usr/bin/env bash
# Task 5.3 on a real GPU: every check that needs CUDA, in one short run (issue 15).
#
#   benchmarks/gpu_check.sh [--python PY] [--inherit-packages] [--wheels DIR] [--cupy SPEC]
#                           [--pip-args ARGS] [--workdir DIR] [--budget SECONDS]
#
# It prints one line per check, PASS or FAIL:
#   gpu             a CUDA GPU is here (nvidia-smi lists one, or /dev/nvidia0 exists); if not, it
#                   says so and exits 3 at once, before installing anything;
#   install         a fresh venv holds the project with its `gpu` extra (pip install -e ".[gpu]"),
#                   and CuPy in it sees the device and runs a kernel;
#   sandbox-probe   a CuPy array goes through the grader's sandboxed worker and back (what every
#                   5.3 test does first; when it fails, the worker's own last words say why);
#   reference, numpy-only, cupy, cupy-slow
#                   `wsgrade grade --gpu require` on each submission of benchmarks/gpu_submissions
#                   (see its docstring for what each must score);
#   hidden-5.3-tests  the hidden 5.3 tests run directly with pytest on the reference;
#   benchmark SHAPE   conv_benchmark --device cuda: the CuPy reference against torch's CUDA conv2d
#                   on each of the three speed shapes (times and their ratio).
# Then a summary line. Results (results.json, JUnit XML, benchmark JSON) and logs stay in the work
# folder. Every step has a time limit, and the whole run stops within --budget seconds (default 540).
#
# Options:
#   --python PY         the interpreter the venv is made from (default: python3)
#   --inherit-packages  the venv also sees PY's packages (PY's own venv's too): torch for the
#                       benchmark, or a CuPy that is already installed
#   --wheels DIR        install offline, from the wheels in DIR only (pip --no-index --find-links)
#   --cupy SPEC         install this CuPy instead of the gpu extra's cupy-cuda12x (e.g.
#                       cupy-cuda13x for a CUDA 13 driver)
#   --pip-args ARGS     more arguments for pip install, split at spaces (e.g. "--no-deps")
#   --workdir DIR       where the venv, submissions, results and logs go (default: a new folder in /tmp)
#   --budget SECONDS    the whole run's time limit (default 540)
#
# Exit status: 0 every check passed; 1 a check failed; 2 bad usage; 3 no CUDA GPU on this machine;
# 4 the environment could not be set up (venv, pip install, or CuPy sees no usable device).

set -u -o pipefail

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_NO_GPU=3 EXIT_SETUP=4
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

python=python3
inherit=0
wheels=""
cupy_spec=""
pip_args=""
workdir=""
budget=540

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

die_usage() {
    echo "gpu_check.sh: $1 (see --help)" >&2
    exit "$EXIT_USAGE"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --python | --wheels | --cupy | --pip-args | --workdir | --budget)
            [ $# -ge 2 ] || die_usage "$1 needs a value"
            case "$1" in
                --python) python="$2" ;;
                --wheels) wheels="$2" ;;
                --cupy) cupy_spec="$2" ;;
                --pip-args) pip_args="$2" ;;
                --workdir) workdir="$2" ;;
                --budget) budget="$2" ;;
            esac
            shift 2
            ;;
        --inherit-packages)
            inherit=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done
case "$budget" in
    '' | *[!0-9]*) die_usage "--budget must be a whole number of seconds, not '$budget'" ;;
esac
if [ -n "$wheels" ] && [ ! -d "$wheels" ]; then
    die_usage "--wheels $wheels is not a folder"
fi

deadline=$((SECONDS + budget))
checks=0
failed=0

# The seconds a step may take: its own limit, or what is left of the budget if that is less.
step_limit() {
    local left=$((deadline - SECONDS - 5))
    if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# Count one verdict: $1 is 0 for PASS.
record() {
    checks=$((checks + 1))
    if [ "$1" -ne 0 ]; then failed=$((failed + 1)); fi
}

# Print a FAIL line for a step that ran out of time or was never started; 0 when the step may run.
out_of_time() {
    local name="$1" limit="$2" code="${3:-0}"
    if [ "$limit" -lt 10 ]; then
        echo "FAIL $name: not run, the check's budget of ${budget} s is spent"
        record 1
        return 0
    fi
    if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
        echo "FAIL $name: stopped after its time limit of ${limit} s"
        record 1
        return 0
    fi
    return 1
}

last_line() {
    grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1
}

# The last line of a log that names an error, past pip's boilerplate (else its last line).
last_error() {
    local found
    found="$(grep -iE 'error' "$1" 2>/dev/null | grep -vE 'subprocess-exited-with-error|metadata-generation-failed|^[[:space:]]*note:' |
        tail -n 1 | sed 's/^[[:space:]]*//')"
    if [ -n "$found" ]; then echo "$found"; else last_line "$1"; fi
}

# Run `python -m benchmarks.gpu_submissions ARGS...` within LIMIT seconds, print its PASS/FAIL
# lines and count each; a run that printed no verdict, or failed without a FAIL line, counts as a
# FAIL for NAME. Usage: verdicts NAME LIMIT ARGS...
verdicts() {
    local name="$1" limit="$2" output code line seen=0 fails=0
    shift 2
    output="$(timeout --kill-after=10 "$limit" "$vpy" -m benchmarks.gpu_submissions "$@" 2>>"$logs/verdicts.log")"
    code=$?
    out_of_time "$name" "$limit" "$code" && return
    while IFS= read -r line; do
        case "$line" in
            "PASS "*) record 0 ;;
            "FAIL "*)
                record 1
                fails=$((fails + 1))
                ;;
            *) continue ;;
        esac
        seen=1
        echo "$line"
    done <<<"$output"
    if [ "$seen" -eq 0 ] || { [ "$code" -ne 0 ] && [ "$fails" -eq 0 ]; }; then
        echo "FAIL $name: no verdict (exit $code): $(last_line "$logs/verdicts.log")"
        record 1
    fi
}

# -- 1. a CUDA GPU --------------------------------------------------------------------------------
smi="$(command -v nvidia-smi || true)"
if [ -z "$smi" ] && [ -x /usr/local/nvidia/bin/nvidia-smi ]; then smi=/usr/local/nvidia/bin/nvidia-smi; fi
gpus=""
if [ -n "$smi" ]; then gpus="$("$smi" -L 2>/dev/null | grep '^GPU ' || true)"; fi
if [ -z "$gpus" ]; then
    for node in /dev/nvidia[0-9]*; do
        if [ -e "$node" ]; then gpus="$node (nvidia-smi ${smi:-not found}${smi:+ lists none})"; fi
        break
    done
fi
if [ -z "$gpus" ]; then
    echo "SKIP gpu: no CUDA GPU on this machine (nvidia-smi ${smi:-not found}${smi:+ lists none}, no /dev/nvidia0):" \
        "Task 5.3 cannot be checked here; run benchmarks/gpu_check.sh on a machine with an NVIDIA GPU"
    exit "$EXIT_NO_GPU"
fi
echo "PASS gpu: $(echo "$gpus" | head -n 1)"
record 0

# -- 2. a fresh venv with the gpu extra -------------------------------------------------------------
if [ -n "$workdir" ]; then
    mkdir -p "$workdir" || exit "$EXIT_SETUP"
    work="$(cd "$workdir" && pwd)"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")" || exit "$EXIT_SETUP"
fi
chmod 755 "$work" # the sandbox's worker may run as another user: it must reach the venv
venv="$work/venv"
results="$work/results"
logs="$work/logs"
mkdir -p "$results" "$logs"
cd "$ROOT" || exit "$EXIT_SETUP"

started=$SECONDS
venv_args=()
if [ "$inherit" -eq 1 ]; then venv_args+=(--system-site-packages); fi
if ! "$python" -m venv "${venv_args[@]}" "$venv" >"$logs/venv.log" 2>&1; then
    echo "FAIL install: '$python -m venv' failed: $(last_line "$logs/venv.log")"
    exit "$EXIT_SETUP"
fi
vpy="$venv/bin/python"
if [ "$inherit" -eq 1 ]; then
    # --system-site-packages reaches the base installation only, not the packages of a venv that
    # PY belongs to: a .pth file adds those (their own .pth files included), after the new venv's own.
    "$python" -c 'import site; print("\n".join(f"import site; site.addsitedir({p!r})" for p in site.getsitepackages()))' \
        >"$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/gpu_check_inherited.pth"
fi
pip_cmd=(-m pip install --disable-pip-version-check --progress-bar off)
if [ -n "$wheels" ]; then pip_cmd+=(--no-index --find-links "$wheels"); fi
if [ -n "$pip_args" ]; then
    read -r -a extra_pip_args <<<"$pip_args"
    pip_cmd+=("${extra_pip_args[@]}")
fi
if [ -n "$cupy_spec" ]; then pip_cmd+=(-e "$ROOT" "$cupy_spec"); else pip_cmd+=(-e "${ROOT}[gpu]"); fi
limit="$(step_limit 300)"
timeout --kill-after=10 "$limit" "$vpy" "${pip_cmd[@]}" >"$logs/install.log" 2>&1
code=$?
if [ "$code" -ne 0 ]; then
    echo "FAIL install: pip install exited $code (log: $logs/install.log): $(last_error "$logs/install.log")"
    exit "$EXIT_SETUP"
fi
device_probe='
import sys
import cupy
count = cupy.cuda.runtime.getDeviceCount()
name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
assert int((cupy.arange(4) ** 2).sum()) == 14  # a kernel compiled and ran
print(f"Python {sys.version.split()[0]}, cupy {cupy.__version__} (CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}),"
      f" {count} device(s), the first {name}")
'
if ! seen="$("$vpy" -c "$device_probe" 2>"$logs/cupy.log")"; then
    echo "FAIL install: CuPy in the venv cannot use the GPU: $(last_line "$logs/cupy.log");" \
        "for a CUDA 13 driver try --cupy cupy-cuda13x"
    exit "$EXIT_SETUP"
fi
echo "PASS install: $seen; venv $venv ($((SECONDS - started)) s)"
record 0

# -- 3. the submissions, and a CuPy array through the sandbox ---------------------------------------
if ! "$vpy" -m benchmarks.gpu_submissions write "$work/submissions" >"$logs/submissions.txt" 2>"$logs/write.log"; then
    echo "FAIL submissions: could not write them: $(last_line "$logs/write.log")"
    exit "$EXIT_SETUP"
fi
reference="$work/submissions/reference/weight_sharing.py"

limit="$(step_limit 180)"
out_of_time sandbox-probe "$limit" || verdicts sandbox-probe "$limit" probe "$reference"

# -- 4. wsgrade grade --gpu require on each submission ----------------------------------------------
while read -r name path <&3; do
    limit="$(step_limit 150)"
    out_of_time "$name" "$limit" && continue
    timeout --kill-after=10 "$limit" "$venv/bin/wsgrade" grade --gpu require -q --json "$results/$name.json" "$path" \
        >"$logs/$name.log" 2>&1 </dev/null
    code=$?
    out_of_time "$name" "$limit" "$code" && continue
    verdicts "$name" 60 grading "$name" "$results/$name.json" --exit-code "$code" --log "$logs/$name.log"
done 3<"$logs/submissions.txt"

# -- 5. the hidden 5.3 tests, run directly --------------------------------------------------------
limit="$(step_limit 120)"
if ! out_of_time hidden-5.3-tests "$limit"; then
    timeout --kill-after=10 "$limit" "$vpy" -m pytest -q -c "$ROOT/autograder/hidden_tests/pytest.ini" \
        "$ROOT/autograder/hidden_tests/test_part5_speed.py" -k test_gpu --gpu require --submission "$reference" \
        --junitxml "$results/hidden-5.3.xml" >"$logs/hidden-5.3.log" 2>&1 </dev/null
    code=$?
    out_of_time hidden-5.3-tests "$limit" "$code" ||
        verdicts hidden-5.3-tests 60 junit "$results/hidden-5.3.xml" --exit-code "$code" --log "$logs/hidden-5.3.log"
fi

# -- 6. CuPy against torch on the speed shapes -----------------------------------------------------
limit="$(step_limit 150)"
if ! out_of_time benchmark "$limit"; then
    timeout --kill-after=10 "$limit" "$vpy" -m benchmarks.conv_benchmark --device cuda \
        --json "$results/benchmark.json" >"$logs/benchmark.log" 2>&1 </dev/null
    code=$?
    out_of_time benchmark "$limit" "$code" ||
        verdicts benchmark 60 benchmark "$results/benchmark.json" --exit-code "$code" --log "$logs/benchmark.log"
fi

echo "gpu-check: $((checks - failed)) of $checks checks passed in $SECONDS s; results and logs in $work"
if [ "$failed" -ne 0 ]; then exit "$EXIT_FAILED"; fi
exit 0
