/* SPDX-License-Identifier: MIT */
/* The preload's mmap, munmap, mprotect, madvise and mremap: with EMM_PRELOAD_MMAP, a program's private anonymous mappings are emm memory too. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

/*
 * Many programs allocate much of their memory with mmap(2), not malloc:
 * Python's own allocator takes its arenas so, as do other runtimes' heaps
 * and garbage collectors. With EMM_PRELOAD_MMAP set, a call that asks for
 * private anonymous memory anywhere (no MAP_FIXED, an address only as a
 * hint, no file; read-write, read-only or no access) is given an emm VMA
 * of its own, inside one reservation made at start; munmap, mprotect,
 * madvise and mremap on it become emm_unmap, emm_protect, emm_advise and
 * emm_move. MAP_FIXED over such a mapping replaces it, with a fresh VMA if
 * it asks for the same kind of memory, else with the kernel's mapping,
 * that range then the kernel's for good (map_fixed); a call over a range
 * partly emm's and partly the kernel's applies to each piece its own way
 * (each_piece). Every other call, and every call made by emm's own
 * threads, by mimalloc or by the preload itself, goes to the kernel as it
 * was. When emm refuses (the reservation is full, the backend has no
 * kernel VMA to spare) the kernel's mmap serves the call instead, so the
 * program never sees an error the kernel would not have given.
 */

#define DEFAULT_SIZE	(64ULL << 30)	/* address space reserved */
#define MAX_HOLES	1024		/* free ranges kept; beyond, address space is lost */
#define MAX_FOREIGN	256		/* ranges of the reservation the kernel maps */

struct range { uintptr_t s, e; };

static struct emm *mm;
static uintptr_t base, end;		/* the reservation; end 0: off */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct range holes[MAX_HOLES];	/* free, in address order, never adjacent */
static unsigned nholes;
/* Ranges the program mapped over with MAP_FIXED and something emm does not
 * map (a file, shared memory: a ring buffer mapped twice over a reserved
 * range): the kernel's from then on, never given out again. */
static struct range foreign[MAX_FOREIGN];
static unsigned nforeign;
/* The text of the preload and of libmimalloc: their calls go to the kernel. */
static struct range self_text, mi_text;

/* emm's own calls (renamed by the build) go straight to the kernel. */
HEAP_INTERNAL void *emm_preload_mmap(void *p, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, p, len, prot, flags, fd, off);
}

HEAP_INTERNAL int emm_preload_munmap(void *p, size_t len)
{
	return (int)syscall(SYS_munmap, p, len);
}

HEAP_INTERNAL int emm_preload_mprotect(void *p, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, p, len, prot);
}

HEAP_INTERNAL int emm_preload_madvise(void *p, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, p, len, advice);
}

HEAP_INTERNAL void *emm_preload_mremap(void *p, size_t old, size_t len, int flags, ...)
{
	void *to = NULL;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		to = va_arg(ap, void *);
	va_end(ap);
	return (void *)syscall(SYS_mremap, p, old, len, flags, to);
}

bool preload_mmap_owns(const void *p)
{
	return (uintptr_t)p - base < end - base;
}

static bool in(const struct range *r, const void *ret)
{
	return (uintptr_t)ret - r->s < r->e - r->s;
}

/* Unlocked: first fit of n bytes, taken from the holes; 0 if none fits. */
static uintptr_t take(size_t n)
{
	for (unsigned i = 0; i < nholes; i++) {
		uintptr_t s = holes[i].s;

		if (holes[i].e - s < n)
			continue;
		holes[i].s += n;
		if (holes[i].s == holes[i].e) {
			nholes--;
			for (unsigned j = i; j < nholes; j++)
				holes[j] = holes[j + 1];
		}
		return s;
	}
	return 0;
}

