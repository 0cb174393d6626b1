// SPDX-License-Identifier: MIT
/*
 * Unit tests for objtab.c: find and get-or-create by id (0 and UINT64_MAX included),
 * removal keeping every other id reachable, each and sweep visiting every object exactly
 * once, chunk arrays growing with holes and cut ones never coming back, memory going up
 * and down with the table, and a seeded randomized test against a model.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bitcask/bitcask.h>

#include "keydir.h"
#include "testutil.h"

static struct bc_objtab *tab_new(void)
{
	struct bc_objtab *t;
	ck_assert_int_eq(bc_objtab_new(&t), 0);
	ck_assert_ptr_nonnull(t);
	return t;
}

START_TEST(get_creates_find_finds)
{
	struct bc_objtab *t = tab_new();
	static const uint64_t ids[] = {0, 1, 2, 17, UINT64_MAX, UINT64_MAX - 1, 1ull << 63};
	const size_t n = sizeof(ids) / sizeof(ids[0]);

	ck_assert_uint_eq(bc_objtab_count(t), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_null(bc_objtab_find(t, ids[i]));
		struct bc_object *o = bc_objtab_get(t, ids[i]);
		ck_assert_ptr_nonnull(o);
		ck_assert_uint_eq(o->id, ids[i]);
		ck_assert_uint_eq(o->size, 0);
		ck_assert_uint_eq(o->count, 0);
		ck_assert_uint_eq(o->links, 0);
		ck_assert_ptr_eq(bc_objtab_get(t, ids[i]), o);
		ck_assert_ptr_eq(bc_objtab_find(t, ids[i]), o);
	}
	ck_assert_uint_eq(bc_objtab_count(t), n);
	bc_objtab_remove(t, bc_objtab_find(t, 17));
	ck_assert_ptr_null(bc_objtab_find(t, 17));
	ck_assert_uint_eq(bc_objtab_count(t), n - 1);
	for (size_t i = 0; i < n; i++)
		if (ids[i] != 17)
			ck_assert_ptr_nonnull(bc_objtab_find(t, ids[i]));
	bc_objtab_free(t);
	bc_objtab_free(NULL);
}
END_TEST

START_TEST(many_ids_grow_and_shrink)
{
	struct bc_objtab *t = tab_new();
	enum { N = 100000 };
	size_t empty = bc_objtab_memory(t);

	/* sequential ids (what the store makes) and random ones */
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(bc_objtab_get(t, i));
		ck_assert_ptr_nonnull(bc_objtab_get(t, i * 0x9E3779B97F4A7C15ull + (1ull << 63)));
	}
	ck_assert_uint_eq(bc_objtab_count(t), 2 * N);
	size_t full = bc_objtab_memory(t);
	ck_assert_uint_gt(full, 2 * N * sizeof(struct bc_object));
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(bc_objtab_find(t, i));
		bc_objtab_remove(t, bc_objtab_find(t, i * 0x9E3779B97F4A7C15ull + (1ull << 63)));
	}
	for (uint64_t i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(bc_objtab_find(t, i));
		ck_assert_ptr_null(bc_objtab_find(t, i * 0x9E3779B97F4A7C15ull + (1ull << 63)));
	}
	for (uint64_t i = 0; i < N; i++)
		bc_objtab_remove(t, bc_objtab_find(t, i));
	ck_assert_uint_eq(bc_objtab_count(t), 0);
	ck_assert_uint_le(bc_objtab_memory(t), empty * 16);
	bc_objtab_free(t);
}
END_TEST

struct visits {
	uint64_t n;
	uint64_t sum;
	uint64_t stop_at;
};

static int visit_fn(void *ctx, struct bc_object *o)
{
	struct visits *v = ctx;
	v->n++;
	v->sum += o->id;
	o->links++;
	return v->stop_at && v->n == v->stop_at ? 5 : 0;
}

START_TEST(each_visits_once_and_stops)
{
	struct bc_objtab *t = tab_new();
	enum { N = 5000 };

	for (uint64_t i = 1; i <= N; i++)
		ck_assert_ptr_nonnull(bc_objtab_get(t, i * 7));
	struct visits v = {0};
	ck_assert_int_eq(bc_objtab_each(t, visit_fn, &v), 0);
	ck_assert_uint_eq(v.n, N);
	ck_assert_uint_eq(v.sum, 7ull * N * (N + 1) / 2);
	for (uint64_t i = 1; i <= N; i++)
		ck_assert_uint_eq(bc_objtab_find(t, i * 7)->links, 1);
	struct visits s = {.stop_at = 10};
	ck_assert_int_eq(bc_objtab_each(t, visit_fn, &s), 5);
	ck_assert_uint_eq(s.n, 10);
	bc_objtab_free(t);
}
END_TEST

