/* SPDX-License-Identifier: MIT */
/* emm-bench clients: unmodified programs under a budget, libemm-preload.so against the kernel's swap in a memory cgroup. */
#include "bench.h"
#include "kswap.h"

#include <emm.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB		(1024.0 * 1024.0)
#define DEFAULT_N	400000		/* the Lua script's strings */

/* The Lua script of the preload's test: n strings built, sorted, concatenated, written and read back. */
static const char lua_script[] =
	"collectgarbage(\"generational\")\n"
	"local n = tonumber(arg[2])\n"
	"local t = {}\n"
	"for i = 1, n do\n"
	"\t-- keys out of order in runs of 16: the sort has work, with locality\n"
	"\tlocal k = i + 15 - 2 * ((i - 1) % 16)\n"
	"\tt[i] = string.format(\"%08d:\", k) .. string.rep(string.char(65 + k % 26), 130 + k % 64)\n"
	"end\n"
	"table.sort(t)\n"
	"local sorted = true\n"
	"for i = 2, n do if t[i - 1] >= t[i] then sorted = false end end\n"
	"local s = table.concat(t, \"\\n\")\n"
	"print(\"sorted\", sorted, \"strings\", #t, \"bytes\", #s)\n"
	"t = nil\n"
	"local big = s:sub(1, 64 * 1024 * 1024)\n"
	"local f = assert(io.open(arg[1], \"wb\"))\n"
	"assert(f:write(big))\n"
	"assert(f:close())\n"
	"f = assert(io.open(arg[1], \"rb\"))\n"
	"local back = f:read(\"a\")\n"
	"f:close()\n"
	"print(\"wrote\", #big, \"read\", #back, \"same\", back == big)\n";

/* A Python script: n keys in a dict, its items sorted by value, a digest of
 * every 97th. Many small objects, as Python's own runs are made of. */
static const char python_script[] =
	"import sys, hashlib\n"
	"n = int(sys.argv[1])\n"
	"d = {}\n"
	"for i in range(n):\n"
	"    d[\"key%09d\" % i] = (\"v%d\" % (i * 7919)) * 3\n"
	"items = sorted(d.items(), key=lambda kv: kv[1])\n"
	"h = hashlib.sha256()\n"
	"for k, v in items[::97]:\n"
	"    h.update(k.encode()); h.update(v.encode())\n"
	"print(len(d), h.hexdigest())\n";

/* A Perl script: n keys in a hash, each value a run of up to 99 bytes, the
 * values' lengths summed in the hash's order and looked up by key: every
 * pass over the hash reads its entries in an order unrelated to the one
 * they were allocated in (with Perl's own hash, built on malloc). */
static const char perl_script[] =
	"my $n = shift;\n"
	"my %h;\n"
	"for my $i (1 .. $n) { $h{\"k$i\"} = \"v\" x ($i % 100); }\n"
	"my $s = 0;\n"
	"$s += length($h{$_}) for keys %h;\n"
	"print scalar(keys %h), \" $s\\n\";\n";

/* A Node.js script: n keys in a Map, its entries sorted by value, a digest
 * of every 97th. V8's heap is pages it maps itself, with an address hint. */
static const char node_script[] =
	"const n = Number(process.argv[2]);\n"
	"const m = new Map();\n"
	"for (let i = 0; i < n; i++) m.set('key' + i, ('v' + (i * 7919)).repeat(3));\n"
	"const a = [...m.entries()].sort((x, y) => x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);\n"
	"let h = 0;\n"
	"for (let i = 0; i < a.length; i += 97)\n"
	"\tfor (const c of a[i][0] + a[i][1]) h = (h * 31 + c.charCodeAt(0)) >>> 0;\n"
	"console.log(m.size, h);\n";

/* The same in Java: the JVM's heap is one reservation it maps with an
 * address hint and commits piece by piece. */
static const char java_source[] =
	"import java.util.*;\n"
	"public class H {\n"
	"\tpublic static void main(String[] a) {\n"
	"\t\tint n = Integer.parseInt(a[0]);\n"
	"\t\tHashMap<String, String> m = new HashMap<>();\n"
	"\t\tfor (int i = 0; i < n; i++)\n"
	"\t\t\tm.put(\"key\" + i, (\"v\" + (i * 7919L)).repeat(3));\n"
	"\t\tList<Map.Entry<String, String>> l = new ArrayList<>(m.entrySet());\n"
	"\t\tl.sort(Map.Entry.comparingByValue());\n"
	"\t\tlong h = 0;\n"
	"\t\tfor (int i = 0; i < l.size(); i += 97)\n"
	"\t\t\th = h * 31 + (l.get(i).getKey() + l.get(i).getValue()).hashCode();\n"
	"\t\tSystem.out.println(m.size() + \" \" + h);\n"
	"\t}\n"
	"}\n";

