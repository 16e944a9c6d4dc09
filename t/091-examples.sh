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

echo 1..4
# A 16 MiB table under a 4 MiB budget, 40 transactions; the file verified.
run bufferpool verified 16 4 40
# An 8 MiB old generation under a 4 MiB budget, 4 collections.
run gc-dirty "every cycle matched" 8 4 4
run wasm-memory "every access did what wasm says"
run prefault "all held"
