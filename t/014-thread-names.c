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

		if (e->d_name[0] == '.' || thread_was_there(atoi(e->d_name)))
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
