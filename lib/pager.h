/* SPDX-License-Identifier: MIT */
/* Requests to the pager threads, which run the program's pager callbacks. */
#ifndef EMM_PAGER_H
#define EMM_PAGER_H

#include "internal.h"

enum { PAGER_FILL, PAGER_WRITEBACK };
struct pager_req {
	int op;
	const struct emm_pager_ops *ops;
	void *arg;
	uint64_t offset;
	void *buf;
	size_t len;
	_Atomic uint32_t done;
	int err;
};
int pager_call(struct emm *mm, struct pager_req *req);
int pager_start(struct emm *mm);
void pager_stop(struct emm *mm);
bool current_is_pager(void);

#endif /* EMM_PAGER_H */
