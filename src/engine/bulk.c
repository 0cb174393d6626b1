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
 * Key sides wait, across files (each entry names its file), until the caller finishes:
 * before anything else changes the state (a scan) and at the end of replay. At most
 * BULK_MAX bytes wait; then they are applied and the buckets refilled, which keeps record
 * order per key across the batches. A hint not yet verified is staged in a second bulk
 * (its object sides listed, not applied) and committed or dropped on the verdict.
 *
 * Sorting: entries go, as added, into FANOUT buckets by the first composite key byte q at
 * which the keys added so far differ, each a list of chunks; a key that differs earlier
 * links every bucket, in order, into the bucket of the byte they all share there. At
 * finish each bucket in turn is radix sorted by (word, place) on the 8 bytes after q, runs
 * of equal words are finished by comparing whole keys, the bucket is applied and its
 * chunks freed. A bucket too big for the cache is first moved into sub-buckets by the
 * bytes after the prefix its keys share. Each sorted (sub-)bucket is copied, in key order,
 * into a run of its own, which is applied and freed (struct run). With many entries a
 * thread does the sorting, runs ahead of the caller, which applies (struct pipe).
 */
#include "db.h"
#include "grow.h"

#include <errno.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* At most this many bytes wait; then they are applied and the buckets refilled. */
#define BULK_MAX ((size_t)1 << 30)

/* Buckets by one byte of the key; a bucket's chunks grow from CHUNK_MIN to CHUNK_MAX bytes
 * (below malloc's mmap threshold: freed, they serve the chunks of the next bulk). */
#define FANOUT 256
#define CHUNK_MIN ((size_t)1 << 10)
#define CHUNK_MAX ((size_t)1 << 16)

/* Entries per bucket that sorting aims at: a bucket's entries fit in the cache. A bucket
 * with more than BIG is first split by more of its key (moved into sub-buckets). */
#define BUCKET 2048
#define BIG 16384

/* A finish that applied this many bytes returns the free heap they leave to the system. */
#define TRIM_MIN ((size_t)16 << 20)

struct bc_bulk_chunk {
	struct bc_bulk_chunk *next;
	size_t used, cap;
	uint8_t data[];
};

struct bc_bulk_bucket {
	struct bc_bulk_chunk *head, *tail;
	size_t n; /* entries */
	size_t bytes;
};

