/* SPDX-License-Identifier: MIT */
/* Choosing an instance's fault backend, and what every backend shares. */
#include <errno.h>
#include <sys/mman.h>

#include "backend.h"

/* The order EMM_BACKEND_AUTO tries them in (DESIGN.md, "Fault backends"). */
static const struct backend_ops *const backends[] = {
	&backend_uffd_ops,
	&backend_signal_ops,
};

int backend_open(struct emm *mm)
{
	int want = mm->cfg.backend, err = -EOPNOTSUPP;

	for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
		const struct backend_ops *b = backends[i];

		if (want != EMM_BACKEND_AUTO && want != b->id)
			continue;
		err = b->open(mm);
		if (!err) {
			mm->backend = b;
			return 0;
		}
		if (err != -EOPNOTSUPP || want != EMM_BACKEND_AUTO)
			return err;
	}
	return err;
}

void backend_close(struct emm *mm)
{
	if (mm->backend)
		mm->backend->close(mm);
	mm->backend = NULL;
}

/* Async-signal-safe. */
int prot_to_sys(int prot)
{
	return (prot & EMM_PROT_READ ? PROT_READ : 0) |
	       (prot & EMM_PROT_WRITE ? PROT_READ | PROT_WRITE : 0) |
	       (prot & EMM_PROT_EXEC ? PROT_READ | PROT_EXEC : 0);
}

/* Async-signal-safe. The caller holds the PTE locks of [s, e). */
void backend_set_pte_prot(struct rsv *r, uintptr_t s, uintptr_t e, int prot)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		_Atomic uint64_t *p = pte_of(r, a);

		atomic_fetch_and_explicit(p, ~PTE_MAP_MASK, memory_order_relaxed);
		atomic_fetch_or_explicit(p, (uint64_t)prot << PTE_MAP_SHIFT, memory_order_relaxed);
	}
}