/* Unlocked: [s, e) is free again, whatever part of it was free already. */
static void give(uintptr_t s, uintptr_t e)
{
	unsigned i = 0, j;

	while (i < nholes && holes[i].e < s)
		i++;
	/* holes[i..j) touch or overlap [s, e): they merge into one. */
	for (j = i; j < nholes && holes[j].s <= e; j++) {
		s = holes[j].s < s ? holes[j].s : s;
		e = holes[j].e > e ? holes[j].e : e;
	}
	if (j == i) {
		if (nholes == MAX_HOLES)
			return;		/* lost to this run: address space only */
		for (j = nholes++; j > i; j--)
			holes[j] = holes[j - 1];
		holes[i] = (struct range){ s, e };
		return;
	}
	/* holes[i + 1..j) are in holes[i] now. */
	holes[i] = (struct range){ s, e };
	for (unsigned k = j; k < nholes; k++)
		holes[k - (j - i - 1)] = holes[k];
	nholes -= j - i - 1;
}

/* Unlocked: [s, e) is no longer free, whatever part of it was. */
static bool unfree(uintptr_t s, uintptr_t e)
{
	for (unsigned i = 0; i < nholes; i++) {
		struct range h = holes[i];

		if (h.e <= s || h.s >= e)
			continue;
		if (h.s < s && h.e > e) {	/* split in two */
			if (nholes == MAX_HOLES)
				return false;
			for (unsigned j = nholes++; j > i + 1; j--)
				holes[j] = holes[j - 1];
			holes[i].e = s;
			holes[i + 1] = (struct range){ e, h.e };
			return true;
		}
		if (h.s < s) {
			holes[i].e = s;
		} else if (h.e > e) {
			holes[i].s = e;
		} else {
			nholes--;
			for (unsigned j = i; j < nholes; j++)
				holes[j] = holes[j + 1];
			i--;
		}
	}
	return true;
}

/* 0: [s, e) has nothing of the kernel's; 1: it lies in one foreign range;
 * 2: it is partly foreign. */
static int foreign_in(uintptr_t s, uintptr_t e)
{
	int kind = 0;

	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < nforeign && kind != 2; i++)
		if (foreign[i].s < e && foreign[i].e > s)
			kind = foreign[i].s <= s && foreign[i].e >= e ? 1 : 2;
	pthread_mutex_unlock(&lock);
	return kind;
}

/* [s, e) becomes foreign, one range with those it touches: false if there
 * is no room to say so. */
static bool make_foreign(uintptr_t s, uintptr_t e)
{
	bool ok;

	pthread_mutex_lock(&lock);
	ok = nforeign < MAX_FOREIGN && unfree(s, e);
	for (unsigned i = 0; ok && i < nforeign; i++) {
		if (foreign[i].s > e || foreign[i].e < s)
			continue;
		s = foreign[i].s < s ? foreign[i].s : s;
		e = foreign[i].e > e ? foreign[i].e : e;
		foreign[i--] = foreign[--nforeign];
	}
	if (ok)
		foreign[nforeign++] = (struct range){ s, e };
	pthread_mutex_unlock(&lock);
	return ok;
}

static uintptr_t alloc_range(size_t n)
{
	uintptr_t s;

	pthread_mutex_lock(&lock);
	s = take(n);
	pthread_mutex_unlock(&lock);
	return s;
}

static void free_range(uintptr_t s, uintptr_t e)
{
	pthread_mutex_lock(&lock);
	give(s, e);
	pthread_mutex_unlock(&lock);
}

static size_t page_up(size_t n)
{
	return (n + OS_PAGE - 1) & ~(OS_PAGE - 1);
}

/*
 * Private anonymous memory anywhere, of a kind emm maps: emm's to serve?
 * An address without MAP_FIXED is a hint, which the kernel too passes over
 * where it cannot place the mapping; runtimes give one to spread their
 * heaps (V8 its pages, the JVM its heap), and take what they get. A
 * program that needs the address it hints at asks with MAP_FIXED_NOREPLACE
 * or MAP_32BIT, which stay the kernel's.
 */
static bool for_emm(size_t len, int prot, int flags, const void *ret)
{
	int anon = MAP_PRIVATE | MAP_ANONYMOUS;

	return end && len && len <= end - base && (flags & ~MAP_NORESERVE) == anon &&
	       (prot == PROT_NONE || prot == PROT_READ || prot == (PROT_READ | PROT_WRITE)) &&
	       !preload_emm_thread() && !in(&self_text, ret) && !in(&mi_text, ret);
}

