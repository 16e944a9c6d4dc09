#!/bin/sh
# SPDX-License-Identifier: MIT
# 721-preload-rtld: what the dynamic linker allocates under the preload (the link map of a library loaded with dlopen) is ordinary memory, not the heap's: emm's own threads walk it (a symbol bound on first use, dl_iterate_phdr), and a fault-service thread that faulted on the heap would wait for itself (a JVM hung so). The program's own malloc still comes from the heap.
# shellcheck disable=SC1091
. "$(dirname "$0")/preload.sh"
skip_unless python3

echo 1..2
cat >"$tmp/rtld.py" <<'EOP'
import ctypes, ctypes.util
libc = ctypes.CDLL(None, use_errno=True)
libc.malloc.restype = ctypes.c_void_p
libc.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
RTLD_DI_LINKMAP = 2

def emm(p):
    for l in open("/proc/self/maps"):
        lo, hi = (int(x, 16) for x in l.split()[0].split("-"))
        if lo <= p < hi:
            return "emm-physmem" in l
    return None

name = ctypes.util.find_library("sqlite3") or "libsqlite3.so.0"
lib = ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
lm = ctypes.c_void_p()
r = libc.dlinfo(lib._handle, RTLD_DI_LINKMAP, ctypes.byref(lm))
print("ok" if r == 0 and emm(lm.value) is False else "not", "link map of %s" % name)
print("ok" if emm(libc.malloc(100)) else "not", "malloc")
EOP
EMM_BACKEND=uffd LD_PRELOAD=$so "$py" "$tmp/rtld.py" >"$tmp/out" 2>"$tmp/err"
grep -q '^ok link map' "$tmp/out"
tap $? "the link map of a library loaded with RTLD_GLOBAL is not on the heap ($(head -1 "$tmp/out"))"
grep -q '^ok malloc' "$tmp/out"
tap $? "the program's malloc is ($(sed -n 2p "$tmp/out"))"
