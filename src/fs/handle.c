// SPDX-License-Identifier: MIT
/*
 * File data: reads go straight to the engine (bc_read, one pread for a small file);
 * writes go through a per-inode dirty buffer of at most BCFS_DIRTY_CHUNK bytes holding one
 * contiguous range, so a run of small appends or rewrites of nearby bytes becomes one
 * bc_write. A write that does not touch or extend the buffered range, or that is large,
 * first writes the buffer out. All buffers together stay under fs->dirty_max: past it a
 * write goes straight to the engine. Buffers are written on flush (every close), release,
 * fsync, truncate, before a read of the same inode, and when the namespace changes under
 * an open file. The mtime of buffered writes is kept in the inode and written to the
 * metadata on flush. Every write here keeps the inode's metadata cache exact (inode.c), and
 * the first write of a created file (or its flush) carries the file's whole metadata, so
 * `create; write; close` appends one record.
 */
#include "bcfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS (sizeof(((struct bcfs *)0)->handles) / sizeof(struct bcfs_handle *))

struct bcfs_handle *bcfs_handle_new(struct bcfs *fs, struct bcfs_inode *in)
{
	struct bcfs_handle *h = calloc(1, sizeof(*h));
	size_t b;

	if (!h)
		return NULL;
	h->inode = in;
	h->refs = 1;
	if (in)
		bcfs_inode_open(fs, in);
	pthread_mutex_lock(&fs->handles_lock);
	h->id = ++fs->next_fh;
	b = h->id % NBUCKETS;
	h->next = fs->handles[b];
	if (h->next)
		h->next->prev = h;
	fs->handles[b] = h;
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

struct bcfs_handle *bcfs_handle_get(struct bcfs *fs, uint64_t fh)
{
	struct bcfs_handle *h;

