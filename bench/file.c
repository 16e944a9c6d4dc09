/* SPDX-License-Identifier: MIT */
/* file: reads of a file larger than the budget, emm FILE VMA against O_DIRECT pread and mmap. */
#include "bench.h"
#include "machine.h"

#include <emm.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define DEFAULT_LIMIT	(512ULL << 20)
#define DEFAULT_OPS	32768
#define SEQ_IO		(1UL << 20)	/* request size of the sequential baseline */
#define WORDS		(PAGE_SIZE / sizeof(uint64_t))
#define MIB		(1024.0 * 1024.0)
#define GIB		(MIB * 1024.0)

/* What emm must reach: in order, against pread with O_DIRECT 1M; at
 * random, against emm's own anonymous memory paged out to its swap. */
#define GOAL_SEQ	0.8		/* of the device's sequential bandwidth */
#define GOAL_RAND	0.9		/* of an anonymous VMA's random swap-ins */

enum { SEQ, RAND, NR_PATTERNS };

static const struct bench_pattern patterns[NR_PATTERNS] = {
	[SEQ] = { "seq-read", "pread 1M", false, GOAL_SEQ },
	[RAND] = { "rand-read", "pread 4K", true, GOAL_RAND },
};

/* One pattern, best of the runs; emm's counters are those of its best run. */
struct result {
	double emm, dev, kernel;
	double anon;		/* rand-read: an anonymous VMA of emm, paged out */
	double huge;		/* seq-read: the FILE VMA mapped with EMM_MAP_HUGEPAGE */
	double emm_sec;
	uint64_t faults_major, pgsteal;
	uint64_t kernel_vmas;	/* emm's app view after the reads, in kernel VMAs */
	uint64_t cached;	/* bytes of the file in the page cache after emm's run */
	uint64_t bad;		/* words that read back wrong, all runs, emm and mmap */
};

struct fb {
	uint64_t size, limit;
	size_t pages, nops;
	const char *dir;
	size_t *perm;		/* the first nops entries: random distinct pages */
	int fd;			/* buffered: emm's FILE VMA and the kernel's mmap */
	int dfd;		/* the same file with O_DIRECT: the baseline */
	void *buf;		/* SEQ_IO bytes aligned for O_DIRECT */
	struct result res[NR_PATTERNS];
};

static int complain(const char *what, int64_t err)
{
	fprintf(stderr, "emm-bench: file: %s: %s\n", what, strerror((int)-err));
	return (int)err;
}

/* The word each page of the file starts with. */
static uint64_t stamp(size_t page)
{
	return page + 1;
}

static double mib_rate(uint64_t bytes, uint64_t ns)
{
	return bench_rate(bytes, ns) / MIB;
}

/* ---- the file ---- */

/* The file, plus emm's swap file (sparse, and FILE pages never use it). */
static bool disk_ok(const struct fb *b)
{
	uint64_t need = b->size + b->size / 8 + (256ULL << 20), have;
	struct statvfs sv;

	if (statvfs(b->dir, &sv) < 0) {
		complain(b->dir, -errno);
		return false;
	}
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (have >= need)
		return true;
	fprintf(stderr, "emm-bench: file needs %.1f GiB free in %s and finds %.1f GiB; try a\n"
			"smaller --size, or point TMPDIR at a roomier file system\n",
		need / GIB, b->dir, have / GIB);
	return false;
}

/*
 * Two open file descriptions of one file, unlinked at once: a buffered one
 * (emm dups it, so it must not share O_DIRECT) and an O_DIRECT one.
 */
