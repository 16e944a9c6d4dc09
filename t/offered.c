/* SPDX-License-Identifier: MIT */
/* The fault backends this process can have, one name a line ("auto": the one EMM_BACKEND_AUTO picks), for make check. */
#include <stdio.h>
#include <string.h>

#include "emm.h"

static const char *const names[] = { "auto", "signal", "uffd", "uffd-sigbus" };

/* The backend an instance opened with backend b uses, or -1. */
static int opens_as(int b)
{
	EMM_OPTS(emm_opts, o, .backend = b, .mem_limit = 16 << 20);
	struct emm *mm;
	int got;

	if (emm_open(&o, &mm))
		return -1;
	got = emm_backend(mm);
	emm_close(mm);
	return got;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "auto")) {
		int b = opens_as(EMM_BACKEND_AUTO);

		puts(b > 0 && b < 4 ? names[b] : "none");
		return b > 0 ? 0 : 1;
	}
	for (int b = EMM_BACKEND_SIGNAL; b <= EMM_BACKEND_UFFD_SIGBUS; b++)
		if (opens_as(b) == b)
			puts(names[b]);
	return 0;
}
