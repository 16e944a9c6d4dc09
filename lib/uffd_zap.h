/* SPDX-License-Identifier: MIT */
/* Batched revoke on the userfaultfd backends (uffd_zap.c), for lib/backend-uffd.c. */
#ifndef EMM_UFFD_ZAP_H
#define EMM_UFFD_ZAP_H

#include "backend.h"

/* Whether revoke_many widens its ranges (uffd_zap.c, widen_pays): judged
 * on windows of the instance's counters. Zeroed: widening, the first
 * window opening with the instance. */
struct zap_pace {
	_Atomic uint64_t around0, back0;	/* revoke_around, refault_around at the window's start */
	_Atomic uint64_t revoked;		/* pages revoked since the last probe */
	_Atomic bool off;
};

/* Async-signal-safe. backend_ops.revoke_many through zap_fd (a pidfd that
 * process_madvise(2) takes MADV_DONTNEED on), harvesting with uffd and
 * pagemap_fd (uffd_wp.c), widening as pace says. */
unsigned zap_revoke_many(struct emm *mm, const struct revoke_vec *v, int zap_fd, int uffd,
			 int pagemap_fd, struct zap_pace *pace);

#endif /* EMM_UFFD_ZAP_H */
