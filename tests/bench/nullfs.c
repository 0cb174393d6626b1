// SPDX-License-Identifier: MIT
/*
 * nullfs: a FUSE low-level filesystem that stores nothing, the ceiling bitcaskfs is measured
 * against. It runs the way bitcaskfs does (same kernel-visible options: default_permissions,
 * fsname and subtype; the same init (no atomic O_TRUNC, no splice read); 1 s entry and attr
 * timeouts, uncached negative entries, keep_cache off at open; the multi-threaded loop with
 * clone_fd off and 10 idle threads), so the difference between the two is the work bitcaskfs
 * does, not how it talks to the kernel. Names, modes, sizes and times live in an in-memory
 * table (lookup, create, mkdir, symlink, rename, unlink, readdir and setattr work); data is
 * not kept: a read returns zeros of the requested size up to the file size, a write is
 * accepted and discarded. Inodes are never freed: it is a benchmark tool for one run.
 *
 *   nullfs [-f] [-s] [-o opt,...] MOUNTPOINT      unmount with fusermount3 -u MOUNTPOINT
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT 1.0
#define NBUCKETS (1u << 20)
#define ZEROS (1u << 20)

struct node {
	struct stat st;
	struct node *parent;
	char *name;
	char *link;
	struct node *hnext; /* (parent, name) hash chain */
	struct node *child, *sibling; /* directory children, singly linked */
	struct node **sprev; /* the pointer that points at us in the sibling list */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct node **nodes; /* by inode number */
static size_t nnodes, capnodes;
static struct node *buckets[NBUCKETS];
static char zeros[ZEROS];

static uint64_t hash(uint64_t parent, const char *name)
{
	uint64_t h = parent * UINT64_C(0x9E3779B97F4A7C15);

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * UINT64_C(0x100000001B3);
	return h;
}

static struct node **slot(const struct node *dir, const char *name)
{
	struct node **p = &buckets[hash(dir->st.st_ino, name) % NBUCKETS];

	for (; *p; p = &(*p)->hnext)
		if ((*p)->parent == dir && !strcmp((*p)->name, name))
			break;
	return p;
}

static struct node *get(fuse_ino_t ino)
{
	return ino < nnodes ? nodes[ino] : NULL;
}

static void attach(struct node *dir, struct node *n, const char *name)
{
	struct node **s;

	n->parent = dir;
	n->name = strdup(name);
	s = slot(dir, name);
	n->hnext = *s;
	*s = n;
	n->sibling = dir->child;
	if (dir->child)
		dir->child->sprev = &n->sibling;
	dir->child = n;
	n->sprev = &dir->child;
}

static void detach(struct node *n)
{
	struct node **s = slot(n->parent, n->name);

	*s = n->hnext;
	*n->sprev = n->sibling;
	if (n->sibling)
		n->sibling->sprev = n->sprev;
	free(n->name);
	n->name = NULL;
	n->parent = NULL;
}

static struct node *make(mode_t mode, const struct fuse_ctx *ctx)
{
	struct node *n = calloc(1, sizeof(*n));
	struct timespec t;

	if (!n)
		return NULL;
	if (nnodes == capnodes) {
		size_t cap = capnodes ? 2 * capnodes : 1024;
		struct node **nn = realloc(nodes, cap * sizeof(*nn));
		if (!nn) {
			free(n);
			return NULL;
		}
		nodes = nn;
		capnodes = cap;
	}
	clock_gettime(CLOCK_REALTIME, &t);
	n->st.st_ino = nnodes;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_uid = ctx ? ctx->uid : getuid();
	n->st.st_gid = ctx ? ctx->gid : getgid();
	n->st.st_blksize = 4096;
	n->st.st_atim = n->st.st_mtim = n->st.st_ctim = t;
	nodes[nnodes++] = n;
	return n;
}

static void reply_entry(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = n->st.st_ino;
	e.generation = 1;
	e.attr = n->st;
	e.attr.st_blocks = (n->st.st_size + 511) / 512;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void null_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~(unsigned)FUSE_CAP_SPLICE_READ;
}

static void null_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *dir, *n = NULL;

	pthread_mutex_lock(&lock);
	dir = get(parent);
	if (dir)
		n = *slot(dir, name);
	if (n) {
		reply_entry(req, n);
	} else if (dir) {
		struct fuse_entry_param e = {.entry_timeout = 0};
		fuse_reply_entry(req, &e);
	} else {
		fuse_reply_err(req, ESTALE);
	}
	pthread_mutex_unlock(&lock);
}

static void null_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void null_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void null_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = get(ino);
	if (n) {
		struct stat st = n->st;
		st.st_blocks = (st.st_size + 511) / 512;
		fuse_reply_attr(req, &st, TIMEOUT);
	} else {
		fuse_reply_err(req, ESTALE);
	}
	pthread_mutex_unlock(&lock);
}

