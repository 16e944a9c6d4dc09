#!/bin/sh
# SPDX-License-Identifier: MIT
# 713-preload-signals: a preloaded program's own SIGSEGV handler and alternate stack. Python with faulthandler on (its handler installed after emm's, its alternate stack on the heap) runs out of core on the signal and uffd-sigbus backends; a real crash still reaches faulthandler and kills the process with no report from emm; signal.signal sees the handler it set and gets a SIGSEGV sent to it.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"

if ! command -v python3 >/dev/null 2>&1; then
	echo "1..0 # SKIP python3 not installed"
	exit 0
fi
if [ -n "${SANITIZER-}" ]; then
	echo "1..0 # SKIP a $SANITIZER build's preload cannot go into python3: the sanitizer's runtime must be the first library loaded"
	exit 0
fi
test -f "$so" || { echo "1..0 # SKIP $so not built"; exit 0; }
# The interpreter itself, not a wrapper script that would run under the preload too.
py=$(python3 -c 'import sys; print(sys.executable)')

echo 1..5
cat >"$tmp/strings.py" <<'PY'
import faulthandler
l = [str(i) * 8 for i in range(600000)]
l.sort()
s = "".join(l)
print(len(s), sum(map(len, l)), faulthandler.is_enabled())
PY
"$py" -X faulthandler "$tmp/strings.py" >"$tmp/plain"
for b in signal uffd-sigbus; do
	if ! EMM_BACKEND=$b EMM_VERBOSE=1 LD_PRELOAD=$so env true 2>&1 | grep -q "backend $b"; then
		tap 0 "# SKIP no instance on the $b backend here"
		continue
	fi
	PYTHONMALLOC=malloc EMM_BACKEND=$b EMM_MEM_LIMIT=16M EMM_SHOW_STATS=1 LD_PRELOAD=$so \
		timeout 300 "$py" -X faulthandler "$tmp/strings.py" >"$tmp/emm" 2>"$tmp/err"
	r=$?
	test "$r" = 0 && cmp -s "$tmp/plain" "$tmp/emm" && [ "$(stat swapouts)" -gt 0 ] 2>/dev/null
	tap $? "$b, 16 MiB: faulthandler on, the heap in swap ($(stat swapouts) pages out), the same output (exit $r)"
	[ "$r" = 0 ] || grep -v warning "$tmp/err" | head -8 | sed 's/^/# /'
done

PYTHONMALLOC=malloc EMM_BACKEND=signal LD_PRELOAD=$so timeout 60 \
	"$py" -X faulthandler -c 'import ctypes; ctypes.string_at(0)' >"$tmp/out" 2>"$tmp/err"
r=$?
test "$r" = 139 && grep -q 'Fatal Python error: Segmentation fault' "$tmp/err"
tap $? "a real crash reaches faulthandler and the process dies of SIGSEGV (exit $r)"
grep -q '^emm:' "$tmp/err"
tap $((!$?)) "emm writes no report for the SIGSEGV faulthandler raises again"

cat >"$tmp/handler.py" <<'PY'
import os, signal
got = []
def h(s, f): got.append(s)
print(signal.signal(signal.SIGSEGV, h) == signal.SIG_DFL, signal.getsignal(signal.SIGSEGV) is h)
os.kill(os.getpid(), signal.SIGSEGV)
print(got == [signal.SIGSEGV], signal.signal(signal.SIGSEGV, signal.SIG_DFL) is h)
PY
EMM_BACKEND=signal LD_PRELOAD=$so timeout 60 "$py" "$tmp/handler.py" >"$tmp/out" 2>/dev/null
test "$(cat "$tmp/out")" = "True True
True True"
tap $? "signal.signal(SIGSEGV): SIG_DFL before, its own handler after, a SIGSEGV sent reaches it"
