/* SPDX-License-Identifier: MIT */
/* emm_close leaves /proc/self/maps (and the descriptor table) as emm_open found it. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define GIB (1UL << 30)
#define SNAP_MAX (512 * 1024)

/*
 * glibc keeps the stacks of joined threads and the arenas threads malloc'd
 * from: mappings that outlive emm's threads without being emm's. Run with
 * both caches off so the comparison sees only what emm leaves behind.
 */
#define TUNABLES "glibc.pthread.stack_cache_size=0:glibc.malloc.arena_max=1"

struct snap {
	size_t len;
	char text[SNAP_MAX];
};

static struct snap before, after;

static void keep_line(const char *line, void *arg)
{
	struct snap *s = arg;
	size_t n = strlen(line);

	/* Their bounds move with malloc and the stack, not with emm. */
	if (strstr(line, "[heap]") || strstr(line, "[stack]"))
		return;
	if (s->len + n + 2 > SNAP_MAX)
		bail("/proc/self/maps too long");
	memcpy(s->text + s->len, line, n);
	s->len += n;
	s->text[s->len++] = '\n';
	s->text[s->len] = '\0';
}

static void take(struct snap *s)
{
	s->len = 0;
	s->text[0] = '\0';
	if (maps_foreach(keep_line, s) < 0)
		bail("cannot read /proc/self/maps");
}

/* Lines of a that are not in b, as diagnostics. */
static void show_missing(const struct snap *a, const struct snap *b, const char *what)
{
	char line[512];

	for (const char *p = a->text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = (size_t)(nl - p);

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		if (!strstr(b->text, line))
			diag("%s: %s", what, line);
		p = nl + 1;
	}
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

struct hits { uintptr_t lo, hi; int n; };

static void hit_line(const char *line, void *arg)
{
	struct hits *h = arg;
	char *end;
	uintptr_t s = (uintptr_t)strtoull(line, &end, 16);
	uintptr_t e = (uintptr_t)strtoull(end + 1, NULL, 16);

	h->n += s < h->hi && e > h->lo;
}

static const size_t lens[3] = { 4 * MIB, 64 * MIB, GIB };

/* One life of an instance: three reservations, VMAs in each, pages touched. */
static int cycle(void *rsv[3])
{
	struct emm *mm;
	int err = emm_open(NULL, &mm);

	for (int i = 0; !err && i < 3; i++)
		err = emm_reserve(mm, lens[i], &rsv[i]);
	for (int i = 0; !err && i < 3; i++) {
		char *r = rsv[i];

		err = emm_map(mm, r, 2 * MIB, NULL) ?:
		      emm_map(mm, r + lens[i] - MIB, MIB, NULL);
		if (!err) {
			memset(r, i + 1, 2 * MIB);
			memset(r + lens[i] - MIB, i + 1, 64 * PAGE);
		}
	}
	if (!err && ((char *)rsv[2])[2 * MIB - 1] != 3)
		err = -1;
	return emm_close(mm) ?: err;
}

static void reexec(char **argv)
{
	const char *t = getenv("GLIBC_TUNABLES");
	char buf[1024];

	if (t && strstr(t, TUNABLES))
		return;
	snprintf(buf, sizeof(buf), "%s%s%s", t ? t : "", t ? ":" : "", TUNABLES);
	setenv("GLIBC_TUNABLES", buf, 1);
	execv("/proc/self/exe", argv);
	diag("cannot re-exec with GLIBC_TUNABLES: glibc caches may show as leaks");
}

int main(int argc, char **argv)
{
	void *rsv[3] = { 0 };
	struct hits h = { 0 };
	int fds;

	skip_all_sanitized("the sanitizer maps and unmaps memory of its own, so "
			   "/proc/self/maps changes under the test");
	reexec(argv);
	plan(8);
	fds = open_fds();
	take(&before);
	is_int(cycle(rsv), 0, "open, reserve three ranges, map, touch, close");
	take(&after);
	ok(strcmp(before.text, after.text) == 0, "/proc/self/maps has the same lines as before");
	show_missing(&after, &before, "left behind");
	show_missing(&before, &after, "gone");
	for (int i = 0; i < 3; i++) {
		h = (struct hits){ (uintptr_t)rsv[i], (uintptr_t)rsv[i] + lens[i], 0 };
		maps_foreach(hit_line, &h);
		is_int(h.n, 0, "nothing mapped in reservation %d (%zu MiB) after close",
		       i, lens[i] / MIB);
	}
	is_int(open_fds(), fds, "as many open descriptors as before");
	is_int(cycle(rsv), 0, "a second instance's life");
	take(&after);
	ok(strcmp(before.text, after.text) == 0, "and the same lines after a second one");
	show_missing(&after, &before, "left behind the second time");
	(void)argc;
	return done_testing();
}
