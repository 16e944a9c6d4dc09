#!/bin/sh
# SPDX-License-Identifier: MIT
# 090-install: make install stages the libraries, headers, pkg-config files and man
# pages that an out-of-tree program can build and run against.
# shellcheck disable=SC2046,SC2086 # $cc and pkg-config's flags split on purpose

cd "$(dirname "$0")/.." || exit 1
cc=${CC:-cc}
make=${MAKE:-make}

if [ -n "${SANITIZER:-}" ]; then
	echo "1..0 # SKIP the staged library is the $SANITIZER build, which a plain program cannot link"
	exit 0
fi

for tool in "$make" "${cc%% *}" pkg-config nm readelf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "1..0 # SKIP $tool not found"
		exit 0
	fi
done

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
stage=$tmp/stage
lib=$stage/usr/lib
log=$tmp/log
n=0
failed=

# check DESCRIPTION COMMAND...: one TAP line; the command's output goes to
# the log, shown as diagnostics when it fails.
check() {
	desc=$1
	shift
	n=$((n + 1))
	if [ -n "$failed" ]; then
		echo "ok $n # skip $failed"
		return
	fi
	if "$@" >"$log" 2>&1; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		sed 's/^/# /' "$log" | tail -n 20
	fi
}

is_file() {		# a regular file, not a symlink
	test -f "$1" && test ! -L "$1"
}

is_link() {		# is_link PATH TARGET
	test -L "$1" && test "$(readlink "$1")" = "$2"
}

has_line() {		# has_line FILE LINE
	grep -qx "$2" "$1" && return 0
	echo "$1 lacks the line: $2"
	cat "$1"
	return 1
}

# Every man page of the tree's section $1 is installed, and there is one.
man_installed() {
	found=0
	for m in man/*."$1"; do
		test -f "$m" || continue
		found=$((found + 1))
		cmp "$m" "$stage/usr/share/man/man$1/${m#man/}" || return 1
	done
	echo "$found pages in section $1"
	test "$found" -gt 0
}

# pkg-config sees the staged tree first, then the system's modules that
# emm.pc requires (hwloc, numa, liburing, libunwind), and prefixes paths
# with the stage as it would with any sysroot.
pc() {
	PKG_CONFIG_LIBDIR=$lib/pkgconfig:$(pkg-config --variable pc_path pkg-config) \
	PKG_CONFIG_PATH='' PKG_CONFIG_SYSROOT_DIR=$stage \
	PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config "$@"
}

# --static brings the private libraries of the libraries emm requires
# (hwloc's -ludev, libunwind's -llzma on Debian): every flag they list.
pc_static_private() {
	flags=" $(pc --static --libs emm) " || return 1
	echo "pkg-config --static --libs emm: $flags"
	for f in $(pkg-config --static --libs hwloc numa liburing libunwind); do
		case $flags in *" $f "*) ;; *) echo "missing $f"; return 1 ;; esac
	done
}

pc_flags_staged() {
	flags=$(pc --cflags --libs emm) || return 1
	echo "pkg-config: $flags"
	case $flags in *"-I$stage/usr/include"*"-L$lib"*"-lemm"*) ;; *) return 1 ;; esac
}

# Build hello from a copy outside the tree, so only the staged header counts.
build_hello() {
	mkdir -p "$tmp/src" && cp examples/hello.c "$tmp/src/" &&
	$cc -o "$tmp/src/hello" "$tmp/src/hello.c" $(pc --cflags --libs emm)
}

needs_libemm() {
	readelf -d "$1" | grep -F '(NEEDED)' | tee /dev/stderr | grep -qF '[libemm.so.0]'
}

run_hello() {
	out=$(LD_LIBRARY_PATH=$lib "$tmp/src/hello") || return 1
	echo "hello printed: $out"
	test "$out" = "hello from emm"
}

# libemm.a with the system libraries shared, as emm(7) says to link it
# (Debian has no libudev.a, which a fully static hwloc would need): hello
# runs without LD_LIBRARY_PATH.
static_hello() {
	libs=$(pc --static --libs emm | sed 's/-lemm/-Wl,-Bstatic -lemm -Wl,-Bdynamic/') &&
	$cc -o "$tmp/src/hello-static" "$tmp/src/hello.c" $(pc --cflags emm) $libs &&
	! needs_libemm "$tmp/src/hello-static" 2>/dev/null &&
	test "$("$tmp/src/hello-static")" = "hello from emm"
}

# Defined dynamic symbols except the version nodes (EMM_0.1 ...), unversioned.
exported() {
	nm -D --defined-only "$lib/libemm.so.0.1.0" |
		awk '!($2 == "A" && $3 ~ /^EMM_[0-9.]+$/) { sub(/@.*/, "", $3); print $3 }' | sort -u
}

