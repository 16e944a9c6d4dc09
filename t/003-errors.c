/* SPDX-License-Identifier: MIT */
/* The error table of the API for emm_map, emm_unmap, emm_protect and the range calls. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "emm.h"
#include "tap.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define RSV_LEN (8 * MIB)

static struct emm *mm;
static char *r1, *r2;		/* two reservations */
static char *vma;		/* [vma, vma + 16 pages) is mapped in r1 */
static char *alien;		/* a mapping of our own, outside emm */
static char *straddle;		/* from the end of one reservation into the next */
static size_t straddle_len;

/* Every range call as one signature, so one table checks them all. */
struct call {
	const char *name;
	int (*fn)(void *addr, size_t len, int arg, struct emm *m);
	int arg;		/* a valid last argument */
	int hole;		/* what a range with a hole gives */
	int bad[2];		/* unknown values of the last argument, if it has any */
};

static int c_unmap(void *a, size_t l, int x, struct emm *m) { return emm_unmap(m, a, l); }
static int c_protect(void *a, size_t l, int x, struct emm *m) { return emm_protect(m, a, l, x); }
static int c_advise(void *a, size_t l, int x, struct emm *m) { return emm_advise(m, a, l, x); }
static int c_pin(void *a, size_t l, int x, struct emm *m) { return emm_pin(m, a, l); }
static int c_unpin(void *a, size_t l, int x, struct emm *m) { return emm_unpin(m, a, l); }
static int c_prefault(void *a, size_t l, int x, struct emm *m) { return emm_prefault(m, a, l, x); }

static const struct call calls[] = {
	{ .name = "emm_protect", .fn = c_protect, .arg = EMM_PROT_READ | EMM_PROT_WRITE,
	  .hole = -ENOMEM, .bad = { 8, -1 } },
	{ .name = "emm_advise", .fn = c_advise, .arg = EMM_ADV_NORMAL,
	  .hole = -ENOMEM, .bad = { EMM_ADV_NOHUGEPAGE + 1, -1 } },
	{ .name = "emm_pin", .fn = c_pin, .hole = -ENOMEM },
	{ .name = "emm_unpin", .fn = c_unpin, .hole = -ENOMEM },
	{ .name = "emm_prefault", .fn = c_prefault, .arg = 1, .hole = -ENOMEM },
	{ .name = "emm_unmap", .fn = c_unmap, .hole = 0 },	/* holes are fine for unmap */
};

#define CALL_TESTS 9

static void test_call(const struct call *c)
{
	const char *n = c->name;

	is_int(c->fn(vma, PAGE, c->arg, NULL), -EINVAL, "%s: mm NULL: -EINVAL", n);
	is_int(c->fn(vma, 0, c->arg, mm), -EINVAL, "%s: len 0: -EINVAL", n);
	is_int(c->fn(vma + 8, PAGE, c->arg, mm), -EINVAL, "%s: unaligned addr: -EINVAL", n);
	is_int(c->fn(vma, PAGE + 8, c->arg, mm), -EINVAL, "%s: unaligned len: -EINVAL", n);
	for (int i = 0; i < 2 && c->bad[0]; i++)
		is_int(c->fn(vma, PAGE, c->bad[i], mm), -EINVAL, "%s: unknown value %d: -EINVAL",
		       n, c->bad[i]);
	is_int(c->fn(alien, PAGE, c->arg, mm), -ENOMEM, "%s: outside any reservation: -ENOMEM", n);
	is_int(c->fn(straddle, straddle_len, c->arg, mm), -ENOMEM,
	       "%s: across two reservations: -ENOMEM", n);
	is_int(c->fn(vma + 8 * PAGE, 16 * PAGE, c->arg, mm), c->hole,
	       "%s: a range with a hole: %d", n, c->hole);
	is_int(c->fn(vma + 16 * PAGE, 4 * PAGE, c->arg, mm), c->hole,
	       "%s: a range with no VMA at all: %d", n, c->hole);
	is_int(c->fn(vma, 16 * PAGE, c->arg, mm), 0, "%s: the mapped range: 0", n);
}

