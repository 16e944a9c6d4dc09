#!/bin/sh
# SPDX-License-Identifier: MIT
# 716-preload-mmap: with EMM_PRELOAD_MMAP, a program's private anonymous mmap(2) memory is emm's: Python's own allocator (its arenas are mappings) under a 12 MiB budget, the same output as without emm, its pages swapped; and through ctypes, mmap, munmap, mprotect, madvise and mremap keep the kernel's meaning on such a mapping (MAP_FIXED over it too: an allocator's decommit, a ring buffer's file mapped twice), a hinted address, a call over emm's pages and a file's at once, on the uffd backend and on signal; without the variable, mappings stay the kernel's.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless python3

echo 1..10
# Python's own allocator (no PYTHONMALLOC=malloc): small objects in arenas
# it maps itself.
cat >"$tmp/dict.py" <<'EOF'
import hashlib
d = {}
for i in range(120000):
    d["key%09d" % i] = ("v%d" % (i * 7919)) * 3
items = sorted(d.items(), key=lambda kv: kv[1])
h = hashlib.sha256()
for k, v in items[::7]:
    h.update(k.encode()); h.update(v.encode())
print(len(d), h.hexdigest())
EOF
"$py" "$tmp/dict.py" >"$tmp/plain"
tap $? "without emm: $(cat "$tmp/plain")"
EMM_PRELOAD_MMAP=1 under_emm 12M "$py" "$tmp/dict.py"

# The calls' meaning, checked by the program itself: one line per check.
cat >"$tmp/calls.py" <<'EOF'
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = libc.mremap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
RW, PRIV_ANON, MIB, PAGE = 3, 0x22, 1 << 20, 4096
MREMAP_MAYMOVE, MADV_DONTNEED = 1, 4
def emm(p):
    for l in open("/proc/self/maps"):
        a, b = (int(x, 16) for x in l.split()[0].split("-"))
        if a <= p < b:
            return "emm-physmem" in l
def check(ok, what):
    print(("ok " if ok else "FAIL ") + what)
n = 32 * MIB
p = libc.mmap(None, n, RW, PRIV_ANON, -1, 0)
check(emm(p), "a private anonymous mapping is emm's")
buf = (ctypes.c_ubyte * n).from_address(p)
check(bytes(buf[0:PAGE]) == bytes(PAGE), "it reads zeros")
for i in range(0, n, PAGE):
    buf[i] = i // PAGE % 251
