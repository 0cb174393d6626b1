// SPDX-License-Identifier: MIT
/*
 * The keydir: a B+tree of fixed 4 KiB nodes over composite keys (space byte, key bytes),
 * compared as memcmp does, a proper prefix first. The contract is in keydir.h.
 *
 * Nodes are slotted pages: a 16-byte header, an array of 6-byte slots in key order
 * growing up, and packed cells growing down from the end, so an entry costs its cell plus
 * six bytes and no malloc of its own. A slot is the cell's offset (u16) and its head: the
 * four key bytes after the plen bytes that every key able to reach the node shares (the
 * common prefix of the node's fence keys), so a binary search decides its steps on the
 * slot array alone and reads about one cell, also for keys that differ only in a few
 * trailing digits. A leaf cell is
 *
 *   varint klen | key bytes (or an 8-byte pointer to a shared out-of-line key) |
 *   ctrl | varint file | u32 offset | varint size | [varint mlen] | [u32 expire] |
 *   [u8 flags] | [object pointer]
 *
 * where ctrl says which optional fields are present, so a 16-byte key with no metadata
 * or expiry costs 31-32 bytes with its slot. An internal cell is the key part and a child
 * pointer; the leftmost child lives in the header. Separators are the shortest prefix of
 * the right key that still separates; a key longer than INLINE_MAX is stored once, out of
 * line, reference counted, and separators derived from it share it.
 *
 * Fill: a node that overflows is rebuilt together with up to two siblings, evenly, into
 * as many nodes as needed (B*-style: 3 -> 3 when that leaves some slack, else 3 -> 4), so
 * random insertion keeps nodes about 85% full; an insert at the end (start) of the leaf
 * that took the previous insert at its end (start) splits off just the new key, so
 * sequential loads fill nodes completely. A node that falls under 7/16 full after a
 * delete is rebuilt with its siblings into fewer nodes when they fit 15/16 full (else
 * evened out, which leaves each over 7/16), so memory shrinks with deletes. One routine
 * does every rebuild: gather the cells of the group (and the separators between them)
 * into a scratch area, cut it into m runs, write the runs back into the group's nodes (the
 * first stays in place, so the leaf chain only needs its tail fixed), and edit the
 * parent, which may cascade.
 *
 * A load in key order (bulk.c) appends instead: the new key goes at the end of the
 * rightmost leaf with no search, nodes are closed at 15/16 full and get the plen and heads
 * a rebuild would give them, and only the right edge of the tree is ever edited. Puts,
 * removes and cas start from the leaf the previous one used when the key lies within its
 * fences (struct finger), so keys in order descend about once per leaf.
 *
 * Memory: a put first reserves the spare nodes the worst cascade could need (and
 * allocates a long key), so after that nothing can fail and the tree is never left half
 * split. A delete never allocates: it only merges when the parent's new separators fit.
 * Nodes come from 2 MiB slabs on transparent huge pages (slab.c), so a descent through a
 * large keydir costs no TLB miss per node; the teardown unmaps the slabs whole. Measured
 * figures are in tests/bench/keydir_bench.c.
 */
#include "keydir.h"
#include "slab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bitcask/bitcask.h>

#ifndef BC_KD_NODE_SIZE
#define BC_KD_NODE_SIZE 4096
#endif

struct node {
	uint16_t n; /* cells */
	uint16_t top; /* lowest cell byte; [top, NODE_SIZE) holds cells and holes */
	uint16_t used; /* bytes of live cells */
	uint8_t level; /* 0 for leaves */
	uint8_t plen; /* leading key bytes shared by every key that can reach the node */
	struct node *link; /* leaf: next leaf in key order; internal: leftmost child */
	uint8_t slots[]; /* n slots of SLOT bytes in key order: u16 cell offset, u32 head */
};

/* A key too long to keep in a cell; shared by the entry and the separators made from it. */
struct xkey {
	uint32_t refs;
	uint32_t len;
	uint8_t b[]; /* space byte, key bytes */
};

#define NODE_SIZE ((size_t)BC_KD_NODE_SIZE)
#define HDR offsetof(struct node, slots)
#define CAP (NODE_SIZE - HDR)
#define SLOT 6u
/* Key bytes a slot keeps after the node's shared prefix (its head). */
#define HEAD_BYTES 4u
/* The largest cell plus its slot: eight fit in a node, so every rebuild can be cut. */
#define MAX_ITEM (CAP / 8)
/* Value part: ctrl, file 5, offset 4, size 5, mlen 3, expire 4, flags 1, object 8. */
#define VAL_MAX 31
#define INLINE_MAX (MAX_ITEM - SLOT - 3 - VAL_MAX)
/* Smallest item in a node: leaf cell 9 (klen, space, ctrl, file, offset 4, size) + slot. */
#define MIN_ITEM (9 + SLOT)
#define NODE_ITEMS (CAP / MIN_ITEM + 2)
#define AREA_ITEMS (4 * NODE_ITEMS + 32)
#define AREA_BYTES (5 * NODE_SIZE)
#define MAX_HEIGHT 40
#define UNDERFLOW (CAP * 7 / 16)
#define COMPOSITE_MAX (BC_MAX_KEY + 1)
/* The header and slot array of a leaf of 16-byte keys: about 120 slots. */
#define PREFETCH_BYTES 768

_Static_assert(NODE_SIZE >= 1024 && NODE_SIZE <= 32768, "node offsets are u16");
_Static_assert(INLINE_MAX >= 64, "nodes too small for inline keys");

/* ctrl bits of a leaf cell's value */
#define V_OBJ 0x01u /* BC_KV_OBJECT; the object pointer ends the cell */
#define V_EXP 0x02u /* u32 expire_s present */
#define V_META 0x04u /* varint mlen present */
#define V_XFL 0x08u /* a flags byte with bits besides BC_KV_OBJECT present */

/* Rebuild input: a cell (leaf) or key part + child (internal) and its prefix size. */
struct item {
	const uint8_t *p;
	uint32_t len;
	uint32_t pre; /* bytes (cells + slots) of the items before this one */
};

/* Scratch for one level of a rebuild; two alternate going up the tree. */
struct area {
	uint8_t *buf;
	size_t used;
	struct item *ov; /* the new contents of the node that overflowed, in order */
	size_t nov;
	struct item *grp; /* the group being rebuilt, in order */
	size_t ngrp;
};

struct path {
	struct node *node[MAX_HEIGHT];
	unsigned idx[MAX_HEIGHT]; /* child taken at internal levels */
};

/*
 * The leaf the last put, cas or remove used, the way down to it and its fences: the
 * separators around it ([lo, hi), NULL when unbounded), which are exactly the keys that
 * descend reaches it with. Valid until the tree's shape changes (grow, shrink), since only
 * those edit internal nodes; a leaf's own cells may change meanwhile.
 */
struct finger {
	struct path pa;
	const uint8_t *lo, *hi;
	size_t lol, hil;
	bool valid;
};

struct group {
	struct node *p; /* parent, NULL when the group is the root alone */
	unsigned g0, k; /* children g0 .. g0+k-1 of p */
	struct node *orig[3];
};

struct bc_keydir {
	struct node *root;
	unsigned height;
	size_t count;
	size_t nodes; /* allocated nodes, spares included */
	size_t xbytes;
	struct node *pool; /* spare nodes, chained by link */
	size_t npool;
	struct node *hint; /* leaf of the last insert, for sequential splits */
	int hint_dir; /* +1: it went to the end, -1: to the start */
	struct finger fg;
	bool areas;
	unsigned fail_in; /* tests: the fail_in-th allocation from now fails */
	struct area area[2];
	struct bc_slabs mem; /* where the nodes come from */
};

struct skey {
	unsigned space;
	const uint8_t *k;
	size_t len;
};

enum { SEQ_NONE, SEQ_APPEND, SEQ_PREPEND };

/* ---- encoding ---- */

/* The n (1 to 8) bytes at p as a big-endian number. */
static inline uint64_t load_be(const uint8_t *p, unsigned n)
{
	uint64_t x = 0;

	memcpy(&x, p, n);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x >> (64 - 8 * n);
}

