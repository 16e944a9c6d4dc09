/* SPDX-License-Identifier: MIT */
/* The statistics page an instance publishes for emmstat: its layout, shared by the library and the tool. */
#ifndef EMM_STATS_SHM_H
#define EMM_STATS_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One POSIX shared-memory object per instance, /dev/shm/emm.PID.N (N counts
 * the instances the process opened), mode 0600, made by emm_open and
 * removed by emm_close. It holds every field of struct emm_stats by name,
 * so that a reader built from another version finds what it knows.
 *
 * Publishing is asked for, not periodic: a reader bumps `request` and wakes
 * it (a futex shared between processes); the instance's publisher thread,
 * asleep on that word otherwise, copies the counters under the seqlock
 * `seq` and wakes waiters on `seq`. The program's own threads never see a
 * reader: the fault path bumps its counters as it always does.
 */
#define STATS_SHM_MAGIC		"emmstat"	/* with its NUL: 8 bytes */
#define STATS_SHM_VERSION	1
#define STATS_SHM_PREFIX	"emm."		/* emm.PID.N */
#define STATS_SHM_FIELDS	48
#define STATS_SHM_NAME_LEN	24

struct stats_shm_field {
	char name[STATS_SHM_NAME_LEN];	/* a struct emm_stats field; "" ends the list */
	_Atomic uint64_t value;
};

struct stats_shm_page {
	char magic[8];
	uint32_t version;
	uint32_t nfields;
	int32_t pid;
	uint32_t instance;
	char backend[16];		/* "signal", ... */
	_Atomic uint32_t seq;		/* odd while the publisher writes */
	_Atomic uint32_t request;	/* bumped by a reader: publish now */
	_Atomic uint64_t published_ns;	/* CLOCK_MONOTONIC of the last copy */
	struct stats_shm_field field[STATS_SHM_FIELDS];
};

/* emm_config.flags beyond the public EMM_OPEN_* bits: EMM_STATS_SHM */
#define CFG_STATS_SHM		0x80000000u

struct emm;

/* stats.c: the fields of struct emm_stats after sz, by name. */
struct stats_field {
	const char *name;
	size_t off;
};
extern const struct stats_field stats_fields[];
extern const size_t nr_stats_fields;

/* stats_shm.c */
int stats_shm_open(struct emm *mm);
void stats_shm_close(struct emm *mm);

#endif /* EMM_STATS_SHM_H */
