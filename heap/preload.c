/* SPDX-License-Identifier: MIT */
/* libemm-preload.so: a whole process's malloc served from one emm heap. */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "preload.h"

/*
 * The process's malloc family comes here. Until the constructor has made
 * the heap, and always on emm's own threads and for emm's own memory, the
 * memory comes from mimalloc's ordinary heaps instead: emm must never wait
 * for a page of the heap it is serving (a reclaim or fault-service thread
 * that did would wait for itself). The build renames emm's references to
 * malloc, calloc, realloc, free, posix_memalign, aligned_alloc and
 * pthread_create to the emm_preload_* functions below; a thread emm starts
 * is marked, and everything it allocates, through libc or not, is ordinary
 * memory. free tells the two kinds apart by address.
 */

#define DEFAULT_HEAP_SIZE (64ULL << 30)

static struct emm *mm;
static struct emm_heap *_Atomic heap;
/* EMM_SHOW_STATS: a copy of standard error as it was at start, where the
 * report at exit goes. coreutils' programs, among others, close their
 * standard error before they exit, and the report would be lost. */
static int report_fd = -1;
static __thread bool emm_thread __attribute__((tls_model("initial-exec")));
/* Not the uffd backend: the kernel does not wait for a heap page a system
 * call touches, and preload-io.c brings buffers in first. */
static bool io_touch;
/* The C library's code: with io_touch, what it allocates for itself is not
 * on the heap (target_for). */
static uintptr_t libc_text, libc_text_len;
/* The dynamic linker's code: what it allocates (the link maps and search
 * lists of libraries loaded later) is never on the heap. emm's threads walk
 * them too (a lazily bound symbol resolved, dl_iterate_phdr), and a thread
 * that serves faults must never fault on the heap: a JVM under the preload
 * hung so, its fault-service threads resolving preadv over a search list
 * that dlopen had reallocated on the heap, and swap had taken. */
static uintptr_t rtld_text, rtld_text_len;

/* For preload-signal.c: NULL until the heap is ready. */
struct emm *preload_mm(void)
{
	return atomic_load_explicit(&heap, memory_order_acquire) ? mm : NULL;
}

/* For preload-io.c: whether a system call's heap buffer must be brought in
 * first (not on uffd, not on emm's own threads). */
bool preload_io_touch(void)
{
	return io_touch && !emm_thread && atomic_load_explicit(&heap, memory_order_acquire);
}

/* For preload-signal.c: whether emm's faults are signals (not uffd). */
bool preload_signal_faults(void)
{
	return io_touch;
}

/*
 * Where an allocation of the calling thread goes, made from code at ret:
 * NULL for mimalloc's own. Not on uffd, what the C library allocates for
 * itself (a stream's buffer, a directory stream's) is ordinary memory too:
 * it passes those to the kernel from inside, with its own read and write,
 * where preload-io.c cannot bring them in first.
 */
static struct emm_heap *target_for(const void *ret)
{
	if (emm_thread || (uintptr_t)ret - rtld_text < rtld_text_len ||
	    (io_touch && (uintptr_t)ret - libc_text < libc_text_len))
		return NULL;
	/* Acquire: the heap is whole before anyone allocates from it. */
	return atomic_load_explicit(&heap, memory_order_acquire);
}

#define target() target_for(__builtin_return_address(0))

/* For preload-mmap.c. */
bool preload_emm_thread(void)
{
	return emm_thread;
}

struct text { uintptr_t want, lo, len; bool base; };

/* dl_iterate_phdr: the executable segment that holds the address want, or
 * (base) that of the object loaded at want. */
