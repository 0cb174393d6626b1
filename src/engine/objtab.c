// SPDX-License-Identifier: MIT
/*
 * The object table of keydir.h: an open-addressing hash map from a 64-bit object id to
 * its struct bc_object, with linear probing and backward-shift deletion (no tombstones),
 * so a lookup touches one or two cache lines of pointers and the table never degrades
 * after deletes. It grows at 3/4 load and shrinks under 1/8. Objects are allocated one
 * by one (their address is what keydir entries hold); their chunks are in chunkmap.c.
 */
#include "keydir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SLOTS 16u

struct bc_objtab {
	struct bc_object **slot; /* NULL: empty */
	size_t cap; /* power of two */
	size_t count;
	unsigned shift; /* 64 - log2(cap) */
};

static inline size_t home(const struct bc_objtab *t, uint64_t id)
{
	return (size_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> t->shift);
}

static unsigned log2_of(size_t cap)
{
	unsigned b = 0;

	while (((size_t)1 << b) < cap)
		b++;
	return b;
}

/* Rehash into a table of ncap slots; -ENOMEM leaves the table as it was. */
static int resize(struct bc_objtab *t, size_t ncap)
{
	struct bc_object **ns = calloc(ncap, sizeof(*ns));
	struct bc_objtab nt = {.slot = ns, .cap = ncap, .count = t->count};

	if (!ns)
		return -ENOMEM;
	nt.shift = 64 - log2_of(ncap);
	for (size_t i = 0; i < t->cap; i++) {
		struct bc_object *o = t->slot[i];
		if (!o)
			continue;
		size_t j = home(&nt, o->id);
		while (ns[j])
			j = (j + 1) & (ncap - 1);
		ns[j] = o;
	}
	free(t->slot);
	*t = nt;
	return 0;
}

int bc_objtab_new(struct bc_objtab **out)
{
	struct bc_objtab *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->slot = calloc(MIN_SLOTS, sizeof(*t->slot));
	if (!t->slot) {
		free(t);
		return -ENOMEM;
	}
	t->cap = MIN_SLOTS;
	t->shift = 64 - log2_of(MIN_SLOTS);
	*out = t;
	return 0;
}

static void object_free(struct bc_object *o)
{
	bc_object_release(o);
	free(o);
}

void bc_objtab_free(struct bc_objtab *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i])
			object_free(t->slot[i]);
	free(t->slot);
	free(t);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t probe(const struct bc_objtab *t, uint64_t id)
{
	size_t i = home(t, id);

	while (t->slot[i] && t->slot[i]->id != id)
		i = (i + 1) & (t->cap - 1);
	return i;
}

struct bc_object *bc_objtab_find(const struct bc_objtab *t, uint64_t id)
{
	return t->slot[probe(t, id)];
}

struct bc_object *bc_objtab_get(struct bc_objtab *t, uint64_t id)
{
	size_t i = probe(t, id);

	if (t->slot[i])
		return t->slot[i];
	if ((t->count + 1) * 4 > t->cap * 3) {
		if (resize(t, t->cap * 2))
			return NULL;
		i = probe(t, id);
	}
	struct bc_object *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->id = id;
	t->slot[i] = o;
	t->count++;
	return o;
}

/* Empty slot i and shift the rest of its cluster back so every probe still finds its key. */
static void unslot(struct bc_objtab *t, size_t i)
{
	size_t mask = t->cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!t->slot[j])
			break;
		size_t h = home(t, t->slot[j]->id);
		/* j's entry may move to i iff its home is not in (i, j] cyclically */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			t->slot[i] = t->slot[j];
			i = j;
		}
	}
	t->slot[i] = NULL;
	t->count--;
}

static void maybe_shrink(struct bc_objtab *t)
{
	if (t->cap > MIN_SLOTS && t->count * 8 < t->cap)
		(void)resize(t, t->cap / 2); /* failing to shrink is harmless */
}

void bc_objtab_remove(struct bc_objtab *t, struct bc_object *o)
{
	size_t i = probe(t, o->id);

	if (t->slot[i] == o) {
		unslot(t, i);
		maybe_shrink(t);
	}
	object_free(o);
}

size_t bc_objtab_count(const struct bc_objtab *t)
{
	return t->count;
}

/* O(objects): chunk arrays are sized by their objects, which do not know the table. */
size_t bc_objtab_memory(const struct bc_objtab *t)
{
	size_t m = sizeof(*t) + t->cap * sizeof(*t->slot);

	for (size_t i = 0; i < t->cap; i++) {
		const struct bc_object *o = t->slot[i];
		if (o)
			m += sizeof(*o) + o->bytes;
	}
	return m;
}

int bc_objtab_each(const struct bc_objtab *t, int (*fn)(void *ctx, struct bc_object *o), void *ctx)
{
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->slot[i])
			continue;
		int rc = fn(ctx, t->slot[i]);
		if (rc)
			return rc;
	}
	return 0;
}

void bc_objtab_sweep(struct bc_objtab *t, bool (*drop)(void *ctx, struct bc_object *o), void *ctx)
{
	size_t mask = t->cap - 1, start = 0;

	if (!t->count)
		return;
	/*
	 * Start just past an empty slot and go once round. Backward shifts only move entries
	 * of the cluster being walked, from ahead of i to i, so re-examining slot i after a
	 * removal visits every object exactly once.
	 */
	while (t->slot[start])
		start++;
	size_t i = (start + 1) & mask;
	for (size_t seen = 0; seen < t->cap - 1;) {
		struct bc_object *o = t->slot[i];
		if (o && drop(ctx, o)) {
			unslot(t, i);
			object_free(o);
			continue;
		}
		i = (i + 1) & mask;
		seen++;
	}
	maybe_shrink(t);
}
