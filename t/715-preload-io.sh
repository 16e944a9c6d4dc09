#!/bin/sh
# SPDX-License-Identifier: MIT
# 715-preload-io: on the signal and uffd-sigbus backends, where the kernel does not wait for a heap page, programs that hand heap buffers to read, write, pread, pwrite, fread and fwrite still get their data through: sqlite3 with a database file, Lua writing and reading back an 8 MB string, coreutils' sort, Python reading and writing a file; each under a 4 MiB budget, the same output as without emm. And threads that block every signal still take emm's faults: Python blocking SIGSEGV and SIGBUS, then filling 48 MB under 16 MiB, or started by exec with both blocked; xz compressing with two worker threads started with all signals blocked.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"

skip_unless_programs sqlite3 lua5.4 sort python3

# The four programs; each writes what it computed to standard output. $1:
# a file of this run's own.
run_sqlite() {
	rm -f "$1"
	sqlite3 "$1" <<-'EOF'
	PRAGMA cache_size = -20000;
	CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT);
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000)
	INSERT INTO t SELECT i, printf('%08x-%d', (i * 2654435761) % 4294967296, i), printf('%0150d', i) FROM n;
	CREATE INDEX t_k ON t(k);
	PRAGMA integrity_check;
	SELECT count(*), sum(length(v)), min(k), max(k) FROM t;
	EOF
	sqlite3 "$1" 'SELECT id, k FROM t ORDER BY k LIMIT 3 OFFSET 12345;'
}

run_lua() {
	lua5.4 - "$1" <<-'EOF'
	local t = {}
	for i = 1, 50000 do t[i] = string.format("%08d:", i * 7919 % 50000) .. string.rep("x", 150) end
	local s = table.concat(t, "\n")
	local f = assert(io.open(arg[1], "wb"))
	assert(f:write(s))
	assert(f:close())
	f = assert(io.open(arg[1], "rb"))
	local back = assert(f:read("a"))
	f:close()
	print(#s, #back, back == s)
	EOF
}

run_sort() {
	sort -S 64M --parallel=2 "$tmp/lines"
}

run_python() {
	PYTHONMALLOC=malloc python3 -c '
import sys
with open(sys.argv[1] + ".in", "wb") as f:
    f.write(bytes(range(256)) * 32768)
with open(sys.argv[1] + ".in", "rb") as f:
    d = f.read()
sys.stdout.buffer.write(d[::-1])
' "$1"
}

# most NAME: the largest of a statistic over the reports (each process the
# program starts prints its own).
most() {
	awk -v k="$1" '$1 == k && $2 + 0 > m { m = $2 + 0 } END { print m + 0 }' "$tmp/err"
}

awk 'BEGIN { x = 7; for (i = 0; i < 80000; i++) {
	x = (x * 69069 + 1) % 4294967296; t = ""
	for (k = 5 + x % 56; k > 0; k--) t = t "x"
	printf "%08x%08d %s\n", x, i, t } }' >"$tmp/lines"

backends=signal
if EMM_BACKEND=uffd-sigbus EMM_VERBOSE=1 LD_PRELOAD=$so env true 2>&1 | grep -q 'backend uffd-sigbus'; then
	backends="signal uffd-sigbus"
