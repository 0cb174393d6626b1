// SPDX-License-Identifier: MIT
/*
 * The one fuse_lowlevel_ops table of bitcaskfs and its callbacks. Each callback turns
 * its inode numbers into keys (inode.c), names into keys (core_namemap.c), does its work
 * through the engine and replies with a negative errno passed straight from the engine, or
 * 0. Files are keys in space 0; explicit directories are markers "d"+<dir key> in space 1;
 * files unlinked while open become "o"+<id> in space 1 until their last close. The
 * behaviour is specified in docs/FILESYSTEM.md.
 */
#include "bcfs.h"
#include "core_namemap.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TIMEOUT 1.0

static struct bcfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- metadata ---- */

static void default_meta(struct bcfs *fs, struct bcfs_meta *m, uint32_t mode, int64_t t)
{
	memset(m, 0, sizeof(*m));
	m->mode = mode;
	m->uid = fs->uid;
	m->gid = fs->gid;
	m->atime_ns = m->mtime_ns = m->ctime_ns = t;
}

static void fresh_meta(struct bcfs *fs, fuse_req_t req, struct bcfs_meta *m, uint32_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	default_meta(fs, m, mode, bcfs_now_ns());
	m->uid = ctx->uid;
	m->gid = ctx->gid;
}

int bcfs_meta_load(struct bcfs *fs, unsigned space, const void *key, size_t klen,
		   struct bcfs_meta *m, struct bc_stat *stp)
{
	struct bc_stat st;
	uint8_t *buf;
	size_t mlen;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = bc_stat(fs->db, space, key, klen, &st);
	if (rc)
		return rc;
	if (stp)
		*stp = st;
	if (st.meta_len) {
		buf = malloc(st.meta_len);
		if (!buf)
			return -ENOMEM;
		rc = bc_get_meta(fs->db, space, key, klen, buf, st.meta_len, &mlen);
		if (!rc && bcfs_meta_decode(buf, mlen < st.meta_len ? mlen : st.meta_len, m) == 0 &&
		    (S_ISREG(m->mode) || S_ISLNK(m->mode) || S_ISDIR(m->mode))) {
			free(buf);
			return 0;
		}
		free(buf);
		if (rc)
			return rc;
	}
	/* Written without (usable) metadata: a plain file of the mount's owner. */
	bcfs_meta_release(m);
	default_meta(fs, m, S_IFREG | 0644, (int64_t)st.mtime_ns);
	return 0;
}

int bcfs_meta_store(struct bcfs *fs, unsigned space, const void *key, size_t klen,
		    const struct bcfs_meta *m)
{
	uint8_t *buf = malloc(bcfs_meta_size(m) + 1);
	int n;

	if (!buf)
		return -ENOMEM;
	n = bcfs_meta_encode(m, buf, bcfs_meta_size(m) + 1);
	if (n >= 0)
		n = bc_set_meta(fs->db, space, key, klen, buf, (size_t)n);
	free(buf);
	return n;
}

/* Encode m into a malloc'd buffer for bc_put_ex and friends. */
static int meta_blob(const struct bcfs_meta *m, uint8_t **buf, size_t *len)
{
	size_t n = bcfs_meta_size(m);
	int rc;

	*buf = malloc(n);
	if (!*buf)
		return -ENOMEM;
	rc = bcfs_meta_encode(m, *buf, n);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
		return rc;
	}
	*len = (size_t)rc;
	return 0;
}

/* The marker key "d" + kp of directory kp, malloc'd. */
static char *marker_key(const char *kp, size_t kplen, size_t *len)
{
	char *k = malloc(kplen + 2);

	if (!k)
		return NULL;
	k[0] = 'd';
	memcpy(k + 1, kp, kplen);
	k[kplen + 1] = 0;
	*len = kplen + 1;
	return k;
}

/* Directory metadata: the marker's, else defaults. *explicit says which. */
static int dir_meta(struct bcfs *fs, const char *kp, size_t kplen, struct bcfs_meta *m,
		    bool *explicit)
{
	size_t mlen;
	char *mk = marker_key(kp, kplen, &mlen);
	int rc;

	if (!mk)
		return -ENOMEM;
	rc = bcfs_meta_load(fs, BCFS_SPACE_FS, mk, mlen, m, NULL);
	free(mk);
	if (rc == 0 && S_ISDIR(m->mode)) {
		if (explicit)
			*explicit = true;
		return 0;
	}
	bcfs_meta_release(m);
	if (rc && rc != -ENOENT)
		return rc;
	default_meta(fs, m, S_IFDIR | 0755, fs->start_ns);
	if (explicit)
		*explicit = false;
	return 0;
}

static int dir_meta_store(struct bcfs *fs, const char *kp, size_t kplen, const struct bcfs_meta *m)
{
	size_t mlen, blen;
	char *mk = marker_key(kp, kplen, &mlen);
	uint8_t *blob;
	int rc;

	if (!mk)
		return -ENOMEM;
	rc = meta_blob(m, &blob, &blen);
	if (!rc) {
		rc = bc_put_ex(fs->db, BCFS_SPACE_FS, mk, mlen, "", 0, blob, blen, 0);
		free(blob);
	}
	free(mk);
	return rc;
}

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000;
	ts->tv_nsec = ns % 1000000000;
	if (ts->tv_nsec < 0) {
		ts->tv_nsec += 1000000000;
		ts->tv_sec--;
	}
}