/* The sqlite3 shell script of the preload's test: a table and its index in a large page cache. */
static const char sqlite_script[] =
	"PRAGMA cache_size = -200000;\n"
	"CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT);\n"
	"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %llu)\n"
	"INSERT INTO t SELECT i, printf('%%08x-%%d', (i * 2654435761) %% 4294967296, i), "
	"printf('%%0150d', i) FROM n;\n"
	"CREATE INDEX t_k ON t(k);\n"
	"PRAGMA integrity_check;\n"
	"SELECT count(*), sum(length(v)), min(k), max(k) FROM t;\n"
	"SELECT id, k FROM t ORDER BY k LIMIT 3 OFFSET %llu;\n";

/* KERNEL_MI: the kernel's swap with mimalloc as the program's malloc, the
 * allocator libemm-heap is built on: against it, emm's paging is compared
 * with the kernel's on the same heap layout. */
enum subject { PLAIN, EMM, KERNEL, KERNEL_MI, NR_SUBJECTS };

/* The backend the preload runs on: uffd, where every system call waits
 * for a heap page, unless --backend names another. */
static const char *preload_backend = "uffd";
static char emm_subject[24] = "emm-uffd";

static const char *const subject_names[NR_SUBJECTS] = { "unconstrained", emm_subject,
							 "kernel-swap", "kernel+mimalloc" };

static bool is_kernel(enum subject s)
{
	return s == KERNEL || s == KERNEL_MI;
}

/* What one run of a program cost, and what it printed. */
struct outcome {
	bool ran, ok, same, oom;
	bool no_stats;			/* emm: none printed, so the preload did not take */
	int status;			/* wait4's */
	char said[100];			/* failed: the first line of its own on stderr */
	double sec, cpu;
	uint64_t maxrss, majflt;	/* as the kernel saw the process */
	uint64_t swapins, faults_major;	/* emm's (EMM_SHOW_STATS), or the cgroup's */
	uint64_t faults_minor, revokes;	/* emm's: what sampling pages by revoking them cost */
	uint64_t around, back;		/* emm's revoke_around, refault_around */
};

struct client {
	const char *name, *program, *what;
	int (*prepare)(const char *dir, uint64_t n);
	void (*argv)(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX]);
	const char *stdin_name;		/* in the directory, or NULL */
	/* Set for kernel+mimalloc, not for the kernel with the program's
	 * defaults nor for emm (whose preload takes the program's own
	 * mappings too: EMM_PRELOAD_MMAP): it sends the program's own
	 * allocator's memory through malloc. */
	const char *use_malloc;
	/* What its header line counts, from the Lua strings; NULL: those. */
	uint64_t (*units)(uint64_t n);
};

struct ctx {
	char dir[PATH_MAX];
	uint64_t n;			/* the Lua script's strings */
	char preload[PATH_MAX];
	char mimalloc[PATH_MAX];	/* Debian's libmimalloc.so.2, for KERNEL_MI */
	const char *no_emm, *no_kernel, *no_mimalloc;	/* why a subject is skipped, or NULL */
	struct bench_kswap k;
	bool kswap;
};

/* A path of PATH_MAX bytes, cut short if it must be (it then names nothing). */
static char *path_of(char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, PATH_MAX, fmt, ap);
	va_end(ap);
	return path;
}

/*
 * What a signal must not leave behind: the program running, the files in
 * the directory, the directory. Set before the runs, so that the handler
 * only calls kill, waitpid, unlink and rmdir.
 */
static struct {
	char dir[PATH_MAX];
	char files[96][64];	/* 11 scripts and data files, 8 for each client */
	int nr_files;
	volatile pid_t running;
	struct sigaction old[3];
} leftovers;

static const int signals[] = { SIGINT, SIGTERM, SIGHUP };

static void on_signal(int sig)
{
	char path[PATH_MAX];
	pid_t pid = leftovers.running;
	int i;

	if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	for (i = 0; i < leftovers.nr_files; i++) {
		size_t n = strlen(leftovers.dir);

		memcpy(path, leftovers.dir, n);
		path[n] = '/';
		memcpy(path + n + 1, leftovers.files[i], strlen(leftovers.files[i]) + 1);
		unlink(path);
	}
	rmdir(leftovers.dir);
	for (i = 0; i < 3 && signals[i] != sig; i++)
		;
	sigaction(sig, i < 3 ? &leftovers.old[i] : NULL, NULL);
	raise(sig);
}

static void leftover(const char *name)
{
	if (leftovers.nr_files < (int)(sizeof(leftovers.files) / sizeof(leftovers.files[0])))
		snprintf(leftovers.files[leftovers.nr_files++], 64, "%s", name);
}

