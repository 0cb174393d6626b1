// SPDX-License-Identifier: MIT
/*
 * Blocks from 2 MiB slabs; the contract is in slab.h.
 *
 * A slab is one anonymous mapping aligned to its size. Its first blocks hold the header
 * (list links, counts and a bitmap of free blocks); the bitmap lives in the header, not
 * in the free blocks, because a free block on small pages is handed back to the kernel
 * and reads as zeros afterwards.
 *
 * Huge pages: madvise(MADV_HUGEPAGE) on the slab, so that the first touch faults in one
 * 2 MiB page. A store's first slab stays on small pages, so a small keydir costs only the
 * pages it touches. A huge slab is demoted (MADV_NOHUGEPAGE, then MADV_DONTNEED over its
 * free blocks, which splits the huge page) once frees leave it under half of the most it
 * ever had in use; the high-water mark keeps the slab still being filled, which has few
 * blocks in use, from being demoted by its first free.
 */
#include "slab.h"

#include <stdint.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define BC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BC_ASAN 1
#endif
#endif
#ifdef BC_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MAX_BLOCKS (BC_SLAB_SIZE / 1024)

struct bc_slab {
	struct bc_slab *prev, *next; /* in the owner's list, unless it is the spare */
	uint32_t used; /* blocks handed out */
	uint32_t high; /* the most ever handed out at once */
	bool huge;
	uint64_t free[MAX_BLOCKS / 64]; /* bit i: block i is free */
};

static inline size_t blocks(const struct bc_slabs *sl)
{
	return BC_SLAB_SIZE / sl->unit;
}

static inline size_t hdr_blocks(const struct bc_slabs *sl)
{
	return (sizeof(struct bc_slab) + sl->unit - 1) / sl->unit;
}

static inline bool full(const struct bc_slabs *sl, const struct bc_slab *s)
{
	return s->used == blocks(sl) - hdr_blocks(sl);
}

static inline struct bc_slab *slab_of(const void *p)
{
	return (struct bc_slab *)((uintptr_t)p & ~(uintptr_t)(BC_SLAB_SIZE - 1));
}

static size_t slab_bytes(const struct bc_slabs *sl, const struct bc_slab *s)
{
	return s->huge ? BC_SLAB_SIZE : (hdr_blocks(sl) + s->used) * sl->unit;
}

/* The list keeps every slab with a free block before every full one. */
static void unlink_slab(struct bc_slabs *sl, struct bc_slab *s)
{
	*(s->prev ? &s->prev->next : &sl->head) = s->next;
	*(s->next ? &s->next->prev : &sl->tail) = s->prev;
}

static void link_slab(struct bc_slabs *sl, struct bc_slab *s, bool at_head)
{
	s->prev = at_head ? NULL : sl->tail;
	s->next = at_head ? sl->head : NULL;
	*(s->prev ? &s->prev->next : &sl->head) = s;
	*(s->next ? &s->next->prev : &sl->tail) = s;
}

void bc_slabs_init(struct bc_slabs *sl, size_t unit)
{
	*sl = (struct bc_slabs){.unit = unit};
}

/* A new slab with every block after the header free, or NULL. */
static struct bc_slab *slab_map(struct bc_slabs *sl)
{
	/* twice the size, then trim to an aligned slab */
	uint8_t *p = mmap(NULL, 2 * BC_SLAB_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *a =
		(uint8_t *)(((uintptr_t)p + BC_SLAB_SIZE - 1) & ~(uintptr_t)(BC_SLAB_SIZE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + BC_SLAB_SIZE < p + 2 * BC_SLAB_SIZE)
		munmap(a + BC_SLAB_SIZE, (size_t)(p + 2 * BC_SLAB_SIZE - (a + BC_SLAB_SIZE)));

	struct bc_slab *s = (struct bc_slab *)a;
	s->huge = sl->slabs > 0 && !sl->small_only && !madvise(a, BC_SLAB_SIZE, MADV_HUGEPAGE);
	for (size_t i = hdr_blocks(sl); i < blocks(sl); i++)
		s->free[i / 64] |= UINT64_C(1) << (i % 64);
	POISON(a + hdr_blocks(sl) * sl->unit, BC_SLAB_SIZE - hdr_blocks(sl) * sl->unit);
	sl->slabs++;
	sl->bytes += slab_bytes(sl, s);
	return s;
}

static void slab_unmap(struct bc_slabs *sl, struct bc_slab *s)
{
	sl->bytes -= slab_bytes(sl, s);
	sl->slabs--;
	UNPOISON(s, BC_SLAB_SIZE);
	munmap(s, BC_SLAB_SIZE);
}

void *bc_slab_alloc(struct bc_slabs *sl)
{
	struct bc_slab *s = sl->head;

	if (!s || full(sl, s)) {
		s = sl->spare;
		sl->spare = NULL;
		if (!s && !(s = slab_map(sl)))
			return NULL;
		link_slab(sl, s, true);
	}
	size_t w = 0;
	while (!s->free[w])
		w++;
	size_t i = w * 64 + (size_t)__builtin_ctzll(s->free[w]);
	size_t before = slab_bytes(sl, s);
	s->free[w] &= s->free[w] - 1;
	s->used++;
	if (s->used > s->high)
		s->high = s->used;
	sl->bytes += slab_bytes(sl, s) - before;
	if (full(sl, s) && s->next) {
		unlink_slab(sl, s);
		link_slab(sl, s, false);
	}
	uint8_t *p = (uint8_t *)s + i * sl->unit;
	UNPOISON(p, sl->unit);
	return p;
}

/* Hand every free block of s back to the kernel, a run of neighbours per call. */
static void discard_free(const struct bc_slabs *sl, struct bc_slab *s)
{
	size_t n = blocks(sl), i = hdr_blocks(sl);

	while (i < n) {
		if (!(s->free[i / 64] >> (i % 64) & 1)) {
			i++;
			continue;
		}
		size_t j = i + 1;
		while (j < n && s->free[j / 64] >> (j % 64) & 1)
			j++;
		madvise((uint8_t *)s + i * sl->unit, (j - i) * sl->unit, MADV_DONTNEED);
		i = j;
	}
}

void bc_slab_free(struct bc_slabs *sl, void *p)
{
	struct bc_slab *s = slab_of(p);
	size_t i = (size_t)((uint8_t *)p - (uint8_t *)s) / sl->unit;
	size_t before = slab_bytes(sl, s);
	bool was_full = full(sl, s);

	POISON(p, sl->unit);
	s->free[i / 64] |= UINT64_C(1) << (i % 64);
	s->used--;
	if (!s->huge) {
		madvise(p, sl->unit, MADV_DONTNEED);
	} else if (s->used < s->high / 2) {
		madvise(s, BC_SLAB_SIZE, MADV_NOHUGEPAGE);
		s->huge = false;
		discard_free(sl, s);
	}
	sl->bytes -= before - slab_bytes(sl, s);
	if (s->used) {
		if (was_full && s->prev) {
			unlink_slab(sl, s);
			link_slab(sl, s, true);
		}
		return;
	}
	unlink_slab(sl, s);
	s->high = 0;
	if (sl->spare) {
		slab_unmap(sl, s);
		return;
	}
	sl->spare = s;
}

void bc_slabs_fini(struct bc_slabs *sl)
{
	while (sl->head) {
		struct bc_slab *s = sl->head;
		sl->head = s->next;
		slab_unmap(sl, s);
	}
	if (sl->spare)
		slab_unmap(sl, sl->spare);
	sl->spare = NULL;
	sl->tail = NULL;
}