static int64_t ns_from_ts(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void fill_stat(struct stat *st, fuse_ino_t ino, const struct bcfs_meta *m, uint64_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = m->mode;
	st->st_nlink = 1;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	ts_from_ns(&st->st_atim, m->atime_ns);
	ts_from_ns(&st->st_mtim, m->mtime_ns);
	ts_from_ns(&st->st_ctim, m->ctime_ns);
}

/* Attributes of a cached inode. */
static int inode_stat(struct bcfs *fs, struct bcfs_inode *in, struct stat *st)
{
	struct bcfs_meta m;
	struct bc_stat bs;
	unsigned space;
	char *key;
	size_t klen;
	bool gone;
	int rc;

	pthread_mutex_lock(&in->lock);
	gone = in->gone;
	if (gone && in->have_attr) {
		*st = in->attr;
		st->st_nlink = 0;
	}
	rc = gone && !in->have_attr ? -ENOENT : 0;
	pthread_mutex_unlock(&in->lock);
	if (gone)
		return rc; /* removed or replaced: its key now means something else */
	rc = bcfs_inode_key(in, &space, &key, &klen);
	if (rc)
		return rc;
	if (in->kind == BCFS_DIR) {
		rc = dir_meta(fs, key, klen, &m, NULL);
		if (!rc)
			fill_stat(st, in->ino, &m, 0);
	} else {
		rc = bcfs_meta_load(fs, space, key, klen, &m, &bs);
		if (!rc) {
			pthread_mutex_lock(&in->lock);
			if (in->mtime_dirty)
				m.mtime_ns = m.ctime_ns = in->mtime_ns;
			pthread_mutex_unlock(&in->lock);
			fill_stat(st, in->ino, &m, bcfs_data_size(in, bs.size));
		}
	}
	bcfs_meta_release(&m);
	free(key);
	if (!rc) {
		pthread_mutex_lock(&in->lock);
		in->attr = *st;
		in->have_attr = true;
		pthread_mutex_unlock(&in->lock);
	}
	return rc;
}

/* ---- names ---- */

/* Does any key of space start with prefix? */
static int any_prefix(struct bcfs *fs, unsigned space, const void *prefix, size_t plen)
{
	struct bc_iter *it;
	const void *k;
	size_t kl;
	int rc = bc_iter_new(fs->db, space, prefix, plen, &it);

	if (rc)
		return rc;
	rc = bc_iter_next(it, &k, &kl, NULL);
	bc_iter_free(it);
	if (rc == -ENOENT)
		return 0;
	return rc ? rc : 1;
}

/* Does directory kp (ending in '/') exist: a marker, a key or a marker below it? */
static int dir_exists(struct bcfs *fs, const char *kp, size_t kplen)
{
	size_t mlen;
	char *mk = marker_key(kp, kplen, &mlen);
	int rc;

	if (!mk)
		return -ENOMEM;
	rc = any_prefix(fs, BCFS_SPACE_FS, mk, mlen);
	free(mk);
	if (rc)
		return rc;
	return any_prefix(fs, BC_SPACE_USER, kp, kplen);
}

static int key_exists(struct bcfs *fs, unsigned space, const void *key, size_t klen)
{
	struct bc_stat st;
	int rc;

	if (klen == 0 || klen > BC_MAX_KEY)
		return 0; /* no such key can exist */
	rc = bc_stat(fs->db, space, key, klen, &st);
	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

/* Does continuation directory kp show in parent pkp under name? */
static int cont_exists(struct bcfs *fs, const char *pkp, size_t pkplen, const char *kp,
		       size_t kplen, const char *name)
{
	struct bc_iter *it;
	const void *k;
	size_t kl;
	struct bcfs_child ch;
	int rc = bc_iter_new(fs->db, BC_SPACE_USER, kp, kplen, &it);

	if (rc)
		return rc;
	while ((rc = bc_iter_next(it, &k, &kl, NULL)) == 0) {
		bcfs_child_of(pkp, pkplen, k, kl, &ch);
		if (ch.kind == BCFS_CHILD_DIR && !strcmp(ch.name, name)) {
			bc_iter_free(it);
			return 1;
		}
	}
	bc_iter_free(it);
	return rc == -ENOENT ? 0 : rc;
}

struct resolved {
	int name_kind; /* BCFS_NAME_* */
	enum bcfs_kind kind; /* 0: nothing there */
	char *key; /* file: its key; dir: its kp. Malloc'd, cap for kp + '/' */
	size_t klen;
	char *base; /* the parsed key (kp + decoded name), for creating */
	size_t blen;
};

static void resolved_release(struct resolved *r)
{
	free(r->key);
	free(r->base);
	memset(r, 0, sizeof(*r));
}

/*
 * Resolve name inside directory inode dir. Returns 0 (r->kind 0 when nothing is there),
 * or the parse error (-EINVAL, -ENAMETOOLONG), or an engine error.
 */
static int resolve(struct bcfs *fs, struct bcfs_inode *dir, const char *name, struct resolved *r)
{
	unsigned space;
	char *kp;
	size_t kplen, nlen = strlen(name), cap;
	int rc;

	memset(r, 0, sizeof(*r));
	rc = bcfs_inode_key(dir, &space, &kp, &kplen);
	if (rc)
		return rc;
	cap = kplen + nlen + 2;
	r->base = malloc(cap);
	r->key = malloc(cap + 1);
	if (!r->base || !r->key) {
		rc = -ENOMEM;
		goto out;
	}
	rc = bcfs_name_parse(kp, kplen, name, nlen, r->base, cap, &r->blen, BC_MAX_KEY);
	if (rc < 0)
		goto out;
	r->name_kind = rc;
	rc = 0;
	memcpy(r->key, r->base, r->blen);
	switch (r->name_kind) {
	case BCFS_NAME_SHADOW:
		r->klen = r->blen;
		rc = key_exists(fs, BC_SPACE_USER, r->key, r->klen);
		if (rc > 0)
			r->kind = BCFS_FILE;
		break;
	case BCFS_NAME_CONT:
		r->klen = r->blen;
		rc = cont_exists(fs, kp, kplen, r->key, r->klen, name);
		if (rc > 0)
			r->kind = BCFS_DIR;
		break;
	default:
		r->key[r->blen] = '/';
		rc = r->blen + 1 <= BC_MAX_KEY ? dir_exists(fs, r->key, r->blen + 1) : 0;
		if (rc > 0) {
			r->kind = BCFS_DIR;
			r->klen = r->blen + 1;
			break;
		}
		if (rc < 0)
			break;
		r->klen = r->blen;
		rc = key_exists(fs, BC_SPACE_USER, r->key, r->klen);
		if (rc > 0)
			r->kind = BCFS_FILE;
	}
	if (rc > 0)
		rc = 0;
out:
	free(kp);
	return rc;
}

static struct bcfs_inode *get_inode(fuse_req_t req, fuse_ino_t ino)
{
	return bcfs_inode_find(FS(req), ino);
}

/* Reply with an entry for (kind, key), taking one lookup on its inode. */
static void reply_entry(fuse_req_t req, enum bcfs_kind kind, const char *key, size_t klen)
{
	struct bcfs *fs = FS(req);
	struct fuse_entry_param e;
	struct bcfs_inode *in = bcfs_inode_get(fs, kind, key, klen, 1);
	int rc;

	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memset(&e, 0, sizeof(e));
	rc = inode_stat(fs, in, &e.attr);
	if (rc) {
		bcfs_inode_forget(fs, in, 1);
		fuse_reply_err(req, -rc);
		return;
	}
	e.ino = in->ino;
	e.generation = 1;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	if (fuse_reply_entry(req, &e))
		bcfs_inode_forget(fs, in, 1);
}

/* ---- callbacks ---- */

static void bcfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
}

static void bcfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *dir;
	struct resolved r;
	int rc;

	atomic_fetch_add(&fs->n.lookups, 1);
	if (bcfs_ctl_is(parent) || (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME))) {
		bcfs_ctl_lookup(fs, req, parent, name);
		return;
	}
	dir = get_inode(req, parent);
	if (!dir || dir->kind != BCFS_DIR) {
		fuse_reply_err(req, dir ? ENOTDIR : ESTALE);
		return;
	}
	rc = resolve(fs, dir, name, &r);
	if (rc == -EINVAL || (!rc && !r.kind)) {
		struct fuse_entry_param e = {.entry_timeout = 0};

		/* Negative entry, not cached: other writers (merge, CLI) cannot race us, but
		 * implicit directories come and go with their keys. */
		fuse_reply_entry(req, &e);
	} else if (rc) {
		fuse_reply_err(req, -rc);
	} else {
		reply_entry(req, r.kind, r.key, r.klen);
	}
	resolved_release(&r);
}