	pthread_mutex_lock(&fs->handles_lock);
	for (h = fs->handles[fh % NBUCKETS]; h; h = h->next)
		if (h->id == fh) {
			h->refs++;
			break;
		}
	pthread_mutex_unlock(&fs->handles_lock);
	return h;
}

void bcfs_handle_put(struct bcfs *fs, struct bcfs_handle *h)
{
	bool last;

	pthread_mutex_lock(&fs->handles_lock);
	last = --h->refs == 0;
	if (last) {
		if (h->prev)
			h->prev->next = h->next;
		else
			fs->handles[h->id % NBUCKETS] = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	pthread_mutex_unlock(&fs->handles_lock);
	if (!last)
		return;
	if (h->inode)
		bcfs_inode_release(fs, h->inode);
	free(h->text);
	free(h);
}

void bcfs_handle_free(struct bcfs *fs, struct bcfs_handle *h)
{
	bcfs_handle_put(fs, h);
}

void bcfs_handle_free_all(struct bcfs *fs)
{
	for (size_t b = 0; b < NBUCKETS; b++)
		while (fs->handles[b]) {
			fs->handles[b]->refs = 1; /* no request is running any more */
			bcfs_handle_put(fs, fs->handles[b]);
		}
}

/* Encode the metadata in's next record carries: the cached one with the pending mtime
 * (in->lock held, ns held). The caller frees *buf. */
static int record_meta(struct bcfs *fs, struct bcfs_inode *in, uint8_t **buf, size_t *len)
{
	struct bcfs_meta m;
	int n;

	memset(&m, 0, sizeof(m));
	n = bcfs_inode_meta_locked(fs, in, &m, NULL);
	if (n)
		return n;
	if (in->mtime_dirty)
		m.mtime_ns = m.ctime_ns = in->mtime_ns;
	*buf = malloc(bcfs_meta_size(&m) + 1);
	n = *buf ? bcfs_meta_encode(&m, *buf, bcfs_meta_size(&m) + 1) : -ENOMEM;
	bcfs_meta_release(&m);
	if (n < 0) {
		free(*buf);
		*buf = NULL;
		return n;
	}
	*len = (size_t)n;
	return 0;
}

/*
 * After an engine write to in's key that failed: the record may be partly written, so the
 * cache no longer says what is stored. A pending file that now has a record stops being
 * pending (in->lock held, ns held).
 */
static void write_failed(struct bcfs *fs, struct bcfs_inode *in)
{
	if (in->pending) {
		if (bcfs_key_exists(fs, in->space, in->key, in->klen) == 0)
			return; /* nothing written: still pending, cache still right */
		bcfs_inode_set_pending_locked(fs, in, false);
	}
	bcfs_inode_meta_drop_locked(in);
}

/*
 * Write len bytes at off to in's key (in->lock held, ns held). With with_meta, or when in
 * has no record yet (pending: its first record must carry mode and owner), the record
 * also carries the metadata with the pending mtime, which is then written. len 0 with a
 * pending file writes its empty record. Keeps the metadata cache exact.
 */
static int write_range(struct bcfs *fs, struct bcfs_inode *in, uint64_t off, const void *buf,
		       size_t len, bool with_meta)
{
	uint8_t *mb = NULL;
	size_t mlen = 0;
	int rc;

	with_meta = with_meta || in->pending;
	if (!with_meta) {
		rc = bc_write(fs->db, in->space, in->key, in->klen, off, buf, len);
	} else {
		rc = record_meta(fs, in, &mb, &mlen);
		if (rc)
			return rc;
		if (in->pending && !len)
			rc = bc_put_ex(fs->db, in->space, in->key, in->klen, "", 0, mb, mlen, 0);
		else
			rc = bc_write_meta(fs->db, in->space, in->key, in->klen, off, buf, len, mb,
					   mlen);
		free(mb);
	}
	if (rc) {
		write_failed(fs, in);
		return rc;
	}
	in->meta_gen++; /* a load that raced this write must not be cached */
	if (in->have_meta && len && off + len > in->size)
		in->size = off + len;
	if (with_meta) {
		if (in->mtime_dirty && in->have_meta) {
			in->meta.mtime_ns = in->meta.ctime_ns = in->mtime_ns;
			in->meta_gen++;
		}
		in->mtime_dirty = false;
		bcfs_inode_set_pending_locked(fs, in, false);
	}
	return 0;
}

/* Write the dirty range (in->lock held, ns held). */
static int flush_data(struct bcfs *fs, struct bcfs_inode *in)
{
	int rc;

	if (!in->dlen)
		return 0;
	rc = write_range(fs, in, in->doff, in->dbuf, in->dlen, false);
	if (rc)
		return rc;
	atomic_fetch_sub(&fs->dirty_bytes, in->dlen);
	in->dlen = 0;
	free(in->dbuf);
	in->dbuf = NULL;
	return 0;
}

/* Write the pending mtime into the metadata (in->lock held, ns held). */
static int flush_meta(struct bcfs *fs, struct bcfs_inode *in)
{
	struct bcfs_meta m;
	int rc;

	if (!in->mtime_dirty)
		return 0;
	memset(&m, 0, sizeof(m));
	rc = bcfs_inode_meta_locked(fs, in, &m, NULL);
	if (rc)
		return rc;
	m.mtime_ns = in->mtime_ns;
	m.ctime_ns = in->mtime_ns;
	rc = bcfs_data_meta_locked(fs, in, &m);
	bcfs_meta_release(&m);
	return rc;
}

int bcfs_data_meta_locked(struct bcfs *fs, struct bcfs_inode *in, const struct bcfs_meta *m)
{
	int rc = in->pending ? 0 : bcfs_meta_store(fs, in->space, in->key, in->klen, m);

	if (rc) {
		bcfs_inode_meta_drop_locked(in);
		return rc;
	}
	in->mtime_dirty = false;
	bcfs_inode_meta_set_locked(in, m, in->size);
	return 0;
}

static void drop_dirty(struct bcfs *fs, struct bcfs_inode *in)
{
	atomic_fetch_sub(&fs->dirty_bytes, in->dlen);
	in->dlen = 0;
	free(in->dbuf);
	in->dbuf = NULL;
	in->mtime_dirty = false;
}

int bcfs_data_flush(struct bcfs *fs, struct bcfs_inode *in)
{
	int rc;

	pthread_mutex_lock(&in->lock);
	if (in->gone) {
		rc = 0; /* nothing left to write to */
		drop_dirty(fs, in);
		bcfs_inode_set_pending_locked(fs, in, false);
	} else if (in->dlen && (in->mtime_dirty || in->pending)) {
		/* Data and the new mtime in one record (the first one of a created file). */
		rc = write_range(fs, in, in->doff, in->dbuf, in->dlen, true);
		if (!rc)
			drop_dirty(fs, in);
	} else if (in->pending) {
		rc = write_range(fs, in, 0, NULL, 0, true); /* created, never written */
	} else {
		rc = flush_data(fs, in);
		if (!rc)
			rc = flush_meta(fs, in);
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int bcfs_data_flush_ns(struct bcfs *fs, struct bcfs_inode *in)
{
	bool dirty;
	int rc;

	pthread_mutex_lock(&in->lock);
	dirty = in->dlen || in->mtime_dirty || in->pending;
	pthread_mutex_unlock(&in->lock);
	if (!dirty)
		return 0;
	pthread_rwlock_rdlock(&fs->ns);
	rc = bcfs_data_flush(fs, in);
	pthread_rwlock_unlock(&fs->ns);
	return rc;
}

int bcfs_data_close(struct bcfs *fs, struct bcfs_inode *in)
{
	bool unwritten;

	/* `cmd >file` closes a dup of the new file before writing to it: its record can wait
	 * for the data, or for the release that follows the last close. */
	pthread_mutex_lock(&in->lock);
	unwritten = in->pending && !in->dlen && !in->mtime_dirty;
	pthread_mutex_unlock(&in->lock);
	return unwritten ? 0 : bcfs_data_flush_ns(fs, in);
}

int bcfs_data_write(struct bcfs *fs, struct bcfs_inode *in, const char *buf, size_t len,
		    uint64_t off)
{
	int rc = 0;

	if (off > BC_MAX_VALUE || len > BC_MAX_VALUE - off)
		return -EFBIG;
	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&in->lock);
	if (in->gone) {
		rc = -ESTALE;
		goto out;
	}
	in->mtime_dirty = true;
	in->mtime_ns = bcfs_now_ns();
	if (in->dlen && off >= in->doff && off <= in->doff + in->dlen &&
	    off + len - in->doff <= BCFS_DIRTY_CHUNK) {
		size_t at = (size_t)(off - in->doff), end = at + len;

		memcpy(in->dbuf + at, buf, len);
		if (end > in->dlen) {
			atomic_fetch_add(&fs->dirty_bytes, end - in->dlen);
			in->dlen = end;
		}
		goto out;
	}
	rc = flush_data(fs, in);
	if (rc)
		goto out;
	if (len < BCFS_DIRTY_CHUNK && atomic_load(&fs->dirty_bytes) + len <= fs->dirty_max) {
		in->dbuf = malloc(BCFS_DIRTY_CHUNK);
		if (in->dbuf) {
			memcpy(in->dbuf, buf, len);
			in->doff = off;
			in->dlen = len;
			atomic_fetch_add(&fs->dirty_bytes, len);
			goto out;
		}
	}
	rc = write_range(fs, in, off, buf, len, false);
out:
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&fs->ns);
	return rc;
}

int bcfs_data_read(struct bcfs *fs, struct bcfs_inode *in, char *buf, size_t len, uint64_t off,
		   size_t *got)
{
	unsigned space;
	char *key;
	size_t klen;
	int rc;
	bool dirty;

	pthread_mutex_lock(&in->lock);
	dirty = in->dlen != 0 || in->pending; /* a created file gets its record first */
	pthread_mutex_unlock(&in->lock);
	if (dirty) {
		rc = bcfs_data_flush_ns(fs, in);
		if (rc)
			return rc;
	}
	/* ns keeps a rename from giving the key to another file between reading the inode's
	 * key and reading its bytes (rename-over moves both keys in one engine batch, and the
	 * inodes after it, under ns held for writing). */
	pthread_rwlock_rdlock(&fs->ns);
	rc = bcfs_inode_key(in, &space, &key, &klen);
	if (!rc) {
		rc = bc_read(fs->db, space, key, klen, off, buf, len, got);
		free(key);
	}
	pthread_rwlock_unlock(&fs->ns);
	return rc;
}

int bcfs_data_truncate(struct bcfs *fs, struct bcfs_inode *in, uint64_t size)
{
	int rc;

	if (size > BC_MAX_VALUE)
		return -EFBIG;
	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&in->lock);
	rc = in->gone ? -ESTALE : flush_data(fs, in);
	if (!rc && in->pending)
		rc = write_range(fs, in, 0, NULL, 0, true); /* bc_truncate needs the record */
	if (!rc)
		rc = bc_truncate(fs->db, in->space, in->key, in->klen, size);
	if (rc) {
		if (rc != -ESTALE)
			bcfs_inode_meta_drop_locked(in);
	} else {
		in->size = size;
		in->meta_gen++;
		in->mtime_dirty = true;
		in->mtime_ns = bcfs_now_ns();
	}
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&fs->ns);
	return rc;
}
