#!/bin/sh
# SPDX-License-Identifier: MIT
# 712-preload-fork: children of preloaded programs. A shell's subshells, command substitutions and pipelines run as without the preload, and a Python program whose heap is mostly in swap forks children that read it all, write their own copy and leave the parent's as it was.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless dash
command -v bash >/dev/null 2>&1 || { echo "1..0 # SKIP bash not installed"; exit 0; }

echo 1..5
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
