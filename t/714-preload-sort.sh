#!/bin/sh
# SPDX-License-Identifier: MIT
# 714-preload-sort: coreutils' sort, two threads sorting 4 MB of lines in memory, its heap under a 4 MiB budget: the same output as without emm, and the statistics of EMM_SHOW_STATS printed although sort closes its standard error before it exits.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless sort

echo 1..6
# 80,000 lines, a pseudo-random key and a tail of 5 to 60 bytes.
awk 'BEGIN { x = 7; for (i = 0; i < 80000; i++) {
	x = (x * 69069 + 1) % 4294967296; t = ""
	for (k = 5 + x % 56; k > 0; k--) t = t "x"
	printf "%08x%08d %s\n", x, i, t } }' >"$tmp/in"
sort -S 64M --parallel=2 "$tmp/in" >"$tmp/plain"
tap $? "without emm: $(wc -l <"$tmp/plain") lines sorted"
under_emm 4M sort -S 64M --parallel=2 "$tmp/in"
grep -q '^emm-preload: heap allocated' "$tmp/err"
tap $? "EMM_SHOW_STATS: the report reached the standard error sort had at start"
