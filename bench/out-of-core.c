/* SPDX-License-Identifier: MIT */
/* out-of-core: a region larger than the memory budget, emm's swap against O_DIRECT I/O on a plain file. */
#include "bench.h"

#include <emm.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define DEFAULT_LIMIT	(1ULL << 30)
#define DEFAULT_OPS	65536
#define SEQ_IO		(1UL << 20)	/* request size of the sequential baselines */
#define WORDS		(PAGE_SIZE / sizeof(uint64_t))
#define MIB		(1024.0 * 1024.0)
#define GIB		(MIB * 1024.0)

/* What emm must reach, as a fraction of the device doing the same; 0: no goal. */
#define GOAL_WRITEBACK	0.7
#define GOAL_SEQ_READ	0.7
#define GOAL_RAND_READ	0.9

enum { WRITEBACK, SEQ_READ, RAND_READ, RAND_WRITE, NR_PATTERNS };

static const struct bench_pattern patterns[NR_PATTERNS] = {
	[WRITEBACK] = { "writeback", "seq write 1M", false, GOAL_WRITEBACK },
	[SEQ_READ] = { "seq-read", "seq read 1M", false, GOAL_SEQ_READ },
	[RAND_READ] = { "rand-read", "pread 4K", true, GOAL_RAND_READ },
	[RAND_WRITE] = { "rand-write", "pwrite 4K", true, 0 },
};

/* One pattern, best of the runs; emm's counters are those of its best run. */
struct result {
	double emm, dev;
	double emm_alone;	/* rand-write: the writes without the final writeback */
	double emm_sec;
	struct emm_stats st;	/* growth over the phase */
	uint64_t bad;		/* words that read back wrong, all runs */
};

struct ooc {
	uint64_t size, limit, swap;
	size_t pages, nops;
	unsigned threads;
	const char *dir;	/* where emm puts its swap file, and we the plain file */
	size_t *perm;		/* the first nops entries: random distinct pages */
	int fd;			/* the plain file: O_DIRECT, already unlinked */
	void *buf;		/* SEQ_IO bytes aligned for O_DIRECT */
	struct emm *mm;
	volatile uint64_t *region;
	struct result res[NR_PATTERNS];
};

/* One thread's share of a random pattern. */
struct worker {
	const struct ooc *b;
	size_t from, to;
	bool write, on_emm, started;
	void *page;		/* O_DIRECT buffer for the baseline */
	uint64_t bad;
	int err;
	pthread_t tid;
};

static int complain(const char *what, int64_t err)
{
	fprintf(stderr, "emm-bench: out-of-core: %s: %s\n", what, strerror((int)-err));
	return (int)err;
}

static double mib_rate(uint64_t bytes, uint64_t ns)
{
	return bench_rate(bytes, ns) / MIB;
}

/* The word each page carries: never zero, or emm would drop the page unwritten. */
static uint64_t stamp(size_t page)
{
	return page + 1;
}

/* ---- the plain file ---- */

/* Where emm's default swap file goes; the baseline must use the same device. */
static const char *swap_dir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/var/tmp";
}

/* The plain file and emm's swap file together take up to 2.25 x size. */
static bool disk_ok(const struct ooc *b)
{
	uint64_t need = b->size / 2 * 5, have;
	struct statvfs sv;

	if (statvfs(b->dir, &sv) < 0) {
		complain(b->dir, -errno);
		return false;
	}
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (have >= need)
		return true;
	fprintf(stderr, "emm-bench: out-of-core needs %.1f GiB free in %s (2.5 x --size, for a plain\n"
			"file and emm's swap file) and finds %.1f GiB; try a smaller --size, or point\n"
			"TMPDIR at a roomier file system\n", need / GIB, b->dir, have / GIB);
	return false;
}

