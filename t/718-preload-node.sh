#!/bin/sh
# SPDX-License-Identifier: MIT
# 718-preload-node: Node.js with EMM_PRELOAD_MMAP, V8's heap (pages mapped with an address hint, a code range with a file mapped into it) under a 32 MiB budget: the same output as without emm, pages written to swap, and a clean exit (V8 unmaps its code range, part emm's and part the kernel's, at exit).
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless node

echo 1..5
# 150,000 strings in a Map, its entries sorted by value, a digest.
cat >"$tmp/map.js" <<'EOJ'
const m = new Map();
for (let i = 0; i < 150000; i++) m.set('key' + i, ('v' + (i * 7919)).repeat(3));
const a = [...m.entries()].sort((x, y) => x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
let h = 0;
for (let i = 0; i < a.length; i += 97)
	for (const c of a[i][0] + a[i][1]) h = (h * 31 + c.charCodeAt(0)) >>> 0;
console.log(m.size, h);
EOJ
node "$tmp/map.js" >"$tmp/plain"
tap $? "without emm: $(cat "$tmp/plain")"
EMM_PRELOAD_MMAP=1 under_emm 32M timeout -k 5 120 node "$tmp/map.js"