static int fail(int err)
{
	errno = -err;
	return -1;
}

/*
 * The part of [p, p + len) inside the reservation, page-aligned: in *s,
 * *e. False when there is none; -EINVAL in *err for an address the kernel
 * would refuse too.
 */
static bool inside(void *p, size_t len, uintptr_t *s, uintptr_t *e, int *err)
{
	uintptr_t a = (uintptr_t)p, z = a + page_up(len);

	*err = 0;
	if (!end || z <= base || a >= end)
		return false;
	if ((a & (OS_PAGE - 1)) || !len || z < a) {
		*err = -EINVAL;
		return true;
	}
	*s = a > base ? a : base;
	*e = z < end ? z : end;
	return true;
}

/*
 * MAP_FIXED over [p, p + len) of the reservation. Private anonymous memory
 * of a kind emm maps: the VMA there (if any) replaced by a fresh one, as
 * the kernel would (an allocator decommits so, mapping PROT_NONE over what
 * it frees). Anything else: emm's VMA unmapped, the range the kernel's for
 * good. A range partly outside the reservation, or partly foreign already,
 * is refused with ENOMEM.
 */
static void *map_fixed(void *p, size_t len, int prot, int flags, int fd, off_t off)
{
	EMM_OPTS(emm_map_opts, o, .prot = prot);
	uintptr_t s, e;
	int err, kind;

	if (!inside(p, len, &s, &e, &err) || err)
		return err ? (fail(err), MAP_FAILED) : emm_preload_mmap(p, len, prot, flags, fd, off);
	kind = foreign_in(s, e);
	if (kind == 1)
		return emm_preload_mmap(p, len, prot, flags, fd, off);
	if (kind == 2 || s != (uintptr_t)p || e - s != page_up(len))
		return fail(-ENOMEM), MAP_FAILED;
	if (for_emm(len, prot, flags & ~MAP_FIXED, NULL)) {
		pthread_mutex_lock(&lock);
		bool ok = unfree(s, e);
		pthread_mutex_unlock(&lock);
		if (!ok || (err = emm_unmap(mm, p, e - s)) || (err = emm_map(mm, p, e - s, &o)))
			return fail(ok ? err : -ENOMEM), MAP_FAILED;
		return p;
	}
	if (!make_foreign(s, e))
		return fail(-ENOMEM), MAP_FAILED;
	emm_unmap(mm, p, e - s);
	return emm_preload_mmap(p, len, prot, flags, fd, off);
}

PRELOAD_API void *mmap(void *p, size_t len, int prot, int flags, int fd, off_t off)
{
	const void *ret = __builtin_return_address(0);

	if ((flags & MAP_FIXED) && end && !in(&self_text, ret) && !in(&mi_text, ret))
		return map_fixed(p, len, prot, flags, fd, off);
	if (for_emm(len, prot, flags, ret)) {
		EMM_OPTS(emm_map_opts, o, .prot = prot);
		size_t n = page_up(len);
		uintptr_t s = alloc_range(n);

		if (s && !emm_map(mm, (void *)s, n, &o))
			return (void *)s;
		if (s)
			free_range(s, s + n);
	}
	return emm_preload_mmap(p, len, prot, flags, fd, off);
}

/* On LP64 the 64-bit name is the same call. */
PRELOAD_API void *mmap64(void *p, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

/* The first foreign range that ends after s and starts before e, clipped
 * to [s, e), in *fs, *fe: false when there is none. */
static bool next_foreign(uintptr_t s, uintptr_t e, uintptr_t *fs, uintptr_t *fe)
{
	bool found = false;

	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < nforeign; i++) {
		if (foreign[i].e <= s || foreign[i].s >= e || (found && foreign[i].s >= *fs))
			continue;
		*fs = foreign[i].s;
		*fe = foreign[i].e;
		found = true;
	}
	pthread_mutex_unlock(&lock);
	if (found) {
		*fs = *fs > s ? *fs : s;
		*fe = *fe < e ? *fe : e;
	}
	return found;
}

