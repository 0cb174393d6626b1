// SPDX-License-Identifier: MIT
/*
 * How one record changes the in-memory state: the keydir, the object table and each
 * file's live-byte count. Replay at open (from hints or scans) and the write path both
 * publish through bc_apply, so a store's state after a restart is by construction the
 * state it had before. Callers hold kd_lock for writing. See docs/DESIGN.md "The model".
 */
#include "db.h"
#include "grow.h"
#include "record.h"

#include <errno.h>
#include <stdlib.h>

uint32_t bc_effect_record_size(const bc_effect *e)
{
	return bc_record_size(e->klen, e->mlen, e->vlen);
}

static void loc_dead(struct bc_db *db, const struct bc_loc *loc)
{
	if (loc->file < db->nslots && db->files[loc->file]) {
		struct bc_file *f = db->files[loc->file];
		f->live = f->live >= loc->size ? f->live - loc->size : 0;
	}
}

static void loc_live(struct bc_db *db, const struct bc_loc *loc)
{
	db->files[loc->file]->live += loc->size;
}

static int dropped_add(struct bc_dropped *d, struct bc_object *o)
{
	if (!d)
		return 0;
	struct bc_object **v = bc_grow(d->v, &d->cap, d->n + 1, sizeof(*v), 8);
	if (!v)
		return -ENOMEM;
	d->v = v;
	d->v[d->n++] = o;
	return 0;
}

/* The old value of a key went away: its record is dead, its object loses a link. */
static int old_gone(struct bc_db *db, const struct bc_kval *old, struct bc_dropped *d)
{
	loc_dead(db, &old->loc);
	if (old->flags & BC_KV_OBJECT) {
		struct bc_object *o = old->obj;
		if (o->links)
			o->links--;
		if (!o->links)
			return dropped_add(d, o);
	}
	return 0;
}

/* Account every chunk of o at index >= from as dead. */
static void chunks_dead(struct bc_db *db, struct bc_object *o, uint64_t from)
{
	struct bc_chunk *c;
	for (uint64_t i = from; (c = bc_object_next(o, &i)); i++)
		loc_dead(db, &c->loc);
}

void bc_object_drop(struct bc_db *db, struct bc_object *o)
{
	chunks_dead(db, o, 0);
	bc_objtab_remove(db->objs, o);
}

void bc_objects_release(struct bc_db *db, struct bc_dropped *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct bc_object *o = d->v[i];
		/* The same object may be listed twice, or relinked later in the batch. */
		if (o->links || !bc_objtab_find(db->objs, o->id))
			continue;
		bc_object_drop(db, o);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

static void cut_chunks(struct bc_db *db, struct bc_object *o, uint64_t size)
{
	uint64_t keep = (size + BC_CHUNK_SIZE - 1) / BC_CHUNK_SIZE;
	chunks_dead(db, o, keep);
	bc_object_cut(o, keep);
}

/*
 * A record's effect has two sides. The object side (what LINK, CHUNK and TRUNC do to the
 * object table, the object id counter and the live bytes of chunks) never reads the
 * keydir; the key side (the keydir entry, the live bytes of the records it points at, link
 * counts) never reads the object table beyond the LINK's object, whose pointer stays valid
 * while replay runs (nothing frees objects before the sweep). So within one file, applying
 * every object side in record order and the key sides in any order that keeps the record
 * order of each key gives the same state as applying records one by one: bc_bulk (bulk.c)
 * relies on this.
 */
int bc_apply_object(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object **obj)
{
	struct bc_object *o;

	*obj = NULL;
	switch (e->type) {
	case BC_REC_LINK:
		o = bc_objtab_get(db->objs, e->object);
		if (!o)
			return -ENOMEM;
		if (e->object >= db->next_object)
			db->next_object = e->object + 1;
		o->size = e->size;
		*obj = o;
		return 0;
	case BC_REC_CHUNK: {
		o = bc_objtab_get(db->objs, e->object);
		if (!o)
			return -ENOMEM;
		if (e->object >= db->next_object)
			db->next_object = e->object + 1;
		struct bc_chunk *c = bc_object_chunk(o, e->index);
		if (c)
			loc_dead(db, &c->loc);
		struct bc_chunk nc = {.loc = {slot, e->offset, bc_effect_record_size(e)},
				      .dlen = e->dlen};
		int rc = bc_object_set(o, e->index, &nc);
		if (rc)
			return rc;
		loc_live(db, &nc.loc);
		return 0;
	}
	case BC_REC_TRUNC:
		o = bc_objtab_find(db->objs, e->object);
		if (o)
			cut_chunks(db, o, e->size);
		return 0;
	default:
		return 0;
	}
}

/* The keydir value a PUT or LINK (to obj) at (slot, e->offset) gives its key. */
static struct bc_kval kval_of(uint32_t slot, const bc_effect *e, struct bc_object *obj)
{
	struct bc_kval v = {.loc = {slot, e->offset, bc_effect_record_size(e)},
			    .expire_s = bc_expire32(e->expire_s),
			    .mlen = e->mlen};

	if (e->type == BC_REC_LINK) {
		v.flags = BC_KV_OBJECT;
		v.obj = obj;
	}
	return v;
}

int bc_apply_key(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object *obj,
		 struct bc_dropped *dropped)
{
	struct bc_kval v = kval_of(slot, e, obj), old;
	bool replaced = false;
	int rc;

	switch (e->type) {
	case BC_REC_PUT:
	case BC_REC_LINK:
		if (v.obj)
			v.obj->links++;
		rc = bc_keydir_put(db->kd, e->space, e->key, e->klen, &v, &old, &replaced);
		if (rc) {
			if (v.obj)
				v.obj->links--;
			return rc;
		}
		loc_live(db, &v.loc);
		return replaced ? old_gone(db, &old, dropped) : 0;
	case BC_REC_DELETE:
		if (bc_keydir_remove(db->kd, e->space, e->key, e->klen, &old))
			return old_gone(db, &old, dropped);
		return 0;
	default:
		return 0;
	}
}

int bc_apply_append(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_object *obj)
{
	struct bc_kval v = kval_of(slot, e, obj);
	int rc = bc_keydir_append(db->kd, e->space, e->key, e->klen, &v);

	if (rc)
		return rc;
	if (v.obj)
		v.obj->links++;
	loc_live(db, &v.loc);
	return 0;
}

int bc_apply(struct bc_db *db, uint32_t slot, const bc_effect *e, struct bc_dropped *dropped)
{
	struct bc_object *o;
	int rc = bc_apply_object(db, slot, e, &o);

	if (rc)
		return rc;
	return bc_apply_key(db, slot, e, o, dropped);
}

/* After replay: unlinked objects are garbage; chunks past an object's end are too. */
static bool sweep_one(void *ctx, struct bc_object *o)
{
	struct bc_db *db = ctx;
	if (!o->links) {
		chunks_dead(db, o, 0);
		return true;
	}
	cut_chunks(db, o, o->size);
	return false;
}

void bc_apply_sweep(struct bc_db *db)
{
	/* Damage in the newest file: every object known now may have lost a chunk there. */
	if (db->suspect_below == UINT64_MAX)
		db->suspect_below = db->next_object;
	bc_objtab_sweep(db->objs, sweep_one, db);
}