static void bcfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : get_inode(req, ino);

	if (in)
		bcfs_inode_forget(FS(req), in, nlookup);
	fuse_reply_none(req);
}

static void bcfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list)
{
	for (size_t i = 0; i < count; i++) {
		struct bcfs_inode *in =
			bcfs_ctl_is(list[i].ino) ? NULL : get_inode(req, list[i].ino);

		if (in)
			bcfs_inode_forget(FS(req), in, list[i].nlookup);
	}
	fuse_reply_none(req);
}

static void bcfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *in;
	struct stat st;
	int rc;

	(void)fi;
	atomic_fetch_add(&fs->n.getattrs, 1);
	if (bcfs_ctl_is(ino)) {
		bcfs_ctl_attr(fs, ino, &st);
		fuse_reply_attr(req, &st, TIMEOUT);
		return;
	}
	in = get_inode(req, ino);
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = inode_stat(fs, in, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

static void apply_attrs(struct bcfs_meta *m, const struct stat *attr, int to_set)
{
	int64_t now = bcfs_now_ns();

	if (to_set & FUSE_SET_ATTR_MODE)
		m->mode = (m->mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		m->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		m->gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME)
		m->atime_ns = ns_from_ts(&attr->st_atim);
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		m->atime_ns = now;
	if (to_set & FUSE_SET_ATTR_MTIME)
		m->mtime_ns = ns_from_ts(&attr->st_mtim);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		m->mtime_ns = now;
	m->ctime_ns = now;
}

#define META_BITS                                                                           \
	(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME | \
	 FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW |          \
	 FUSE_SET_ATTR_CTIME)

static void bcfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *in;
	struct bcfs_meta m;
	int rc = 0;

	(void)fi;
	if (bcfs_ctl_is(ino)) {
		if (to_set &
		    (META_BITS & ~FUSE_SET_ATTR_CTIME & ~FUSE_SET_ATTR_ATIME &
		     ~FUSE_SET_ATTR_MTIME & ~FUSE_SET_ATTR_ATIME_NOW & ~FUSE_SET_ATTR_MTIME_NOW)) {
			fuse_reply_err(req, EPERM);
			return;
		}
		bcfs_getattr(req, ino, fi); /* truncating control: ignored */
		return;
	}
	in = get_inode(req, ino);
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (in->kind == BCFS_DIR) {
		if (to_set & FUSE_SET_ATTR_SIZE) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		pthread_rwlock_wrlock(&fs->ns);
		if (bcfs_kp_is_cont(in->key, in->klen)) {
			rc = -EPERM;
		} else {
			rc = dir_meta(fs, in->key, in->klen, &m, NULL);
			if (!rc) {
				apply_attrs(&m, attr, to_set);
				rc = dir_meta_store(fs, in->key, in->klen, &m);
				bcfs_meta_release(&m);
			}
		}
		pthread_rwlock_unlock(&fs->ns);
		goto reply;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = bcfs_data_truncate(fs, in, (uint64_t)attr->st_size);
		if (rc)
			goto reply;
	}
	if (to_set & META_BITS) {
		pthread_rwlock_rdlock(&fs->ns);
		rc = bcfs_data_flush(fs, in);
		pthread_mutex_lock(&in->lock);
		if (!rc)
			rc = bcfs_meta_load(fs, in->space, in->key, in->klen, &m, NULL);
		if (!rc) {
			if (in->mtime_dirty)
				m.mtime_ns = in->mtime_ns;
			apply_attrs(&m, attr, to_set);
			rc = bcfs_meta_store(fs, in->space, in->key, in->klen, &m);
			if (!rc)
				in->mtime_dirty = false;
			bcfs_meta_release(&m);
		}
		pthread_mutex_unlock(&in->lock);
		pthread_rwlock_unlock(&fs->ns);
	}
reply:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		bcfs_getattr(req, ino, fi);
}

