// SPDX-License-Identifier: MIT
/*
 * File data callbacks: open, read, write, flush, release and fsync. Reads go to the engine
 * (one pread for a small file) through the inode's buffered writes (handle.c); writes land
 * in that buffer and reach the engine on flush, release, fsync or when it fills, so data
 * written through one open is visible to opens that follow its close (close-to-open).
 */
#include "bcfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *in;
	struct bcfs_handle *h;

	atomic_fetch_add(&fs->n.opens, 1);
	if (bcfs_ctl_is(ino)) {
		bcfs_ctl_open(fs, req, ino, fi);
		return;
	}
	in = bcfs_req_inode(req, ino);
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (in->kind == BCFS_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/* Replaced or removed with no open handle (an open one would have made it an orphan):
	 * its key may hold another file by now. The process resolved the name before the
	 * change; ESTALE makes the kernel look the name up again and open what is there. ns
	 * keeps an unlink or rename from deciding between orphan and gone meanwhile. */
	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&in->lock);
	bool gone = in->gone;
	pthread_mutex_unlock(&in->lock);
	h = gone ? NULL : bcfs_handle_new(fs, in);
	pthread_rwlock_unlock(&fs->ns);
	if (gone) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = h->id;
	fi->keep_cache = 0; /* close-to-open: drop cached pages of earlier opens */
	if (fuse_reply_open(req, fi))
		bcfs_handle_free(fs, h);
}

/* The handle of fi with a reference (drop with bcfs_handle_put), or NULL after replying
 * EBADF. */
static struct bcfs_handle *HANDLE(fuse_req_t req, struct fuse_file_info *fi)
{
	struct bcfs_handle *h = bcfs_handle_get(bcfs_of(req), fi->fh);

	if (!h)
		fuse_reply_err(req, EBADF);
	return h;
}

void bcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_handle *h = HANDLE(req, fi);
	size_t got = 0;
	char *buf;
	int rc;

	(void)ino;
	if (!h)
		return;
	atomic_fetch_add(&fs->n.reads, 1);
	if (!h->inode) {
		bcfs_ctl_read(req, h, size, off);
		goto out;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	rc = bcfs_data_read(fs, h->inode, buf, size, (uint64_t)off, &got);
	if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		atomic_fetch_add(&fs->n.read_bytes, got);
		fuse_reply_buf(req, buf, got);
	}
	free(buf);
out:
	bcfs_handle_put(fs, h);
}

void bcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_handle *h = HANDLE(req, fi);
	int rc;

	(void)ino;
	if (!h)
		return;
	atomic_fetch_add(&fs->n.writes, 1);
	if (!h->inode) {
		bcfs_ctl_write(fs, req, h, buf, size);
	} else {
		rc = bcfs_data_write(fs, h->inode, buf, size, (uint64_t)off);
		if (rc) {
			fuse_reply_err(req, -rc);
		} else {
			atomic_fetch_add(&fs->n.write_bytes, size);
			fuse_reply_write(req, size);
		}
	}
	bcfs_handle_put(fs, h);
}

void bcfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_handle *h = HANDLE(req, fi);

	(void)ino;
	if (!h)
		return;
	atomic_fetch_add(&fs->n.flushes, 1);
	fuse_reply_err(req, h->inode ? -bcfs_data_close(fs, h->inode) : 0);
	bcfs_handle_put(fs, h);
}

void bcfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_handle *h = HANDLE(req, fi);
	int rc = 0;

	(void)ino;
	if (!h)
		return;
	if (h->inode) {
		rc = bcfs_data_flush_ns(fs, h->inode);
		if (rc)
			bcfs_log(BC_LOG_ERROR, "write-back at close failed: %s", bc_strerror(rc));
	} else {
		bcfs_ctl_release(fs, h);
	}
	bcfs_handle_put(fs, h); /* this request's reference */
	bcfs_handle_free(fs, h); /* the open's */
	fuse_reply_err(req, 0);
}

void bcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_handle *h = HANDLE(req, fi);
	int rc = 0;

	(void)ino;
	(void)datasync;
	if (!h)
		return;
	atomic_fetch_add(&fs->n.fsyncs, 1);
	if (h->inode)
		rc = bcfs_data_flush_ns(fs, h->inode);
	bcfs_handle_put(fs, h);
	if (!rc && !fs->ro)
		rc = bc_sync(fs->db);
	fuse_reply_err(req, -rc);
}
