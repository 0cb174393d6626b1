/* SPDX-License-Identifier: MIT */
/*
 * The keydir: the in-memory, ordered map from (space, key) to where the key's newest
 * record lives, plus the table of chunked objects. Ordered so that a prefix with k keys
 * lists in O(k + log N). Not thread-safe: the db guards it with one rwlock (readers
 * share it; writers and merge take it briefly to publish).
 *
 * Ordering: by space, then key bytes as unsigned, a proper prefix first.
 */
#ifndef BC_ENGINE_KEYDIR_H
#define BC_ENGINE_KEYDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>

/* Where a record lives: file is an index into the db's file table, not a file id. */
struct bc_loc {
	uint32_t file;
	uint32_t offset;
	uint32_t size; /* whole record, header included */
};

static inline bool bc_loc_eq(const struct bc_loc *a, const struct bc_loc *b)
{
	return a->file == b->file && a->offset == b->offset && a->size == b->size;
}

/* One chunk of an object. */
struct bc_chunk {
	struct bc_loc loc; /* loc.size is never 0 for a chunk that exists */
	uint32_t dlen; /* data bytes in the record; the rest of the chunk reads as zeros */
};

/* A chunked value. Owned by the object table; its chunks live in a sparse map
 * (chunkmap.c) reached only through the bc_object_* functions below. */
struct bc_object {
	uint64_t id;
	uint64_t size; /* logical size, from the newest LINK */
	uint32_t links; /* keys whose entry points here (0 or 1 once open is done) */
	uint8_t height; /* levels of the chunk map above its leaves */
	uint64_t end; /* one past the highest index that may hold a chunk */
	uint64_t count; /* chunks present */
	size_t bytes; /* memory held by the chunk map */
	void *root;
};

#define BC_KV_OBJECT 0x01u /* the entry is a LINK to obj */

/* A keydir entry's value, copied in and out. */
struct bc_kval {
	struct bc_loc loc; /* the PUT or LINK record */
	uint32_t expire_s; /* saturated to UINT32_MAX; 0 = never */
	uint16_t mlen; /* metadata bytes in the record */
	uint8_t flags; /* BC_KV_* */
	struct bc_object *obj; /* with BC_KV_OBJECT */
};

struct bc_keydir;

int bc_keydir_new(struct bc_keydir **out);
/* Frees the keydir (not the objects it points to). Accepts NULL. */
void bc_keydir_free(struct bc_keydir *kd);

/* Look up; copies the value to *out (may be NULL). */
bool bc_keydir_get(const struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		   struct bc_kval *out);
/*
 * Insert or replace (copies key and value). When the key existed, *old receives the old
 * value and *replaced is true. Returns 0, -EINVAL when space > 255 or klen > BC_MAX_KEY,
 * or -ENOMEM (then nothing changed).
 */
int bc_keydir_put(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		  const struct bc_kval *v, struct bc_kval *old, bool *replaced);
/*
 * Insert a key greater than every key in kd (copies key and value), filling nodes almost
 * completely: how a load in key order builds the keydir, several times faster than puts.
 * Returns 0; -ERANGE when some key in kd is not smaller (then nothing changed); -EINVAL as
 * put; or -ENOMEM (then nothing changed).
 */
int bc_keydir_append(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		     const struct bc_kval *v);
/*
 * Point the key at *to if it points at *from now (merge moving a record); *moved says
 * whether it did. Returns 0, -EINVAL as put, or -ENOMEM (then nothing changed and *moved is
 * false). ENOMEM needs a location that encodes longer than the current one (a leaf may
 * have to split), which a move changing only the offset, or the file within [0, 128) or
 * within [128, 16384), is not.
 */
int bc_keydir_move(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		   const struct bc_loc *from, const struct bc_loc *to, bool *moved);
/* Remove; returns whether the key was there and copies its value to *old (may be NULL). */
bool bc_keydir_remove(struct bc_keydir *kd, unsigned space, const void *key, size_t klen,
		      struct bc_kval *old);

size_t bc_keydir_count(const struct bc_keydir *kd);
/* Bytes of memory the keydir holds (nodes, entries, keys). */
size_t bc_keydir_memory(const struct bc_keydir *kd);
/*
 * Verify the tree's invariants (order, separators, fill, leaf chain, counts); for tests.
 * Returns 0, or -EBADMSG with *why (may be NULL) naming the first broken one, or -ENOMEM.
 */
int bc_keydir_check(const struct bc_keydir *kd, const char **why);
/* For tests: the n-th allocation kd makes from now on fails (0: none). */
void bc_keydir_fail_alloc(struct bc_keydir *kd, unsigned n);

/*
 * Return nonzero to stop the scan (the value is passed back). key is valid during the call,
 * which must not change the keydir.
 */
typedef int (*bc_keydir_visit_fn)(void *ctx, unsigned space, const uint8_t *key, size_t klen,
				  const struct bc_kval *v);
/*
 * Visit, in order, the entries of space whose key is >= start (> start when exclusive),
 * until visit returns nonzero or the space ends. O(log N) to start, O(1) per entry.
 */
int bc_keydir_scan(const struct bc_keydir *kd, unsigned space, const void *start, size_t slen,
		   bool exclusive, bc_keydir_visit_fn visit, void *ctx);
/* Visit every entry of every space in order (for merge and stats); same contract. */
int bc_keydir_scan_all(const struct bc_keydir *kd, bc_keydir_visit_fn visit, void *ctx);

/* The object table: objects by id. */
struct bc_objtab;
int bc_objtab_new(struct bc_objtab **out);
/* Frees the table and every object in it. Accepts NULL. */
void bc_objtab_free(struct bc_objtab *t);
struct bc_object *bc_objtab_find(const struct bc_objtab *t, uint64_t id);
/* Find or create (size 0, no chunks). Returns NULL on ENOMEM. */
struct bc_object *bc_objtab_get(struct bc_objtab *t, uint64_t id);
/* Remove from the table and free. */
void bc_objtab_remove(struct bc_objtab *t, struct bc_object *o);
size_t bc_objtab_count(const struct bc_objtab *t);
/* Bytes held by the table, its objects and their chunk arrays; O(objects). */
size_t bc_objtab_memory(const struct bc_objtab *t);
/* Visit every object (order unspecified); the callback may not add or remove objects. */
int bc_objtab_each(const struct bc_objtab *t, int (*fn)(void *ctx, struct bc_object *o), void *ctx);
/* Remove and free every object for which drop returns true. */
void bc_objtab_sweep(struct bc_objtab *t, bool (*drop)(void *ctx, struct bc_object *o), void *ctx);

/* Chunk i, or NULL when it is a hole (reads as zeros). */
struct bc_chunk *bc_object_chunk(struct bc_object *o, uint64_t i);
/* Set chunk i (c->loc.size must not be 0). -EFBIG past the largest value, -ENOMEM. */
int bc_object_set(struct bc_object *o, uint64_t i, const struct bc_chunk *c);
/* Remove every chunk at index >= n (they become holes) and free what held them. */
void bc_object_cut(struct bc_object *o, uint64_t n);
/* The present chunk with the smallest index >= *i (set to it), or NULL. */
struct bc_chunk *bc_object_next(struct bc_object *o, uint64_t *i);
/* Free every chunk of o (the object itself stays). */
void bc_object_release(struct bc_object *o);

#endif /* BC_ENGINE_KEYDIR_H */