static void null_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			 struct fuse_file_info *fi)
{
	struct node *n;
	struct timespec t;

	(void)fi;
	clock_gettime(CLOCK_REALTIME, &t);
	pthread_mutex_lock(&lock);
	n = get(ino);
	if (!n) {
		pthread_mutex_unlock(&lock);
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		n->st.st_mode = (n->st.st_mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		n->st.st_uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		n->st.st_gid = attr->st_gid;
	if (to_set & FUSE_SET_ATTR_SIZE)
		n->st.st_size = attr->st_size;
	if (to_set & FUSE_SET_ATTR_ATIME)
		n->st.st_atim = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME)
		n->st.st_mtim = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		n->st.st_atim = t;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		n->st.st_mtim = t;
	n->st.st_ctim = t;
	struct stat st = n->st;
	pthread_mutex_unlock(&lock);
	st.st_blocks = (st.st_size + 511) / 512;
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void null_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n;

	pthread_mutex_lock(&lock);
	n = get(ino);
	if (n && n->link)
		fuse_reply_readlink(req, n->link);
	else
		fuse_reply_err(req, n ? EINVAL : ESTALE);
	pthread_mutex_unlock(&lock);
}

/* mknod, mkdir, symlink and create; fi non-NULL for create. */
static void add(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, const char *link,
		struct fuse_file_info *fi)
{
	struct node *dir, *n;

	pthread_mutex_lock(&lock);
	dir = get(parent);
	if (!dir || !S_ISDIR(dir->st.st_mode)) {
		fuse_reply_err(req, dir ? ENOTDIR : ESTALE);
	} else if (*slot(dir, name)) {
		fuse_reply_err(req, EEXIST);
	} else if (!(n = make(mode, fuse_req_ctx(req)))) {
		fuse_reply_err(req, ENOMEM);
	} else {
		if (link) {
			n->link = strdup(link);
			n->st.st_size = (off_t)strlen(link);
		}
		attach(dir, n, name);
		if (S_ISDIR(mode))
			dir->st.st_nlink++;
		if (fi) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.ino = n->st.st_ino;
			e.generation = 1;
			e.attr = n->st;
			e.attr_timeout = e.entry_timeout = TIMEOUT;
			fi->fh = 0;
			fi->keep_cache = 0;
			fuse_reply_create(req, &e, fi);
		} else {
			reply_entry(req, n);
		}
	}
	pthread_mutex_unlock(&lock);
}

static void null_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)rdev;
	add(req, parent, name, mode, NULL, NULL);
}

static void null_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	add(req, parent, name, S_IFDIR | (mode & 07777), NULL, NULL);
}

static void null_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	add(req, parent, name, S_IFLNK | 0777, link, NULL);
}

static void null_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	add(req, parent, name, S_IFREG | (mode & 07777), NULL, fi);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct node *d, *n = NULL;
	int err = 0;

	pthread_mutex_lock(&lock);
	d = get(parent);
	if (d)
		n = *slot(d, name);
	if (!n)
		err = ENOENT;
	else if (dir && !S_ISDIR(n->st.st_mode))
		err = ENOTDIR;
	else if (!dir && S_ISDIR(n->st.st_mode))
		err = EISDIR;
	else if (dir && n->child)
		err = ENOTEMPTY;
	if (!err) {
		detach(n);
		n->st.st_nlink = 0;
		if (dir)
			d->st.st_nlink--;
	}
	pthread_mutex_unlock(&lock);
	fuse_reply_err(req, err);
}

static void null_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void null_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

static void null_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			const char *newname, unsigned int flags)
{
	struct node *d, *nd, *n = NULL, *old;
	int err = 0;

	pthread_mutex_lock(&lock);
	d = get(parent);
	nd = get(newparent);
	if (d && nd)
		n = *slot(d, name);
	if (!n || !nd) {
		err = ENOENT;
	} else if (flags) {
		err = EINVAL;
	} else if ((old = *slot(nd, newname)) != n) {
		if (old && old->child) {
			err = ENOTEMPTY;
		} else {
			if (old)
				detach(old);
			detach(n);
			attach(nd, n, newname);
		}
	}
	pthread_mutex_unlock(&lock);
	fuse_reply_err(req, err);
}

static void null_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fi->fh = 0;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

static void null_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct node *n;
	off_t end = 0;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = get(ino);
	if (n)
		end = n->st.st_size;
	pthread_mutex_unlock(&lock);
	if (off >= end)
		size = 0;
	else if ((off_t)size > end - off)
		size = (size_t)(end - off);
	fuse_reply_buf(req, zeros, size < ZEROS ? size : ZEROS);
}

