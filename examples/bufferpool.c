/* SPDX-License-Identifier: MIT */
/* A database buffer pool over a FILE VMA: a table larger than the budget, scans, transactions, emm_sync. */
/*
 * A storage engine keeps its table in a file and lets emm be its buffer
 * pool: the file is mapped once as an EMM_POLICY_FILE VMA, a page is read
 * from the file the first time a query touches it, cold pages are dropped
 * (clean) or written back to the file (dirty) when the resident budget is
 * full, and emm_sync() makes a transaction durable at commit. The table is
 * larger than the budget, so scans and random look-ups keep the pool busy.
 *
 * Usage: bufferpool [TABLE_MIB [BUDGET_MIB [TRANSACTIONS]]]
 * Afterwards the file is read back with pread(2), page by page, and every
 * page must hold what the transactions committed: it prints "verified" and
 * exits 0, else it says what was wrong and exits 1.
 */
#include <emm.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE		4096u
#define ROWS		((PAGE - sizeof(struct page_hdr)) / sizeof(struct row))
#define MIB		(1UL << 20)
#define COMMIT_EVERY	64	/* updates per transaction */

struct page_hdr {		/* the first bytes of every table page */
	uint64_t page_no;
	uint64_t updates;	/* rows updated in this page, ever */
	uint64_t checksum;	/* of the rows */
	uint64_t pad;
};

struct row {
	uint64_t key;
	uint64_t value;
};

struct table_page {
	struct page_hdr h;
	struct row rows[(PAGE - sizeof(struct page_hdr)) / sizeof(struct row)];
};

struct pool {
	struct emm *mm;
	struct table_page *pages;	/* the file, as emm maps it */
	uint64_t npages;
	uint32_t *committed;		/* per page: updates committed (the check) */
	uint32_t *pending;		/* updates of the open transaction */
	uint64_t rng;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "bufferpool: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s += 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rows_checksum(const struct table_page *p)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < ROWS; i++)
		sum = (sum ^ p->rows[i].key ^ p->rows[i].value) * 0x100000001b3ull;
	return sum;
}

/* The table file as the loader writes it: row keys, values 0. */
static void make_page(struct table_page *p, uint64_t no)
{
	memset(p, 0, sizeof(*p));
	p->h.page_no = no;
	for (size_t i = 0; i < ROWS; i++)
		p->rows[i].key = no * ROWS + i;
	p->h.checksum = rows_checksum(p);
}

static int create_table(uint64_t npages)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	struct table_page page;
	int fd;

	snprintf(path, sizeof(path), "%s/bufferpool-XXXXXX", dir && *dir ? dir : "/var/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		die("mkstemp", errno);
	unlink(path);		/* nothing left behind, whatever happens */
	for (uint64_t no = 0; no < npages; no++) {
		make_page(&page, no);
		if (pwrite(fd, &page, PAGE, (off_t)(no * PAGE)) != PAGE)
			die("writing the table", errno);
	}
	return fd;
}

/*
 * Every access of the pool to a table page starts here: this is where a
 * page that is not in memory is faulted in from the file (or, written and
 * evicted before, from the file again: dirty pages go back to the file).
 * Kept out of line, and global so that the compiler makes no private copy
 * under another name, so a fault profile (EMM_PROFILE=major) names it.
 */
struct table_page *page_get(struct pool *bp, uint64_t no);
__attribute__((noinline)) struct table_page *page_get(struct pool *bp, uint64_t no)
{
	struct table_page *p = &bp->pages[no];

	if (*(volatile uint64_t *)&p->h.page_no != no) {
		fprintf(stderr, "bufferpool: page %" PRIu64 " holds page %" PRIu64 "\n", no,
			p->h.page_no);
		exit(1);
	}
	return p;
}

/* A full scan: SELECT sum(value) FROM t. */
static uint64_t scan(struct pool *bp)
{
	uint64_t sum = 0;

	for (uint64_t no = 0; no < bp->npages; no++) {
		const struct table_page *p = page_get(bp, no);

		for (size_t i = 0; i < ROWS; i++)
			sum += p->rows[i].value;
	}
	return sum;
}

/* UPDATE t SET value = value + 1 WHERE key = k, for a random k. */
static void update_random_row(struct pool *bp)
{
	uint64_t no = next_rand(&bp->rng) % bp->npages;
	struct table_page *p = page_get(bp, no);

	p->rows[next_rand(&bp->rng) % ROWS].value++;
	p->h.updates++;
	p->h.checksum = rows_checksum(p);
	bp->pending[no]++;
}

