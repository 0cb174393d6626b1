// SPDX-License-Identifier: MIT
/*
 * Keydir benchmark: load N 16-byte keys (random bytes inserted in that random order, or
 * sequential keys inserted in order, or kvbench's keys: "k" and 15 decimal digits, inserted
 * in a random order), then report memory per key beyond the 16 key bytes
 * three ways (bc_keydir_memory, malloc's in-use bytes from mallinfo2, RSS growth), and
 * the rates of insert, random get, get of absent keys, full scan and random delete. Keys are
 * recomputed from their index, so the program holds no copy of them and RSS is the keydir's.
 *
 *   keydir_bench [N (default 1000000)] [random|seq|decimal (default random)]
 *
 * Values look like a store's: file index < 100, offset below 256 MiB, record size
 * 100..299 bytes, no metadata, no expiry.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keydir.h"

#define KLEN 16

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

enum shape { RANDOM, SEQ, DECIMAL };

static uint64_t xorshift(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	return x ^ x << 17;
}

static void key_of(uint64_t i, enum shape shape, uint64_t n, uint8_t *k)
{
	if (shape == DECIMAL) {
		/* a bijection on [0, n) unless n is a multiple of the prime 2654435761 */
		uint64_t j = (i * UINT64_C(2654435761) + 12345) % n;
		k[0] = 'k';
		for (int d = KLEN - 1; d > 0; d--, j /= 10)
			k[d] = (uint8_t)('0' + j % 10);
		return;
	}
	if (shape == SEQ) {
		memcpy(k, "seqkey00", 8);
		for (int b = 0; b < 8; b++)
			k[8 + b] = (uint8_t)(i >> (56 - 8 * b));
		return;
	}
	uint64_t a = mix(2 * i), b = mix(2 * i + 1);
	memcpy(k, &a, 8);
	memcpy(k + 8, &b, 8);
}

static struct bc_kval val_of(uint64_t i)
{
	uint64_t h = mix(i ^ UINT64_C(0x5555));
	struct bc_kval v = {.loc = {(uint32_t)(h % 100), (uint32_t)(h >> 32) & 0x0fffffffu,
				    100 + (uint32_t)((h >> 16) % 200)}};
	return v;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t rss(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static int count_fn(void *ctx, unsigned space, const uint8_t *key, size_t klen,
		    const struct bc_kval *v)
{
	(void)space;
	(void)key;
	(void)klen;
	*(uint64_t *)ctx += v->loc.size;
	return 0;
}

static double per_key(size_t bytes, size_t n)
{
	return n ? (double)bytes / (double)n - KLEN : 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
	enum shape shape = argc <= 2	      ? RANDOM
		: !strcmp(argv[2], "seq")     ? SEQ
		: !strcmp(argv[2], "decimal") ? DECIMAL
					      : RANDOM;
	struct bc_keydir *kd;
	uint8_t k[KLEN];
	uint64_t rng = 88172645463325252u, sink = 0;

	if (!n) {
		fprintf(stderr, "usage: keydir_bench [N] [random|seq|decimal]\n");
		return 2;
	}
	size_t heap0 = mallinfo2().uordblks, rss0 = rss();
	if (bc_keydir_new(&kd))
		return 1;

	double t = now();
	for (size_t i = 0; i < n; i++) {
		struct bc_kval v = val_of(i);
		key_of(i, shape, n, k);
		if (bc_keydir_put(kd, 0, k, KLEN, &v, NULL, NULL)) {
			fprintf(stderr, "put failed at %zu\n", i);
			return 1;
		}
	}
	double t_put = now() - t;
	size_t mem = bc_keydir_memory(kd);
	size_t heap = mallinfo2().uordblks - heap0, grown = rss() - rss0;

	size_t gets = n < 2000000 ? 2000000 : n, hits = 0;
	t = now();
	for (size_t i = 0; i < gets; i++) {
		rng = xorshift(rng);
		struct bc_kval v;
		key_of(rng % n, shape, n, k);
		if (bc_keydir_get(kd, 0, k, KLEN, &v)) {
			hits++;
			sink += v.loc.offset;
		}
	}
	double t_get = now() - t;

	/* absent keys: kvbench's for decimal keys (a present key ending in ':', between two
	 * present ones), indices past n for the others */
	size_t misses = 0;
	t = now();
	for (size_t i = 0; i < gets; i++) {
		rng = xorshift(rng);
		key_of(shape == DECIMAL ? rng % n : n + rng % n, shape, n, k);
		if (shape == DECIMAL)
			k[KLEN - 1] = ':';
		misses += !bc_keydir_get(kd, 0, k, KLEN, NULL);
	}
	double t_miss = now() - t;

	t = now();
	bc_keydir_scan_all(kd, count_fn, &sink);
	double t_scan = now() - t;

	/* delete the keys whose index is not a multiple of 4, in a pseudo-random order */
	size_t left = n, step = 1000003;
	while (n % step == 0)
		step += 2;
	t = now();
	for (size_t i = 0; i < n; i++) {
		size_t j = (size_t)(((uint64_t)i * step + 12345) % n);
		if (j % 4 == 0)
			continue;
		key_of(j, shape, n, k);
		left -= bc_keydir_remove(kd, 0, k, KLEN, NULL);
	}
	double t_del = now() - t;
	size_t n_del = n - left;
	size_t mem_q = bc_keydir_memory(kd);
	for (size_t i = 0; i < n; i++) {
		key_of(i, shape, n, k);
		bc_keydir_remove(kd, 0, k, KLEN, NULL);
	}
	size_t mem_0 = bc_keydir_memory(kd);

	printf("keys             %zu x %d bytes, %s insertion order\n", n, KLEN,
	       shape == SEQ ? "sequential" : "random");
	printf("bytes/key beyond the key: keydir %.2f  malloc %.2f  rss %.2f\n", per_key(mem, n),
	       per_key(heap, n), per_key(grown, n));
	printf("insert           %.0f ops/s\n", (double)n / t_put);
	printf("get (random)     %.0f ops/s  (%zu of %zu found)\n", (double)gets / t_get, hits,
	       gets);
	printf("get (missing)    %.0f ops/s  (%zu of %zu absent)\n", (double)gets / t_miss, misses,
	       gets);
	printf("scan             %.0f keys/s\n", (double)n / t_scan);
	printf("delete (random)  %.0f ops/s\n", (double)n_del / t_del);
	printf("after deleting %zu, %zu left: keydir bytes/key beyond the key %.2f\n", n_del, left,
	       per_key(mem_q, left));
	printf("after deleting all: keydir %zu bytes\n", mem_0);
	bc_keydir_free(kd);
	return sink == 42 ? 3 : 0;
}
