/* SPDX-License-Identifier: MIT */
/* What the machine itself charges for what a pager does (machine.c). */
#ifndef EMM_BENCH_MACHINE_H
#define EMM_BENCH_MACHINE_H

#include <stdbool.h>

/* A page's first access after it was mapped, ns: the median of three. */
double bench_map_cost(bool writable, bool huge);
/* The bound line of what a fresh 2 MiB page costs, made as emm makes one
 * (where one was just freed, and from the free memory at hand), for mode,
 * against the device's seq read (MiB/s, or 0). */
void bench_huge_bound(const char *mode, double dev_mibs);
/* A fault delivered as a signal, ns beyond the handler's own work (*copy_ns). */
double bench_signal_cost(double *copy_ns);
/* One range revoked with process_madvise, ns: pages of a shared view
 * mapped through userfaultfd (uffd) or anonymous ones, a thread of the
 * process busy on another CPU or not. */
double bench_revoke_cost(bool uffd, bool busy);

#endif /* EMM_BENCH_MACHINE_H */
