/* SPDX-License-Identifier: MIT */
/* mimalloc's madvise, mprotect and mmap on an emm heap's region, routed to emm. */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/*
 * Why: mimalloc 2.0.9 gives free memory back by "decommitting" it with
 * madvise(MADV_DONTNEED), "resets" it with madvise(MADV_FREE) and commits
 * it again with mprotect(PROT_READ | PROT_WRITE). It has no hook for an
 * arena's owner. On an emm region those calls would be wrong twice over:
 * madvise only drops the kernel's page-table entries of emm's shared view
 * (emm keeps the page, resident or in swap), and mprotect would open pages
 * emm has not mapped. So the companion rewrites libmimalloc's own GOT slots
 * for these three functions (and only mimalloc's: no other code in the
 * process is affected) to the functions below, which pass every call on
 * unchanged except those inside a region, which purge.c handles: a
 * decommit gives the pages back to emm, a commit changes nothing, since the
 * region is mapped read-write in emm already.
 */

#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT R_AARCH64_GLOB_DAT
#else
#error "the heap companion knows the GOT relocations of x86_64 and aarch64 only"
#endif

#define MAX_REGIONS 64

static struct emm_heap *_Atomic regions[MAX_REGIONS];

static struct emm_heap *region_of(const void *p, size_t len)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		/* Acquire: a region is published whole by hook_add. */
		struct emm_heap *h = atomic_load_explicit(&regions[i], memory_order_acquire);

		if (h && (const char *)p >= h->base && (const char *)p < h->base + h->len)
			return len <= (size_t)(h->base + h->len - (const char *)p) ? h : NULL;
	}
	return NULL;
}

static int hook_madvise(void *p, size_t len, int advice)
{
	struct emm_heap *h = region_of(p, len);

	if (!h)
		return (int)syscall(SYS_madvise, p, len, advice);
	if (advice == MADV_DONTNEED)
		return purge_decommit(h, p, len);
	if (advice == MADV_FREE)
		return purge_reset(h, p, len);
	return 0;	/* hints: emm decides huge pages itself */
}

static int hook_mprotect(void *p, size_t len, int prot)
{
	struct emm_heap *h = region_of(p, len);

	if (!h)
		return (int)syscall(SYS_mprotect, p, len, prot);
	if (prot == PROT_NONE)
		return purge_decommit(h, p, len);
	purge_commit(h, p, len);
	return 0;
}

static void *hook_mmap(void *p, size_t len, int prot, int flags, int fd, off_t off)
{
	struct emm_heap *h = (flags & MAP_FIXED) ? region_of(p, len) : NULL;

	if (!h)
		return mmap(p, len, prot, flags, fd, off);
	/* Older mimalloc builds decommit with mmap(MAP_FIXED | MAP_ANONYMOUS). */
	return purge_decommit(h, p, len) ? MAP_FAILED : p;
}

static const struct { const char *name; void *fn; } hooks[] = {
	{ "madvise", (void *)hook_madvise },
	{ "mprotect", (void *)hook_mprotect },
	{ "mmap", (void *)hook_mmap },
	{ "mmap64", (void *)hook_mmap },
};

struct got {
	uintptr_t base;			/* load address of libmimalloc */
	const ElfW(Sym) *symtab;
	const char *strtab;
	const ElfW(Rela) *rel[2];	/* DT_JMPREL, DT_RELA */
	size_t relsz[2];
	uintptr_t relro_lo, relro_hi;
	int patched;
};

static uintptr_t dyn_ptr(const struct got *g, ElfW(Addr) v)
{
	/* glibc relocates most d_ptr entries in place; be safe either way. */
	return v < g->base ? g->base + v : v;
}

static void read_dynamic(struct got *g, const ElfW(Dyn) *d)
{
	for (; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB: g->symtab = (const void *)dyn_ptr(g, d->d_un.d_ptr); break;
		case DT_STRTAB: g->strtab = (const void *)dyn_ptr(g, d->d_un.d_ptr); break;
		case DT_JMPREL: g->rel[0] = (const void *)dyn_ptr(g, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: g->relsz[0] = d->d_un.d_val; break;
		case DT_RELA: g->rel[1] = (const void *)dyn_ptr(g, d->d_un.d_ptr); break;
		case DT_RELASZ: g->relsz[1] = d->d_un.d_val; break;
		}
	}
}

