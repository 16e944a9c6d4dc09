/* SPDX-License-Identifier: MIT */
/* Batched revoke on the userfaultfd backends (uffd_zap.c), for lib/backend-uffd.c. */
#ifndef EMM_UFFD_ZAP_H
#define EMM_UFFD_ZAP_H

#include "backend.h"

/* Async-signal-safe. backend_ops.revoke_many through zap_fd (a pidfd that
 * process_madvise(2) takes MADV_DONTNEED on), harvesting with uffd and
 * pagemap_fd (uffd_wp.c). */
unsigned zap_revoke_many(struct emm *mm, const struct revoke_vec *v, int zap_fd, int uffd,
			 int pagemap_fd);

#endif /* EMM_UFFD_ZAP_H */
