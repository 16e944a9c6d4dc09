/* SPDX-License-Identifier: MIT */
/* The smallest emm program: open, reserve, map, write, read, close. */
#include <emm.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	struct emm *mm;
	char *p;
	int err;

	err = emm_open(NULL, &mm);
	if (err == 0)
		err = emm_reserve(mm, 1 << 30, (void **)&p);	/* address space only */
	if (err == 0)
		err = emm_map(mm, p, 1 << 20, NULL);		/* 1 MiB, read-write */
	if (err < 0) {
		fprintf(stderr, "hello: %s\n", strerror(-err));
		return 1;
	}
	strcpy(p, "hello from emm");	/* the first touch faults the page in */
	printf("%s\n", p);
	return emm_close(mm) < 0;
}