/*
 * Apply a call to [s, e) of the reservation piece by piece, as the kernel
 * applies one to a range of several mappings: on_emm to emm's pieces (and
 * holes), on_kernel to those the kernel maps, foreign for good. The first
 * failure ends it, -errno.
 */
static int each_piece(uintptr_t s, uintptr_t e, int (*on_emm)(uintptr_t, uintptr_t, int),
		      int (*on_kernel)(uintptr_t, uintptr_t, int), int arg)
{
	while (s < e) {
		uintptr_t fs = e, fe = e;
		int err;

		next_foreign(s, e, &fs, &fe);
		if (fs > s && (err = on_emm(s, fs, arg)))
			return err;
		if (fe > fs && (err = on_kernel(fs, fe, arg)))
			return err;
		s = fe;
	}
	return 0;
}

static int unmap_emm(uintptr_t s, uintptr_t e, int unused)
{
	int err = emm_unmap(mm, (void *)s, e - s);

	(void)unused;
	if (!err)
		free_range(s, e);
	return err;
}

/* Foreign for good: left reserved, no access. */
static int unmap_kernel(uintptr_t s, uintptr_t e, int unused)
{
	(void)unused;
	return emm_preload_mmap((void *)s, e - s, PROT_NONE,
				MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
				0) == MAP_FAILED ? -errno : 0;
}

PRELOAD_API int munmap(void *p, size_t len)
{
	uintptr_t s, e, a = (uintptr_t)p, z = a + page_up(len);
	int err;

	if (!inside(p, len, &s, &e, &err))
		return emm_preload_munmap(p, len);
	if (err || (err = each_piece(s, e, unmap_emm, unmap_kernel, 0)))
		return fail(err);
	/* What lies outside the reservation is the kernel's. */
	if (a < s && emm_preload_munmap(p, s - a))
		return -1;
	return z > e ? emm_preload_munmap((void *)e, z - e) : 0;
}

/* EMM_PROT_* are PROT_*'s values. */
static int protect_emm(uintptr_t s, uintptr_t e, int prot)
{
	return emm_protect(mm, (void *)s, e - s, prot);
}

static int protect_kernel(uintptr_t s, uintptr_t e, int prot)
{
	return emm_preload_mprotect((void *)s, e - s, prot) ? -errno : 0;
}