/* Make sure directory kp (its parent, after a removal) keeps existing: add its marker. */
static int keep_dir(struct bcfs *fs, struct bc_batch *b, const char *kp, size_t kplen)
{
	struct bcfs_meta m;
	size_t mlen, blen;
	char *mk;
	uint8_t *blob;
	int rc;

	if (kplen == 0 || bcfs_kp_is_cont(kp, kplen))
		return 0;
	mk = marker_key(kp, kplen, &mlen);
	if (!mk)
		return -ENOMEM;
	rc = key_exists(fs, BCFS_SPACE_FS, mk, mlen);
	if (rc == 0) {
		default_meta(fs, &m, S_IFDIR | 0755, fs->start_ns);
		rc = meta_blob(&m, &blob, &blen);
		if (!rc) {
			rc = bc_batch_put(b, BCFS_SPACE_FS, mk, mlen, "", 0, blob, blen, 0);
			free(blob);
		}
	}
	free(mk);
	return rc > 0 ? 0 : rc;
}

static int parent_kp(struct bcfs_inode *dir, char **kp, size_t *kplen)
{
	unsigned space;

	return bcfs_inode_key(dir, &space, kp, kplen);
}

static void orphan_key(char out[32], uint64_t ino, size_t *len)
{
	*len = (size_t)snprintf(out, 32, "o%016llx", (unsigned long long)ino);
}

/*
 * Add to b what moves file key away so its open handles keep reading it: an orphan key.
 * Flushes its dirty data first (ns held for writing).
 */
static int orphan_in_batch(struct bcfs *fs, struct bc_batch *b, struct bcfs_inode *in, char *okey,
			   size_t *olen)
{
	int rc = bcfs_data_flush(fs, in);

	if (rc)
		return rc;
	orphan_key(okey, in->ino, olen);
	return bc_batch_rename(b, BC_SPACE_USER, in->key, in->klen, BCFS_SPACE_FS, okey, *olen);
}

static void new_file(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     const char *target, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *dir = get_inode(req, parent), *in = NULL;
	struct resolved r = {0};
	struct bcfs_meta m;
	uint8_t *blob = NULL;
	size_t blen;
	int rc;

	if (!dir || bcfs_ctl_is(parent)) {
		fuse_reply_err(req, bcfs_ctl_is(parent) ? EPERM : ESTALE);
		return;
	}
	if (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_rwlock_wrlock(&fs->ns);
	rc = resolve(fs, dir, name, &r);
	if (rc)
		goto out;
	if (r.name_kind != BCFS_NAME_PLAIN) {
		rc = r.kind ? -EEXIST : -EINVAL;
		goto out;
	}
	if (r.kind) {
		rc = -EEXIST;
		goto out;
	}
	fresh_meta(fs, req, &m, mode);
	rc = meta_blob(&m, &blob, &blen);
	bcfs_meta_release(&m);
	if (rc)
		goto out;
	rc = bc_put_ex(fs->db, BC_SPACE_USER, r.base, r.blen, target ? target : "",
		       target ? strlen(target) : 0, blob, blen, 0);
	if (rc)
		goto out;
	in = bcfs_inode_get(fs, BCFS_FILE, r.base, r.blen, 1);
	if (!in)
		rc = -ENOMEM;
out:
	pthread_rwlock_unlock(&fs->ns);
	free(blob);
	if (rc) {
		resolved_release(&r);
		fuse_reply_err(req, -rc);
		return;
	}
	atomic_fetch_add(&fs->n.creates, 1);
	{
		struct fuse_entry_param e = {0};

		rc = inode_stat(fs, in, &e.attr);
		e.ino = in->ino;
		e.generation = 1;
		e.attr_timeout = TIMEOUT;
		e.entry_timeout = TIMEOUT;
		if (rc) {
			bcfs_inode_forget(fs, in, 1);
			fuse_reply_err(req, -rc);
		} else if (fi) {
			struct bcfs_handle *h = bcfs_handle_new(fs, in);

			if (!h) {
				bcfs_inode_forget(fs, in, 1);
				fuse_reply_err(req, ENOMEM);
			} else {
				fi->fh = h->id;
				if (fuse_reply_create(req, &e, fi)) {
					bcfs_handle_free(fs, h);
					bcfs_inode_forget(fs, in, 1);
				}
			}
		} else if (fuse_reply_entry(req, &e)) {
			bcfs_inode_forget(fs, in, 1);
		}
	}
	resolved_release(&r);
}

static void bcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	new_file(req, parent, name, S_IFREG | (mode & 07777), NULL, fi);
}

static void bcfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM); /* devices, fifos, sockets: documented as refused */
		return;
	}
	new_file(req, parent, name, S_IFREG | (mode & 07777), NULL, NULL);
}

static void bcfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	new_file(req, parent, name, S_IFLNK | 0777, link, NULL);
}

static void bcfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM); /* hard links: documented as refused */
}

static void bcfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : get_inode(req, ino);
	unsigned space;
	char *key, *t;
	void *val;
	size_t klen, vlen;
	int rc;

	if (!in || in->kind != BCFS_FILE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = bcfs_inode_key(in, &space, &key, &klen);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = bc_get(fs->db, space, key, klen, 65536, &val, &vlen);
	free(key);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	t = malloc(vlen + 1);
	if (t) {
		memcpy(t, val, vlen);
		t[vlen] = 0;
		fuse_reply_readlink(req, t);
	} else {
		fuse_reply_err(req, ENOMEM);
	}
	free(t);
	free(val);
}

static void bcfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *dir = get_inode(req, parent);
	struct resolved r = {0};
	struct bcfs_meta m;
	int rc;

	if (!dir || bcfs_ctl_is(parent)) {
		fuse_reply_err(req, bcfs_ctl_is(parent) ? EPERM : ESTALE);
		return;
	}
	if (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	atomic_fetch_add(&fs->n.mkdirs, 1);
	pthread_rwlock_wrlock(&fs->ns);
	rc = resolve(fs, dir, name, &r);
	if (rc)
		goto out;
	if (r.kind) {
		rc = -EEXIST;
		goto out;
	}
	if (r.name_kind != BCFS_NAME_PLAIN) {
		rc = -EINVAL;
		goto out;
	}
	if (r.blen + 2 > BC_MAX_KEY) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	r.key[r.blen] = '/';
	r.klen = r.blen + 1;
	fresh_meta(fs, req, &m, S_IFDIR | (mode & 07777));
	rc = dir_meta_store(fs, r.key, r.klen, &m);
	bcfs_meta_release(&m);
out:
	pthread_rwlock_unlock(&fs->ns);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_entry(req, BCFS_DIR, r.key, r.klen);
	resolved_release(&r);
}

