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

struct bcfs *bcfs_of(fuse_req_t req)
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
	uint8_t small[256], *buf = small;
	size_t mlen;
	int rc;

	memset(m, 0, sizeof(*m));
	/* One read of the record gives size, times and metadata; metadata larger than the
	 * stack buffer (many xattrs) takes a second read. */
	rc = bc_stat_meta(fs->db, space, key, klen, &st, small, sizeof(small), &mlen);
	if (!rc && mlen > sizeof(small)) {
		buf = malloc(mlen);
		if (!buf)
			return -ENOMEM;
		size_t got;
		rc = bc_get_meta(fs->db, space, key, klen, buf, mlen, &got);
		if (!rc && got != mlen)
			rc = -EAGAIN; /* changed between the reads; the caller's request fails */
	}
	if (rc) {
		if (buf != small)
			free(buf);
		return rc;
	}
	if (stp)
		*stp = st;
	if (mlen && bcfs_meta_decode(buf, mlen, m) == 0 &&
	    (S_ISREG(m->mode) || S_ISLNK(m->mode) || S_ISDIR(m->mode))) {
		if (buf != small)
			free(buf);
		return 0;
	}
	if (buf != small)
		free(buf);
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
int bcfs_dir_meta(struct bcfs *fs, const char *kp, size_t kplen, struct bcfs_meta *m,
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

int bcfs_dir_meta_store(struct bcfs *fs, const char *kp, size_t kplen, const struct bcfs_meta *m)
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

/*
 * Attributes of a cached inode: from its metadata cache, no engine I/O once known. Caller
 * holds ns (read): a namespace change moves keys and then the table under ns held for
 * writing, so the inode read here and the record behind its key always agree.
 */
static int inode_stat_ns(struct bcfs *fs, struct bcfs_inode *in, struct stat *st)
{
	struct bcfs_meta m;
	uint64_t size;
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
	rc = bcfs_inode_attr(fs, in, &m, &size);
	if (rc == -ENOENT) {
		/* Removed meanwhile: answer as above. */
		pthread_mutex_lock(&in->lock);
		if (in->gone && in->have_attr) {
			*st = in->attr;
			st->st_nlink = 0;
			rc = 0;
		}
		pthread_mutex_unlock(&in->lock);
		return rc;
	}
	if (rc)
		return rc;
	fill_stat(st, in->ino, &m, size);
	pthread_mutex_lock(&in->lock);
	in->attr = *st;
	in->have_attr = true;
	pthread_mutex_unlock(&in->lock);
	return 0;
}

static int inode_stat(struct bcfs *fs, struct bcfs_inode *in, struct stat *st)
{
	int rc;

	pthread_rwlock_rdlock(&fs->ns);
	rc = inode_stat_ns(fs, in, st);
	pthread_rwlock_unlock(&fs->ns);
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

int bcfs_key_exists(struct bcfs *fs, unsigned space, const void *key, size_t klen)
{
	struct bc_stat st;
	int rc;

	if (klen == 0 || klen > BC_MAX_KEY)
		return 0; /* no such key can exist */
	rc = bc_stat(fs->db, space, key, klen, &st);
	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

/*
 * Does file key exist: a key, or a created file that has no record yet? The inode table is
 * asked first and answers without engine I/O for a known inode (bc_stat reads the record's
 * header). Unlink and rename take an inode out of the key hash under ns after changing
 * the keys; a lookup that races them answers as if it ran just before. A pending file gets
 * its record before it stops being pending, so one of the two answers yes while it exists.
 */
static int file_exists(struct bcfs *fs, const void *key, size_t klen)
{
	if (bcfs_inode_file_known(fs, key, klen))
		return 1;
	return bcfs_key_exists(fs, BC_SPACE_USER, key, klen);
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
		rc = file_exists(fs, r->key, r->klen);
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
		rc = file_exists(fs, r->key, r->klen);
		if (rc > 0)
			r->kind = BCFS_FILE;
	}
	if (rc > 0)
		rc = 0;
out:
	free(kp);
	return rc;
}

struct bcfs_inode *bcfs_req_inode(fuse_req_t req, fuse_ino_t ino)
{
	return bcfs_inode_find(bcfs_of(req), ino);
}

/* Reply with an entry for (kind, key), taking one lookup on its inode. */
static void reply_entry(fuse_req_t req, enum bcfs_kind kind, const char *key, size_t klen)
{
	struct bcfs *fs = bcfs_of(req);
	struct fuse_entry_param e;
	struct bcfs_inode *in;
	int rc;

	/* The key's inode and its attributes in one ns section (see inode_stat_ns). */
	memset(&e, 0, sizeof(e));
	pthread_rwlock_rdlock(&fs->ns);
	in = bcfs_inode_get(fs, kind, key, klen, 1);
	rc = in ? inode_stat_ns(fs, in, &e.attr) : -ENOMEM;
	pthread_rwlock_unlock(&fs->ns);
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *dir;
	struct resolved r;
	int rc;

	atomic_fetch_add(&fs->n.lookups, 1);
	if (bcfs_ctl_is(parent) || (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME))) {
		bcfs_ctl_lookup(fs, req, parent, name);
		return;
	}
	dir = bcfs_req_inode(req, parent);
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
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : bcfs_req_inode(req, ino);

	if (in)
		bcfs_inode_forget(bcfs_of(req), in, nlookup);
	fuse_reply_none(req);
}

static void bcfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list)
{
	for (size_t i = 0; i < count; i++) {
		struct bcfs_inode *in =
			bcfs_ctl_is(list[i].ino) ? NULL : bcfs_req_inode(req, list[i].ino);

		if (in)
			bcfs_inode_forget(bcfs_of(req), in, list[i].nlookup);
	}
	fuse_reply_none(req);
}

