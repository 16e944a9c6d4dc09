/* SPDX-License-Identifier: MIT */
/* emm-bench instructions: emm's instructions per fault, counted by valgrind's callgrind. */
#include <emm.h>

#include "bench.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

/*
 * Each pattern runs twice under callgrind, n and 3n accesses, counting
 * only between the start and the end of the accesses (every thread: the
 * reclaim thread's eviction counts too); the difference over the
 * difference of the events is the cost of one, without what is spent
 * once. Valgrind 3.19 runs only the signal backend (it does not know
 * userfaultfd), and only with registers kept exact at every memory access
 * (emm(7), LIMITS). It has no AVX-512 either: where the CPU has it, the
 * checksum runs its SSE4.2 version there.
 */
#define CHILD_ENV	"EMM_BENCH_CALLGRIND_CHILD"
#define REGION		(64UL << 20)
#define BUDGET		(16UL << 20)

struct pattern {
	const char *name;
	const char *event;	/* what the count is per */
	unsigned n;		/* accesses of the shorter run */
};

static const struct pattern patterns[] = {
	{ "first-touch", "new page written", 8192 },
	{ "seq-read", "page read back in order (readahead)", 8192 },
	{ "rand-read", "random major fault (one page)", 1000 },
};

#define NR_PATTERNS	(sizeof(patterns) / sizeof(patterns[0]))

#ifdef HAVE_CALLGRIND
static uint64_t value_of(size_t page)
{
	return page * 0x9e3779b97f4a7c15ull + 1;
}

/* Under callgrind: the pattern's accesses, counted; prints the events. */
static int child(const char *name, unsigned n)
{
	EMM_OPTS(emm_opts, eo, .mem_limit = BUDGET, .swap_size = 2 * REGION,
		 .backend = EMM_BACKEND_SIGNAL);
	struct emm_stats s0, s1;
	size_t pages = REGION / PAGE_SIZE;
	volatile uint64_t *w;
	bool random, write;
	struct emm *mm;
	uint64_t ev;
	void *a;

	if (emm_open(&eo, &mm) < 0)
		return 3;
	if (emm_reserve(mm, REGION, &a) < 0 || emm_map(mm, a, REGION, NULL) < 0)
		return 3;
	w = a;
	if (strcmp(name, "first-touch")) {
		for (size_t p = 0; p < pages; p++)
			w[p * (PAGE_SIZE / 8)] = value_of(p);
		emm_advise(mm, a, REGION, EMM_ADV_PAGEOUT);
	}
	if (!strcmp(name, "rand-read"))
		emm_advise(mm, a, REGION, EMM_ADV_RANDOM);
	bench_stats(mm, &s0);
	/* What is counted is the accesses and what they cost emm: no string
	 * compared in the loop. */
	random = !strcmp(name, "rand-read");
	write = !strcmp(name, "first-touch");
	CALLGRIND_START_INSTRUMENTATION;
	for (unsigned i = 0; i < n; i++) {
		size_t p = random ? (size_t)i * 7919 * 4099 % pages : i % pages;

		if (write)
			w[p * (PAGE_SIZE / 8)] = value_of(p);
		else
			(void)w[p * (PAGE_SIZE / 8)];
	}
	CALLGRIND_STOP_INSTRUMENTATION;
	bench_stats(mm, &s1);
	ev = random ? s1.faults_major - s0.faults_major : write ? n : s1.swapins - s0.swapins;
	printf("events %llu swapouts %llu\n", (unsigned long long)ev,
	       (unsigned long long)(s1.swapouts - s0.swapouts));
	emm_close(mm);
	return 0;
}

/* The costs of one run: every instruction, and those of the checksum. */
struct cost {
	uint64_t ir, crc, ev, swapouts;
};

/* The function a "fn=(id) name" or "fn=(id)" line names: names[id]. */
static const char *fn_name(char names[][64], unsigned max, const char *line)
{
	unsigned id;
	int len = 0;

	if (sscanf(line, "fn=(%u)%n", &id, &len) < 1 || id >= max)
		return "";
	if (line[len] == ' ')
		snprintf(names[id], sizeof(names[id]), "%.*s", (int)strcspn(line + len + 1, "\n"),
			 line + len + 1);
	return names[id];
}

