/* SPDX-License-Identifier: MIT */
/*
 * Reversible mapping between engine keys (arbitrary bytes) and paths in the mount.
 * Pure code, no FUSE and no engine calls, so it is unit-tested exhaustively. The mapping
 * is specified in docs/FILESYSTEM.md, section "Name mapping"; this header only names the
 * pieces.
 *
 * A directory is identified by its key prefix `kp`: "" for the root, "a/b/" for the
 * directory a/b, and for a continuation directory (a piece of an over-long component)
 * the prefix up to the end of that piece, which does not end in '/'. A key K under kp
 * (K starts with kp) shows in that directory as one entry, found by bcfs_child_of().
 */
#ifndef BCFS_CORE_NAMEMAP_H
#define BCFS_CORE_NAMEMAP_H

#include <stdbool.h>
#include <stddef.h>

#define BCFS_NAME_MAX 255 /* bytes in one file name */
#define BCFS_PIECE 126 /* key bytes in one continuation name "%+<hex>" */

/* The root name reserved for the control area. */
#define BCFS_CTL_NAME ".bitcask"

enum bcfs_child_kind {
	BCFS_CHILD_NONE = 0, /* the key is under kp but shows in another directory */
	BCFS_CHILD_FILE, /* the key itself is the entry */
	BCFS_CHILD_DIR, /* the entry is a directory holding the key */
};

struct bcfs_child {
	enum bcfs_child_kind kind;
	char name[BCFS_NAME_MAX + 1]; /* NUL-terminated, for FILE and DIR */
	size_t name_len;
	/* DIR: the child directory's kp is key[0..sub_len). FILE: sub_len == klen. */
	size_t sub_len;
	/*
	 * When nonzero, every key starting with key[0..skip_len) gives the same result (or
	 * NONE) in this directory: a listing may continue at the first key after that prefix.
	 */
	size_t skip_len;
};

/*
 * Which entry of directory kp shows key (key must start with kp).
 * Returns 0 and fills *out; -EINVAL if key does not start with kp.
 */
int bcfs_child_of(const void *kp, size_t kplen, const void *key, size_t klen,
		  struct bcfs_child *out);

enum bcfs_name_kind {
	BCFS_NAME_PLAIN = 0, /* a component: file key kp+bytes, or directory kp+bytes+"/" */
	BCFS_NAME_CONT, /* a continuation directory whose kp is kp+bytes */
	BCFS_NAME_SHADOW, /* "%@": the file whose key is this directory's kp minus '/' */
};

/*
 * Parse name (as the kernel passes it: 1..255 bytes, no '/' or NUL) inside directory kp.
 * On success writes kp followed by the decoded bytes to buf (cap bytes; kplen + namelen
 * always suffices) and their length to *len. For SHADOW, buf holds kp without its '/'.
 * Returns the kind (>= 0); -EINVAL if the name is not the canonical form of any key
 * (a different name would show the same key) or cannot be used in kp;
 * -ENAMETOOLONG if the name is over BCFS_NAME_MAX bytes or the key would exceed maxkey.
 */
int bcfs_name_parse(const void *kp, size_t kplen, const char *name, size_t namelen, char *buf,
		    size_t cap, size_t *len, size_t maxkey);

/* True if kp names a continuation directory (does not end at a component boundary). */
bool bcfs_kp_is_cont(const void *kp, size_t kplen);

/*
 * The path (relative to the mount root, no leading '/') at which key shows as a file when
 * no directory shadows it. Returns a malloc'd NUL-terminated string (caller frees) or NULL
 * on allocation failure.
 */
char *bcfs_key_to_path(const void *key, size_t klen);

/*
 * Inverse of bcfs_key_to_path, also accepting "DIR/%@" shadow names. Writes the key to a
 * malloc'd buffer (*key, caller frees) and its length to *klen. Returns 0, -EINVAL for a
 * path that is not canonical, or -ENAMETOOLONG.
 */
int bcfs_path_to_key(const char *path, char **key, size_t *klen);

#endif
