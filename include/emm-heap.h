/* SPDX-License-Identifier: MIT */
/* emm-heap: a malloc whose memory lives under an emm budget (libemm-heap). */
#ifndef EMM_HEAP_H
#define EMM_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include <emm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct emm_heap;

struct emm_heap_opts {
	size_t sz;
};

struct emm_heap_stats {
	size_t sz;
	uint64_t allocated_bytes;	/* usable bytes of the blocks not freed */
	uint64_t region_used_bytes;	/* bytes of the region mimalloc holds committed */
	uint64_t resident_bytes;	/* bytes of the region in emm's physmem */
	uint64_t swapped_bytes;		/* bytes of the region in emm's swap */
};

EMM_API int emm_heap_create(struct emm *mm, size_t len, const struct emm_heap_opts *opts,
			    struct emm_heap **hp);
EMM_API int emm_heap_destroy(struct emm_heap *h);
EMM_API void *emm_heap_malloc(struct emm_heap *h, size_t n);
EMM_API void *emm_heap_calloc(struct emm_heap *h, size_t n, size_t size);
EMM_API void *emm_heap_realloc(struct emm_heap *h, void *p, size_t n);
EMM_API void *emm_heap_aligned_alloc(struct emm_heap *h, size_t align, size_t n);
EMM_API void emm_heap_free(struct emm_heap *h, void *p);
EMM_API size_t emm_heap_usable_size(struct emm_heap *h, const void *p);
EMM_API int emm_heap_collect(struct emm_heap *h, int force);
EMM_API int emm_heap_stats(struct emm_heap *h, struct emm_heap_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* EMM_HEAP_H */
