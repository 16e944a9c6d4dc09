/* SPDX-License-Identifier: MIT */
/* out-of-core: a region larger than the memory budget, emm's swap against the kernel's swap and O_DIRECT I/O. */
#include "bench.h"
#include "kswap.h"
#include "machine.h"

#include <emm.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
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
	double emm_sec, emm_cpu;	/* wall and CPU seconds of emm's best run */
	struct emm_stats st;	/* growth over the phase */
	uint64_t bad;		/* words that read back wrong, all runs */
};

/* The kernel's swap on one pattern: best of the runs, as the child saw it. */
struct kresult {
	double rate, sec, cpu;
	uint64_t majflt, bad;
};

struct ooc {
	uint64_t size, limit, swap;
	size_t pages, nops;
	unsigned threads;
	bool hugepage;		/* emm's region mapped with EMM_MAP_HUGEPAGE */
	const char *dir;	/* where emm puts its swap file, and we the plain file */
	size_t *perm;		/* the first nops entries: random distinct pages */
	int fd;			/* the plain file: O_DIRECT, already unlinked */
	void *buf;		/* SEQ_IO bytes aligned for O_DIRECT */
	struct emm *mm;
	volatile uint64_t *region;
	struct result res[NR_PATTERNS];
	struct bench_kswap *ks;	/* the kernel's swap, when measured in this pass */
};

/*
 * The kernel's swap does not depend on emm's backend: it is measured in the
 * first pass (of the backends run side by side) and shown again in the others.
 */
static struct {
	bool measured;
	char why[256];		/* why it was not, else "" */
	struct kresult res[NR_PATTERNS];
} kernel;