static void bcfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *dir = get_inode(req, parent), *in;
	struct resolved r = {0};
	struct bc_batch *b = NULL;
	char okey[32], *pkp = NULL;
	size_t olen = 0, pkplen;
	bool orphan = false;
	int rc;

	if (bcfs_ctl_is(parent) || (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	atomic_fetch_add(&fs->n.unlinks, 1);
	pthread_rwlock_wrlock(&fs->ns);
	rc = resolve(fs, dir, name, &r);
	if (rc == -EINVAL)
		rc = -ENOENT;
	if (rc)
		goto out;
	if (r.kind == BCFS_DIR) {
		rc = -EISDIR;
		goto out;
	}
	if (!r.kind) {
		rc = -ENOENT;
		goto out;
	}
	rc = parent_kp(dir, &pkp, &pkplen);
	if (!rc)
		rc = bc_batch_new(&b);
	if (rc)
		goto out;
	in = bcfs_inode_lookup_key(fs, BCFS_FILE, r.key, r.klen);
	if (in && bcfs_inode_nopen(fs, in) > 0) {
		rc = orphan_in_batch(fs, b, in, okey, &olen);
		orphan = true;
	} else {
		rc = bc_batch_delete(b, BC_SPACE_USER, r.key, r.klen);
	}
	if (!rc)
		rc = keep_dir(fs, b, pkp, pkplen);
	if (!rc)
		rc = bc_batch_commit(fs->db, b);
	if (rc || !in)
		goto out;
	if (orphan) {
		rc = bcfs_inode_rekey(fs, in, BCFS_SPACE_FS, okey, olen);
		pthread_mutex_lock(&in->lock);
		in->orphan = true;
		pthread_mutex_unlock(&in->lock);
	} else {
		bcfs_inode_unhash(fs, in);
	}
out:
	pthread_rwlock_unlock(&fs->ns);
	bc_batch_free(b);
	free(pkp);
	resolved_release(&r);
	fuse_reply_err(req, -rc);
}

/* Is directory kp empty (no key, no subdirectory marker, no shadowed file)? */
static int dir_empty(struct bcfs *fs, const char *kp, size_t kplen)
{
	struct bc_iter *it;
	const void *k;
	size_t kl, mlen;
	char *mk;
	int rc;

	rc = any_prefix(fs, BC_SPACE_USER, kp, kplen);
	if (rc)
		return rc > 0 ? 0 : rc;
	rc = key_exists(fs, BC_SPACE_USER, kp, kplen - 1);
	if (rc)
		return rc > 0 ? 0 : rc;
	mk = marker_key(kp, kplen, &mlen);
	if (!mk)
		return -ENOMEM;
	rc = bc_iter_new(fs->db, BCFS_SPACE_FS, mk, mlen, &it);
	if (!rc) {
		while ((rc = bc_iter_next(it, &k, &kl, NULL)) == 0)
			if (kl != mlen)
				break; /* a marker below this one */
		bc_iter_free(it);
	}
	free(mk);
	if (rc == -ENOENT)
		return 1;
	return rc ? rc : 0;
}

static void bcfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *dir = get_inode(req, parent), *in;
	struct resolved r = {0};
	struct bc_batch *b = NULL;
	char *pkp = NULL, *mk = NULL;
	size_t pkplen, mlen;
	int rc;

	if (bcfs_ctl_is(parent) || (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	atomic_fetch_add(&fs->n.rmdirs, 1);
	pthread_rwlock_wrlock(&fs->ns);
	rc = resolve(fs, dir, name, &r);
	if (rc == -EINVAL)
		rc = -ENOENT;
	if (rc)
		goto out;
	if (r.kind == BCFS_FILE) {
		rc = -ENOTDIR;
		goto out;
	}
	if (!r.kind) {
		/* An implicit directory that lost its last key while the kernel still shows it
		 * is already gone: rmdir succeeds. */
		rc = r.name_kind == BCFS_NAME_PLAIN &&
				bcfs_inode_lookup_key(fs, BCFS_DIR, r.key, r.blen + 1)
			? 0
			: -ENOENT;
		goto out;
	}
	if (r.name_kind == BCFS_NAME_CONT) {
		rc = -ENOTEMPTY;
		goto out;
	}
	rc = dir_empty(fs, r.key, r.klen);
	if (rc == 0)
		rc = -ENOTEMPTY;
	if (rc < 0)
		goto out;
	rc = parent_kp(dir, &pkp, &pkplen);
	if (!rc)
		rc = bc_batch_new(&b);
	if (rc)
		goto out;
	mk = marker_key(r.key, r.klen, &mlen);
	rc = mk ? bc_batch_delete(b, BCFS_SPACE_FS, mk, mlen) : -ENOMEM;
	if (!rc)
		rc = keep_dir(fs, b, pkp, pkplen);
	if (!rc)
		rc = bc_batch_commit(fs->db, b);
	if (!rc) {
		in = bcfs_inode_lookup_key(fs, BCFS_DIR, r.key, r.klen);
		if (in)
			bcfs_inode_unhash(fs, in);
	}
out:
	pthread_rwlock_unlock(&fs->ns);
	bc_batch_free(b);
	free(pkp);
	free(mk);
	resolved_release(&r);
	fuse_reply_err(req, -rc);
}

/* Add renames of every key of space starting with from to the same suffix after to. */
static int rename_prefix_batch(struct bcfs *fs, struct bc_batch *b, unsigned space,
			       const char *from, size_t flen, const char *to, size_t tlen)
{
	struct bc_iter *it;
	const void *k;
	size_t kl;
	char *nk = NULL;
	size_t cap = 0;
	int rc = bc_iter_new(fs->db, space, from, flen, &it);

	if (rc)
		return rc;
	while ((rc = bc_iter_next(it, &k, &kl, NULL)) == 0) {
		size_t nl = kl - flen + tlen;

		if (nl > BC_MAX_KEY) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (nl > cap) {
			char *p = realloc(nk, nl);

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			nk = p;
			cap = nl;
		}
		memcpy(nk, to, tlen);
		memcpy(nk + tlen, (const char *)k + flen, kl - flen);
		rc = bc_batch_rename(b, space, k, kl, space, nk, nl);
		if (rc)
			break;
	}
	bc_iter_free(it);
	free(nk);
	return rc == -ENOENT ? 0 : rc;
}

static void bcfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			const char *newname, unsigned int flags)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *sdir = get_inode(req, parent), *ddir = get_inode(req, newparent);
	struct bcfs_inode *sin = NULL, *din = NULL;
	struct resolved s = {0}, d = {0};
	struct bc_batch *b = NULL;
	char okey[32], *pkp = NULL, *sm = NULL, *dm = NULL;
	size_t olen = 0, pkplen, sml, dml;
	bool dorphan = false;
	int rc;

	if (bcfs_ctl_is(parent) || bcfs_ctl_is(newparent) ||
	    (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME)) ||
	    (newparent == FUSE_ROOT_ID && !strcmp(newname, BCFS_CTL_NAME))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!sdir || !ddir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL); /* RENAME_EXCHANGE, RENAME_WHITEOUT */
		return;
	}
	if (fs->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	atomic_fetch_add(&fs->n.renames, 1);
	pthread_rwlock_wrlock(&fs->ns);
	rc = resolve(fs, sdir, name, &s);
	if (rc == -EINVAL)
		rc = -ENOENT;
	if (!rc && !s.kind)
		rc = -ENOENT;
	if (!rc)
		rc = resolve(fs, ddir, newname, &d);
	if (rc)
		goto out;
	if (d.name_kind != BCFS_NAME_PLAIN && !(d.name_kind == BCFS_NAME_SHADOW && d.kind)) {
		rc = -EINVAL;
		goto out;
	}
	if (d.kind && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	rc = parent_kp(sdir, &pkp, &pkplen);
	if (!rc)
		rc = bc_batch_new(&b);
	if (rc)
		goto out;
	if (s.kind == BCFS_FILE) {
		if (d.kind == BCFS_DIR) {
			rc = -EISDIR;
			goto out;
		}
		if (d.blen == s.klen && !memcmp(d.base, s.key, s.klen))
			goto out; /* same file */
		if (d.kind == BCFS_FILE) {
			din = bcfs_inode_lookup_key(fs, BCFS_FILE, d.base, d.blen);
			if (din && bcfs_inode_nopen(fs, din) > 0) {
				rc = orphan_in_batch(fs, b, din, okey, &olen);
				dorphan = true;
			}
		}
		if (!rc)
			rc = bc_batch_rename(b, BC_SPACE_USER, s.key, s.klen, BC_SPACE_USER, d.base,
					     d.blen);
		if (!rc)
			rc = keep_dir(fs, b, pkp, pkplen);
		if (!rc)
			rc = bc_batch_commit(fs->db, b);
		if (rc)
			goto out;
		if (din && dorphan) {
			bcfs_inode_rekey(fs, din, BCFS_SPACE_FS, okey, olen);
			pthread_mutex_lock(&din->lock);
			din->orphan = true;
			pthread_mutex_unlock(&din->lock);
		} else if (din) {
			bcfs_inode_unhash(fs, din);
		}
		sin = bcfs_inode_lookup_key(fs, BCFS_FILE, s.key, s.klen);
		if (sin)
			rc = bcfs_inode_rekey(fs, sin, BC_SPACE_USER, d.base, d.blen);
		goto out;
	}
	/* A directory. */
	if (s.name_kind != BCFS_NAME_PLAIN || d.name_kind != BCFS_NAME_PLAIN) {
		rc = -EINVAL; /* continuation directories stay where their key puts them */
		goto out;
	}
	if (d.kind == BCFS_FILE) {
		rc = -ENOTDIR;
		goto out;
	}
	d.key[d.blen] = '/';
	d.klen = d.blen + 1;
	if (d.klen == s.klen && !memcmp(d.key, s.key, s.klen))
		goto out;
	if (d.klen > s.klen && !memcmp(d.key, s.key, s.klen)) {
		rc = -EINVAL; /* into itself */
		goto out;
	}
	sm = marker_key(s.key, s.klen, &sml);
	dm = marker_key(d.key, d.klen, &dml);
	if (!sm || !dm) {
		rc = -ENOMEM;
		goto out;
	}
	if (d.kind == BCFS_DIR) {
		rc = dir_empty(fs, d.key, d.klen);
		if (rc == 0)
			rc = -ENOTEMPTY;
		if (rc < 0)
			goto out;
		rc = bc_batch_delete(b, BCFS_SPACE_FS, dm, dml);
		if (rc)
			goto out;
	}
	rc = rename_prefix_batch(fs, b, BC_SPACE_USER, s.key, s.klen, d.key, d.klen);
	if (!rc)
		rc = rename_prefix_batch(fs, b, BCFS_SPACE_FS, sm, sml, dm, dml);
	if (!rc)
		rc = keep_dir(fs, b, pkp, pkplen);
	if (!rc && bc_batch_count(b))
		rc = bc_batch_commit(fs->db, b);
	if (rc)
		goto out;
	if (d.kind == BCFS_DIR) {
		din = bcfs_inode_lookup_key(fs, BCFS_DIR, d.key, d.klen);
		if (din)
			bcfs_inode_unhash(fs, din);
	}
	rc = bcfs_inode_rename_prefix(fs, s.key, s.klen, d.key, d.klen);
out:
	pthread_rwlock_unlock(&fs->ns);
	bc_batch_free(b);
	free(pkp);
	free(sm);
	free(dm);
	resolved_release(&s);
	resolved_release(&d);
	fuse_reply_err(req, -rc);
}

static void bcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct bcfs_inode *in;
	struct bcfs_handle *h;

	atomic_fetch_add(&fs->n.opens, 1);
	if (bcfs_ctl_is(ino)) {
		bcfs_ctl_open(fs, req, ino, fi);
		return;
	}
	in = get_inode(req, ino);
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (in->kind == BCFS_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	h = bcfs_handle_new(fs, in);
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
	struct bcfs_handle *h = bcfs_handle_get(FS(req), fi->fh);

	if (!h)
		fuse_reply_err(req, EBADF);
	return h;
}

static void bcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
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

static void bcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
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

static void bcfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct bcfs_handle *h = HANDLE(req, fi);

	(void)ino;
	if (!h)
		return;
	atomic_fetch_add(&fs->n.flushes, 1);
	fuse_reply_err(req, h->inode ? -bcfs_data_flush_ns(fs, h->inode) : 0);
	bcfs_handle_put(fs, h);
}