static inline size_t uv_put(uint8_t *p, uint32_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static inline size_t uv_get(const uint8_t *p, uint32_t *v)
{
	uint32_t r = 0;
	size_t n = 0;
	unsigned sh = 0;

	if (p[0] < 0x80) {
		*v = p[0];
		return 1;
	}
	do {
		r |= (uint32_t)(p[n] & 0x7f) << sh;
		sh += 7;
	} while (p[n++] & 0x80);
	*v = r;
	return n;
}

static inline size_t uv_skip(const uint8_t *p)
{
	size_t n = 0;

	while (p[n++] & 0x80)
		;
	return n;
}

static inline size_t uv_len(uint32_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Parse a key part: returns its length and the composite key in *k, *kl. */
static inline size_t kpart(const uint8_t *c, const uint8_t **k, size_t *kl)
{
	uint32_t len;
	size_t n = uv_get(c, &len);

	*kl = len;
	if (len <= INLINE_MAX) {
		*k = c + n;
		return n + len;
	}
	const struct xkey *x;
	memcpy(&x, c + n, sizeof(x));
	*k = x->b;
	return n + sizeof(x);
}

static inline size_t kpart_len(const uint8_t *c)
{
	uint32_t len;
	size_t n = uv_get(c, &len);

	return n + (len <= INLINE_MAX ? len : sizeof(struct xkey *));
}

/* The out-of-line key a key part points to, or NULL. */
static inline struct xkey *kpart_x(const uint8_t *c)
{
	uint32_t len;
	size_t n = uv_get(c, &len);
	struct xkey *x = NULL;

	if (len > INLINE_MAX)
		memcpy(&x, c + n, sizeof(x));
	return x;
}

static size_t val_put(uint8_t *p, const struct bc_kval *v)
{
	uint8_t *q = p + 1;
	uint8_t c = 0;

	if (v->flags & BC_KV_OBJECT)
		c |= V_OBJ;
	if (v->expire_s)
		c |= V_EXP;
	if (v->mlen)
		c |= V_META;
	if (v->flags & ~BC_KV_OBJECT)
		c |= V_XFL;
	p[0] = c;
	q += uv_put(q, v->loc.file);
	memcpy(q, &v->loc.offset, 4);
	q += 4;
	q += uv_put(q, v->loc.size);
	if (c & V_META)
		q += uv_put(q, v->mlen);
	if (c & V_EXP) {
		memcpy(q, &v->expire_s, 4);
		q += 4;
	}
	if (c & V_XFL)
		*q++ = v->flags;
	if (c & V_OBJ) {
		memcpy(q, &v->obj, sizeof(v->obj));
		q += sizeof(v->obj);
	}
	return (size_t)(q - p);
}

static size_t val_len(const uint8_t *p)
{
	uint8_t c = p[0];
	size_t n = 1;

	n += uv_skip(p + n);
	n += 4;
	n += uv_skip(p + n);
	if (c & V_META)
		n += uv_skip(p + n);
	if (c & V_EXP)
		n += 4;
	if (c & V_XFL)
		n++;
	if (c & V_OBJ)
		n += sizeof(struct bc_object *);
	return n;
}

static void val_get(const uint8_t *p, struct bc_kval *v)
{
	uint8_t c = *p++;
	uint32_t t;

	p += uv_get(p, &v->loc.file);
	memcpy(&v->loc.offset, p, 4);
	p += 4;
	p += uv_get(p, &v->loc.size);
	v->mlen = 0;
	if (c & V_META) {
		p += uv_get(p, &t);
		v->mlen = (uint16_t)t;
	}
	v->expire_s = 0;
	if (c & V_EXP) {
		memcpy(&v->expire_s, p, 4);
		p += 4;
	}
	v->flags = (c & V_OBJ) ? BC_KV_OBJECT : 0;
	if (c & V_XFL)
		v->flags = *p++;
	v->obj = NULL;
	if (c & V_OBJ)
		memcpy(&v->obj, p, sizeof(v->obj));
}

/* ---- nodes ---- */

static inline uint16_t slot_off(const struct node *nd, unsigned i)
{
	uint16_t o;

	memcpy(&o, nd->slots + SLOT * i, sizeof(o));
	return o;
}

static inline uint32_t slot_head(const struct node *nd, unsigned i)
{
	uint32_t h;

	memcpy(&h, nd->slots + SLOT * i + sizeof(uint16_t), sizeof(h));
	return h;
}

static inline void slot_set(struct node *nd, unsigned i, size_t off, uint32_t head)
{
	uint16_t o = (uint16_t)off;

	memcpy(nd->slots + SLOT * i, &o, sizeof(o));
	memcpy(nd->slots + SLOT * i + sizeof(o), &head, sizeof(head));
}

static inline uint8_t *cell_at(const struct node *nd, unsigned i)
{
	return (uint8_t *)nd + slot_off(nd, i);
}

/*
 * A slot's head: the HEAD_BYTES key bytes after the node's plen shared bytes (zero past
 * the key's end), as a big-endian number. For keys that share those plen bytes, a smaller
 * head means a smaller key, so a search decides its steps from the slot array and reads
 * the one cell whose head equals the key's, or a few where keys share more bytes.
 */
static inline uint32_t head_of(const uint8_t *k, size_t kl, unsigned plen)
{
	uint32_t h = 0;

	if (kl >= plen + HEAD_BYTES)
		return (uint32_t)load_be(k + plen, HEAD_BYTES);
	for (unsigned j = 0; j < HEAD_BYTES; j++)
		h = h << 8 | (plen + j < kl ? k[plen + j] : 0);
	return h;
}

static inline uint32_t cell_head(const uint8_t *c, unsigned plen)
{
	const uint8_t *k;
	size_t kl;

	kpart(c, &k, &kl);
	return head_of(k, kl, plen);
}

static inline size_t cell_len(unsigned level, const uint8_t *c)
{
	size_t n = kpart_len(c);

	return n + (level ? sizeof(struct node *) : val_len(c + n));
}

static inline size_t node_bytes(const struct node *nd)
{
	return SLOT * nd->n + nd->used;
}

static inline struct node *child_at(const struct node *nd, unsigned c)
{
	struct node *ch;

	if (!c)
		return nd->link;
	const uint8_t *p = cell_at(nd, c - 1);
	memcpy(&ch, p + kpart_len(p), sizeof(ch));
	return ch;
}

static void node_init(struct node *nd, unsigned level)
{
	nd->n = 0;
	nd->top = (uint16_t)NODE_SIZE;
	nd->used = 0;
	nd->level = (uint8_t)level;
	nd->plen = 0;
	nd->link = NULL;
}

/* Squeeze out the holes left by deleted and shrunk cells. */
static void node_compact(struct node *nd)
{
	_Alignas(struct node) uint8_t tmp[NODE_SIZE];
	const struct node *t = (const struct node *)tmp;
	size_t top = NODE_SIZE;

	memcpy(tmp, nd, NODE_SIZE);
	for (unsigned i = 0; i < t->n; i++) {
		const uint8_t *c = cell_at(t, i);
		size_t len = cell_len(t->level, c);
		top -= len;
		memcpy((uint8_t *)nd + top, c, len);
		slot_set(nd, i, top, slot_head(t, i));
	}
	nd->top = (uint16_t)top;
}

/* Insert a cell at pos; the caller made sure it fits (len + SLOT <= CAP - node_bytes). */
static void node_insert(struct node *nd, unsigned pos, const uint8_t *cell, size_t len)
{
	if ((size_t)nd->top - HDR - SLOT * nd->n < len + SLOT)
		node_compact(nd);
	nd->top = (uint16_t)(nd->top - len);
	memcpy((uint8_t *)nd + nd->top, cell, len);
	memmove(nd->slots + SLOT * (pos + 1), nd->slots + SLOT * pos, (nd->n - pos) * SLOT);
	slot_set(nd, pos, nd->top, cell_head(cell, nd->plen));
	nd->n++;
	nd->used = (uint16_t)(nd->used + len);
}

static void node_delete(struct node *nd, unsigned pos)
{
	size_t len = cell_len(nd->level, cell_at(nd, pos));

	if (slot_off(nd, pos) == nd->top)
		nd->top = (uint16_t)(nd->top + len);
	nd->used = (uint16_t)(nd->used - len);
	nd->n--;
	memmove(nd->slots + SLOT * pos, nd->slots + SLOT * (pos + 1), (nd->n - pos) * SLOT);
	if (!nd->n)
		nd->top = (uint16_t)NODE_SIZE;
}

static inline struct node *item_child(const struct item *it)
{
	struct node *ch;

	memcpy(&ch, it->p + it->len - sizeof(ch), sizeof(ch));
	return ch;
}

/* Write items into nd; an internal node takes the first item's child as its link. */
static void node_build(struct node *nd, unsigned level, unsigned plen, const struct item *it,
		       size_t n)
{
	size_t top = NODE_SIZE;
	size_t i = 0;

	node_init(nd, level);
	nd->plen = (uint8_t)plen;
	if (level)
		nd->link = item_child(&it[i++]);
	for (; i < n; i++) {
		top -= it[i].len;
		memcpy((uint8_t *)nd + top, it[i].p, it[i].len);
		slot_set(nd, nd->n++, top, cell_head(it[i].p, plen));
		nd->used = (uint16_t)(nd->used + it[i].len);
	}
	nd->top = (uint16_t)top;
}

/* ---- allocation ---- */

/* Every allocation asks this first, so tests can fail one on purpose: whether it is the one
 * bc_keydir_fail_alloc asked to fail. */
static bool alloc_fails(struct bc_keydir *kd)
{
	return kd->fail_in && !--kd->fail_in;
}

static void *kd_malloc(struct bc_keydir *kd, size_t len)
{
	return alloc_fails(kd) ? NULL : malloc(len);
}

static struct node *node_alloc(struct bc_keydir *kd)
{
	struct node *nd = alloc_fails(kd) ? NULL : bc_slab_alloc(&kd->mem);

	if (nd)
		kd->nodes++;
	return nd;
}

static struct node *pool_take(struct bc_keydir *kd)
{
	struct node *nd = kd->pool;

	if (!nd) {
		/* put reserved enough; running dry is a bug, not a memory shortage */
		fprintf(stderr, "bc_keydir: spare node pool empty\n");
		abort();
	}
	kd->pool = nd->link;
	kd->npool--;
	return nd;
}

/* Make r (built over the old root and its new sibling) the root, one level higher. */
static void raise_root(struct bc_keydir *kd, struct node *r)
{
	kd->root = r;
	kd->height++;
	if (kd->height > MAX_HEIGHT) {
		fprintf(stderr, "bc_keydir: tree too tall\n");
		abort();
	}
}

static void node_free(struct bc_keydir *kd, struct node *nd)
{
	if (kd->hint == nd)
		kd->hint = NULL;
	if (kd->npool < 2u * kd->height + 8) {
		nd->link = kd->pool;
		kd->pool = nd;
		kd->npool++;
		return;
	}
	bc_slab_free(&kd->mem, nd);
	kd->nodes--;
}

static void xkey_put(struct bc_keydir *kd, struct xkey *x)
{
	if (x && !--x->refs) {
		kd->xbytes -= sizeof(*x) + x->len;
		free(x);
	}
}

static int areas_alloc(struct bc_keydir *kd)
{
	if (kd->areas)
		return 0;
	for (int i = 0; i < 2; i++) {
		struct area *a = &kd->area[i];
		a->buf = kd_malloc(kd, AREA_BYTES);
		a->ov = kd_malloc(kd, AREA_ITEMS * sizeof(*a->ov));
		a->grp = kd_malloc(kd, AREA_ITEMS * sizeof(*a->grp));
		if (!a->buf || !a->ov || !a->grp)
			goto out_nomem;
	}
	kd->areas = true;
	return 0;

out_nomem:
	for (int i = 0; i < 2; i++) {
		free(kd->area[i].buf);
		free(kd->area[i].ov);
		free(kd->area[i].grp);
		memset(&kd->area[i], 0, sizeof(kd->area[i]));
	}
	return -ENOMEM;
}

/* Make sure the worst cascade of one insert finds its nodes: two per level, a new root. */
static int reserve(struct bc_keydir *kd)
{
	size_t need = 2u * kd->height + 3;

	if (areas_alloc(kd))
		return -ENOMEM;
	while (kd->npool < need) {
		struct node *nd = node_alloc(kd);
		if (!nd)
			return -ENOMEM;
		nd->link = kd->pool;
		kd->pool = nd;
		kd->npool++;
	}
	return 0;
}

/* ---- search ---- */

/* memcmp's sign, inlined for the short keys that dominate: eight bytes at a time. */
static inline int bytes_cmp(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (n > 64)
		return memcmp(a, b, n);
	for (; n >= 8; a += 8, b += 8, n -= 8) {
		uint64_t x = load_be(a, 8), y = load_be(b, 8);
		if (x != y)
			return x < y ? -1 : 1;
	}
	for (; n; a++, b++, n--)
		if (*a != *b)
			return *a < *b ? -1 : 1;
	return 0;
}

/* Compare the search key with a composite key (space byte first). */
static inline int skey_cmp(const struct skey *s, const uint8_t *k, size_t kl)
{
	if (s->space != k[0])
		return s->space < k[0] ? -1 : 1;
	kl--;
	size_t n = s->len < kl ? s->len : kl;
	int r = bytes_cmp(s->k, k + 1, n);
	if (r)
		return r;
	return (s->len > kl) - (s->len < kl);
}

/* The search key's head in a node with plen shared bytes (see head_of). */
static inline uint32_t skey_head(const struct skey *s, unsigned plen)
{
	uint32_t h = 0;

	/* composite byte i is the space for i == 0, else key byte i - 1 */
	if (plen && s->len >= plen - 1 + HEAD_BYTES)
		return (uint32_t)load_be(s->k + plen - 1, HEAD_BYTES);
	for (unsigned j = 0, i = plen; j < HEAD_BYTES; j++, i++)
		h = h << 8 | (!i ? s->space : i - 1 < s->len ? s->k[i - 1] : 0);
	return h;
}

/* s against cell i of nd, by head when the heads differ. */
static inline int slot_cmp(const struct node *nd, unsigned i, const struct skey *s, uint32_t sh)
{
	uint32_t ch = slot_head(nd, i);
	const uint8_t *k;
	size_t kl;

	if (sh != ch)
		return sh < ch ? -1 : 1;
	kpart(cell_at(nd, i), &k, &kl);
	return skey_cmp(s, k, kl);
}

/* The child of internal node nd whose range holds s. */
static unsigned int_find(const struct node *nd, const struct skey *s)
{
	unsigned lo = 0, hi = nd->n;
	uint32_t sh = skey_head(s, nd->plen);

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (slot_cmp(nd, mid, s, sh) >= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * First cell >= s (> s when after); *found when it equals s. The last cell is tried first:
 * a sorted load appends, and then needs no search.
 */
static unsigned leaf_find(const struct node *nd, const struct skey *s, bool after, bool *found)
{
	unsigned lo = 0, hi = nd->n;
	uint32_t sh = skey_head(s, nd->plen);

	*found = false;
	if (!hi)
		return 0;
	int last = slot_cmp(nd, hi - 1, s, sh);
	if (last > 0 || (!last && after))
		return hi;
	if (!last) {
		*found = true;
		return hi - 1;
	}
	hi--;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		int r = slot_cmp(nd, mid, s, sh);
		if (!r && !after) {
			*found = true;
			return mid;
		}
		if (r >= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Start loading the node's header and slot array, which a search then reads in an order
 * the CPU cannot guess: a binary search over a cold slot array waits for memory at
 * nearly every step, one cache line after another. Fetching the lines at once makes
 * those waits overlap. The cells are not fetched; a search reads about one.
 */
static inline void node_prefetch(const struct node *nd)
{
	const char *p = (const char *)nd;

	for (size_t off = 0; off < PREFETCH_BYTES; off += 64)
		__builtin_prefetch(p + off);
}

static struct node *find_leaf(const struct bc_keydir *kd, const struct skey *s)
{
	struct node *nd = kd->root;

	while (nd->level) {
		nd = child_at(nd, int_find(nd, s));
		node_prefetch(nd);
	}
	return nd;
}

/* find_leaf, recording the way down in pa */
static struct node *descend(const struct bc_keydir *kd, const struct skey *s, struct path *pa)
{
	struct node *nd = kd->root;

	/*
	 * Indexed by the nodes' own level: with a loop counting kd->height down and a zeroed
	 * path, gcc 12.2 -O2 folded shrink's reads of the path to zeros (not with
	 * -fno-ipa-modref).
	 */
	while (nd->level) {
		unsigned c = int_find(nd, s);
		pa->node[nd->level] = nd;
		pa->idx[nd->level] = c;
		nd = child_at(nd, c);
		node_prefetch(nd);
	}
	pa->node[0] = nd;
	return nd;
}

/*
 * The leaf for s with the way down in kd->fg.pa: the finger's leaf when s lies within its
 * fences (so a run of puts in key order descends about once per leaf), else a descent,
 * which moves the finger.
 */
static struct node *locate(struct bc_keydir *kd, const struct skey *s)
{
	struct finger *f = &kd->fg;

	if (f->valid && (!f->lo || skey_cmp(s, f->lo, f->lol) >= 0) &&
	    (!f->hi || skey_cmp(s, f->hi, f->hil) < 0))
		return f->pa.node[0];
	struct node *lf = descend(kd, s, &f->pa);
	f->lo = f->hi = NULL;
	/* the nearest separators left and right of the path, from the bottom up */
	for (unsigned lvl = 1; lvl < kd->height && (!f->lo || !f->hi); lvl++) {
		const struct node *nd = f->pa.node[lvl];
		unsigned c = f->pa.idx[lvl];
		if (!f->lo && c)
			kpart(cell_at(nd, c - 1), &f->lo, &f->lol);
		if (!f->hi && c < nd->n)
			kpart(cell_at(nd, c), &f->hi, &f->hil);
	}
	f->valid = true;
	return lf;
}

/* ---- rebuilding groups of nodes ---- */

static uint8_t *area_take(struct area *a, size_t len)
{
	uint8_t *p = a->buf + a->used;

	a->used += len;
	if (a->used > AREA_BYTES) {
		fprintf(stderr, "bc_keydir: rebuild scratch overflow\n");
		abort();
	}
	return p;
}

static void push(struct item *arr, size_t *n, const uint8_t *p, size_t len)
{
	if (*n >= AREA_ITEMS) {
		fprintf(stderr, "bc_keydir: rebuild item overflow\n");
		abort();
	}
	arr[*n].p = p;
	arr[*n].len = (uint32_t)len;
	(*n)++;
}

static void push_copy(struct area *a, struct item *arr, size_t *n, const uint8_t *p, size_t len)
{
	uint8_t *d = area_take(a, len);

	memcpy(d, p, len);
	push(arr, n, d, len);
}

/* An internal item: key part kp (none when NULL: a leftmost child) and child. */
static void push_pair(struct area *a, struct item *arr, size_t *n, const uint8_t *kp, size_t kplen,
		      struct node *child)
{
	size_t len = (kp ? kplen : 1) + sizeof(child);
	uint8_t *d = area_take(a, len);

	if (kp)
		memcpy(d, kp, kplen);
	else
		d[0] = 0;
	memcpy(d + len - sizeof(child), &child, sizeof(child));
	push(arr, n, d, len);
}

static void set_pre(struct item *it, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++) {
		it[i].pre = s;
		s += it[i].len + SLOT;
	}
}

static size_t pre_at(const struct item *it, size_t n, size_t i)
{
	if (i < n)
		return it[i].pre;
	return n ? it[n - 1].pre + it[n - 1].len + SLOT : 0;
}

/* Bytes the items [lo, hi) take as one node; an internal node's first item goes up. */
static size_t run_bytes(const struct item *it, size_t n, size_t lo, size_t hi, bool leaf)
{
	size_t s = pre_at(it, n, hi) - pre_at(it, n, lo);

	if (!leaf)
		s -= it[lo].len + SLOT;
	return s;
}

static size_t list_bytes(const struct item *it, size_t n, bool leaf)
{
	return n ? run_bytes(it, n, 0, n, leaf) : 0;
}

static bool cut_ok(const struct item *it, size_t n, bool leaf, unsigned m, const size_t *bnd)
{
	size_t minc = leaf ? 1 : 2;

	for (unsigned j = 0; j < m; j++) {
		if (bnd[j + 1] - bnd[j] < minc)
			return false;
		if (run_bytes(it, n, bnd[j], bnd[j + 1], leaf) > CAP)
			return false;
	}
	return true;
}

/* Cut n items into m runs of about equal bytes; false when some run does not fit. */
static bool partition(const struct item *it, size_t n, bool leaf, unsigned m, size_t *bnd)
{
	size_t minc = leaf ? 1 : 2;
	size_t i = 0;

	if (leaf && !n && m == 1) {
		bnd[0] = bnd[1] = 0;
		return true;
	}
	if (n < m * minc)
		return false;
	size_t total = pre_at(it, n, n);
	bnd[0] = 0;
	for (unsigned j = 1; j < m; j++) {
		size_t target = total * j / m;
		size_t lo = bnd[j - 1] + minc, hi = n - (m - j) * minc;
		if (i < lo)
			i = lo;
		while (i < hi && it[i].pre < target)
			i++;
		if (i > lo && it[i].pre > target && target - it[i - 1].pre < it[i].pre - target)
			i--;
		bnd[j] = i;
	}
	bnd[m] = n;
	return cut_ok(it, n, leaf, m, bnd);
}

/* Gather the group's items into a->grp; the node ovn's items come from a->ov. */
static void flatten(struct area *a, const struct group *g, const struct node *ovn, bool leaf)
{
	a->ngrp = 0;
	for (unsigned j = 0; j < g->k; j++) {
		const struct node *nd = g->orig[j];
		const uint8_t *sep = NULL;
		size_t seplen = 0;
		if (!leaf && j) {
			sep = cell_at(g->p, g->g0 + j - 1);
			seplen = kpart_len(sep);
		}
		if (nd == ovn) {
			for (size_t i = 0; i < a->nov; i++) {
				if (!leaf && !i)
					push_pair(a, a->grp, &a->ngrp, sep, seplen,
						  item_child(&a->ov[0]));
				else
					push(a->grp, &a->ngrp, a->ov[i].p, a->ov[i].len);
			}
			continue;
		}
		if (!leaf)
			push_pair(a, a->grp, &a->ngrp, sep, seplen, nd->link);
		for (unsigned i = 0; i < nd->n; i++) {
			const uint8_t *c = cell_at(nd, i);
			push_copy(a, a->grp, &a->ngrp, c, cell_len(nd->level, c));
		}
	}
	set_pre(a->grp, a->ngrp);
}

static size_t lcp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	size_t n = al < bl ? al : bl, i = 0;

	while (i + 8 <= n && !memcmp(a + i, b + i, 8))
		i += 8;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Key part length of the shortest separator s with key(l) < s <= key(r) (leaf cells). */
static size_t sep_len(const uint8_t *l, const uint8_t *r)
{
	const uint8_t *lk, *rk;
	size_t ll, rl;

	kpart(l, &lk, &ll);
	kpart(r, &rk, &rl);
	size_t s = lcp(lk, ll, rk, rl) + 1;
	if (s <= INLINE_MAX)
		return uv_len((uint32_t)s) + s;
	return kpart_len(r);
}

/* Write that separator's key part to out (taking a reference on a shared key). */
static size_t sep_write(const uint8_t *l, const uint8_t *r, uint8_t *out)
{
	const uint8_t *lk, *rk;
	size_t ll, rl;

	kpart(l, &lk, &ll);
	size_t rn = kpart(r, &rk, &rl);
	size_t s = lcp(lk, ll, rk, rl) + 1;
	if (s <= INLINE_MAX) {
		size_t n = uv_put(out, (uint32_t)s);
		memcpy(out + n, rk, s);
		return n + s;
	}
	kpart_x(r)->refs++;
	memcpy(out, r, rn);
	return rn;
}

/* Key part of the separator above run j (j >= 1) of a cut. */
static size_t new_sep_len(const struct item *it, const size_t *bnd, unsigned j, bool leaf)
{
	if (leaf)
		return sep_len(it[bnd[j] - 1].p, it[bnd[j]].p);
	return kpart_len(it[bnd[j]].p);
}

/* Composite key of the separator above run j (j >= 1) of a cut, as it will be stored. */
static void new_sep_key(const struct item *it, const size_t *bnd, unsigned j, bool leaf,
			const uint8_t **k, size_t *kl)
{
	if (!leaf) {
		kpart(it[bnd[j]].p, k, kl);
		return;
	}
	const uint8_t *lk;
	size_t ll;
	kpart(it[bnd[j] - 1].p, &lk, &ll);
	kpart(it[bnd[j]].p, k, kl);
	size_t s = lcp(lk, ll, *k, *kl) + 1;
	if (s <= INLINE_MAX)
		*kl = s;
}

/*
 * The plen of each run's node: the common prefix of its two fence keys when both are
 * separators we can see (the parent's or new ones), else the parent's plen, which any
 * key under the parent shares. (The root's is 0: its fences are infinite.)
 */
static void run_plens(const struct group *g, const struct area *a, bool leaf, unsigned m,
		      const size_t *bnd, unsigned *plen)
{
	const uint8_t *fk[9] = {0};
	size_t fl[9] = {0};
	const struct node *p = g->p;
	unsigned base = p ? p->plen : 0;

	if (p && g->g0)
		kpart(cell_at(p, g->g0 - 1), &fk[0], &fl[0]);
	if (p && g->g0 + g->k - 1 < p->n)
		kpart(cell_at(p, g->g0 + g->k - 1), &fk[m], &fl[m]);
	for (unsigned j = 1; j < m; j++)
		new_sep_key(a->grp, bnd, j, leaf, &fk[j], &fl[j]);
	for (unsigned j = 0; j < m; j++) {
		plen[j] = base;
		if (fk[j] && fk[j + 1]) {
			size_t l = lcp(fk[j], fl[j], fk[j + 1], fl[j + 1]);
			plen[j] = l > 255 ? 255 : (unsigned)l;
		}
	}
}

/* Write the runs into the group's nodes (then spares); frees nodes the group no longer needs. */
static void commit(struct bc_keydir *kd, const struct group *g, const struct area *a, bool leaf,
		   unsigned level, unsigned m, const size_t *bnd, struct node **outs)
{
	struct node *next = leaf ? g->orig[g->k - 1]->link : NULL;
	unsigned plen[8];

	run_plens(g, a, leaf, m, bnd, plen);
	for (unsigned j = 0; j < m; j++) {
		outs[j] = j < g->k ? g->orig[j] : pool_take(kd);
		node_build(outs[j], level, plen[j], a->grp + bnd[j], bnd[j + 1] - bnd[j]);
	}
	if (leaf) {
		for (unsigned j = 0; j + 1 < m; j++)
			outs[j]->link = outs[j + 1];
		outs[m - 1]->link = next;
	}
	for (unsigned j = m; j < g->k; j++)
		node_free(kd, g->orig[j]);
}

/*
 * Build in b->ov the parent's new item list: its separators for children g0+1..g0+k-1
 * replaced by ones for outs[1..m). With no parent, the list of a new root.
 */
static void parent_list(struct bc_keydir *kd, const struct group *g, const struct area *a,
			struct area *b, bool leaf, unsigned m, const size_t *bnd,
			struct node *const *outs)
{
	const struct node *p = g->p;

	b->used = 0;
	b->nov = 0;
	push_pair(b, b->ov, &b->nov, NULL, 0, p ? p->link : outs[0]);
	for (unsigned c = 0; p && c < g->g0; c++) {
		const uint8_t *cl = cell_at(p, c);
		push_copy(b, b->ov, &b->nov, cl, cell_len(p->level, cl));
	}
	for (unsigned j = 1; j < m; j++) {
		uint8_t kp[MAX_ITEM];
		size_t kl;
		if (leaf) {
			kl = sep_write(a->grp[bnd[j] - 1].p, a->grp[bnd[j]].p, kp);
		} else {
			kl = kpart_len(a->grp[bnd[j]].p);
			memcpy(kp, a->grp[bnd[j]].p, kl);
		}
		push_pair(b, b->ov, &b->nov, kp, kl, outs[j]);
	}
	if (!p)
		return;
	for (unsigned c = g->g0 + g->k - 1; c < p->n; c++) {
		const uint8_t *cl = cell_at(p, c);
		push_copy(b, b->ov, &b->nov, cl, cell_len(p->level, cl));
	}
	/* separators between leaves are copies; between internal nodes they moved down */
	for (unsigned c = g->g0; leaf && c + 1 < g->g0 + g->k; c++)
		xkey_put(kd, kpart_x(cell_at(p, c)));
}

/* Up to three consecutive children of p around child ci. */
static void pick_group(struct group *g, struct node *p, unsigned ci)
{
	unsigned nch = p->n + 1u;

	g->p = p;
	if (nch <= 3) {
		g->g0 = 0;
		g->k = nch;
	} else {
		g->g0 = ci ? ci - 1 : 0;
		if (g->g0 + 3 > nch)
			g->g0 = nch - 3;
		g->k = 3;
	}
	for (unsigned j = 0; j < g->k; j++)
		g->orig[j] = child_at(p, g->g0 + j);
}

static void collapse_root(struct bc_keydir *kd)
{
	while (kd->root->level && !kd->root->n) {
		struct node *old = kd->root;
		kd->root = old->link;
		kd->height--;
		node_free(kd, old);
	}
}

/*
 * The node at level lvl of pa overflowed: its new contents are area[cur].ov, newpos is
 * the index there of the item that was added, and seq says whether it continues a
 * sequential run. Split or redistribute, cascading up. Allocates only from the pool.
 */
static void grow(struct bc_keydir *kd, struct path *pa, unsigned lvl, int cur, int seq,
		 size_t newpos)
{
	kd->fg.valid = false;
	for (;;) {
		struct area *a = &kd->area[cur], *b = &kd->area[cur ^ 1];
		struct node *x = pa->node[lvl];
		bool leaf = !lvl, isroot = lvl + 1 == kd->height;
		size_t mark = a->used, bnd[8];
		struct node *outs[8];
		struct group g;
		unsigned m = 0;

		if (isroot) {
			g.p = NULL;
			g.g0 = 0;
			g.k = 1;
			g.orig[0] = x;
		} else {
			g.p = pa->node[lvl + 1];
			g.g0 = pa->idx[lvl + 1];
			g.k = 1;
			g.orig[0] = x;
		}
		if (seq != SEQ_NONE) {
			flatten(a, &g, x, leaf);
			size_t n = a->ngrp, cut = 0;
			if (seq == SEQ_APPEND && newpos + 1 == n && n >= 3)
				cut = leaf ? n - 1 : n - 2;
			else if (seq == SEQ_PREPEND && newpos == (leaf ? 0u : 1u) && n >= 3)
				cut = leaf ? 1 : 2;
			bnd[0] = 0;
			bnd[1] = cut;
			bnd[2] = n;
			if (cut && cut_ok(a->grp, n, leaf, 2, bnd))
				m = 2;
		}
		if (!m) {
			seq = SEQ_NONE;
			a->used = mark;
			if (!isroot)
				pick_group(&g, g.p, pa->idx[lvl + 1]);
			flatten(a, &g, x, leaf);
			size_t total = pre_at(a->grp, a->ngrp, a->ngrp);
			m = total <= g.k * (CAP - CAP / 16) ? g.k : g.k + 1;
			while (!partition(a->grp, a->ngrp, leaf, m, bnd)) {
				if (++m > g.k + 2) {
					fprintf(stderr,
						"bc_keydir: cannot cut an overflowing node\n");
					abort();
				}
			}
		}
		commit(kd, &g, a, leaf, lvl, m, bnd, outs);
		if (leaf) {
			kd->hint = seq == SEQ_APPEND ? outs[1]
				: seq == SEQ_PREPEND ? outs[0]
						     : NULL;
			kd->hint_dir = seq == SEQ_APPEND ? 1 : -1;
		}
		parent_list(kd, &g, a, b, leaf, m, bnd, outs);
		set_pre(b->ov, b->nov);
		if (isroot) {
			struct node *r = pool_take(kd);
			node_build(r, lvl + 1, 0, b->ov, b->nov);
			raise_root(kd, r);
			return;
		}
		if (list_bytes(b->ov, b->nov, false) <= CAP) {
			node_build(g.p, lvl + 1, g.p->plen, b->ov, b->nov);
			return;
		}
		newpos = g.g0 + 1;
		if (!(g.k == 1 && m == 2))
			seq = SEQ_NONE;
		lvl++;
		cur ^= 1;
	}
}

/*
 * The node at level lvl of pa fell under UNDERFLOW after a delete: merge it with its
 * siblings when they fit in fewer nodes, else even them out; cascade up. Never allocates:
 * a rebuild whose new separators would not fit in the parent is skipped.
 */
static void shrink(struct bc_keydir *kd, struct path *pa, unsigned lvl)
{
	const unsigned height = kd->height; /* only collapse_root, at the end, changes it */

	kd->fg.valid = false;

	while (lvl + 1 < height) {
		struct node *p = pa->node[lvl + 1];
		if (!p->n) {
			/* an only child: nothing to merge with here; its parent is empty too */
			lvl++;
			continue;
		}
		struct area *a = &kd->area[0], *b = &kd->area[1];
		bool leaf = !lvl;
		size_t bnd[4];
		struct node *outs[3];
		struct group g;
		unsigned m;

		pick_group(&g, p, pa->idx[lvl + 1]);
		a->used = 0;
		a->nov = 0;
		flatten(a, &g, NULL, leaf);
		size_t total = pre_at(a->grp, a->ngrp, a->ngrp);
		size_t fill = CAP - CAP / 16;
		m = (unsigned)((total + fill - 1) / fill);
		if (!m)
			m = 1;
		for (; m <= g.k; m++) {
			if (!partition(a->grp, a->ngrp, leaf, m, bnd))
				continue;
			size_t pb = node_bytes(p);
			for (unsigned c = g.g0; c + 1 < g.g0 + g.k; c++)
				pb -= cell_len(p->level, cell_at(p, c)) + SLOT;
			for (unsigned j = 1; j < m; j++)
				pb += new_sep_len(a->grp, bnd, j, leaf) + sizeof(struct node *) +
					SLOT;
			if (pb <= CAP)
				break;
		}
		if (m > g.k)
			break;
		commit(kd, &g, a, leaf, lvl, m, bnd, outs);
		kd->hint = NULL;
		parent_list(kd, &g, a, b, leaf, m, bnd, outs);
		node_build(p, lvl + 1, p->plen, b->ov, b->nov);
		if (node_bytes(p) >= UNDERFLOW)
			break;
		lvl++;
	}
	collapse_root(kd);
}

/*
 * Put cell at pos of the leaf pa->node[0]: insert, or replace the cell there. Needs the
 * reserve when the leaf cannot take it.
 */
static void leaf_set(struct bc_keydir *kd, struct path *pa, unsigned pos, const uint8_t *cell,
		     size_t len, bool repl)
{
	struct node *lf = pa->node[0];
	int seq = SEQ_NONE;

	if (repl) {
		uint8_t *old = cell_at(lf, pos);
		size_t olen = cell_len(0, old);
		if (len <= olen) {
			memcpy(old, cell, len);
			lf->used = (uint16_t)(lf->used - (olen - len));
			return;
		}
		if (node_bytes(lf) - olen + len <= CAP) {
			node_delete(lf, pos);
			node_insert(lf, pos, cell, len);
			return;
		}
	} else {
		int dir = pos == lf->n ? 1 : pos == 0 ? -1 : 0;
		if (node_bytes(lf) + len + SLOT <= CAP) {
			node_insert(lf, pos, cell, len);
			kd->hint = dir ? lf : NULL;
			kd->hint_dir = dir;
			return;
		}
		if (dir && kd->hint == lf && kd->hint_dir == dir)
			seq = dir > 0 ? SEQ_APPEND : SEQ_PREPEND;
	}

	struct area *a = &kd->area[0];
	a->used = 0;
	a->nov = 0;
	for (unsigned i = 0; i < lf->n; i++) {
		if (i == pos)
			push_copy(a, a->ov, &a->nov, cell, len);
		if (i == pos && repl)
			continue;
		const uint8_t *c = cell_at(lf, i);
		push_copy(a, a->ov, &a->nov, c, cell_len(0, c));
	}
	if (pos == lf->n)
		push_copy(a, a->ov, &a->nov, cell, len);
	grow(kd, pa, 0, 0, seq, pos);
}

/* Whether replacing cell pos of the leaf with a len-byte cell needs no new node. */
static bool fits_in_place(const struct node *lf, unsigned pos, size_t len)
{
	return node_bytes(lf) - cell_len(0, cell_at(lf, pos)) + len <= CAP;
}

/* Encode a new leaf cell for s (allocating its shared key when it is long). */
static int new_cell(struct bc_keydir *kd, const struct skey *s, const struct bc_kval *v,
		    uint8_t *cell, size_t *len)
{
	size_t kl = s->len + 1;
	size_t n = uv_put(cell, (uint32_t)kl);

	if (kl <= INLINE_MAX) {
		cell[n] = (uint8_t)s->space;
		if (s->len)
			memcpy(cell + n + 1, s->k, s->len);
		n += kl;
	} else {
		struct xkey *x = kd_malloc(kd, sizeof(*x) + kl);
		if (!x)
			return -ENOMEM;
		x->refs = 1;
		x->len = (uint32_t)kl;
		x->b[0] = (uint8_t)s->space;
		memcpy(x->b + 1, s->k, s->len);
		kd->xbytes += sizeof(*x) + kl;
		memcpy(cell + n, &x, sizeof(x));
		n += sizeof(x);
	}
	*len = n + val_put(cell + n, v);
	return 0;
}

/* ---- appending in key order ---- */

/* Bytes an append fills a node to before starting the next: some slack for later puts. */
#define APPEND_FILL (CAP - CAP / 16)

/* Point the finger at the rightmost leaf (its upper fence is unbounded). */
static void finger_right(struct bc_keydir *kd)
{
	struct finger *f = &kd->fg;
	struct node *nd = kd->root;

	if (f->valid && !f->hi)
		return;
	f->lo = NULL;
	while (nd->level) {
		f->pa.node[nd->level] = nd;
		f->pa.idx[nd->level] = nd->n;
		nd = child_at(nd, nd->n);
	}
	f->pa.node[0] = nd;
	for (unsigned lvl = 1; lvl < kd->height && !f->lo; lvl++) {
		unsigned c = f->pa.idx[lvl];
		if (c)
			kpart(cell_at(f->pa.node[lvl], c - 1), &f->lo, &f->lol);
	}
	f->hi = NULL;
	f->valid = true;
}

/* The separator left of the node at level lvl of the finger's path (NULL: none). */
static const uint8_t *path_lo(const struct path *pa, unsigned height, unsigned lvl, size_t *len)
{
	for (unsigned j = lvl + 1; j < height; j++) {
		if (pa->idx[j]) {
			const uint8_t *k;
			kpart(cell_at(pa->node[j], pa->idx[j] - 1), &k, len);
			return k;
		}
	}
	return NULL;
}

/*
 * A node of the right edge gets a right sibling, so its upper fence is now the key part
 * sep: it may share a prefix with its lower fence lo, so give it the plen and heads that a
 * rebuild would (the right edge has plen 0, its upper fence being unbounded).
 */
static void close_node(struct node *nd, const uint8_t *lo, size_t lol, const uint8_t *sep)
{
	const uint8_t *k;
	size_t kl;

	if (!lo)
		return;
	kpart(sep, &k, &kl);
	size_t l = lcp(lo, lol, k, kl);
	nd->plen = (uint8_t)(l > 255 ? 255 : l);
	for (unsigned i = 0; i < nd->n; i++)
		slot_set(nd, i, slot_off(nd, i), cell_head(cell_at(nd, i), nd->plen));
}

/*
 * The rightmost leaf is full: start a new one holding cell, and add the separator in front
 * of it to the right edge above, starting new nodes there too as they fill (each new
 * internal node takes its left neighbour's last child, so every internal node keeps two
 * children). Takes its nodes from the pool.
 */
static void append_split(struct bc_keydir *kd, const uint8_t *cell, size_t len)
{
	struct path *pa = &kd->fg.pa;
	struct node *x = pa->node[0], *nn = pool_take(kd);
	uint8_t sep[MAX_ITEM + sizeof(struct node *)];
	size_t seplen;

	kd->fg.valid = false;
	node_init(nn, 0);
	node_insert(nn, 0, cell, len);
	nn->link = x->link;
	x->link = nn;
	seplen = sep_write(cell_at(x, x->n - 1), cell, sep);
	for (unsigned lvl = 0;; lvl++) {
		size_t lol;
		const uint8_t *lo = path_lo(pa, kd->height, lvl, &lol);
		close_node(x, lo, lol, sep);
		memcpy(sep + seplen, &nn, sizeof(nn));
		size_t pl = seplen + sizeof(nn);
		if (lvl + 1 == kd->height) {
			struct node *r = pool_take(kd);
			node_init(r, lvl + 1);
			r->link = x;
			node_insert(r, 0, sep, pl);
			raise_root(kd, r);
			return;
		}
		struct node *p = pa->node[lvl + 1];
		if (node_bytes(p) + pl + SLOT <= APPEND_FILL || p->n < 2) {
			node_insert(p, p->n, sep, pl);
			return;
		}
		/* p is full: its last child and the new one go to a new node q; the separator
		 * of that last child moves up as the one in front of q */
		struct node *q = pool_take(kd);
		node_init(q, lvl + 1);
		q->link = child_at(p, p->n);
		node_insert(q, 0, sep, pl);
		const uint8_t *last = cell_at(p, p->n - 1);
		seplen = kpart_len(last);
		memcpy(sep, last, seplen);
		node_delete(p, p->n - 1);
		x = p;
		nn = q;
	}
}

/* ---- the contract ---- */

int bc_keydir_new(struct bc_keydir **out)
{
	struct bc_keydir *kd = calloc(1, sizeof(*kd));

	*out = NULL;
	if (!kd)
		return -ENOMEM;
	bc_slabs_init(&kd->mem, NODE_SIZE);
	kd->root = node_alloc(kd);
	if (!kd->root) {
		free(kd);
		return -ENOMEM;
	}
	node_init(kd->root, 0);
	kd->height = 1;
	*out = kd;
	return 0;
}

/* Drop the references the tree's cells hold on long keys. */
static void release_keys(struct bc_keydir *kd, struct node *nd)
{
	for (unsigned i = 0; i < nd->n; i++) {
		const uint8_t *c = cell_at(nd, i);
		xkey_put(kd, kpart_x(c));
		if (nd->level)
			release_keys(kd, child_at(nd, i + 1));
	}
	if (nd->level)
		release_keys(kd, nd->link);
}

void bc_keydir_free(struct bc_keydir *kd)
{
	if (!kd)
		return;
	release_keys(kd, kd->root); /* the long keys; the nodes go with their slabs */
	bc_slabs_fini(&kd->mem);
	for (int i = 0; i < 2; i++) {
		free(kd->area[i].buf);
		free(kd->area[i].ov);
		free(kd->area[i].grp);
	}
	free(kd);
}

static bool skey_init(struct skey *s, unsigned space, const void *key, size_t klen)
{
	s->space = space;
	s->k = key;
	s->len = klen;
	return space <= 0xff && klen <= BC_MAX_KEY;
}

bool bc_keydir_get(const struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		   struct bc_kval *out)
{
	struct skey s;
	bool found;

	if (!skey_init(&s, space, key, klen))
		return false;
	const struct node *lf = find_leaf(kd, &s);
	unsigned pos = leaf_find(lf, &s, false, &found);
	if (found && out) {
		const uint8_t *c = cell_at(lf, pos);
		val_get(c + kpart_len(c), out);
	}
	return found;
}

int bc_keydir_put(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		  const struct bc_kval *v, struct bc_kval *old, bool *replaced)
{
	uint8_t cell[MAX_ITEM];
	struct skey s;
	bool found;
	size_t n;

	if (replaced)
		*replaced = false;
	if (!skey_init(&s, space, key, klen))
		return -EINVAL;
	if (reserve(kd))
		return -ENOMEM;
	struct node *lf = locate(kd, &s);
	unsigned pos = leaf_find(lf, &s, false, &found);
	if (found) {
		const uint8_t *c = cell_at(lf, pos);
		size_t kn = kpart_len(c);
		if (old)
			val_get(c + kn, old);
		memcpy(cell, c, kn);
		n = kn + val_put(cell + kn, v);
		leaf_set(kd, &kd->fg.pa, pos, cell, n, true);
		if (replaced)
			*replaced = true;
		return 0;
	}

	if (new_cell(kd, &s, v, cell, &n))
		return -ENOMEM;
	leaf_set(kd, &kd->fg.pa, pos, cell, n, false);
	kd->count++;
	return 0;
}

int bc_keydir_append(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		     const struct bc_kval *v)
{
	uint8_t cell[MAX_ITEM];
	struct skey s;
	size_t n;

	if (!skey_init(&s, space, key, klen))
		return -EINVAL;
	finger_right(kd);
	struct node *lf = kd->fg.pa.node[0];
	if (lf->n) {
		const uint8_t *k;
		size_t kl;
		kpart(cell_at(lf, lf->n - 1), &k, &kl);
		if (skey_cmp(&s, k, kl) <= 0)
			return -ERANGE;
	} else if (kd->fg.lo && skey_cmp(&s, kd->fg.lo, kd->fg.lol) < 0) {
		return -ERANGE;
	}
	if (reserve(kd) || new_cell(kd, &s, v, cell, &n))
		return -ENOMEM;
	if (node_bytes(lf) + n + SLOT <= APPEND_FILL || !lf->n)
		node_insert(lf, lf->n, cell, n);
	else
		append_split(kd, cell, n);
	kd->count++;
	return 0;
}

int bc_keydir_move(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		   const struct bc_loc *from, const struct bc_loc *to, bool *moved)
{
	uint8_t cell[MAX_ITEM];
	struct skey s;
	bool found;

	*moved = false;
	if (!skey_init(&s, space, key, klen))
		return -EINVAL;
	struct node *lf = locate(kd, &s);
	unsigned pos = leaf_find(lf, &s, false, &found);
	if (!found)
		return 0;
	const uint8_t *c = cell_at(lf, pos);
	size_t kn = kpart_len(c);
	struct bc_kval v;
	val_get(c + kn, &v);
	if (!bc_loc_eq(&v.loc, from))
		return 0;
	v.loc = *to;
	memcpy(cell, c, kn);
	size_t n = kn + val_put(cell + kn, &v);
	if (!fits_in_place(lf, pos, n) && reserve(kd))
		return -ENOMEM;
	leaf_set(kd, &kd->fg.pa, pos, cell, n, true);
	*moved = true;
	return 0;
}

bool bc_keydir_remove(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		      struct bc_kval *old)
{
	struct skey s;
	bool found;

	if (!skey_init(&s, space, key, klen))
		return false;
	struct node *lf = locate(kd, &s);
	unsigned pos = leaf_find(lf, &s, false, &found);
	if (!found)
		return false;
	const uint8_t *c = cell_at(lf, pos);
	if (old)
		val_get(c + kpart_len(c), old);
	xkey_put(kd, kpart_x(c));
	node_delete(lf, pos);
	kd->count--;
	if (kd->height > 1 && node_bytes(lf) < UNDERFLOW)
		shrink(kd, &kd->fg.pa, 0);
	return true;
}

size_t bc_keydir_count(const struct bc_keydir *kd)
{
	return kd->count;
}

size_t bc_keydir_memory(const struct bc_keydir *kd)
{
	size_t m = sizeof(*kd) + bc_slabs_memory(&kd->mem) + kd->xbytes;

	if (kd->areas)
		m += 2 * (AREA_BYTES + 2 * AREA_ITEMS * sizeof(struct item));
	return m;
}

/* Visit from cell pos of leaf lf on; space < 0 visits every space. */
static int walk(const struct node *lf, unsigned pos, int space, bc_keydir_visit_fn visit, void *ctx)
{
	for (; lf; lf = lf->link, pos = 0) {
		for (unsigned i = pos; i < lf->n; i++) {
			const uint8_t *c = cell_at(lf, i), *k;
			size_t kl;
			size_t kn = kpart(c, &k, &kl);
			if (space >= 0 && k[0] != space)
				return 0;
			struct bc_kval v;
			val_get(c + kn, &v);
			int r = visit(ctx, k[0], k + 1, kl - 1, &v);
			if (r)
				return r;
		}
	}
	return 0;
}

int bc_keydir_scan(const struct bc_keydir *kd, unsigned space, const void *start, size_t slen,
		   bool exclusive, bc_keydir_visit_fn visit, void *ctx)
{
	struct skey s;
	bool found;

	if (!skey_init(&s, space, start, slen))
		return 0;
	const struct node *lf = find_leaf(kd, &s);
	unsigned pos = leaf_find(lf, &s, exclusive, &found);
	return walk(lf, pos, (int)space, visit, ctx);
}

int bc_keydir_scan_all(const struct bc_keydir *kd, bc_keydir_visit_fn visit, void *ctx)
{
	const struct node *nd = kd->root;

	while (nd->level)
		nd = nd->link;
	return walk(nd, 0, -1, visit, ctx);
}

/* ---- verification ---- */

struct check {
	const struct bc_keydir *kd;
	const struct node *prev_leaf;
	size_t count, nodes, xbytes;
	struct xkey **xs; /* one entry per reference seen */
	size_t nx, capx;
	const char *why;
};

static int kcmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	size_t n = al < bl ? al : bl;
	int r = n ? memcmp(a, b, n) : 0;

	return r ? r : (al > bl) - (al < bl);
}

static bool note_x(struct check *ck, const uint8_t *c)
{
	struct xkey *x = kpart_x(c);

	if (!x)
		return true;
	if (ck->nx == ck->capx) {
		size_t nc = ck->capx ? 2 * ck->capx : 64;
		struct xkey **nv = realloc(ck->xs, nc * sizeof(*nv));
		if (!nv)
			return false;
		ck->xs = nv;
		ck->capx = nc;
	}
	ck->xs[ck->nx++] = x;
	return true;
}

#define FAIL(msg)                \
	do {                     \
		ck->why = (msg); \
		return -EBADMSG; \
	} while (0)

/* Check the subtree at nd, whose keys must lie in [lo, hi) (NULL: unbounded). */
static int check_node(struct check *ck, const struct node *nd, unsigned level, const uint8_t *lo,
		      size_t lol, const uint8_t *hi, size_t hil)
{
	size_t used = 0;
	const uint8_t *pk = NULL;
	size_t pkl = 0;

	ck->nodes++;
	if (nd->level != level)
		FAIL("node level does not match its depth");
	if (node_bytes(nd) > CAP || nd->top < HDR + SLOT * nd->n || nd->top > NODE_SIZE)
		FAIL("node header out of range");
	if ((!lo || !hi) ? nd->plen != 0 : nd->plen > lcp(lo, lol, hi, hil))
		FAIL("node prefix longer than its fences share");
	for (unsigned i = 0; i < nd->n; i++) {
		const uint8_t *c = cell_at(nd, i), *k;
		size_t kl;
		if (slot_off(nd, i) < nd->top)
			FAIL("cell below top");
		kpart(c, &k, &kl);
		size_t len = cell_len(level, c);
		if (slot_off(nd, i) + len > NODE_SIZE)
			FAIL("cell past the node end");
		if (slot_head(nd, i) != head_of(k, kl, nd->plen))
			FAIL("slot head does not match its key");
		used += len;
		if (kl < 1 || kl > COMPOSITE_MAX)
			FAIL("key length out of range");
		if (!note_x(ck, c))
			return -ENOMEM;
		if (pk && kcmp(pk, pkl, k, kl) >= 0)
			FAIL("keys out of order in a node");
		if (lo && kcmp(k, kl, lo, lol) < 0)
			FAIL("key below its separator");
		if (hi && kcmp(k, kl, hi, hil) >= 0)
			FAIL("key at or above the next separator");
		pk = k;
		pkl = kl;
	}
	if (used != nd->used)
		FAIL("used bytes do not match the cells");
	if (!level) {
		if (ck->prev_leaf && ck->prev_leaf->link != nd)
			FAIL("leaf chain broken");
		ck->prev_leaf = nd;
		ck->count += nd->n;
		return 0;
	}
	for (unsigned c = 0; c <= nd->n; c++) {
		const uint8_t *clo = lo, *chi = hi;
		size_t clol = lol, chil = hil;
		if (c) {
			kpart(cell_at(nd, c - 1), &clo, &clol);
		}
		if (c < nd->n)
			kpart(cell_at(nd, c), &chi, &chil);
		int rc = check_node(ck, child_at(nd, c), level - 1, clo, clol, chi, chil);
		if (rc)
			return rc;
	}
	return 0;
}

static int xptr_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (struct xkey *const *)a,
		  y = (uintptr_t) * (struct xkey *const *)b;

	return (x > y) - (x < y);
}

void bc_keydir_fail_alloc(struct bc_keydir *kd, unsigned n)
{
	kd->fail_in = n;
}

int bc_keydir_check(const struct bc_keydir *kd, const char **why)
{
	struct check ck = {.kd = kd};
	int rc;

	rc = check_node(&ck, kd->root, kd->height - 1, NULL, 0, NULL, 0);
	if (rc)
		goto out;
	if (ck.prev_leaf && ck.prev_leaf->link) {
		ck.why = "last leaf has a successor";
		rc = -EBADMSG;
		goto out;
	}
	if (ck.count != kd->count) {
		ck.why = "count does not match the leaves";
		rc = -EBADMSG;
		goto out;
	}
	if (ck.nodes + kd->npool != kd->nodes) {
		ck.why = "node count does not match the tree";
		rc = -EBADMSG;
		goto out;
	}
	if (kd->root->level && !kd->root->n) {
		ck.why = "internal root with one child";
		rc = -EBADMSG;
		goto out;
	}
	if (ck.nx)
		qsort(ck.xs, ck.nx, sizeof(*ck.xs), xptr_cmp);
	for (size_t i = 0; i < ck.nx;) {
		size_t j = i;
		while (j < ck.nx && ck.xs[j] == ck.xs[i])
			j++;
		if (ck.xs[i]->refs != j - i) {
			ck.why = "long key reference count is wrong";
			rc = -EBADMSG;
			goto out;
		}
		ck.xbytes += sizeof(struct xkey) + ck.xs[i]->len;
		i = j;
	}
	if (ck.xbytes != kd->xbytes) {
		ck.why = "long key bytes do not match";
		rc = -EBADMSG;
	}
out:
	free(ck.xs);
	if (why)
		*why = rc ? (ck.why ? ck.why : "out of memory") : NULL;
	return rc;
}