static int write_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;
	int err = 0;

	path_of(path, "%s/%s", dir, name);
	if (!(f = fopen(path, "we")))
		return -errno;
	if (fputs(text, f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

static int lua_prepare(const char *dir, uint64_t n)
{
	return write_text(dir, "s.lua", lua_script);
}

static void lua_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	path_of(buf[0], "%s/s.lua", dir);
	path_of(buf[1], "%s/lua.out", dir);
	path_of(buf[2], "%llu", (unsigned long long)n);
	av[0] = "lua5.4", av[1] = buf[0], av[2] = buf[1], av[3] = buf[2], av[4] = NULL;
}

/* SQLite's rows: 5/8 of the Lua strings, 250000 at the default. */
static uint64_t sqlite_rows(uint64_t n)
{
	return n * 5 / 8;
}

static int sqlite_prepare(const char *dir, uint64_t n)
{
	char sql[sizeof(sqlite_script) + 64];

	snprintf(sql, sizeof(sql), sqlite_script, (unsigned long long)sqlite_rows(n),
		 (unsigned long long)sqlite_rows(n) * 2 / 5);
	return write_text(dir, "build.sql", sql);
}

static void sqlite_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	path_of(buf[0], "%s/t.db", dir);
	av[0] = "sqlite3", av[1] = buf[0], av[2] = NULL;
}

/* Python's keys: 3/4 of the Lua strings, 300000 at the default. */
static uint64_t python_keys(uint64_t n)
{
	return n * 3 / 4;
}

static int python_prepare(const char *dir, uint64_t n)
{
	(void)n;
	return write_text(dir, "s.py", python_script);
}

/* interp running the script file of dir with one argument, count. */
static void script_argv(const char *interp, const char *dir, const char *file, uint64_t count,
			char **av, char (*buf)[PATH_MAX])
{
	path_of(buf[0], "%s/%s", dir, file);
	path_of(buf[1], "%llu", (unsigned long long)count);
	path_of(buf[2], "%s", interp);
	av[0] = buf[2], av[1] = buf[0], av[2] = buf[1], av[3] = NULL;
}

/* Debian's python3 itself where it is: a python3 on PATH may be a shell
 * script that picks an interpreter (pyenv), and its shell forks. */
static void python_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	script_argv(access("/usr/bin/python3", X_OK) ? "python3" : "/usr/bin/python3", dir,
		    "s.py", python_keys(n), av, buf);
}

/* Perl's keys: 3/8 of the Lua strings, 150000 at the default (a peak of
 * about 45 MB). */
static uint64_t perl_keys(uint64_t n)
{
	return n * 3 / 8;
}

static int perl_prepare(const char *dir, uint64_t n)
{
	(void)n;
	return write_text(dir, "s.pl", perl_script);
}

static void perl_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	script_argv("perl", dir, "s.pl", perl_keys(n), av, buf);
}

/* sort's lines: twice the Lua strings, 800000 at the default (40 MB). */
static uint64_t sort_lines(uint64_t n)
{
	return n * 2;
}

/* Lines of a pseudo-random key and a tail of 5 to 60 bytes, for sort(1). */
static int sort_prepare(const char *dir, uint64_t n)
{
	char path[PATH_MAX], tail[61];
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	FILE *f;
	int err = 0;

	memset(tail, 'x', sizeof(tail) - 1);
	path_of(path, "%s/sort.in", dir);
	if (!(f = fopen(path, "we")))
		return -errno;
	for (uint64_t i = 0; i < sort_lines(n) && !err; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (fprintf(f, "%016llx %.*s\n", (unsigned long long)x, (int)(5 + x % 56),
			    tail) < 0)
			err = -EIO;
	}
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

/* coreutils' sort, the whole input in memory, sorted by two threads. */
static void sort_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	(void)n;
	path_of(buf[0], "%s/sort.in", dir);
	av[0] = "sort", av[1] = "-S", av[2] = "200M", av[3] = "--parallel=2";
	av[4] = buf[0], av[5] = NULL;
}

/* Node.js's and Java's keys: 3/4 of the Lua strings, 300000 at the default. */
static int node_prepare(const char *dir, uint64_t n)
{
	(void)n;
	return write_text(dir, "s.js", node_script);
}

static void node_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	script_argv("node", dir, "s.js", python_keys(n), av, buf);
}

/* Compiled once, with javac, before any run. */
static int java_prepare(const char *dir, uint64_t n)
{
	char cmd[2 * PATH_MAX];
	int err = write_text(dir, "H.java", java_source);

	(void)n;
	if (err)
		return err;
	snprintf(cmd, sizeof(cmd), "javac -d '%s' '%s/H.java' >/dev/null 2>&1", dir, dir);
	return system(cmd) == 0 ? 0 : -ENOENT;
}