static int files_open(struct fb *b)
{
	char path[4096];
	int fd = open(b->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		b->fd = fd;
		b->dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
		return b->dfd < 0 ? -errno : 0;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR)
		return -errno;
	if (snprintf(path, sizeof(path), "%s/emm-bench-XXXXXX", b->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	b->fd = mkostemp(path, O_CLOEXEC);
	if (b->fd < 0)
		return -errno;
	b->dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	unlink(path);
	return b->dfd < 0 ? -errno : 0;
}

/* Write the file with O_DIRECT (nothing of it cached): every page stamped. */
static int64_t file_fill(struct fb *b)
{
	uint64_t *w = b->buf, t0 = bench_now_ns();

	memset(b->buf, 0x5a, SEQ_IO);
	for (uint64_t off = 0; off < b->size; off += SEQ_IO) {
		size_t len = b->size - off < SEQ_IO ? b->size - off : SEQ_IO;

		for (size_t i = 0; i < len / PAGE_SIZE; i++)
			w[i * WORDS] = stamp(off / PAGE_SIZE + i);
		ssize_t n = pwrite(b->dfd, b->buf, len, (off_t)off);

		if (n != (ssize_t)len)
			return n < 0 ? -errno : -EIO;
	}
	if (fdatasync(b->dfd) < 0)
		return -errno;
	return (int64_t)(bench_now_ns() - t0);
}

/* Every run starts cold: nothing of the file in the page cache. */
static void drop_cache(const struct fb *b)
{
	fdatasync(b->fd);
	posix_fadvise(b->fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Bytes of the file the page cache holds now (mincore of a mapping never touched). */
static uint64_t cached_bytes(const struct fb *b)
{
	unsigned char *vec = malloc(b->pages);
	void *p = mmap(NULL, b->size, PROT_READ, MAP_SHARED, b->fd, 0);
	uint64_t n = 0;

	if (vec && p != MAP_FAILED && mincore(p, b->size, vec) == 0)
		for (size_t i = 0; i < b->pages; i++)
			n += vec[i] & 1;
	if (p != MAP_FAILED)
		munmap(p, b->size);
	free(vec);
	return n * PAGE_SIZE;
}

/* ---- the three readers ---- */

static int64_t dev_read(struct fb *b, int pat)
{
	uint64_t t0;

	bench_settle();
	t0 = bench_now_ns();

	if (pat == RAND) {
		for (size_t i = 0; i < b->nops; i++) {
			ssize_t n = pread(b->dfd, b->buf, PAGE_SIZE, (off_t)(b->perm[i] * PAGE_SIZE));

			if (n != (ssize_t)PAGE_SIZE)
				return n < 0 ? -errno : -EIO;
		}
		return (int64_t)(bench_now_ns() - t0);
	}
	for (uint64_t off = 0; off < b->size; off += SEQ_IO) {
		size_t len = b->size - off < SEQ_IO ? b->size - off : SEQ_IO;
		ssize_t n = pread(b->dfd, b->buf, len, (off_t)off);

		if (n != (ssize_t)len)
			return n < 0 ? -errno : -EIO;
	}
	return (int64_t)(bench_now_ns() - t0);
}

/* One word of each page, in the pattern's order; wrong words add to *bad. */
static uint64_t mem_read(const struct fb *b, volatile const uint64_t *p, int pat, uint64_t *bad)
{
	uint64_t t0 = bench_now_ns();

	if (pat == RAND) {
		for (size_t i = 0; i < b->nops; i++)
			*bad += p[b->perm[i] * WORDS] != stamp(b->perm[i]);
	} else {
		for (size_t pg = 0; pg < b->pages; pg++)
			*bad += p[pg * WORDS] != stamp(pg);
	}
	return bench_now_ns() - t0;
}


/* A fresh instance with the budget, a VMA of the file's size made by mo
 * in *pp. On failure, no instance. */
static int open_mapped(const struct fb *b, const struct emm_map_opts *mo, struct emm **mmp,
		       void **pp)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = b->limit);
	int err = emm_open(&eo, mmp);

	if (err < 0)
		return err;
	err = emm_reserve(*mmp, b->size, pp);
	if (err == 0)
		err = emm_map(*mmp, *pp, b->size, mo);
	if (err < 0)
		emm_close(*mmp);
	return err;
}

/*
 * A fresh instance with the budget: the whole file mapped read-only; or
 * (anon) an anonymous VMA of the file's size, every page written with its
 * stamp and then paged out to emm's swap file, what a FILE VMA's random
 * reads are held against. Read in the pattern's order.
 */
static int64_t emm_read(struct fb *b, int pat, bool anon, unsigned flags, struct emm_stats *d,
			uint64_t *bad)
{
	EMM_OPTS(emm_map_opts, mo, .prot = anon ? EMM_PROT_READ | EMM_PROT_WRITE : EMM_PROT_READ,
		 .policy = anon ? EMM_POLICY_ANON : EMM_POLICY_FILE, .fd = anon ? 0 : b->fd,
		 .flags = flags);
	struct emm_stats s0, s1;
	struct emm *mm;
	uint64_t ns = 0;
	void *p;
	int err = open_mapped(b, &mo, &mm, &p);

	if (err < 0)
		return err;
	if (anon) {
		for (size_t pg = 0; pg < b->pages; pg++)
			((uint64_t *)p)[pg * WORDS] = stamp(pg);
		err = emm_advise(mm, p, b->size, EMM_ADV_PAGEOUT);
	} else if (pat == RAND)
		err = emm_advise(mm, p, b->size, EMM_ADV_RANDOM);
	if (err == 0) {
		bench_settle();
		bench_stats(mm, &s0);
		ns = mem_read(b, p, pat, bad);
		bench_stats(mm, &s1);
		d->faults_major = s1.faults_major - s0.faults_major;
		d->pgsteal = s1.pgsteal - s0.pgsteal;
		d->kernel_vmas = s1.kernel_vmas;
	}
	emm_close(mm);
	return err < 0 ? err : (int64_t)ns;
}

/* The kernel's own mapping of the file: no budget, its page cache. */
static int64_t kernel_read(struct fb *b, int pat, uint64_t *bad)
{
	void *p = mmap(NULL, b->size, PROT_READ, MAP_SHARED, b->fd, 0);
	uint64_t ns;

	if (p == MAP_FAILED)
		return -errno;
	if (pat == RAND)
		madvise(p, b->size, MADV_RANDOM);
	bench_settle();
	ns = mem_read(b, p, pat, bad);
	munmap(p, b->size);
	return (int64_t)ns;
}

/* The baseline, then emm, then the kernel, each from a cold cache. */
static int run_pattern(struct fb *b, int pat)
{
	const struct bench_pattern *p = &patterns[pat];
	struct result *r = &b->res[pat];
	uint64_t bytes = pat == RAND ? b->nops : b->size;
	struct emm_stats d = { 0 };
	int64_t dev, emm, kern;
	double rate;

	dev = dev_read(b, pat);
	if (dev < 0)
		return complain("pread with O_DIRECT", dev);
	drop_cache(b);
	emm = emm_read(b, pat, false, 0, &d, &r->bad);
	if (emm < 0)
		return complain("emm", emm);
	rate = p->random ? bench_rate(bytes, (uint64_t)emm) : mib_rate(bytes, (uint64_t)emm);
	if (rate >= r->emm) {
		r->emm = rate;
		r->emm_sec = emm / 1e9;
		r->faults_major = d.faults_major;
		r->pgsteal = d.pgsteal;
		r->kernel_vmas = d.kernel_vmas;
		r->cached = cached_bytes(b);
	}
	if (pat == RAND) {
		int64_t anon = emm_read(b, RAND, true, 0, &(struct emm_stats){ 0 }, &r->bad);

		if (anon < 0)
			return complain("emm, an anonymous VMA", anon);
		rate = bench_rate(bytes, (uint64_t)anon);
		r->anon = rate > r->anon ? rate : r->anon;
	} else {
		int64_t huge;

		drop_cache(b);
		huge = emm_read(b, SEQ, false, EMM_MAP_HUGEPAGE, &(struct emm_stats){ 0 }, &r->bad);
		if (huge < 0)
			return complain("emm, EMM_MAP_HUGEPAGE", huge);
		rate = mib_rate(bytes, (uint64_t)huge);
		r->huge = rate > r->huge ? rate : r->huge;
	}
	drop_cache(b);
	kern = kernel_read(b, pat, &r->bad);
	if (kern < 0)
		return complain("mmap", kern);
	drop_cache(b);
	rate = p->random ? bench_rate(bytes, (uint64_t)dev) : mib_rate(bytes, (uint64_t)dev);
	r->dev = rate > r->dev ? rate : r->dev;
	rate = p->random ? bench_rate(bytes, (uint64_t)kern) : mib_rate(bytes, (uint64_t)kern);
	r->kernel = rate > r->kernel ? rate : r->kernel;
	return 0;
}

/* ---- report ---- */

static void report(const struct fb *b, int pat)
{
	const struct bench_pattern *p = &patterns[pat];
	const struct result *r = &b->res[pat];
	const char *unit = p->random ? "reads/s" : "MiB/s";

	bench_record(p->name, r->emm, unit);
	printf("%-9s  emm %8.0f %s  device (%s) %8.0f %s  kernel mmap %8.0f %s\n"
	       "           emm/device %5.2f  emm/kernel-mmap %5.2f"
	       "  (emm %.2f s; faults_major %llu pgsteal %llu kernel_vmas %llu;"
	       " page cache after emm %.0f MiB",
	       p->name, r->emm, unit, p->device, r->dev, unit, r->kernel, unit,
	       r->dev > 0 ? r->emm / r->dev : 0, r->kernel > 0 ? r->emm / r->kernel : 0,
	       r->emm_sec, (unsigned long long)r->faults_major, (unsigned long long)r->pgsteal,
	       (unsigned long long)r->kernel_vmas, r->cached / MIB);
	if (r->bad)
		printf("; %llu WRONG words", (unsigned long long)r->bad);
	printf(")\n");
	if (p->random) {
		printf("           emm anonymous VMA %8.0f %s  emm file/anonymous %5.2f\n",
		       r->anon, unit, r->anon > 0 ? r->emm / r->anon : 0);
		bench_data_pattern("file", p, "emm-anonymous", r->anon);
	} else {
		printf("           emm EMM_MAP_HUGEPAGE %7.0f %s  emm/device %5.2f  (huge readahead\n"
		       "           windows on signal: emm-thp(7))\n", r->huge, unit,
		       r->dev > 0 ? r->huge / r->dev : 0);
		bench_data_pattern("file", p, "emm-hugepage", r->huge);
		/* The table across backends shows which of them reads huge. */
		bench_record("seq-huge", r->huge, unit);
	}
	bench_data_pattern("file", p, "emm", r->emm);
	bench_data_pattern("file", p, "device", r->dev);
	bench_data_pattern("file", p, "kernel-mmap", r->kernel);
}

static void goals(const struct fb *b)
{
	const struct result *s = &b->res[SEQ], *r = &b->res[RAND];
	double seq = s->dev > 0 ? s->emm / s->dev : 0, rnd = r->anon > 0 ? r->emm / r->anon : 0;
	double huge = s->dev > 0 ? s->huge / s->dev : 0;

	printf("goal: rand-read emm file >= %.1fx emm anonymous: %s (%.2fx)\n",
	       GOAL_RAND, rnd >= GOAL_RAND ? "met" : "NOT met", rnd);
	printf("goal: seq-read  emm >= %.1fx device bandwidth (pread 1M): %s (%.2fx)\n",
	       GOAL_SEQ, seq >= GOAL_SEQ ? "met" : "NOT met", seq);
	printf("goal: seq-read  emm with EMM_MAP_HUGEPAGE >= %.1fx device: %s (%.2fx)\n",
	       GOAL_SEQ, huge >= GOAL_SEQ ? "met" : "NOT met", huge);
}

/*
 * The ceiling the machine puts on a stream mapped 4 KiB at a time: each
 * page's first access after it was mapped costs what bench_map_cost
 * measures (a hypervisor's shadow page tables make it microseconds), on
 * emm and on the kernel's mmap alike, whoever reads the data; one 2 MiB
 * PMD costs that once for 512 pages.
 */
static void bounds(const struct fb *b)
{
	double ro = bench_map_cost(false, false), hro = bench_map_cost(false, true);
	double dev = b->res[SEQ].dev, ceil = ro > 0 ? 1e9 / ro * PAGE_SIZE / MIB : 0;

	if (ro <= 0 || dev <= 0)
		return;
	printf("bound: a page newly mapped costs %.2f us at its first access here read-only\n"
	       "  (the median of three runs; the kernel's mmap pays it too): a thread reading\n"
	       "  each page of a stream mapped 4 KiB at a time runs at most %.0f MiB/s, %.2fx\n"
	       "  the device's pread 1M\n", ro / 1000, ceil, ceil / dev);
	printf("data: mode=file pattern=map-cost-ro subject=machine value=%.0f unit=ns\n", ro);
	if (hro <= 0)
		return;
	printf("  mapped by a 2 MiB PMD (one huge page), %.3f us a page\n", hro / 1000);
	printf("data: mode=file pattern=map-cost-huge-ro subject=machine value=%.0f unit=ns\n",
	       hro);
	bench_huge_bound("file", dev);
}

static void header(const struct fb *b, unsigned runs, double fill_mib)
{
	printf("file: %.0f MiB file in %s, emm budget %.0f MiB, best of %u run(s); one word per page\n"
	       "  seq-read: every page in order; rand-read: %zu distinct random pages\n"
	       "  emm: a read-only EMM_POLICY_FILE VMA, EMM_ADV_RANDOM on it for rand-read;\n"
	       "  seq-read again with EMM_MAP_HUGEPAGE\n"
	       "  kernel mmap: MAP_SHARED, no budget, MADV_RANDOM for rand-read\n"
	       "  emm anonymous VMA (rand-read): the file's size under the same budget,\n"
	       "  written, paged out (EMM_ADV_PAGEOUT), read in the same order\n"
	       "  each reader starts with the file out of the page cache (fdatasync,\n"
	       "  POSIX_FADV_DONTNEED), and its clock 3 s after the memory freed before\n"
	       "  it (the run before, its own setup)\n"
	       "  writing the file with O_DIRECT 1M: %.0f MiB/s\n",
	       b->size / MIB, b->dir, b->limit / MIB, runs, b->nops, fill_mib);
	if (b->limit >= b->size)
		printf("  note: the budget holds the whole file\n");
}

int bench_file(const struct bench_opts *o)
{
	struct fb b = { .size = o->size, .limit = o->limit ? o->limit : DEFAULT_LIMIT,
			.pages = o->size / PAGE_SIZE, .dir = bench_tmpdir(), .fd = -1, .dfd = -1 };
	int64_t fill;
	int err = -1;

	b.nops = o->ops ? o->ops : DEFAULT_OPS;
	if (b.nops > b.pages)
		b.nops = b.pages;
	if (!disk_ok(&b))
		return 1;
	b.perm = malloc(b.pages * sizeof(*b.perm));
	b.buf = aligned_alloc(PAGE_SIZE, SEQ_IO);
	if (!b.perm || !b.buf) {
		complain("memory for the benchmark", -ENOMEM);
		goto out;
	}
	bench_shuffle(b.perm, b.pages, 0x66696c65);
	err = files_open(&b);
	if (err < 0) {
		complain(b.dir, err);
		goto out;
	}
	fill = file_fill(&b);
	if (fill < 0) {
		err = complain("writing the file", fill);
		goto out;
	}
	header(&b, o->runs, mib_rate(b.size, (uint64_t)fill));
	for (unsigned r = 0; r < o->runs && err == 0; r++)
		for (int pat = 0; pat < NR_PATTERNS && err == 0; pat++)
			err = run_pattern(&b, pat);
	if (err == 0) {
		for (int pat = 0; pat < NR_PATTERNS; pat++)
			report(&b, pat);
		goals(&b);
		bounds(&b);
	}
out:
	if (b.dfd >= 0)
		close(b.dfd);
	if (b.fd >= 0) {
		/* The blocks go with the last descriptor; drop the cache first. */
		posix_fadvise(b.fd, 0, 0, POSIX_FADV_DONTNEED);
		close(b.fd);
	}
	free(b.buf);
	free(b.perm);
	return err ? 1 : 0;
}
