#!/bin/sh
# SPDX-License-Identifier: MIT
# 712-preload-fork: children of preloaded programs. A shell's subshells, command substitutions and pipelines run as without the preload, a Python program whose heap is mostly in swap forks children that read it all, write their own copy and leave the parent's as it was, and one with Python's faulthandler on (its alternate stack on the heap) forks and spawns children that live.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless dash
command -v bash >/dev/null 2>&1 || { echo "1..0 # SKIP bash not installed"; exit 0; }

echo 1..6
script='x=$(echo hi); for i in 1 2 3; do (echo "sub $i"); done | cat; echo "[$x]"'
dash -c "$script" >"$tmp/ref"
EMM_BACKEND=uffd LD_PRELOAD=$so timeout 60 dash -c "$script" >"$tmp/out" 2>"$tmp/err"
cmp -s "$tmp/ref" "$tmp/out" && test ! -s "$tmp/err"
tap $? "dash: a command substitution, subshells and a pipeline, nothing on standard error"
[ -s "$tmp/err" ] && head -5 "$tmp/err" | sed 's/^/# /'

bash -c "$script" >"$tmp/ref"
EMM_BACKEND=uffd LD_PRELOAD=$so timeout 60 bash -c "$script" >"$tmp/out" 2>"$tmp/err"
cmp -s "$tmp/ref" "$tmp/out" && test ! -s "$tmp/err"
tap $? "bash: the same"

EMM_BACKEND=uffd LD_PRELOAD=$so timeout 60 dash -c '/bin/echo spawned' >"$tmp/out" 2>"$tmp/err"
test "$(cat "$tmp/out")" = spawned && test ! -s "$tmp/err"
tap $? "dash runs a command (fork, then exec), nothing on standard error"

if ! command -v python3 >/dev/null 2>&1; then
	echo "ok 4 # SKIP python3 not installed"
	echo "ok 5 # SKIP python3 not installed"
	echo "ok 6 # SKIP python3 not installed"
	exit 0
fi
cat >"$tmp/fork.py" <<'PY'
import hashlib, os
data = [("k%d" % i) * 5 + str(i * 7) for i in range(400000)]
def digest():
    h = hashlib.sha256()
    for s in data:
        h.update(s.encode())
    return h.hexdigest()
ref = digest()
for n in range(3):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = digest() == ref
        data[0] = "the child's own"
        os.write(w, b"1" if ok and data[0] == "the child's own" else b"0")
        os._exit(0)
    os.close(w)
    said = os.read(r, 1)
    os.waitpid(pid, 0)
    print("child", n, "read the heap:", said == b"1")
print("parent's heap as it was:", digest() == ref)
PY
PYTHONMALLOC=malloc EMM_BACKEND=uffd EMM_MEM_LIMIT=16M EMM_SHOW_STATS=1 LD_PRELOAD=$so \
	timeout 300 python3 "$tmp/fork.py" >"$tmp/out" 2>"$tmp/err"
r=$?
test "$r" = 0 && test "$(grep -c ': True' "$tmp/out")" = 4
tap $? "Python under 16 MiB: three forked children read the whole heap, the parent's stays (exit $r)"
[ "$r" = 0 ] || { head -5 "$tmp/out"; head -5 "$tmp/err"; } | sed 's/^/# /'
# the most of any process's (a version manager's shim runs before python3)
s=$(awk '$1 == "swapins" && $2 > m { m = $2 } END { print m + 0 }' "$tmp/err")
test "${s:-0}" -gt 0
tap $? "with the heap in swap (${s:-no} swap-ins)"

# The C library's fork touches heap memory in the child before any child
# handler runs (here its NSS state, made by getpwuid): that fault makes the
# child's copy. Python's faulthandler, installed after emm's handler, would
# take it for a crash, and its alternate stack comes from the heap, which
# the child has not mapped yet.
cat >"$tmp/fh.py" <<'PY'
import faulthandler, os, pwd, sys
faulthandler.enable()
pwd.getpwuid(0)
data = [("k%d" % i) * 5 for i in range(200000)]
for n in range(3):
    pid = os.fork()
    if pid == 0:
        os._exit(7 if data[-1] == "k199999" * 5 else 1)
    print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
pid = os.spawnv(os.P_NOWAIT, sys.executable, [sys.executable, "-c", "pass"])
print("spawn", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
PYTHONMALLOC=malloc EMM_BACKEND=uffd EMM_MEM_LIMIT=16M LD_PRELOAD=$so \
	timeout 300 python3 "$tmp/fh.py" >"$tmp/out" 2>"$tmp/err"
r=$?
test "$r" = 0 && test "$(grep -c '^fork 7$' "$tmp/out")" = 3 && grep -q '^spawn 0$' "$tmp/out" &&
	test ! -s "$tmp/err"
tap $? "Python with faulthandler on: three forked children and a spawned one exit as they should (exit $r)"
[ "$r" = 0 ] && test ! -s "$tmp/err" || { head -5 "$tmp/out"; head -5 "$tmp/err"; } | sed 's/^/# /'