static void bcfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
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
	in = bcfs_req_inode(req, ino);
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

/*
 * chmod, chown, utimens of a file (ns held for reading). A created file that has no record
 * yet (pending) keeps the change with the metadata its first record will carry: cp -a
 * and tar -x set owner, mode and times between the write and the close, and each
 * change would otherwise append a record of its own. Any other file gets its buffered
 * data written first (the metadata read next then has the current mtime), then a
 * metadata record.
 */
static int set_file_attrs(struct bcfs *fs, struct bcfs_inode *in, const struct stat *attr,
			  int to_set)
{
	struct bcfs_meta m;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	if (!in->pending || in->gone) {
		/* Not pending now, so never again, whatever happens between the locks. */
		pthread_mutex_unlock(&in->lock);
		rc = bcfs_data_flush(fs, in);
		pthread_mutex_lock(&in->lock);
	}
	memset(&m, 0, sizeof(m));
	if (!rc)
		rc = in->gone ? -ENOENT : bcfs_inode_meta_locked(fs, in, &m, NULL);
	if (!rc) {
		if (in->mtime_dirty)
			m.mtime_ns = in->mtime_ns;
		apply_attrs(&m, attr, to_set);
		rc = bcfs_data_meta_locked(fs, in, &m);
		bcfs_meta_release(&m);
	}
	pthread_mutex_unlock(&in->lock);
	return rc;
}

