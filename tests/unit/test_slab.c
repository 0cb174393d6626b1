// SPDX-License-Identifier: MIT
/*
 * Unit tests for slab.c: blocks aligned, distinct and keeping their bytes across many
 * slabs; the memory figure exact on small pages and bounded with huge ones; frees handing
 * memory back (the figure, and the freed blocks' pages no longer resident); empty slabs unmapped
 * but one; huge slabs demoted once under half of their high-water mark; teardown with blocks still
 * out.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slab.h"
#include "testutil.h"

#define UNIT ((size_t)4096)
#define PER_SLAB (BC_SLAB_SIZE / UNIT - 1) /* blocks after the one-block header */

/* Resident bytes of the blocks was[i] for which b[i] is (live) or is not (!live) NULL. */
static size_t resident(void *const *b, const void *const *was, size_t n, bool live)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = UNIT / page, count = 0;
	unsigned char vec[16];

	ck_assert_uint_le(pages, sizeof(vec));
	for (size_t i = 0; i < n; i++) {
		if ((b[i] != NULL) != live)
			continue;
		ck_assert_int_eq(mincore((void *)was[i], UNIT, vec), 0);
		for (size_t j = 0; j < pages; j++)
			count += vec[j] & 1;
	}
	return count * page;
}

/* Allocate n blocks into b, each filled with its own index. */
static void fill(struct bc_slabs *sl, void **b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		b[i] = bc_slab_alloc(sl);
		ck_assert_ptr_nonnull(b[i]);
		ck_assert_uint_eq((uintptr_t)b[i] % UNIT, 0);
		for (size_t w = 0; w < UNIT / sizeof(size_t); w++)
			((size_t *)b[i])[w] = i;
	}
}

static void verify(void *const *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!b[i])
			continue;
		for (size_t w = 0; w < UNIT / sizeof(size_t); w += 97)
			ck_assert_uint_eq(((size_t *)b[i])[w], i);
	}
}

/* Bytes for slabs slabs on small pages with live blocks out. */
static size_t small_bytes(size_t slabs, size_t live)
{
	return (slabs + live) * UNIT;
}

START_TEST(blocks_distinct_across_slabs)
{
	struct bc_slabs sl;
	enum { N = 3 * PER_SLAB + 10 };
	void **b = calloc(N, sizeof(*b));

	bc_slabs_init(&sl, UNIT);
	sl.small_only = true;
	ck_assert_uint_eq(bc_slabs_memory(&sl), 0);
	fill(&sl, b, N);
	verify(b, N);
	ck_assert_uint_eq(sl.slabs, 4);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(4, N));
	/* every block its own: sorted addresses never repeat */
	for (size_t i = 1; i < N; i++)
		for (size_t j = i; j > 0 && b[j - 1] > b[j]; j--) {
			void *t = b[j];
			b[j] = b[j - 1];
			b[j - 1] = t;
		}
	for (size_t i = 1; i < N; i++)
		ck_assert_uint_ge((uintptr_t)b[i], (uintptr_t)b[i - 1] + UNIT);
	bc_slabs_fini(&sl);
	ck_assert_uint_eq(sl.slabs, 0);
	ck_assert_uint_eq(bc_slabs_memory(&sl), 0);
	free(b);
}
END_TEST

START_TEST(frees_give_memory_back)
{
	struct bc_slabs sl;
	enum { N = 3 * PER_SLAB };
	void **b = calloc(N, sizeof(*b)), **was = calloc(N, sizeof(*was));

	bc_slabs_init(&sl, UNIT);
	sl.small_only = true;
	fill(&sl, b, N);
	memcpy(was, b, N * sizeof(*b));
	ck_assert_uint_eq(resident(b, (const void *const *)was, N, true), N * UNIT);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(3, N));

	/* three blocks in four, across every slab: no slab empties, memory follows anyway */
	size_t live = N;
	for (size_t i = 0; i < N; i++)
		if (i % 4) {
			bc_slab_free(&sl, b[i]);
			b[i] = NULL;
			live--;
		}
	verify(b, N);
	ck_assert_uint_eq(sl.slabs, 3);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(3, live));
	/* the freed blocks' pages are gone from memory, the live ones' are not */
	ck_assert_uint_eq(resident(b, (const void *const *)was, N, false), 0);
	ck_assert_uint_eq(resident(b, (const void *const *)was, N, true), live * UNIT);

	/* freed blocks are reused before a new slab is mapped */
	for (size_t i = 0; i < N; i++)
		if (!b[i]) {
			b[i] = bc_slab_alloc(&sl);
			ck_assert_ptr_nonnull(b[i]);
			memset(b[i], 0xa5, UNIT);
		}
	ck_assert_uint_eq(sl.slabs, 3);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(3, N));

	/* all of them: every slab but one spare is unmapped */
	for (size_t i = 0; i < N; i++)
		bc_slab_free(&sl, b[i]);
	ck_assert_uint_eq(sl.slabs, 1);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(1, 0));
	/* and the spare is used again rather than a new slab */
	void *p = bc_slab_alloc(&sl);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(sl.slabs, 1);
	bc_slab_free(&sl, p);
	bc_slabs_fini(&sl);
	ck_assert_uint_eq(sl.slabs, 0);
	free(b);
	free(was);
}
END_TEST

