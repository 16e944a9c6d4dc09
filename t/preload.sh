# SPDX-License-Identifier: MIT
# Shared by the t/71x preload tests (sourced, not run): run a Debian program
# with and without libemm-preload.so and compare what it prints.
# shellcheck shell=sh

cd "$(dirname "$0")/.." || exit 1
so=$PWD/heap/libemm-preload.so
# Debian's python3 where it is: one earlier on PATH may be a wrapper that
# runs other programs first, each printing statistics of its own.
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3

# skip_unless_programs PROGRAM...: the programs and the preload exist, and
# the preload can go into a program (no sanitizer build).
skip_unless_programs() {
	for p in "$@"; do
		if ! command -v "$p" >/dev/null 2>&1; then
			echo "1..0 # SKIP $p not installed (make deps)"
			exit 0
		fi
	done
	if [ -n "${SANITIZER-}" ]; then
		echo "1..0 # SKIP a $SANITIZER build's preload cannot go into $1: the sanitizer's runtime must be the first library loaded"
		exit 0
	fi
	if ! test -f "$so"; then
		echo "1..0 # SKIP $so not built"
		exit 0
	fi
}

# skip_unless PROGRAM: the program and the preload exist, and an instance on
# the uffd backend can be had: these tests are of that backend, where every
# system call waits for a heap page; t/715-preload-io runs programs on the
# others, where only some calls bring heap buffers in (emm-preload(7)).
skip_unless() {
	skip_unless_programs "$@"
	if ! EMM_BACKEND=uffd EMM_VERBOSE=1 LD_PRELOAD=$so env true 2>&1 | grep -q 'backend uffd'; then
		echo "1..0 # SKIP no instance on the uffd backend here (t/715-preload-io runs such programs on signal)"
		exit 0
	fi
}

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/emm-preload-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
n=0

tap() {		# tap OK DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

# stat NAME: a number from the statistics the preload printed at exit; the
# first report's, the program's, when a wrapper run with it (timeout)
# prints its own after it.
stat() {
	awk -v k="$1" '$1 == k { print $2; exit }' "$tmp/err"
}

# under_emm LIMIT COMMAND...: run with the heap under LIMIT; its output in
# $tmp/emm, its statistics in $tmp/err; then the budget checks.
under_emm() {
	limit=$1
	shift
	EMM_BACKEND=uffd EMM_MEM_LIMIT=$limit EMM_SWAP_SIZE=2G EMM_SHOW_STATS=1 \
		LD_PRELOAD=$so "$@" >"$tmp/emm" 2>"$tmp/err"
	tap $? "under emm ($limit): it succeeds"
	cmp -s "$tmp/plain" "$tmp/emm"
	tap $? "the same output as without emm"
	if [ "$(stat swapouts)" -gt 0 ] 2>/dev/null; then r=0; else r=1; fi
	tap $r "the heap outgrew its budget: $(stat swapouts) pages written to swap"
	if [ "$(stat oom_events)" = 0 ] && [ "$(stat resident_bytes)" -le "$(stat limit_bytes)" ]; then
		r=0
	else
		r=1
	fi
	tap $r "the budget held: no over-budget event, resident $(stat resident_bytes) <= $(stat limit_bytes) at exit"
	[ "$r" = 0 ] || sed 's/^/# /' "$tmp/err" | head -40
}
