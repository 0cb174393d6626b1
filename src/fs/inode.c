// SPDX-License-Identifier: MIT
/*
 * The inode table: which key (or directory key prefix) each inode number the kernel holds
 * stands for, with the kernel's lookup count. Numbers are handed out on lookup from a
 * 64-bit counter and never reused within a mount, so the generation is always 1. Two
 * hashes index the same inodes: by number, and by (kind, key) so a second lookup of the
 * same path returns the same number. An inode is freed when the kernel forgets its last
 * lookup and no handle is open; an orphan (unlinked while open) loses its key then.
 *
 * Each inode also caches its key's metadata (bcfs.h, "Metadata cache"): filled on the
 * first load and by every write through the daemon, freed with the inode, so its memory
 * is bounded by the inodes the kernel holds (xattrs are cached only while small). A file
 * made by create() is "pending" until its first record is written (handle.c); the table
 * answers for it meanwhile (bcfs_inode_file_known) and gives it its record before
 * anything that lists keys (bcfs_inode_flush_pending) or when it is freed.
 */
#include "bcfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(enum bcfs_kind kind, const void *key, size_t klen)
{
	const uint8_t *p = key;
	uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static size_t ino_slot(struct bcfs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) % fs->nbuckets;
}

static size_t key_slot(struct bcfs *fs, struct bcfs_inode *in)
{
	return (size_t)(hash_key(in->kind, in->key, in->klen) % fs->nbuckets);
}

static void link_key(struct bcfs *fs, struct bcfs_inode *in)
{
	size_t s = key_slot(fs, in);

	in->next_key = fs->by_key[s];
	fs->by_key[s] = in;
	in->hashed = true;
}

static void unlink_key(struct bcfs *fs, struct bcfs_inode *in)
{
	struct bcfs_inode **pp;

	if (!in->hashed)
		return;
	for (pp = &fs->by_key[key_slot(fs, in)]; *pp; pp = &(*pp)->next_key)
		if (*pp == in) {
			*pp = in->next_key;
			break;
		}
	in->hashed = false;
}

static void link_ino(struct bcfs *fs, struct bcfs_inode *in)
{
	size_t s = ino_slot(fs, in->ino);

	in->next_ino = fs->by_ino[s];
	fs->by_ino[s] = in;
}

static void unlink_ino(struct bcfs *fs, struct bcfs_inode *in)
{
	struct bcfs_inode **pp;

	for (pp = &fs->by_ino[ino_slot(fs, in->ino)]; *pp; pp = &(*pp)->next_ino)
		if (*pp == in) {
			*pp = in->next_ino;
			return;
		}
}

/* Grow both hashes when they get crowded (itable_lock held). */
static void maybe_grow(struct bcfs *fs)
{
	size_t old = fs->nbuckets, n = old * 2;
	struct bcfs_inode **bi, **bk, *all = NULL, *in, *next;

	if (fs->ninodes < old)
		return;
	bi = calloc(n, sizeof(*bi));
	bk = calloc(n, sizeof(*bk));
	if (!bi || !bk) {
		free(bi);
		free(bk);
		return; /* keep the old, longer chains */
	}
	for (size_t i = 0; i < old; i++)
		for (in = fs->by_ino[i]; in; in = next) {
			next = in->next_ino;
			in->next_ino = all;
			all = in;
		}
	free(fs->by_ino);
	free(fs->by_key);
	fs->by_ino = bi;
	fs->by_key = bk;
	fs->nbuckets = n;
	for (in = all; in; in = next) {
		next = in->next_ino;
		link_ino(fs, in);
		if (in->hashed)
			link_key(fs, in);
	}
}

static struct bcfs_inode *new_inode(enum bcfs_kind kind, const void *key, size_t klen)
{
	struct bcfs_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->key = malloc(klen + 1);
	if (!in->key) {
		free(in);
		return NULL;
	}
	memcpy(in->key, key, klen);
	in->key[klen] = 0;
	in->klen = klen;
	in->kind = kind;
	pthread_mutex_init(&in->lock, NULL);
	return in;
}

static void free_inode(struct bcfs *fs, struct bcfs_inode *in)
{
	if (in->pending)
		atomic_fetch_sub(&fs->npending, 1);
	bcfs_meta_release(&in->meta);
	if (in->dlen)
		atomic_fetch_sub(&fs->dirty_bytes, in->dlen);
	pthread_mutex_destroy(&in->lock);
	free(in->dbuf);
	free(in->key);
	free(in);
}

