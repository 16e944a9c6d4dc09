/* SPDX-License-Identifier: MIT */
/* Asynchronous readahead (readahead.c): threads read a stream's next windows. */
#ifndef EMM_READAHEAD_H
#define EMM_READAHEAD_H

#include "internal.h"

int  readahead_start(struct emm *mm);
void readahead_stop(struct emm *mm);
unsigned readahead_post(struct rsv *r, uintptr_t s, uintptr_t e, int prot, bool none);

#endif /* EMM_READAHEAD_H */