fi
set -- $backends
echo 1..$((1 + 4 * 4 * $# + 5 * $#))

EMM_BACKEND=signal LD_PRELOAD=$so env true 2>"$tmp/warn"
grep -q 'a system call other than read, write, pread, pwrite, readv, writev, fread and fwrite' "$tmp/warn"
tap $? "EMM_BACKEND=signal: the warning names the calls that bring heap buffers in"

for prog in sqlite lua sort python; do
	run_$prog "$tmp/plain.file" >"$tmp/plain" 2>"$tmp/plain.err"
	for b in $backends; do
		EMM_BACKEND=$b EMM_MEM_LIMIT=4M EMM_SWAP_SIZE=1G EMM_SHOW_STATS=1 LD_PRELOAD=$so \
			run_$prog "$tmp/emm.file" >"$tmp/emm" 2>"$tmp/err"
		r=$?
		tap $r "$prog on $b under 4M: it succeeds"
		[ "$r" = 0 ] || grep -v 'warning\|^[a-z_]* *[0-9]*$' "$tmp/err" | head -5 | sed 's/^/# /'
		test -s "$tmp/plain" && cmp -s "$tmp/plain" "$tmp/emm"
		tap $? "$prog on $b: the same output as without emm ($(wc -c <"$tmp/emm") bytes)"
		if [ "$(most swapins)" -gt 0 ]; then r=0; else r=1; fi
		tap $r "$prog on $b: its heap outgrew the budget, $(most swapins) pages read back from swap"
		grep -q '^emm-preload: heap allocated' "$tmp/err"
		tap $? "$prog on $b: the preload served its heap"
	done
done

# Signals blocked: emm's faults are signals on these backends, and the
# kernel kills a thread that faults with the signal blocked.
cat >"$tmp/blocked.py" <<'EOF'
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGSEGV, signal.SIGBUS, signal.SIGUSR1})
x = bytearray(48 << 20)
x[::4096] = b"y" * len(x[::4096])
print(len(x), x.count(b"y"), signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, []))
EOF
# The same, blocked by a parent without emm that execs it with the preload.
cat >"$tmp/exec.py" <<'EOF'
import os, signal, sys
if len(sys.argv) == 2:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGSEGV, signal.SIGBUS})
    env = dict(os.environ, LD_PRELOAD=sys.argv[1])
    os.execve(sys.executable, [sys.executable, sys.argv[0], "child", "x"], env)
x = bytearray(48 << 20)
x[::4096] = b"y" * len(x[::4096])
print(len(x), x.count(b"y"))
EOF
head -c 6000000 "$tmp/lines" >"$tmp/six"
xz -1 -T2 -c "$tmp/six" >"$tmp/six.xz" 2>/dev/null
for b in $backends; do
	EMM_BACKEND=$b EMM_MEM_LIMIT=16M EMM_SWAP_SIZE=1G PYTHONMALLOC=malloc LD_PRELOAD=$so \
		python3 "$tmp/blocked.py" >"$tmp/emm" 2>"$tmp/err"
	tap $? "python on $b: SIGSEGV and SIGBUS blocked, 48 MB filled under 16M: it succeeds"
	echo "50331648 12288 True" | cmp -s - "$tmp/emm"
	tap $? "python on $b: all of it written, and SIGUSR1, blocked with them, still blocked"
	EMM_BACKEND=$b EMM_MEM_LIMIT=16M EMM_SWAP_SIZE=1G PYTHONMALLOC=malloc \
		python3 "$tmp/exec.py" "$so" >"$tmp/emm" 2>"$tmp/err"
	echo "50331648 12288" | cmp -s - "$tmp/emm"
	tap $? "python on $b: started by exec with SIGSEGV and SIGBUS blocked, 48 MB filled under 16M"
	if ! command -v xz >/dev/null 2>&1 || ! test -s "$tmp/six.xz"; then
		tap 0 "# SKIP xz not installed"
		tap 0 "# SKIP xz not installed"
		continue
	fi
	EMM_BACKEND=$b EMM_MEM_LIMIT=64M LD_PRELOAD=$so xz -1 -T2 -c "$tmp/six" >"$tmp/emm.xz" 2>"$tmp/err"
	r=$?
	tap $r "xz -T2 on $b: its worker threads, started with every signal blocked, fault and go on"
	[ "$r" = 0 ] || grep -v warning "$tmp/err" | head -5 | sed 's/^/# /'
	cmp -s "$tmp/six.xz" "$tmp/emm.xz"
	tap $? "xz -T2 on $b: the same output as without emm"
done