struct sweep_ctx {
	uint64_t calls;
	uint64_t mod;
	unsigned *seen; /* by id */
};

static bool drop_fn(void *ctx, struct bc_object *o)
{
	struct sweep_ctx *c = ctx;
	c->calls++;
	c->seen[o->id]++;
	return o->id % c->mod != 0;
}

START_TEST(sweep_drops_each_once)
{
	/* several loads, so clusters wrap round the table's end in some of them */
	static const uint64_t counts[] = {1, 11, 12, 24, 1000, 3071, 3072, 20000};
	for (size_t r = 0; r < sizeof(counts) / sizeof(counts[0]); r++) {
		struct bc_objtab *t = tab_new();
		uint64_t n = counts[r];
		for (uint64_t i = 0; i < n; i++)
			ck_assert_ptr_nonnull(bc_objtab_get(t, i));
		struct sweep_ctx c = {.mod = 3, .seen = calloc(n, sizeof(unsigned))};
		bc_objtab_sweep(t, drop_fn, &c);
		ck_assert_uint_eq(c.calls, n);
		for (uint64_t i = 0; i < n; i++) {
			ck_assert_uint_eq(c.seen[i], 1);
			if (i % 3)
				ck_assert_ptr_null(bc_objtab_find(t, i));
			else
				ck_assert_ptr_nonnull(bc_objtab_find(t, i));
		}
		ck_assert_uint_eq(bc_objtab_count(t), (n + 2) / 3);
		/* dropping everything leaves an empty, working table */
		memset(c.seen, 0, n * sizeof(unsigned));
		c.mod = UINT64_MAX;
		c.calls = 0;
		bc_objtab_sweep(t, drop_fn, &c);
		ck_assert_uint_eq(c.calls, (n + 2) / 3);
		ck_assert_uint_le(bc_objtab_count(t), 1); /* id 0 stays: 0 % mod == 0 */
		ck_assert_ptr_nonnull(bc_objtab_get(t, 12345));
		free(c.seen);
		bc_objtab_free(t);
	}
}
END_TEST

START_TEST(chunks_holes_cut_and_next)
{
	struct bc_objtab *t = tab_new();
	struct bc_object *o = bc_objtab_get(t, 9);
	size_t m0 = bc_objtab_memory(t);
	struct bc_chunk c = {.loc = {1, 2, 3}, .dlen = 4};

	ck_assert_ptr_null(bc_object_chunk(o, 0));
	ck_assert_int_eq(bc_object_set(o, 3, &c), 0);
	ck_assert_ptr_nonnull(bc_object_chunk(o, 3));
	ck_assert_uint_eq(bc_object_chunk(o, 3)->dlen, 4);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_ptr_null(bc_object_chunk(o, i));
	/* A small object costs a small leaf. */
	ck_assert_uint_lt(bc_objtab_memory(t), m0 + 128);

	/* Dense growth: every chunk stays, holes stay holes. */
	for (uint32_t i = 10; i < 6000; i++)
		ck_assert_int_eq(bc_object_set(o, i, &c), 0);
	ck_assert_uint_eq(o->count, 5991);
	ck_assert_uint_eq(o->end, 6000);
	ck_assert_ptr_null(bc_object_chunk(o, 5));
	ck_assert_ptr_nonnull(bc_object_chunk(o, 5999));
	ck_assert_uint_lt(bc_objtab_memory(t), m0 + 6000 * sizeof(struct bc_chunk) * 5 / 4);
	uint64_t i = 4;
	ck_assert_ptr_nonnull(bc_object_next(o, &i));
	ck_assert_uint_eq(i, 10);

	/* cut: chunks past n are gone, and stay gone when the object grows again. */
	bc_object_cut(o, 4);
	ck_assert_uint_eq(o->count, 1);
	ck_assert_ptr_nonnull(bc_object_chunk(o, 3));
	ck_assert_ptr_null(bc_object_chunk(o, 10));
	i = 4;
	ck_assert_ptr_null(bc_object_next(o, &i));
	bc_object_cut(o, 100); /* past the end: nothing */
	ck_assert_uint_eq(o->count, 1);
	bc_object_cut(o, 0);
	ck_assert_uint_eq(o->count, 0);
	ck_assert_uint_eq(bc_objtab_memory(t), m0);

	/* Sparse: one chunk at the largest index costs a few nodes, not a table. */
	uint64_t last = BC_MAX_VALUE / BC_CHUNK_SIZE - 1;
	ck_assert_int_eq(bc_object_set(o, last, &c), 0);
	ck_assert_int_eq(bc_object_set(o, last + 1, &c), -EFBIG);
	ck_assert_int_eq(bc_object_set(o, 0, &c), 0);
	ck_assert_uint_lt(bc_objtab_memory(t), m0 + 64 * 1024);
	i = 1;
	ck_assert_ptr_nonnull(bc_object_next(o, &i));
	ck_assert_uint_eq(i, last);
	bc_object_cut(o, 1);
	ck_assert_ptr_null(bc_object_chunk(o, last));
	ck_assert_ptr_nonnull(bc_object_chunk(o, 0));
	bc_objtab_free(t); /* frees o and its chunks */
}
END_TEST

