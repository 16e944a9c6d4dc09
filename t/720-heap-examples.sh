#!/bin/sh
# SPDX-License-Identifier: MIT
# 720-heap-examples: examples/heap and examples/sqlite-heap run to the end with every byte right.
cd "$(dirname "$0")/.." || exit 1

for x in examples/heap examples/sqlite-heap; do
	if ! test -x "$x"; then
		echo "1..0 # SKIP $x not built (make examples)"
		exit 0
	fi
done
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

echo 1..4
examples/heap >"$tmp/heap" 2>&1
r=$?
sed 's/^/# /' "$tmp/heap"
[ $r = 0 ] && echo "ok 1 - examples/heap exits 0" || echo "not ok 1 - examples/heap exits 0"
if grep -q '^walked .* 0 bad$' "$tmp/heap" && grep -q '^freed .* allocated *0 MiB' "$tmp/heap"; then
	echo "ok 2 - its object graph walks with no bad object, and frees to nothing"
else
	echo "not ok 2 - its object graph walks with no bad object, and frees to nothing"
fi
examples/sqlite-heap >"$tmp/sqlite" 2>&1
r=$?
sed 's/^/# /' "$tmp/sqlite"
[ $r = 0 ] && echo "ok 3 - examples/sqlite-heap exits 0" || echo "not ok 3 - examples/sqlite-heap exits 0"
if [ "$(grep -v '^built' "$tmp/sqlite" | tr '\n' ' ')" = "ok 100000 100000 " ]; then
	echo "ok 4 - PRAGMA integrity_check says ok; all 100000 rows and keys are there"
else
	echo "not ok 4 - PRAGMA integrity_check says ok; all 100000 rows and keys are there"
fi
