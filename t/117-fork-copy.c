/* SPDX-License-Identifier: MIT */
/* A forked child gets its parent's emm memory as it was at the fork, as private memory: resident and swapped pages, FILE ranges, protections; its writes stay its own, the parent's later ones do not reach it, reclaim running in the parent meanwhile loses nothing, and the program's own atfork handlers may touch emm memory. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)
#define LIMIT	(4 * MIB)
#define LEN	(32 * MIB)
#define FLEN	(4 * MIB)

static struct emm *mm;
static char *mem, *fmem, *rmem;
static int go[2];		/* the parent to the child: page 0 rewritten */
static int ready[2];		/* the child to the parent: running */
static _Atomic bool stop;
static char *_Atomic touched;	/* what the program's prepare handler reads */
static unsigned prepare_seed = 7;

/* What the file holds at each word, before the VMA changes any. */
static uint64_t file_value(const uint64_t *p)
{
	return (uint64_t)((const char *)p - fmem) * 0x2545f4914f6cdd1dULL | 1;
}

/* Bits of the child's exit status: which check failed. */
enum { BAD_ANON = 1, BAD_FILE = 2, BAD_RO = 4, BAD_LATER = 8, BAD_WRITE = 16 };

static bool ro_faults;
static sigjmp_buf ro_jump;

static void ro_segv(int sig)
{
	(void)sig;
	ro_faults = true;
	siglongjmp(ro_jump, 1);
}

/* Every check of the copy, then the child's own writes. */
static void child_checks(void *arg)
{
	volatile int bad = 0;
	char c;

	(void)arg;
	alarm(60);
	(void)!write(ready[1], "r", 1);
	if (count_bad_words(mem, LEN, word_value))
		bad |= BAD_ANON;
	if (count_bad_words(fmem, FLEN / 2, word_value) ||
	    count_bad_words(fmem + FLEN / 2, FLEN / 2, file_value))
		bad |= BAD_FILE;
	if (count_bad_words(rmem, FLEN, word_value))
		bad |= BAD_RO;
	/* A read-only VMA stays read-only (emm's handler passes the fault on). */
	set_handler(SIGSEGV, ro_segv, NULL);
	if (!sigsetjmp(ro_jump, 1))
		*(volatile char *)rmem = 1;
	if (!ro_faults)
		bad |= BAD_RO;
	if (read(go[0], &c, 1) != 1 || count_bad_words(mem, PAGE, word_value))
		bad |= BAD_LATER;
	for (size_t i = 0; i < LEN; i += PAGE)
		mem[i] ^= 0x55;
	for (size_t i = 0; i < LEN; i += PAGE)
		if ((uint64_t)(mem[i] ^ 0x55) != (word_value((uint64_t *)(mem + i)) & 0xff))
			bad |= BAD_WRITE;
	_exit(bad);
}

/* Runs fn in a child; after the fork returns, rewrites page 0 and says so. */
static int fork_and_rewrite(void (*fn)(void *), char *out, size_t cap)
{
	int st;

	/* fork_stderr returns after the child exits: the write is made by a
	 * thread, once the child runs (fork has returned in both). */
	if (fork_stderr(fn, NULL, out, cap, &st))
		bail("fork");
	return st;
}

static void *rewriter(void *arg)
{
	char c;

	(void)arg;
	if (read(ready[0], &c, 1) != 1)
		return NULL;
	memset(mem, 0xee, PAGE);
	(void)!write(go[1], "x", 1);
	return NULL;
}

/* A reclaim storm in the parent: random writes over a region 4 times the budget. */
static void *storm(void *arg)
{
	char *b = arg;
	unsigned seed = 1;

	/* Relaxed atomics: program_prepare may read the same byte, by design. */
	while (!atomic_load(&stop))
		__atomic_fetch_xor(&b[(size_t)(rand_r(&seed) % (LEN / PAGE)) * PAGE], 1,
				   __ATOMIC_RELAXED);
	return NULL;
}

/* The program's own atfork handler, installed after emm's: it runs
 * first, before emm's gate holds swap-ins back, so its touch of a page
 * another thread is reading back from swap does not wait for the fork. */
static void program_prepare(void)
{
	char *b = atomic_load(&touched);

	if (b)
		(void)__atomic_load_n(b + (size_t)(rand_r(&prepare_seed) % (LEN / PAGE)) * PAGE,
				      __ATOMIC_RELAXED);
}