check(all(buf[i] == i // PAGE % 251 for i in range(0, n, PAGE)),
      "32 MiB written and read back under a 12 MiB budget")
check(libc.madvise(p + PAGE, PAGE, MADV_DONTNEED) == 0 and buf[PAGE] == 0
      and buf[2 * PAGE] == 2, "MADV_DONTNEED: that page reads zeros, its neighbours not")
check(libc.mprotect(p, n, 1) == 0 and libc.mprotect(p, n, RW) == 0,
      "mprotect read-only and back")
q = libc.mremap(p, n, 2 * n, MREMAP_MAYMOVE)
big = (ctypes.c_ubyte * (2 * n)).from_address(q)
check(q not in (None, 2**64 - 1) and emm(q) and big[3 * PAGE] == 3
      and big[n - PAGE] == (n // PAGE - 1) % 251 and big[n + PAGE] == 0,
      "mremap grows it elsewhere: its words moved, the rest zeros")
check(libc.mremap(q, 2 * n, n, 0) == q and libc.munmap(q + PAGE, PAGE) == 0,
      "mremap shrinks it in place; munmap of a page inside")
ctypes.set_errno(0)
check(libc.mprotect(q, 2 * PAGE, 1) == -1 and ctypes.get_errno() == errno.ENOMEM,
      "mprotect over the hole: ENOMEM")
check(libc.munmap(q, n) == 0, "munmap of the rest")
r = libc.mmap(None, PAGE, RW, PRIV_ANON, -1, 0)
check(emm(r) and (ctypes.c_ubyte * PAGE).from_address(r)[0] == 0,
      "a mapping made again reads zeros")
s = libc.mmap(None, PAGE, RW, 0x21, -1, 0)
check(not emm(s), "a shared one is the kernel's")
# An allocator's decommit: PROT_NONE mapped over with MAP_FIXED, then
# opened again: a fresh VMA, zeros.
MAP_FIXED, MAP_SHARED = 0x10, 0x01
d = libc.mmap(None, 4 * PAGE, RW, PRIV_ANON, -1, 0)
(ctypes.c_ubyte * PAGE).from_address(d + PAGE)[0] = 7
check(libc.mmap(d + PAGE, PAGE, 0, PRIV_ANON | MAP_FIXED, -1, 0) == d + PAGE and emm(d + PAGE)
      and libc.mprotect(d + PAGE, PAGE, RW) == 0
      and (ctypes.c_ubyte * PAGE).from_address(d + PAGE)[0] == 0,
      "MAP_FIXED over it: a fresh mapping, zeros")
# A ring buffer: a reserved range, one file mapped twice over it.
fd = os.memfd_create("ring")
os.ftruncate(fd, PAGE)
r = libc.mmap(None, 2 * PAGE, 0, PRIV_ANON, -1, 0)
ok = all(libc.mmap(r + k * PAGE, PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 0) == r + k * PAGE
         for k in (0, 1))
(ctypes.c_ubyte * PAGE).from_address(r)[5] = 42
check(ok and emm(r) is False and (ctypes.c_ubyte * PAGE).from_address(r + PAGE)[5] == 42
      and libc.munmap(r, 2 * PAGE) == 0, "a file mapped twice over it with MAP_FIXED: a ring")
# An address without MAP_FIXED is a hint, which the kernel may pass over
# too: runtimes give one (V8 for its pages, the JVM for its heap).
h = libc.mmap(0x600000000000, MIB, RW, PRIV_ANON, -1, 0)
check(emm(h) and (ctypes.c_ubyte * PAGE).from_address(h)[0] == 0 and libc.munmap(h, MIB) == 0,
      "a mapping with an address hint is emm's")
# A call over a range part emm's, part the kernel's (a file mapped over
# the middle of a reservation, as V8 maps code), applies to each part.
g = libc.mmap(None, 4 * PAGE, 0, PRIV_ANON, -1, 0)
ok = libc.mmap(g + PAGE, PAGE, RW, MAP_SHARED | MAP_FIXED, fd, 0) == g + PAGE
check(ok and emm(g) and not emm(g + PAGE) and emm(g + 2 * PAGE)
      and libc.mprotect(g, 4 * PAGE, 1) == 0
      and (ctypes.c_ubyte * PAGE).from_address(g + PAGE)[5] == 42
      and libc.madvise(g, 4 * PAGE, MADV_DONTNEED) == 0 and libc.munmap(g, 4 * PAGE) == 0,
      "mprotect, madvise and munmap over emm's and a file's pages at once")
EOF

# calls BACKEND: the checks on it, each a TAP line of its own.
calls() {
	EMM_PRELOAD_MMAP=1 EMM_BACKEND=$1 EMM_MEM_LIMIT=12M EMM_SWAP_SIZE=1G LD_PRELOAD=$so \
		"$py" "$tmp/calls.py" >"$tmp/calls" 2>"$tmp/err"
	r=$?
	if [ "$r" = 0 ] && ! grep -qv '^ok ' "$tmp/calls" && [ "$(wc -l <"$tmp/calls")" = 15 ]; then
		tap 0 "$1: $(tr '\n' ';' <"$tmp/calls" | sed 's/ok //g; s/;$//')"
	else
		tap 1 "$1: the calls on a mapping (exit $r)"
		sed 's/^/# /' "$tmp/calls" "$tmp/err" | head -20
	fi
}
calls uffd
calls signal
# Python's own memory is not touched by system calls here: the same output
# on signal, as the warning says nothing about it.
EMM_PRELOAD_MMAP=1 EMM_BACKEND=signal EMM_MEM_LIMIT=12M EMM_SWAP_SIZE=1G LD_PRELOAD=$so \
	"$py" "$tmp/dict.py" >"$tmp/emm" 2>"$tmp/err"
cmp -s "$tmp/plain" "$tmp/emm"
tap $? "signal: the same output with Python's arenas on emm"

# A bad access in emm's reservation (a page unmapped, then read): emm
# reports it and the process dies of SIGSEGV, as under the kernel. The
# report's unwinder maps memory for itself: that mapping must not wait for
# emm, inside the fault (it did, and the process hung).
EMM_PRELOAD_MMAP=1 EMM_BACKEND=uffd LD_PRELOAD=$so timeout -k 5 60 "$py" -c '
import ctypes
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
p = libc.mmap(None, 1 << 16, 3, 0x22, -1, 0)
libc.munmap(p, 1 << 16)
ctypes.string_at(p, 1)
' >/dev/null 2>"$tmp/err"
r=$?
[ "$r" = 139 ] && grep -q 'outside any VMA' "$tmp/err"
tap $? "a read of a page unmapped in emm's reservation: reported, SIGSEGV (exit $r)"
[ "$r" = 139 ] || sed 's/^/# /' "$tmp/err" | head -5

# Without the variable, the kernel's.
LD_PRELOAD=$so EMM_BACKEND=uffd "$py" -c '
import ctypes
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
p = libc.mmap(None, 1 << 20, 3, 0x22, -1, 0)
print(any("emm-physmem" in l and int(l.split("-")[0], 16) <= p < int(l.split()[0].split("-")[1], 16) for l in open("/proc/self/maps")))
' >"$tmp/out" 2>/dev/null
[ "$(cat "$tmp/out")" = False ]
tap $? "without EMM_PRELOAD_MMAP a mapping is the kernel's"
