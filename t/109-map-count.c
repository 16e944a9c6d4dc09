/* SPDX-License-Identifier: MIT */
/* Thousands of one-page VMAs of alternating protection: emm_map and emm_protect refuse what the kernel VMAs allowed cannot hold, and every mapped page stays readable. */
#include <signal.h>

#include "emm.h"
#include "probe.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MAX_KVMAS 2000
#define NVMAS	3000
#define OLD	64		/* pages of an older VMA, written first */

int main(void)
{
	EMM_OPTS(emm_opts, o, .max_kernel_vmas = MAX_KVMAS);
	EMM_OPTS(emm_map_opts, rw, .prot = EMM_PROT_READ | EMM_PROT_WRITE, .trap = trap);
	EMM_OPTS(emm_map_opts, ro, .prot = EMM_PROT_READ, .trap = trap);
	struct emm *mm;
	char *old, *base;
	int mapped = 0, first_err = 0, bad_reads = 0, bad_old = 0;

	plan(8);
	probe_install();
	if (emm_open(&o, &mm) || emm_reserve(mm, 2 << 20, (void **)&old) ||
	    emm_reserve(mm, (NVMAS * PAGE + (2 << 20) - 1) & ~((2UL << 20) - 1), (void **)&base))
		bail("emm_open/emm_reserve failed");
	if (emm_map(mm, old, OLD * PAGE, &rw))
		bail("emm_map of the older VMA failed");
	fill_words(old, OLD * PAGE, word_value);
	for (int i = 0; i < NVMAS; i++) {
		int err = emm_map(mm, base + i * PAGE, PAGE, i % 2 ? &ro : &rw);

		if (err) {
			first_err = err;
			break;
		}
		mapped++;
	}
	diag("%d one-page VMAs mapped under max_kernel_vmas %d", mapped, MAX_KVMAS);
	is_int(first_err, -ENOMEM, "emm_map refuses with -ENOMEM once the layout needs too many kernel VMAs");
	ok(mapped > MAX_KVMAS / 2 && mapped <= MAX_KVMAS, "after about max_kernel_vmas of them");
	is_int(emm_protect(mm, old + 5 * PAGE, PAGE, EMM_PROT_READ), -ENOMEM,
	       "emm_protect that would split the older VMA: -ENOMEM");
	for (int i = 0; i < mapped; i++)
		bad_reads += access_once(base + i * PAGE, 8, 0, 0) != NONE;
	for (int i = 0; i < mapped; i += 2)
		bad_reads += access_once(base + i * PAGE, 8, 1, (uint64_t)i) != NONE;
	for (int i = 0; i < mapped; i += 2)
		bad_reads += *(volatile uint64_t *)(base + i * PAGE) != (uint64_t)i;
	is_int(bad_reads, 0, "every mapped page reads (and every writable one writes)");
	for (int i = 0; i < OLD; i++)
		bad_old += access_once(old + i * PAGE, 8, 0, 0) != NONE;
	is_int(bad_old + (int)count_bad_words(old, OLD * PAGE, word_value), 0,
	       "the older VMA still reads back");
	diag("kernel_vmas %" PRIu64, stats(mm).kernel_vmas);
	ok(stats(mm).kernel_vmas <= MAX_KVMAS, "emm's kernel VMAs stayed within max_kernel_vmas");
	is_int(emm_unmap(mm, base, (size_t)mapped * PAGE), 0, "unmap them");
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