/* One thread's share of a random pattern. */
struct worker {
	const struct ooc *b;
	size_t from, to;
	bool write, on_memory, started;
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

/* The plain file and emm's swap file together take up to 2.25 x size; the
 * kernel's swap file 1.25 x more. */
static bool disk_ok(const struct ooc *b, bool kernel_too)
{
	uint64_t need = b->size / 2 * (kernel_too ? 8 : 5), have;
	struct statvfs sv;

	if (statvfs(b->dir, &sv) < 0) {
		complain(b->dir, -errno);
		return false;
	}
	have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (have >= need)
		return true;
	fprintf(stderr, "emm-bench: out-of-core needs %.1f GiB free in %s (%s x --size, for a plain\n"
			"file and the swap files) and finds %.1f GiB; try a smaller --size, or point\n"
			"TMPDIR at a roomier file system\n", need / GIB, b->dir,
		kernel_too ? "4" : "2.5", have / GIB);
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
	bench_settle();
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

/* On emm, or on the kernel's anonymous memory: the same loads and stores. */
static void mem_random(struct worker *w)
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

	if (w->on_memory)
		mem_random(w);
	else
		dev_random(w);
	return NULL;
}

/* Split the ops into equal slices; buffers are made before the clock starts. */
static int worker_setup(struct ooc *b, struct worker *w, bool write, bool on_memory)
{
	for (unsigned t = 0; t < b->threads; t++) {
		w[t] = (struct worker){ .b = b, .write = write, .on_memory = on_memory,
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

/*
 * Untimed, on emm and on the kernel's swap alike, after the region was
 * paged out: the budget filled again with pages read in random order, none
 * of them among the pattern's (perm's entries past nops; clean, so they go
 * again with no write). The random pattern then runs out of core as a
 * program does once its memory is full: each page it brings in pushes out
 * one of those, scattered as its own are, rather than going into an empty
 * budget where nothing is evicted (its 65,536 pages fit in 1 GiB).
 */
static void fill_budget(struct ooc *b)
{
	volatile uint64_t *region = b->region;
	size_t n = b->limit / PAGE_SIZE;
	uint64_t sum = 0;

	for (size_t i = b->nops; i < b->pages && i < b->nops + n; i++)
		sum += region[b->perm[i] * WORDS];
	(void)sum;
}

/* Nanoseconds for the b->nops accesses, or -errno; wrong words add to *bad. */
static int64_t run_random(struct ooc *b, bool write, bool on_memory, uint64_t *bad)
{
	struct worker *w = calloc(b->threads, sizeof(*w));
	int64_t ns;
	int err;

	if (!w)
		return -ENOMEM;
	err = worker_setup(b, w, write, on_memory);
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
	EMM_OPTS(emm_map_opts, mo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .flags = b->hugepage ? EMM_MAP_HUGEPAGE : 0);
	void *p;
	int err = emm_open(&eo, &b->mm);

	if (err < 0)
		return err;
	err = emm_reserve(b->mm, b->size, &p);
	if (err == 0)
		err = emm_map(b->mm, p, b->size, &mo);
	if (err < 0) {
		emm_close(b->mm);
		return err;
	}
	b->region = p;
	return 0;
}

static uint64_t mem_fill(struct ooc *b)
{
	uint64_t t0 = bench_now_ns();

	for (size_t pg = 0; pg < b->pages; pg++)
		b->region[pg * WORDS] = stamp(pg);
	return bench_now_ns() - t0;
}

static uint64_t mem_seq_read(struct ooc *b, uint64_t *bad)
{
	uint64_t t0 = bench_now_ns();

	for (size_t pg = 0; pg < b->pages; pg++)
		*bad += b->region[pg * WORDS] != stamp(pg);
	return bench_now_ns() - t0;
}

/* CPU time of this process, all its threads (emm's own included), and its major faults. */
static uint64_t cpu_ns(uint64_t *majflt)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	if (majflt)
		*majflt = (uint64_t)ru.ru_majflt;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static struct emm_stats stats_delta(const struct emm_stats *a, const struct emm_stats *b)
{
	struct emm_stats d;

	bench_stats_delta(a, b, &d);
	return d;
}

/* Keep the better rate of each side; emm's counters go with its rate. */
static void record(struct result *r, double dev, double emm, uint64_t emm_ns, uint64_t cpu,
		   const struct emm_stats *d, uint64_t bad)
{
	if (dev > r->dev)
		r->dev = dev;
	if (emm >= r->emm) {
		r->emm = emm;
		r->emm_sec = emm_ns / 1e9;
		r->emm_cpu = cpu / 1e9;
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
	uint64_t ns, cpu;

	if (dev < 0)
		return complain("sequential write of the plain file", dev);
	fdatasync(b->fd);
	bench_settle();
	bench_stats(b->mm, &s0);
	cpu = cpu_ns(NULL);
	ns = mem_fill(b);
	cpu = cpu_ns(NULL) - cpu;
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	record(&b->res[WRITEBACK], mib_rate(b->size, (uint64_t)dev),
	       mib_rate(d.swapouts * PAGE_SIZE, ns), ns, cpu, &d, 0);
	return 0;
}

/*
 * Starts paged out (untimed), as the random patterns do: otherwise the
 * read would also write back the fill's last budget of dirty pages (1 GiB
 * written in a 4 GiB read), which the device's read does not do.
 */
static int seq_read_phase(struct ooc *b)
{
	int64_t dev = dev_seq(b, false);
	struct emm_stats s0, s1, d;
	uint64_t ns, bad = 0, cpu;
	int err;

	if (dev < 0)
		return complain("sequential read of the plain file", dev);
	err = emm_advise(b->mm, (void *)b->region, b->size, EMM_ADV_PAGEOUT);
	if (err < 0)
		return complain("emm_advise(EMM_ADV_PAGEOUT)", err);
	bench_settle();
	bench_stats(b->mm, &s0);
	cpu = cpu_ns(NULL);
	ns = mem_seq_read(b, &bad);
	cpu = cpu_ns(NULL) - cpu;
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	record(&b->res[SEQ_READ], mib_rate(b->size, (uint64_t)dev),
	       mib_rate(b->size, ns), ns, cpu, &d, bad);
	return 0;
}

/*
 * emm starts with none of the random pages resident, as the O_DIRECT
 * baseline has no cache: the region is paged out first, then the budget
 * filled with other pages (untimed, fill_budget). A write counts once its
 * page is on the device, as pwrite with O_DIRECT does: the timed part ends
 * with a pageout of the region.
 */
static int rand_phase(struct ooc *b, int pat)
{
	bool write = pat == RAND_WRITE;
	int64_t dev = run_random(b, write, false, &(uint64_t){ 0 }), ns;
	struct emm_stats s0, s1, d;
	uint64_t bad = 0, t0, flush = 0, cpu;
	int err;

	if (dev < 0)
		return complain(write ? "pwrite" : "pread", dev);
	err = emm_advise(b->mm, (void *)b->region, b->size, EMM_ADV_PAGEOUT);
	if (err < 0)
		return complain("emm_advise(EMM_ADV_PAGEOUT)", err);
	fill_budget(b);
	bench_stats(b->mm, &s0);
	cpu = cpu_ns(NULL);
	ns = run_random(b, write, true, &bad);
	if (ns < 0)
		return complain("emm threads", ns);
	t0 = bench_now_ns();
	if (write && (err = emm_advise(b->mm, (void *)b->region, b->size, EMM_ADV_PAGEOUT)) < 0)
		return complain("emm_advise(EMM_ADV_PAGEOUT)", err);
	flush = bench_now_ns() - t0;
	cpu = cpu_ns(NULL) - cpu;
	bench_stats(b->mm, &s1);
	d = stats_delta(&s0, &s1);
	if (bench_rate(b->nops, (uint64_t)ns) > b->res[pat].emm_alone)
		b->res[pat].emm_alone = bench_rate(b->nops, (uint64_t)ns);
	record(&b->res[pat], bench_rate(b->nops, (uint64_t)dev),
	       bench_rate(b->nops, (uint64_t)ns + flush), (uint64_t)ns + flush, cpu, &d, bad);
	return 0;
}

/* ---- the kernel's swap: the same phases in a child in a memory cgroup ---- */

/* One phase's wall time, CPU time and major faults, in the child. */
struct kspan {
	uint64_t t0, cpu0, flt0;
};

static void kspan_start(struct kspan *sp)
{
	sp->cpu0 = cpu_ns(&sp->flt0);
	sp->t0 = bench_now_ns();
}

/* Close the span: the rate is events (pages, or bytes when mib) over its time. */
static void kspan_end(const struct kspan *sp, struct kresult *r, double events, bool mib,
		      uint64_t bad)
{
	uint64_t ns = bench_now_ns() - sp->t0, flt, cpu = cpu_ns(&flt) - sp->cpu0;

	*r = (struct kresult){ .rate = mib ? mib_rate((uint64_t)events, ns) : bench_rate((uint64_t)events, ns),
			       .sec = ns / 1e9, .cpu = cpu / 1e9, .majflt = flt - sp->flt0,
			       .bad = bad };
}

/*
 * The region paged out and its pages gone, as EMM_ADV_PAGEOUT leaves emm's:
 * MADV_PAGEOUT alone leaves dirty pages in the swap cache under writeback,
 * where the next fault finds them without I/O; emptying the cgroup waits
 * for the writes and frees them.
 */
static int kernel_pageout(struct ooc *b)
{
	if (madvise((void *)b->region, b->size, MADV_PAGEOUT))
		return -errno;
	return bench_kswap_force_empty(b->ks);
}

static int kernel_random(struct ooc *b, struct kresult *r, bool write)
{
	struct kspan sp;
	uint64_t bad = 0;
	int64_t ns;

	if (kernel_pageout(b))
		return -1;
	fill_budget(b);
	kspan_start(&sp);
	ns = run_random(b, write, true, &bad);
	if (ns < 0 || (write && kernel_pageout(b)))
		return -1;
	kspan_end(&sp, r, (double)b->nops, false, bad);
	return 0;
}

/*
 * In the child, in the cgroup: the fill's rate is the bytes the kernel wrote
 * to swap over its time, as emm's is; then the reads and the random patterns.
 */
static int kernel_child(void *arg, void *out)
{
	struct ooc *b = arg;
	struct kresult *r = out;
	struct kspan sp;
	uint64_t bad = 0;
	void *p = mmap(NULL, b->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	madvise(p, b->size, MADV_NOHUGEPAGE);	/* 4 KiB pages, as emm's here */
	b->region = p;
	bench_settle();
	kspan_start(&sp);
	mem_fill(b);
	kspan_end(&sp, &r[WRITEBACK], (double)bench_kswap_counter(b->ks, "memory.stat", "swap"), true, 0);
	if (kernel_pageout(b))
		return -1;
	bench_settle();
	kspan_start(&sp);
	mem_seq_read(b, &bad);
	kspan_end(&sp, &r[SEQ_READ], (double)b->size, true, bad);
	if (kernel_random(b, &r[RAND_READ], false) || kernel_random(b, &r[RAND_WRITE], true))
		return -1;
	return 0;
}

/* One run of the kernel's side; keep each pattern's best. */
static int kernel_run(struct ooc *b)
{
	struct kresult r[NR_PATTERNS];
	int err = bench_kswap_run(b->ks, kernel_child, b, r, sizeof(r));

	if (err < 0) {
		snprintf(kernel.why, sizeof(kernel.why), "its child failed: %.200s", b->ks->why);
		return err;
	}
	for (int i = 0; i < NR_PATTERNS; i++) {
		uint64_t bad = kernel.res[i].bad + r[i].bad;

		if (r[i].rate > kernel.res[i].rate)
			kernel.res[i] = r[i];
		kernel.res[i].bad = bad;
	}
	kernel.measured = true;
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
	if (err == 0 && b->ks && kernel_run(b) < 0) {
		bench_kswap_teardown(b->ks);
		b->ks = NULL;
	}
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
	       "  baselines: the kernel's swap (anonymous memory in a memory cgroup v1 limited\n"
	       "  to the budget, a swap file in the same directory) and O_DIRECT on a plain\n"
	       "  file there; seq-read starts with the region paged out, the random patterns\n"
	       "  with the budget full of other pages read back in random order (each page\n"
	       "  they bring in pushes one out); rand-write includes writing it back;\n"
	       "  the streams' clocks start 3 s after the memory freed before them\n",
	       b->size / MIB, b->limit / MIB, b->swap / MIB, b->dir, b->nops, b->threads, runs);
	if (b->hugepage)
		printf("  emm's region mapped with EMM_MAP_HUGEPAGE\n");
	if (b->limit >= b->size)
		printf("  note: the budget holds the whole region, so little goes to swap\n");
}

/* The kernel's swap as a baseline for this pass: set up in the first pass only. */
static void kernel_setup(struct ooc *b, struct bench_kswap *k)
{
	if (kernel.measured || kernel.why[0])
		return;
	if (bench_kswap_setup(k, b->limit, b->swap) < 0)
		snprintf(kernel.why, sizeof(kernel.why), "%s", k->why);
	else
		b->ks = k;
}

static double ratio_of(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static void report_row(const struct ooc *b, int pat)
{
	const struct bench_pattern *p = &patterns[pat];
	const struct result *r = &b->res[pat];
	const struct kresult *k = &kernel.res[pat];

	printf("%-10s %-5s", p->name, p->random ? "ops/s" : "MiB/s");
	if (kernel.measured)
		printf(" %11.0f", k->rate);
	else
		printf(" %11s", "-");
	printf(" %9.0f", r->emm);
	if (kernel.measured)
		printf(" %10.2f", ratio_of(r->emm, k->rate));
	else
		printf(" %10s", "-");
	printf(" %9.0f %-12s %10.2f\n", r->dev, p->device, ratio_of(r->emm, r->dev));
}

/* What each side spent on a pattern, and anything that read back wrong. */
static void report_detail(const struct ooc *b, int pat)
{
	const struct result *r = &b->res[pat];
	const struct kresult *k = &kernel.res[pat];

	printf("  %-10s emm %.2f s, cpu %.2f s, faults_major %llu swapins %llu swapouts %llu"
	       " pgsteal %llu (direct %llu) revokes %llu (around %llu, back %llu) io_errors %llu",
	       patterns[pat].name, r->emm_sec, r->emm_cpu, (unsigned long long)r->st.faults_major,
	       (unsigned long long)r->st.swapins, (unsigned long long)r->st.swapouts,
	       (unsigned long long)r->st.pgsteal, (unsigned long long)r->st.pgsteal_direct,
	       (unsigned long long)r->st.revokes, (unsigned long long)r->st.revoke_around,
	       (unsigned long long)r->st.refault_around, (unsigned long long)r->st.io_errors);
	if (pat == RAND_WRITE)
		printf("; writes alone %.0f ops/s", r->emm_alone);
	if (r->bad)
		printf("; %llu WRONG words", (unsigned long long)r->bad);
	printf("\n");
	if (!kernel.measured)
		return;
	printf("  %-10s kernel-swap %.2f s, cpu %.2f s, major faults %llu", "", k->sec, k->cpu,
	       (unsigned long long)k->majflt);
	if (k->bad)
		printf("; %llu WRONG words", (unsigned long long)k->bad);
	printf("\n");
}

/* The table: the kernel's swap, emm, the device; ratios; then the costs; then data lines. */
static void report(const struct ooc *b, bool kernel_data, double *ratio)
{
	printf("%-10s %-5s %11s %9s %10s %9s %-12s %10s\n", "pattern", "unit", "kernel-swap",
	       "emm", "emm/kernel", "device", "(device)", "emm/device");
	for (int i = 0; i < NR_PATTERNS; i++) {
		report_row(b, i);
		ratio[i] = ratio_of(b->res[i].emm, b->res[i].dev);
	}
	if (!kernel.measured)
		printf("kernel-swap: skipped: %s\n", kernel.why);
	printf("costs (wall and CPU time, faults):\n");
	for (int i = 0; i < NR_PATTERNS; i++)
		report_detail(b, i);
	for (int i = 0; i < NR_PATTERNS; i++) {
		const struct bench_pattern *p = &patterns[i];

		bench_record(p->name, b->res[i].emm, p->random ? "ops/s" : "MiB/s");
		if (kernel.measured)
			bench_record_baseline(p->name, "kernel-swap", kernel.res[i].rate);
		bench_data_pattern("out-of-core", p, "emm", b->res[i].emm);
		bench_data_pattern("out-of-core", p, "device", b->res[i].dev);
		if (kernel.measured && kernel_data)
			bench_data_pattern("out-of-core", p, "kernel-swap", kernel.res[i].rate);
	}
}

/* The ceiling that cost puts on random swap-ins through a signal: the
 * device's read, the signal, and the page's fill (as the kernel's own). */
static void signal_bound(const struct ooc *b)
{
	double sig = 0, copy_ns = 0, dev = b->res[RAND_READ].dev, most;

	for (int i = 0; i < 3; i++) {
		double copy = 0, again = bench_signal_cost(&copy);

		if (again > 0 && (sig <= 0 || again < sig))
			sig = again, copy_ns = copy;
	}
	if (sig <= 0 || dev <= 0)
		return;
	most = 1e9 / (1e9 / dev + sig + copy_ns);
	printf("bound: a fault served in a signal handler costs %.2f us here from the access\n"
	       "  to its return, beyond the handler's work (the kernel serves its own faults\n"
	       "  without a signal); with the device's 4K read and the page's fill (%.2f us), a\n"
	       "  random swap-in so runs at most %.0f pages/s", sig / 1000, copy_ns / 1000, most);
	if (kernel.measured)
		printf(" (%.2fx the kernel's swap)", ratio_of(most, kernel.res[RAND_READ].rate));
	printf("\n");
	printf("data: mode=out-of-core pattern=signal-cost subject=machine value=%.0f unit=ns\n",
	       sig);
}

/* The ceiling that cost puts on the streams, as a fraction of the device:
 * the writeback's pages are written, so mapped writable; the sequential
 * read's are only read. */
static void bounds(const struct ooc *b)
{
	double w = bench_map_cost(true, false), ro = bench_map_cost(false, false);
	double hw = bench_map_cost(true, true), hro = bench_map_cost(false, true);

	if (w <= 0 || ro <= 0)
		return;
	printf("bound: a page newly mapped costs %.2f us at its first access here writable,\n"
	       "  %.2f us read-only (each the median of three runs; the same for the kernel's\n"
	       "  swap); a thread touching each page it is given runs at most %.0f pages/s\n"
	       "  written (%.2fx the device's seq write), %.0f read (%.2fx its seq read)\n", w / 1000, ro / 1000, 1e9 / w,
	       ratio_of(1e9 / w, b->res[WRITEBACK].dev * MIB / PAGE_SIZE), 1e9 / ro,
	       ratio_of(1e9 / ro, b->res[SEQ_READ].dev * MIB / PAGE_SIZE));
	printf("data: mode=out-of-core pattern=map-cost subject=machine value=%.0f unit=ns\n", w);
	printf("data: mode=out-of-core pattern=map-cost-ro subject=machine value=%.0f unit=ns\n",
	       ro);
	if (hw <= 0 || hro <= 0)
		return;
	printf("  mapped by a 2 MiB PMD (one huge page), %.3f us writable, %.3f read-only\n",
	       hw / 1000, hro / 1000);
	printf("data: mode=out-of-core pattern=map-cost-huge subject=machine value=%.0f unit=ns\n",
	       hw);
	printf("data: mode=out-of-core pattern=map-cost-huge-ro subject=machine value=%.0f unit=ns\n",
	       hro);
	if (b->hugepage)
		bench_huge_bound("out-of-core", b->res[SEQ_READ].dev);
}

/* What a revoke costs where userfaultfd mapped the pages, against the
 * kernel's swap's anonymous pages: the least of three runs each. */
static void revoke_bound(void)
{
	double busy = 0, alone = 0, anon = 0;

	for (int i = 0; i < 3; i++) {
		double b = bench_revoke_cost(true, true), a = bench_revoke_cost(true, false);
		double c = bench_revoke_cost(false, true);

		busy = b > 0 && (busy <= 0 || b < busy) ? b : busy;
		alone = a > 0 && (alone <= 0 || a < alone) ? a : alone;
		anon = c > 0 && (anon <= 0 || c < anon) ? c : anon;
	}
	if (busy <= 0 || alone <= 0 || anon <= 0)
		return;
	printf("bound: a revoke costs %.2f us a range here where userfaultfd mapped the pages\n"
	       "  and a thread of the program runs on another CPU (%.2f us with none running),\n"
	       "  %.2f us for anonymous pages, the kernel's swap's: pages of a shared mapping\n"
	       "  that are dirty in the page tables, as emm's are, make the kernel flush the\n"
	       "  TLB (an interrupt of each CPU the program runs on) once for each range, and\n"
	       "  anonymous ones once a call; emm on userfaultfd revokes range by range (the\n"
	       "  pages sampled or evicted, with the cold ones around them), the kernel's swap\n"
	       "  flushes once for a batch of pages\n", busy / 1000, alone / 1000, anon / 1000);
	printf("data: mode=out-of-core pattern=revoke-cost subject=machine value=%.0f unit=ns\n",
	       busy);
	printf("data: mode=out-of-core pattern=revoke-cost-alone subject=machine value=%.0f unit=ns\n",
	       alone);
	printf("data: mode=out-of-core pattern=revoke-cost-anon subject=machine value=%.0f unit=ns\n",
	       anon);
}

static void goals(const struct ooc *b, const double *ratio)
{
	for (int i = 0; i < NR_PATTERNS; i++) {
		const struct bench_pattern *p = &patterns[i];

		if (p->goal > 0)
			printf("goal: %-10s emm >= %.1fx device %-12s: %s (%.2fx)\n", p->name,
			       p->goal, p->device, ratio[i] >= p->goal ? "met" : "NOT met", ratio[i]);
		if ((p->random || i == WRITEBACK || i == SEQ_READ) && kernel.measured)
			printf("goal: %-10s emm >= 1.0x kernel-swap       : %s (%.2fx)\n", p->name,
			       b->res[i].emm >= kernel.res[i].rate ? "met" : "NOT met",
			       ratio_of(b->res[i].emm, kernel.res[i].rate));
	}
}

/* The plain file goes where emm's default swap file goes ($TMPDIR, else
 * /var/tmp): the baseline must use the same device. */
int bench_out_of_core(const struct bench_opts *o)
{
	struct ooc b = { .size = o->size, .limit = o->limit ? o->limit : DEFAULT_LIMIT,
			 .pages = o->size / PAGE_SIZE, .dir = bench_tmpdir(), .fd = -1 };
	double ratio[NR_PATTERNS];
	struct bench_kswap k;
	bool first = !kernel.measured && !kernel.why[0];
	int err = 0;

	b.nops = o->ops && o->ops < b.pages ? o->ops : b.pages;
	if (!o->ops && b.pages > DEFAULT_OPS)
		b.nops = DEFAULT_OPS;
	b.threads = o->threads ? o->threads : 1;
	b.hugepage = o->hugepage;
	if (b.threads > b.nops)
		b.threads = (unsigned)b.nops;
	b.swap = b.size + b.size / 4;
	if (!disk_ok(&b, first) || prepare(&b) < 0) {
		err = -1;
		goto out;
	}
	header(&b, o->runs);
	if (first)
		kernel_setup(&b, &k);
	for (unsigned r = 0; r < o->runs && err == 0; r++)
		err = run_once(&b);
	if (b.ks)
		bench_kswap_teardown(b.ks);
	if (err == 0) {
		report(&b, first, ratio);
		if (!first && kernel.measured)
			printf("(kernel-swap: as measured in the first pass)\n");
		goals(&b, ratio);
		bounds(&b);
		signal_bound(&b);
		revoke_bound();
	}
out:
	if (b.fd >= 0)
		close(b.fd);
	free(b.buf);
	free(b.perm);
	return err ? 1 : 0;
}
