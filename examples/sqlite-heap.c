/* SPDX-License-Identifier: MIT */
/* SQLite's memory on an emm heap (SQLITE_CONFIG_MALLOC): a table and index three times the budget, then integrity_check. */
#include <emm.h>
#include <emm-heap.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1UL << 20)
#define BUDGET (8 * MIB)


static struct emm_heap *heap;

/* SQLite's allocator interface, on the heap. */
static void *x_malloc(int n)
{
	return emm_heap_malloc(heap, (size_t)n);
}

static void x_free(void *p)
{
	emm_heap_free(heap, p);
}

static void *x_realloc(void *p, int n)
{
	return emm_heap_realloc(heap, p, (size_t)n);
}

static int x_size(void *p)
{
	return (int)emm_heap_usable_size(heap, p);
}

static int x_roundup(int n)
{
	return (n + 15) & ~15;
}

static int x_init(void *arg)
{
	return SQLITE_OK;
}

static void x_shutdown(void *arg)
{
}

static const sqlite3_mem_methods methods = {
	x_malloc, x_free, x_realloc, x_size, x_roundup, x_init, x_shutdown, NULL
};

static int run(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	fprintf(stderr, "sqlite-heap: %s: %s\n", sql, msg ? msg : "?");
	sqlite3_free(msg);
	return 1;
}

static int print_row(void *arg, int n, char **v, char **names)
{
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? " " : "", v[i] ? v[i] : "NULL");
	printf("\n");
	return 0;
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = BUDGET, .swap_size = 512 * MIB);
	EMM_OPTS(emm_heap_stats, st);
	struct emm *mm;
	sqlite3 *db;
	int err, bad;

	err = emm_open(&o, &mm);
	if (!err)
		err = emm_heap_create(mm, 4UL << 30, NULL, &heap);
	if (err) {
		fprintf(stderr, "sqlite-heap: %s\n", strerror(-err));
		return 1;
	}
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) != SQLITE_OK ||
	    sqlite3_open(":memory:", &db) != SQLITE_OK) {
		fprintf(stderr, "sqlite-heap: cannot set up SQLite\n");
		return 1;
	}
	/* An in-memory database, its sorter and temporary tables live wholly in
	 * the heap: no file I/O from heap buffers, which the signal backend
	 * would fail with EFAULT (see emm(7)). */
	bad = run(db, "PRAGMA temp_store = MEMORY;"
		      "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);"
		      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < "
		      "100000) INSERT INTO t SELECT i, printf('%08x-%d', (i * 2654435761) % 4294967296, i),"
		      " randomblob(150) FROM n;"
		      "CREATE INDEX t_k ON t(k);");
	emm_heap_stats(heap, &st);
	fprintf(stderr, "built: allocated %" PRIu64 " MiB, resident %" PRIu64 " MiB, swapped %"
		PRIu64 " MiB (budget %lu MiB)\n", st.allocated_bytes / MIB, st.resident_bytes / MIB,
		st.swapped_bytes / MIB, BUDGET / MIB);
	bad |= sqlite3_exec(db, "PRAGMA integrity_check; SELECT count(*), count(DISTINCT k) FROM t;",
			    print_row, NULL, NULL) != SQLITE_OK;
	sqlite3_close(db);
	emm_heap_destroy(heap);
	emm_close(mm);
	return bad;
}
