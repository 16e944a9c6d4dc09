#!/bin/sh
# SPDX-License-Identifier: MIT
# 091-examples: the examples a runtime or database author starts from run at
# small sizes and end saying that what they show held.

cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
n=0

# run NAME LAST-LINE ARGS...: one TAP line; the example's output is shown
# as diagnostics, so prove -v tells what it showed.
run() {
	name=$1 want=$2
	shift 2
	n=$((n + 1))
	if [ ! -x "examples/$name" ]; then
		echo "not ok $n - examples/$name is not built (make examples)"
		return
	fi
	TMPDIR=$tmp "examples/$name" "$@" >"$tmp/out" 2>&1
	rc=$?
	sed 's/^/# /' "$tmp/out"
	last=$(tail -n 1 "$tmp/out")
	if [ "$rc" = 0 ] && [ "$last" = "$want" ]; then
		echo "ok $n - examples/$name $*: $want"
	else
		echo "not ok $n - examples/$name $*: exit $rc, last line \"$last\""
	fi
}

# The fault profile of the buffer pool: its page access function is where
# the major faults come from, in the report and in the collapsed stacks.
profile() {
	n=$((n + 1))
	# Code sites are sampled in the faulting thread: an in-thread backend.
	EMM_BACKEND=signal EMM_PROFILE=major EMM_PROFILE_FILE=$tmp/folded TMPDIR=$tmp \
		examples/bufferpool 16 4 10 >"$tmp/out" 2>&1
	rc=$?
	grep '^emm: ' "$tmp/out" | sed 's/^/# /'
	top=$(grep -A1 '^emm: .*site (the faulting instruction)' "$tmp/out" | sed -n 2p)
	if [ "$rc" = 0 ] && echo "$top" | grep -q '% *page_get+0x'; then
		echo "ok $n - EMM_PROFILE=major: page_get is bufferpool's top fault site"
	else
		echo "not ok $n - EMM_PROFILE=major: top site \"$top\", exit $rc"
	fi
	n=$((n + 1))
	if grep -q ';page_get [0-9][0-9]*$' "$tmp/folded"; then
		echo "ok $n - EMM_PROFILE_FILE: collapsed stacks end in page_get"
	else
		echo "not ok $n - EMM_PROFILE_FILE: no collapsed stack ends in page_get"
		sed 's/^/# /' "$tmp/folded" 2>/dev/null | head -5
	fi
}

echo 1..6
# A 16 MiB table under a 4 MiB budget, 40 transactions; the file verified.
run bufferpool verified 16 4 40
# An 8 MiB old generation under a 4 MiB budget, 4 collections.
run gc-dirty "every cycle matched" 8 4 4
run wasm-memory "every access did what wasm says"
run prefault "all held"
profile