only_emm_exported() {
	exported >"$tmp/syms" || return 1
	echo "$(wc -l <"$tmp/syms") symbols exported"
	test -s "$tmp/syms" && ! grep -v '^emm_' "$tmp/syms"
}

# A static link must not meet emm's internal names (parse_size, find_vma...).
archive_only_emm() {
	nm -g --defined-only "$lib/libemm.a" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/asyms" &&
	echo "$(wc -l <"$tmp/asyms") global symbols in libemm.a" &&
	grep -q '^emm_open$' "$tmp/asyms" && ! grep -v '^emm_' "$tmp/asyms"
}

# Every function emm.h declares is there for a program to call.
header_exported() {
	sed -n 's/^EMM_API [^(]*[ *]\(emm_[a-z_0-9]*\)(.*/\1/p' include/emm.h | sort -u >"$tmp/decl"
	exported >"$tmp/syms" && test -s "$tmp/decl" && ! comm -23 "$tmp/decl" "$tmp/syms" | grep .
}

soname() {
	readelf -d "$lib/libemm.so.0.1.0" | grep -F '(SONAME)' | tee /dev/stderr |
		grep -qF '[libemm.so.0]'
}

# The heap companion: out of tree with pkg-config emm-heap (Requires: emm).
build_heap_example() {
	mkdir -p "$tmp/src" && cp examples/heap.c "$tmp/src/" &&
	flags=$(pc --cflags --libs emm-heap) && echo "pkg-config: $flags" &&
	case $flags in *"-lemm-heap"*"-lemm"*) ;; *) false ;; esac &&
	$cc -o "$tmp/src/heap" "$tmp/src/heap.c" $flags
}

run_heap_example() {
	readelf -d "$tmp/src/heap" | grep -F '(NEEDED)' | grep -qF '[libemm-heap.so.0]' &&
	LD_LIBRARY_PATH=$lib "$tmp/src/heap" >"$tmp/heap.out" && cat "$tmp/heap.out" &&
	grep -q '^walked .* 0 bad$' "$tmp/heap.out"
}

# libemm-heap exports emm_heap_* only; the preload the malloc family only.
heap_exports() {
	nm -D --defined-only "$lib/libemm-heap.so.0.1.0" |
		awk '!($2 == "A") { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/hsyms" &&
	sed -n 's/^EMM_API [^(]*[ *]\(emm_heap_[a-z_0-9]*\)(.*/\1/p' include/emm-heap.h |
		sort -u >"$tmp/hdecl" &&
	cat "$tmp/hsyms" && cmp "$tmp/hsyms" "$tmp/hdecl"
}

preload_exports() {
	nm -D --defined-only "$lib/libemm-preload.so" | awk '{ print $3 }' | LC_ALL=C sort -u >"$tmp/psyms" &&
	printf '%s\n' aligned_alloc bsd_signal calloc free malloc malloc_usable_size memalign \
		posix_memalign pvalloc realloc reallocarray sigaction sigaltstack signal \
		sigprocmask pthread_sigmask pthread_attr_setsigmask_np \
		valloc read write pread pread64 pwrite pwrite64 readv writev fread fwrite \
		fread_unlocked fwrite_unlocked __read_chk __pread_chk __pread64_chk \
		__fread_chk __fread_unlocked_chk mmap mmap64 munmap mprotect madvise mremap \
		open open64 openat openat64 __open_2 __open64_2 __openat_2 creat fopen fopen64 \
		freopen opendir stat lstat access unlink rename mkdir rmdir stat64 lstat64 \
		fstatat fstatat64 statx faccessat readlink readlinkat remove unlinkat renameat \
		mkdirat chdir chmod chown lchown truncate truncate64 link linkat symlink \
		symlinkat utime utimes utimensat |
		LC_ALL=C sort >"$tmp/pwant" &&
	cat "$tmp/psyms" && cmp "$tmp/psyms" "$tmp/pwant"
}

uninstall_clean() {
	"$make" uninstall DESTDIR="$stage" PREFIX=/usr &&
	! find "$stage" ! -type d | grep .
}

# The directories install made went with the files; PREFIX itself stays.
uninstall_dirs() {
	find "$stage" | sed "s|^$stage|stage:|"
	test -d "$stage/usr" && ! find "$stage/usr" -mindepth 1 | grep -q .
}

