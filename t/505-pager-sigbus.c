/* SPDX-License-Identifier: MIT */
/* A failing fill is SIGBUS for exactly the thread that touched the page, with its address;
 * a fill that fails once works the next time. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define LEN (64 * MIB)
#define WORDS_PER_PAGE (PAGE / 8)
#define BAD_PAGE 100		/* every fill covering it fails */
#define NEIGHBOUR_PAGE 97	/* in the same fault-around group of 16 */
#define ONCE_PAGE 500		/* the first fill covering it fails */
#define OTHER_FROM 1024		/* the other thread reads pages from here on, away from both */
#define OTHER_READS 2000
#define TOUCH_AT 40		/* byte of the page the access touches */
#define MAX_EVENTS 16

struct event {
	void *addr;
	int tid, code;
};

static struct event events[MAX_EVENTS];
static _Atomic int nevents;
static __thread sigjmp_buf env;
static __thread volatile sig_atomic_t armed;
static _Atomic int once_failed;
static char *mem;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int i = atomic_fetch_add(&nevents, 1);

	if (i < MAX_EVENTS)
		events[i] = (struct event){ si->si_addr, gettid(), si->si_code };
	if (!armed)
		_exit(99);	/* a SIGBUS nobody expected: the test fails loudly */
	armed = 0;
	siglongjmp(env, 1);
}

static uint64_t fill_word(uint64_t off)
{
	uint64_t x = off ^ 0x5eed0505;

	return tap_rand(&x);
}

static int covers(uint64_t offset, size_t len, uint64_t page)
{
	return page * PAGE >= offset && page * PAGE < offset + len;
}

static int fill(void *arg, uint64_t offset, void *buf, size_t len)
{
	int expect_once = 0;

	if (covers(offset, len, BAD_PAGE))
		return -EIO;
	if (covers(offset, len, ONCE_PAGE) &&
	    atomic_compare_exchange_strong(&once_failed, &expect_once, 1))
		return -EIO;
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)buf)[i] = fill_word(offset + i * 8);
	return 0;
}

static const struct emm_pager_ops ops = { .fill = fill };

/* Reads the word at byte off of mem: 0 if it read right, 1 on SIGBUS,
 * -1 if it read something else. */
static int touch(uint64_t off)
{
	volatile uint64_t *p = (volatile uint64_t *)(mem + off);

	if (sigsetjmp(env, 1))
		return 1;
	armed = 1;
	uint64_t v = *p;
	armed = 0;
	return v == fill_word(off) ? 0 : -1;
}

static uint64_t io_errors(struct emm *mm)
{
	EMM_OPTS(emm_stats, st);

	return emm_stats(mm, &st) ? UINT64_MAX : st.io_errors;
}

struct worker {
	pthread_barrier_t *bar;
	int tid, result, wrong, signals;
};

static void *toucher(void *arg)
{
	struct worker *w = arg;

	w->tid = gettid();
	pthread_barrier_wait(w->bar);
	w->result = touch(BAD_PAGE * PAGE + TOUCH_AT);
	return NULL;
}

static void *other_reader(void *arg)
{
	struct worker *w = arg;
	uint64_t seed = 0x5eed0506;

	w->tid = gettid();
	pthread_barrier_wait(w->bar);
	for (int i = 0; i < OTHER_READS; i++) {
		uint64_t pg = OTHER_FROM + tap_rand(&seed) % (LEN / PAGE - OTHER_FROM);
		int r = touch(pg * PAGE + (pg % WORDS_PER_PAGE) * 8);

		w->signals += r == 1;
		w->wrong += r == -1;
	}
	return NULL;
}

static int events_of(int tid)
{
	int n = 0;

	for (int i = 0; i < atomic_load(&nevents) && i < MAX_EVENTS; i++)
		n += events[i].tid == tid;
	return n;
}

static void test_two_threads(struct emm *mm)
{
	struct worker a = { 0 }, b = { 0 };
	pthread_barrier_t bar;
	pthread_t ta, tb;
	uint64_t io0 = io_errors(mm), io1;

	pthread_barrier_init(&bar, NULL, 2);
	a.bar = b.bar = &bar;
	if (pthread_create(&ta, NULL, toucher, &a) || pthread_create(&tb, NULL, other_reader, &b))
		bail("pthread_create");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&bar);
	io1 = io_errors(mm);
	is_int(a.result, 1, "the thread touching the page whose fill fails gets SIGBUS");
	is_int(atomic_load(&nevents), 1, "one signal in all");
	ok(events_of(a.tid) == 1, "delivered to that thread (tid %d, saw %d)", a.tid, events[0].tid);
	ok(events[0].addr == mem + BAD_PAGE * PAGE + TOUCH_AT,
	   "si_addr is the address it touched (%p, want %p)", events[0].addr,
	   (void *)(mem + BAD_PAGE * PAGE + TOUCH_AT));
	diag("si_code %d", events[0].code);
	ok(b.signals == 0 && events_of(b.tid) == 0,
	   "the other thread, reading %d pages meanwhile, got no signal", OTHER_READS);
	is_int(b.wrong, 0, "and read every page right");
	is_int(events_of(gettid()), 0, "the main thread saw no signal");
	ok(io1 > io0, "io_errors grew (%" PRIu64 " -> %" PRIu64 ")", io0, io1);
}

static void test_again(struct emm *mm)
{
	int n = atomic_load(&nevents);
	uint64_t io0 = io_errors(mm);

	is_int(touch(BAD_PAGE * PAGE), 1, "touching the bad page again: SIGBUS again");
	ok(atomic_load(&nevents) == n + 1 && events[n].tid == gettid(),
	   "on this thread this time");
	ok(io_errors(mm) > io0, "io_errors grew again");
	is_int(touch(NEIGHBOUR_PAGE * PAGE + 8), 0,
	       "a page of the same fault-around group, whose own fill would work, reads right");
}

static void test_once(struct emm *mm)
{
	int n = atomic_load(&nevents);

	/* One page per fill here: a failed group fill is retried for the
	 * faulting page alone, which would hide a failure that happens once. */
	is_int(emm_advise(mm, mem + ONCE_PAGE * PAGE, PAGE, EMM_ADV_RANDOM), 0,
	       "EMM_ADV_RANDOM on the page: fills of one page");
	is_int(touch(ONCE_PAGE * PAGE + TOUCH_AT), 1,
	       "a fill that fails once: the first touch gets SIGBUS");
	ok(atomic_load(&nevents) == n + 1 && events[n].addr == mem + ONCE_PAGE * PAGE + TOUCH_AT,
	   "at its address");
	is_int(touch(ONCE_PAGE * PAGE + TOUCH_AT), 0, "the second touch reads what fill made");
}

int main(void)
{
	struct sigaction act = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .policy = EMM_POLICY_PAGER, .pager = &ops);
	struct emm *mm;

	plan(20);
	sigemptyset(&act.sa_mask);
	if (sigaction(SIGBUS, &act, NULL))
		bail("sigaction: %s", strerror(errno));
	is_int(emm_open(NULL, &mm), 0, "emm_open, after installing a SIGBUS handler");
	is_int(emm_reserve(mm, LEN, (void **)&mem), 0, "reserve 64 MiB");
	is_int(emm_map(mm, mem, LEN, &o), 0, "map it as a read-only PAGER VMA");
	test_two_threads(mm);
	test_again(mm);
	test_once(mm);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
