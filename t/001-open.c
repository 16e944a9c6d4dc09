/* SPDX-License-Identifier: MIT */
/* emm_open and emm_close: options checking, the environment, the memory limit. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"

#define MIB (1ULL << 20)

/* The smallest emm_opts ever published ends with flags. */
#define OPTS_MIN_SZ (offsetof(struct emm_opts, flags) + sizeof(unsigned))

/* Opens with o, closes at once, and returns what emm_open said. */
static int try_open(const struct emm_opts *o)
{
	struct emm *mm = NULL;
	int r = emm_open(o, &mm);

	if (r == 0 && emm_close(mm) != 0)
		return -1000;
	return r;
}

static void test_null_and_close(void)
{
	struct emm *mm = NULL;

	is_int(emm_open(NULL, &mm), 0, "emm_open(NULL opts) succeeds");
	ok(mm != NULL, "and gives an instance");
	is_int(emm_close(mm), 0, "emm_close of it succeeds");
	is_int(emm_open(NULL, NULL), -EINVAL, "emm_open with mmp NULL: -EINVAL");

	EMM_OPTS(emm_opts, o);
	is_int(emm_open(&o, NULL), -EINVAL, "emm_open with opts and mmp NULL: -EINVAL");
	is_int(emm_close(NULL), -EINVAL, "emm_close(NULL): -EINVAL");
	is_int(try_open(&o), 0, "EMM_OPTS with no fields set: defaults");
}

static void test_sz(void)
{
	EMM_OPTS(emm_opts, o);

	o.sz = 0;
	is_int(try_open(&o), -EINVAL, "sz 0: -EINVAL");
	o.sz = sizeof(size_t) - 1;
	is_int(try_open(&o), -EINVAL, "sz one byte short of the sz field: -EINVAL");
	o.sz = offsetof(struct emm_opts, flags);
	is_int(try_open(&o), 0, "sz without flags: accepted, flags take their default");
	o.sz = OPTS_MIN_SZ;
	is_int(try_open(&o), 0, "sz of the first published struct: accepted");
}

/* A caller built against a newer emm_opts than this library knows. */
struct opts_newer {
	struct emm_opts o;
	unsigned char extra[24];
};

static void test_newer_struct(void)
{
	struct opts_newer n;

	memset(&n, 0, sizeof(n));
	n.o.sz = sizeof(n);
	is_int(try_open(&n.o), 0, "bigger struct, trailing bytes zero: accepted");
	n.extra[13] = 1;
	is_int(try_open(&n.o), -EINVAL, "bigger struct, a trailing byte non-zero: -EINVAL");
	n.extra[13] = 0;
	n.extra[sizeof(n.extra) - 1] = 0x80;
	is_int(try_open(&n.o), -EINVAL, "bigger struct, last trailing byte non-zero: -EINVAL");
}

static void test_bad_values(void)
{
	EMM_OPTS(emm_opts, o);

	o.backend = EMM_BACKEND_UFFD_SIGBUS + 1;
	is_int(try_open(&o), -EINVAL, "unknown backend: -EINVAL");
	o.backend = -1;
	is_int(try_open(&o), -EINVAL, "negative backend: -EINVAL");
	o.backend = EMM_BACKEND_AUTO;
	o.thp = EMM_THP_NEVER + 1;
	is_int(try_open(&o), -EINVAL, "unknown thp: -EINVAL");
	o.thp = -1;
	is_int(try_open(&o), -EINVAL, "negative thp: -EINVAL");
	o.thp = EMM_THP_MADVISE;
	o.flags = 0x100;
	is_int(try_open(&o), -EINVAL, "unknown flag 0x100: -EINVAL");
	o.flags = 0x80000000u;
	is_int(try_open(&o), -EINVAL, "unknown flag 0x80000000: -EINVAL");
	o.flags = 0;
	o.backend = EMM_BACKEND_SIGNAL;
	is_int(try_open(&o), 0, "EMM_BACKEND_SIGNAL: accepted");
	o.uffd_threads = 65;
	is_int(try_open(&o), -EINVAL, "uffd_threads 65: -EINVAL");
	o.uffd_threads = 0;
	o.inactive_ratio = 65;
	is_int(try_open(&o), -EINVAL, "inactive_ratio 65: -EINVAL");
	o.inactive_ratio = 64;
	is_int(try_open(&o), 0, "inactive_ratio 64: accepted");
	o.inactive_ratio = 1;
	is_int(try_open(&o), 0, "inactive_ratio 1: accepted");
}

/* Each backend opens, or is refused with -EOPNOTSUPP or -EPERM where the
 * kernel or the system does not offer it; emm_backend says which is used. */
