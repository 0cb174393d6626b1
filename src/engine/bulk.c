// SPDX-License-Identifier: MIT
/*
 * Applying hint files in bulk. Applied one by one in record order, entries land on random
 * keys, and each costs a descent of the keydir that misses the cache. Hints are all there
 * at once, so their entries are applied in the two halves of bc_apply, which commute
 * (apply.c): the object side of each entry as it is added, in record order, and the key
 * sides at finish, after a stable sort by key. Then the entries of one key come together,
 * in record order, and a key greater than every key in the keydir (all of them, for the
 * first file) with a PUT or LINK last is simply appended (bc_keydir_append); any other
 * group is applied entry by entry with bc_apply_key, whose descents now go through the
 * keydir in order. Either way the state is the one bc_apply gives: for an appended key,
 * the group's earlier entries would each have been replaced by the next, leaving no trace.
 *
 * Key sides wait in one packed buffer, across files (each entry names its file), until the
 * caller finishes: before anything else changes the state (a scan) and at the end of
 * replay. At most BULK_MAX bytes wait; then they are applied and the buffer refilled,
 * which keeps record order per key across the batches.
 *
 * Sorting: the entries move, in order, into cache-sized buckets by the top bits of an
 * 8-byte word of their key (the bytes after the prefix all of them share); each bucket is
 * radix sorted by (word, place), runs of equal words are finished by comparing whole keys,
 * and the bucket is applied.
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * A key side in the buffer: offset u32 | vlen u32 | expire u32 | slot u32 | klen u16 |
 * mlen u16 | type u8 | space u8 | key | object pointer (LINK). From space on it is the
 * composite key.
 */
#define E_OFFSET 0
#define E_VLEN 4
#define E_EXPIRE 8
#define E_SLOT 12
#define E_KLEN 16
#define E_MLEN 18
#define E_TYPE 20
#define E_KEY 21 /* the space byte, then the key */

/* Buffer offsets are u32; a batch is applied before it grows past this. */
#define BULK_MAX ((size_t)1 << 30)

/* Entries per bucket that bc_bulk_finish aims at: a bucket's entries fit in the cache. */
#define BUCKET 2048

/* A sort item: a word of the key and where the entry is. */
struct item {
	uint64_t word;
	uint32_t at;
};

static inline uint16_t ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* Composite key (space byte, key bytes) of the entry at p, and its length. */
static inline const uint8_t *ckey(const uint8_t *p, size_t *len)
{
	*len = 1u + ld16(p + E_KLEN);
	return p + E_KEY;
}

static size_t lcp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	size_t n = al < bl ? al : bl, i = 0;

	while (i < n && a[i] == b[i])
		i++;
	return i;
}

static int kcmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);

	return r ? r : (al > bl) - (al < bl);
}

void bc_bulk_init(struct bc_bulk *b, struct bc_db *db)
{
	memset(b, 0, sizeof(*b));
	b->db = db;
}

void bc_bulk_release(struct bc_bulk *b)
{
	free(b->buf);
	b->buf = NULL;
	b->used = b->cap = b->n = 0;
}

int bc_bulk_add(struct bc_bulk *b, uint32_t slot, const bc_effect *e)
{
	struct bc_object *obj;
	int rc = bc_apply_object(b->db, slot, e, &obj);

	if (rc || (e->type != BC_REC_PUT && e->type != BC_REC_DELETE && e->type != BC_REC_LINK))
		return rc;
	size_t len = E_KEY + 1u + e->klen + (obj ? sizeof(obj) : 0);
	if (b->used + len > BULK_MAX) {
		rc = bc_bulk_finish(b);
		if (rc)
			return rc;
	}
	uint8_t *buf = bc_grow(b->buf, &b->cap, b->used + len, 1, 1u << 16);
	if (!buf)
		return -ENOMEM;
	b->buf = buf;
	uint8_t *p = buf + b->used;
	uint32_t expire = bc_expire32(e->expire_s);
	uint16_t klen = e->klen, mlen = e->mlen;
	memcpy(p + E_OFFSET, &e->offset, 4);
	memcpy(p + E_VLEN, &e->vlen, 4);
	memcpy(p + E_EXPIRE, &expire, 4);
	memcpy(p + E_SLOT, &slot, 4);
	memcpy(p + E_KLEN, &klen, 2);
	memcpy(p + E_MLEN, &mlen, 2);
	p[E_TYPE] = e->type;
	p[E_KEY] = e->space;
	memcpy(p + E_KEY + 1, e->key, e->klen);
	if (obj)
		memcpy(p + E_KEY + 1 + e->klen, &obj, sizeof(obj));
	/* every entry shares what it shares with the first */
	size_t kl;
	const uint8_t *k = ckey(p, &kl);
	if (!b->n) {
		b->lcp = kl;
	} else {
		size_t fl;
		const uint8_t *f = ckey(buf, &fl);
		size_t n = b->lcp < kl ? b->lcp : kl;
		b->lcp = lcp(f, n, k, n);
	}
	b->used += len;
	b->n++;
	return 0;
}