int bcfs_itable_init(struct bcfs *fs)
{
	fs->nbuckets = 1024;
	fs->by_ino = calloc(fs->nbuckets, sizeof(*fs->by_ino));
	fs->by_key = calloc(fs->nbuckets, sizeof(*fs->by_key));
	fs->next_ino = BCFS_INO_FIRST;
	pthread_mutex_init(&fs->itable_lock, NULL);
	fs->root = new_inode(BCFS_DIR, "", 0);
	if (!fs->by_ino || !fs->by_key || !fs->root)
		return -ENOMEM;
	fs->root->ino = FUSE_ROOT_ID;
	fs->root->nlookup = 1; /* never forgotten */
	link_ino(fs, fs->root);
	link_key(fs, fs->root);
	fs->ninodes = 1;
	return 0;
}

void bcfs_itable_destroy(struct bcfs *fs)
{
	if (!fs->by_ino)
		return;
	for (size_t i = 0; i < fs->nbuckets; i++) {
		struct bcfs_inode *in = fs->by_ino[i], *next;

		for (; in; in = next) {
			next = in->next_ino;
			free_inode(fs, in);
		}
	}
	free(fs->by_ino);
	free(fs->by_key);
	fs->by_ino = fs->by_key = NULL;
	pthread_mutex_destroy(&fs->itable_lock);
}

static struct bcfs_inode *find_key(struct bcfs *fs, enum bcfs_kind kind, const void *key,
				   size_t klen)
{
	struct bcfs_inode *in = fs->by_key[hash_key(kind, key, klen) % fs->nbuckets];

	for (; in; in = in->next_key)
		if (in->kind == kind && in->klen == klen && !memcmp(in->key, key, klen))
			return in;
	return NULL;
}

struct bcfs_inode *bcfs_inode_get(struct bcfs *fs, enum bcfs_kind kind, const void *key,
				  size_t klen, uint64_t n)
{
	struct bcfs_inode *in;

	pthread_mutex_lock(&fs->itable_lock);
	in = find_key(fs, kind, key, klen);
	if (!in) {
		in = new_inode(kind, key, klen);
		if (!in)
			goto out;
		in->ino = fs->next_ino++;
		maybe_grow(fs);
		link_ino(fs, in);
		link_key(fs, in);
		fs->ninodes++;
	}
	in->nlookup += n;
out:
	pthread_mutex_unlock(&fs->itable_lock);
	return in;
}

struct bcfs_inode *bcfs_inode_find(struct bcfs *fs, fuse_ino_t ino)
{
	struct bcfs_inode *in;

	pthread_mutex_lock(&fs->itable_lock);
	for (in = fs->by_ino[ino_slot(fs, ino)]; in; in = in->next_ino)
		if (in->ino == ino)
			break;
	pthread_mutex_unlock(&fs->itable_lock);
	return in;
}

struct bcfs_inode *bcfs_inode_lookup_key(struct bcfs *fs, enum bcfs_kind kind, const void *key,
					 size_t klen)
{
	struct bcfs_inode *in;

	pthread_mutex_lock(&fs->itable_lock);
	in = find_key(fs, kind, key, klen);
	pthread_mutex_unlock(&fs->itable_lock);
	return in;
}

/* Free in if nothing refers to it any more (itable_lock held); returns the orphan's key. */
static bool maybe_free(struct bcfs *fs, struct bcfs_inode *in)
{
	if (in == fs->root || in->nlookup || in->nopen)
		return false;
	unlink_key(fs, in);
	unlink_ino(fs, in);
	fs->ninodes--;
	return true;
}

static void drop_orphan(struct bcfs *fs, struct bcfs_inode *in)
{
	int rc;

	/* A created file whose record was never written (its creator's reply failed, or the
	 * write at close did): write it now, so a successful create is never lost. */
	if (in->pending && (rc = bcfs_data_flush(fs, in)))
		bcfs_log(BC_LOG_ERROR, "writing a created file: %s", bc_strerror(rc));

	pthread_mutex_lock(&in->lock);
	if (in->orphan) {
		rc = bc_delete(fs->db, in->space, in->key, in->klen);
		if (rc && rc != -ENOENT)
			bcfs_log(BC_LOG_WARN, "removing orphan: %s", bc_strerror(rc));
		in->orphan = false;
		in->gone = true;
	}
	pthread_mutex_unlock(&in->lock);
}