/* The chunk map against a plain array, over random sets, cuts and walks. */
START_TEST(chunk_map_matches_model)
{
	struct tu_rng rng = {tu_seed(0x63686e6b)};
	struct bc_objtab *t = tab_new();
	struct bc_object *o = bc_objtab_get(t, 1);
	enum { N = 300000 };
	static uint32_t model[N]; /* dlen + 1 per index; 0 = hole */
	memset(model, 0, sizeof(model));
	for (int op = 0; op < 50000; op++) {
		uint64_t r = tu_below(&rng, 100);
		uint64_t idx = r < 50 ? tu_below(&rng, 600) : tu_below(&rng, N);
		if (r < 90) {
			struct bc_chunk c = {.loc = {1, (uint32_t)idx, 7}, .dlen = (uint32_t)op};
			ck_assert_int_eq(bc_object_set(o, idx, &c), 0);
			model[idx] = (uint32_t)op + 1;
		} else if (r < 93) {
			bc_object_cut(o, idx);
			for (uint64_t j = idx; j < N; j++)
				model[j] = 0;
		} else {
			uint64_t at = idx, want = idx;
			while (want < N && !model[want])
				want++;
			struct bc_chunk *c = bc_object_next(o, &at);
			if (want == N) {
				ck_assert_ptr_null(c);
			} else {
				ck_assert_ptr_nonnull(c);
				ck_assert_uint_eq(at, want);
				ck_assert_uint_eq(c->dlen + 1, model[want]);
			}
		}
		if (op % 5000 == 0) {
			uint64_t count = 0;
			for (uint64_t j = 0; j < N; j++) {
				struct bc_chunk *c = bc_object_chunk(o, j);
				ck_assert_int_eq(c != NULL, model[j] != 0);
				if (c) {
					ck_assert_uint_eq(c->dlen + 1, model[j]);
					count++;
				}
			}
			ck_assert_uint_eq(o->count, count);
		}
	}
	bc_objtab_free(t);
}
END_TEST

START_TEST(random_ops_match_model)
{
	struct tu_rng rng = {tu_seed(0x6f626a74)};
	enum { U = 4000, OPS = 200000 };
	static struct bc_object *model[U];
	static uint64_t idof[U];
	struct bc_objtab *t = tab_new();
	size_t count = 0;

	memset(model, 0, sizeof(model));
	for (size_t i = 0; i < U; i++)
		idof[i] = i < U / 2 ? i : tu_rand(&rng);
	for (size_t op = 0; op < OPS; op++) {
		size_t i = tu_below(&rng, U);
		uint64_t what = tu_below(&rng, 100);
		if (what < 45) {
			struct bc_object *o = bc_objtab_get(t, idof[i]);
			ck_assert_ptr_nonnull(o);
			if (model[i])
				ck_assert_ptr_eq(o, model[i]);
			else
				count++;
			model[i] = o;
			o->size = idof[i] ^ 1;
			if (tu_below(&rng, 4) == 0) {
				struct bc_chunk c = {.loc = {1, 1, 1}};
				ck_assert_int_eq(bc_object_set(o, tu_below(&rng, 300), &c), 0);
			}
		} else if (what < 80) {
			if (model[i]) {
				bc_objtab_remove(t, model[i]);
				model[i] = NULL;
				count--;
			}
		} else {
			struct bc_object *o = bc_objtab_find(t, idof[i]);
			ck_assert_ptr_eq(o, model[i]);
			if (o)
				ck_assert_uint_eq(o->size, idof[i] ^ 1);
		}
		ck_assert_uint_eq(bc_objtab_count(t), count);
	}
	for (size_t i = 0; i < U; i++)
		ck_assert_ptr_eq(bc_objtab_find(t, idof[i]), model[i]);
	bc_objtab_free(t);
}
END_TEST

static Suite *objtab_suite(void)
{
	Suite *s = suite_create("objtab");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, get_creates_find_finds);
	tcase_add_test(tc, many_ids_grow_and_shrink);
	tcase_add_test(tc, each_visits_once_and_stops);
	tcase_add_test(tc, sweep_drops_each_once);
	tcase_add_test(tc, random_ops_match_model);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunks");
	tcase_add_test(tc, chunks_holes_cut_and_next);
	tcase_add_test(tc, chunk_map_matches_model);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(objtab_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
