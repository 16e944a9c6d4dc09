/* SPDX-License-Identifier: MIT */
/* Choosing an instance's fault backend, and what every backend shares. */
#include <errno.h>
#include <sys/mman.h>

#include "backend.h"

/* The order EMM_BACKEND_AUTO tries them in (DESIGN.md, "Fault backends"). */
static const struct backend_ops *const backends[] = {
	&backend_uffd_ops,
	&backend_uffd_sigbus_ops,
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

void backend_kvma_add(struct rsv *r, long delta)
{
	atomic_fetch_add_explicit(&r->kvmas, delta, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->mm->c.kernel_vmas, delta, memory_order_relaxed);
	kvma_global_add(delta);
}

void backend_close(struct emm *mm)
{
	if (mm->backend)
		mm->backend->close(mm);
	mm->backend = NULL;
}