/* emm_map with one field of an otherwise valid opts changed. */
static int map_with(void *addr, size_t len, const struct emm_map_opts *o)
{
	int r = emm_map(mm, addr, len, o);

	if (r == 0)
		emm_unmap(mm, addr, len);
	return r;
}

static void test_map_args(void)
{
	char *a = r2;

	is_int(emm_map(NULL, a, PAGE, NULL), -EINVAL, "emm_map: mm NULL: -EINVAL");
	is_int(emm_map(mm, a, 0, NULL), -EINVAL, "emm_map: len 0: -EINVAL");
	is_int(emm_map(mm, a + 1, PAGE, NULL), -EINVAL, "emm_map: unaligned addr: -EINVAL");
	is_int(emm_map(mm, a, PAGE - 1, NULL), -EINVAL, "emm_map: unaligned len: -EINVAL");
	{
		EMM_OPTS(emm_map_opts, o, .prot = 8);
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: prot 8: -EINVAL");
		o.prot = -1;
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: prot -1: -EINVAL");
	}
	{
		EMM_OPTS(emm_map_opts, o, .prot = 3, .policy = EMM_POLICY_GUARD + 1);
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: unknown policy: -EINVAL");
		o.policy = -1;
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: negative policy: -EINVAL");
	}
	{
		EMM_OPTS(emm_map_opts, o, .prot = 3, .flags = 0x8);
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: unknown flag: -EINVAL");
		o.flags = EMM_MAP_HUGEPAGE | EMM_MAP_NOHUGEPAGE;
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: HUGEPAGE with NOHUGEPAGE: -EINVAL");
	}
	{
		EMM_OPTS(emm_map_opts, o, .prot = 3, .numa_policy = EMM_NUMA_INTERLEAVE + 1);
		is_int(map_with(a, PAGE, &o), -EINVAL, "emm_map: unknown numa_policy: -EINVAL");
	}
}

/* A caller built against a newer emm_map_opts than this library knows. */
struct map_opts_newer {
	struct emm_map_opts o;
	unsigned char extra[16];
};

static void test_map_sz(void)
{
	EMM_OPTS(emm_map_opts, o, .prot = 3);
	struct map_opts_newer n;

	o.sz = 0;
	is_int(map_with(r2, PAGE, &o), -EINVAL, "emm_map: opts sz 0: -EINVAL");
	o.sz = 4;
	is_int(map_with(r2, PAGE, &o), -EINVAL, "emm_map: opts sz 4: -EINVAL");
	memset(&n, 0, sizeof(n));
	n.o.sz = sizeof(n);
	n.o.prot = EMM_PROT_READ | EMM_PROT_WRITE;
	is_int(map_with(r2, PAGE, &n.o), 0, "emm_map: bigger opts, zero trailing bytes: 0");
	n.extra[3] = 7;
	is_int(map_with(r2, PAGE, &n.o), -EINVAL, "emm_map: bigger opts, a non-zero trailing byte: -EINVAL");
}

static void test_map_ranges(void)
{
	is_int(emm_map(mm, alien, PAGE, NULL), -ENOMEM, "emm_map: outside any reservation: -ENOMEM");
	is_int(emm_map(mm, r1 + RSV_LEN - 4 * PAGE, 8 * PAGE, NULL), -ENOMEM,
	       "emm_map: past the end of a reservation: -ENOMEM");
	is_int(emm_map(mm, straddle, straddle_len, NULL), -ENOMEM,
	       "emm_map: across two reservations: -ENOMEM");
	is_int(emm_map(mm, vma, 16 * PAGE, NULL), -EEXIST, "emm_map: the same range again: -EEXIST");
	is_int(emm_map(mm, vma + 8 * PAGE, 16 * PAGE, NULL), -EEXIST,
	       "emm_map: overlapping the end of a VMA: -EEXIST");
	is_int(emm_map(mm, vma + 4 * PAGE, PAGE, NULL), -EEXIST, "emm_map: inside a VMA: -EEXIST");
	is_int(emm_map(mm, r1, RSV_LEN, NULL), -EEXIST, "emm_map: around a VMA: -EEXIST");
}

