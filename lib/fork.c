/* SPDX-License-Identifier: MIT */
/* What a child made by fork(3) keeps of its parent's instances: a private copy of their memory. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fork.h"
#include "physmem.h"
#include "pte.h"
#include "swap.h"
#include "util.h"
#include "vma.h"

/*
 * A child does not inherit an instance: its threads are not there, and its
 * views are not mapped there (MADV_DONTFORK; a shared mapping of physmem
 * would let the child write its parent's pages). What it gets instead, as
 * fork(2) promises, is the memory as it was: fork's child handler maps
 * each reservation afresh as private anonymous memory and fills it from
 * what the PTE words the child inherited say, resident pages from
 * physmem, swapped ones from their slots, FILE ranges from their file.
 * Those words are true only if no page was half-way between two homes at
 * the fork, and stay true only while the parent frees no physmem and
 * rewrites no slot: its prepare handler shuts the fork gate (lock.c), and
 * its parent handler opens it again once the child is done, has exec'd or
 * has died (the child holds the write end of a pipe that closes on exec).
 */

static _Atomic uint32_t fork_lock;	/* one fork at a time through the handlers */
static _Atomic long copiers;		/* open instances a fork copies */
static bool armed;			/* prepared: a child of this fork may copy */
static int pipe_rd = -1, pipe_wr = -1;

/* Async-signal-safe. Swapped pages [a, e), their slots consecutive from
 * slot: read and checked; a page that fails is left without access, so
 * the child dies at its touch rather than read wrong data. */
static void copy_swapped(struct rsv *r, uintptr_t a, uintptr_t e, uint32_t slot)
{
	if (!swap_read_sync(r->mm->swap, slot, (unsigned)((e - a) >> PAGE_SHIFT), (void *)a))
		return;
	for (; a < e; a += PAGE_SIZE, slot++)
		if (swap_read_sync(r->mm->swap, slot, 1, (void *)a))
			mprotect((void *)a, PAGE_SIZE, PROT_NONE);
}

/*
 * Async-signal-safe. Resident pages [a, e): physmem mapped privately there,
 * and every page copied by the kernel (MADV_POPULATE_WRITE breaks the
 * sharing), not by a read into fresh pages: where each first touch of a
 * page is costly (a virtual machine with shadow page tables), the child
 * then pays it only for the pages it uses. Each such run is a kernel VMA,
 * so after COPY_MAPS_MAX runs, and where the kernel refuses, they are read.
 * A hole in physmem under a resident page gets a page of zeros, which emm
 * counts as resident already.
 */
#define COPY_MAPS_MAX	1024
static unsigned copy_maps;