static void java_argv(const char *dir, uint64_t n, char **av, char (*buf)[PATH_MAX])
{
	path_of(buf[0], "%s", dir);
	path_of(buf[1], "%llu", (unsigned long long)python_keys(n));
	av[0] = "java", av[1] = "-Xmx512m", av[2] = "-cp", av[3] = buf[0], av[4] = "H";
	av[5] = buf[1], av[6] = NULL;
}

static const struct client clients[] = {
	{ "lua", "lua5.4", "strings built, sorted, concatenated", lua_prepare, lua_argv, NULL, NULL,
	  NULL },
	{ "sqlite", "sqlite3", "rows in a table and its index, a 200 MB page cache", sqlite_prepare,
	  sqlite_argv, "build.sql", NULL, sqlite_rows },
	{ "python", "python3", "dict keys, the items sorted, a digest", python_prepare,
	  python_argv, NULL, "PYTHONMALLOC=malloc", python_keys },
	{ "sort", "sort", "lines sorted in memory by two threads (coreutils)", sort_prepare,
	  sort_argv, NULL, NULL, sort_lines },
	{ "perl", "perl", "hash keys, the values summed in the hash's order", perl_prepare,
	  perl_argv, NULL, NULL, perl_keys },
	{ "node", "node", "Map keys, the entries sorted, a digest (V8's own heap)", node_prepare,
	  node_argv, NULL, NULL, python_keys },
	{ "java", "java", "HashMap keys, the entries sorted, a digest (the JVM's own heap)",
	  java_prepare, java_argv, NULL, NULL, python_keys },
};

#define NR_CLIENTS	(sizeof(clients) / sizeof(clients[0]))

/* Is the program on PATH? */
static bool installed(const char *program)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
	return system(cmd) == 0;
}

/* libemm-preload.so of this program's tree: bench/../heap/. */
static void find_preload(struct ctx *c)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	self[n > 0 ? n : 0] = 0;
	if ((slash = strrchr(self, '/')))
		*slash = 0;
	path_of(c->preload, "%s/../heap/libemm-preload.so", self);
}

/* Debian's libmimalloc.so.2, next to the C library (its multiarch
 * directory), which libemm-heap links: preloaded, it is the whole
 * program's malloc. */
static void find_mimalloc(struct ctx *c)
{
	static const char *const dirs[] = { "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
					    "/usr/lib64", "/usr/lib" };

	c->no_mimalloc = "no libmimalloc.so.2 found (make deps installs it)";
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (!access(path_of(c->mimalloc, "%s/libmimalloc.so.2", dirs[i]), R_OK)) {
			c->no_mimalloc = NULL;
			return;
		}
}


static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
	bool same = fa && fb;
	int ca, cb;

	while (same && ((ca = getc(fa)) != EOF) | ((cb = getc(fb)) != EOF))
		same = ca == cb;
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* In the child: the subject's set-up, the files, then the program. */
static void child(struct ctx *c, const struct client *cl, enum subject s, uint64_t budget,
		  char **av)
{
	char path[PATH_MAX], val[32];
	int fd;

	if (is_kernel(s) && bench_kswap_join(&c->k))
		_exit(126);
	if (s == KERNEL_MI)
		setenv("LD_PRELOAD", c->mimalloc, 1);
	if (s == KERNEL_MI && cl->use_malloc)
		putenv((char *)cl->use_malloc);
	if (s == EMM) {
		snprintf(val, sizeof(val), "%llu", (unsigned long long)budget);
		setenv("EMM_BACKEND", preload_backend, 1);
		setenv("EMM_MEM_LIMIT", val, 1);
		setenv("EMM_SWAP_SIZE", "4G", 1);
		setenv("EMM_SHOW_STATS", "1", 1);
		setenv("EMM_PRELOAD_MMAP", "1", 1);
		setenv("LD_PRELOAD", c->preload, 1);
	}
	path_of(path, "%s/%s.%s", c->dir, cl->name, subject_names[s]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 1) < 0)
		_exit(126);
	path_of(path, "%s/%s.%s.err", c->dir, cl->name, subject_names[s]);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, 2) < 0)
		_exit(126);
	path_of(path, "%s/%s", c->dir, cl->stdin_name ? cl->stdin_name : "");
	fd = open(cl->stdin_name ? path : "/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		_exit(126);
	execvp(av[0], av);
	_exit(127);
}

/* The program's output files from a run go, so the next one starts afresh. */
static void clean(struct ctx *c)
{
	char path[PATH_MAX];

	path_of(path, "%s/lua.out", c->dir);
	unlink(path);
	path_of(path, "%s/t.db", c->dir);
	unlink(path);
	/* A run the OOM killer stopped leaves SQLite's journal: the next run
	 * would take it for its own database's. */
	path_of(path, "%s/t.db-journal", c->dir);
	unlink(path);
}

