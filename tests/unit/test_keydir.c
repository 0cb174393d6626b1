// SPDX-License-Identifier: MIT
/*
 * Unit tests for keydir.c: values round-trip, ordering (spaces, prefixes, 0x00 and 0xff
 * bytes, keys up to BC_MAX_KEY bytes), scans with start, exclusive and stop, compare-and-
 * swap, sequential loads in both directions, memory returning after deletes, failed
 * allocations leaving the tree as it was, and a seeded randomized test of every operation
 * against a model, with bc_keydir_check after each batch of operations. Appends in key
 * order (bc_keydir_append) build what puts build; bulk application of a file's effects
 * (bc_bulk, bulk.c) leaves the state that bc_apply one by one leaves.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitcask/bitcask.h>

#include "db.h"
#include "keydir.h"
#include "testutil.h"

#define CHECK_TREE(kd)                                                          \
	do {                                                                    \
		const char *why_ = NULL;                                        \
		int rc_ = bc_keydir_check((kd), &why_);                         \
		ck_assert_msg(rc_ == 0, "keydir check: %s", why_ ? why_ : "?"); \
	} while (0)

static struct bc_kval mkval(uint32_t file, uint32_t off, uint32_t size)
{
	struct bc_kval v = {.loc = {file, off, size}};
	return v;
}

static bool kval_eq(const struct bc_kval *a, const struct bc_kval *b)
{
	return bc_loc_eq(&a->loc, &b->loc) && a->expire_s == b->expire_s && a->mlen == b->mlen &&
		a->flags == b->flags && a->obj == b->obj;
}

static struct bc_keydir *kd_new(void)
{
	struct bc_keydir *kd;
	ck_assert_int_eq(bc_keydir_new(&kd), 0);
	ck_assert_ptr_nonnull(kd);
	return kd;
}

/* Keys of n bytes: a fixed-width big-endian counter after a prefix. */
static size_t numkey(uint8_t *buf, const char *prefix, uint32_t i)
{
	size_t n = strlen(prefix);
	memcpy(buf, prefix, n);
	buf[n] = (uint8_t)(i >> 24);
	buf[n + 1] = (uint8_t)(i >> 16);
	buf[n + 2] = (uint8_t)(i >> 8);
	buf[n + 3] = (uint8_t)i;
	return n + 4;
}

START_TEST(put_get_replace_remove)
{
	struct bc_keydir *kd = kd_new();
	struct bc_kval v = mkval(1, 2, 3), old, got;
	bool replaced = true;

	ck_assert(!bc_keydir_get(kd, 0, "a", 1, &got));
	ck_assert_int_eq(bc_keydir_put(kd, 0, "a", 1, &v, &old, &replaced), 0);
	ck_assert(!replaced);
	ck_assert_uint_eq(bc_keydir_count(kd), 1);
	ck_assert(bc_keydir_get(kd, 0, "a", 1, &got));
	ck_assert(kval_eq(&got, &v));
	ck_assert(bc_keydir_get(kd, 0, "a", 1, NULL));
	ck_assert(!bc_keydir_get(kd, 1, "a", 1, &got));
	ck_assert(!bc_keydir_get(kd, 0, "a\0", 2, &got));
	ck_assert(!bc_keydir_get(kd, 0, "", 0, &got));

	struct bc_kval v2 = mkval(7, 8, 9);
	ck_assert_int_eq(bc_keydir_put(kd, 0, "a", 1, &v2, &old, &replaced), 0);
	ck_assert(replaced);
	ck_assert(kval_eq(&old, &v));
	ck_assert_uint_eq(bc_keydir_count(kd), 1);
	ck_assert(bc_keydir_get(kd, 0, "a", 1, &got));
	ck_assert(kval_eq(&got, &v2));

	ck_assert(!bc_keydir_remove(kd, 0, "b", 1, &old));
	ck_assert(bc_keydir_remove(kd, 0, "a", 1, &old));
	ck_assert(kval_eq(&old, &v2));
	ck_assert(!bc_keydir_remove(kd, 0, "a", 1, NULL));
	ck_assert_uint_eq(bc_keydir_count(kd), 0);
	ck_assert_uint_gt(bc_keydir_memory(kd), 0);
	CHECK_TREE(kd);
	bc_keydir_free(kd);
	bc_keydir_free(NULL);
}
END_TEST

START_TEST(values_round_trip)
{
	struct bc_keydir *kd = kd_new();
	static int dummy[4];
	const struct bc_kval vals[] = {
		{.loc = {0, 0, 0}},
		{.loc = {UINT32_MAX, UINT32_MAX, UINT32_MAX},
		 .expire_s = UINT32_MAX,
		 .mlen = UINT16_MAX,
		 .flags = 0xff,
		 .obj = (struct bc_object *)&dummy[0]},
		{.loc = {127, 1, 127}, .mlen = 127},
		{.loc = {128, 1u << 31, 128}, .mlen = 128, .expire_s = 1},
		{.loc = {16383, 5, 16384},
		 .flags = BC_KV_OBJECT,
		 .obj = (struct bc_object *)&dummy[1]},
		{.loc = {16384, 6, 1u << 21}, .flags = 0x80},
		{.loc = {3, 4, 5},
		 .flags = 0x80 | BC_KV_OBJECT,
		 .obj = (struct bc_object *)&dummy[2]},
	};
	const size_t nv = sizeof(vals) / sizeof(vals[0]);

	for (size_t i = 0; i < nv; i++) {
		uint8_t k = (uint8_t)i;
		ck_assert_int_eq(bc_keydir_put(kd, 3, &k, 1, &vals[i], NULL, NULL), 0);
	}
	for (size_t i = 0; i < nv; i++) {
		uint8_t k = (uint8_t)i;
		struct bc_kval got;
		ck_assert(bc_keydir_get(kd, 3, &k, 1, &got));
		ck_assert_msg(kval_eq(&got, &vals[i]), "value %zu", i);
	}
	/* obj is only kept for object entries */
	struct bc_kval plain = mkval(1, 1, 1), got;
	plain.obj = (struct bc_object *)&dummy[3];
	ck_assert_int_eq(bc_keydir_put(kd, 3, "p", 1, &plain, NULL, NULL), 0);
	ck_assert(bc_keydir_get(kd, 3, "p", 1, &got));
	ck_assert_ptr_null(got.obj);
	CHECK_TREE(kd);
	bc_keydir_free(kd);
}
END_TEST

START_TEST(rejects_bad_arguments)
{
	struct bc_keydir *kd = kd_new();
	struct bc_kval v = mkval(1, 1, 1);
	static uint8_t big[BC_MAX_KEY + 1];
	bool sw = true;

	ck_assert_int_eq(bc_keydir_put(kd, 256, "a", 1, &v, NULL, NULL), -EINVAL);
	ck_assert_int_eq(bc_keydir_put(kd, 0, big, BC_MAX_KEY + 1, &v, NULL, NULL), -EINVAL);
	ck_assert(!bc_keydir_get(kd, 256, "a", 1, NULL));
	ck_assert(!bc_keydir_remove(kd, 256, "a", 1, NULL));
	ck_assert_int_eq(bc_keydir_move(kd, 256, "a", 1, &v.loc, &v.loc, &sw), -EINVAL);
	ck_assert(!sw);
	ck_assert_uint_eq(bc_keydir_count(kd), 0);
	bc_keydir_free(kd);
}
END_TEST

/* ---- ordering ---- */

struct rkey {
	unsigned space;
	uint8_t *k;
	size_t len;
};

