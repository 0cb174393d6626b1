// SPDX-License-Identifier: MIT
/*
 * Directory listing: opendir builds the entries of one directory from an ordered scan of
 * the keys under its prefix (skipping each child directory's subtree with one seek, so a
 * listing costs in proportion to the directory's entries, not the store) plus the
 * explicit directory markers in space 1, mapped to names by core_namemap.c; readdir serves
 * them by offset; releasedir frees them.
 */
#include "bcfs.h"
#include "core_namemap.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* The listing comes from the keys: files created but not yet written get theirs. */
	rc = bcfs_inode_flush_pending(fs, false);
	if (rc) {
		free(l);
		return rc;
	}
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
		rc = bcfs_key_exists(fs, BC_SPACE_USER, kp, kplen - 1);
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

void bcfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct bcfs_inode *in;

	fi->fh = 0;
	if (bcfs_ctl_is(ino)) {
		fuse_reply_open(req, fi);
		return;
	}
	in = bcfs_req_inode(req, ino);
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

void bcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);
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
	in = bcfs_req_inode(req, ino);
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

void bcfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_list **lp = (struct dir_list **)(uintptr_t)fi->fh;

	(void)ino;
	if (lp) {
		dir_list_free(*lp);
		free(lp);
	}
	fuse_reply_err(req, 0);
}

void bcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct bcfs *fs = bcfs_of(req);

	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, fs->ro ? 0 : -bc_sync(fs->db));
}
