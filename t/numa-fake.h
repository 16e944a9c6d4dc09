/* SPDX-License-Identifier: MIT */
/* Faked NUMA machines for tests: a copy of the test re-executed under a faked topology reports its checks, which the parent makes TAP of; threads pinned to a CPU. */
#ifndef EMM_T_NUMA_FAKE_H
#define EMM_T_NUMA_FAKE_H

#include <sched.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "tap.h"

#define NUMA_FN static __attribute__((unused))

/* ---- in the child ---- */

/* The child says "1 what" or "0 what" per check and "# what" for notes;
 * the parent makes TAP of it. */
static int child_failed;

NUMA_FN TAP_PRINTF(2, 3) void check(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%d ", !!cond);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	child_failed |= !cond;
}

NUMA_FN TAP_PRINTF(1, 2) void note(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A minute at most (five under ThreadSanitizer, which runs the threads
 * several times slower), and stdout by lines: a child that dies still said
 * how far it got. */
NUMA_FN void child_begin(void)
{
	alarm(TAP_TSAN ? 300 : 60);
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Pins the calling thread to cpu: 0, -errno, or -EAGAIN if it still runs
 * elsewhere. */
NUMA_FN int pin_to_cpu(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0)
		return -errno;
	return sched_getcpu() == cpu ? 0 : -EAGAIN;
}

/* May this process run on CPUs 0 and 1? */
NUMA_FN bool cpus_usable(void)
{
	cpu_set_t s;

	return sched_getaffinity(0, sizeof(s), &s) == 0 && CPU_ISSET(0, &s) && CPU_ISSET(1, &s);
}

/* ---- in the parent ---- */

/* What the child wrote on stdout and stderr, and its wait status. */
struct child_report {
	char out[1 << 16], err[1 << 12];
	int status;
};

/* What a memfd holds, from the start. */
NUMA_FN void read_back(int fd, char *buf, size_t cap)
{
	ssize_t got = pread(fd, buf, cap - 1, 0);

	buf[got > 0 ? got : 0] = '\0';
}

/*
 * Runs this program again with args (NULL-terminated, at most 7) after its
 * name, stdout and stderr in memfds. In the child, env(arg) sets up the
 * environment before the exec. The report is static: one child at a time.
 */
NUMA_FN struct child_report *child_spawn(void (*env)(const void *), const void *arg,
					 const char *const args[])
{
	static struct child_report rep;
	char *argv[8] = { program_invocation_name };
	int ofd = memfd_create("out", 0), efd = memfd_create("err", 0);
	pid_t pid;

	for (int i = 0; i < 7 && args[i]; i++)
		argv[i + 1] = (char *)args[i];
	rep.status = -1;
	tap_flush();
	pid = fork();
	if (pid == 0) {
		dup2(ofd, STDOUT_FILENO);
		dup2(efd, STDERR_FILENO);
		env(arg);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	waitpid(pid, &rep.status, 0);
	read_back(ofd, rep.out, sizeof(rep.out));
	read_back(efd, rep.err, sizeof(rep.err));
	close(ofd);
	close(efd);
	return &rep;
}

/*
 * One line of the child's report becomes one TAP test or one diag; a
 * report starting "skip why" skips the whole test. Then two tests: that
 * it reported and that it exited cleanly.
 */
NUMA_FN void child_relay(const char *name, struct child_report *rep)
{
	int checks = 0;

	if (!strncmp(rep->out, "skip ", 5))
		skip_all(rep->out + 5);
	for (char *line = strtok(rep->out, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#') {
			diag("[%s] %s", name, line + 2);
			continue;
		}
		ok(line[0] == '1' && line[1] == ' ', "[%s] %s", name, line + 2);
		checks++;
	}
	ok(checks > 5, "[%s] the child reported", name);
	is_int(WIFEXITED(rep->status) ? WEXITSTATUS(rep->status) : -WTERMSIG(rep->status), 0,
	       "[%s] the child exited cleanly", name);
}

/* One more test: the child said nothing on stderr. */
NUMA_FN void child_quiet(const char *name, const struct child_report *rep)
{
	if (*rep->err)
		diag("[%s] stderr: %s", name, rep->err);
	is_str(rep->err, "", "[%s] nothing on stderr", name);
}

/* The machine hwloc's synthetic description describes. */
NUMA_FN void set_synthetic(const void *description)
{
	unsetenv("HWLOC_XMLFILE");
	setenv("HWLOC_SYNTHETIC", description, 1);
}

/* Runs this program again with args on a faked machine and relays its
 * report: the child's checks and three tests. */
NUMA_FN void run_faked(const char *name, const char *synthetic, const char *const args[])
{
	struct child_report *rep = child_spawn(set_synthetic, synthetic, args);

	child_relay(name, rep);
	child_quiet(name, rep);
}

#endif /* EMM_T_NUMA_FAKE_H */