static int rkey_cmp(const void *a, const void *b)
{
	const struct rkey *x = a, *y = b;
	if (x->space != y->space)
		return x->space < y->space ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = n ? memcmp(x->k, y->k, n) : 0;
	if (r)
		return r;
	return (x->len > y->len) - (x->len < y->len);
}

struct collect {
	struct rkey *v;
	size_t n, cap, stop_after;
	struct bc_kval *vals;
};

static int collect_fn(void *ctx, unsigned space, const uint8_t *key, size_t klen,
		      const struct bc_kval *v)
{
	struct collect *c = ctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		c->vals = realloc(c->vals, c->cap * sizeof(*c->vals));
		ck_assert(c->v && c->vals);
	}
	c->v[c->n].space = space;
	c->v[c->n].len = klen;
	c->v[c->n].k = malloc(klen ? klen : 1);
	ck_assert_ptr_nonnull(c->v[c->n].k);
	if (klen)
		memcpy(c->v[c->n].k, key, klen);
	c->vals[c->n] = *v;
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

static void collect_release(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].k);
	free(c->v);
	free(c->vals);
	memset(c, 0, sizeof(*c));
}

START_TEST(orders_spaces_prefixes_and_bytes)
{
	struct bc_keydir *kd = kd_new();
	struct tu_rng rng = {tu_seed(0x4b455944)};
	enum { N = 80 };
	struct rkey keys[N];
	size_t n = 0;
	static const char *const shorts[] = {
		"",	     "\x00",  "\x00\x00", "\x00\x01", "\x01",	  "a",		 "a\x00",
		"a\x00\x00", "a\x01", "ab",	  "abc",      "abd",	  "b",		 "\x7f",
		"\x80",	     "\xfe",  "\xff",	  "\xff\x00", "\xff\xff", "\xff\xff\xff"};
	static const size_t shortlen[] = {0, 1, 2, 2, 1, 1, 2, 3, 2, 2,
					  3, 3, 1, 1, 1, 1, 1, 2, 2, 3};
	static const unsigned spaces[] = {0, 1, 255};

	for (size_t s = 0; s < 3; s++) {
		for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
			keys[n].space = spaces[s];
			keys[n].len = shortlen[i];
			keys[n].k = malloc(shortlen[i] + 1);
			memcpy(keys[n].k, shorts[i], shortlen[i]);
			n++;
		}
	}
	/* long keys: a shared 65000-byte prefix, then lengths around it, and the maximum */
	static const size_t longs[] = {400, 470, 474, 475, 480, 65000, 65001, 65534, BC_MAX_KEY};
	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
		keys[n].space = 1;
		keys[n].len = longs[i];
		keys[n].k = malloc(longs[i]);
		memset(keys[n].k, 'q', longs[i]);
		n++;
	}
	keys[n] = keys[n - 1];
	keys[n].k = malloc(BC_MAX_KEY);
	memset(keys[n].k, 'q', BC_MAX_KEY);
	keys[n].k[BC_MAX_KEY - 1] = 'r';
	n++;
	ck_assert_uint_le(n, N);

	/* insert in a random order, each with its index as the value */
	size_t order[N];
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = tu_below(&rng, i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		struct rkey *k = &keys[order[i]];
		struct bc_kval v = mkval((uint32_t)order[i], 0, 1);
		ck_assert_int_eq(bc_keydir_put(kd, k->space, k->k, k->len, &v, NULL, NULL), 0);
	}
	CHECK_TREE(kd);
	ck_assert_uint_eq(bc_keydir_count(kd), n);

	struct rkey sorted[N];
	memcpy(sorted, keys, n * sizeof(keys[0]));
	qsort(sorted, n, sizeof(sorted[0]), rkey_cmp);
	struct collect c = {0};
	ck_assert_int_eq(bc_keydir_scan_all(kd, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(rkey_cmp(&c.v[i], &sorted[i]) == 0, "position %zu", i);
		const struct rkey *orig = &keys[c.vals[i].loc.file];
		ck_assert_int_eq(rkey_cmp(orig, &sorted[i]), 0);
	}
	collect_release(&c);

	/* one space at a time, from its start */
	for (size_t s = 0; s < 3; s++) {
		ck_assert_int_eq(bc_keydir_scan(kd, spaces[s], "", 0, false, collect_fn, &c), 0);
		size_t want = 0;
		for (size_t i = 0; i < n; i++)
			want += keys[i].space == spaces[s];
		ck_assert_uint_eq(c.n, want);
		for (size_t i = 0; i < c.n; i++)
			ck_assert_uint_eq(c.v[i].space, spaces[s]);
		collect_release(&c);
	}
	ck_assert_int_eq(bc_keydir_scan(kd, 2, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 0);

	for (size_t i = 0; i < n; i++) {
		struct bc_kval got;
		ck_assert(bc_keydir_get(kd, keys[i].space, keys[i].k, keys[i].len, &got));
		ck_assert_uint_eq(got.loc.file, i);
	}
	for (size_t i = 0; i < n; i++) {
		ck_assert(bc_keydir_remove(kd, keys[i].space, keys[i].k, keys[i].len, NULL));
		CHECK_TREE(kd);
	}
	ck_assert_uint_eq(bc_keydir_count(kd), 0);
	for (size_t i = 0; i < n; i++)
		free(keys[i].k);
	bc_keydir_free(kd);
}
END_TEST

/* Many maximal keys that differ only at the end force shared out-of-line separators. */
START_TEST(long_keys_share_separators)
{
	struct bc_keydir *kd = kd_new();
	size_t base = bc_keydir_memory(kd);
	enum { N = 300 };
	uint8_t *k = malloc(BC_MAX_KEY), m[480];
	ck_assert_ptr_nonnull(k);
	memset(k, 0xab, BC_MAX_KEY);
	memset(m, 0xcd, sizeof(m));

	for (uint32_t i = 0; i < N; i++) {
		uint32_t j = (i * 7919u) % N;
		numkey(k + BC_MAX_KEY - 4, "", j);
		struct bc_kval v = mkval(j, 0, 1);
		ck_assert_int_eq(bc_keydir_put(kd, 9, k, BC_MAX_KEY, &v, NULL, NULL), 0);
		/* and a family at the inline limit, sharing long prefixes */
		numkey(m + 470, "", j);
		ck_assert_int_eq(bc_keydir_put(kd, 8, m, 474 + (j % 3), &v, NULL, NULL), 0);
	}
	CHECK_TREE(kd);
	ck_assert_uint_gt(bc_keydir_memory(kd), (size_t)N * BC_MAX_KEY);
	struct collect c = {0};
	ck_assert_int_eq(bc_keydir_scan(kd, 9, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, N);
	for (size_t i = 0; i < c.n; i++)
		ck_assert_uint_eq(c.vals[i].loc.file, i);
	collect_release(&c);
	for (uint32_t i = 0; i < N; i++) {
		numkey(k + BC_MAX_KEY - 4, "", i);
		ck_assert(bc_keydir_remove(kd, 9, k, BC_MAX_KEY, NULL));
		numkey(m + 470, "", i);
		ck_assert(bc_keydir_remove(kd, 8, m, 474 + (i % 3), NULL));
		if (i % 16 == 0)
			CHECK_TREE(kd);
	}
	CHECK_TREE(kd);
	ck_assert_uint_eq(bc_keydir_count(kd), 0);
	/* every long key and node went back; the rebuild scratch stays */
	ck_assert_uint_lt(bc_keydir_memory(kd), base + 256 * 1024);
	free(k);
	bc_keydir_free(kd);
}
END_TEST

/* ---- scans ---- */

static struct bc_keydir *scan_fixture(void)
{
	struct bc_keydir *kd = kd_new();
	uint8_t k[16];

	/* space 5: "k" + counter for even counters 0..1998; spaces 4 and 6 as fences */
	for (uint32_t i = 0; i < 2000; i += 2) {
		size_t n = numkey(k, "k", i);
		struct bc_kval v = mkval(i, 0, 1);
		ck_assert_int_eq(bc_keydir_put(kd, 5, k, n, &v, NULL, NULL), 0);
	}
	struct bc_kval v = mkval(UINT32_MAX, 0, 1);
	ck_assert_int_eq(bc_keydir_put(kd, 4, "zzz", 3, &v, NULL, NULL), 0);
	ck_assert_int_eq(bc_keydir_put(kd, 6, "", 0, &v, NULL, NULL), 0);
	ck_assert_int_eq(bc_keydir_put(kd, 6, "a", 1, &v, NULL, NULL), 0);
	CHECK_TREE(kd);
	return kd;
}

START_TEST(scan_start_exclusive_stop)
{
	struct bc_keydir *kd = scan_fixture();
	struct collect c = {0};
	uint8_t k[16];
	size_t n;

	/* from the start of the space */
	ck_assert_int_eq(bc_keydir_scan(kd, 5, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 1000);
	for (size_t i = 0; i < c.n; i++)
		ck_assert_uint_eq(c.vals[i].loc.file, 2 * i);
	collect_release(&c);

	/* from a present key, inclusive and exclusive */
	n = numkey(k, "k", 500);
	ck_assert_int_eq(bc_keydir_scan(kd, 5, k, n, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 750);
	ck_assert_uint_eq(c.vals[0].loc.file, 500);
	collect_release(&c);
	ck_assert_int_eq(bc_keydir_scan(kd, 5, k, n, true, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 749);
	ck_assert_uint_eq(c.vals[0].loc.file, 502);
	collect_release(&c);

	/* from an absent key: both start at the next one */
	n = numkey(k, "k", 501);
	for (int ex = 0; ex < 2; ex++) {
		ck_assert_int_eq(bc_keydir_scan(kd, 5, k, n, ex, collect_fn, &c), 0);
		ck_assert_uint_eq(c.vals[0].loc.file, 502);
		collect_release(&c);
	}
	/* a proper prefix of a key sorts before it */
	ck_assert_int_eq(bc_keydir_scan(kd, 5, k, n - 1, true, collect_fn, &c), 0);
	ck_assert_uint_eq(c.vals[0].loc.file, 256);
	collect_release(&c);

	/* stop: the visitor's value comes back */
	c.stop_after = 10;
	ck_assert_int_eq(bc_keydir_scan(kd, 5, "k", 1, false, collect_fn, &c), 7);
	ck_assert_uint_eq(c.n, 10);
	ck_assert_uint_eq(c.vals[9].loc.file, 18);
	collect_release(&c);

	/* past the last key, and an empty space between fences */
	ck_assert_int_eq(bc_keydir_scan(kd, 5, "l", 1, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 0);
	ck_assert_int_eq(bc_keydir_scan(kd, 3, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 0);
	/* the empty key is a key; exclusive skips it */
	ck_assert_int_eq(bc_keydir_scan(kd, 6, "", 0, true, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 1);
	ck_assert_uint_eq(c.v[0].len, 1);
	collect_release(&c);
	ck_assert_int_eq(bc_keydir_scan(kd, 256, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 0);

	/* scan_all sees the spaces in order */
	ck_assert_int_eq(bc_keydir_scan_all(kd, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 1003);
	ck_assert_uint_eq(c.v[0].space, 4);
	ck_assert_uint_eq(c.v[1].space, 5);
	ck_assert_uint_eq(c.v[1001].space, 6);
	collect_release(&c);
	bc_keydir_free(kd);
}
END_TEST

/* ---- move (compare-and-swap of the location) ---- */

START_TEST(move_only_on_match)
{
	struct bc_keydir *kd = scan_fixture();
	uint8_t k[16];
	size_t n = numkey(k, "k", 100);
	struct bc_kval cur, got, nv = mkval(42, 43, 44);
	struct bc_loc wrong = {100, 0, 2};
	bool sw;

	ck_assert(bc_keydir_get(kd, 5, k, n, &cur));
	ck_assert_int_eq(bc_keydir_move(kd, 5, k, n, &wrong, &nv.loc, &sw), 0);
	ck_assert(!sw);
	ck_assert(bc_keydir_get(kd, 5, k, n, &got));
	ck_assert(kval_eq(&got, &cur));
	ck_assert_int_eq(bc_keydir_move(kd, 5, k, n, &cur.loc, &nv.loc, &sw), 0);
	ck_assert(sw);
	ck_assert(bc_keydir_get(kd, 5, k, n, &got));
	struct bc_kval want = cur;
	want.loc = nv.loc;
	ck_assert(kval_eq(&got, &want)); /* only the location moves */
	ck_assert_int_eq(bc_keydir_move(kd, 5, k, n, &cur.loc, &cur.loc, &sw), 0);
	ck_assert(!sw);
	n = numkey(k, "k", 101);
	ck_assert_int_eq(bc_keydir_move(kd, 5, k, n, &cur.loc, &nv.loc, &sw), 0);
	ck_assert(!sw);
	ck_assert_uint_eq(bc_keydir_count(kd), 1003);

	/* growing every location in place forces leaves to split under move */
	for (uint32_t i = 0; i < 2000; i += 2) {
		n = numkey(k, "k", i);
		ck_assert(bc_keydir_get(kd, 5, k, n, &cur));
		struct bc_loc big = {20000 + i, i, 1u << 30};
		ck_assert_int_eq(bc_keydir_move(kd, 5, k, n, &cur.loc, &big, &sw), 0);
		ck_assert(sw);
	}
	CHECK_TREE(kd);
	for (uint32_t i = 0; i < 2000; i += 2) {
		n = numkey(k, "k", i);
		ck_assert(bc_keydir_get(kd, 5, k, n, &got));
		ck_assert_uint_eq(got.loc.file, 20000 + i);
		ck_assert_uint_eq(got.loc.offset, i);
		ck_assert_uint_eq(got.loc.size, 1u << 30);
	}
	bc_keydir_free(kd);
}
END_TEST

/* ---- shapes of load ---- */

static void load_and_drain(int dir, uint32_t n)
{
	struct bc_keydir *kd = kd_new();
	size_t base = bc_keydir_memory(kd);
	uint8_t k[16];

	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = dir > 0 ? i
			: dir < 0    ? n - 1 - i
				     : (uint32_t)((uint64_t)i * 2654435761u % n);
		size_t kl = numkey(k, "seq/", j);
		struct bc_kval v = mkval(j % 64, j, 100);
		ck_assert_int_eq(bc_keydir_put(kd, 0, k, kl, &v, NULL, NULL), 0);
	}
	CHECK_TREE(kd);
	ck_assert_uint_eq(bc_keydir_count(kd), n);
	size_t full = bc_keydir_memory(kd);
	/* delete three keys in four, then the rest: memory must follow */
	for (uint32_t i = 0; i < n; i++) {
		size_t kl = numkey(k, "seq/", i);
		if (i % 4)
			ck_assert(bc_keydir_remove(kd, 0, k, kl, NULL));
	}
	CHECK_TREE(kd);
	size_t quarter = bc_keydir_memory(kd);
	ck_assert_msg(quarter < full * 6 / 10, "memory %zu of %zu after deleting 3/4", quarter,
		      full);
	for (uint32_t i = 0; i < n; i += 4) {
		size_t kl = numkey(k, "seq/", i);
		ck_assert(bc_keydir_remove(kd, 0, k, kl, NULL));
	}
	CHECK_TREE(kd);
	ck_assert_uint_eq(bc_keydir_count(kd), 0);
	ck_assert_uint_lt(bc_keydir_memory(kd), base + 256 * 1024);
	bc_keydir_free(kd);
}

START_TEST(sequential_loads_and_drains)
{
	load_and_drain(1, 200000);
	load_and_drain(-1, 200000);
	load_and_drain(0, 200000);
}
END_TEST

/* Inserting a run in the middle of existing keys, as a directory filling up. */
START_TEST(middle_runs)
{
	struct bc_keydir *kd = kd_new();
	uint8_t k[32];

	for (uint32_t i = 0; i < 5000; i++) {
		size_t kl = numkey(k, i % 2 ? "b/" : "d/", i);
		struct bc_kval v = mkval(1, i, 1);
		ck_assert_int_eq(bc_keydir_put(kd, 0, k, kl, &v, NULL, NULL), 0);
	}
	for (uint32_t i = 0; i < 50000; i++) {
		size_t kl = numkey(k, "c/", i);
		struct bc_kval v = mkval(2, i, 1);
		ck_assert_int_eq(bc_keydir_put(kd, 0, k, kl, &v, NULL, NULL), 0);
	}
	for (uint32_t i = 50000; i-- > 0;) {
		size_t kl = numkey(k, "a/", i);
		struct bc_kval v = mkval(3, i, 1);
		ck_assert_int_eq(bc_keydir_put(kd, 0, k, kl, &v, NULL, NULL), 0);
	}
	CHECK_TREE(kd);
	struct collect c = {0};
	ck_assert_int_eq(bc_keydir_scan(kd, 0, "c/", 2, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 52500);
	for (uint32_t i = 0; i < 50000; i++)
		ck_assert_uint_eq(c.vals[i].loc.offset, i);
	collect_release(&c);
	bc_keydir_free(kd);
}
END_TEST

/* ---- failed allocations ---- */

START_TEST(enomem_leaves_tree_unchanged)
{
	struct bc_keydir *kd = kd_new();
	struct tu_rng rng = {tu_seed(0x454e4f4d)};
	enum { N = 20000 };
	static uint8_t keys[N][24];
	static size_t klen[N];
	static bool in[N];
	size_t present = 0, failures = 0;
	uint8_t *longk = malloc(2000);
	ck_assert_ptr_nonnull(longk);

	for (uint32_t i = 0; i < N; i++) {
		klen[i] = 1 + tu_below(&rng, 24);
		tu_fill(&rng, keys[i], klen[i]);
	}
	for (uint32_t i = 0; i < N; i++) {
		struct bc_kval v = mkval(i, i, i);
		bool existed = bc_keydir_get(kd, 1, keys[i], klen[i], NULL);
		bc_keydir_fail_alloc(kd, 1 + (unsigned)tu_below(&rng, 4));
		int rc = bc_keydir_put(kd, 1, keys[i], klen[i], &v, NULL, NULL);
		bc_keydir_fail_alloc(kd, 0);
		if (rc) {
			ck_assert_int_eq(rc, -ENOMEM);
			ck_assert(bc_keydir_get(kd, 1, keys[i], klen[i], NULL) == existed);
			failures++;
			CHECK_TREE(kd);
		} else {
			in[i] = true;
			present += !existed;
		}
		/* long keys need an allocation of their own */
		if (i % 64 == 0) {
			memset(longk, (int)(i & 0xff), 2000);
			bc_keydir_fail_alloc(kd, 1);
			ck_assert_int_eq(bc_keydir_put(kd, 2, longk, 2000, &v, NULL, NULL),
					 -ENOMEM);
			bc_keydir_fail_alloc(kd, 0);
		}
		ck_assert_uint_eq(bc_keydir_count(kd), present);
	}
	CHECK_TREE(kd);
	ck_assert_uint_gt(failures, 0);
	struct collect c = {0};
	ck_assert_int_eq(bc_keydir_scan(kd, 2, "", 0, false, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, 0);
	/* (a key that failed may still be there when a duplicate of it went in) */
	for (uint32_t i = 0; i < N; i++)
		if (in[i])
			ck_assert(bc_keydir_get(kd, 1, keys[i], klen[i], NULL));
	free(longk);
	bc_keydir_free(kd);
}
END_TEST

/* A move that has to split a full leaf and cannot get a node changes nothing. */
START_TEST(move_enomem_changes_nothing)
{
	struct bc_keydir *kd = kd_new();
	uint8_t k[16];
	size_t enomem = 0;
	bool sw;

	/* sequential: every leaf but the last is full */
	for (uint32_t i = 0; i < 20000; i++) {
		size_t kl = numkey(k, "c", i);
		struct bc_kval v = mkval(1, i, 100);
		ck_assert_int_eq(bc_keydir_put(kd, 0, k, kl, &v, NULL, NULL), 0);
	}
	for (uint32_t i = 0; i < 20000; i += 97) {
		size_t kl = numkey(k, "c", i);
		struct bc_kval cur, got;
		struct bc_loc big = {UINT32_MAX, i, UINT32_MAX};
		ck_assert(bc_keydir_get(kd, 0, k, kl, &cur));
		bc_keydir_fail_alloc(kd, 1);
		int rc = bc_keydir_move(kd, 0, k, kl, &cur.loc, &big, &sw);
		bc_keydir_fail_alloc(kd, 0);
		if (rc) {
			ck_assert_int_eq(rc, -ENOMEM);
			ck_assert(!sw);
			ck_assert(bc_keydir_get(kd, 0, k, kl, &got));
			ck_assert(kval_eq(&got, &cur));
			CHECK_TREE(kd);
			enomem++;
			ck_assert_int_eq(bc_keydir_move(kd, 0, k, kl, &cur.loc, &big, &sw), 0);
		}
		ck_assert(sw);
		ck_assert(bc_keydir_get(kd, 0, k, kl, &got));
		ck_assert(bc_loc_eq(&got.loc, &big));
	}
	CHECK_TREE(kd);
	ck_assert_uint_gt(enomem, 0);
	ck_assert_uint_eq(bc_keydir_count(kd), 20000);
	bc_keydir_free(kd);
}
END_TEST

/* ---- randomized against a model ---- */

/*
 * The model: a fixed universe of keys, sorted once, and per key whether it is present and
 * its value. Keys mix short random bytes from an alphabet rich in 0x00 and 0xff, paths
 * under shared directories, long keys around the inline limit with long shared prefixes,
 * and a few huge ones, over four spaces.
 */
struct model {
	struct rkey *u; /* sorted universe */
	size_t nu;
	bool *in;
	struct bc_kval *val;
	size_t count;
};

static void gen_key(struct tu_rng *r, struct rkey *k, uint8_t *const *prefixes)
{
	static const uint8_t alpha[] = {0x00, 0x01, 'a', 'b', 0x7f, 0x80, 0xfe, 0xff};
	static const unsigned spaces[] = {0, 0, 0, 1, 2, 255};
	uint64_t c = tu_below(r, 1000);

	k->space = spaces[tu_below(r, 6)];
	if (c < 600) {
		k->len = tu_below(r, 12);
		k->k = malloc(k->len + 1);
		for (size_t i = 0; i < k->len; i++)
			k->k[i] = alpha[tu_below(r, sizeof(alpha))];
	} else if (c < 900) {
		const uint8_t *p = prefixes[tu_below(r, 40)];
		size_t pl = 8 + p[0] % 40, sl = 1 + tu_below(r, 16);
		k->len = pl + sl;
		k->k = malloc(k->len);
		memcpy(k->k, p, pl);
		tu_fill(r, k->k + pl, sl);
	} else if (c < 997) {
		const uint8_t *p = prefixes[40 + tu_below(r, 4)];
		k->len = 440 + tu_below(r, 80);
		k->k = malloc(k->len);
		memcpy(k->k, p, k->len - 6);
		tu_fill(r, k->k + k->len - 6, 6);
		if (tu_below(r, 2))
			k->k[k->len - 1 - tu_below(r, 6)] = 0xff;
	} else {
		k->len = BC_MAX_KEY - tu_below(r, 3000);
		k->k = malloc(k->len);
		memset(k->k, 0x5a, k->len);
		tu_fill(r, k->k + k->len - 4, 4);
	}
}

static void model_init(struct model *m, struct tu_rng *r, size_t n)
{
	uint8_t *prefixes[44];

	for (int i = 0; i < 44; i++) {
		prefixes[i] = malloc(600);
		tu_fill(r, prefixes[i], 600);
	}
	m->u = calloc(n, sizeof(*m->u));
	for (size_t i = 0; i < n; i++)
		gen_key(r, &m->u[i], prefixes);
	qsort(m->u, n, sizeof(*m->u), rkey_cmp);
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (w && !rkey_cmp(&m->u[w - 1], &m->u[i]))
			free(m->u[i].k);
		else
			m->u[w++] = m->u[i];
	}
	m->nu = w;
	m->in = calloc(w, sizeof(*m->in));
	m->val = calloc(w, sizeof(*m->val));
	m->count = 0;
	for (int i = 0; i < 44; i++)
		free(prefixes[i]);
}

static void model_release(struct model *m)
{
	for (size_t i = 0; i < m->nu; i++)
		free(m->u[i].k);
	free(m->u);
	free(m->in);
	free(m->val);
}

/* First universe index >= k (> k when after). */
static size_t model_seek(const struct model *m, const struct rkey *k, bool after)
{
	size_t lo = 0, hi = m->nu;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = rkey_cmp(&m->u[mid], k);
		if (r < 0 || (after && r == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct bc_kval rand_val(struct tu_rng *r)
{
	static int objs[8];
	struct bc_kval v = {.loc = {(uint32_t)tu_below(r, 300), (uint32_t)tu_rand(r),
				    (uint32_t)tu_below(r, 1u << (tu_below(r, 4) * 7 + 4))}};
	if (tu_below(r, 4) == 0)
		v.expire_s = (uint32_t)tu_rand(r);
	if (tu_below(r, 2))
		v.mlen = (uint16_t)tu_below(r, tu_below(r, 2) ? 200 : 65536);
	if (tu_below(r, 5) == 0) {
		v.flags = BC_KV_OBJECT;
		v.obj = (struct bc_object *)&objs[tu_below(r, 8)];
	}
	if (tu_below(r, 10) == 0)
		v.flags |= 0x40;
	return v;
}

static void model_compare_all(const struct bc_keydir *kd, const struct model *m)
{
	struct collect c = {0};
	size_t j = 0;

	ck_assert_int_eq(bc_keydir_scan_all(kd, collect_fn, &c), 0);
	ck_assert_uint_eq(c.n, m->count);
	for (size_t i = 0; i < m->nu; i++) {
		if (!m->in[i])
			continue;
		ck_assert_msg(rkey_cmp(&c.v[j], &m->u[i]) == 0, "entry %zu differs", j);
		ck_assert(kval_eq(&c.vals[j], &m->val[i]));
		j++;
	}
	collect_release(&c);
}

static void random_ops(uint64_t seed, size_t universe, size_t ops)
{
	struct tu_rng rng = {seed};
	struct model m;
	struct bc_keydir *kd = kd_new();
	size_t target, drains = 0;
	bool filling = true;

	/* puts of random keys settle at 3/4 of the universe present; aim below that */
	model_init(&m, &rng, universe);
	target = m.nu * 2 / 3;
	for (size_t op = 0; op < ops; op++) {
		if (filling && m.count >= target) {
			filling = false;
		} else if (!filling && m.count == 0) {
			ck_assert_uint_eq(bc_keydir_count(kd), 0);
			CHECK_TREE(kd);
			filling = true;
			drains++;
			target = 1 + tu_below(&rng, m.nu * 2 / 3);
		}
		size_t i = tu_below(&rng, m.nu);
		const struct rkey *k = &m.u[i];
		uint64_t what = tu_below(&rng, 100);
		/* while filling puts dominate, while draining removes do */
		uint64_t put_share = filling ? 60 : 15;

		if (what < put_share) {
			struct bc_kval v = rand_val(&rng), old;
			bool replaced;
			if (!(v.flags & BC_KV_OBJECT))
				v.obj = NULL;
			ck_assert_int_eq(
				bc_keydir_put(kd, k->space, k->k, k->len, &v, &old, &replaced), 0);
			ck_assert(replaced == m.in[i]);
			if (replaced)
				ck_assert(kval_eq(&old, &m.val[i]));
			else
				m.count++;
			m.in[i] = true;
			m.val[i] = v;
		} else if (what < 80) {
			/* remove: when draining, pick a present key near i */
			if (!filling)
				while (!m.in[i] && m.count) {
					i = (i + 1) % m.nu;
					k = &m.u[i];
				}
			struct bc_kval old;
			bool was = bc_keydir_remove(kd, k->space, k->k, k->len, &old);
			ck_assert(was == m.in[i]);
			if (was) {
				ck_assert(kval_eq(&old, &m.val[i]));
				m.in[i] = false;
				m.count--;
			}
		} else if (what < 88) {
			struct bc_kval v = rand_val(&rng);
			struct bc_loc expect = m.in[i] ? m.val[i].loc : v.loc;
			bool sw;
			if (!(v.flags & BC_KV_OBJECT))
				v.obj = NULL;
			if (tu_below(&rng, 4) == 0)
				expect.offset ^= 1;
			ck_assert_int_eq(
				bc_keydir_move(kd, k->space, k->k, k->len, &expect, &v.loc, &sw),
				0);
			bool want = m.in[i] && bc_loc_eq(&expect, &m.val[i].loc);
			ck_assert(sw == want);
			if (sw)
				m.val[i].loc = v.loc;
		} else if (what < 95) {
			struct bc_kval got;
			bool found = bc_keydir_get(kd, k->space, k->k, k->len, &got);
			ck_assert(found == m.in[i]);
			if (found)
				ck_assert(kval_eq(&got, &m.val[i]));
		} else {
			/* scan from a universe key, or from a shortened or extended one */
			struct rkey s = *k;
			uint8_t *tmp = NULL;
			uint64_t how = tu_below(&rng, 3);
			if (how == 1 && s.len)
				s.len = tu_below(&rng, s.len);
			if (how == 2) {
				tmp = malloc(s.len + 1);
				memcpy(tmp, s.k, s.len);
				tmp[s.len] = (uint8_t)tu_rand(&rng);
				s.k = tmp;
				s.len++;
			}
			bool ex = tu_below(&rng, 2);
			struct collect c = {.stop_after = 1 + tu_below(&rng, 60)};
			int rc = bc_keydir_scan(kd, s.space, s.k, s.len, ex, collect_fn, &c);
			size_t j = model_seek(&m, &s, ex), seen = 0;
			for (; j < m.nu && seen < c.stop_after && m.u[j].space == s.space; j++) {
				if (!m.in[j])
					continue;
				ck_assert_uint_lt(seen, c.n);
				ck_assert(rkey_cmp(&c.v[seen], &m.u[j]) == 0);
				ck_assert(kval_eq(&c.vals[seen], &m.val[j]));
				seen++;
			}
			ck_assert_uint_eq(seen, c.n);
			ck_assert_int_eq(rc, c.n == c.stop_after ? 7 : 0);
			collect_release(&c);
			free(tmp);
		}
		ck_assert_uint_eq(bc_keydir_count(kd), m.count);
		if (op % 2000 == 0)
			CHECK_TREE(kd);
		if (op % 20000 == 0)
			model_compare_all(kd, &m);
	}
	CHECK_TREE(kd);
	model_compare_all(kd, &m);
	ck_assert_uint_ge(drains, 1);
	bc_keydir_free(kd);
	model_release(&m);
}

START_TEST(random_ops_match_model)
{
	random_ops(tu_seed(0x6b657964697221), 6000, 250000);
}
END_TEST

START_TEST(random_ops_small_universe)
{
	/* few keys: mostly replaces and removes of present keys, shallow trees */
	random_ops(tu_seed(0x736d616c6c) + (uint64_t)_i, 300, 40000);
}
END_TEST

/* ---- appends in key order ---- */

/*
 * A random subset of the model's universe appended in order equals the same entries put in
 * random order; appends refuse keys not above the largest; the tree then takes any
 * operation (the nodes appends closed have the right prefixes and heads).
 */
START_TEST(append_builds_what_puts_build)
{
	struct tu_rng rng = {tu_seed(0x617070656e64) + (uint64_t)_i};
	struct model m;
	struct bc_keydir *kd = kd_new(), *ref = kd_new();

	model_init(&m, &rng, _i == 2 ? 300 : 8000);
	size_t *order = malloc(m.nu * sizeof(*order)), n = 0;
	/* loop 1 starts with a few puts at the low end, so appends go after them */
	size_t first = _i == 1 ? m.nu / 10 : 0;
	for (size_t i = 0; i < m.nu; i++) {
		if (tu_below(&rng, 3) == 0)
			continue;
		m.in[i] = true;
		m.val[i] = rand_val(&rng);
		if (!(m.val[i].flags & BC_KV_OBJECT))
			m.val[i].obj = NULL;
		m.count++;
		order[n++] = i;
		const struct rkey *k = &m.u[i];
		if (i < first)
			ck_assert_int_eq(
				bc_keydir_put(kd, k->space, k->k, k->len, &m.val[i], NULL, NULL),
				0);
		else
			ck_assert_int_eq(bc_keydir_append(kd, k->space, k->k, k->len, &m.val[i]),
					 0);
	}
	CHECK_TREE(kd);
	model_compare_all(kd, &m);
	for (size_t i = n; i > 1; i--) {
		size_t j = tu_below(&rng, i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		const struct rkey *k = &m.u[order[i]];
		ck_assert_int_eq(
			bc_keydir_put(ref, k->space, k->k, k->len, &m.val[order[i]], NULL, NULL),
			0);
	}
	model_compare_all(ref, &m);
	ck_assert_uint_le(bc_keydir_memory(kd), bc_keydir_memory(ref) * 11 / 10);

	/* not above the largest key: refused, nothing changed */
	size_t last = order[0];
	for (size_t i = 0; i < n; i++)
		if (order[i] > last)
			last = order[i];
	struct bc_kval v = mkval(1, 2, 3);
	const struct rkey *k = &m.u[last];
	ck_assert_int_eq(bc_keydir_append(kd, k->space, k->k, k->len, &v), -ERANGE);
	k = &m.u[tu_below(&rng, last)];
	ck_assert_int_eq(bc_keydir_append(kd, k->space, k->k, k->len, &v), -ERANGE);
	ck_assert_uint_eq(bc_keydir_count(kd), m.count);

	/* then anything goes */
	for (size_t op = 0; op < 20000; op++) {
		size_t i = tu_below(&rng, m.nu);
		k = &m.u[i];
		if (tu_below(&rng, 2)) {
			v = rand_val(&rng);
			if (!(v.flags & BC_KV_OBJECT))
				v.obj = NULL;
			ck_assert_int_eq(bc_keydir_put(kd, k->space, k->k, k->len, &v, NULL, NULL),
					 0);
			m.count += !m.in[i];
			m.in[i] = true;
			m.val[i] = v;
		} else {
			ck_assert(bc_keydir_remove(kd, k->space, k->k, k->len, NULL) == m.in[i]);
			m.count -= m.in[i];
			m.in[i] = false;
		}
		if (op % 2000 == 0)
			CHECK_TREE(kd);
	}
	CHECK_TREE(kd);
	model_compare_all(kd, &m);
	free(order);
	bc_keydir_free(kd);
	bc_keydir_free(ref);
	model_release(&m);
}
END_TEST

START_TEST(append_enomem_changes_nothing)
{
	struct bc_keydir *kd = kd_new();
	uint8_t k[16];
	unsigned enomem = 0;

	for (uint32_t i = 0; i < 20000; i++) {
		size_t kl = numkey(k, "app", i);
		struct bc_kval v = mkval(1, i, 100);
		bc_keydir_fail_alloc(kd, i % 3 ? 0 : 1);
		int rc = bc_keydir_append(kd, 0, k, kl, &v);
		bc_keydir_fail_alloc(kd, 0);
		if (rc) {
			ck_assert_int_eq(rc, -ENOMEM);
			ck_assert(!bc_keydir_get(kd, 0, k, kl, NULL));
			ck_assert_uint_eq(bc_keydir_count(kd), i);
			enomem++;
			ck_assert_int_eq(bc_keydir_append(kd, 0, k, kl, &v), 0);
		}
	}
	CHECK_TREE(kd);
	ck_assert_uint_gt(enomem, 0);
	ck_assert_uint_eq(bc_keydir_count(kd), 20000);
	bc_keydir_free(kd);
}
END_TEST

/* ---- bulk application against bc_apply ---- */

/* Just enough of a db for bc_apply and bc_bulk: keydir, objects, two files. */
static struct bc_db *fake_db(void)
{
	struct bc_db *db = calloc(1, sizeof(*db));
	ck_assert_int_eq(bc_keydir_new(&db->kd), 0);
	ck_assert_int_eq(bc_objtab_new(&db->objs), 0);
	db->nslots = 2;
	db->files = calloc(2, sizeof(*db->files));
	for (int i = 0; i < 2; i++) {
		db->files[i] = calloc(1, sizeof(struct bc_file));
		db->files[i]->id = (uint64_t)(i + 1) << 16;
	}
	db->next_object = 1;
	return db;
}

static void fake_db_free(struct bc_db *db)
{
	bc_keydir_free(db->kd);
	bc_objtab_free(db->objs);
	for (int i = 0; i < 2; i++)
		free(db->files[i]);
	free(db->files);
	free(db);
}

struct dump {
	struct rkey *k;
	struct bc_kval *v;
	uint64_t *obj; /* object id per entry, 0 for none */
	size_t n, cap;
};

static int dump_fn(void *ctx, unsigned space, const uint8_t *key, size_t klen,
		   const struct bc_kval *v)
{
	struct dump *d = ctx;
	if (d->n == d->cap) {
		d->cap = d->cap ? 2 * d->cap : 256;
		d->k = realloc(d->k, d->cap * sizeof(*d->k));
		d->v = realloc(d->v, d->cap * sizeof(*d->v));
		d->obj = realloc(d->obj, d->cap * sizeof(*d->obj));
	}
	d->k[d->n].space = space;
	d->k[d->n].len = klen;
	d->k[d->n].k = malloc(klen + 1);
	memcpy(d->k[d->n].k, key, klen);
	d->v[d->n] = *v;
	d->obj[d->n] = v->obj ? v->obj->id : 0;
	d->n++;
	return 0;
}

static void dump_release(struct dump *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->k[i].k);
	free(d->k);
	free(d->v);
	free(d->obj);
}

struct objcmp {
	struct bc_db *other;
	size_t n;
};

static int obj_same(void *ctx, struct bc_object *o)
{
	struct objcmp *c = ctx;
	struct bc_object *p = bc_objtab_find(c->other->objs, o->id);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(o->size, p->size);
	ck_assert_uint_eq(o->links, p->links);
	ck_assert_uint_eq(o->count, p->count);
	struct bc_chunk *a, *b;
	for (uint64_t i = 0; (a = bc_object_next(o, &i)); i++) {
		uint64_t j = i;
		b = bc_object_next(p, &j);
		ck_assert_ptr_nonnull(b);
		ck_assert_uint_eq(i, j);
		ck_assert(bc_loc_eq(&a->loc, &b->loc));
		ck_assert_uint_eq(a->dlen, b->dlen);
	}
	c->n++;
	return 0;
}

/* The whole state: keydir, objects, live bytes, object counter. */
static void same_state(struct bc_db *a, struct bc_db *b)
{
	struct dump da = {0}, db_ = {0};
	ck_assert_int_eq(bc_keydir_scan_all(a->kd, dump_fn, &da), 0);
	ck_assert_int_eq(bc_keydir_scan_all(b->kd, dump_fn, &db_), 0);
	ck_assert_uint_eq(da.n, db_.n);
	for (size_t i = 0; i < da.n; i++) {
		ck_assert(rkey_cmp(&da.k[i], &db_.k[i]) == 0);
		struct bc_kval x = da.v[i], y = db_.v[i];
		x.obj = y.obj = NULL;
		ck_assert(kval_eq(&x, &y));
		ck_assert_uint_eq(da.obj[i], db_.obj[i]);
	}
	dump_release(&da);
	dump_release(&db_);
	for (int i = 0; i < 2; i++)
		ck_assert_uint_eq(a->files[i]->live, b->files[i]->live);
	ck_assert_uint_eq(a->next_object, b->next_object);
	struct objcmp c = {.other = b};
	ck_assert_int_eq(bc_objtab_each(a->objs, obj_same, &c), 0);
	ck_assert_uint_eq(c.n, bc_objtab_count(b->objs));
}

/* Finish and release b, check that bulk's keydir is sound and matches one's, free both. */
static void finish_and_compare(struct bc_bulk *b, struct bc_db *one, struct bc_db *bulk)
{
	ck_assert_int_eq(bc_bulk_finish(b), 0);
	bc_bulk_release(b);
	CHECK_TREE(bulk->kd);
	same_state(one, bulk);
	fake_db_free(one);
	fake_db_free(bulk);
}

/*
 * Random effects over a small universe (so keys repeat within a file): PUTs with and
 * without expiry, DELETEs, LINKs that move objects between keys (renames) and resize
 * them, CHUNKs and TRUNCs. File 0 is applied one by one to both states; file 1 one by
 * one to the first and through bc_bulk to the second, which must end up the same.
 */
START_TEST(bulk_matches_apply)
{
	struct tu_rng rng = {tu_seed(0x62756c6b) + (uint64_t)_i};
	struct model m;
	struct bc_db *one = fake_db(), *bulk = fake_db();
	struct bc_bulk b, st;

	/* odd loops take both files through one bulk, finished at the end; loops from 4 on
	 * stage each file (as an unverified hint) and commit it, after staging and dropping
	 * a hint that failed */
	bool both = _i % 2, staged = _i >= 4;
	model_init(&m, &rng, _i % 4 < 2 ? 50 : 3000);
	bc_bulk_init(&b, bulk);
	bc_bulk_init(&st, bulk);
	for (uint32_t slot = 0; slot < 2; slot++) {
		uint32_t off = BC_FILE_HEADER_SIZE;
		size_t n = 2000 + tu_below(&rng, 20000);
		for (size_t i = 0; staged && i < 1000; i++) {
			const struct rkey *k = &m.u[tu_below(&rng, m.nu)];
			bc_effect e = {.type = BC_REC_LINK,
				       .offset = off,
				       .space = (uint8_t)k->space,
				       .klen = (uint16_t)k->len,
				       .key = k->k,
				       .vlen = BC_OBJ_VALUE_SIZE,
				       .object = 1 + tu_below(&rng, 40)};
			if (i % 3 == 0)
				e.type = BC_REC_PUT;
			ck_assert_int_eq(bc_bulk_stage(&st, slot, &e), 0);
		}
		bc_bulk_drop(&st);
		for (size_t i = 0; i < n; i++) {
			const struct rkey *k = &m.u[tu_below(&rng, m.nu)];
			bc_effect e = {.offset = off,
				       .space = (uint8_t)k->space,
				       .klen = (uint16_t)k->len,
				       .key = k->k};
			uint64_t what = tu_below(&rng, 100);
			if (what < 45) {
				e.type = BC_REC_PUT;
				e.vlen = (uint32_t)tu_below(&rng, 200);
				e.mlen = (uint16_t)tu_below(&rng, 3) * 20;
				if (tu_below(&rng, 4) == 0)
					e.expire_s = tu_below(&rng, 2) ? 1 : UINT64_MAX;
			} else if (what < 65) {
				e.type = BC_REC_DELETE;
			} else if (what < 80) {
				e.type = BC_REC_LINK;
				e.vlen = BC_OBJ_VALUE_SIZE;
				e.object = 1 + tu_below(&rng, 20);
				e.size = tu_below(&rng, 5 * BC_CHUNK_SIZE);
			} else {
				e.klen = 0;
				e.space = 0;
				e.key = NULL;
				e.object = 1 + tu_below(&rng, 20);
				if (what < 95) {
					e.type = BC_REC_CHUNK;
					e.index = (uint32_t)tu_below(&rng, 6);
					e.dlen = 1 + (uint32_t)tu_below(&rng, 100);
					e.vlen = BC_CHUNK_PREFIX + e.dlen;
				} else {
					e.type = BC_REC_TRUNC;
					e.vlen = BC_OBJ_VALUE_SIZE;
					e.size = tu_below(&rng, 5 * BC_CHUNK_SIZE);
				}
			}
			ck_assert_int_eq(bc_apply(one, slot, &e, NULL), 0);
			if ((slot || both) && staged)
				ck_assert_int_eq(bc_bulk_stage(&st, slot, &e), 0);
			else if (slot || both)
				ck_assert_int_eq(bc_bulk_add(&b, slot, &e), 0);
			else
				ck_assert_int_eq(bc_apply(bulk, slot, &e, NULL), 0);
			off += bc_effect_record_size(&e);
		}
		if (staged && (slot || both))
			ck_assert_int_eq(bc_bulk_commit(&b, &st), 0);
		if (both && !slot)
			continue;
		ck_assert_int_eq(bc_bulk_finish(&b), 0);
		CHECK_TREE(bulk->kd);
		same_state(one, bulk);
	}
	bc_bulk_release(&b);
	bc_bulk_release(&st);
	bc_apply_sweep(one);
	bc_apply_sweep(bulk);
	same_state(one, bulk);
	fake_db_free(one);
	fake_db_free(bulk);
	model_release(&m);
}
END_TEST

/* Add e to b at *off, and apply it to one as well (when not NULL); *off moves past it. */
static void add_both(struct bc_db *one, struct bc_bulk *b, bc_effect *e, uint32_t *off)
{
	e->offset = *off;
	if (one)
		ck_assert_int_eq(bc_apply(one, 1, e, NULL), 0);
	ck_assert_int_eq(bc_bulk_add(b, 1, e), 0);
	*off += (uint32_t)bc_effect_record_size(e);
}

/* Bulk into an empty keydir appends; every shape of key must still sort right. */
START_TEST(bulk_sorts_every_key_shape)
{
	struct tu_rng rng = {tu_seed(0x736f7274)};
	struct model m;
	struct bc_db *one = fake_db(), *bulk = fake_db();
	struct bc_bulk b;

	model_init(&m, &rng, 20000);
	bc_bulk_init(&b, bulk);
	uint32_t off = BC_FILE_HEADER_SIZE;
	for (size_t i = 0; i < 3 * m.nu; i++) {
		const struct rkey *k = &m.u[tu_below(&rng, m.nu)];
		bc_effect e = {.type = BC_REC_PUT,
			       .space = (uint8_t)k->space,
			       .klen = (uint16_t)k->len,
			       .key = k->k,
			       .vlen = 10};
		add_both(one, &b, &e, &off);
	}
	finish_and_compare(&b, one, bulk);
	model_release(&m);
}
END_TEST

/* n PUTs of random 16-byte keys (repeats among them) into b, and applied to one (if any). */
static void random_load(struct bc_bulk *b, struct bc_db *one, size_t n, uint64_t seed)
{
	struct tu_rng rng = {tu_seed(seed)};
	char k[32];
	uint32_t off = BC_FILE_HEADER_SIZE;

	for (size_t i = 0; i < n; i++) {
		snprintf(k, sizeof(k), "k%015llu", (unsigned long long)tu_below(&rng, 1000000000));
		bc_effect e = {.type = BC_REC_PUT,
			       .space = 1,
			       .klen = 16,
			       .key = (const uint8_t *)k,
			       .vlen = 100};
		add_both(one, b, &e, &off);
	}
}

/*
 * A load big enough that finish sorts in a thread of its own while it applies (bulk.c),
 * with runs that go round the ring between them more than once: the same keydir, and
 * under ThreadSanitizer no race with that thread.
 */
START_TEST(bulk_big_load)
{
	struct bc_db *one = fake_db(), *bulk = fake_db();
	struct bc_bulk b;

	bc_bulk_init(&b, bulk);
	random_load(&b, one, 500000, 0x62696730);
	finish_and_compare(&b, one, bulk);
}
END_TEST

/*
 * Runs too big for the sorter's ring (two buckets of 16384 keys of 600 bytes: 10 MiB each)
 * are allocated on their own, one at a time: the same keydir.
 */
START_TEST(bulk_long_keys)
{
	struct tu_rng rng = {tu_seed(0x6c6f6e67)};
	struct bc_db *one = fake_db(), *bulk = fake_db();
	struct bc_bulk b;
	uint8_t k[600];
	uint32_t off = BC_FILE_HEADER_SIZE;

	bc_bulk_init(&b, bulk);
	for (size_t i = 0; i < 32768; i++) {
		k[0] = (uint8_t)('a' + (i & 1));
		for (size_t j = 1; j < sizeof(k); j++)
			k[j] = (uint8_t)tu_below(&rng, 256);
		bc_effect e = {
			.type = BC_REC_PUT, .space = 1, .klen = sizeof(k), .key = k, .vlen = 10};
		add_both(one, &b, &e, &off);
	}
	finish_and_compare(&b, one, bulk);
}
END_TEST

/*
 * The keydir runs out of memory while the sorter thread is ahead of it, with more entries
 * than the queue between them holds: finish stops the sorter and reports -ENOMEM, the
 * keydir is sound and holds only what was applied, and nothing leaks (LeakSanitizer) or
 * hangs.
 */
START_TEST(bulk_enomem_stops_sorter)
{
	static const unsigned fail_at[] = {1, 100, 1000};
	struct bc_db *bulk = fake_db();
	struct bc_bulk b;

	bc_bulk_init(&b, bulk);
	random_load(&b, NULL, 400000, 0x656e6f6d);
	bc_keydir_fail_alloc(bulk->kd, fail_at[_i]);
	ck_assert_int_eq(bc_bulk_finish(&b), -ENOMEM);
	bc_keydir_fail_alloc(bulk->kd, 0);
	bc_bulk_release(&b);
	CHECK_TREE(bulk->kd);
	ck_assert_uint_lt(bc_keydir_count(bulk->kd), 400000);
	fake_db_free(bulk);
}
END_TEST

/*
 * Key sides wait in buckets by the first byte where keys differ so far; when a later key
 * differs earlier, everything waiting moves into one bucket, which grows past what is sorted
 * in one piece and is split again at finish. Long shared prefixes, keys that are prefixes
 * of others, repeats and deletes, and the prefix shrinking byte by byte down to the space.
 */
START_TEST(bulk_rebuckets_and_splits)
{
	struct tu_rng rng = {tu_seed(0x72656275)};
	struct bc_db *one = fake_db(), *bulk = fake_db();
	struct bc_bulk b;
	uint8_t k[64];
	uint32_t off = BC_FILE_HEADER_SIZE;

	bc_bulk_init(&b, bulk);
	memset(k, 'p', sizeof(k));
	for (size_t i = 0; i < 60000; i++) {
		/* the first 40000 share 40 bytes; then ever shorter prefixes, then other spaces */
		size_t pre = i < 40000 ? 40 : 40 - (i - 40000) / 600;
		unsigned space = i < 55000 ? 2 : (unsigned)tu_below(&rng, 3);
		size_t len = pre + tu_below(&rng, 5);
		memset(k, 'p', pre);
		for (size_t j = pre; j < len; j++)
			k[j] = (uint8_t)tu_below(&rng, 3);
		bc_effect e = {.type = tu_below(&rng, 8) ? BC_REC_PUT : BC_REC_DELETE,
			       .space = (uint8_t)space,
			       .klen = (uint16_t)(len ? len : 1),
			       .key = k};
		e.vlen = e.type == BC_REC_PUT ? 10 : 0;
		add_both(one, &b, &e, &off);
	}
	finish_and_compare(&b, one, bulk);
}
END_TEST

static Suite *keydir_suite(void)
{
	Suite *s = suite_create("keydir");
	TCase *tc = tcase_create("basics");
	tcase_add_test(tc, put_get_replace_remove);
	tcase_add_test(tc, values_round_trip);
	tcase_add_test(tc, rejects_bad_arguments);
	suite_add_tcase(s, tc);

	tc = tcase_create("order");
	tcase_add_test(tc, orders_spaces_prefixes_and_bytes);
	tcase_add_test(tc, long_keys_share_separators);
	tcase_add_test(tc, scan_start_exclusive_stop);
	tcase_add_test(tc, move_only_on_match);
	suite_add_tcase(s, tc);

	tc = tcase_create("shapes");
	tcase_add_test(tc, sequential_loads_and_drains);
	tcase_add_test(tc, middle_runs);
	tcase_add_test(tc, enomem_leaves_tree_unchanged);
	tcase_add_test(tc, move_enomem_changes_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_add_test(tc, random_ops_match_model);
	tcase_add_loop_test(tc, random_ops_small_universe, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("bulk");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, append_builds_what_puts_build, 0, 3);
	tcase_add_test(tc, append_enomem_changes_nothing);
	tcase_add_loop_test(tc, bulk_matches_apply, 0, 8);
	tcase_add_test(tc, bulk_sorts_every_key_shape);
	tcase_add_test(tc, bulk_rebuckets_and_splits);
	tcase_add_test(tc, bulk_big_load);
	tcase_add_test(tc, bulk_long_keys);
	tcase_add_loop_test(tc, bulk_enomem_stops_sorter, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(keydir_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
