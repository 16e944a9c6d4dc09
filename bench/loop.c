/* SPDX-License-Identifier: MIT */
/* loop: a region larger than the budget read in order again and again, with and without sequential advice: emm against the kernel's swap. */
#include "bench.h"
#include "kswap.h"

#include <emm.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PASSES	5
#define MIB	(1024.0 * 1024.0)

/* What one side did on one advice: time and swap-ins of the passes, after the write. */
struct loop_out {
	uint64_t ns, swapins, bad;
};

/* Every page written (its offset), then PASSES reads of one word a page, in order. */
static void loop_passes(char *p, uint64_t size, struct loop_out *out)
{
	uint64_t t0;

	for (uint64_t a = 0; a < size; a += PAGE_SIZE)
		*(volatile uint64_t *)(p + a) = a | 1;
	t0 = bench_now_ns();
	for (int k = 0; k < PASSES; k++)
		for (uint64_t a = 0; a < size; a += PAGE_SIZE)
			out->bad += *(volatile uint64_t *)(p + a) != (a | 1);
	out->ns = bench_now_ns() - t0;
}

static int on_emm(const struct bench_opts *o, uint64_t limit, int advice, struct loop_out *out)
{
	struct emm_opts eo = { .sz = sizeof(eo), .mem_limit = limit, .swap_size = 2 * o->size,
			       .backend = o->backend < 0 ? EMM_BACKEND_AUTO : o->backend };
	struct emm_stats st;
	struct emm *mm;
	void *p;
	int err = emm_open(&eo, &mm);

	if (err)
		return err;
	err = emm_reserve(mm, o->size, &p);
	if (!err)
		err = emm_map(mm, p, o->size, NULL);
	if (!err)
		err = emm_advise(mm, p, o->size, advice);
	if (!err) {
		/* The write is a first touch: what it swaps in is nothing. */
		loop_passes(p, o->size, out);
		bench_stats(mm, &st);
		out->swapins = st.swapins;
	}
	emm_close(mm);
	return err;
}

struct kernel_arg {
	uint64_t size;
	int advice;
};

/* In the cgroup's child: anonymous memory, 4 KiB pages, as emm's here. */
static int kernel_child(void *arg, void *out)
{
	const struct kernel_arg *ka = arg;
	char *p = mmap(NULL, ka->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return 1;
	madvise(p, ka->size, MADV_NOHUGEPAGE);
	if (ka->advice)
		madvise(p, ka->size, ka->advice);
	loop_passes(p, ka->size, out);
	return 0;
}

static void row(const char *subject, const char *advice, uint64_t pages, const struct loop_out *r)
{
	printf("  %-16s %-11s %9.2f %14.0f %9.0f%s\n", subject, advice, r->ns / 1e9 / PASSES,
	       (double)r->swapins / PASSES, (double)pages * PAGE_SIZE * PASSES / MIB / (r->ns / 1e9),
	       r->bad ? "  WRONG data" : "");
}

int bench_loop(const struct bench_opts *o)
{
	static const char *const names[2] = { "normal", "sequential" };
	static const int emm_adv[2] = { EMM_ADV_NORMAL, EMM_ADV_SEQUENTIAL };
	static const int kernel_adv[2] = { 0, MADV_SEQUENTIAL };
	uint64_t limit = o->limit ? o->limit : 256ULL << 20, pages = o->size / PAGE_SIZE;
	struct loop_out e[2] = { 0 }, k[2] = { 0 };
	bool have_kernel = false;
	struct bench_kswap ks;
	int err, bad = 0;

	printf("loop: a %.0f MiB region written, then read in order %d times (one word a page)\n"
	       "  under a %.0f MiB budget; emm against the kernel's swap in a memory cgroup\n"
	       "  of the budget; advice: none, or EMM_ADV_SEQUENTIAL / MADV_SEQUENTIAL\n",
	       o->size / MIB, PASSES, limit / MIB);
	for (int i = 0; i < 2; i++) {
		err = on_emm(o, limit, emm_adv[i], &e[i]);
		if (err) {
			fprintf(stderr, "emm-bench: loop: %s\n", strerror(-err));
			return 1;
		}
	}
	err = bench_kswap_setup(&ks, limit, 2 * o->size + (256ULL << 20));
	if (err) {
		printf("  kernel swap baseline skipped: %s\n", ks.why);
	} else {
		have_kernel = true;
		for (int i = 0; i < 2 && have_kernel; i++) {
			struct kernel_arg ka = { o->size, kernel_adv[i] };
			struct bench_kswap_faults f0 = bench_kswap_faults(&ks), f1;

			if (bench_kswap_run(&ks, kernel_child, &ka, &k[i], sizeof(k[i]))) {
				printf("  kernel swap baseline failed: %s\n", ks.why);
				have_kernel = false;
				break;
			}
			f1 = bench_kswap_faults(&ks);
			k[i].swapins = f1.swapins - f0.swapins;
		}
		bench_kswap_teardown(&ks);
	}
	printf("  %-16s %-11s %9s %14s %9s\n", "subject", "advice", "s/pass", "swap-ins/pass", "MiB/s");
	for (int i = 0; i < 2; i++) {
		row("emm", names[i], pages, &e[i]);
		if (have_kernel)
			row("kernel-swap", names[i], pages, &k[i]);
		bench_data("loop", names[i], "emm", (double)e[i].ns / PASSES / 1e6, "ms/pass");
		bench_data("loop", names[i], "emm", (double)e[i].swapins / PASSES, "swapins/pass");
		bad |= e[i].bad || k[i].bad;
	}
	for (int i = 0; i < 2 && have_kernel; i++) {
		printf("  %s: emm/kernel speed %.2f, swap-ins %.2fx\n", names[i],
		       (double)k[i].ns / e[i].ns, k[i].swapins ? (double)e[i].swapins / k[i].swapins : 0);
		bench_data("loop", names[i], "kernel-swap", (double)k[i].ns / PASSES / 1e6, "ms/pass");
		bench_data("loop", names[i], "kernel-swap", (double)k[i].swapins / PASSES,
			   "swapins/pass");
	}
	return bad;
}
