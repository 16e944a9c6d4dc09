/* SPDX-License-Identifier: MIT */
/* EMM_PROFILE samples faults: every fault, one in N, or the major ones; emm_profile_dump names the site (the code on signal and uffd-sigbus, the VMA and offset on uffd). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define AREA	(4 * MIB)

struct dump {
	char text[16384];
	size_t len;
	unsigned lines;
};

static void collect(const char *line, void *arg)
{
	struct dump *d = arg;

	d->len += (size_t)snprintf(d->text + d->len, sizeof(d->text) - d->len, "%s\n", line);
	if (d->len >= sizeof(d->text))
		d->len = sizeof(d->text) - 1;
	d->lines++;
}

/* The samples the report's first line counts, and those lost. */
static long samples(const struct dump *d, long *lost)
{
	const char *p = strstr(d->text, "sampled: ");
	long s = -1;

	*lost = -1;
	if (p)
		sscanf(p, "sampled: %ld samples, %ld not recorded", &s, lost);
	return s;
}

/* The faulting function the profile must name. Global and out of line so
 * that the compiler keeps its name. */
void profiled_toucher(volatile char *p, size_t len);
__attribute__((noinline)) void profiled_toucher(volatile char *p, size_t len)
{
	for (size_t i = 0; i < len; i += PAGE)
		p[i] = 1;
}

/* Open an instance under spec, fault AREA in page by page, dump. */
static struct emm *run(const char *spec, char **area, struct dump *d, int *err)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 64 * MIB, .fault_around = 1);
	struct emm *mm;

	if (spec)
		setenv("EMM_PROFILE", spec, 1);
	else
		unsetenv("EMM_PROFILE");
	if (emm_open(&o, &mm) || emm_reserve(mm, AREA, (void **)area) ||
	    emm_map(mm, *area, AREA, NULL) || emm_advise(mm, *area, AREA, EMM_ADV_RANDOM))
		bail("setting up under EMM_PROFILE=%s", spec ? spec : "(unset)");
	profiled_toucher(*area, AREA);
	memset(d, 0, sizeof(*d));
	*err = emm_profile_dump(mm, collect, d);
	return mm;
}

static void check_all(void)
{
	struct dump d;
	char *area, *top;
	long lost, s;
	int err;
	struct emm *mm = run("all", &area, &d, &err);
	uint64_t faults = stats(mm).faults;

	is_int(err, 0, "EMM_PROFILE=all: emm_profile_dump returns 0");
	s = samples(&d, &lost);
	diag("%" PRIu64 " faults; the report:\n%s", faults, d.text);
	/* A fault the kernel delivers twice (uffd) is sampled twice, counted once. */
	ok(s + lost >= (long)faults && s + lost <= (long)faults + (long)faults / 100,
	   "every fault sampled, recorded or counted as lost (%ld for %" PRIu64 " faults; "
	   "a fault delivered twice is sampled twice)", s + lost, faults);
	is_int(lost, 0, "none lost: the table holds every site");
	if (emm_backend(mm) == EMM_BACKEND_UFFD) {
		char want[64];

		/* AREA is 4 MiB: 64 regions of 64 KiB, the first at offset 0. */
		snprintf(want, sizeof(want), "%%  vma@%p+0x", (void *)area);
		top = strstr(d.text, "service threads)\n");
		ok(top && strstr(top, want), "uffd: the sites are regions of the VMA (%s)", want);
		ok(top && !strstr(top, "profiled_toucher"), "uffd: and no code site");
	} else {
		top = strstr(d.text, "<- its callers\n");
		ok(top && strstr(top, "%  profiled_toucher+0x"),
		   "the top site is profiled_toucher+offset");
		ok(top && strstr(top, " <- main+0x"), "called from main");
	}
	unsetenv("EMM_PROFILE");
	emm_close(mm);
}

static void check_rate(void)
{
	struct dump d;
	char *area;
	long lost, s;
	int err;
	struct emm *mm = run("all:4", &area, &d, &err);
	uint64_t faults = stats(mm).faults;

	s = samples(&d, &lost);
	/* As in check_all, a fault uffd delivers twice is seen twice. */
	ok(s + lost >= (long)((faults + 3) / 4) &&
	   s + lost <= (long)((faults + faults / 100 + 3) / 4),
	   "EMM_PROFILE=all:4: one fault in four (%ld for %" PRIu64 " faults; "
	   "a fault delivered twice is seen twice)", s + lost, faults);
	emm_close(mm);
}

/* First touches of anonymous memory are not major; swap-ins are. Nothing
 * evicts on its own under this budget, so the sampled kind is exact. */
static void check_major(void)
{
	struct dump d;
	char *area;
	long lost, s;
	int err;
	struct emm *mm = run("major", &area, &d, &err);
	uint64_t majors;

	s = samples(&d, &lost);
	is_int(s, 0, "EMM_PROFILE=major: first touches are not sampled");
	if (emm_advise(mm, area, AREA, EMM_ADV_PAGEOUT))
		bail("EMM_ADV_PAGEOUT");
	majors = stats(mm).faults_major;
	profiled_toucher(area, AREA);
	majors = stats(mm).faults_major - majors;
	memset(&d, 0, sizeof(d));
	emm_profile_dump(mm, collect, &d);
	s = samples(&d, &lost);
	ok(majors > 0 && s + lost == (long)majors, "swap-ins sampled: %ld of %" PRIu64
	   " major faults", s + lost, majors);
	emm_close(mm);
}

/* What stderr receives while fn runs. */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t cap)
{
	int fd = tmp_file("profile-stderr", NULL, 0), saved = dup(2);
	ssize_t n;

	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, cap - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

static void open_bad_spec(void *arg)
{
	struct emm *mm;

	setenv("EMM_PROFILE", "sometimes", 1);
	if (emm_open(NULL, &mm))
		bail("emm_open");
	*(int *)arg = emm_profile_dump(mm, collect, &(struct dump){ 0 });
	emm_close(mm);
	unsetenv("EMM_PROFILE");
}

int main(void)
{
	char buf[1024];
	struct emm *mm;
	int err;

	unsetenv("EMM_PROFILE");
	if (emm_open(NULL, &mm))
		bail("emm_open");
	emm_close(mm);
	plan(12);
	is_int(emm_profile_dump(NULL, collect, NULL), -EINVAL, "emm_profile_dump(NULL): -EINVAL");
	unsetenv("EMM_PROFILE");
	if (emm_open(NULL, &mm))
		bail("emm_open");
	is_int(emm_profile_dump(mm, collect, NULL), -ENODATA, "without EMM_PROFILE: -ENODATA");
	emm_close(mm);
	capture_stderr(open_bad_spec, &err, buf, sizeof(buf));
	is_int(err, -ENODATA, "EMM_PROFILE=sometimes: no profile");
	ok(strstr(buf, "ignoring EMM_PROFILE=sometimes") != NULL, "and one warning: %s", buf);
	check_all();
	check_rate();
	check_major();
	return tap_failed != 0;
}
