/* SPDX-License-Identifier: MIT */
/* Small helpers: async-signal-safe formatting and output, warnings, sysctls,
 * signal masks, aligned mappings, the count of kernel VMAs, usable CPUs. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "debug.h"
#include "futex.h"
#include "internal.h"
#include "util.h"

/* Async-signal-safe. */
void sb_puts(struct sbuf *b, const char *s)
{
	while (*s && b->len + 1 < b->cap)
		b->p[b->len++] = *s++;
	b->p[b->len] = '\0';
}

/* Async-signal-safe. */
void sb_putu(struct sbuf *b, uint64_t v, unsigned base, unsigned width)
{
	char tmp[24];
	unsigned n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && n < sizeof(tmp) - 1);
	while (n < width && n < sizeof(tmp) - 1)
		tmp[n++] = '0';
	while (n && b->len + 1 < b->cap)
		b->p[b->len++] = tmp[--n];
	b->p[b->len] = '\0';
}

/* Async-signal-safe. */
void sb_putx(struct sbuf *b, uint64_t v)
{
	sb_puts(b, "0x");
	sb_putu(b, v, 16, 1);
}

/* Async-signal-safe. */
void write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

/* Async-signal-safe. pread until len bytes or the end of the file: the
 * bytes read, or -errno. */
ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "emm: %s", prefix);

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = (int)strlen(line);
	if ((size_t)n < sizeof(line) - 1)
		line[n++] = '\n';
	write_all(STDERR_FILENO, line, (size_t)n);
}

void emm_warn(const char *fmt, ...)
{
	va_list ap;

	DEBUG_NOT_IN_HANDLER();
	va_start(ap, fmt);
	vlog("warning: ", fmt, ap);
	va_end(ap);
}

void emm_log(const struct emm *mm, const char *fmt, ...)
{
	va_list ap;

	if (!(mm->cfg.flags & EMM_OPEN_VERBOSE))
		return;
	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

unsigned long sys_max_map_count(void)
{
	char buf[32] = "";
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 65530;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 65530;
	buf[n] = '\0';
	return strtoul(buf, NULL, 10) ?: 65530;
}

/* Kernel VMAs emm holds in this process: every instance, every view. */
static _Atomic long kvma_total;
static _Atomic long kvma_limit;

/* Async-signal-safe. */
void kvma_global_add(long delta)
{
	atomic_fetch_add_explicit(&kvma_total, delta, memory_order_relaxed);
}

/* Async-signal-safe. Count delta kernel VMAs more (or fewer) for r's app view. */
void kvma_add(struct rsv *r, long delta)
{
	atomic_fetch_add_explicit(&r->kvmas, delta, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->mm->c.kernel_vmas, delta, memory_order_relaxed);
	kvma_global_add(delta);
}

/* Async-signal-safe. */
long kvma_global(void)
{
	return atomic_load_explicit(&kvma_total, memory_order_relaxed);
}

/* Kernel VMAs the VMA layouts of every reservation need (see vma.c). */
static _Atomic long kvma_need_total;

/* Count delta more kernel VMAs as needed; false (and nothing counted) when
 * that would pass what emm may use, unless forced. Fewer always fit. */
bool kvma_need_charge(long delta, bool force)
{
	long cur = atomic_load_explicit(&kvma_need_total, memory_order_relaxed);

	do {
		if (delta > 0 && !force && cur + delta > kvma_process_limit())
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&kvma_need_total, &cur, cur + delta,
							memory_order_relaxed, memory_order_relaxed));
	return true;
}

/* Read vm.max_map_count again (emm_open does: the administrator may have
 * changed it since an earlier instance) and keep emm's share of it. */
long kvma_limit_refresh(void)
{
	long max = (long)sys_max_map_count();
	long lim = MAX(max - MAX(4096, max / 8), 64);

	atomic_store_explicit(&kvma_limit, lim, memory_order_relaxed);
	return lim;
}

/* Async-signal-safe. What emm may use of vm.max_map_count, leaving the
 * application its share. */
long kvma_process_limit(void)
{
	long lim = atomic_load_explicit(&kvma_limit, memory_order_relaxed);

	return lim ? lim : kvma_limit_refresh();
}

