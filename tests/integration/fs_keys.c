// SPDX-License-Identifier: MIT
/*
 * Integration helper for the name-mapping test (t1020-fs-names.sh), talking to the store
 * directly through libbitcask:
 *   fs_keys put DIR    write the awkward key set below, each key's value being its own
 *                      bytes in lower-case hex; print those hex strings, one per line
 *   fs_keys list DIR   print every key of space 0 in hex, one per line
 * The key set: every byte value alone, inside a name, after a directory, before one; and
 * empty components, "." and "..", ".bitcask" at the root, marker prefixes, names over 255
 * bytes, runs of NULs, and a key that is both a file and a directory prefix.
 */
#include <bitcask/bitcask.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct bc_db *db;

static void put(const void *key, size_t klen)
{
	static char hex[2 * 65536 + 1];
	const unsigned char *k = key;
	int rc;

	for (size_t i = 0; i < klen; i++)
		sprintf(hex + 2 * i, "%02x", k[i]);
	hex[2 * klen] = 0;
	rc = bc_put(db, BC_SPACE_USER, key, klen, hex, 2 * klen);
	if (rc) {
		fprintf(stderr, "put %s: %s\n", hex, bc_strerror(rc));
		exit(1);
	}
	printf("%s\n", hex);
}

static void puts_str(const char *s)
{
	put(s, strlen(s));
}

int main(int argc, char **argv)
{
	unsigned char k[4096];
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: fs_keys put|list DIR\n");
		return 2;
	}
	rc = bc_open(argv[2], NULL, &db);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", argv[2], bc_strerror(rc));
		return 1;
	}
	if (!strcmp(argv[1], "put")) {
		for (int b = 0; b < 256; b++) {
			k[0] = (unsigned char)b;
			put(k, 1);
			memcpy(k, "in-", 3);
			k[3] = (unsigned char)b;
			k[4] = '.';
			put(k, 5);
			memcpy(k, "dir/", 4);
			k[4] = (unsigned char)b;
			put(k, 5);
			k[0] = 'u';
			k[1] = (unsigned char)b;
			memcpy(k + 2, "/x", 2);
			put(k, 4);
		}
		puts_str("/");
		puts_str("e//f");
		puts_str("t/");
		puts_str("/lead");
		puts_str(".bitcask");
		puts_str(".bitcask/inner");
		puts_str("n/.bitcask");
		puts_str("dots/./..");
		puts_str("%=m");
		puts_str("%+m");
		puts_str("%@");
		puts_str("conf");
		puts_str("conf/child");
		memset(k, 'L', 300);
		put(k, 300);
		memcpy(k + 300, "/in", 3);
		put(k, 303);
		memset(k, 'M', 255);
		put(k, 255);
		memset(k, 0, 1000);
		put(k, 1000);
		memset(k, '%', 700);
		k[100] = '/';
		put(k, 700);
	} else {
		struct bc_iter *it;
		const void *key;
		size_t klen;

		rc = bc_iter_new(db, BC_SPACE_USER, "", 0, &it);
		while (!rc && !(rc = bc_iter_next(it, &key, &klen, NULL))) {
			for (size_t i = 0; i < klen; i++)
				printf("%02x", ((const unsigned char *)key)[i]);
			printf("\n");
		}
		bc_iter_free(it);
	}
	return bc_close(db) ? 1 : 0;
}