static double tv_sec(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec / 1e6;
}

/* The first line of the file that is the program's, not the preload's
 * (its warning, its statistics), newline dropped; "" if none. */
static void first_said(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	char line[512];
	unsigned long long v;
	char name[64], nl;

	buf[0] = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "emm-preload:", 12) ||
		    (sscanf(line, "%63[a-z_]%*[ ]%llu%c", name, &v, &nl) == 3 && nl == '\n'))
			continue;
		line[strcspn(line, "\n")] = 0;
		line[len - 1] = 0;	/* cut to fit */
		memcpy(buf, line, len);
		break;
	}
	if (f)
		fclose(f);
}

/* The counters each subject reports for itself, after the run; before:
 * the cgroup's, read before it (the kernel's subjects). */
static void counters(struct ctx *c, const struct client *cl, enum subject s, struct outcome *o,
		     const struct bench_kswap_faults *before, uint64_t oom_before)
{
	char err[PATH_MAX], out[PATH_MAX], plain[PATH_MAX];

	path_of(err, "%s/%s.%s.err", c->dir, cl->name, subject_names[s]);
	path_of(out, "%s/%s.%s", c->dir, cl->name, subject_names[s]);
	path_of(plain, "%s/%s.%s", c->dir, cl->name, subject_names[PLAIN]);
	o->same = same_file(out, plain);
	if (!o->ok)
		first_said(err, o->said, sizeof(o->said));
	if (s == EMM) {
		o->swapins = bench_counter(err, "swapins");
		o->faults_major = bench_counter(err, "faults_major");
		o->faults_minor = bench_counter(err, "faults_minor");
		o->revokes = bench_counter(err, "revokes");
		o->around = bench_counter(err, "revoke_around");
		o->back = bench_counter(err, "refault_around");
		o->no_stats = !bench_counter(err, "limit_bytes");
		o->ok = o->ok && !o->no_stats;
	} else if (is_kernel(s)) {
		struct bench_kswap_faults now = bench_kswap_faults(&c->k);

		o->swapins = now.swapins - before->swapins;
		o->faults_major = now.major - before->major;
		o->oom = bench_kswap_counter(&c->k, "memory.oom_control", "oom_kill") > oom_before;
	}
}

/* One run of the program as the subject has it. */
static int run_program(struct ctx *c, const struct client *cl, enum subject s, uint64_t budget,
		       struct outcome *o)
{
	char buf[3][PATH_MAX], *av[8];
	struct bench_kswap_faults before = { 0 };
	uint64_t oom_before = 0, t0;
	struct rusage ru;
	int status;
	pid_t pid;

	cl->argv(c->dir, c->n, av, buf);
	if (is_kernel(s)) {
		bench_kswap_set_limit(&c->k, budget);
		before = bench_kswap_faults(&c->k);
		oom_before = bench_kswap_counter(&c->k, "memory.oom_control", "oom_kill");
	}
	fflush(stdout);
	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child(c, cl, s, budget, av);
	if (is_kernel(s))
		bench_kswap_child(&c->k, pid);
	leftovers.running = pid;
	if (wait4(pid, &status, 0, &ru) < 0)
		return -errno;
	leftovers.running = 0;
	*o = (struct outcome){ .ran = true, .sec = (bench_now_ns() - t0) / 1e9,
			       .cpu = tv_sec(ru.ru_utime) + tv_sec(ru.ru_stime),
			       .maxrss = (uint64_t)ru.ru_maxrss * 1024, .majflt = (uint64_t)ru.ru_majflt,
			       .ok = WIFEXITED(status) && WEXITSTATUS(status) == 0,
			       .status = status };
	if (is_kernel(s))
		bench_kswap_child(&c->k, 0);
	counters(c, cl, s, o, &before, oom_before);
	clean(c);
	return 0;
}

/* The best (fastest successful) of the runs. */
static void best_of(struct ctx *c, const struct client *cl, enum subject s, uint64_t budget,
		    unsigned runs, struct outcome *best)
{
	*best = (struct outcome){ 0 };
	for (unsigned r = 0; r < runs; r++) {
		struct outcome o;

		if (run_program(c, cl, s, budget, &o) < 0)
			continue;
		if (!best->ran || (o.ok && (!best->ok || o.sec < best->sec)))
			*best = o;
	}
}