static void bcfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
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

static void bcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
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

/* ---- directories ---- */

struct dir_ent {
	char *name;
	unsigned char type; /* DT_DIR or DT_UNKNOWN */
	fuse_ino_t ino;
};

struct dir_list {
	struct dir_ent *e;
	size_t n, cap;
	size_t *slots; /* open-addressed name -> index+1 */
	size_t nslots;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

static void dir_list_free(struct dir_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	free(l->slots);
	free(l);
}

static int dir_list_add(struct dir_list *l, const char *name, unsigned char type, fuse_ino_t ino)
{
	size_t i;

	if (2 * (l->n + 1) > l->nslots) {
		size_t ns = l->nslots ? 2 * l->nslots : 64;
		size_t *s = calloc(ns, sizeof(*s));

		if (!s)
			return -ENOMEM;
		for (size_t j = 0; j < l->n; j++) {
			for (i = name_hash(l->e[j].name) % ns; s[i]; i = (i + 1) % ns)
				;
			s[i] = j + 1;
		}
		free(l->slots);
		l->slots = s;
		l->nslots = ns;
	}
	for (i = name_hash(name) % l->nslots; l->slots[i]; i = (i + 1) % l->nslots) {
		struct dir_ent *e = &l->e[l->slots[i] - 1];

		if (!strcmp(e->name, name)) {
			if (type == DT_DIR)
				e->type = DT_DIR; /* a directory shadows a file of the same name */
			return 0;
		}
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 32;
		struct dir_ent *ne = realloc(l->e, nc * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->cap = nc;
	}
	l->e[l->n].name = strdup(name);
	if (!l->e[l->n].name)
		return -ENOMEM;
	l->e[l->n].type = type;
	l->e[l->n].ino = ino;
	l->slots[i] = ++l->n;
	return 0;
}

/*
 * Add the children of kp found in space (keys there start with pfx: "" or "d"), skipping
 * past each child directory's subtree so the cost is in proportion to the entries.
 */
static int list_space(struct bcfs *fs, struct dir_list *l, unsigned space, const char *pfx,
		      size_t pfxlen, const char *kp, size_t kplen)
{
	struct bc_iter *it;
	const void *kv;
	size_t kl, plen = pfxlen + kplen;
	char *prefix = malloc(plen + 1), *seek = NULL;
	size_t seekcap = 0;
	struct bcfs_child ch;
	int rc;

	if (!prefix)
		return -ENOMEM;
	memcpy(prefix, pfx, pfxlen);
	memcpy(prefix + pfxlen, kp, kplen);
	rc = bc_iter_new(fs->db, space, prefix, plen, &it);
	free(prefix);
	if (rc)
		return rc;
	while ((rc = bc_iter_next(it, &kv, &kl, NULL)) == 0) {
		const char *k = (const char *)kv + pfxlen;
		size_t klen = kl - pfxlen;

		if (pfxlen && klen == kplen)
			continue; /* this directory's own marker */
		bcfs_child_of(kp, kplen, k, klen, &ch);
		if (ch.kind != BCFS_CHILD_NONE) {
			rc = dir_list_add(l, ch.name,
					  ch.kind == BCFS_CHILD_DIR ? DT_DIR : DT_UNKNOWN, 0);
			if (rc)
				break;
		}
		if (ch.skip_len) {
			size_t sl = pfxlen + ch.skip_len;

			if (sl > seekcap) {
				char *p = realloc(seek, sl);

				if (!p) {
					rc = -ENOMEM;
					break;
				}
				seek = p;
				seekcap = sl;
			}
			memcpy(seek, kv, sl);
			seek[sl - 1]++; /* the byte after '/': past the whole subtree */
			rc = bc_iter_seek(it, seek, sl);
			if (rc)
				break;
		}
	}
	bc_iter_free(it);
	free(seek);
	return rc == -ENOENT ? 0 : rc;
}

static int list_dir(struct bcfs *fs, struct bcfs_inode *dir, struct dir_list **out)
{
	struct dir_list *l = calloc(1, sizeof(*l));
	unsigned space;
	char *kp;
	size_t kplen;
	int rc;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	rc = bcfs_inode_key(dir, &space, &kp, &kplen);
	if (rc) {
		free(l);
		return rc;
	}
	rc = dir_list_add(l, ".", DT_DIR, dir->ino);
	if (!rc)
		rc = dir_list_add(l, "..", DT_DIR, FUSE_ROOT_ID);
	if (!rc && kplen == 0)
		rc = dir_list_add(l, BCFS_CTL_NAME, DT_DIR, BCFS_INO_CTL_DIR);
	if (!rc)
		rc = list_space(fs, l, BC_SPACE_USER, "", 0, kp, kplen);
	if (!rc && !bcfs_kp_is_cont(kp, kplen))
		rc = list_space(fs, l, BCFS_SPACE_FS, "d", 1, kp, kplen);
	if (!rc && kplen && !bcfs_kp_is_cont(kp, kplen)) {
		rc = key_exists(fs, BC_SPACE_USER, kp, kplen - 1);
		if (rc > 0)
			rc = dir_list_add(l, "%@", DT_UNKNOWN, 0);
	}
	free(kp);
	if (rc < 0) {
		dir_list_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

static void bcfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs_inode *in;

	fi->fh = 0;
	if (bcfs_ctl_is(ino)) {
		fuse_reply_open(req, fi);
		return;
	}
	in = get_inode(req, ino);
	if (!in || in->kind != BCFS_DIR) {
		fuse_reply_err(req, in ? ENOTDIR : ESTALE);
		return;
	}
	/* The listing is built at offset 0 and kept here so later offsets index into it. */
	fi->fh = (uint64_t)(uintptr_t)calloc(1, sizeof(struct dir_list *));
	if (!fi->fh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fuse_reply_open(req, fi))
		free((void *)(uintptr_t)fi->fh);
}

static void bcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);
	struct dir_list **lp = (struct dir_list **)(uintptr_t)fi->fh, *l;
	struct bcfs_inode *in;
	char *buf;
	size_t pos = 0;
	int rc;

	atomic_fetch_add(&fs->n.readdirs, 1);
	if (bcfs_ctl_is(ino)) {
		bcfs_ctl_readdir(req, size, off);
		return;
	}
	in = get_inode(req, ino);
	if (!in) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (off == 0 || !*lp) {
		/* (Re)read the directory: rewinddir sees changes. */
		dir_list_free(*lp);
		*lp = NULL;
		rc = list_dir(fs, in, lp);
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	l = *lp;
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < l->n; i++) {
		struct stat st = {.st_ino = l->e[i].ino ? l->e[i].ino : 0xffffffffu,
				  .st_mode = (mode_t)l->e[i].type << 12};
		size_t n = fuse_add_direntry(req, buf + pos, size - pos, l->e[i].name, &st,
					     (off_t)(i + 1));

		if (n > size - pos)
			break;
		pos += n;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void bcfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_list **lp = (struct dir_list **)(uintptr_t)fi->fh;

	(void)ino;
	if (lp) {
		dir_list_free(*lp);
		free(lp);
	}
	fuse_reply_err(req, 0);
}

static void bcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct bcfs *fs = FS(req);

	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, fs->ro ? 0 : -bc_sync(fs->db));
}