static void copy_resident(struct rsv *r, uintptr_t a, uintptr_t e)
{
	off_t off = (off_t)(r->pgoff + (a - r->start));

	if (copy_maps < COPY_MAPS_MAX &&
	    mmap((void *)a, e - a, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
		 r->mm->memfd, off) != MAP_FAILED) {
		if (madvise((void *)a, e - a, MADV_POPULATE_WRITE) == 0) {
			copy_maps++;
			return;
		}
		/* Not one page of it must stay shared with the parent's physmem. */
		mmap((void *)a, e - a, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	}
	pread_full(r->mm->memfd, (void *)a, e - a, off);	/* a hole reads zeros */
}

/* Async-signal-safe. The pages of [a, e) the parent had resident or in
 * swap, in runs; a PAGER page it had neither way loses access. */
static void copy_pages(struct rsv *r, const struct emm_vma *v, uintptr_t a, uintptr_t e)
{
	while (a < e) {
		uint64_t pte = atomic_load_explicit(pte_of(r, a), memory_order_relaxed);
		unsigned st = pte_state(pte);
		uint32_t val = pte_val(pte);
		uintptr_t b = a + PAGE_SIZE;

		for (; b < e; b += PAGE_SIZE) {
			uint64_t q = atomic_load_explicit(pte_of(r, b), memory_order_relaxed);

			if (pte_state(q) != st ||
			    (st == PTE_SWAPPED && pte_val(q) != val + ((b - a) >> PAGE_SHIFT)))
				break;
		}
		if (st == PTE_RESIDENT)
			copy_resident(r, a, b);
		else if (st == PTE_SWAPPED)
			copy_swapped(r, a, b, val);
		else if (v->policy == EMM_POLICY_PAGER)
			mprotect((void *)a, b - a, PROT_NONE);
		a = b;
	}
}

/*
 * Async-signal-safe. A FILE VMA's file, privately, as far as the file goes
 * (past its end the parent read zeros, where a mapping of the file would
 * raise SIGBUS). The child reads it lazily, as the kernel's fork shares the
 * page cache; the parent's resident pages go on top.
 */
static void map_file(const struct emm_vma *v)
{
	size_t len = v->end - v->start;
	struct stat st;

	if (fstat(v->file->fd, &st) < 0 || (uint64_t)st.st_size <= v->offset)
		return;
	len = MIN(len, ALIGN_UP((uint64_t)st.st_size - v->offset, PAGE_SIZE));
	if (mmap((void *)v->start, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
		 v->file->fd, (off_t)v->offset) == MAP_FAILED)
		mprotect((void *)v->start, len, PROT_NONE);
}

/* Async-signal-safe. One VMA: its file under it (FILE), then its pages. */
static void copy_vma(struct rsv *r, const struct emm_vma *v)
{
	int prot = prot_to_sys(v->prot);

	if (v->policy == EMM_POLICY_GUARD) {
		mprotect((void *)v->start, v->end - v->start, PROT_NONE);
		return;
	}
	if (v->policy == EMM_POLICY_FILE)
		map_file(v);
	for (uintptr_t a = v->start; a < v->end; a = ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE) {
		uintptr_t e = MIN(v->end, ALIGN_DOWN(a, PMD_SIZE) + PMD_SIZE);

		if (extent_used(r, a))
			copy_pages(r, v, a, e);
		else if (v->policy == EMM_POLICY_PAGER)
			mprotect((void *)a, e - a, PROT_NONE);
	}
	if (prot != (PROT_READ | PROT_WRITE))
		mprotect((void *)v->start, v->end - v->start, prot);
}

/*
 * Async-signal-safe, in the child's only thread. The reservation as
 * private memory where it was: its VMAs with their data and protection,
 * the rest without access. One the child cannot map stays unmapped.
 */
static void copy_rsv(struct rsv *r)
{
	uintptr_t a = r->start, end = r->start + r->len;
	const struct emm_vma *v;
	void *p = mmap((void *)r->start, r->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != (void *)r->start) {
		if (p != MAP_FAILED)
			munmap(p, r->len);	/* a kernel without MAP_FIXED_NOREPLACE */
		return;
	}
	for (; (v = vma_next(r, a)) != NULL && v->start < end; a = v->end) {
		if (v->start > a)
			mprotect((void *)a, v->start - a, PROT_NONE);
		copy_vma(r, v);
	}
	if (a < end)
		mprotect((void *)a, end - a, PROT_NONE);
}

/* Async-signal-safe, in a forked child: see fork.h. */
bool fork_child_copy(void)
{
	struct rsv *r;
	int saved = errno;

	if (!armed)
		return false;
	armed = false;	/* once, and a fault inside the copy does not start another */
	while ((r = registry_pop_foreign()) != NULL)
		copy_rsv(r);
	if (pipe_wr >= 0)
		close(pipe_wr);	/* the parent goes on */
	pipe_wr = -1;
	errno = saved;
	return true;
}

static void fork_prepare(void)
{
	int fds[2];

	mutex_lock(&fork_lock);
	if (!atomic_load_explicit(&copiers, memory_order_relaxed))
		return;
	/* No pipe, no wait: the child then gets no copy, rather than a wrong one. */
	if (pipe2(fds, O_CLOEXEC) < 0)
		return;
	pipe_rd = fds[0];
	pipe_wr = fds[1];
	fork_gate_shut();
	armed = true;
}

/* Wait, every signal blocked (a handler on this thread could wait at the
 * gate for itself), until the child lets go of the pipe. */
static void fork_parent(void)
{
	int saved = errno;
	sigset_t all, old;
	char c;

	if (armed) {
		close(pipe_wr);
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		for (;;) {
			ssize_t n = read(pipe_rd, &c, 1);

			if (n == 0 || (n < 0 && errno != EINTR))
				break;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		close(pipe_rd);
		pipe_rd = pipe_wr = -1;
		armed = false;
		fork_gate_open();
	}
	mutex_unlock(&fork_lock);
	errno = saved;
}

static void fork_child(void)
{
	fork_gate_reset();
	if (pipe_rd >= 0)
		close(pipe_rd);
	pipe_rd = -1;
	fork_child_copy();
	/* No instance is open here: the next fork, the child's, copies none. */
	atomic_store_explicit(&copiers, 0, memory_order_relaxed);
	atomic_store_explicit(&fork_lock, 0, memory_order_relaxed);
}

/*
 * Installed as the library loads, before the program and the libraries
 * loaded after it install theirs: fork runs emm's prepare handler last,
 * once theirs have taken their locks and touched what they touch (an
 * earlier one touching emm memory could wait for a swap-in that waits at
 * the gate), and emm's child handler first, so the copy is there before
 * theirs run. Without an open instance they cost a lock and an unlock.
 */
__attribute__((constructor)) static void fork_handlers(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void fork_register(struct emm *mm)
{
	if (!(mm->cfg.flags & EMM_OPEN_NO_FORK_COPY))
		atomic_fetch_add_explicit(&copiers, 1, memory_order_relaxed);
}

void fork_unregister(struct emm *mm)
{
	if (!(mm->cfg.flags & EMM_OPEN_NO_FORK_COPY))
		atomic_fetch_sub_explicit(&copiers, 1, memory_order_relaxed);
}
