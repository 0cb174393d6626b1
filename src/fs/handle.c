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
 * metadata on flush.
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

/* Write the dirty range (in->lock held, ns held). */
static int flush_data(struct bcfs *fs, struct bcfs_inode *in)
{
	int rc;

	if (!in->dlen)
		return 0;
	rc = bc_write(fs->db, in->space, in->key, in->klen, in->doff, in->dbuf, in->dlen);
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
	rc = bcfs_meta_load(fs, in->space, in->key, in->klen, &m, NULL);
	if (rc)
		return rc;
	m.mtime_ns = in->mtime_ns;
	m.ctime_ns = in->mtime_ns;
	rc = bcfs_meta_store(fs, in->space, in->key, in->klen, &m);
	bcfs_meta_release(&m);
	if (!rc)
		in->mtime_dirty = false;
	return rc;
}

/* Data and the new mtime in one engine write (in->lock held, ns held). */
static int flush_both(struct bcfs *fs, struct bcfs_inode *in)
{
	struct bcfs_meta m;
	uint8_t *buf;
	int rc, n;

	rc = bcfs_meta_load(fs, in->space, in->key, in->klen, &m, NULL);
	if (rc)
		return rc;
	m.mtime_ns = in->mtime_ns;
	m.ctime_ns = in->mtime_ns;
	buf = malloc(bcfs_meta_size(&m) + 1);
	n = buf ? bcfs_meta_encode(&m, buf, bcfs_meta_size(&m) + 1) : -ENOMEM;
	bcfs_meta_release(&m);
	if (n >= 0)
		n = bc_write_meta(fs->db, in->space, in->key, in->klen, in->doff, in->dbuf,
				  in->dlen, buf, (size_t)n);
	free(buf);
	if (n < 0)
		return n;
	atomic_fetch_sub(&fs->dirty_bytes, in->dlen);
	in->dlen = 0;
	free(in->dbuf);
	in->dbuf = NULL;
	in->mtime_dirty = false;
	return 0;
}

int bcfs_data_flush(struct bcfs *fs, struct bcfs_inode *in)
{
	int rc;

	pthread_mutex_lock(&in->lock);
	if (in->gone) {
		rc = 0; /* nothing left to write to */
		atomic_fetch_sub(&fs->dirty_bytes, in->dlen);
		in->dlen = 0;
		free(in->dbuf);
		in->dbuf = NULL;
		in->mtime_dirty = false;
	} else if (in->dlen && in->mtime_dirty) {
		rc = flush_both(fs, in);
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
	dirty = in->dlen || in->mtime_dirty;
	pthread_mutex_unlock(&in->lock);
	if (!dirty)
		return 0;
	pthread_rwlock_rdlock(&fs->ns);
	rc = bcfs_data_flush(fs, in);
	pthread_rwlock_unlock(&fs->ns);
	return rc;
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
	rc = bc_write(fs->db, in->space, in->key, in->klen, off, buf, len);
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
	int rc, tries = 0;
	bool dirty;

	pthread_mutex_lock(&in->lock);
	dirty = in->dlen != 0;
	pthread_mutex_unlock(&in->lock);
	if (dirty) {
		rc = bcfs_data_flush_ns(fs, in);
		if (rc)
			return rc;
	}
	for (;;) {
		rc = bcfs_inode_key(in, &space, &key, &klen);
		if (rc)
			return rc;
		rc = bc_read(fs->db, space, key, klen, off, buf, len, got);
		if (rc == -ENOENT && tries++ < 3) {
			/* A rename or unlink may have moved the key under us: retry if so. */
			bool moved;

			pthread_mutex_lock(&in->lock);
			moved = in->space != space || in->klen != klen ||
				memcmp(in->key, key, klen);
			pthread_mutex_unlock(&in->lock);
			free(key);
			if (moved)
				continue;
			return rc;
		}
		free(key);
		return rc;
	}
}

int bcfs_data_truncate(struct bcfs *fs, struct bcfs_inode *in, uint64_t size)
{
	int rc;

	if (size > BC_MAX_VALUE)
		return -EFBIG;
	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&in->lock);
	rc = in->gone ? -ESTALE : flush_data(fs, in);
	if (!rc)
		rc = bc_truncate(fs->db, in->space, in->key, in->klen, size);
	if (!rc) {
		in->mtime_dirty = true;
		in->mtime_ns = bcfs_now_ns();
	}
	pthread_mutex_unlock(&in->lock);
	pthread_rwlock_unlock(&fs->ns);
	return rc;
}

uint64_t bcfs_data_size(struct bcfs_inode *in, uint64_t engine_size)
{
	uint64_t s = engine_size;

	pthread_mutex_lock(&in->lock);
	if (in->dlen && in->doff + in->dlen > s)
		s = in->doff + in->dlen;
	pthread_mutex_unlock(&in->lock);
	return s;
}