/* A sort item: a word of the key and the entry. */
struct item {
	uint64_t word;
	const uint8_t *p;
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

static void chunks_free(struct bc_bulk_chunk *c)
{
	while (c) {
		struct bc_bulk_chunk *next = c->next;
		free(c);
		c = next;
	}
}

/* Forget every entry (their chunks freed); the bucket array stays. */
static void reset(struct bc_bulk *b)
{
	if (b->bk)
		for (size_t d = 0; d < FANOUT; d++) {
			chunks_free(b->bk[d].head);
			memset(&b->bk[d], 0, sizeof(b->bk[d]));
		}
	b->used = b->n = 0;
	b->first = NULL;
}

void bc_bulk_release(struct bc_bulk *b)
{
	reset(b);
	free(b->bk);
	free(b->pend);
	b->bk = NULL;
	b->pend = NULL;
	b->npend = b->cpend = 0;
}

/* Byte c of composite key k[0..kl), zero past its end. */
static inline unsigned byte_at(const uint8_t *k, size_t kl, size_t c)
{
	return c < kl ? k[c] : 0;
}

/*
 * Every entry shares bytes [0, q) and sits in the bucket of its byte q. A new entry that
 * differs from them at l < q: they all share byte l too, so they go, in bucket order,
 * into the one bucket of that byte (each key's entries stay in record order).
 */
static void rebucket(struct bc_bulk *b, size_t l)
{
	struct bc_bulk_bucket all = {0};
	size_t fl;
	const uint8_t *f = ckey(b->first, &fl);

	for (size_t d = 0; d < FANOUT; d++) {
		struct bc_bulk_bucket *x = &b->bk[d];
		if (!x->head)
			continue;
		if (all.tail)
			all.tail->next = x->head;
		else
			all.head = x->head;
		all.tail = x->tail;
		all.n += x->n;
		all.bytes += x->bytes;
		memset(x, 0, sizeof(*x));
	}
	b->bk[byte_at(f, fl, l)] = all;
	b->q = l;
}

/* Room for len bytes at the end of bucket x: NULL on ENOMEM. */
static uint8_t *bucket_room(struct bc_bulk_bucket *x, size_t len)
{
	struct bc_bulk_chunk *t = x->tail;

	if (t && t->cap - t->used >= len)
		return t->data + t->used;
	size_t cap = t ? 2 * t->cap : CHUNK_MIN;
	if (cap > CHUNK_MAX)
		cap = CHUNK_MAX;
	if (cap < len)
		cap = len;
	struct bc_bulk_chunk *c = malloc(sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->next = NULL;
	c->used = 0;
	c->cap = cap;
	if (t)
		t->next = c;
	else
		x->head = c;
	x->tail = c;
	return c->data;
}

/* Keep the key side of e (PUT, DELETE or LINK to obj); *objp is where obj went. */
static int put_key(struct bc_bulk *b, uint32_t slot, const bc_effect *e, struct bc_object *obj,
		   uint8_t **objp)
{
	size_t len = E_KEY + 1u + e->klen + (e->type == BC_REC_LINK ? sizeof(obj) : 0);

	if (!b->bk) {
		b->bk = calloc(FANOUT, sizeof(*b->bk));
		if (!b->bk)
			return -ENOMEM;
	}
	/* every entry shares what it shares with the first */
	const uint8_t *k = e->key;
	size_t kl = 1u + e->klen, l = kl;
	unsigned d;
	if (!b->n) {
		b->q = kl;
		d = 0;
	} else {
		if (b->q) {
			/* the first differs from this key at l (composite), or they share [0, q) */
			size_t fl;
			const uint8_t *f = ckey(b->first, &fl);
			size_t m = (b->q < kl ? b->q : kl) - 1;
			l = f[0] != e->space ? 0 : 1 + lcp(f + 1, m, k, m);
			if (l < b->q)
				rebucket(b, l);
		}
		d = b->q ? (b->q < kl ? k[b->q - 1] : 0) : e->space;
	}
	struct bc_bulk_bucket *x = &b->bk[d];
	uint8_t *p = bucket_room(x, len);
	if (!p)
		return -ENOMEM;
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
	if (e->type == BC_REC_LINK) {
		*objp = p + E_KEY + 1 + e->klen;
		memcpy(*objp, &obj, sizeof(obj));
	}
	/* The bucket's next entry comes some FANOUT entries later: have its line by then. */
	__builtin_prefetch(p + len + 64, 1);
	if (!b->n)
		b->first = p;
	x->tail->used += len;
	x->n++;
	x->bytes += len;
	b->used += len;
	b->n++;
	return 0;
}

static bool has_key_side(const bc_effect *e)
{
	return e->type == BC_REC_PUT || e->type == BC_REC_DELETE || e->type == BC_REC_LINK;
}

int bc_bulk_add(struct bc_bulk *b, uint32_t slot, const bc_effect *e)
{
	struct bc_object *obj;
	uint8_t *objp;
	int rc = bc_apply_object(b->db, slot, e, &obj);

	if (rc || !has_key_side(e))
		return rc;
	if (b->used + E_KEY + 1u + e->klen + sizeof(obj) > BULK_MAX) {
		rc = bc_bulk_finish(b);
		if (rc)
			return rc;
	}
	return put_key(b, slot, e, obj, &objp);
}

/*
 * Staged, an entry with an object side (LINK, CHUNK, TRUNC) is also copied to pend, with
 * where its LINK object pointer goes, to be applied at commit.
 */
struct bc_bulk_pend {
	bc_effect e; /* without its key */
	uint32_t slot;
	uint8_t *objp; /* LINK: the object pointer in the staged key side */
};

int bc_bulk_stage(struct bc_bulk *st, uint32_t slot, const bc_effect *e)
{
	uint8_t *objp = NULL;
	int rc;

	if (has_key_side(e)) {
		rc = put_key(st, slot, e, NULL, &objp);
		if (rc)
			return rc;
	}
	if (e->type == BC_REC_PUT || e->type == BC_REC_DELETE)
		return 0;
	struct bc_bulk_pend *v = bc_grow(st->pend, &st->cpend, st->npend + 1, sizeof(*v), 64);
	if (!v)
		return -ENOMEM;
	st->pend = v;
	v += st->npend++;
	v->e = *e;
	v->e.key = NULL;
	v->slot = slot;
	v->objp = objp;
	return 0;
}

/* Move every entry of st to the end of b (st's come after b's in record order). */
static void merge(struct bc_bulk *b, struct bc_bulk *st)
{
	if (!st->n)
		return;
	if (!b->n) {
		struct bc_bulk_bucket *bk = b->bk;
		b->bk = st->bk;
		b->q = st->q;
		b->first = st->first;
		b->used = st->used;
		b->n = st->n;
		st->bk = bk;
		st->first = NULL;
		st->used = st->n = 0;
		return;
	}
	/* both bulks' entries share what their first ones share, up to either's q */
	size_t fl, sl;
	const uint8_t *f = ckey(b->first, &fl), *s = ckey(st->first, &sl);
	size_t m = b->q < st->q ? b->q : st->q;
	m = m < fl ? m : fl;
	m = m < sl ? m : sl;
	size_t l = lcp(f, m, s, m);
	if (l < b->q)
		rebucket(b, l);
	if (l < st->q)
		rebucket(st, l);
	for (size_t d = 0; d < FANOUT; d++) {
		struct bc_bulk_bucket *x = &b->bk[d], *y = &st->bk[d];
		if (!y->head)
			continue;
		if (x->tail)
			x->tail->next = y->head;
		else
			x->head = y->head;
		x->tail = y->tail;
		x->n += y->n;
		x->bytes += y->bytes;
		memset(y, 0, sizeof(*y));
	}
	b->used += st->used;
	b->n += st->n;
	st->first = NULL;
	st->used = st->n = 0;
}

int bc_bulk_commit(struct bc_bulk *b, struct bc_bulk *st)
{
	int rc = 0;

	for (size_t i = 0; i < st->npend && !rc; i++) {
		struct bc_bulk_pend *v = &st->pend[i];
		struct bc_object *obj;
		rc = bc_apply_object(b->db, v->slot, &v->e, &obj);
		if (!rc && v->objp)
			memcpy(v->objp, &obj, sizeof(obj));
	}
	st->npend = 0;
	if (!rc && b->n && b->used + st->used > BULK_MAX)
		rc = bc_bulk_finish(b);
	if (rc) {
		bc_bulk_drop(st);
		return rc;
	}
	merge(b, st);
	return 0;
}

void bc_bulk_drop(struct bc_bulk *st)
{
	reset(st);
	st->npend = 0;
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
	size_t cnt[256] = {0}, pos[256];
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

static int item_cmp(const struct item *x, const struct item *y)
{
	size_t xl, yl;
	const uint8_t *xk = ckey(x->p, &xl), *yk = ckey(y->p, &yl);

	return kcmp(xk, xl, yk, yl);
}

/* Stable sort of a[0..n) by whole key; t is scratch of n. */
static void sort_keys(struct item *a, struct item *t, size_t n)
{
	if (n <= 16) {
		for (size_t i = 1; i < n; i++) {
			struct item x = a[i];
			size_t j = i;
			for (; j && item_cmp(&a[j - 1], &x) > 0; j--)
				a[j] = a[j - 1];
			a[j] = x;
		}
		return;
	}
	size_t h = n / 2, i = 0, j = h, o = 0;
	sort_keys(a, t, h);
	sort_keys(a + h, t + h, n - h);
	while (i < h && j < n)
		t[o++] = item_cmp(&a[j], &a[i]) < 0 ? a[j++] : a[i++];
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

/* Apply the group a[0..n) of one key's entries, in record order. */
static int apply_group(struct bc_bulk *b, const struct item *a, size_t n)
{
	struct bc_object *obj;
	uint32_t slot;
	bc_effect e;
	int rc;

	entry_get(a[n - 1].p, &e, &slot, &obj);
	if (e.type != BC_REC_DELETE) {
		rc = bc_apply_append(b->db, slot, &e, obj);
		if (rc != -ERANGE)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		entry_get(a[i].p, &e, &slot, &obj);
		rc = bc_apply_key(b->db, slot, &e, obj, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * A run: the entries of one bucket or sub-bucket, sorted by key, copied in that order into
 * data of their own and ready to apply. Applying reads them in address order, which the
 * processor fetches ahead, instead of all over the chunks they came from.
 */
struct run {
	struct item *a; /* n items (pointing into data), then n of sort scratch, then data */
	size_t n;
	uint8_t *data;
	bool own; /* a is malloc'ed, not in the ring */
	size_t end; /* where the ring is free up to once this run is applied */
};

/*
 * Runs go from the sorting loop (produce) to the keydir: applied at once, or, when there
 * are enough entries and a thread to spare, through a queue to the caller's thread while
 * the sorter thread sorts the next ones. The sorter reads only the entries; only the
 * caller's thread touches the keydir. Queued runs live in a ring of RING bytes, taken and
 * given back in order, which the caller maps and unmaps (memory a thread malloc()s stays
 * in that thread's arena after it is freed). A run bigger than half the ring (long keys)
 * is malloc()ed instead, when the queue is empty. The ring holds about 200,000 entries of
 * 16-byte keys: enough for the caller to go on applying while the sorter splits the next
 * big bucket, which takes it tens of milliseconds per million entries.
 */
#define RUNS 256
#define RING ((size_t)16 << 20)
#define THREADED_MIN 32768 /* entries */

struct pipe {
	struct bc_bulk *b;
	bool threaded;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct run runs[RUNS];
	size_t made, applied; /* runs[made % RUNS] is the next to fill */
	uint8_t *ring;
	size_t head, tail; /* bytes ever taken from the ring, and given back */
	bool done; /* the sorter has given its last run */
	bool stop; /* applying failed: sort no more */
	int rc; /* the sorter's error */
};

/* Bytes a run of n entries of bytes in all takes (items, scratch, entries), aligned. */
static size_t run_size(size_t n, size_t bytes)
{
	return (2 * n * sizeof(struct item) + bytes + 63) & ~(size_t)63;
}

/* Where in the ring a run of size bytes would start (skipping the end, where it does not
 * fit), or SIZE_MAX when the ring has no room for it now. */
static size_t ring_place(const struct pipe *pp, size_t size)
{
	size_t at = pp->head % RING, skip = at + size > RING ? RING - at : 0;

	return pp->head - pp->tail + skip + size <= RING ? pp->head + skip : SIZE_MAX;
}

/* Whether a run of size bytes can be taken now (mu held). */
static bool room_for(const struct pipe *pp, size_t size)
{
	if (pp->made - pp->applied == RUNS)
		return false;
	if (size > RING / 2)
		return pp->made == pp->applied;
	return ring_place(pp, size) != SIZE_MAX;
}

/*
 * The slot to fill with the next run, of n entries of bytes in all, with its memory;
 * NULL with *rc 0 when applying has failed, or with -ENOMEM.
 */
static struct run *run_take(struct pipe *pp, size_t n, size_t bytes, int *rc)
{
	size_t size = run_size(n, bytes);
	struct run *r;

	*rc = 0;
	if (!pp->threaded) {
		r = &pp->runs[0];
		r->a = NULL;
	} else {
		pthread_mutex_lock(&pp->mu);
		while (!pp->stop && !room_for(pp, size))
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->stop) {
			pthread_mutex_unlock(&pp->mu);
			return NULL;
		}
		r = &pp->runs[pp->made % RUNS];
		r->a = NULL;
		if (size <= RING / 2) {
			size_t at = ring_place(pp, size);
			r->a = (struct item *)(void *)(pp->ring + at % RING);
			pp->head = at + size;
		}
		r->end = pp->head;
		pthread_mutex_unlock(&pp->mu);
	}
	r->own = !r->a;
	if (r->own && !(r->a = malloc(size))) {
		*rc = -ENOMEM;
		return NULL;
	}
	r->n = n;
	r->data = (uint8_t *)(r->a + 2 * n);
	return r;
}

static void run_free(struct run *r)
{
	if (r->own)
		free(r->a);
	r->a = NULL;
}

/* Copy r's entries, in sorted order, into its data (its items then point there). */
static void run_pack(struct run *r)
{
	uint8_t *o = r->data;

	for (size_t i = 0; i < r->n; i++) {
		size_t el = entry_len(r->a[i].p);
		memcpy(o, r->a[i].p, el);
		r->a[i].p = o;
		o += el;
	}
}

/*
 * Sort a[0..n) (entries in record order whose keys all share composite bytes [0, c); a[i].p
 * set) by key, stably. a has room for 2n.
 */
static void sort_run(struct item *a, size_t n, size_t c)
{
	struct item *t = a + n;

	for (size_t i = 0; i < n; i++) {
		size_t kl;
		const uint8_t *k = ckey(a[i].p, &kl);
		a[i].word = word_at(k, kl, c);
	}
	sort_words(a, t, n, 56);
	/* Equal words: the keys may still differ past the word (or in length). */
	for (size_t i = 0, j; i < n; i = j) {
		bool differ = false;
		for (j = i + 1; j < n && a[j].word == a[i].word; j++)
			differ = differ || item_cmp(&a[j - 1], &a[j]);
		if (differ)
			sort_keys(a + i, t + i, j - i);
	}
}

/* Apply a sorted run, key by key, and free what it held. */
static int run_apply(struct bc_bulk *b, struct run *r)
{
	const struct item *a = r->a;
	size_t n = r->n;
	int rc = 0;

	for (size_t i = 0, j; i < n && !rc; i = j) {
		for (j = i + 1; j < n && a[j].word == a[i].word && !item_cmp(&a[i], &a[j]); j++)
			;
		rc = apply_group(b, a + i, j - i);
	}
	run_free(r);
	return rc;
}

/* Hand over the run filled in the slot run_take gave. */
static int run_give(struct pipe *pp, struct run *r)
{
	if (!pp->threaded)
		return run_apply(pp->b, r);
	pthread_mutex_lock(&pp->mu);
	pp->made++;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	return 0;
}

#define EACH_ENTRY(x, c, p)                                       \
	for (struct bc_bulk_chunk *c = (x)->head; c; c = c->next) \
		for (const uint8_t *p = c->data; p < c->data + c->used; p += entry_len(p))

/*
 * A bucket too big for the cache: move its entries, in order, into sub-buckets by the top
 * bits of the word after the prefix they all share (about BUCKET entries each), freeing
 * its chunks, and make a run of each sub-bucket.
 */
static int produce_big(struct pipe *pp, struct bc_bulk_bucket *x, size_t c)
{
	size_t n = x->n, fl;
	const uint8_t *f = ckey(x->head->data, &fl);
	unsigned bits = 0;
	int rc = -ENOMEM;

	EACH_ENTRY(x, ch, p)
	{
		size_t kl;
		const uint8_t *k = ckey(p, &kl);
		size_t m = fl < kl ? fl : kl;
		if (m > c)
			fl = c + lcp(f + c, m - c, k + c, m - c);
		else
			fl = m;
	}
	c = fl;
	while (bits < 16 && n >> bits > BUCKET)
		bits++;
	size_t nb = (size_t)1 << bits;
	size_t *cnt = calloc(2 * nb, sizeof(*cnt)), *pos = cnt + nb;
	uint8_t *out = malloc(x->bytes);
	if (!cnt || !out)
		goto out_free;
	EACH_ENTRY(x, ch, p)
	{
		size_t kl;
		const uint8_t *k = ckey(p, &kl);
		size_t d = word_at(k, kl, c) >> (64 - bits);
		cnt[d]++;
		pos[d] += entry_len(p);
	}
	for (size_t d = 0, s = 0; d < nb; d++) {
		size_t bytes = pos[d];
		pos[d] = s;
		s += bytes;
	}
	EACH_ENTRY(x, ch, p)
	{
		size_t kl, el = entry_len(p);
		const uint8_t *k = ckey(p, &kl);
		size_t d = word_at(k, kl, c) >> (64 - bits);
		memcpy(out + pos[d], p, el);
		pos[d] += el;
	}
	/* pos[d] is now the end of sub-bucket d; the chunks are no longer needed */
	chunks_free(x->head);
	memset(x, 0, sizeof(*x));
	rc = 0;
	for (size_t d = 0, s = 0; d < nb && !rc; s = pos[d], d++) {
		if (!cnt[d])
			continue;
		struct run *r = run_take(pp, cnt[d], pos[d] - s, &rc);
		if (!r)
			break;
		size_t i = 0;
		for (const uint8_t *p = out + s; p < out + pos[d]; p += entry_len(p))
			r->a[i++].p = p;
		sort_run(r->a, i, c);
		run_pack(r);
		rc = run_give(pp, r);
	}
out_free:
	free(cnt);
	free(out);
	return rc;
}

/* Make the runs, bucket by bucket, in key order. */
static int produce(struct pipe *pp)
{
	struct bc_bulk *b = pp->b;
	int rc = 0;

	for (size_t d = 0; d < FANOUT && !rc; d++) {
		struct bc_bulk_bucket *x = &b->bk[d];
		if (!x->n)
			continue;
		/* every entry of the bucket shares bytes [0, q] */
		size_t c = b->q + 1;
		if (x->n > BIG) {
			rc = produce_big(pp, x, c);
			continue;
		}
		struct run *r = run_take(pp, x->n, x->bytes, &rc);
		if (!r)
			break;
		size_t i = 0;
		EACH_ENTRY(x, ch, p)
		{
			/* the chunks were written long ago: fetch ahead of the walk */
			__builtin_prefetch(p + 512);
			r->a[i++].p = p;
		}
		sort_run(r->a, i, c);
		run_pack(r);
		chunks_free(x->head);
		memset(x, 0, sizeof(*x));
		rc = run_give(pp, r);
	}
	return rc;
}

static void *sorter_main(void *arg)
{
	struct pipe *pp = arg;

	pthread_setname_np(pthread_self(), "bc-sort");
	int rc = produce(pp);
	pthread_mutex_lock(&pp->mu);
	pp->rc = rc;
	pp->done = true;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

/* The caller's side of a threaded pipe: apply runs as they come, until the last. */
static int consume(struct pipe *pp)
{
	int rc = 0;

	pthread_mutex_lock(&pp->mu);
	for (;;) {
		while (pp->applied == pp->made && !pp->done)
			pthread_cond_wait(&pp->cv, &pp->mu);
		if (pp->applied == pp->made)
			break;
		struct run *r = &pp->runs[pp->applied % RUNS];
		size_t end = r->end;
		pthread_mutex_unlock(&pp->mu);
		rc = run_apply(pp->b, r);
		pthread_mutex_lock(&pp->mu);
		if (rc) {
			pp->stop = true;
			pthread_cond_broadcast(&pp->cv);
			break;
		}
		pp->tail = end;
		pp->applied++;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	return rc;
}

/*
 * Sort and apply bucket by bucket, each in the cache, freeing each bucket's chunks after.
 * With many entries a thread sorts the next buckets while this one applies.
 */
int bc_bulk_finish(struct bc_bulk *b)
{
	size_t used = b->used;
	struct pipe pp = {.b = b};
	int rc;

	if (!b->n)
		return 0;
	if (b->n >= THREADED_MIN) {
		pp.ring = mmap(NULL, RING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			       0);
		if (pp.ring == MAP_FAILED)
			pp.ring = NULL;
	}
	if (pp.ring) {
		pthread_mutex_init(&pp.mu, NULL);
		pthread_cond_init(&pp.cv, NULL);
		/* set before the sorter starts, which reads it */
		pp.threaded = true;
		if (pthread_create(&pp.thread, NULL, sorter_main, &pp)) {
			pp.threaded = false;
			pthread_mutex_destroy(&pp.mu);
			pthread_cond_destroy(&pp.cv);
		}
	}
	if (pp.threaded) {
		rc = consume(&pp);
		pthread_join(pp.thread, NULL);
		if (!rc)
			rc = pp.rc;
		/* runs sorted but not applied (applying failed; the one that failed is freed) */
		for (size_t i = pp.applied + (rc != 0); i < pp.made; i++)
			run_free(&pp.runs[i % RUNS]);
		pthread_mutex_destroy(&pp.mu);
		pthread_cond_destroy(&pp.cv);
	} else {
		rc = produce(&pp);
	}
	if (pp.ring)
		munmap(pp.ring, RING);
	reset(b);
#ifdef __GLIBC__
	/* Give the pages of the freed chunks back (it walks the whole heap, so only when
	 * there were many). */
	if (used >= TRIM_MIN)
		malloc_trim(0);
#else
	(void)used;
#endif
	return rc;
}