PRELOAD_API int mprotect(void *p, size_t len, int prot)
{
	uintptr_t s, e;
	int err;

	if (!inside(p, len, &s, &e, &err) || (!err && foreign_in(s, e) == 1))
		return emm_preload_mprotect(p, len, prot);
	if (!err && (s != (uintptr_t)p || e - s != page_up(len)))
		err = -ENOMEM;		/* partly not emm's: a hole, as the kernel says */
	if (!err && (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
		err = -EINVAL;
	return err || (err = each_piece(s, e, protect_emm, protect_kernel, prot)) ? fail(err) : 0;
}

/* The advice emm takes for the kernel's; -1: a hint emm has no use for. */
static int emm_advice(int advice)
{
	switch (advice) {
	case MADV_NORMAL: return EMM_ADV_NORMAL;
	case MADV_RANDOM: return EMM_ADV_RANDOM;
	case MADV_SEQUENTIAL: return EMM_ADV_SEQUENTIAL;
	case MADV_WILLNEED: return EMM_ADV_WILLNEED;
	case MADV_DONTNEED:
	case MADV_FREE:		/* may drop the pages, or not: dropping them is right */
	case MADV_REMOVE: return EMM_ADV_DONTNEED;
	case MADV_COLD: return EMM_ADV_COLD;
	case MADV_PAGEOUT: return EMM_ADV_PAGEOUT;
	case MADV_HUGEPAGE: return EMM_ADV_HUGEPAGE;
	case MADV_NOHUGEPAGE: return EMM_ADV_NOHUGEPAGE;
	default: return -1;
	}
}

/* Advice emm has no use for succeeds and does nothing. */
static int advise_emm(uintptr_t s, uintptr_t e, int advice)
{
	int adv = emm_advice(advice);

	return adv >= 0 ? emm_advise(mm, (void *)s, e - s, adv) : 0;
}

static int advise_kernel(uintptr_t s, uintptr_t e, int advice)
{
	return emm_preload_madvise((void *)s, e - s, advice) ? -errno : 0;
}

PRELOAD_API int madvise(void *p, size_t len, int advice)
{
	uintptr_t s, e;
	int err;

	if (!inside(p, len, &s, &e, &err) || (!err && foreign_in(s, e) == 1))
		return emm_preload_madvise(p, len, advice);
	if (!err && (s != (uintptr_t)p || e - s != page_up(len)))
		err = -ENOMEM;
	if (!err)
		err = each_piece(s, e, advise_emm, advise_kernel, advice);
	return err ? fail(err) : 0;
}

/* Grow [p, p + old) of the reservation to len bytes elsewhere: a new VMA,
 * the pages moved there (swapped ones without I/O: emm_move), the old one
 * unmapped. Read-write mappings only: emm_move writes the destination. */
static void *move(uintptr_t p, size_t old, size_t len)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE);
	uintptr_t q = alloc_range(len);
	int err = q ? emm_map(mm, (void *)q, len, &o) : -ENOMEM;

	if (err) {
		if (q)
			free_range(q, q + len);
		return fail(err), MAP_FAILED;
	}
	if ((err = emm_move(mm, (void *)q, (void *)p, old))) {
		emm_unmap(mm, (void *)q, len);
		free_range(q, q + len);
		return fail(err), MAP_FAILED;
	}
	emm_unmap(mm, (void *)p, old);
	free_range(p, p + old);
	return (void *)q;
}

PRELOAD_API void *mremap(void *p, size_t old, size_t len, int flags, ...)
{
	uintptr_t s, e, a = (uintptr_t)p;
	void *to = NULL;
	va_list ap;
	int err;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		to = va_arg(ap, void *);
	va_end(ap);
	if (!inside(p, old ? old : 1, &s, &e, &err) || (!err && foreign_in(s, e) == 1))
		return emm_preload_mremap(p, old, len, flags, to);
	old = page_up(old);
	len = page_up(len);
	if (!err && (!old || !len || s != a || e - s != old))
		err = -EINVAL;
	if (!err && (flags & ~MREMAP_MAYMOVE))
		err = -EINVAL;		/* MREMAP_FIXED, MREMAP_DONTUNMAP: not here */
	if (err)
		return fail(err), MAP_FAILED;
	if (len <= old) {
		if (len < old && (err = emm_unmap(mm, (void *)(a + len), old - len)))
			return fail(err), MAP_FAILED;
		if (len < old)
			free_range(a + len, a + old);
		return p;
	}
	if (!(flags & MREMAP_MAYMOVE))
		return fail(-ENOMEM), MAP_FAILED;
	return move(a, old, len);
}

/* fork: the child's first mmap must not find the lock held by a thread
 * the child does not have. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&lock);
}

/* Called by the preload's constructor once the heap is made, with the
 * text ranges whose calls stay the kernel's. */
int preload_mmap_init(struct emm *m, uintptr_t self_lo, uintptr_t self_hi, uintptr_t mi_lo,
		      uintptr_t mi_hi, uint64_t size)
{
	void *p;
	int err;

	if (!size)
		size = DEFAULT_SIZE;
	if ((err = emm_reserve(m, page_up(size), &p)))
		return err;
	pthread_atfork(fork_prepare, fork_done, fork_done);
	size = page_up(size);
	mm = m;
	self_text = (struct range){ self_lo, self_hi };
	mi_text = (struct range){ mi_lo, mi_hi };
	holes[0] = (struct range){ (uintptr_t)p, (uintptr_t)p + size };
	nholes = 1;
	base = (uintptr_t)p;
	end = (uintptr_t)p + size;	/* before main: no other thread calls yet */
	return 0;
}