# A stand-in for ldconfig: LIBDIR is a directory it searches, and a run
# that would rebuild the cache leaves a mark.
fake_ldconfig() {
	cat >"$tmp/ldconfig" <<-END
	#!/bin/sh
	if [ "\$*" = "-v -N" ]; then echo "$tmp/sys/lib: (from a test)"; exit 0; fi
	touch "$tmp/ldconfig-ran"
	END
	chmod +x "$tmp/ldconfig"
}

# install PREFIX [DESTDIR]: was ldconfig run?
ldconfig_runs() {
	rm -f "$tmp/ldconfig-ran"
	"$make" install PREFIX="$tmp/sys" DESTDIR="$2" LDCONFIG="$tmp/ldconfig" &&
	test -e "$tmp/ldconfig-ran"
}

ldconfig_as_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "ok $((n + 1)) # skip not root: install runs ldconfig only as root"
		n=$((n + 1))
		return
	fi
	check "make install as root, no DESTDIR, LIBDIR searched: runs ldconfig" \
		ldconfig_runs "$tmp/sys"
	check "make install DESTDIR=...: does not run ldconfig" \
		eval '! ldconfig_runs "$tmp/sys" "$tmp/dest"'
}

# An outer make's flags (jobserver, variables) are not this make's business.
unset MAKEFLAGS MFLAGS MAKELEVEL
echo 1..35
check "make install DESTDIR=... PREFIX=/usr" "$make" install DESTDIR="$stage" PREFIX=/usr
test -f "$lib/libemm.so.0.1.0" || failed="make install failed"
check "libemm.so.0.1.0 is a file" is_file "$lib/libemm.so.0.1.0"
check "libemm.so.0 -> libemm.so.0.1.0" is_link "$lib/libemm.so.0" libemm.so.0.1.0
check "libemm.so -> libemm.so.0" is_link "$lib/libemm.so" libemm.so.0
check "libemm.a installed" test -s "$lib/libemm.a"
check "include/emm.h installed" cmp include/emm.h "$stage/usr/include/emm.h"
check "emm.pc has prefix=/usr" has_line "$lib/pkgconfig/emm.pc" prefix=/usr
check "emm.pc has libdir=/usr/lib" has_line "$lib/pkgconfig/emm.pc" libdir=/usr/lib
check "man pages in section 3 installed" man_installed 3
check "man pages in section 7 installed" man_installed 7
check "man pages in section 1 installed" man_installed 1
check "emmstat installed" test -x "$stage/usr/bin/emmstat"
check "pkg-config --cflags --libs emm points into the staged tree" pc_flags_staged
check "pkg-config --static --libs emm brings the required libraries' private ones" pc_static_private
check "examples/hello.c builds out of tree with pkg-config" build_hello
check "hello needs libemm.so.0" needs_libemm "$tmp/src/hello"
check "hello runs against the staged libemm.so" run_hello
check "hello links libemm.a with pkg-config --static, system libraries shared" static_hello
check "libemm.so exports only emm_* symbols" only_emm_exported
check "libemm.a defines no global symbol outside emm_*" archive_only_emm
check "libemm.so exports every function emm.h declares" header_exported
check "libemm.so has SONAME libemm.so.0" soname
check "libemm-heap.so.0 -> libemm-heap.so.0.1.0" is_link "$lib/libemm-heap.so.0" libemm-heap.so.0.1.0
check "libemm-heap.a and libemm-preload.so installed" test -s "$lib/libemm-heap.a" -a -s "$lib/libemm-preload.so"
check "include/emm-heap.h installed" cmp include/emm-heap.h "$stage/usr/include/emm-heap.h"
check "emm-heap.pc requires emm" has_line "$lib/pkgconfig/emm-heap.pc" "Requires: emm"
check "emm_heap(3) and emm-preload(7) installed" test -f "$stage/usr/share/man/man3/emm_heap.3" -a -f "$stage/usr/share/man/man7/emm-preload.7"
check "examples/heap.c builds out of tree with pkg-config --libs emm-heap" build_heap_example
check "the heap example runs against the staged libraries" run_heap_example
check "libemm-heap.so exports exactly what emm-heap.h declares" heap_exports
check "libemm-preload.so exports the malloc family, the fault signals' sigaction, signal, sigaltstack, the signal masks, the I/O and path calls it brings heap buffers in for and the mapping calls, only" preload_exports
check "make uninstall removes every file" uninstall_clean
check "make uninstall removes the directories it left empty" uninstall_dirs
fake_ldconfig
ldconfig_as_root
