// SPDX-License-Identifier: MIT
/*
 * Extended attributes (user.* and the rest the kernel lets through) are kept in the
 * metadata record of a file or directory marker (core_meta.c); these callbacks read and
 * rewrite that metadata.
 */
#include "bcfs.h"
#include "core_namemap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static int xattr_load(struct bcfs *fs, fuse_ino_t ino, struct bcfs_inode **inp, struct bcfs_meta *m)
{
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : bcfs_inode_find(fs, ino);

	*inp = in;
	memset(m, 0, sizeof(*m));
	if (!in)
		return bcfs_ctl_is(ino) ? -ENOTSUP : -ESTALE;
	return bcfs_inode_meta(fs, in, m, NULL); /* the metadata cache, else the engine */
}

void bcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *in;
	struct bcfs_meta m;
	const struct bcfs_xattr *x;
	int rc;

	if (strncmp(name, "user.", 5)) {
		fuse_reply_err(req, bcfs_ctl_is(ino) ? ENOTSUP : ENODATA);
		return;
	}
	pthread_rwlock_rdlock(&fs->ns);
	rc = xattr_load(fs, ino, &in, &m);
	pthread_rwlock_unlock(&fs->ns);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	x = bcfs_meta_xattr_get(&m, name);
	if (!x)
		fuse_reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, x->vlen);
	else if (size < x->vlen)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, x->value, x->vlen);
	bcfs_meta_release(&m);
}

void bcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *in;
	struct bcfs_meta m;
	size_t n;
	char *buf;
	int rc;

	pthread_rwlock_rdlock(&fs->ns);
	rc = xattr_load(fs, ino, &in, &m);
	pthread_rwlock_unlock(&fs->ns);
	if (rc == -ENOTSUP) {
		memset(&m, 0, sizeof(m));
		rc = 0;
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	n = bcfs_meta_xattr_list_size(&m);
	if (size == 0) {
		fuse_reply_xattr(req, n);
	} else if (size < n) {
		fuse_reply_err(req, ERANGE);
	} else {
		buf = malloc(n + 1);
		if (buf) {
			bcfs_meta_xattr_list(&m, buf);
			fuse_reply_buf(req, buf, n);
			free(buf);
		} else {
			fuse_reply_err(req, ENOMEM);
		}
	}
	bcfs_meta_release(&m);
}

/* Read-modify-write one xattr: value NULL removes it. */
static void xattr_change(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *in;
	struct bcfs_meta m = {0};
	bool stored = false;
	int rc;

	if (strncmp(name, "user.", 5) || bcfs_ctl_is(ino)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_rwlock_wrlock(&fs->ns);
	in = bcfs_inode_find(fs, ino);
	/* Buffered data (and a created file's first record) go first, so the metadata read
	 * next has the current mtime. */
	rc = in && in->kind == BCFS_FILE ? bcfs_data_flush(fs, in) : 0;
	if (!rc)
		rc = xattr_load(fs, ino, &in, &m);
	if (!rc)
		rc = value ? bcfs_meta_xattr_set(&m, name, value, size, flags)
			   : bcfs_meta_xattr_remove(&m, name);
	if (!rc) {
		m.ctime_ns = bcfs_now_ns();
		if (bcfs_meta_size(&m) > BCFS_META_MAX)
			rc = -ENOSPC;
		else if (in->kind == BCFS_DIR && bcfs_kp_is_cont(in->key, in->klen))
			rc = -ENOTSUP;
		else if ((stored = true) && in->kind == BCFS_DIR)
			rc = bcfs_dir_meta_store(fs, in->key, in->klen, &m);
		else
			rc = bcfs_meta_store(fs, in->space, in->key, in->klen, &m);
		if (stored) {
			pthread_mutex_lock(&in->lock);
			if (rc)
				bcfs_inode_meta_drop_locked(in);
			else
				bcfs_inode_meta_set_locked(in, &m, in->size);
			pthread_mutex_unlock(&in->lock);
		}
	}
	pthread_rwlock_unlock(&fs->ns);
	bcfs_meta_release(&m);
	fuse_reply_err(req, -rc);
}

void bcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
		   int flags)
{
	xattr_change(req, ino, name, value ? value : "", size, flags);
}

void bcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_change(req, ino, name, NULL, 0, 0);
}
