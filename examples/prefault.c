/* SPDX-License-Identifier: MIT */
/* Why emm_prefault and emm_pin exist: on the signal and uffd-sigbus backends system calls cannot fault emm pages in. */
#include <emm.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE	4096

static const char msg[] = "hello through a pipe";
static bool all_held = true;

/* Print one step and remember whether it went as expected. */
static void step(bool held, const char *what)
{
	printf("%-4s %s\n", held ? "ok" : "FAIL", what);
	all_held &= held;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "prefault: %s: %s\n", what, strerror(-err));
	exit(1);
}

/*
 * On the signal and uffd-sigbus backends the kernel copies into the buffer
 * without a page fault emm could serve: read(2) into a page emm has not
 * mapped yet fails with EFAULT (and leaves the data in the pipe). Once
 * emm_prefault has mapped the page for writing, the same read works. On the
 * uffd backend emm serves the kernel's own fault and the first read works.
 */
static void pipe_read(struct emm *mm, char *buf)
{
	bool served = emm_backend(mm) == EMM_BACKEND_UFFD;
	char line[80];
	int pfd[2], err;
	ssize_t n;

	if (pipe(pfd) < 0 || write(pfd[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
		perror("prefault: pipe");
		exit(1);
	}
	n = read(pfd[0], buf, sizeof(msg));
	snprintf(line, sizeof(line), "read(2) into an untouched page: %s",
		 n < 0 ? strerror(errno) : "no error");
	if (served) {
		step(n == (ssize_t)sizeof(msg) && strcmp(buf, msg) == 0, line);
		if (write(pfd[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg)) {
			perror("prefault: pipe");
			exit(1);
		}
	} else {
		step(n < 0 && errno == EFAULT, line);
	}

	err = emm_prefault(mm, buf, PAGE, 1);
	step(err == 0, "emm_prefault(write) of that page");
	if (err < 0)
		die("emm_prefault", err);

	n = read(pfd[0], buf, sizeof(msg));
	snprintf(line, sizeof(line), "the same read(2): %zd bytes, \"%s\"", n,
		 n == (ssize_t)sizeof(msg) ? buf : "");
	step(n == (ssize_t)sizeof(msg) && strcmp(buf, msg) == 0, line);
	close(pfd[0]);
	close(pfd[1]);
}

/* A scratch file of two pages, each filled with its own byte; unlinked,
 * so nothing is left behind. */
static int scratch_file(void)
{
	const char *dir = getenv("TMPDIR");
	char page[PAGE], path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/prefault-XXXXXX", dir && *dir ? dir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		perror("prefault: mkstemp");
		exit(1);
	}
	unlink(path);
	for (int i = 0; i < 2; i++) {
		memset(page, 'a' + i, sizeof(page));
		if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page)) {
			perror("prefault: write");
			exit(1);
		}
	}
	return fd;
}

/* A pinned buffer stays resident and mapped however reclaim goes, for as
 * long as the kernel may use it: pin, pread(2), unpin. */
static void pinned_pread(struct emm *mm, char *buf)
{
	int fd = scratch_file(), err;
	ssize_t n;

	err = emm_pin(mm, buf, 2 * PAGE);
	step(err == 0, "emm_pin of a two-page buffer");
	if (err < 0)
		die("emm_pin", err);
	n = pread(fd, buf, 2 * PAGE, 0);
	step(n == 2 * PAGE && buf[0] == 'a' && buf[2 * PAGE - 1] == 'b',
	     "pread(2) of the file into the pinned buffer");
	err = emm_unpin(mm, buf, 2 * PAGE);
	step(err == 0, "emm_unpin: the pages may be evicted again");
	close(fd);
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 << 20);
	struct emm *mm;
	char *base;
	int err;

	err = emm_open(&o, &mm);
	if (err < 0)
		die("emm_open", err);
	err = emm_reserve(mm, 2 << 20, (void **)&base);
	if (err == 0)
		err = emm_map(mm, base, 2 << 20, NULL);	/* anonymous, read-write */
	if (err < 0)
		die("emm_reserve/emm_map", err);

	pipe_read(mm, base);
	pinned_pread(mm, base + (1 << 20));	/* pages nothing has touched */

	err = emm_close(mm);
	step(err == 0, "emm_close");
	printf("%s\n", all_held ? "all held" : "something did not hold");
	return all_held ? 0 : 1;
}