static void row(const char *budget, enum subject s, const struct outcome *o)
{
	printf("  %-6s %-15s", budget, subject_names[s]);
	if (!o->ran) {
		printf(" did not start\n");
		return;
	}
	printf(" %8.2f %7.2f %8.0f", o->sec, o->cpu, o->maxrss / MIB);
	if (s == PLAIN)
		printf(" %9s %9s", "-", "-");
	else
		printf(" %9llu %9llu", (unsigned long long)o->swapins,
		       (unsigned long long)o->faults_major);
	printf("  %s", !o->ok ? "FAILED" : o->same ? "same" : "DIFFERENT");
	if (!o->ok && !o->oom && WIFSIGNALED(o->status))
		printf(", killed by signal %d", WTERMSIG(o->status));
	else if (!o->ok && WEXITSTATUS(o->status))
		printf(", exit status %d", WEXITSTATUS(o->status));
	printf("%s%s\n", o->oom ? ", killed by the OOM killer" : "",
	       o->no_stats ? ", no emm statistics at exit: the preload did not take" : "");
	if (!o->ok && o->said[0])
		printf("  %-6s %-15s it said: %s\n", "", "", o->said);
}

/* pattern (client-budget) and the subject's figures as data lines; a run
 * that failed (killed by the OOM killer, an error) as unit=failed. */
static void data(const char *pattern, enum subject s, const struct outcome *o)
{
	if (o->ran && !o->ok)
		bench_data("clients", pattern, subject_names[s], 1, "failed");
	if (!o->ran || !o->ok)
		return;
	bench_data("clients", pattern, subject_names[s], o->sec * 1000, "ms");
	if (s != PLAIN)
		bench_data("clients", pattern, subject_names[s], (double)o->swapins, "swapins");
}

static void budget_name(uint64_t b, char *out, size_t len)
{
	if (b % (1 << 20) == 0)
		snprintf(out, len, "%lluM", (unsigned long long)(b >> 20));
	else
		snprintf(out, len, "%lluK", (unsigned long long)(b >> 10));
}

/* emm against a baseline: speed, and swap-ins as a ratio (or both counts,
 * when the baseline took none). */
static void ratio_line(const char *name, const char *what, const struct outcome *e,
		       const struct outcome *base)
{
	printf("  %-6s %s: speed %.2f, ", name, what, base->sec / e->sec);
	if (base->swapins)
		printf("swap-ins %.2fx\n", (double)e->swapins / base->swapins);
	else
		printf("swap-ins %llu against none\n", (unsigned long long)e->swapins);
}

/* Under half its peak, a program runs at least as fast on emm as on the
 * kernel's swap, with no more swap-ins; or finishes where the kernel's
 * OOM killer stops it. */
static void goal_line(const char *client, const struct outcome *e, const struct outcome *k)
{
	bool met = e->ok && (!k->ok || (e->sec <= k->sec && e->swapins <= k->swapins));

	printf("goal: %-7s under half its peak: emm >= 1.0x kernel-swap, swap-ins <= kernel's: %s",
	       client, met ? "met" : "NOT met");
	if (e->ok && k->ok && k->swapins)
		printf(" (%.2fx, swap-ins %.2fx)\n", k->sec / e->sec,
		       (double)e->swapins / k->swapins);
	else if (e->ok && k->ok)
		printf(" (%.2fx, swap-ins %llu against none)\n", k->sec / e->sec,
		       (unsigned long long)e->swapins);
	else
		printf(" (%s)\n", !e->ok ? "emm's run failed" : "the kernel's run failed");
}

/* Budget i of the list for a program whose unconstrained run peaked at
 * peak bytes: as given, or its share of the peak, in whole MiB (4 at
 * least). */
static uint64_t budget_of(const struct bench_opts *o, unsigned i, uint64_t peak)
{
	uint64_t mib = (peak * o->limit_pct[i] / 100 + (1 << 20) - 1) >> 20;

	if (!o->limit_pct[i])
		return o->limits[i];
	return (mib < 4 ? 4 : mib) << 20;
}

/* The subjects under budget i, their rows, the ratio, the data lines: a
 * share of the peak names its lines by the share (lua-50pc), so that runs
 * compare whatever the peak was. */