/* The big-endian word of composite key bytes [c, c + 8), zero past the key's end. */
static uint64_t word_at(const uint8_t *k, size_t kl, size_t c)
{
	uint64_t w = 0;

	if (kl >= c + 8) {
		memcpy(&w, k + c, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		w = __builtin_bswap64(w);
#endif
		return w;
	}
	for (size_t i = 0; i < 8; i++)
		w = w << 8 | (c + i < kl ? k[c + i] : 0);
	return w;
}

/* Stable sort of a[0..n) by word, byte by byte from bit shift down; t is scratch of n. */
static void sort_words(struct item *a, struct item *t, size_t n, unsigned shift)
{
	size_t cnt[256] = {0}, pos[256];

	if (n <= 32) {
		for (size_t i = 1; i < n; i++) {
			struct item x = a[i];
			size_t j = i;
			for (; j && a[j - 1].word > x.word; j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
		return;
	}
	for (size_t i = 0; i < n; i++)
		cnt[a[i].word >> shift & 0xff]++;
	if (cnt[a[0].word >> shift & 0xff] == n) {
		if (shift)
			sort_words(a, t, n, shift - 8);
		return;
	}
	for (size_t d = 0, s = 0; d < 256; d++) {
		pos[d] = s;
		s += cnt[d];
	}
	for (size_t i = 0; i < n; i++)
		t[pos[a[i].word >> shift & 0xff]++] = a[i];
	memcpy(a, t, n * sizeof(*a));
	if (!shift)
		return;
	for (size_t d = 0, s = 0; d < 256; s += cnt[d], d++)
		if (cnt[d] > 1)
			sort_words(a + s, t + s, cnt[d], shift - 8);
}

static int item_cmp(const uint8_t *buf, const struct item *x, const struct item *y)
{
	size_t xl, yl;
	const uint8_t *xk = ckey(buf + x->at, &xl), *yk = ckey(buf + y->at, &yl);

	return kcmp(xk, xl, yk, yl);
}

/* Stable sort of a[0..n) by whole key; t is scratch of n. */
static void sort_keys(const uint8_t *buf, struct item *a, struct item *t, size_t n)
{
	if (n <= 16) {
		for (size_t i = 1; i < n; i++) {
			struct item x = a[i];
			size_t j = i;
			for (; j && item_cmp(buf, &a[j - 1], &x) > 0; j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
		return;
	}
	size_t h = n / 2, i = 0, j = h, o = 0;
	sort_keys(buf, a, t, h);
	sort_keys(buf, a + h, t + h, n - h);
	while (i < h && j < n)
		t[o++] = item_cmp(buf, &a[j], &a[i]) < 0 ? a[j++] : a[i++];
	while (i < h)
		t[o++] = a[i++];
	while (j < n)
		t[o++] = a[j++];
	memcpy(a, t, n * sizeof(*a));
}

/* Bytes of the entry at p. */
static size_t entry_len(const uint8_t *p)
{
	return E_KEY + 1u + ld16(p + E_KLEN) +
		(p[E_TYPE] == BC_REC_LINK ? sizeof(struct bc_object *) : 0);
}

/* The effect an entry stands for, its file and its LINK object. */
static void entry_get(const uint8_t *p, bc_effect *e, uint32_t *slot, struct bc_object **obj)
{
	*slot = ld32(p + E_SLOT);
	memset(e, 0, sizeof(*e));
	e->offset = ld32(p + E_OFFSET);
	e->vlen = ld32(p + E_VLEN);
	e->expire_s = ld32(p + E_EXPIRE);
	e->klen = ld16(p + E_KLEN);
	e->mlen = ld16(p + E_MLEN);
	e->type = p[E_TYPE];
	e->space = p[E_KEY];
	e->key = p + E_KEY + 1;
	*obj = NULL;
	if (e->type == BC_REC_LINK)
		memcpy(obj, p + E_KEY + 1 + e->klen, sizeof(*obj));
}

/* Apply the group a[0..n) of one key's entries (in buf), in record order. */
static int apply_group(struct bc_bulk *b, const uint8_t *buf, const struct item *a, size_t n)
{
	struct bc_object *obj;
	uint32_t slot;
	bc_effect e;
	int rc;

	entry_get(buf + a[n - 1].at, &e, &slot, &obj);
	if (e.type != BC_REC_DELETE) {
		rc = bc_apply_append(b->db, slot, &e, obj);
		if (rc != -ERANGE)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		entry_get(buf + a[i].at, &e, &slot, &obj);
		rc = bc_apply_key(b->db, slot, &e, obj, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* Sort the n entries in buf[0..len) (one bucket) by key, stably, and apply them. */
static int apply_sorted(struct bc_bulk *b, const uint8_t *buf, size_t len, size_t n, struct item *a)
{
	struct item *t = a + n;
	int rc = 0;

	for (size_t i = 0, at = 0; at < len; i++) {
		size_t kl;
		const uint8_t *k = ckey(buf + at, &kl);
		a[i].word = word_at(k, kl, b->lcp);
		a[i].at = (uint32_t)at;
		at += entry_len(buf + at);
	}
	sort_words(a, t, n, 56);
	/* Equal words: the keys may still differ past the word (or in length). */
	for (size_t i = 0, j; i < n; i = j) {
		bool differ = false;
		for (j = i + 1; j < n && a[j].word == a[i].word; j++)
			differ = differ || item_cmp(buf, &a[j - 1], &a[j]);
		if (differ)
			sort_keys(buf, a + i, t + i, j - i);
	}
	for (size_t i = 0, j; i < n && !rc; i = j) {
		for (j = i + 1; j < n && a[j].word == a[i].word && !item_cmp(buf, &a[i], &a[j]);
		     j++)
			;
		rc = apply_group(b, buf, a + i, j - i);
	}
	return rc;
}

/*
 * Sorted, the entries would be read in random order from a buffer far larger than the
 * caches. So first move them, in order, into buckets by the top bits of their words (about
 * BUCKET entries each), and sort and apply one bucket at a time, within the cache.
 */
int bc_bulk_finish(struct bc_bulk *b)
{
	size_t n = b->n, len = b->used, most = 0;
	unsigned bits = 0;
	int rc = -ENOMEM;

	if (!n)
		return 0;
	while (bits < 16 && n >> bits > BUCKET)
		bits++;
	size_t nb = (size_t)1 << bits;
	size_t *cnt = calloc(2 * nb, sizeof(*cnt)), *pos = cnt + nb;
	uint8_t *out = malloc(len);
	struct item *a = NULL;
	if (!cnt || !out)
		goto out_free;
	for (size_t at = 0; at < len; at += entry_len(b->buf + at)) {
		size_t kl;
		const uint8_t *k = ckey(b->buf + at, &kl);
		size_t d = bits ? word_at(k, kl, b->lcp) >> (64 - bits) : 0;
		cnt[d]++;
		pos[d] += entry_len(b->buf + at);
	}
	for (size_t d = 0, s = 0; d < nb; d++) {
		size_t bytes = pos[d];
		pos[d] = s;
		s += bytes;
		if (cnt[d] > most)
			most = cnt[d];
	}
	for (size_t at = 0; at < len;) {
		size_t kl, el = entry_len(b->buf + at);
		const uint8_t *k = ckey(b->buf + at, &kl);
		size_t d = bits ? word_at(k, kl, b->lcp) >> (64 - bits) : 0;
		memcpy(out + pos[d], b->buf + at, el);
		pos[d] += el;
		at += el;
	}
	/* pos[d] is now the end of bucket d; the buffer in record order is no longer needed */
	free(b->buf);
	b->buf = NULL;
	b->cap = 0;
	a = malloc(2 * most * sizeof(*a));
	if (!a)
		goto out_free;
	rc = 0;
	for (size_t d = 0, s = 0; d < nb && !rc; s = pos[d], d++)
		if (cnt[d])
			rc = apply_sorted(b, out + s, pos[d] - s, cnt[d], a);
out_free:
	free(a);
	free(out);
	free(cnt);
	b->used = 0;
	b->n = 0;
	return rc;
}