static void bcfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct bcfs *fs = FS(req);
	struct statvfs sv;
	struct bc_stats st = {0};

	(void)ino;
	if (statvfs(fs->datadir, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (!bc_stats_get(fs->db, &st)) {
		sv.f_files = st.keys + sv.f_ffree;
		bc_stats_release(&st);
	}
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

/* Load the metadata of ino (file or directory); *in receives the inode. */
static int xattr_load(struct bcfs *fs, fuse_ino_t ino, struct bcfs_inode **inp, struct bcfs_meta *m)
{
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : bcfs_inode_find(fs, ino);

	*inp = in;
	memset(m, 0, sizeof(*m));
	if (!in)
		return bcfs_ctl_is(ino) ? -ENOTSUP : -ESTALE;
	if (in->kind == BCFS_DIR)
		return dir_meta(fs, in->key, in->klen, m, NULL);
	return bcfs_meta_load(fs, in->space, in->key, in->klen, m, NULL);
}

static void bcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct bcfs *fs = FS(req);
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

static void bcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct bcfs *fs = FS(req);
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
	struct bcfs *fs = FS(req);
	struct bcfs_inode *in;
	struct bcfs_meta m;
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
	rc = xattr_load(fs, ino, &in, &m);
	if (!rc)
		rc = value ? bcfs_meta_xattr_set(&m, name, value, size, flags)
			   : bcfs_meta_xattr_remove(&m, name);
	if (!rc) {
		m.ctime_ns = bcfs_now_ns();
		if (bcfs_meta_size(&m) > BCFS_META_MAX)
			rc = -ENOSPC;
		else if (in->kind == BCFS_DIR)
			rc = bcfs_kp_is_cont(in->key, in->klen)
				? -ENOTSUP
				: dir_meta_store(fs, in->key, in->klen, &m);
		else
			rc = bcfs_data_flush(fs, in);
		if (!rc && in->kind == BCFS_FILE) {
			pthread_mutex_lock(&in->lock);
			if (in->mtime_dirty)
				m.mtime_ns = in->mtime_ns;
			rc = bcfs_meta_store(fs, in->space, in->key, in->klen, &m);
			pthread_mutex_unlock(&in->lock);
		}
	}
	pthread_rwlock_unlock(&fs->ns);
	bcfs_meta_release(&m);
	fuse_reply_err(req, -rc);
}

static void bcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			  size_t size, int flags)
{
	xattr_change(req, ino, name, value ? value : "", size, flags);
}