/* Async-signal-safe. Every signal but the synchronous faults: blocking a
 * fault would make the kernel kill the process when one happens. */
void sig_fill_async(sigset_t *set)
{
	sigfillset(set);
	sigdelset(set, SIGSEGV);
	sigdelset(set, SIGBUS);
}

/* Block every asynchronous signal, so no handler runs while emm holds a
 * PTE or protection lock. */
void sig_block(sigset_t *old)
{
	sigset_t all;

	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

void sig_restore(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* Map len bytes at an address aligned to align (a power of two, PMD_SIZE or
 * more): a reservation of address space large enough to align in, then the
 * real mapping over it. */
void *mmap_aligned(size_t len, size_t align, int prot, int flags, int fd, off_t off)
{
	char *p = mmap(NULL, len + align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)ALIGN_UP((uintptr_t)p, align);
	if (mmap(a, len, prot, flags | MAP_FIXED, fd, off) == MAP_FAILED) {
		munmap(p, len + align);
		return NULL;
	}
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + len < p + len + align)
		munmap(a + len, (size_t)(p + len + align - (a + len)));
	return a;
}

/* Async-signal-safe. The protection a VMA gets for prot: write and execute
 * access imply read, as the kernel maps them on x86 and arm64. A clean page
 * that keeps a copy elsewhere is mapped without write access until it is
 * written; a write-only VMA would map it with no access at all, and a read
 * of it would fault for ever. */
int prot_implied(int prot)
{
	return prot & (EMM_PROT_WRITE | EMM_PROT_EXEC) ? prot | EMM_PROT_READ : prot;
}

/* Async-signal-safe. */
int prot_to_sys(int prot)
{
	return (prot & EMM_PROT_READ ? PROT_READ : 0) |
	       (prot & EMM_PROT_WRITE ? PROT_READ | PROT_WRITE : 0) |
	       (prot & EMM_PROT_EXEC ? PROT_READ | PROT_EXEC : 0);
}

/* What thread_start hands its thread. */
struct thread_boot {
	void *(*fn)(void *);
	void *arg;
	const char *name;
	_Atomic uint32_t running;	/* futex word: 1 once fn is about to run */
};

static void *thread_boot(void *p)
{
	struct thread_boot *b = p;
	void *(*fn)(void *) = b->fn;
	void *arg = b->arg;

	/* Named, so that top -H, ps -L, gdb and perf tell emm's threads from
	 * the program's; too long a name is cut at 15 bytes. */
	prctl(PR_SET_NAME, b->name, 0, 0, 0);
	/* Release: the creator returns once it sees this, and b goes with
	 * its frame, so fn and arg are read before. The wake only names the
	 * address; a later futex of the creator's there may see it as a
	 * spurious wake-up, which every futex caller allows for. */
	atomic_store_explicit(&b->running, 1, memory_order_release);
	futex_wake(&b->running, 1);
	return fn(arg);
}

/*
 * pthread_create, and wait until the new thread runs fn: a thread still
 * starting may hold the allocator's lock (under AddressSanitizer, its
 * start allocates), and a program that forks then has a child that waits
 * for that lock forever. So an instance's threads are all past their
 * start when emm_open returns. The thread is called name ("emm-..."),
 * followed by index unless it is negative. 0 or -errno.
 */
int thread_start(pthread_t *t, const char *name, int index, void *(*fn)(void *), void *arg)
{
	char full[32];		/* the kernel keeps 15 bytes */
	struct thread_boot b = { .fn = fn, .arg = arg, .name = full };
	int err;

	if (index < 0)
		snprintf(full, sizeof(full), "%s", name);
	else
		snprintf(full, sizeof(full), "%s%d", name, index);
	err = pthread_create(t, NULL, thread_boot, &b);
	if (err)
		return -err;
	/* Acquire: pairs with thread_boot's release. */
	while (!atomic_load_explicit(&b.running, memory_order_acquire))
		futex_wait(&b.running, 0, -1);
	return 0;
}

/* The CPUs this process may run on now (at least 1). */
unsigned usable_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}