static void under_budget(struct ctx *c, const struct client *cl, const struct bench_opts *o,
			 unsigned i, const struct outcome *plain)
{
	struct outcome e = { 0 }, k = { 0 }, km = { 0 };
	uint64_t budget = budget_of(o, i, plain->maxrss);
	unsigned runs = o->runs;
	char name[32], pattern[64];

	budget_name(budget, name, sizeof(name));
	if (o->limit_pct[i]) {
		printf("  %-6s %u%% of the unconstrained peak\n", name, o->limit_pct[i]);
		snprintf(pattern, sizeof(pattern), "%s-%upc", cl->name, o->limit_pct[i]);
	} else {
		snprintf(pattern, sizeof(pattern), "%s-%s", cl->name, name);
	}
	if (!c->no_emm) {
		best_of(c, cl, EMM, budget, runs, &e);
		row(name, EMM, &e);
		if (e.ran && !e.no_stats)
			printf("  %-6s %-15s minor faults %llu, revokes %llu (pages around %llu,"
			       " back %llu)\n", "", "", (unsigned long long)e.faults_minor,
			       (unsigned long long)e.revokes, (unsigned long long)e.around,
			       (unsigned long long)e.back);
	}
	if (!c->no_kernel) {
		best_of(c, cl, KERNEL, budget, runs, &k);
		row(name, KERNEL, &k);
	}
	if (!c->no_kernel && !c->no_mimalloc) {
		best_of(c, cl, KERNEL_MI, budget, runs, &km);
		row(name, KERNEL_MI, &km);
	}
	if (e.ok && k.ok)
		ratio_line(name, "emm/kernel", &e, &k);
	if (o->limit_pct[i] == 50 && !c->no_emm && !c->no_kernel)
		goal_line(cl->name, &e, &k);
	if (e.ok && km.ok)
		ratio_line(name, "emm/kernel+mimalloc (one allocator)", &e, &km);
	data(pattern, PLAIN, plain);
	data(pattern, EMM, &e);
	data(pattern, KERNEL, &k);
	data(pattern, KERNEL_MI, &km);
}

static void one_client(struct ctx *c, const struct client *cl, const struct bench_opts *o,
		       const struct outcome *plain)
{
	uint64_t n = cl->units ? cl->units(c->n) : c->n;

	printf("\n%s: %llu %s\n", cl->name, (unsigned long long)n, cl->what);
	printf("  %-6s %-15s %8s %7s %8s %9s %9s  %s\n", "budget", "subject", "wall s", "cpu s",
	       "peak MiB", "swap-ins", "major", "output");
	row("-", PLAIN, plain);
	if (!plain->ok) {
		printf("  the unconstrained run failed: the client is skipped\n");
		return;
	}
	for (unsigned i = 0; i < o->nr_limits; i++)
		under_budget(c, cl, o, i, plain);
}

/* The CPUs the bench may run on: each program inherits them, and the
 * threads emm starts in it inherit them from the program (emm-tuning(7),
 * "emm's threads and the program's CPUs"). */
static void print_cpus(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return;
	printf("  CPUs: ");
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			printf("%s%d", n++ ? "," : "", i);
	printf(" of %ld online, the bench's own affinity (taskset(1)): every program runs\n"
	       "    on them, and emm's threads with it; the kernel's reclaim runs anywhere\n",
	       sysconf(_SC_NPROCESSORS_ONLN));
}

static void header(const struct ctx *c, const struct bench_opts *o)
{
	printf("clients: unmodified programs, each unconstrained, under emm and under the\n"
	       "  kernel's swap; best of %u run(s); output compared with the unconstrained run's\n"
	       "  %s: LD_PRELOAD=%s EMM_BACKEND=%s\n"
	       "    EMM_MEM_LIMIT=budget EMM_SWAP_SIZE=4G EMM_PRELOAD_MMAP=1 (the program's\n"
	       "    own private mappings on emm too); swap-ins and major faults from its\n"
	       "    statistics at exit (EMM_SHOW_STATS=1), and below its row its minor faults\n"
	       "    and revokes (emm_stats(3)): what finding the pages in use costs it, which\n"
	       "    the kernel reads from accessed bits; of the pages revoked, those revoked\n"
	       "    around others (revoke_around) and those of them touched again (refault_around)\n"
	       "  kernel-swap: a memory cgroup v1 with memory.limit_in_bytes = budget (which holds\n"
	       "    the program's page cache too) and a swap file; swap-ins are the cgroup's\n"
	       "    workingset_refault_anon, major faults its pgmajfault\n"
	       "  kernel+mimalloc: the same, with LD_PRELOAD=%s, the allocator\n"
	       "    libemm-heap is built on: the kernel's paging on emm's heap layout\n"
	       "  python: kernel+mimalloc runs it with PYTHONMALLOC=malloc, so that its objects\n"
	       "    come from malloc; emm and kernel-swap with its own allocator, the default\n"
	       "  node, java: their heaps are their own mappings (emm's through\n"
	       "    EMM_PRELOAD_MMAP), not malloc's: kernel+mimalloc moves only their malloc\n"
	       "  peak MiB: the process's maximum resident set as the kernel counts it\n",
	       o->runs, emm_subject, c->preload, preload_backend,
	       c->no_mimalloc ? "libmimalloc.so.2" : c->mimalloc);
	print_cpus();
	if (c->no_mimalloc)
		printf("kernel+mimalloc: skipped: %s\n", c->no_mimalloc);
	if (c->no_emm)
		printf("%s: skipped: %s\n", emm_subject, c->no_emm);
	if (c->no_kernel)
		printf("kernel-swap: skipped: %s\n", c->no_kernel);
}

