/* SPDX-License-Identifier: MIT */
/*
 * The metadata bitcaskfs keeps in each record's meta field: mode, owner, times and user
 * xattrs, in a small versioned little-endian encoding. Pure code; the byte layout is
 * specified in docs/FILESYSTEM.md, section "Metadata encoding".
 */
#ifndef BCFS_CORE_META_H
#define BCFS_CORE_META_H

#include <stddef.h>
#include <stdint.h>

#define BCFS_META_VERSION 1
#define BCFS_META_HDR 40 /* bytes before the xattr entries */
#define BCFS_META_MAX 65535 /* the engine's BC_MAX_META */
#define BCFS_XATTR_NAME_MAX 255

struct bcfs_xattr {
	char *name; /* NUL-terminated, full name ("user.foo") */
	void *value;
	size_t vlen;
};

struct bcfs_meta {
	uint32_t mode; /* with S_IFMT bits */
	uint32_t uid, gid;
	int64_t atime_ns, mtime_ns, ctime_ns; /* ns since the epoch */
	struct bcfs_xattr *xattrs; /* owned; release with bcfs_meta_release */
	size_t nxattrs;
};

/* Release the xattrs and zero m. Accepts a zeroed struct. */
void bcfs_meta_release(struct bcfs_meta *m);

/* Deep copy src into *dst (which is overwritten). Returns 0 or -ENOMEM. */
int bcfs_meta_copy(struct bcfs_meta *dst, const struct bcfs_meta *src);

/* Bytes the encoding of m takes (may exceed BCFS_META_MAX). */
size_t bcfs_meta_size(const struct bcfs_meta *m);

/*
 * Encode m into buf (cap bytes). Returns the length, -ENOSPC if it would exceed
 * BCFS_META_MAX (too many or too large xattrs), -EINVAL if cap is too small.
 */
int bcfs_meta_encode(const struct bcfs_meta *m, void *buf, size_t cap);

/*
 * Decode buf[0..len) into *m (overwritten; release with bcfs_meta_release). Returns 0,
 * -EBADMSG if the bytes are malformed, -EPROTONOSUPPORT for another version, -ENOMEM.
 * Bytes after the last xattr are ignored. On failure *m is zeroed.
 */
int bcfs_meta_decode(const void *buf, size_t len, struct bcfs_meta *m);

/* The xattr named name, or NULL. */
const struct bcfs_xattr *bcfs_meta_xattr_get(const struct bcfs_meta *m, const char *name);

/*
 * Set (copies) an xattr. flags as for setxattr(2): XATTR_CREATE gives -EEXIST when it
 * exists, XATTR_REPLACE -ENODATA when it does not. -ERANGE for an empty or too long
 * name, -E2BIG for a value over 65535 bytes, -ENOMEM.
 */
int bcfs_meta_xattr_set(struct bcfs_meta *m, const char *name, const void *value, size_t vlen,
			int flags);

/* Remove an xattr: 0 or -ENODATA. */
int bcfs_meta_xattr_remove(struct bcfs_meta *m, const char *name);

/* Bytes of the NUL-separated name list listxattr(2) returns. */
size_t bcfs_meta_xattr_list_size(const struct bcfs_meta *m);
/* Write that list to buf (bcfs_meta_xattr_list_size() bytes). */
void bcfs_meta_xattr_list(const struct bcfs_meta *m, char *buf);

#endif