/* Write fn into a GOT slot; one in RELRO is read-only but for the write. */
static int patch_slot(const struct got *g, void **slot, void *fn)
{
	uintptr_t pg = (uintptr_t)slot & ~(OS_PAGE - 1);
	bool relro = (uintptr_t)slot >= g->relro_lo && (uintptr_t)slot < g->relro_hi;

	if (relro && syscall(SYS_mprotect, pg, OS_PAGE, PROT_READ | PROT_WRITE))
		return -1;
	/* Relaxed is enough: mimalloc's own threads reach the slot through
	 * the same mapping, and either function is right until a region
	 * exists (hook_add publishes regions with release). */
	__atomic_store_n(slot, fn, __ATOMIC_RELAXED);
	if (relro && syscall(SYS_mprotect, pg, OS_PAGE, PROT_READ))
		return -1;
	return 0;
}

static int patch_rel(struct got *g, const ElfW(Rela) *r, size_t sz)
{
	for (size_t i = 0; r && i < sz / sizeof(*r); i++) {
		const char *name = g->strtab + g->symtab[ELF64_R_SYM(r[i].r_info)].st_name;
		unsigned type = ELF64_R_TYPE(r[i].r_info);

		if (type != R_JUMP_SLOT && type != R_GLOB_DAT)
			continue;
		for (size_t k = 0; k < sizeof(hooks) / sizeof(hooks[0]); k++) {
			if (strcmp(name, hooks[k].name))
				continue;
			if (patch_slot(g, (void **)(g->base + r[i].r_offset), hooks[k].fn))
				return -errno;
			g->patched++;
		}
	}
	return 0;
}

static int find_mimalloc(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct got *g = arg;
	const ElfW(Dyn) *dyn = NULL;

	if (info->dlpi_addr != g->base)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const void *)(info->dlpi_addr + ph->p_vaddr);
		if (ph->p_type == PT_GNU_RELRO) {
			g->relro_lo = (info->dlpi_addr + ph->p_vaddr) & ~(OS_PAGE - 1);
			g->relro_hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		}
	}
	if (!dyn)
		return -1;
	read_dynamic(g, dyn);
	return 1;
}

/* Once per process: point libmimalloc's madvise, mprotect and mmap at the
 * functions above. -ENOSYS when mimalloc is not a shared object whose GOT
 * can be found (the heap would then never give memory back). */
int hook_install(void)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	static int result = 1;
	struct got g = { 0 };
	Dl_info di;

	pthread_mutex_lock(&once);
	if (result <= 0)
		goto out;
	result = -ENOSYS;
	if (!dladdr((void *)mi_version, &di) || !di.dli_fbase)
		goto out;
	g.base = (uintptr_t)di.dli_fbase;
	/* dli_fbase is where the object's first segment is, dlpi_addr its
	 * bias: the same for a shared object linked at address 0. */
	if (dl_iterate_phdr(find_mimalloc, &g) != 1 || !g.symtab || !g.strtab)
		goto out;
	if (patch_rel(&g, g.rel[0], g.relsz[0]) || patch_rel(&g, g.rel[1], g.relsz[1]))
		result = -errno;
	else
		result = g.patched ? 0 : -ENOSYS;
out:
	pthread_mutex_unlock(&once);
	return result;
}

int hook_add(struct emm_heap *h)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		struct emm_heap *none = NULL;

		/* Release: region_of sees base, len and committed set. */
		if (atomic_compare_exchange_strong_explicit(&regions[i], &none, h,
							    memory_order_release,
							    memory_order_relaxed))
			return 0;
	}
	return -ENFILE;
}

void hook_remove(struct emm_heap *h)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		struct emm_heap *want = h;

		atomic_compare_exchange_strong_explicit(&regions[i], &want, NULL,
							memory_order_relaxed, memory_order_relaxed);
	}
}

struct emm_heap *heap_of(const void *p)
{
	return region_of(p, 1);
}