static void test_map_file(void)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ, .policy = EMM_POLICY_FILE, .fd = -1);
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	is_int(map_with(r2, PAGE, &o), -EBADF, "emm_map: FILE with fd -1: -EBADF");
	close(fd);
	o.fd = fd;		/* closed just now */
	is_int(map_with(r2, PAGE, &o), -EBADF, "emm_map: FILE with a closed fd: -EBADF");
}

static void test_stats(void)
{
	struct {
		struct emm_stats st;
		uint64_t canary;
	} s;

	memset(&s, 0, sizeof(s));
	is_int(emm_stats(NULL, &s.st), -EINVAL, "emm_stats: mm NULL: -EINVAL");
	is_int(emm_stats(mm, NULL), -EINVAL, "emm_stats: st NULL: -EINVAL");
	s.st.sz = 0;
	is_int(emm_stats(mm, &s.st), -EINVAL, "emm_stats: sz 0: -EINVAL");
	s.st.sz = sizeof(size_t) - 1;
	is_int(emm_stats(mm, &s.st), -EINVAL, "emm_stats: sz short of the sz field: -EINVAL");
	s.st.sz = offsetof(struct emm_stats, vmas) - 8;
	s.st.kernel_vmas = 0xdead;
	is_int(emm_stats(mm, &s.st), 0, "emm_stats: sz short of kernel_vmas: accepted");
	is_int(s.st.kernel_vmas, 0xdead, "emm_stats: kernel_vmas, past sz, not written");
	s.st.sz = offsetof(struct emm_stats, vmas);
	s.st.vmas = 0xdead;
	is_int(emm_stats(mm, &s.st), 0, "emm_stats: sz of the struct without vmas: 0");
	is_int(s.st.vmas, 0xdead, "emm_stats: nothing written past sz");
	s.st.sz = sizeof(s.st);
	is_int(emm_stats(mm, &s.st), 0, "emm_stats: full struct: 0");
	is_int(s.st.vmas, 1, "emm_stats: one VMA after all the failed calls");
}

static void setup(void)
{
	void *a, *b;
	char *lo, *hi;

	if (emm_open(NULL, &mm) || emm_reserve(mm, RSV_LEN, &a) || emm_reserve(mm, RSV_LEN, &b))
		bail("cannot open and reserve");
	r1 = a;
	r2 = b;
	vma = r1 + 64 * PAGE;
	if (emm_map(mm, vma, 16 * PAGE, NULL))
		bail("cannot map");
	alien = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alien == MAP_FAILED)
		bail("mmap: %s", strerror(errno));
	lo = r1 < r2 ? r1 : r2;
	hi = r1 < r2 ? r2 : r1;
	straddle = lo + RSV_LEN - 4 * PAGE;
	straddle_len = (size_t)(hi - straddle) + 4 * PAGE;
	diag("reservations %p and %p; a range across them is %zu bytes", lo, hi, straddle_len);
}

int main(void)
{
	size_t ncalls = sizeof(calls) / sizeof(calls[0]);

	plan(11 + 4 + 7 + 2 + (int)ncalls * CALL_TESTS + 2 * 2 + 10 + 1);
	setup();
	test_map_args();
	test_map_sz();
	test_map_ranges();
	test_map_file();
	test_stats();
	/* emm_unmap comes last in the table: it removes the VMA. */
	for (size_t i = 0; i < ncalls; i++)
		test_call(&calls[i]);
	is_int(emm_close(mm), 0, "emm_close");
	munmap(alien, 16 * PAGE);
	return done_testing();
}
