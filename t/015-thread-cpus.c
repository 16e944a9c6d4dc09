/* SPDX-License-Identifier: MIT */
/* emm's threads take the CPU affinity of the thread that calls emm_open, but
 * for uffd's fault-service threads where it holds 2 to 4 CPUs: each is
 * pinned to one of them (emm-tuning(7), "emm's threads and the program's
 * CPUs"). */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

/* Is got the affinity a thread called comm may have, its caller's want?
 * With pin, a fault-service thread's is one CPU of want. */
static bool right(const char *comm, const cpu_set_t *got, const cpu_set_t *want, bool pin)
{
	cpu_set_t in;

	if (!pin || strncmp(comm, "emm-uffd", 8))
		return CPU_EQUAL(got, want);
	CPU_AND(&in, got, want);
	return CPU_COUNT(got) == 1 && CPU_COUNT(&in) == 1;
}

/* How many threads emm started; those whose affinity is not right go to
 * *wrong, and the first one's name to bad. */
static int emm_threads(const cpu_set_t *want, bool pin, int *wrong, char *bad, size_t cap)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	*wrong = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		cpu_set_t got;
		char comm[32];

		if (e->d_name[0] == '.' || thread_was_there(atoi(e->d_name)))
			continue;
		task_comm(e->d_name, comm, sizeof(comm));
		if (strncmp(comm, "emm-", 4))
			continue;
		n++;
		CPU_ZERO(&got);
		if (sched_getaffinity(atoi(e->d_name), sizeof(got), &got) != 0 ||
		    !right(comm, &got, want, pin)) {
			if (!(*wrong)++)
				snprintf(bad, cap, "%s", comm);
		}
	}
	closedir(d);
	return n;
}

/* An instance opened by a thread bound to want: every thread it starts is
 * bound the same way. */
static void check(int backend, const char *name, const cpu_set_t *want, const char *what)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64ULL << 20, .backend = backend);
	struct emm *mm;
	char bad[32] = "";
	bool pin = backend == EMM_BACKEND_UFFD && CPU_COUNT(want) >= 2 && CPU_COUNT(want) <= 4;
	int n, wrong;

	if (emm_open(&o, &mm)) {
		skip(1, "no instance on this backend here");
		return;
	}
	n = emm_threads(want, pin, &wrong, bad, sizeof(bad));
	ok(n > 0 && wrong == 0, "%s: the %d threads emm_open started run where its caller may%s (%s)",
	   name, n, pin ? ", the fault-service threads on one CPU of those each" : "",
	   wrong ? bad : what);
	emm_close(mm);
	/* A joined thread may still be listed for a moment while the kernel
	 * finishes its exit: the next instance's must not meet it. */
	for (int i = 0; i < 100 && emm_threads(want, pin, &wrong, bad, sizeof(bad)) > 0; i++)
		usleep(10000);
}

int main(void)
{
	static const struct {
		int backend;
		const char *name;
	} backends[] = { { EMM_BACKEND_SIGNAL, "signal" },
			 { EMM_BACKEND_UFFD, "uffd" },
			 { EMM_BACKEND_UFFD_SIGBUS, "uffd-sigbus" } };
	cpu_set_t all, one;
	int last = -1;

	if (sched_getaffinity(0, sizeof(all), &all) != 0 || CPU_COUNT(&all) < 2)
		skip_all("the process may run on one CPU only: no binding to tell apart");
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &all))
			last = i;
	CPU_ZERO(&one);
	CPU_SET(last, &one);
	plan(2 * 3);
	note_threads();
	if (sched_setaffinity(0, sizeof(one), &one) != 0)
		bail("sched_setaffinity: %s", strerror(errno));
	for (size_t b = 0; b < 3; b++)
		check(backends[b].backend, backends[b].name, &one, "one CPU");
	if (sched_setaffinity(0, sizeof(all), &all) != 0)
		bail("sched_setaffinity: %s", strerror(errno));
	for (size_t b = 0; b < 3; b++)
		check(backends[b].backend, backends[b].name, &all, "every CPU");
	return done_testing();
}