static void child_verify(void *arg)
{
	(void)arg;
	alarm(60);
	_exit(count_bad_words(mem, LEN, word_value) != 0);
}

static void setup_file(void)
{
	char path[] = "/tmp/emm-t117-XXXXXX";
	int fd = mkstemp(path);
	uint64_t *buf = malloc(FLEN);

	if (fd < 0 || !buf)
		bail("mkstemp");
	unlink(path);
	if (emm_reserve(mm, FLEN, (void **)&fmem))
		bail("emm_reserve");
	for (size_t i = 0; i < FLEN / 8; i++)
		buf[i] = file_value((uint64_t *)fmem + i);
	if (pwrite(fd, buf, FLEN, 0) != (ssize_t)FLEN)
		bail("pwrite");
	free(buf);
	EMM_OPTS(emm_map_opts, fo, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_FILE, .fd = fd);
	if (emm_map(mm, fmem, FLEN, &fo))
		bail("emm_map FILE");
	fill_words(fmem, FLEN / 2, word_value);	/* dirty, not written back */
}

int main(void)
{
	EMM_OPTS(emm_opts, o, .mem_limit = LIMIT, .swap_size = 8 * LEN);
	char out[4096], *b;
	pthread_t t, s[1];
	int st, failed = 0;

	plan(7);
	if (emm_open(&o, &mm) || emm_reserve(mm, LEN, (void **)&mem) || emm_map(mm, mem, LEN, NULL))
		bail("emm_open/emm_reserve/emm_map failed");
	fill_words(mem, LEN, word_value);
	setup_file();
	if (emm_reserve(mm, FLEN, (void **)&rmem) || emm_map(mm, rmem, FLEN, NULL))
		bail("emm_reserve");
	fill_words(rmem, FLEN, word_value);
	if (emm_protect(mm, rmem, FLEN, EMM_PROT_READ))
		bail("emm_protect");
	alarm(300);

	if (pipe(go) || pipe(ready) || pthread_create(&t, NULL, rewriter, NULL))
		bail("pthread_create");
	st = fork_and_rewrite(child_checks, out, sizeof(out));
	pthread_join(t, NULL);
	ok(WIFEXITED(st) && !(WEXITSTATUS(st) & BAD_ANON),
	   "the child reads every word the parent wrote, from memory and from swap");
	ok(WIFEXITED(st) && !(WEXITSTATUS(st) & BAD_FILE),
	   "a FILE range: the parent's unsaved writes, the file under the rest");
	ok(WIFEXITED(st) && !(WEXITSTATUS(st) & BAD_RO), "a read-only range: readable, not writable");
	ok(WIFEXITED(st) && !(WEXITSTATUS(st) & (BAD_LATER | BAD_WRITE)),
	   "the parent's writes after fork do not reach the child; the child's own stick");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		diag("child status 0x%x: %s", st, out);
	memset(mem, 0, PAGE);
	fill_words(mem, PAGE, word_value);
	is_int(count_bad_words(mem, LEN, word_value), 0, "the child's writes do not reach the parent");

	/* Children copy while the parent's reclaim evicts what they copy. */
	if (emm_reserve(mm, LEN, (void **)&b) || emm_map(mm, b, LEN, NULL))
		bail("emm_reserve");
	if (pthread_atfork(program_prepare, NULL, NULL))
		bail("pthread_atfork");
	atomic_store(&touched, b);
	if (pthread_create(&s[0], NULL, storm, b))
		bail("pthread_create");
	for (int i = 0; i < 8; i++) {
		if (fork_stderr(child_verify, NULL, out, sizeof(out), &st))
			bail("fork");
		if ((!WIFEXITED(st) || WEXITSTATUS(st)) && !failed++)
			diag("child %d: status 0x%x: %s", i, st, out);
	}
	atomic_store(&stop, true);
	pthread_join(s[0], NULL);
	is_int(failed, 0, "8 children forked during a reclaim storm read every word, and no fork "
	       "waits for the program's own prepare handler, which touches the storm's pages");
	ok(stats(mm).swapins > 0 && stats(mm).swapouts > 0, "the parent swapped meanwhile");
	emm_close(mm);
	return done_testing();
}