START_TEST(huge_slabs_demoted_under_half)
{
	struct bc_slabs sl;
	enum { N = 4 * PER_SLAB };
	void **b = calloc(N, sizeof(*b));
	/* madvise(MADV_HUGEPAGE) succeeds wherever the kernel has transparent huge pages */
	bool thp = access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0;

	bc_slabs_init(&sl, UNIT);
	fill(&sl, b, N);
	ck_assert_uint_eq(sl.slabs, 4);
	/* full slabs count whole either way */
	size_t m = bc_slabs_memory(&sl);
	ck_assert_uint_eq(m, 4 * BC_SLAB_SIZE);

	/* slabs 2-4 keep just over half their blocks: a huge slab still counts whole */
	size_t live = N, freed = 0;
	for (size_t i = PER_SLAB; i < N; i++)
		if (i % PER_SLAB < PER_SLAB / 2 - 1) {
			bc_slab_free(&sl, b[i]);
			b[i] = NULL;
			live--;
			freed++;
		}
	ck_assert_uint_eq(bc_slabs_memory(&sl), thp ? m : m - freed * UNIT);
	/* three more from each: under half of the high-water mark, so every slab is on small
	 * pages and counts exactly its header and live blocks */
	for (size_t i = PER_SLAB; i < N; i++)
		if (b[i] && i % PER_SLAB < PER_SLAB / 2 + 2) {
			bc_slab_free(&sl, b[i]);
			b[i] = NULL;
			live--;
		}
	verify(b, N);
	ck_assert_uint_eq(bc_slabs_memory(&sl), small_bytes(4, live));
	/* and a slab still filling is not demoted by its first free */
	struct bc_slabs fresh;
	bc_slabs_init(&fresh, UNIT);
	void **c = calloc(PER_SLAB + 3, sizeof(*c));
	fill(&fresh, c, PER_SLAB + 3);
	size_t before = bc_slabs_memory(&fresh);
	bc_slab_free(&fresh, c[PER_SLAB + 2]);
	ck_assert_uint_eq(bc_slabs_memory(&fresh), thp ? before : before - UNIT);
	bc_slabs_fini(&fresh);
	bc_slabs_fini(&sl);
	free(c);
	free(b);
}
END_TEST

START_TEST(fini_with_blocks_out)
{
	struct bc_slabs sl;
	enum { N = 2 * PER_SLAB + 1 };
	void **b = calloc(N, sizeof(*b));

	bc_slabs_init(&sl, UNIT);
	fill(&sl, b, N);
	for (size_t i = 0; i < N; i += 2)
		bc_slab_free(&sl, b[i]);
	bc_slabs_fini(&sl);
	ck_assert_uint_eq(sl.slabs, 0);
	ck_assert_uint_eq(bc_slabs_memory(&sl), 0);
	/* usable again after fini */
	void *p = bc_slab_alloc(&sl);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(sl.slabs, 1);
	bc_slabs_fini(&sl);
	free(b);
}
END_TEST

static Suite *slab_suite(void)
{
	Suite *s = suite_create("slab");
	TCase *tc = tcase_create("slab");
	tcase_add_test(tc, blocks_distinct_across_slabs);
	tcase_add_test(tc, frees_give_memory_back);
	tcase_add_test(tc, huge_slabs_demoted_under_half);
	tcase_add_test(tc, fini_with_blocks_out);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(slab_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