/* Unlinked at once, so it goes away however the program ends. */
static int plain_open(const char *dir)
{
	char tmpl[4096];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd < 0 ? -errno : fd;
	if (snprintf(tmpl, sizeof(tmpl), "%s/emm-bench-XXXXXX", dir) >= (int)sizeof(tmpl))
		return -ENAMETOOLONG;
	fd = mkostemp(tmpl, O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

/* Write (from empty, so blocks get allocated as swap slots do) or read it all. */
static int64_t dev_seq(struct ooc *b, bool write)
{
	uint64_t t0;

	if (write && ftruncate(b->fd, 0) < 0)
		return -errno;
	t0 = bench_now_ns();
	for (uint64_t off = 0; off < b->size; off += SEQ_IO) {
		size_t len = b->size - off < SEQ_IO ? b->size - off : SEQ_IO;
		ssize_t n = write ? pwrite(b->fd, b->buf, len, (off_t)off)
				  : pread(b->fd, b->buf, len, (off_t)off);

		if (n != (ssize_t)len)
			return n < 0 ? -errno : -EIO;
	}
	return (int64_t)(bench_now_ns() - t0);
}

/* ---- random patterns, on the plain file or on emm ---- */

static void dev_random(struct worker *w)
{
	for (size_t i = w->from; i < w->to; i++) {
		off_t off = (off_t)(w->b->perm[i] * PAGE_SIZE);
		ssize_t n = w->write ? pwrite(w->b->fd, w->page, PAGE_SIZE, off)
				     : pread(w->b->fd, w->page, PAGE_SIZE, off);

		if (n != (ssize_t)PAGE_SIZE) {
			w->err = n < 0 ? -errno : -EIO;
			return;
		}
	}
}

static void emm_random(struct worker *w)
{
	volatile uint64_t *region = w->b->region;

	for (size_t i = w->from; i < w->to; i++) {
		size_t pg = w->b->perm[i];

		if (w->write)
			region[pg * WORDS] = stamp(pg);
		else
			w->bad += region[pg * WORDS] != stamp(pg);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	if (w->on_emm)
		emm_random(w);
	else
		dev_random(w);
	return NULL;
}

/* Split the ops into equal slices; buffers are made before the clock starts. */
static int worker_setup(struct ooc *b, struct worker *w, bool write, bool on_emm)
{
	for (unsigned t = 0; t < b->threads; t++) {
		w[t] = (struct worker){ .b = b, .write = write, .on_emm = on_emm,
					.from = b->nops * t / b->threads,
					.to = b->nops * (t + 1) / b->threads };
		w[t].page = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
		if (!w[t].page)
			return -ENOMEM;
		memset(w[t].page, 0x5a, PAGE_SIZE);
	}
	return 0;
}

/* Worker 0 runs on this thread; one a thread cannot be made for runs here too. */
static uint64_t worker_run(struct worker *w, unsigned n)
{
	uint64_t t0 = bench_now_ns();

	for (unsigned t = 1; t < n; t++)
		w[t].started = pthread_create(&w[t].tid, NULL, worker_main, &w[t]) == 0;
	worker_main(&w[0]);
	for (unsigned t = 1; t < n; t++) {
		if (w[t].started)
			pthread_join(w[t].tid, NULL);
		else
			worker_main(&w[t]);
	}
	return bench_now_ns() - t0;
}

/* Nanoseconds for the b->nops accesses, or -errno; wrong words add to *bad. */
static int64_t run_random(struct ooc *b, bool write, bool on_emm, uint64_t *bad)
{
	struct worker *w = calloc(b->threads, sizeof(*w));
	int64_t ns;
	int err;

	if (!w)
		return -ENOMEM;
	err = worker_setup(b, w, write, on_emm);
	ns = err < 0 ? err : (int64_t)worker_run(w, b->threads);
	for (unsigned t = 0; t < b->threads; t++) {
		if (w[t].err < 0 && ns >= 0)
			ns = w[t].err;
		*bad += w[t].bad;
		free(w[t].page);
	}
	free(w);
	return ns;
}

/* ---- emm ---- */

/* Swap for the whole region and a slack for partly used clusters. */
static int emm_setup(struct ooc *b)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = b->limit, .swap_size = b->swap);
	void *p;
	int err = emm_open(&eo, &b->mm);

	if (err < 0)
		return err;
	err = emm_reserve(b->mm, b->size, &p);
	if (err == 0)
		err = emm_map(b->mm, p, b->size, NULL);
	if (err < 0) {
		emm_close(b->mm);
		return err;
	}
	b->region = p;
	return 0;
}

static uint64_t emm_fill(struct ooc *b)
{
	uint64_t t0 = bench_now_ns();

	for (size_t pg = 0; pg < b->pages; pg++)
		b->region[pg * WORDS] = stamp(pg);
	return bench_now_ns() - t0;
}

static uint64_t emm_seq_read(struct ooc *b, uint64_t *bad)
{
	uint64_t t0 = bench_now_ns();

	for (size_t pg = 0; pg < b->pages; pg++)
		*bad += b->region[pg * WORDS] != stamp(pg);
	return bench_now_ns() - t0;
}


static struct emm_stats stats_delta(const struct emm_stats *a, const struct emm_stats *b)
{
	struct emm_stats d;

	bench_stats_delta(a, b, &d);
	return d;
}

/* Keep the better rate of each side; emm's counters go with its rate. */
static void record(struct result *r, double dev, double emm, uint64_t emm_ns,
		   const struct emm_stats *d, uint64_t bad)
{
	if (dev > r->dev)
		r->dev = dev;
	if (emm >= r->emm) {
		r->emm = emm;
		r->emm_sec = emm_ns / 1e9;
		r->st = *d;
	}
	r->bad += bad;
}

/* ---- the phases: the device first, then emm doing the same ---- */

/* The fill is emm's eviction writeback: bytes it wrote to swap over the fill time. */
static int writeback_phase(struct ooc *b)
{
	int64_t dev = dev_seq(b, true);
	struct emm_stats s0, s1, d;
	uint64_t ns;

	if (dev < 0)
		return complain("sequential write of the plain file", dev);
	fdatasync(b->fd);
	bench_stats(b->mm, &s0);
	ns = emm_fill(b);
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	record(&b->res[WRITEBACK], mib_rate(b->size, (uint64_t)dev),
	       mib_rate(d.swapouts * PAGE_SIZE, ns), ns, &d, 0);
	return 0;
}

static int seq_read_phase(struct ooc *b)
{
	int64_t dev = dev_seq(b, false);
	struct emm_stats s0, s1, d;
	uint64_t ns, bad = 0;

	if (dev < 0)
		return complain("sequential read of the plain file", dev);
	bench_stats(b->mm, &s0);
	ns = emm_seq_read(b, &bad);
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	record(&b->res[SEQ_READ], mib_rate(b->size, (uint64_t)dev),
	       mib_rate(b->size, ns), ns, &d, bad);
	return 0;
}

/*
 * emm starts cold, as the O_DIRECT baseline has no cache: the region is paged
 * out first (untimed). A write counts once its page is on the device, as
 * pwrite with O_DIRECT does: the timed part ends with a pageout of the region.
 */
static int rand_phase(struct ooc *b, int pat)
{
	bool write = pat == RAND_WRITE;
	int64_t dev = run_random(b, write, false, &(uint64_t){ 0 }), ns;
	struct emm_stats s0, s1, d;
	uint64_t bad = 0, t0, flush = 0;
	int err;

	if (dev < 0)
		return complain(write ? "pwrite" : "pread", dev);
	err = emm_advise(b->mm, (void *)b->region, b->size, EMM_ADV_PAGEOUT);
	if (err < 0)
		return complain("emm_advise(EMM_ADV_PAGEOUT)", err);
	bench_stats(b->mm, &s0);
	ns = run_random(b, write, true, &bad);
	if (ns < 0)
		return complain("emm threads", ns);
	t0 = bench_now_ns();
	if (write && (err = emm_advise(b->mm, (void *)b->region, b->size, EMM_ADV_PAGEOUT)) < 0)
		return complain("emm_advise(EMM_ADV_PAGEOUT)", err);
	flush = bench_now_ns() - t0;
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	if (bench_rate(b->nops, (uint64_t)ns) > b->res[pat].emm_alone)
		b->res[pat].emm_alone = bench_rate(b->nops, (uint64_t)ns);
	record(&b->res[pat], bench_rate(b->nops, (uint64_t)dev),
	       bench_rate(b->nops, (uint64_t)ns + flush), (uint64_t)ns + flush, &d, bad);
	return 0;
}

/* A fresh instance per run, so every run starts from an empty region. */
static int run_once(struct ooc *b)
{
	int err = emm_setup(b);

	if (err < 0)
		return complain("emm", err);
	err = writeback_phase(b);
	if (err == 0)
		err = seq_read_phase(b);
	if (err == 0)
		err = rand_phase(b, RAND_READ);
	if (err == 0)
		err = rand_phase(b, RAND_WRITE);
	emm_close(b->mm);
	return err;
}

/* ---- set-up and report ---- */

static int prepare(struct ooc *b)
{
	b->perm = malloc(b->pages * sizeof(*b->perm));
	b->buf = aligned_alloc(PAGE_SIZE, SEQ_IO);
	if (!b->perm || !b->buf)
		return complain("memory for the benchmark", -ENOMEM);
	bench_shuffle(b->perm, b->pages, 0x6f6f63);
	memset(b->buf, 0x5a, SEQ_IO);
	b->fd = plain_open(b->dir);
	if (b->fd < 0) {
		fprintf(stderr, "emm-bench: out-of-core: a plain file with O_DIRECT in %s: %s\n",
			b->dir, strerror(-b->fd));
		return b->fd;
	}
	return 0;
}

static void header(const struct ooc *b, unsigned runs)
{
	printf("out-of-core: region %.0f MiB under a %.0f MiB budget, swap %.0f MiB in %s;\n"
	       "  %zu random pages, %u thread(s), best of %u run(s); one word per page;\n"
	       "  baselines: O_DIRECT on a plain file in the same directory; random patterns\n"
	       "  start with the region paged out, rand-write includes writing it back\n",
	       b->size / MIB, b->limit / MIB, b->swap / MIB, b->dir, b->nops, b->threads, runs);
	if (b->limit >= b->size)
		printf("  note: the budget holds the whole region, so little goes to swap\n");
}

static double report(const struct ooc *b, int pat)
{
	const struct bench_pattern *p = &patterns[pat];
	const struct result *r = &b->res[pat];
	const char *unit = p->random ? "ops/s" : "MiB/s";
	double ratio = r->dev > 0 ? r->emm / r->dev : 0;

	bench_record(p->name, r->emm, unit);
	printf("%-10s  emm %8.0f %s  device (%s) %8.0f %s  emm/device %5.2f"
	       "  (emm %.1f s; faults_major %llu swapins %llu swapouts %llu io_errors %llu",
	       p->name, r->emm, unit, p->device, r->dev, unit, ratio, r->emm_sec,
	       (unsigned long long)r->st.faults_major, (unsigned long long)r->st.swapins,
	       (unsigned long long)r->st.swapouts, (unsigned long long)r->st.io_errors);
	if (pat == RAND_WRITE)
		printf("; writes alone %.0f ops/s", r->emm_alone);
	if (r->bad)
		printf("; %llu WRONG words", (unsigned long long)r->bad);
	printf(")\n");
	bench_data_pattern("out-of-core", p, "emm", r->emm);
	bench_data_pattern("out-of-core", p, "device", r->dev);
	return ratio;
}

static void goals(const struct ooc *b, const double *ratio)
{
	for (int i = 0; i < NR_PATTERNS; i++) {
		const struct bench_pattern *p = &patterns[i];

		if (p->goal > 0)
			printf("goal: %-10s emm >= %.1fx device %-12s: %s (%.2fx)\n", p->name,
			       p->goal, p->device, ratio[i] >= p->goal ? "met" : "NOT met", ratio[i]);
	}
}

int bench_out_of_core(const struct bench_opts *o)
{
	struct ooc b = { .size = o->size, .limit = o->limit ? o->limit : DEFAULT_LIMIT,
			 .pages = o->size / PAGE_SIZE, .dir = swap_dir(), .fd = -1 };
	double ratio[NR_PATTERNS];
	int err = 0;

	b.nops = o->ops && o->ops < b.pages ? o->ops : b.pages;
	if (!o->ops && b.pages > DEFAULT_OPS)
		b.nops = DEFAULT_OPS;
	b.threads = o->threads ? o->threads : 1;
	if (b.threads > b.nops)
		b.threads = (unsigned)b.nops;
	b.swap = b.size + b.size / 4;
	if (!disk_ok(&b) || prepare(&b) < 0) {
		err = -1;
		goto out;
	}
	header(&b, o->runs);
	for (unsigned r = 0; r < o->runs && err == 0; r++)
		err = run_once(&b);
	if (err == 0) {
		for (int i = 0; i < NR_PATTERNS; i++)
			ratio[i] = report(&b, i);
		goals(&b, ratio);
	}
out:
	if (b.fd >= 0)
		close(b.fd);
	free(b.buf);
	free(b.perm);
	return err ? 1 : 0;
}
