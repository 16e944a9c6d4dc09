#!/bin/sh
# SPDX-License-Identifier: MIT
# 712-preload-fork: children of a preloaded shell. One that execs without touching the heap runs; one that runs on after fork (a command substitution) dies at its first touch of the heap, with one line on standard error and one report, not a report per fault inside the report, and its parent goes on.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless dash

echo 1..4
EMM_BACKEND=uffd LD_PRELOAD=$so timeout 60 dash -c '/bin/echo spawned' >"$tmp/out" 2>"$tmp/err"
test "$(cat "$tmp/out")" = spawned && test ! -s "$tmp/err"
tap $? "dash runs a command (fork, then exec at once), nothing on standard error"

EMM_BACKEND=uffd LD_PRELOAD=$so timeout 60 dash -c 'x=$(echo hi); echo "parent goes on [$x]"' \
	>"$tmp/out" 2>"$tmp/err"
r=$?
test "$r" = 0 && grep -q 'parent goes on' "$tmp/out"
tap $? "dash -c 'x=\$(echo hi)': the child dies, the parent goes on (exit $r)"
c=$(grep -c 'a forked child touched memory' "$tmp/err")
test "$c" = 1
tap $? "one line says that a forked child touched its parent's memory ($c)"
c=$(grep -c '^emm: SIGSEGV' "$tmp/err")
test "$c" -le 1
tap $? "at most one fault report ($c)"
[ "$c" -le 1 ] || head -20 "$tmp/err" | sed 's/^/# /'