void bcfs_inode_forget(struct bcfs *fs, struct bcfs_inode *in, uint64_t n)
{
	bool freeit;

	/* Shared ns: a namespace change that found this inode by key finishes first. */
	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&fs->itable_lock);
	in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
	freeit = maybe_free(fs, in);
	pthread_mutex_unlock(&fs->itable_lock);
	if (freeit) {
		drop_orphan(fs, in);
		free_inode(fs, in);
	}
	pthread_rwlock_unlock(&fs->ns);
}

void bcfs_inode_open(struct bcfs *fs, struct bcfs_inode *in)
{
	pthread_mutex_lock(&fs->itable_lock);
	in->nopen++;
	pthread_mutex_unlock(&fs->itable_lock);
}

int bcfs_inode_nopen(struct bcfs *fs, struct bcfs_inode *in)
{
	int n;

	pthread_mutex_lock(&fs->itable_lock);
	n = in->nopen;
	pthread_mutex_unlock(&fs->itable_lock);
	return n;
}

/*
 * An orphan's key outlives its last close until the kernel forgets the inode too: a path
 * walk that found the inode before the unlink may still open it, as on a local filesystem.
 */
void bcfs_inode_release(struct bcfs *fs, struct bcfs_inode *in)
{
	bool freeit;

	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&fs->itable_lock);
	in->nopen--;
	freeit = maybe_free(fs, in);
	pthread_mutex_unlock(&fs->itable_lock);
	if (freeit) {
		drop_orphan(fs, in);
		free_inode(fs, in);
	}
	pthread_rwlock_unlock(&fs->ns);
}

int bcfs_inode_rekey(struct bcfs *fs, struct bcfs_inode *in, unsigned space, const void *key,
		     size_t klen)
{
	char *k = malloc(klen + 1);

	if (!k)
		return -ENOMEM;
	memcpy(k, key, klen);
	k[klen] = 0;
	pthread_mutex_lock(&in->lock);
	pthread_mutex_lock(&fs->itable_lock);
	unlink_key(fs, in);
	free(in->key);
	in->key = k;
	in->klen = klen;
	in->space = space;
	in->meta_gen++; /* a load of the old key must not fill the cache */
	if (space == BC_SPACE_USER)
		link_key(fs, in);
	pthread_mutex_unlock(&fs->itable_lock);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

void bcfs_inode_unhash(struct bcfs *fs, struct bcfs_inode *in)
{
	pthread_mutex_lock(&in->lock);
	pthread_mutex_lock(&fs->itable_lock);
	unlink_key(fs, in);
	in->gone = true;
	pthread_mutex_unlock(&fs->itable_lock);
	pthread_mutex_unlock(&in->lock);
}

int bcfs_inode_rename_prefix(struct bcfs *fs, const void *from, size_t flen, const void *to,
			     size_t tlen)
{
	struct bcfs_inode *list = NULL, *in;
	int rc = 0;

	/* Collect under the table lock (ns held for writing: no inode can go away). */
	pthread_mutex_lock(&fs->itable_lock);
	for (size_t i = 0; i < fs->nbuckets; i++)
		for (in = fs->by_ino[i]; in; in = in->next_ino)
			if (in->hashed && in->space == BC_SPACE_USER && in->klen >= flen &&
			    !memcmp(in->key, from, flen)) {
				unlink_key(fs, in);
				in->next_key = list;
				list = in;
			}
	pthread_mutex_unlock(&fs->itable_lock);
	while (list) {
		struct bcfs_inode *next = list->next_key;
		size_t nl = list->klen - flen + tlen;
		char *k = malloc(nl + 1);

		in = list;
		pthread_mutex_lock(&in->lock);
		if (k) {
			memcpy(k, to, tlen);
			memcpy(k + tlen, in->key + flen, in->klen - flen);
			k[nl] = 0;
			free(in->key);
			in->key = k;
			in->klen = nl;
			in->meta_gen++;
		} else {
			rc = -ENOMEM;
		}
		pthread_mutex_lock(&fs->itable_lock);
		link_key(fs, in);
		pthread_mutex_unlock(&fs->itable_lock);
		pthread_mutex_unlock(&in->lock);
		list = next;
	}
	return rc;
}

int bcfs_inode_key(struct bcfs_inode *in, unsigned *space, char **key, size_t *klen)
{
	pthread_mutex_lock(&in->lock);
	*key = malloc(in->klen + 1);
	if (*key) {
		memcpy(*key, in->key, in->klen + 1);
		*klen = in->klen;
		*space = in->space;
	}
	pthread_mutex_unlock(&in->lock);
	return *key ? 0 : -ENOMEM;
}

void bcfs_inode_flush_all(struct bcfs *fs)
{
	pthread_mutex_lock(&fs->itable_lock);
	for (size_t i = 0; i < fs->nbuckets; i++)
		for (struct bcfs_inode *in = fs->by_ino[i]; in; in = in->next_ino) {
			pthread_mutex_unlock(&fs->itable_lock);
			/* Only the unmount path calls this, after the loop ended: no races. */
			if (in->kind == BCFS_FILE)
				bcfs_data_flush(fs, in);
			pthread_mutex_lock(&fs->itable_lock);
		}
	pthread_mutex_unlock(&fs->itable_lock);
}

/*
 * Flush every inode that want() picks (called under itable_lock). Each one is pinned as an
 * open would pin it, so none is freed while it is flushed without the table lock, unless
 * ns_held (ns held for writing keeps every inode alive; flushed with bcfs_data_flush then).
 */
static int flush_where(struct bcfs *fs, bool (*want)(const struct bcfs_inode *), bool ns_held)
{
	struct bcfs_inode **v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	pthread_mutex_lock(&fs->itable_lock);
	for (size_t i = 0; i < fs->nbuckets && !rc; i++)
		for (struct bcfs_inode *in = fs->by_ino[i]; in; in = in->next_ino) {
			if (!want(in))
				continue;
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct bcfs_inode **nv = realloc(v, nc * sizeof(*nv));

				if (!nv) {
					rc = -ENOMEM;
					break;
				}
				v = nv;
				cap = nc;
			}
			if (!ns_held)
				in->nopen++;
			v[n++] = in;
		}
	pthread_mutex_unlock(&fs->itable_lock);
	for (size_t i = 0; i < n; i++) {
		int frc = ns_held ? bcfs_data_flush(fs, v[i]) : bcfs_data_flush_ns(fs, v[i]);

		if (frc && !rc)
			rc = frc;
		if (!ns_held)
			bcfs_inode_release(fs, v[i]);
	}
	free(v);
	return rc;
}

