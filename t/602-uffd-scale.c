/* SPDX-License-Identifier: MIT */
/* 64 GiB reserved, 262,144 random pages touched under a 512 MiB budget on the userfaultfd backends: no SIGBUS, no ENOMEM, and a handful of kernel VMAs (an eighth of the pages and the budget under a sanitizer). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define GIB (1ULL << 30)
#define LEN (64 * GIB)
#define PAGE 4096UL

static volatile sig_atomic_t sigbus;

static void on_sigbus(int sig)
{
	(void)sig;
	sigbus = 1;
	_exit(3);	/* a page emm could not serve: the test has failed */
}

static uint64_t value(uint64_t pg)
{
	return pg * 0x9e3779b97f4a7c15ULL | 1;
}

int main(void)
{
	/* Scattered single pages: fault-around would only fill the budget
	 * with zeros the program never asked for. */
	/* Under a sanitizer every fault costs several times more: an eighth
	 * of the pages and of the budget keep the same proportions. */
	unsigned scale = TAP_SANITIZER ? 8 : 1;
	size_t touches = 262144 / scale;
	EMM_OPTS(emm_opts, o, .mem_limit = (512ULL << 20) / scale, .swap_size = 2 * GIB,
		 .thp = EMM_THP_NEVER, .fault_around = 1);
	uint64_t seed = 0x5eed0601, pages = LEN / PAGE, *pg;
	size_t bad = 0;
	struct emm *mm;
	char *p;
	int err;

	/* Before emm_open: on uffd-sigbus emm's own SIGBUS handler serves the
	 * faults, and a SIGBUS emm raises for a page it cannot serve reaches
	 * the handler installed before it. */
	signal(SIGBUS, on_sigbus);
	if (emm_open(&o, &mm))
		bail("emm_open failed");
	if (emm_backend(mm) == EMM_BACKEND_SIGNAL) {
		emm_close(mm);
		skip_all("signal backend: scattered pages cost a kernel VMA each (t/105-kernel-vmas.t)");
	}
	plan(6);
	err = emm_reserve(mm, LEN, (void **)&p);
	is_int(err, 0, "reserve 64 GiB");
	if (err)
		bail("cannot reserve 64 GiB");
	is_int(emm_map(mm, p, LEN, NULL), 0, "map all of it");
	pg = malloc(touches * sizeof(*pg));
	if (!pg)
		bail("out of memory");
	for (size_t i = 0; i < touches; i++) {
		pg[i] = tap_rand(&seed) % pages;
		*(volatile uint64_t *)(p + pg[i] * PAGE) = value(pg[i]);
	}
	diag("touched %zu random pages; resident %llu MiB, swap %llu MiB", touches,
	     (unsigned long long)(stats(mm).resident_bytes >> 20),
	     (unsigned long long)(stats(mm).swap_used_bytes >> 20));
	ok(!sigbus, "no SIGBUS while touching");
	for (size_t i = 0; i < touches; i += 7)
		bad += *(volatile uint64_t *)(p + pg[i] * PAGE) != value(pg[i]);
	is_int(bad, 0, "every 7th page touched reads back what was written");
	ok(stats(mm).kernel_vmas < 16, "kernel VMAs of the reservation: %llu (fewer than 16)",
	   (unsigned long long)stats(mm).kernel_vmas);
	is_int(emm_close(mm), 0, "emm_close");
	free(pg);
	return done_testing();
}
