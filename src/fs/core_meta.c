// SPDX-License-Identifier: MIT
/*
 * Metadata encoding (docs/FILESYSTEM.md, "Metadata encoding"). Version 1:
 *   0 u8 version, 1 u8 flags (0), 2 u16 xattr count, 4 u32 mode, 8 u32 uid, 12 u32 gid,
 *   16 i64 atime_ns, 24 i64 mtime_ns, 32 i64 ctime_ns, then per xattr
 *   u8 name length, u16 value length, name, value. All little-endian.
 * Everything read is checked against the buffer's length: metadata comes from disk.
 */
#include "core_meta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void bcfs_meta_release(struct bcfs_meta *m)
{
	for (size_t i = 0; i < m->nxattrs; i++) {
		free(m->xattrs[i].name);
		free(m->xattrs[i].value);
	}
	free(m->xattrs);
	memset(m, 0, sizeof(*m));
}

int bcfs_meta_copy(struct bcfs_meta *dst, const struct bcfs_meta *src)
{
	*dst = *src;
	dst->xattrs = NULL;
	dst->nxattrs = 0;
	for (size_t i = 0; i < src->nxattrs; i++) {
		const struct bcfs_xattr *x = &src->xattrs[i];

		if (bcfs_meta_xattr_set(dst, x->name, x->value, x->vlen, 0)) {
			bcfs_meta_release(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

size_t bcfs_meta_size(const struct bcfs_meta *m)
{
	size_t n = BCFS_META_HDR;

	for (size_t i = 0; i < m->nxattrs; i++)
		n += 3 + strlen(m->xattrs[i].name) + m->xattrs[i].vlen;
	return n;
}

int bcfs_meta_encode(const struct bcfs_meta *m, void *bufv, size_t cap)
{
	uint8_t *buf = bufv;
	size_t n = bcfs_meta_size(m), o = BCFS_META_HDR;

	if (n > BCFS_META_MAX || m->nxattrs > UINT16_MAX)
		return -ENOSPC;
	if (cap < n)
		return -EINVAL;
	buf[0] = BCFS_META_VERSION;
	buf[1] = 0;
	put16(buf + 2, (uint16_t)m->nxattrs);
	put32(buf + 4, m->mode);
	put32(buf + 8, m->uid);
	put32(buf + 12, m->gid);
	put64(buf + 16, (uint64_t)m->atime_ns);
	put64(buf + 24, (uint64_t)m->mtime_ns);
	put64(buf + 32, (uint64_t)m->ctime_ns);
	for (size_t i = 0; i < m->nxattrs; i++) {
		const struct bcfs_xattr *x = &m->xattrs[i];
		size_t nl = strlen(x->name);

		buf[o] = (uint8_t)nl;
		put16(buf + o + 1, (uint16_t)x->vlen);
		memcpy(buf + o + 3, x->name, nl);
		if (x->vlen)
			memcpy(buf + o + 3 + nl, x->value, x->vlen);
		o += 3 + nl + x->vlen;
	}
	return (int)o;
}

int bcfs_meta_decode(const void *bufv, size_t len, struct bcfs_meta *m)
{
	const uint8_t *buf = bufv;
	size_t o = BCFS_META_HDR, n;
	int rc;

	memset(m, 0, sizeof(*m));
	if (len < 1)
		return -EBADMSG;
	if (buf[0] != BCFS_META_VERSION)
		return -EPROTONOSUPPORT;
	if (len < BCFS_META_HDR)
		return -EBADMSG;
	n = get16(buf + 2);
	m->mode = get32(buf + 4);
	m->uid = get32(buf + 8);
	m->gid = get32(buf + 12);
	m->atime_ns = (int64_t)get64(buf + 16);
	m->mtime_ns = (int64_t)get64(buf + 24);
	m->ctime_ns = (int64_t)get64(buf + 32);
	for (size_t i = 0; i < n; i++) {
		size_t nl, vl;
		char name[BCFS_XATTR_NAME_MAX + 1];

		if (len - o < 3)
			goto bad;
		nl = buf[o];
		vl = get16(buf + o + 1);
		if (nl == 0 || len - o - 3 < nl + vl || memchr(buf + o + 3, 0, nl))
			goto bad;
		memcpy(name, buf + o + 3, nl);
		name[nl] = 0;
		rc = bcfs_meta_xattr_set(m, name, buf + o + 3 + nl, vl, 0);
		if (rc) {
			bcfs_meta_release(m);
			return rc == -ENOMEM ? rc : -EBADMSG;
		}
		o += 3 + nl + vl;
	}
	return 0;
bad:
	bcfs_meta_release(m);
	return -EBADMSG;
}

static struct bcfs_xattr *find(const struct bcfs_meta *m, const char *name)
{
	for (size_t i = 0; i < m->nxattrs; i++)
		if (!strcmp(m->xattrs[i].name, name))
			return &m->xattrs[i];
	return NULL;
}

const struct bcfs_xattr *bcfs_meta_xattr_get(const struct bcfs_meta *m, const char *name)
{
	return find(m, name);
}

int bcfs_meta_xattr_set(struct bcfs_meta *m, const char *name, const void *value, size_t vlen,
			int flags)
{
	struct bcfs_xattr *x = find(m, name);
	size_t nl = strlen(name);
	void *v;

	if (nl == 0 || nl > BCFS_XATTR_NAME_MAX)
		return -ERANGE;
	if (vlen > UINT16_MAX)
		return -E2BIG;
	if (x && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!x && (flags & XATTR_REPLACE))
		return -ENODATA;
	v = malloc(vlen ? vlen : 1);
	if (!v)
		return -ENOMEM;
	if (vlen)
		memcpy(v, value, vlen);
	if (!x) {
		struct bcfs_xattr *nx = realloc(m->xattrs, (m->nxattrs + 1) * sizeof(*nx));
		char *nm = strdup(name);

		if (!nx || !nm) {
			if (nx)
				m->xattrs = nx;
			free(nm);
			free(v);
			return -ENOMEM;
		}
		m->xattrs = nx;
		x = &m->xattrs[m->nxattrs++];
		x->name = nm;
		x->value = NULL;
	}
	free(x->value);
	x->value = v;
	x->vlen = vlen;
	return 0;
}

int bcfs_meta_xattr_remove(struct bcfs_meta *m, const char *name)
{
	struct bcfs_xattr *x = find(m, name);

	if (!x)
		return -ENODATA;
	free(x->name);
	free(x->value);
	*x = m->xattrs[--m->nxattrs];
	return 0;
}

size_t bcfs_meta_xattr_list_size(const struct bcfs_meta *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nxattrs; i++)
		n += strlen(m->xattrs[i].name) + 1;
	return n;
}

void bcfs_meta_xattr_list(const struct bcfs_meta *m, char *buf)
{
	for (size_t i = 0; i < m->nxattrs; i++) {
		size_t nl = strlen(m->xattrs[i].name) + 1;

		memcpy(buf, m->xattrs[i].name, nl);
		buf += nl;
	}
}
