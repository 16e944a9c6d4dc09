/* SPDX-License-Identifier: MIT */
/* The statistics page: an instance's counters in shared memory for emmstat, copied on a reader's request. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "internal.h"
#include "stats_shm.h"
#include "util.h"

struct stats_shm {
	struct stats_shm_page *page;
	char name[64];
	pthread_t thread;
	_Atomic bool stop;
	pid_t pid;			/* the process that made the object */
	struct stats_shm *next;		/* on open_objects */
};

/* Instances this process opened: the N of emm.PID.N. */
static _Atomic uint32_t instances;

/* The objects of instances not closed yet, for unlink_at_exit. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stats_shm *open_objects;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* The words are in a shared mapping and readers are other processes:
 * these futexes must not be process-private. */
static void shared_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static void shared_wait(_Atomic uint32_t *w, uint32_t seen)
{
	syscall(SYS_futex, w, FUTEX_WAIT, seen, NULL, NULL, 0);
}

/* Copy the counters into the page under its seqlock. */
static void publish(struct emm *mm, struct stats_shm_page *pg)
{
	EMM_OPTS(emm_stats, st);
	uint32_t seq = atomic_load_explicit(&pg->seq, memory_order_relaxed);

	emm_stats(mm, &st);
	atomic_store_explicit(&pg->seq, seq + 1, memory_order_relaxed);
	/* Release fence: a reader that sees a value written below also sees
	 * the odd seq, and retries. */
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < nr_stats_fields && i < STATS_SHM_FIELDS; i++)
		atomic_store_explicit(&pg->field[i].value,
				      *(const uint64_t *)((const char *)&st + stats_fields[i].off),
				      memory_order_relaxed);
	atomic_store_explicit(&pg->published_ns, now_ns(), memory_order_relaxed);
	/* Release: the values are written before seq is even again. */
	atomic_store_explicit(&pg->seq, seq + 2, memory_order_release);
	shared_wake(&pg->seq);
}

/* The publisher: asleep until a reader asks, then one copy. */
static void *publisher(void *arg)
{
	struct emm *mm = arg;
	struct stats_shm *s = mm->stats_shm;
	sigset_t all;

	sig_fill_async(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		uint32_t seen = atomic_load(&s->page->request);

		/* After reading request: stats_shm_close sets stop before it
		 * bumps request, so either this sees stop or the wait below
		 * sees the bump. */
		if (atomic_load(&s->stop))
			break;
		publish(mm, s->page);
		shared_wait(&s->page->request, seen);
	}
	return NULL;
}

static void page_init(struct stats_shm_page *pg, const struct emm *mm, uint32_t n)
{
	memcpy(pg->magic, STATS_SHM_MAGIC, sizeof(STATS_SHM_MAGIC));
	pg->version = STATS_SHM_VERSION;
	pg->pid = (int32_t)getpid();
	pg->instance = n;
	snprintf(pg->backend, sizeof(pg->backend), "%s", mm->backend->name);
	for (size_t i = 0; i < nr_stats_fields && i < STATS_SHM_FIELDS; i++)
		snprintf(pg->field[i].name, sizeof(pg->field[i].name), "%s", stats_fields[i].name);
	pg->nfields = (uint32_t)MIN(nr_stats_fields, (size_t)STATS_SHM_FIELDS);
}

/* A new object; one left by a dead process whose PID we now have is
 * replaced (this process has not made that name yet). */
static int create_object(const char *name)
{
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST) {
		shm_unlink(name);
		fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, sizeof(struct stats_shm_page)) < 0) {
		int err = -errno;

		close(fd);
		shm_unlink(name);
		return err;
	}
	return fd;
}

static int map_page(struct stats_shm *s, struct emm *mm)
{
	uint32_t n = atomic_fetch_add(&instances, 1);
	int fd;

	snprintf(s->name, sizeof(s->name), "/" STATS_SHM_PREFIX "%d.%u", (int)getpid(), n);
	fd = create_object(s->name);
	if (fd < 0)
		return fd;
	s->page = mmap(NULL, sizeof(*s->page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (s->page == MAP_FAILED) {
		shm_unlink(s->name);
		return -errno;
	}
	page_init(s->page, mm, n);
	return 0;
}

static void unmap_page(struct stats_shm *s)
{
	shm_unlink(s->name);
	munmap(s->page, sizeof(*s->page));
}

/* The objects of processes that died without emm_close (killed, or a
 * forked child that _exits): each instance opened removes those it may,
 * so that they do not pile up in /dev/shm. */
static void reap_stale(void)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char name[NAME_MAX + 2];
		unsigned n;
		int pid;

		if (sscanf(de->d_name, STATS_SHM_PREFIX "%d.%u", &pid, &n) != 2 || pid <= 0 ||
		    pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(name, sizeof(name), "/%s", de->d_name);
		shm_unlink(name);
	}
	if (d)
		closedir(d);
}

/*
 * A program that exits without emm_close (most do: a preloaded heap lives
 * to the end) would leave its objects until another instance reaped them,
 * and emmstat would go on reading a dead process's last figures. The names
 * go at exit; the mappings with the process. A forked child's list holds
 * its parent's objects: not its to remove. No wait for the lock at exit:
 * a thread stopped inside emm_open may hold it.
 */
static void unlink_at_exit(void)
{
	if (pthread_mutex_trylock(&open_lock))
		return;
	for (struct stats_shm *s = open_objects; s; s = s->next)
		if (s->pid == getpid())
			shm_unlink(s->name);
	pthread_mutex_unlock(&open_lock);
}

static void register_atexit(void)
{
	atexit(unlink_at_exit);
}

static void track(struct stats_shm *s)
{
	pthread_mutex_lock(&open_lock);
	s->next = open_objects;
	open_objects = s;
	pthread_mutex_unlock(&open_lock);
}

static void untrack(struct stats_shm *s)
{
	pthread_mutex_lock(&open_lock);
	for (struct stats_shm **pp = &open_objects; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&open_lock);
}

/*
 * Publish the instance's statistics for emmstat, unless EMM_STATS_SHM=0.
 * Statistics are a convenience: when shared memory cannot be had, emm goes
 * on without (and says so under EMM_VERBOSE); this never fails emm_open.
 */
int stats_shm_open(struct emm *mm)
{
	struct stats_shm *s;
	int err;

	if (!(mm->cfg.flags & CFG_STATS_SHM))
		return 0;
	reap_stale();
	s = calloc(1, sizeof(*s));
	if (!s)
		return 0;
	err = map_page(s, mm);
	if (!err) {
		mm->stats_shm = s;
		err = thread_start(&s->thread, "emm-stats", -1, publisher, mm);
		if (err)
			unmap_page(s);
	}
	if (!err) {
		s->pid = getpid();
		pthread_once(&atexit_once, register_atexit);
		track(s);
	}
	if (err) {
		mm->stats_shm = NULL;
		free(s);
		emm_log(mm, "no statistics page for emmstat: %s", strerror(-err));
		return 0;
	}
	emm_log(mm, "statistics for emmstat in /dev/shm%s", s->name);
	return 0;
}

void stats_shm_close(struct emm *mm)
{
	struct stats_shm *s = mm->stats_shm;

	if (!s)
		return;
	atomic_store(&s->stop, true);
	atomic_fetch_add(&s->page->request, 1);
	shared_wake(&s->page->request);
	pthread_join(s->thread, NULL);
	untrack(s);
	unmap_page(s);
	mm->stats_shm = NULL;
	free(s);
}
