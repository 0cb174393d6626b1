// SPDX-License-Identifier: MIT
/*
 * Name mapping between keys and paths (docs/FILESYSTEM.md, "Name mapping").
 *
 * A key splits at '/' into components. A component whose bytes are a usable file name is
 * shown as itself. One that is not (empty, "." or "..", holds a NUL byte, starts with one
 * of the markers "%=", "%+", "%@", or is ".bitcask" at the root) is shown as "%=" followed
 * by its bytes with NUL and '%' written as %00 and %25. A component whose name would be
 * longer than 255 bytes is cut into pieces of 126 bytes, each shown as a directory
 * "%+<lowercase hex>", followed by the rest shown as above. A file key that is also a
 * directory prefix shows as "%@" inside that directory. Every step is deterministic in
 * the key alone, so a name is valid exactly when parsing it and showing the result again
 * gives the same name: bcfs_name_parse() checks that.
 */
#include "core_namemap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";
static const char HEXDIG[] = "0123456789ABCDEF";

static bool starts_marker(const uint8_t *r, size_t n)
{
	return n >= 2 && r[0] == '%' && (r[1] == '=' || r[1] == '+' || r[1] == '@');
}

static bool needs_escape(const uint8_t *r, size_t n, bool at_root)
{
	if (n == 0 || (n == 1 && r[0] == '.') || (n == 2 && r[0] == '.' && r[1] == '.'))
		return true;
	if (memchr(r, 0, n) || starts_marker(r, n))
		return true;
	return at_root && n == strlen(BCFS_CTL_NAME) && !memcmp(r, BCFS_CTL_NAME, n);
}

/* Length of the one-name form of r, which may exceed BCFS_NAME_MAX. */
static size_t single_len(const uint8_t *r, size_t n, bool at_root)
{
	size_t len = n, i;

	if (!needs_escape(r, n, at_root))
		return len;
	for (i = 0; i < n; i++)
		if (r[i] == 0 || r[i] == '%')
			len += 2;
	return len + 2;
}

/* Write the one-name form of r (single_len() bytes, known to fit) and a NUL to out. */
static size_t single_enc(const uint8_t *r, size_t n, bool at_root, char *out)
{
	size_t o = 0, i;

	if (!needs_escape(r, n, at_root)) {
		memcpy(out, r, n);
		out[n] = 0;
		return n;
	}
	out[o++] = '%';
	out[o++] = '=';
	for (i = 0; i < n; i++) {
		if (r[i] == 0 || r[i] == '%') {
			out[o++] = '%';
			out[o++] = HEXDIG[r[i] >> 4];
			out[o++] = HEXDIG[r[i] & 15];
		} else {
			out[o++] = (char)r[i];
		}
	}
	out[o] = 0;
	return o;
}

bool bcfs_kp_is_cont(const void *kp, size_t kplen)
{
	return kplen > 0 && ((const uint8_t *)kp)[kplen - 1] != '/';
}

int bcfs_child_of(const void *kpv, size_t kplen, const void *keyv, size_t klen,
		  struct bcfs_child *out)
{
	const uint8_t *kp = kpv, *key = keyv, *c, *slash;
	size_t cs = kplen, e, clen, off, pos = 0, plen, i;

	memset(out, 0, sizeof(*out));
	if (klen < kplen || memcmp(kp, key, kplen))
		return -EINVAL;
	while (cs > 0 && kp[cs - 1] != '/')
		cs--;
	slash = memchr(key + kplen, '/', klen - kplen);
	e = slash ? (size_t)(slash - key) : klen;
	c = key + cs;
	clen = e - cs;
	off = kplen - cs;
	out->skip_len = e < klen ? e + 1 : 0;

	/* Walk the pieces of the component until reaching offset off within it. */
	for (;;) {
		bool root = cs == 0 && pos == 0;

		if (single_len(c + pos, clen - pos, root) <= BCFS_NAME_MAX) {
			if (pos != off) {
				out->kind = BCFS_CHILD_NONE;
				return 0;
			}
			out->name_len = single_enc(c + pos, clen - pos, root, out->name);
			if (e < klen) {
				out->kind = BCFS_CHILD_DIR;
				out->sub_len = e + 1;
			} else {
				out->kind = BCFS_CHILD_FILE;
				out->sub_len = klen;
			}
			return 0;
		}
		plen = clen - pos < BCFS_PIECE ? clen - pos : BCFS_PIECE;
		if (pos == off)
			break;
		pos += plen;
		if (pos > off) {
			out->kind = BCFS_CHILD_NONE;
			return 0;
		}
	}
	out->kind = BCFS_CHILD_DIR;
	out->name[0] = '%';
	out->name[1] = '+';
	for (i = 0; i < plen; i++) {
		out->name[2 + 2 * i] = hexdig[c[pos + i] >> 4];
		out->name[3 + 2 * i] = hexdig[c[pos + i] & 15];
	}
	out->name_len = 2 + 2 * plen;
	out->name[out->name_len] = 0;
	out->sub_len = kplen + plen;
	return 0;
}

