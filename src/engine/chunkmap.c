// SPDX-License-Identifier: MIT
/*
 * Where each chunk of a chunked object lives: a radix tree from chunk index to struct
 * bc_chunk, allocated only where chunks exist, so a sparse value (a 1 TiB file with one
 * byte at its end) costs a few nodes, not a table of every index. A small object keeps one
 * leaf sized to its chunks; past 256 chunks the tree grows levels of 512 pointers above
 * full 4 KiB leaves, up to the 2^34 chunks of the largest value. Not thread-safe: the
 * keydir lock guards it like the rest of the object table.
 */
#include "keydir.h"

#include <bitcask/bitcask.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LEAF_BITS 8
#define LEAF_N (1u << LEAF_BITS)
#define INNER_BITS 9
#define INNER_N (1u << INNER_BITS)
#define MAX_INDEX (BC_MAX_VALUE / BC_CHUNK_SIZE) /* one past the largest chunk index */

struct leaf {
	uint32_t cap; /* entries in c[]: LEAF_N except in a small object's root */
	uint32_t used; /* entries that are not holes */
	struct bc_chunk c[];
};

struct inner {
	uint32_t used; /* non-NULL children */
	void *child[INNER_N];
};

_Static_assert(MAX_INDEX <= (UINT64_C(1) << (LEAF_BITS + 3 * INNER_BITS)), "three levels");

/* Indices a node at height h covers. */
static uint64_t span(unsigned h)
{
	return (uint64_t)LEAF_N << (INNER_BITS * h);
}

static size_t leaf_bytes(uint32_t cap)
{
	return sizeof(struct leaf) + (size_t)cap * sizeof(struct bc_chunk);
}

static struct leaf *leaf_new(struct bc_object *o, uint32_t cap)
{
	struct leaf *l = calloc(1, leaf_bytes(cap));
	if (l) {
		l->cap = cap;
		o->bytes += leaf_bytes(cap);
	}
	return l;
}

static struct inner *inner_new(struct bc_object *o)
{
	struct inner *n = calloc(1, sizeof(*n));
	if (n)
		o->bytes += sizeof(*n);
	return n;
}

/* Free a subtree at height h; returns the chunks it held. */
static uint64_t free_tree(struct bc_object *o, void *node, unsigned h)
{
	if (!node)
		return 0;
	uint64_t n = 0;
	if (!h) {
		struct leaf *l = node;
		n = l->used;
		o->bytes -= leaf_bytes(l->cap);
	} else {
		struct inner *in = node;
		for (unsigned i = 0; i < INNER_N; i++)
			n += free_tree(o, in->child[i], h - 1);
		o->bytes -= sizeof(*in);
	}
	free(node);
	return n;
}

struct bc_chunk *bc_object_chunk(struct bc_object *o, uint64_t i)
{
	if (!o->root || i >= span(o->height))
		return NULL;
	void *node = o->root;
	for (unsigned h = o->height; h > 0; h--) {
		node = ((struct inner *)node)
			       ->child[(i >> (LEAF_BITS + INNER_BITS * (h - 1))) & (INNER_N - 1)];
		if (!node)
			return NULL;
	}
	struct leaf *l = node;
	uint64_t j = i & (LEAF_N - 1);
	if (j >= l->cap || !l->c[j].loc.size)
		return NULL;
	return &l->c[j];
}

