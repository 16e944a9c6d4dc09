#!/bin/sh
# SPDX-License-Identifier: MIT
# 722-preload-cgroup: a program that reads its memory cgroup's limit (cgroup v1 memory.limit_in_bytes, v2 memory.max and memory.high) under the preload finds the budget, through open and fopen, as it would in a cgroup of that size; Node.js and the JVM size themselves by it; EMM_PRELOAD_CGROUP=0 reads the real files.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless_programs "$py"

echo 1..7
budget=$((48 << 20))
# The program's own memory cgroup, as /proc/self/cgroup names it.
cg=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
v1=/sys/fs/cgroup/memory${cg%/}/memory.limit_in_bytes
v2=/sys/fs/cgroup$(awk -F: '$1 == 0 { print $3 }' /proc/self/cgroup)
v2=${v2%/}/memory.max
run() {
	EMM_MEM_LIMIT=48M LD_PRELOAD=$so "$@" 2>"$tmp/err"
}

got=$(run cat "$v1" "$v2" /sys/fs/cgroup/memory.high | tr '\n' ' ')
[ "$got" = "$budget $budget $budget " ]
tap $? "open: v1 and v2 limit files read $budget ($got)"

cat >"$tmp/fopen.py" <<'EOP'
import ctypes, sys
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fgets.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
f = libc.fopen(sys.argv[1].encode(), b"re")
buf = ctypes.create_string_buffer(64)
print(libc.fgets(buf, 64, f) and buf.value.decode().strip(), libc.fclose(f))
EOP
got=$(run "$py" "$tmp/fopen.py" "$v1")
[ "$got" = "$budget 0" ]
tap $? "fopen: $v1 reads $budget ($got)"

# Where the real file exists, EMM_PRELOAD_CGROUP=0 reads it.
real=$(cat "$v1" 2>/dev/null || cat "$v2" 2>/dev/null || echo none)
got=$(EMM_PRELOAD_CGROUP=0 run sh -c "cat '$v1' 2>/dev/null || cat '$v2' 2>/dev/null || echo none")
[ "$got" = "$real" ]
tap $? "EMM_PRELOAD_CGROUP=0: the real limit ($got)"

# A file opened for writing is the C library's: not a made-up one.
got=$(run "$py" -c "
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY)
    print(os.readlink('/proc/self/fd/%d' % fd))
except OSError as e:
    print(e.strerror)" /sys/fs/cgroup/memory.high)
case $got in *emm-cgroup-limit*) r=1 ;; *) r=0 ;; esac
tap $r "opened for writing, the real file ($got)"

if command -v node >/dev/null 2>&1; then
	got=$(run node -p 'process.constrainedMemory()')
	[ "$got" = "$budget" ]
	tap $? "Node.js: process.constrainedMemory() is $budget ($got)"
else
	tap 0 "# SKIP node not installed"
fi
if command -v java >/dev/null 2>&1; then
	run java -XshowSettings:system -version
	got=$(grep 'Memory Limit:' "$tmp/err" | sed 's/^ *//')
	case $got in *48.00M*) r=0 ;; *) r=1 ;; esac
	tap $r "the JVM: $got"
else
	tap 0 "# SKIP java not installed"
fi

# A cgroup of its own whose limit is below the budget: that limit is read.
if [ -w /sys/fs/cgroup/memory ]; then
	d=/sys/fs/cgroup/memory/emm-t722-$$ f=memory.limit_in_bytes
elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && [ -w /sys/fs/cgroup ]; then
	d=/sys/fs/cgroup/emm-t722-$$ f=memory.max
else
	d=
fi
if [ -n "$d" ] && mkdir "$d" 2>/dev/null; then
	echo $((32 << 20)) >"$d/$f"
	got=$(run sh -c "echo \$\$ >'$d/cgroup.procs' && exec cat '$d/$f'")
	rmdir "$d"
	[ "$got" = $((32 << 20)) ]
	tap $? "in a cgroup of 32 MiB, its limit, not the budget ($got)"
else
	tap 0 "# SKIP no memory cgroup of its own can be made here"
fi