/*
 * A callgrind output file: its "totals:" line, and the self cost of the
 * functions whose name holds "crc32c" or is "crc3" (the CRC's inner loop).
 * A cost line is "<position> <Ir>"; the one after a "calls=" line is the
 * call's inclusive cost, counted where the callee is.
 */
static void callgrind_costs(const char *path, struct cost *c)
{
	static char names[4096][64];
	unsigned long long v;
	bool crc = false, skip = false;
	char line[512];
	FILE *f = fopen(path, "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "fn=", 3)) {
			const char *name = fn_name(names, 4096, line);

			crc = strstr(name, "crc32c") || !strcmp(name, "crc3");
		} else if (!strncmp(line, "calls=", 6)) {
			skip = true;
		} else if (sscanf(line, "totals: %llu", &v) == 1) {
			c->ir = v;
		} else if ((isdigit((unsigned char)line[0]) || line[0] == '+' || line[0] == '-' ||
			    line[0] == '*') && sscanf(line, "%*s %llu", &v) == 1) {
			if (crc && !skip)
				c->crc += v;
			skip = false;
		}
	}
	if (f)
		fclose(f);
}

/* One run of this program under callgrind; its instructions and events. */
static int run_one(const struct pattern *p, unsigned n, struct cost *c)
{
	char out[4096], arg[4200], env[128], line[128], self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int fd, pfd[2];
	unsigned long long e = 0, so = 0;
	pid_t pid;
	FILE *f;
	int st;

	if (len <= 0)
		return -errno;
	self[len] = 0;
	if (snprintf(out, sizeof(out), "%s/emm-bench-callgrind-XXXXXX", bench_tmpdir()) >= (int)sizeof(out))
		return -ENAMETOOLONG;
	fd = mkstemp(out);
	if (fd < 0)
		return -errno;
	close(fd);
	if (pipe(pfd) < 0) {
		unlink(out);
		return -errno;
	}
	snprintf(arg, sizeof(arg), "--callgrind-out-file=%s", out);
	snprintf(env, sizeof(env), "%s=%s %u", CHILD_ENV, p->name, n);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		unlink(out);
		return -EAGAIN;
	}
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		putenv(env);
		execlp("valgrind", "valgrind", "-q", "--tool=callgrind", "--instr-atstart=no",
		       "--vex-iropt-register-updates=allregs-at-mem-access", arg,
		       self, "instructions", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "events %llu swapouts %llu", &e, &so);
	if (f)
		fclose(f);
	waitpid(pid, &st, 0);
	*c = (struct cost){ .ev = e, .swapouts = so };
	callgrind_costs(out, c);
	unlink(out);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 && c->ir && e ? 0 : -EIO;
}

static int parent(void)
{
	if (system("valgrind --version > /dev/null 2>&1") != 0) {
		printf("instructions: skipped: valgrind is not installed (apt-get install valgrind)\n");
		return 0;
	}
	printf("instructions: emm's instructions per event under callgrind, signal backend,\n"
	       "%lu MiB region under a %lu MiB budget (user space, every thread)\n",
	       REGION >> 20, BUDGET >> 20);
	for (size_t i = 0; i < NR_PATTERNS; i++) {
		const struct pattern *p = &patterns[i];
		struct cost a, b;
		double ev, ir;

		if (run_one(p, p->n, &a) < 0 || run_one(p, 3 * p->n, &b) < 0 || b.ev <= a.ev ||
		    b.ir <= a.ir) {
			printf("%-12s failed under valgrind\n", p->name);
			continue;
		}
		ev = (double)(b.ev - a.ev);
		ir = (double)(b.ir - a.ir) / ev;
		printf("%-12s %7.0f instructions per %s, %4.0f of them the checksum's "
		       "(%.2f swap-outs each)\n", p->name, ir, p->event,
		       (double)(b.crc - a.crc) / ev, (double)(b.swapouts - a.swapouts) / ev);
		bench_data("instructions", p->name, "emm-signal", ir, "instructions");
	}
	return 0;
}

int bench_instructions(const struct bench_opts *o)
{
	const char *c = getenv(CHILD_ENV);
	char name[32];
	unsigned n;

	(void)o;
	if (c && sscanf(c, "%31s %u", name, &n) == 2)
		return child(name, n);
	return parent();
}

#else

int bench_instructions(const struct bench_opts *o)
{
	(void)o;
	printf("instructions: skipped: built without valgrind's headers "
	       "(apt-get install valgrind, then make bench again)\n");
	return 0;
}

#endif