/* Which subjects can run; the kernel's swap is sized from the programs' peaks. */
static void subjects(struct ctx *c, const struct bench_opts *o, uint64_t peak)
{
	static char why[300];
	uint64_t top = 0;

	if (!bench_offered(o->backend > 0 ? o->backend : EMM_BACKEND_UFFD))
		c->no_emm = o->backend > 0 ? "no instance on that backend here" :
			    "no instance on the uffd backend here; on signal, the programs' "
			    "system calls on non-resident heap pages fail with EFAULT "
			    "(--backend signal runs them there)";
	else if (access(c->preload, R_OK))
		c->no_emm = "no libemm-preload.so in the tree (make)";
	for (unsigned i = 0; i < o->nr_limits; i++)
		top = budget_of(o, i, peak) > top ? budget_of(o, i, peak) : top;
	if (bench_kswap_setup(&c->k, top, 2 * peak + (256ULL << 20)) < 0) {
		snprintf(why, sizeof(why), "%s", c->k.why);
		c->no_kernel = why;
	} else {
		c->kswap = true;
	}
}

static int make_dir(struct ctx *c)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char name[64];

	snprintf(c->dir, sizeof(c->dir), "%s/emm-bench-clients-XXXXXX", bench_tmpdir());
	if (!mkdtemp(c->dir)) {
		fprintf(stderr, "emm-bench: clients: %s: %s\n", c->dir, strerror(errno));
		return -1;
	}
	snprintf(leftovers.dir, sizeof(leftovers.dir), "%s", c->dir);
	leftover("s.lua"), leftover("lua.out"), leftover("build.sql"), leftover("t.db");
	leftover("s.py"), leftover("sort.in"), leftover("s.pl");
	leftover("t.db-journal"), leftover("s.js"), leftover("H.java"), leftover("H.class");
	for (size_t i = 0; i < NR_CLIENTS; i++)
		for (int s = 0; s < NR_SUBJECTS; s++) {
			snprintf(name, sizeof(name), "%s.%s", clients[i].name, subject_names[s]);
			leftover(name);
			snprintf(name, sizeof(name), "%s.%s.err", clients[i].name, subject_names[s]);
			leftover(name);
		}
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(signals[i], &sa, &leftovers.old[i]);
	return 0;
}

static void remove_dir(struct ctx *c)
{
	char path[PATH_MAX];

	for (int i = 0; i < 3; i++)
		sigaction(signals[i], &leftovers.old[i], NULL);
	for (int i = 0; i < leftovers.nr_files; i++)
		unlink(path_of(path, "%s/%s", c->dir, leftovers.files[i]));
	if (rmdir(c->dir))
		fprintf(stderr, "emm-bench: clients: could not remove %s: %s\n", c->dir,
			strerror(errno));
}

int bench_clients(const struct bench_opts *o)
{
	struct bench_opts opts = *o;
	struct ctx c = { .n = o->ops ? o->ops : DEFAULT_N };
	struct outcome plain[NR_CLIENTS] = { 0 };
	bool have[NR_CLIENTS];
	uint64_t peak = 0;

	if (!opts.nr_limits) {
		opts.limit_pct[0] = 50;	/* half its peak: what the program would be given */
		opts.limits[1] = 64ULL << 20, opts.limits[2] = 48ULL << 20;
		opts.nr_limits = 3;
	}
	if (o->backend > 0) {
		static const char *const names[] = { "auto", "signal", "uffd", "uffd-sigbus" };

		preload_backend = names[o->backend];
		snprintf(emm_subject, sizeof(emm_subject), "emm-%s", preload_backend);
	}
	find_preload(&c);
	find_mimalloc(&c);
	if (make_dir(&c) < 0)
		return 1;
	/* Unconstrained first: their peaks size the kernel's swap file. */
	for (size_t i = 0; i < NR_CLIENTS; i++) {
		have[i] = installed(clients[i].program) && clients[i].prepare(c.dir, c.n) == 0;
		if (have[i])
			best_of(&c, &clients[i], PLAIN, 0, opts.runs, &plain[i]);
		peak = plain[i].maxrss > peak ? plain[i].maxrss : peak;
	}
	subjects(&c, &opts, peak);
	header(&c, &opts);
	for (size_t i = 0; i < NR_CLIENTS; i++) {
		if (have[i])
			one_client(&c, &clients[i], &opts, &plain[i]);
		else
			printf("\n%s: skipped: %s not installed (make deps)\n", clients[i].name,
			       clients[i].program);
	}
	if (c.kswap)
		bench_kswap_teardown(&c.k);
	remove_dir(&c);
	return 0;
}
