/* SPDX-License-Identifier: MIT */
/* The fault handler's entry points, for the backends. */
#ifndef EMM_FAULT_H
#define EMM_FAULT_H

#include "internal.h"

/* What a fault came to; the backend acts on it (backend.h). */
/*
 * What every fault handler (handle_mm_fault, do_user_fault and the do_*
 * handlers of fault.c) returns; never -errno. The helpers under them
 * (map_locked, make_resident, the backend's calls) return -errno, and the
 * handler turns that into one of these.
 */
enum fault_result {
	FAULT_DONE,	/* served, or raced with another fault: retry the access */
	FAULT_BAD_AREA,	/* no VMA at the address */
	FAULT_ACCESS,	/* the VMA forbids the access */
	FAULT_SIGBUS,	/* it could not be served: the faulting thread gets SIGBUS */
	FAULT_FALLBACK,	/* between handlers only: not served this way (a huge
			 * page), nothing changed; serve it with small pages */
};

bool vma_access_error(const struct emm_vma *vma, int access);
enum fault_result do_user_fault(struct rsv *r, uintptr_t addr, int access,
				const struct emm_vma **vmap);

#endif /* EMM_FAULT_H */