int bc_object_set(struct bc_object *o, uint64_t i, const struct bc_chunk *c)
{
	if (i >= MAX_INDEX)
		return -EFBIG;
	if (!c->loc.size)
		return -EINVAL;
	/* Grow upward until the root covers i; a small root leaf becomes a full one. */
	while (o->root && i >= span(o->height)) {
		if (!o->height && ((struct leaf *)o->root)->cap < LEAF_N) {
			struct leaf *old = o->root, *l = leaf_new(o, LEAF_N);
			if (!l)
				return -ENOMEM;
			memcpy(l->c, old->c, old->cap * sizeof(*old->c));
			l->used = old->used;
			o->bytes -= leaf_bytes(old->cap);
			free(old);
			o->root = l;
		}
		struct inner *n = inner_new(o);
		if (!n)
			return -ENOMEM;
		n->child[0] = o->root;
		n->used = 1;
		o->root = n;
		o->height++;
	}
	while (!o->root && i >= span(o->height))
		o->height++;
	void **slot = &o->root;
	for (unsigned h = o->height; h > 0; h--) {
		if (!*slot) {
			*slot = inner_new(o);
			if (!*slot)
				return -ENOMEM;
		}
		struct inner *in = *slot;
		unsigned k = (i >> (LEAF_BITS + INNER_BITS * (h - 1))) & (INNER_N - 1);
		if (!in->child[k] && h == 1) {
			in->child[k] = leaf_new(o, LEAF_N);
			if (!in->child[k])
				return -ENOMEM;
			in->used++;
		} else if (!in->child[k]) {
			in->used++;
		}
		slot = &in->child[k];
	}
	uint64_t j = i & (LEAF_N - 1);
	struct leaf *l = *slot;
	if (!l || j >= l->cap) {
		/* Only the root of a small object is ever short: size it to the next power. */
		uint32_t cap = l ? l->cap : 0, want = 4;
		while (want <= j)
			want *= 2;
		if (want < cap)
			want = cap;
		struct leaf *nl = leaf_new(o, want);
		if (!nl)
			return -ENOMEM;
		if (l) {
			memcpy(nl->c, l->c, l->cap * sizeof(*l->c));
			nl->used = l->used;
			o->bytes -= leaf_bytes(l->cap);
			free(l);
		}
		*slot = l = nl;
	}
	if (!l->c[j].loc.size) {
		l->used++;
		o->count++;
	}
	l->c[j] = *c;
	if (i + 1 > o->end)
		o->end = i + 1;
	return 0;
}

/* Cut indices >= n from the subtree at height h covering [base, base + span(h)). */
static void cut_tree(struct bc_object *o, void **slot, unsigned h, uint64_t base, uint64_t n)
{
	if (!*slot || n >= base + span(h))
		return;
	if (n <= base) {
		o->count -= free_tree(o, *slot, h);
		*slot = NULL;
		return;
	}
	if (!h) {
		struct leaf *l = *slot;
		for (uint64_t j = n - base; j < l->cap; j++) {
			if (l->c[j].loc.size) {
				l->used--;
				o->count--;
			}
			memset(&l->c[j], 0, sizeof(l->c[j]));
		}
		return;
	}
	struct inner *in = *slot;
	uint64_t step = span(h - 1);
	for (unsigned k = 0; k < INNER_N; k++) {
		if (!in->child[k])
			continue;
		cut_tree(o, &in->child[k], h - 1, base + k * step, n);
		if (!in->child[k])
			in->used--;
	}
}

void bc_object_cut(struct bc_object *o, uint64_t n)
{
	if (n >= o->end)
		return;
	cut_tree(o, &o->root, o->height, 0, n);
	o->end = n;
	if (!o->count) {
		o->count -= free_tree(o, o->root, o->height);
		o->root = NULL;
		o->height = 0;
		o->end = 0;
	}
}

/* The first present chunk at index >= *i in the subtree; updates *i. */
static struct bc_chunk *next_in(void *node, unsigned h, uint64_t base, uint64_t *i)
{
	if (!node || *i >= base + span(h))
		return NULL;
	if (!h) {
		struct leaf *l = node;
		for (uint64_t j = *i > base ? *i - base : 0; j < l->cap; j++)
			if (l->c[j].loc.size) {
				*i = base + j;
				return &l->c[j];
			}
		return NULL;
	}
	struct inner *in = node;
	uint64_t step = span(h - 1);
	unsigned k = *i > base ? (unsigned)((*i - base) / step) : 0;
	for (; k < INNER_N; k++) {
		struct bc_chunk *c = next_in(in->child[k], h - 1, base + k * step, i);
		if (c)
			return c;
	}
	return NULL;
}

struct bc_chunk *bc_object_next(struct bc_object *o, uint64_t *i)
{
	if (!o->root || *i >= o->end)
		return NULL;
	return next_in(o->root, o->height, 0, i);
}

void bc_object_release(struct bc_object *o)
{
	free_tree(o, o->root, o->height);
	o->root = NULL;
	o->height = 0;
	o->count = 0;
	o->end = 0;
}