static void null_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct node *n;

	(void)buf;
	(void)fi;
	pthread_mutex_lock(&lock);
	n = get(ino);
	if (n && off + (off_t)size > n->st.st_size)
		n->st.st_size = off + (off_t)size;
	pthread_mutex_unlock(&lock);
	fuse_reply_write(req, size);
}

static void null_ok(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void null_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	null_ok(req, ino, fi);
}

struct listing {
	size_t n;
	struct {
		fuse_ino_t ino;
		mode_t mode;
		char *name;
	} e[];
};

static void null_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *d, *c;
	struct listing *l = NULL;
	size_t n = 2;

	pthread_mutex_lock(&lock);
	d = get(ino);
	if (!d || !S_ISDIR(d->st.st_mode)) {
		pthread_mutex_unlock(&lock);
		fuse_reply_err(req, d ? ENOTDIR : ESTALE);
		return;
	}
	for (c = d->child; c; c = c->sibling)
		n++;
	l = malloc(sizeof(*l) + n * sizeof(l->e[0]));
	if (l) {
		l->n = 0;
		l->e[l->n].ino = ino;
		l->e[l->n].mode = S_IFDIR;
		l->e[l->n++].name = strdup(".");
		l->e[l->n].ino = d->parent ? d->parent->st.st_ino : ino;
		l->e[l->n].mode = S_IFDIR;
		l->e[l->n++].name = strdup("..");
		for (c = d->child; c; c = c->sibling) {
			l->e[l->n].ino = c->st.st_ino;
			l->e[l->n].mode = c->st.st_mode;
			l->e[l->n++].name = strdup(c->name);
		}
	}
	pthread_mutex_unlock(&lock);
	if (!l) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)l;
	fuse_reply_open(req, fi);
}

static void null_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < l->n; i++) {
		struct stat st = {.st_ino = l->e[i].ino, .st_mode = l->e[i].mode};
		size_t need = fuse_add_direntry(req, buf + used, size - used, l->e[i].name, &st,
						(off_t)i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void null_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;

	(void)ino;
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l);
	fuse_reply_err(req, 0);
}

static void null_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	null_ok(req, ino, fi);
}

static void null_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs s = {.f_bsize = 4096,
			    .f_frsize = 4096,
			    .f_blocks = UINT64_C(1) << 28,
			    .f_bfree = UINT64_C(1) << 27,
			    .f_bavail = UINT64_C(1) << 27,
			    .f_files = UINT64_C(1) << 30,
			    .f_ffree = UINT64_C(1) << 29,
			    .f_namemax = 255};

	(void)ino;
	fuse_reply_statfs(req, &s);
}

static void null_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			  size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, 0);
}

static void null_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENODATA);
}

static void null_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	if (size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_xattr(req, 0);
}

static void null_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, ENODATA);
}

static void null_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	(void)ino;
	(void)mask;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops null_ops = {
	.init = null_init,
	.lookup = null_lookup,
	.forget = null_forget,
	.forget_multi = null_forget_multi,
	.getattr = null_getattr,
	.setattr = null_setattr,
	.readlink = null_readlink,
	.mknod = null_mknod,
	.mkdir = null_mkdir,
	.unlink = null_unlink,
	.rmdir = null_rmdir,
	.symlink = null_symlink,
	.rename = null_rename,
	.open = null_open,
	.read = null_read,
	.write = null_write,
	.flush = null_ok,
	.release = null_ok,
	.fsync = null_fsync,
	.opendir = null_opendir,
	.readdir = null_readdir,
	.releasedir = null_releasedir,
	.fsyncdir = null_fsyncdir,
	.statfs = null_statfs,
	.setxattr = null_setxattr,
	.getxattr = null_getxattr,
	.listxattr = null_listxattr,
	.removexattr = null_removexattr,
	.access = null_access,
	.create = null_create,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_session *se;
	struct fuse_loop_config *cfg;
	struct node *root;
	int rc = 1;

	if (fuse_parse_cmdline(&args, &opts))
		return 1;
	if (opts.show_help || !opts.mountpoint) {
		printf("usage: %s [-f] [-s] [-o opt,...] MOUNTPOINT\n", argv[0]);
		fuse_lowlevel_help();
		return opts.show_help ? 0 : 1;
	}
	make(S_IFDIR | 0755, NULL); /* inode 0: unused */
	root = make(S_IFDIR | 0755, NULL);
	if (!root || fuse_opt_add_arg(&args, "-odefault_permissions") ||
	    fuse_opt_add_arg(&args, "-ofsname=nullfs") ||
	    fuse_opt_add_arg(&args, "-osubtype=nullfs"))
		return 1;
	se = fuse_session_new(&args, &null_ops, sizeof(null_ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se))
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint))
		goto out_signals;
	if (fuse_daemonize(opts.foreground))
		goto out_unmount;
	if (opts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_idle_threads(cfg, 10);
		rc = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return rc ? 1 : 0;
}
