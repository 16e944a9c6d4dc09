/* SPDX-License-Identifier: MIT */
/* The uffd backend's fault-service threads (uffd_service.c). */
#ifndef EMM_UFFD_SERVICE_H
#define EMM_UFFD_SERVICE_H

#include "internal.h"

struct uffd_service;

int uffd_service_start(struct emm *mm, int fd, struct uffd_service **out);
void uffd_service_stop(struct uffd_service *u);
void uffd_service_quiesce(struct uffd_service *u);

#endif /* EMM_UFFD_SERVICE_H */