static void bcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_change(req, ino, name, NULL, 0, 0);
}

static void bcfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	(void)ino;
	(void)mask;
	fuse_reply_err(req, 0); /* default_permissions: the kernel has checked */
}

const struct fuse_lowlevel_ops bcfs_ops = {
	.init = bcfs_init,
	.lookup = bcfs_lookup,
	.forget = bcfs_forget,
	.forget_multi = bcfs_forget_multi,
	.getattr = bcfs_getattr,
	.setattr = bcfs_setattr,
	.readlink = bcfs_readlink,
	.mknod = bcfs_mknod,
	.mkdir = bcfs_mkdir,
	.unlink = bcfs_unlink,
	.rmdir = bcfs_rmdir,
	.symlink = bcfs_symlink,
	.rename = bcfs_rename,
	.link = bcfs_link,
	.open = bcfs_open,
	.read = bcfs_read,
	.write = bcfs_write,
	.flush = bcfs_flush,
	.release = bcfs_release,
	.fsync = bcfs_fsync,
	.opendir = bcfs_opendir,
	.readdir = bcfs_readdir,
	.releasedir = bcfs_releasedir,
	.fsyncdir = bcfs_fsyncdir,
	.statfs = bcfs_statfs,
	.setxattr = bcfs_setxattr,
	.getxattr = bcfs_getxattr,
	.listxattr = bcfs_listxattr,
	.removexattr = bcfs_removexattr,
	.access = bcfs_access,
	.create = bcfs_create,
};