static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct text *t = arg;

	if (t->base && info->dlpi_addr != t->want)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
		    (t->base || t->want - lo < ph->p_memsz)) {
			t->lo = lo;
			t->len = ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

static struct text text_of(const void *fn)
{
	struct text t = { (uintptr_t)fn, 0, 0, false };

	dl_iterate_phdr(find_text, &t);
	return t;
}

/* The dynamic linker's text (target_for), from where the kernel loaded it. */
static void find_rtld(void)
{
	struct text t = { getauxval(AT_BASE), 0, 0, true };

	if (t.want)
		dl_iterate_phdr(find_text, &t);
	rtld_text = t.lo;
	rtld_text_len = t.len;
}

static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(report_fd >= 0 ? report_fd : STDERR_FILENO, line,
			     (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

PRELOAD_API void *malloc(size_t n)
{
	struct emm_heap *h = target();

	return h ? emm_heap_malloc(h, n) : mi_malloc(n);
}

PRELOAD_API void free(void *p)
{
	struct emm_heap *h = p ? heap_of(p) : NULL;

	if (h)
		emm_heap_free(h, p);
	else
		mi_free(p);
}

PRELOAD_API void *calloc(size_t n, size_t size)
{
	struct emm_heap *h = target();

	return h ? emm_heap_calloc(h, n, size) : mi_calloc(n, size);
}

/* A block moves between the two kinds only by copying. */
static void *realloc_across(struct emm_heap *h, void *p, size_t n)
{
	size_t old = malloc_usable_size(p);
	void *q = h ? emm_heap_malloc(h, n) : mi_malloc(n);

	if (q) {
		memcpy(q, p, old < n ? old : n);
		free(p);
	}
	return q;
}

PRELOAD_API void *realloc(void *p, size_t n)
{
	struct emm_heap *h = target(), *ph = p ? heap_of(p) : NULL;

	if (!p)
		return h ? emm_heap_malloc(h, n) : mi_malloc(n);
	if (h && h == ph)
		return emm_heap_realloc(h, p, n);
	if (!h && !ph)
		return mi_realloc(p, n);
	return realloc_across(h, p, n);
}

PRELOAD_API void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static void *aligned(size_t align, size_t n)
{
	struct emm_heap *h = target();

	return h ? emm_heap_aligned_alloc(h, align, n) : mi_malloc_aligned(n, align);
}

PRELOAD_API int posix_memalign(void **pp, size_t align, size_t n)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = aligned(align, n);
	if (!p)
		return ENOMEM;
	*pp = p;
	return 0;
}

PRELOAD_API void *aligned_alloc(size_t align, size_t n)
{
	if (!align || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return aligned(align, n);
}

PRELOAD_API void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}

PRELOAD_API void *valloc(size_t n)
{
	return aligned(OS_PAGE, n);
}

PRELOAD_API void *pvalloc(size_t n)
{
	return aligned(OS_PAGE, (n + OS_PAGE - 1) & ~(OS_PAGE - 1));
}

PRELOAD_API size_t malloc_usable_size(void *p)
{
	struct emm_heap *h = p ? heap_of(p) : NULL;

	return h ? emm_heap_usable_size(h, p) : mi_usable_size(p);
}

/* emm's own calls (renamed at build time): never the heap. */
__attribute__((visibility("hidden"))) void *emm_preload_malloc(size_t n)
{
	return mi_malloc(n);
}

__attribute__((visibility("hidden"))) void *emm_preload_calloc(size_t n, size_t size)
{
	return mi_calloc(n, size);
}

__attribute__((visibility("hidden"))) void *emm_preload_realloc(void *p, size_t n)
{
	return p && heap_of(p) ? realloc_across(NULL, p, n) : mi_realloc(p, n);
}

__attribute__((visibility("hidden"))) void emm_preload_free(void *p)
{
	free(p);
}

__attribute__((visibility("hidden"))) int emm_preload_posix_memalign(void **pp, size_t align,
								     size_t n)
{
	return mi_posix_memalign(pp, align, n);
}

__attribute__((visibility("hidden"))) void *emm_preload_aligned_alloc(size_t align, size_t n)
{
	return mi_aligned_alloc(align, n);
}

struct start { void *(*fn)(void *); void *arg; };

static void *emm_thread_start(void *arg)
{
	struct start s = *(struct start *)arg;

	emm_thread = true;
	mi_free(arg);
	return s.fn(s.arg);
}

__attribute__((visibility("hidden"))) int
emm_preload_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			   void *arg)
{
	struct start *s = mi_malloc(sizeof(*s));
	int err;

	if (!s)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	err = pthread_create(t, attr, emm_thread_start, s);
	if (err)
		mi_free(s);
	return err;
}

/* Sizes take K, M, G or T (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end || !v || v > (~0ULL >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static bool env_on(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0");
}

static const char *backend_name(void)
{
	static const char *const names[] = { "auto", "signal", "uffd", "uffd-sigbus" };
	int b = emm_backend(mm);

	return b >= 0 && b < 4 ? names[b] : "unknown";
}

/* EMM_PRELOAD_MMAP: private anonymous mappings on emm (preload-mmap.c),
 * but for those the preload and mimalloc make. */
static void mmap_init(void)
{
	struct text self = text_of((const void *)&text_of), mi = text_of((const void *)&mi_malloc);
	const char *v = getenv("EMM_PRELOAD_MMAP_SIZE");
	uint64_t size = 0;
	int err;

	if (v && parse_size(v, &size)) {
		say("emm-preload: bad EMM_PRELOAD_MMAP_SIZE \"%s\", using 64G\n", v);
		size = 0;
	}
	err = preload_mmap_init(mm, self.lo, self.lo + self.len, mi.lo, mi.lo + mi.len, size);
	if (err)
		say("emm-preload: no room for mappings (%s): mmap is the kernel's\n", strerror(-err));
	else if (env_on("EMM_VERBOSE"))
		say("emm-preload: private anonymous mappings on emm\n");
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *v = getenv("EMM_HEAP_SIZE");
	uint64_t size = DEFAULT_HEAP_SIZE;
	struct emm_heap *h;
	int err;

	if (v && parse_size(v, &size)) {
		say("emm-preload: bad EMM_HEAP_SIZE \"%s\", using 64G\n", v);
		size = DEFAULT_HEAP_SIZE;
	}
	find_rtld();
	err = emm_open(NULL, &mm);
	if (!err && (err = emm_heap_create(mm, size, NULL, &h)))
		emm_close(mm);
	if (err) {
		say("emm-preload: no emm heap (%s): malloc is mimalloc's, without a budget\n",
		    strerror(-err));
		return;
	}
	if (env_on("EMM_SHOW_STATS"))
		report_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (env_on("EMM_VERBOSE"))
		say("emm-preload: heap of %llu bytes at %p, backend %s\n",
		    (unsigned long long)size, (void *)h->base, backend_name());
	/* Always: a program that loses data to EFAULT must be told why. */
	io_touch = strcmp(backend_name(), "uffd") != 0;
	if (io_touch) {
		preload_unblock_faults();
		struct text t = text_of((const void *)&fclose);

		libc_text = t.lo;
		libc_text_len = t.len;
		say("emm-preload: warning: with the %s backend, a system call other than "
		    "read, write, pread, pwrite, readv, writev, fread and fwrite given a heap "
		    "page that is not resident fails with EFAULT (or comes up short), but "
		    "for the paths emm-preload(7) lists; use EMM_BACKEND=uffd\n",
		    backend_name());
	}
	if (env_on("EMM_PRELOAD_MMAP"))
		mmap_init();
	preload_cgroup_init(!getenv("EMM_PRELOAD_CGROUP") || env_on("EMM_PRELOAD_CGROUP"));
	/* Release: pairs with target(). */
	atomic_store_explicit(&heap, h, memory_order_release);
}

static void print_line(const char *line, void *arg)
{
	say("%s\n", line);
}

/* The heap stays to the end: destructors and atexit handlers still free. */
__attribute__((destructor)) static void preload_fini(void)
{
	struct emm_heap *h = atomic_load(&heap);
	EMM_OPTS(emm_heap_stats, st);

	if (!h || !env_on("EMM_SHOW_STATS") || emm_heap_stats(h, &st))
		return;
	say("emm-preload: heap allocated %llu, region used %llu, resident %llu, swapped %llu bytes\n",
	    (unsigned long long)st.allocated_bytes, (unsigned long long)st.region_used_bytes,
	    (unsigned long long)st.resident_bytes, (unsigned long long)st.swapped_bytes);
	emm_stats_print(mm, print_line, NULL);
	close(report_fd);
	report_fd = -1;
}