/* Only open files buffer writes. */
static bool is_open_file(const struct bcfs_inode *in)
{
	return in->kind == BCFS_FILE && in->nopen;
}

int bcfs_inode_flush_open(struct bcfs *fs)
{
	return flush_where(fs, is_open_file, false);
}

uint64_t bcfs_inode_count(struct bcfs *fs)
{
	uint64_t n;

	pthread_mutex_lock(&fs->itable_lock);
	n = fs->ninodes;
	pthread_mutex_unlock(&fs->itable_lock);
	return n;
}

/* ---- metadata cache ---- */

#define META_CACHE_MAX 256 /* bytes of encoded metadata up to which xattrs are cached */

void bcfs_inode_meta_set_locked(struct bcfs_inode *in, const struct bcfs_meta *m, uint64_t size)
{
	bcfs_meta_release(&in->meta);
	in->meta = *m;
	in->meta.xattrs = NULL;
	in->meta.nxattrs = 0;
	in->meta_full = m->nxattrs == 0;
	if (m->nxattrs && bcfs_meta_size(m) <= META_CACHE_MAX) {
		struct bcfs_meta c;

		if (bcfs_meta_copy(&c, m) == 0) {
			in->meta = c;
			in->meta_full = true;
		}
	}
	in->size = size;
	in->have_meta = true;
	atomic_store(&in->known, true);
	in->meta_gen++;
}

void bcfs_inode_meta_drop_locked(struct bcfs_inode *in)
{
	if (in->pending)
		return; /* no record: the cache is all there is, and it is right */
	bcfs_meta_release(&in->meta);
	in->have_meta = false;
	atomic_store(&in->known, false);
	in->meta_full = false;
	in->meta_gen++;
}

/*
 * Read the metadata of (kind, space, key) from the engine; *size is 0 for directories.
 * *cacheable is false for a key with an expiry time (written by the CLI): it may vanish
 * without the daemon writing anything, so its attributes are read each time.
 */
static int meta_read(struct bcfs *fs, enum bcfs_kind kind, unsigned space, const char *key,
		     size_t klen, struct bcfs_meta *m, uint64_t *size, bool *cacheable)
{
	struct bc_stat st = {0};
	int rc;

	atomic_fetch_add(&fs->n.meta_reads, 1);
	if (kind == BCFS_DIR)
		rc = bcfs_dir_meta(fs, key, klen, m, NULL);
	else
		rc = bcfs_meta_load(fs, space, key, klen, m, &st);
	*size = st.size;
	*cacheable = st.expire_s == 0;
	return rc;
}