static int hexval(char ch, bool upper)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (upper && ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	if (!upper && ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int bcfs_name_parse(const void *kp, size_t kplen, const char *name, size_t namelen, char *buf,
		    size_t cap, size_t *len, size_t maxkey)
{
	size_t n = kplen, i;
	struct bcfs_child ch;
	int kind = BCFS_NAME_PLAIN;

	if (namelen > BCFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (namelen == 0 || memchr(name, '/', namelen) || memchr(name, 0, namelen) ||
	    cap < kplen + namelen)
		return -EINVAL;
	if (namelen == 2 && name[0] == '%' && name[1] == '@') {
		if (kplen == 0 || bcfs_kp_is_cont(kp, kplen))
			return -EINVAL;
		memcpy(buf, kp, kplen - 1);
		*len = kplen - 1;
		return BCFS_NAME_SHADOW;
	}
	memcpy(buf, kp, kplen);
	if (starts_marker((const uint8_t *)name, namelen) && name[1] == '+') {
		if (namelen < 4 || namelen % 2 || namelen > 2 + 2 * BCFS_PIECE)
			return -EINVAL;
		for (i = 2; i < namelen; i += 2) {
			int hi = hexval(name[i], false), lo = hexval(name[i + 1], false);

			if (hi < 0 || lo < 0 || (hi << 4 | lo) == '/')
				return -EINVAL;
			buf[n++] = (char)(hi << 4 | lo);
		}
		kind = BCFS_NAME_CONT;
	} else if (starts_marker((const uint8_t *)name, namelen) && name[1] == '=') {
		for (i = 2; i < namelen; i++) {
			if (name[i] != '%') {
				buf[n++] = name[i];
				continue;
			}
			if (i + 2 >= namelen)
				return -EINVAL;
			if (name[i + 1] == '0' && name[i + 2] == '0')
				buf[n++] = 0;
			else if (name[i + 1] == '2' && name[i + 2] == '5')
				buf[n++] = '%';
			else
				return -EINVAL;
			i += 2;
		}
	} else if (starts_marker((const uint8_t *)name, namelen)) {
		return -EINVAL; /* "%@" followed by more bytes */
	} else {
		memcpy(buf + n, name, namelen);
		n += namelen;
	}
	if (n > maxkey)
		return -ENAMETOOLONG;
	*len = n;
	if (kind == BCFS_NAME_CONT)
		return kind;
	/* Canonical: showing the parsed key again must give the very same name. */
	if (bcfs_child_of(kp, kplen, buf, n, &ch) || ch.kind != BCFS_CHILD_FILE ||
	    ch.name_len != namelen || memcmp(ch.name, name, namelen))
		return -EINVAL;
	return kind;
}

char *bcfs_key_to_path(const void *keyv, size_t klen)
{
	const uint8_t *key = keyv;
	size_t kplen = 0, cap = 64, o = 0;
	char *path = malloc(cap);
	struct bcfs_child ch;

	if (!path)
		return NULL;
	for (;;) {
		if (bcfs_child_of(key, kplen, key, klen, &ch) || ch.kind == BCFS_CHILD_NONE) {
			free(path);
			return NULL; /* cannot happen: a key always shows in its own parent */
		}
		if (o + ch.name_len + 2 > cap) {
			char *p;

			cap = 2 * (o + ch.name_len + 2);
			p = realloc(path, cap);
			if (!p) {
				free(path);
				return NULL;
			}
			path = p;
		}
		if (o)
			path[o++] = '/';
		memcpy(path + o, ch.name, ch.name_len);
		o += ch.name_len;
		if (ch.kind == BCFS_CHILD_FILE)
			break;
		kplen = ch.sub_len;
	}
	path[o] = 0;
	return path;
}

int bcfs_path_to_key(const char *path, char **keyp, size_t *klenp)
{
	size_t plen = strlen(path), cap = plen + 1, kplen = 0, len;
	char *kp = malloc(cap), *buf = malloc(cap);
	const char *p = path;
	int rc = -EINVAL;

	*keyp = NULL;
	if (!kp || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t nl = slash ? (size_t)(slash - p) : strlen(p);
		int kind = bcfs_name_parse(kp, kplen, p, nl, buf, cap, &len, SIZE_MAX);

		if (kind < 0) {
			rc = kind;
			goto out;
		}
		if (!slash) {
			if (kind == BCFS_NAME_CONT)
				goto out;
			*keyp = buf;
			*klenp = len;
			buf = NULL;
			rc = 0;
			goto out;
		}
		if (kind == BCFS_NAME_SHADOW)
			goto out;
		memcpy(kp, buf, len);
		kplen = len;
		if (kind == BCFS_NAME_PLAIN)
			kp[kplen++] = '/';
		p = slash + 1;
	}
out:
	free(kp);
	free(buf);
	return rc;
}