static void test_backends(void)
{
	static const char *const names[] = { "AUTO", "SIGNAL", "UFFD", "UFFD_SIGBUS" };

	is_int(emm_backend(NULL), -EINVAL, "emm_backend(NULL): -EINVAL");
	for (int b = EMM_BACKEND_AUTO; b <= EMM_BACKEND_UFFD_SIGBUS; b++) {
		EMM_OPTS(emm_opts, o, .backend = b, .mem_limit = 16 << 20);
		struct emm *mm;
		int err = emm_open(&o, &mm), got;

		if (err) {
			ok(b >= EMM_BACKEND_UFFD && (err == -EOPNOTSUPP || err == -EPERM ||
						   err == -EACCES),
			   "EMM_BACKEND_%s: not offered here (%s)", names[b], strerror(-err));
			continue;
		}
		got = emm_backend(mm);
		if (b == EMM_BACKEND_AUTO)
			ok(got >= EMM_BACKEND_SIGNAL && got <= EMM_BACKEND_UFFD_SIGBUS,
			   "EMM_BACKEND_AUTO picked %s", names[got > 0 && got < 4 ? got : 0]);
		else
			is_int(got, b, "EMM_BACKEND_%s: emm_backend says so", names[b]);
		emm_close(mm);
	}
}

static uint64_t limit_of(const struct emm_opts *o, int *err)
{
	struct emm *mm;
	EMM_OPTS(emm_stats, st);

	*err = emm_open(o, &mm);
	if (*err)
		return 0;
	*err = emm_stats(mm, &st);
	emm_close(mm);
	return st.limit_bytes;
}

static void test_limit(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = 256 * MIB);
	uint64_t got;
	int err;

	unsetenv("EMM_MEM_LIMIT");
	got = limit_of(&o, &err);
	is_int(err, 0, "open with mem_limit 256M and read stats");
	is_int(got, 256 * MIB, "limit_bytes is mem_limit from opts");

	setenv("EMM_MEM_LIMIT", "64M", 1);
	got = limit_of(NULL, &err);
	is_int(err, 0, "open with EMM_MEM_LIMIT=64M and read stats");
	is_int(got, 64 * MIB, "limit_bytes is EMM_MEM_LIMIT");
	got = limit_of(&o, &err);
	is_int(got, 256 * MIB, "mem_limit from opts beats EMM_MEM_LIMIT");
	unsetenv("EMM_MEM_LIMIT");
}

struct env_case {
	const char *name, *value;
};

/* What an instance ends up with: its limit, and the faults a sequential
 * first touch of 1 MiB costs (which shows its fault_around). */
struct outcome {
	uint64_t limit, faults;
};

static int outcome_of(struct outcome *out)
{
	EMM_OPTS(emm_stats, st);
	struct emm *mm;
	char *p;
	void *r;
	int err = emm_open(NULL, &mm);

	if (err)
		return err;
	err = emm_reserve(mm, 2 * MIB, &r) ?: emm_map(mm, r, MIB, NULL);
	for (p = r; !err && p < (char *)r + MIB; p += 4096)
		*p = 1;
	err = err ?: emm_stats(mm, &st);
	out->limit = st.limit_bytes;
	out->faults = st.faults;
	emm_close(mm);
	return err;
}

/*
 * In the child: the defaults first (no bad variable yet), then the same
 * with the bad variable set. Exit code 0: opened and the defaults kept;
 * 1: emm_open failed; 2: something else failed; 3: the outcome changed.
 */
static void env_child(void *arg)
{
	const struct env_case *c = arg;
	struct outcome base, got;

	if (outcome_of(&base))
		_exit(2);
	setenv(c->name, c->value, 1);
	if (outcome_of(&got))
		_exit(1);
	_exit(got.limit == base.limit && got.faults == base.faults ? 0 : 3);
}

static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		if (p == text || p[-1] == '\n')
			n++;
	return n;
}

static void test_bad_env(const struct env_case *c)
{
	char out[4096], want[128];
	int status = 0;

	snprintf(want, sizeof(want), "%s=%s", c->name, c->value);
	if (fork_stderr(env_child, (void *)c, out, sizeof(out), &status)) {
		ok(0, "fork a child for %s", want);
		skip(3, "no child");
		return;
	}
	ok(WIFEXITED(status) && WEXITSTATUS(status) != 1, "%s: emm_open still succeeds", want);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the default is kept", want);
	is_int(count_lines_with(out, "emm: warning:"), 1, "%s: one warning line", want);
	ok(strstr(out, want) != NULL, "%s: the warning names the variable and value", want);
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		diag("child status 0x%x, stderr: %s", status, out);
}

int main(void)
{
	static const struct env_case bad[] = {
		{ "EMM_FAULT_AROUND", "banana" },
		{ "EMM_MEM_LIMIT", "12Q" },
		{ "EMM_BACKEND", "turbo" },
		{ "EMM_THP", "sometimes" },
		{ "EMM_INACTIVE_RATIO", "65" },
	};

	plan(7 + 4 + 3 + 11 + 5 + 4 * 5 + 5);
	/* The tests set these themselves. */
	unsetenv("EMM_MEM_LIMIT");
	unsetenv("EMM_BACKEND");
	unsetenv("EMM_THP");
	unsetenv("EMM_FAULT_AROUND");
	unsetenv("EMM_INACTIVE_RATIO");
	test_null_and_close();
	test_sz();
	test_newer_struct();
	test_bad_values();
	test_backends();
	test_limit();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		test_bad_env(&bad[i]);
	return done_testing();
}