int bcfs_inode_meta_locked(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m,
			   uint64_t *size)
{
	uint64_t sz;
	bool cacheable;
	int rc;

	if (in->have_meta && in->meta_full) {
		atomic_fetch_add(&fs->n.meta_hits, 1);
		if (size)
			*size = in->size;
		return bcfs_meta_copy(m, &in->meta);
	}
	/* Writers hold the lock across their engine writes: what is read here is current. */
	rc = meta_read(fs, in->kind, in->space, in->key, in->klen, m, &sz, &cacheable);
	if (rc)
		return rc;
	if (cacheable)
		bcfs_inode_meta_set_locked(in, m, sz);
	if (size)
		*size = sz;
	return 0;
}

int bcfs_inode_meta(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m, uint64_t *size)
{
	int rc;

	memset(m, 0, sizeof(*m));
	pthread_mutex_lock(&in->lock);
	rc = in->gone ? -ENOENT : bcfs_inode_meta_locked(fs, in, m, size);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int bcfs_inode_attr(struct bcfs *fs, struct bcfs_inode *in, struct bcfs_meta *m, uint64_t *size)
{
	struct bcfs_meta lm = {0};
	unsigned space;
	char *key;
	size_t klen;
	uint64_t gen, lsize = 0;
	bool cacheable;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	pthread_mutex_lock(&in->lock);
	if (in->gone) {
		pthread_mutex_unlock(&in->lock);
		return -ENOENT;
	}
	if (in->have_meta) {
		atomic_fetch_add(&fs->n.meta_hits, 1);
		goto fill;
	}
	/* Miss: read without the lock (reads hold none across I/O), and cache what was read
	 * only if nothing changed the inode meanwhile. */
	gen = in->meta_gen;
	space = in->space;
	klen = in->klen;
	key = malloc(klen + 1);
	if (key)
		memcpy(key, in->key, klen + 1);
	pthread_mutex_unlock(&in->lock);
	if (!key)
		return -ENOMEM;
	rc = meta_read(fs, in->kind, space, key, klen, &lm, &lsize, &cacheable);
	free(key);
	if (rc)
		return rc;
	pthread_mutex_lock(&in->lock);
	if (gen == in->meta_gen && !in->gone && cacheable)
		bcfs_inode_meta_set_locked(in, &lm, lsize);
	if (!in->have_meta) {
		/* Changed meanwhile and not cached: report what was read. */
		*m = lm;
		m->xattrs = NULL;
		m->nxattrs = 0;
		*size = lsize;
		bcfs_meta_release(&lm);
		goto overlay;
	}
	bcfs_meta_release(&lm);
fill:
	*m = in->meta;
	m->xattrs = NULL;
	m->nxattrs = 0;
	*size = in->size;
overlay:
	/* Buffered writes are part of the file: their end and their time. */
	if (in->kind == BCFS_FILE) {
		if (in->mtime_dirty)
			m->mtime_ns = m->ctime_ns = in->mtime_ns;
		if (in->dlen && in->doff + in->dlen > *size)
			*size = in->doff + in->dlen;
	}
	pthread_mutex_unlock(&in->lock);
	return 0;
}

void bcfs_inode_set_pending_locked(struct bcfs *fs, struct bcfs_inode *in, bool pending)
{
	if (in->pending == pending)
		return;
	pthread_mutex_lock(&fs->itable_lock);
	in->pending = pending;
	pthread_mutex_unlock(&fs->itable_lock);
	if (pending)
		atomic_fetch_add(&fs->npending, 1);
	else
		atomic_fetch_sub(&fs->npending, 1);
}

bool bcfs_inode_file_known(struct bcfs *fs, const void *key, size_t klen)
{
	struct bcfs_inode *in;
	bool p;

	pthread_mutex_lock(&fs->itable_lock);
	in = find_key(fs, BCFS_FILE, key, klen);
	p = in && (in->pending || atomic_load(&in->known));
	pthread_mutex_unlock(&fs->itable_lock);
	return p;
}

static bool is_pending(const struct bcfs_inode *in)
{
	return in->pending;
}

int bcfs_inode_flush_pending(struct bcfs *fs, bool ns_held)
{
	if (!atomic_load(&fs->npending))
		return 0;
	return flush_where(fs, is_pending, ns_held);
}