static void bcfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
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
	in = bcfs_req_inode(req, ino);
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
			rc = bcfs_inode_meta(fs, in, &m, NULL);
			if (!rc) {
				apply_attrs(&m, attr, to_set);
				rc = bcfs_dir_meta_store(fs, in->key, in->klen, &m);
				pthread_mutex_lock(&in->lock);
				if (rc)
					bcfs_inode_meta_drop_locked(in);
				else
					bcfs_inode_meta_set_locked(in, &m, 0);
				pthread_mutex_unlock(&in->lock);
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
		rc = set_file_attrs(fs, in, attr, to_set);
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
	rc = bcfs_key_exists(fs, BCFS_SPACE_FS, mk, mlen);
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

/*
 * The checks a change of the entry name in directory parent starts with: the control area
 * and its name are off limits (EPERM, or EEXIST when creating that name), the directory
 * must still be known (ESTALE) and the mount writable (EROFS). Returns 0 or the errno.
 */
static int ns_change_check(struct bcfs *fs, fuse_ino_t parent, struct bcfs_inode *dir,
			   const char *name, bool creating)
{
	if (bcfs_ctl_is(parent))
		return EPERM;
	if (parent == FUSE_ROOT_ID && !strcmp(name, BCFS_CTL_NAME))
		return creating ? EEXIST : EPERM;
	if (!dir)
		return ESTALE;
	return fs->ro ? EROFS : 0;
}

static void new_file(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     const char *target, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *dir = bcfs_req_inode(req, parent), *in = NULL;
	struct resolved r = {0};
	struct bcfs_meta m;
	uint8_t *blob = NULL;
	size_t blen;
	int rc;

	rc = ns_change_check(fs, parent, dir, name, true);
	if (rc) {
		fuse_reply_err(req, rc);
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
	if (fi) {
		/* create(): the record waits for the first flush, which normally carries the
		 * data too (handle.c); until then the table answers for the file. */
		in = bcfs_inode_get(fs, BCFS_FILE, r.base, r.blen, 1);
		if (!in) {
			rc = -ENOMEM;
		} else {
			pthread_mutex_lock(&in->lock);
			bcfs_inode_meta_set_locked(in, &m, 0);
			bcfs_inode_set_pending_locked(fs, in, true);
			pthread_mutex_unlock(&in->lock);
		}
		bcfs_meta_release(&m);
		goto out;
	}
	rc = meta_blob(&m, &blob, &blen);
	if (!rc)
		rc = bc_put_ex(fs->db, BC_SPACE_USER, r.base, r.blen, target ? target : "",
			       target ? strlen(target) : 0, blob, blen, 0);
	if (!rc) {
		in = bcfs_inode_get(fs, BCFS_FILE, r.base, r.blen, 1);
		if (!in)
			rc = -ENOMEM;
	}
	if (!rc) {
		pthread_mutex_lock(&in->lock);
		bcfs_inode_meta_set_locked(in, &m, target ? strlen(target) : 0);
		pthread_mutex_unlock(&in->lock);
	}
	bcfs_meta_release(&m);
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *in = bcfs_ctl_is(ino) ? NULL : bcfs_req_inode(req, ino);
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *dir = bcfs_req_inode(req, parent);
	struct resolved r = {0};
	struct bcfs_meta m;
	int rc;

	rc = ns_change_check(fs, parent, dir, name, true);
	if (rc) {
		fuse_reply_err(req, rc);
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
	rc = bcfs_dir_meta_store(fs, r.key, r.klen, &m);
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *dir = bcfs_req_inode(req, parent), *in;
	struct resolved r = {0};
	struct bc_batch *b = NULL;
	char okey[32], *pkp = NULL;
	size_t olen = 0, pkplen;
	bool orphan = false;
	int rc;

	rc = ns_change_check(fs, parent, dir, name, false);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	atomic_fetch_add(&fs->n.unlinks, 1);
	pthread_rwlock_wrlock(&fs->ns);
	/* What follows reads and rewrites records: give created files theirs first. */
	rc = bcfs_inode_flush_pending(fs, true);
	if (rc)
		goto out;
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
	rc = bcfs_key_exists(fs, BC_SPACE_USER, kp, kplen - 1);
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *dir = bcfs_req_inode(req, parent), *in;
	struct resolved r = {0};
	struct bc_batch *b = NULL;
	char *pkp = NULL, *mk = NULL;
	size_t pkplen, mlen;
	int rc;

	rc = ns_change_check(fs, parent, dir, name, false);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	atomic_fetch_add(&fs->n.rmdirs, 1);
	pthread_rwlock_wrlock(&fs->ns);
	/* What follows reads and rewrites records: give created files theirs first. */
	rc = bcfs_inode_flush_pending(fs, true);
	if (rc)
		goto out;
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
	struct bcfs *fs = bcfs_of(req);
	struct bcfs_inode *sdir = bcfs_req_inode(req, parent),
			  *ddir = bcfs_req_inode(req, newparent);
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
	/* What follows reads and rewrites records: give created files theirs first. */
	rc = bcfs_inode_flush_pending(fs, true);
	if (rc)
		goto out;
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

static void bcfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct bcfs *fs = bcfs_of(req);
	struct statvfs sv;
	struct bc_stats st = {0};

	(void)ino;
	if (statvfs(fs->datadir, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	if (!bc_stats_get(fs->db, &st)) {
		/* Files in use: every key, and the created files whose record is still due. */
		sv.f_files = st.keys + atomic_load(&fs->npending) + sv.f_ffree;
		bc_stats_release(&st);
	}
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

/* Load the metadata of ino (file or directory); *in receives the inode. */
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