/* COMMIT: the transaction's pages reach the file before it counts. */
static void commit(struct pool *bp)
{
	int err = emm_sync(bp->mm, bp->pages, bp->npages * PAGE);

	if (err < 0)
		die("emm_sync", err);
	for (uint64_t no = 0; no < bp->npages; no++) {
		bp->committed[no] += bp->pending[no];
		bp->pending[no] = 0;
	}
}

static void open_pool(struct pool *bp, int fd, uint64_t budget)
{
	EMM_OPTS(emm_opts, o, .mem_limit = budget);
	EMM_OPTS(emm_map_opts, m, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_FILE, .fd = fd);
	size_t len = bp->npages * PAGE;
	int err = emm_open(&o, &bp->mm);

	if (err == 0)
		err = emm_reserve(bp->mm, len, (void **)&bp->pages);
	if (err == 0)
		err = emm_map(bp->mm, bp->pages, len, &m);
	if (err < 0)
		die("opening the pool", err);
}

static void print_stats(struct emm *mm, const char *when)
{
	EMM_OPTS(emm_stats, st);

	emm_stats(mm, &st);
	printf("%-22s resident %5" PRIu64 " KiB of %" PRIu64 " KiB, faults %" PRIu64
	       " (major %" PRIu64 ", write-protect %" PRIu64 "), written back %" PRIu64 " pages\n",
	       when, st.resident_bytes >> 10, st.limit_bytes >> 10, st.faults, st.faults_major,
	       st.faults_wp, st.writebacks);
}

/* Read the file behind emm's back and compare with what was committed. */
static int verify(int fd, const struct pool *bp)
{
	struct table_page p;
	uint64_t bad = 0, updates = 0;

	for (uint64_t no = 0; no < bp->npages; no++) {
		if (pread(fd, &p, PAGE, (off_t)(no * PAGE)) != PAGE)
			die("reading the table back", errno);
		updates += p.h.updates;
		if (p.h.page_no != no || p.h.updates != bp->committed[no] ||
		    p.h.checksum != rows_checksum(&p)) {
			if (bad++ < 5)
				fprintf(stderr, "bufferpool: page %" PRIu64 ": %" PRIu64
					" updates in the file, %u committed%s\n", no, p.h.updates,
					bp->committed[no],
					p.h.checksum != rows_checksum(&p) ? ", bad checksum" : "");
		}
	}
	printf("file read back: %" PRIu64 " pages, %" PRIu64 " updates, %" PRIu64 " bad pages\n",
	       bp->npages, updates, bad);
	return bad == 0;
}

static uint64_t arg(int argc, char **argv, int i, uint64_t dflt)
{
	return argc > i ? strtoull(argv[i], NULL, 0) : dflt;
}

int main(int argc, char **argv)
{
	uint64_t table_mib = arg(argc, argv, 1, 32), budget_mib = arg(argc, argv, 2, 8);
	uint64_t txns = arg(argc, argv, 3, 200), sum;
	struct pool bp = { .npages = table_mib * MIB / PAGE, .rng = 0x5eedb00f };
	int fd, ok;

	if (!bp.npages || !budget_mib || table_mib <= budget_mib) {
		fprintf(stderr, "usage: bufferpool [TABLE_MIB [BUDGET_MIB [TRANSACTIONS]]]\n"
			"       with a table larger than the budget\n");
		return 2;
	}
	bp.committed = calloc(bp.npages, sizeof(*bp.committed));
	bp.pending = calloc(bp.npages, sizeof(*bp.pending));
	if (!bp.committed || !bp.pending)
		die("calloc", ENOMEM);
	fd = create_table(bp.npages);
	open_pool(&bp, fd, budget_mib * MIB);
	printf("table %" PRIu64 " MiB (%" PRIu64 " pages of %zu rows), budget %" PRIu64 " MiB\n",
	       table_mib, bp.npages, (size_t)ROWS, budget_mib);

	sum = scan(&bp);
	print_stats(bp.mm, "after a full scan:");
	for (uint64_t t = 0; t < txns; t++) {
		for (int u = 0; u < COMMIT_EVERY; u++)
			update_random_row(&bp);
		commit(&bp);
	}
	print_stats(bp.mm, "after the updates:");
	sum = scan(&bp) - sum;
	print_stats(bp.mm, "after a second scan:");
	printf("%" PRIu64 " transactions of %d updates; the second scan saw %" PRIu64
	       " more\n", txns, COMMIT_EVERY, sum);

	/* Every update was committed; emm_close has nothing left to write. */
	if (emm_close(bp.mm) < 0)
		die("emm_close", EIO);
	ok = verify(fd, &bp) && sum == txns * COMMIT_EVERY;
	printf("%s\n", ok ? "verified" : "NOT verified");
	close(fd);
	free(bp.committed);
	free(bp.pending);
	return ok ? 0 : 1;
}
