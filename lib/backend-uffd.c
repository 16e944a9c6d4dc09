/* SPDX-License-Identifier: MIT */
/* The userfaultfd backend: not built yet, so EMM_BACKEND_UFFD is -EOPNOTSUPP. */
#include <errno.h>

#include "backend.h"

static int uffd_open(struct emm *mm)
{
	(void)mm;
	return -EOPNOTSUPP;
}

const struct backend_ops backend_uffd_ops = {
	.name = "uffd",
	.id = EMM_BACKEND_UFFD,
	.open = uffd_open,
};
