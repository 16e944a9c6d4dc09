/* SPDX-License-Identifier: MIT */
/* emm's threads are named emm-*, so that top -H, ps -L, gdb and perf tell them from the program's; emm_close leaves none. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

/* Threads there before the test (a sanitizer's own, say): not emm's. */
static int before[64], nbefore;

static int was_there(int tid)
{
	for (int i = 0; i < nbefore; i++)
		if (before[i] == tid)
			return 1;
	return 0;
}

/* The names of this process's threads that were not there at the start,
 * joined by spaces into out; how many there are. */
static int other_threads(char *out, size_t cap)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	size_t len = 0;

	out[0] = '\0';
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char comm[32];

		if (e->d_name[0] == '.' || was_there(atoi(e->d_name)))
			continue;
		task_comm(e->d_name, comm, sizeof(comm));
		len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", n ? " " : "", comm);
		n++;
	}
	closedir(d);
	return n;
}

/* Every word of names starts with "emm-". */
static int all_emm(const char *names)
{
	const char *p = names;

	while (*p) {
		if (strncmp(p, "emm-", 4))
			return 0;
		p += strcspn(p, " ");
		p += *p == ' ';
	}
	return 1;
}

static void check(int backend, const char *what)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64ULL << 20, .backend = backend);
	struct emm *mm;
	char names[4096];
	int n, err = emm_open(&o, &mm);

	if (err) {
		skip(3, "no instance on this backend here");
		return;
	}
	n = other_threads(names, sizeof(names));
	diag("%s: %s", what, names);
	ok(n > 0 && all_emm(names), "%s: each of the %d threads emm_open started is called emm-*", what, n);
	ok(strstr(names, "emm-kswapd0") != NULL, "%s: the reclaim thread is emm-kswapd0", what);
	is_int(emm_close(mm), 0, "%s: emm_close", what);
}

static void *nothing(void *arg)
{
	return arg;
}

/* ThreadSanitizer starts a thread of its own at the first pthread_create,
 * named as the program: start one here, so that it is there before. */
static void note_threads(void)
{
	pthread_t t;
	struct dirent *e;
	DIR *d;

	if (pthread_create(&t, NULL, nothing, NULL) == 0)
		pthread_join(t, NULL);
	d = opendir("/proc/self/task");
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' && nbefore < 64)
			before[nbefore++] = atoi(e->d_name);
	if (d)
		closedir(d);
}

int main(void)
{
	char names[4096];

	plan(3 * 3 + 1);
	note_threads();
	check(EMM_BACKEND_SIGNAL, "signal");
	check(EMM_BACKEND_UFFD, "uffd");
	check(EMM_BACKEND_UFFD_SIGBUS, "uffd-sigbus");
	/* A joined thread has left the program, but may still be listed for
	 * a moment while the kernel finishes its exit. */
	for (int i = 0; i < 100 && other_threads(names, sizeof(names)); i++)
		usleep(10000);
	is_int(other_threads(names, sizeof(names)), 0, "after emm_close, no thread of emm's is left");
	return done_testing();
}
