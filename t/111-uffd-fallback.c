/* SPDX-License-Identifier: MIT */
/* EMM_BACKEND_AUTO where userfaultfd is denied: a seccomp filter gives signal (and core tests pass under it); a user without privilege gets uffd-sigbus or signal. */
#include <errno.h>
#include <libgen.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* Quick core tests, run again under the filter. */
static const char *const core_tests[] = {
	"101-threads.t", "102-guard-longjmp.t", "104-close-maps.t", "200-swapdev.t",
	"206-corrupt.t", "208-advise.t",
};

static char dir[4096];

/* userfaultfd(2) and the /dev/userfaultfd ioctl fail with EPERM, as in a
 * container whose seccomp profile forbids them; inherited across execve. */
static int deny_userfaultfd(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, USERFAULTFD_IOC_NEW, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The backend AUTO picks in a child set up by how (0: as we are). */
static int auto_in_child(int (*how)(void))
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		EMM_OPTS(emm_opts, o, .mem_limit = 16 << 20);
		struct emm *mm;

		if (how && how() < 0)
			_exit(100);
		if (emm_open(&o, &mm))
			_exit(101);
		_exit(emm_backend(mm));
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* Run one test program under the filter; its exit status (0: all passed). */
static int run_filtered(const char *name)
{
	char path[4200];
	int st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (deny_userfaultfd() < 0 || !freopen("/dev/null", "w", stdout))
			_exit(100);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int drop_privilege(void)
{
	return setgid(65534) < 0 || setuid(65534) < 0 ? -1 : 0;
}

/* vm.unprivileged_userfaultfd, or -1. */
static int sysctl_unprivileged(void)
{
	FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
	int v = -1;

	if (f && fscanf(f, "%d", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int got, unpriv = sysctl_unprivileged();
	const char *forced = getenv("EMM_BACKEND");

	(void)argc, (void)argv;
	if (forced && strcmp(forced, "auto"))
		skip_all("this is about EMM_BACKEND_AUTO, and EMM_BACKEND forces a backend");
	setenv("EMM_BACKEND", "auto", 1);
	if (n <= 0)
		bail("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = 0;
	snprintf(dir, sizeof(dir), "%s", dirname(self));
	plan(3 + (int)(sizeof(core_tests) / sizeof(core_tests[0])));
	got = auto_in_child(NULL);
	diag("AUTO picks backend %d here", got);
	got = auto_in_child(deny_userfaultfd);
	is_int(got, EMM_BACKEND_SIGNAL, "seccomp denies userfaultfd(2) and its ioctl: AUTO picks signal");
	for (size_t i = 0; i < sizeof(core_tests) / sizeof(core_tests[0]); i++)
		is_int(run_filtered(core_tests[i]), 0, "under the filter, %s passes", core_tests[i]);
	if (geteuid() != 0) {
		skip(2, "not root: cannot become a user without privilege");
		return done_testing();
	}
	got = auto_in_child(drop_privilege);
	diag("vm.unprivileged_userfaultfd = %d; as nobody AUTO picks backend %d", unpriv, got);
	if (unpriv == 1)
		is_int(got, EMM_BACKEND_UFFD, "as nobody with vm.unprivileged_userfaultfd=1: uffd");
	else
		ok(got == EMM_BACKEND_UFFD_SIGBUS || got == EMM_BACKEND_SIGNAL,
		   "as nobody with vm.unprivileged_userfaultfd=0: uffd-sigbus or signal (%d)", got);
	ok(got != 100 && got != 101, "and emm_open worked there");
	return done_testing();
}
