/* SPDX-License-Identifier: MIT */
/* What EMM_ADV_DONTNEED and reclaim do with dirty FILE and PAGER pages, as emm_advise(3) and emm_map(3) say. */
#include "emm.h"
#include "tap.h"
#include "util.h"

#define PAGE	4096UL
#define LEN	(16 * PAGE)

static int fail_wb;

static int fill(void *arg, uint64_t off, void *buf, size_t len)
{
	(void)arg;
	memset(buf, 'f', len);
	return 0;
}

static int writeback(void *arg, uint64_t off, const void *buf, size_t len)
{
	(void)arg, (void)off, (void)buf, (void)len;
	return fail_wb ? -EIO : 0;
}

static const struct emm_pager_ops no_wb = { .fill = fill };
static const struct emm_pager_ops with_wb = { .fill = fill, .writeback = writeback };

static void file_dontneed(struct emm *mm, char *p)
{
	int fd = tmp_file("dontneed", NULL, 0);
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_FILE, .fd = fd);
	char c = 0;

	if (ftruncate(fd, LEN) || emm_map(mm, p, LEN, &o))
		bail("FILE VMA");
	p[PAGE] = 'w';
	is_int(emm_advise(mm, p, LEN, EMM_ADV_DONTNEED), 0, "DONTNEED over a dirty FILE page");
	ok(pread(fd, &c, 1, PAGE) == 1 && c == 'w', "the file holds the change");
	is_int(p[PAGE], 'w', "and the page reads it back");
	emm_unmap(mm, p, LEN);
	close(fd);
}

static void pager_without_writeback(struct emm *mm, char *p)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_PAGER, .pager = &no_wb);
	uint64_t before;

	if (emm_map(mm, p, LEN, &o))
		bail("PAGER VMA");
	p[0] = 'w';
	before = stats(mm).swapouts;
	is_int(emm_advise(mm, p, LEN, EMM_ADV_PAGEOUT), 0, "PAGEOUT of a dirty page of a pager without writeback");
	ok(stats(mm).swapouts > before, "it went to the swap file");
	is_int(p[0], 'w', "and kept its change");
	is_int(emm_advise(mm, p, LEN, EMM_ADV_DONTNEED), 0, "DONTNEED over it");
	is_int(p[0], 'f', "drops the change: fill runs again");
	emm_unmap(mm, p, LEN);
}

static void pager_failing_writeback(struct emm *mm, char *p)
{
	EMM_OPTS(emm_map_opts, o, .prot = EMM_PROT_READ | EMM_PROT_WRITE,
		 .policy = EMM_POLICY_PAGER, .pager = &with_wb);

	if (emm_map(mm, p, LEN, &o))
		bail("PAGER VMA");
	p[0] = 'w';
	p[PAGE] = 'w';
	fail_wb = 1;
	is_int(emm_advise(mm, p, LEN, EMM_ADV_DONTNEED), -EIO, "DONTNEED when writeback fails: -EIO");
	ok(p[0] == 'w' && p[PAGE] == 'w', "nothing was dropped");
	fail_wb = 0;
	is_int(emm_advise(mm, p, LEN, EMM_ADV_DONTNEED), 0, "DONTNEED once writeback succeeds");
	is_int(p[0], 'f', "drops the pages");
	emm_unmap(mm, p, LEN);
}

int main(void)
{
	struct emm *mm;
	char *p;

	plan(13);
	if (emm_open(NULL, &mm) || emm_reserve(mm, 2 << 20, (void **)&p))
		bail("emm_open/emm_reserve failed");
	file_dontneed(mm, p);
	pager_without_writeback(mm, p);
	pager_failing_writeback(mm, p);
	is_int(emm_close(mm), 0, "emm_close");
	return done_testing();
}
