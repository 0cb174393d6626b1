// SPDX-License-Identifier: MIT
/*
 * Engine benchmark: libbitcask against LMDB, LevelDB, RocksDB and tkrzw (HashDBM), each
 * through its own C API, one operation per call, 16-byte keys. One adapter per engine sits
 * behind struct engine; the runner forks one child per (round, engine), so every engine gets
 * a fresh process (peak and anonymous RSS are its own) and engines are interleaved round by
 * round (A B C D E, A B C D E, ...) on this shared, noisy machine. Medians over rounds are
 * printed, and the ratio ours/peer is the median of the per-round ratios.
 *
 * Phases of one child (fresh directory each): fillseq (keys in ascending order, own store),
 * fillrandom (the same keys in a random order, into the store the rest use), readrandom
 * (present keys), readmissing (absent keys, each between two present ones), overwrite
 * (random present keys), disk use before and after a compaction (bc_merge, compact_range,
 * rebuild; LMDB has none), open time of the filled store (warm cache), peak RSS (VmHWM)
 * and anonymous RSS (RssAnon).
 * With -s every write is synced (bitcask BC_SYNC_ALWAYS, LMDB default commit, LevelDB and
 * RocksDB sync=true, tkrzw synchronize(hard) after each set) and only fillrandom runs; the
 * bitcask child then also reports fdatasyncs per put from its stats.
 *
 *   kvbench [-n keys] [-v value_bytes] [-t threads] [-r rounds] [-s] [-e engine,...]
 *           [-d workdir] [-l label] [-o raw.tsv]
 *
 * Prints a Markdown table on stdout; -o appends raw per-round lines
 * (label, round, engine, phase, value) for plots.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bitcask/bitcask.h>
#include <leveldb/c.h>
#include <lmdb.h>
#include <rocksdb/c.h>
#include <tkrzw_langc.h>

#define KLEN 16
#define MAX_ROUNDS 16
#define MAX_THREADS 16

struct cfg {
	uint64_t n;
	size_t vlen;
	unsigned threads;
	bool sync;
	uint64_t perm_a; /* multiplier of the fill permutation, coprime to n */
};

/* One adapter. get returns 0 when found, 1 when missing, -1 on error; others 0 or -1. */
struct engine {
	const char *name;
	int (*open)(void **h, const char *dir, const struct cfg *c, bool fresh);
	int (*put)(void *h, const void *k, const void *v, size_t vlen);
	int (*get)(void *h, const void *k);
	int (*compact)(void *h); /* 1: not supported */
	void (*close)(void *h);
	double syncs_per_put; /* filled by the bitcask adapter at close */
};

/* ---- bitcask ---- */

static double bc_syncs_per_put = -1;

static int bc_a_open(void **h, const char *dir, const struct cfg *c, bool fresh)
{
	struct bc_options o = {.sync = c->sync ? BC_SYNC_ALWAYS : BC_SYNC_NONE,
			       .merge_disable_auto = true};
	(void)fresh;
	return bc_open(dir, &o, (struct bc_db **)h) ? -1 : 0;
}

static int bc_a_put(void *h, const void *k, const void *v, size_t vlen)
{
	return bc_put(h, BC_SPACE_USER, k, KLEN, v, vlen) ? -1 : 0;
}

static int bc_a_get(void *h, const void *k)
{
	void *v;
	size_t n;
	int rc = bc_get(h, BC_SPACE_USER, k, KLEN, 0, &v, &n);

	if (rc == -ENOENT)
		return 1;
	if (rc)
		return -1;
	free(v);
	return 0;
}

static int bc_a_compact(void *h)
{
	return bc_merge(h, true) ? -1 : 0;
}

static void bc_a_close(void *h)
{
	struct bc_stats st;

	if (!bc_stats_get(h, &st)) {
		if (st.puts)
			bc_syncs_per_put = (double)st.syncs / (double)st.puts;
		bc_stats_release(&st);
	}
	bc_close(h);
}

/* ---- LMDB: one write transaction per put, one read transaction per get ---- */

struct lm {
	MDB_env *env;
	MDB_dbi dbi;
};

static int lm_open(void **h, const char *dir, const struct cfg *c, bool fresh)
{
	struct lm *l = calloc(1, sizeof(*l));
	MDB_txn *t;
	unsigned fl = MDB_NOTLS | (c->sync ? 0 : MDB_NOSYNC | MDB_NOMETASYNC);

	(void)fresh;
	if (!l || mdb_env_create(&l->env))
		goto fail;
	mdb_env_set_mapsize(l->env, (size_t)64 << 30);
	mdb_env_set_maxreaders(l->env, 126);
	if (mdb_env_open(l->env, dir, fl, 0644) || mdb_txn_begin(l->env, NULL, 0, &t))
		goto fail;
	if (mdb_dbi_open(t, NULL, 0, &l->dbi) || mdb_txn_commit(t))
		goto fail;
	*h = l;
	return 0;
fail:
	free(l);
	return -1;
}

static int lm_put(void *h, const void *k, const void *v, size_t vlen)
{
	struct lm *l = h;
	MDB_txn *t;
	MDB_val kv = {KLEN, (void *)k}, vv = {vlen, (void *)v};

	if (mdb_txn_begin(l->env, NULL, 0, &t))
		return -1;
	if (mdb_put(t, l->dbi, &kv, &vv, 0)) {
		mdb_txn_abort(t);
		return -1;
	}
	return mdb_txn_commit(t) ? -1 : 0;
}

/* LMDB hands back a pointer into its map; the other APIs return a copy. A copy into memory
 * that is freed unread is dead code to the compiler, and gcc -O2 removed the malloc, the
 * memcpy and the free. Called through a volatile pointer, the copy is a call it cannot see
 * through, so it stays. */
static void *(*volatile copy_out)(void *, const void *, size_t) = memcpy;

static int lm_get(void *h, const void *k)
{
	struct lm *l = h;
	MDB_txn *t;
	MDB_val kv = {KLEN, (void *)k}, vv;
	int rc;

	if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t))
		return -1;
	rc = mdb_get(t, l->dbi, &kv, &vv);
	if (!rc) { /* copy out, as every other API does */
		void *copy = malloc(vv.mv_size);
		if (copy)
			copy_out(copy, vv.mv_data, vv.mv_size);
		free(copy);
	}
	mdb_txn_abort(t);
	return rc == MDB_NOTFOUND ? 1 : rc ? -1 : 0;
}

static int lm_compact(void *h)
{
	(void)h;
	return 1;
}

static void lm_close(void *h)
{
	struct lm *l = h;

	mdb_env_sync(l->env, 1);
	mdb_env_close(l->env);
	free(l);
}

/* ---- LevelDB (defaults: 4 MiB write buffer, snappy) ---- */

struct ldb {
	leveldb_t *db;
	leveldb_options_t *o;
	leveldb_writeoptions_t *w;
	leveldb_readoptions_t *r;
};

static int ldb_open(void **h, const char *dir, const struct cfg *c, bool fresh)
{
	struct ldb *l = calloc(1, sizeof(*l));
	char *err = NULL;

	(void)fresh;
	if (!l)
		return -1;
	l->o = leveldb_options_create();
	leveldb_options_set_create_if_missing(l->o, 1);
	l->w = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(l->w, c->sync);
	l->r = leveldb_readoptions_create();
	l->db = leveldb_open(l->o, dir, &err);
	if (err) {
		fprintf(stderr, "leveldb: %s\n", err);
		leveldb_free(err);
		return -1;
	}
	*h = l;
	return 0;
}

static int ldb_put(void *h, const void *k, const void *v, size_t vlen)
{
	struct ldb *l = h;
	char *err = NULL;

	leveldb_put(l->db, l->w, k, KLEN, v, vlen, &err);
	if (err) {
		leveldb_free(err);
		return -1;
	}
	return 0;
}

static int ldb_get(void *h, const void *k)
{
	struct ldb *l = h;
	char *err = NULL, *v;
	size_t n;

	v = leveldb_get(l->db, l->r, k, KLEN, &n, &err);
	if (err) {
		leveldb_free(err);
		return -1;
	}
	if (!v)
		return 1;
	leveldb_free(v);
	return 0;
}

static int ldb_compact(void *h)
{
	leveldb_compact_range(((struct ldb *)h)->db, NULL, 0, NULL, 0);
	return 0;
}

static void ldb_close(void *h)
{
	struct ldb *l = h;

	leveldb_close(l->db);
	leveldb_options_destroy(l->o);
	leveldb_writeoptions_destroy(l->w);
	leveldb_readoptions_destroy(l->r);
	free(l);
}

/* ---- RocksDB (defaults but for create_if_missing) ---- */

struct rdb {
	rocksdb_t *db;
	rocksdb_options_t *o;
	rocksdb_writeoptions_t *w;
	rocksdb_readoptions_t *r;
};

static int rdb_open(void **h, const char *dir, const struct cfg *c, bool fresh)
{
	struct rdb *l = calloc(1, sizeof(*l));
	char *err = NULL;

	(void)fresh;
	if (!l)
		return -1;
	l->o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(l->o, 1);
	l->w = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(l->w, c->sync);
	l->r = rocksdb_readoptions_create();
	l->db = rocksdb_open(l->o, dir, &err);
	if (err) {
		fprintf(stderr, "rocksdb: %s\n", err);
		rocksdb_free(err);
		return -1;
	}
	*h = l;
	return 0;
}

static int rdb_put(void *h, const void *k, const void *v, size_t vlen)
{
	struct rdb *l = h;
	char *err = NULL;

	rocksdb_put(l->db, l->w, k, KLEN, v, vlen, &err);
	if (err) {
		rocksdb_free(err);
		return -1;
	}
	return 0;
}

static int rdb_get(void *h, const void *k)
{
	struct rdb *l = h;
	char *err = NULL, *v;
	size_t n;

	v = rocksdb_get(l->db, l->r, k, KLEN, &n, &err);
	if (err) {
		rocksdb_free(err);
		return -1;
	}
	if (!v)
		return 1;
	rocksdb_free(v);
	return 0;
}

static int rdb_compact(void *h)
{
	rocksdb_compact_range(((struct rdb *)h)->db, NULL, 0, NULL, 0);
	return 0;
}

static void rdb_close(void *h)
{
	struct rdb *l = h;

	rocksdb_close(l->db);
	rocksdb_options_destroy(l->o);
	rocksdb_writeoptions_destroy(l->w);
	rocksdb_readoptions_destroy(l->r);
	free(l);
}

/* ---- tkrzw HashDBM (num_buckets = 2 x keys, as its documentation advises) ---- */

struct tk {
	TkrzwDBM *db;
	bool sync;
};

static int tk_open(void **h, const char *dir, const struct cfg *c, bool fresh)
{
	struct tk *t = calloc(1, sizeof(*t));
	char path[4096], params[256];

	if (!t)
		return -1;
	snprintf(path, sizeof(path), "%s/db.tkh", dir);
	snprintf(params, sizeof(params), "dbm=HashDBM,num_buckets=%llu%s",
		 (unsigned long long)(2 * c->n), fresh ? ",truncate=true" : "");
	t->db = tkrzw_dbm_open(path, true, params);
	t->sync = c->sync;
	if (!t->db) {
		free(t);
		return -1;
	}
	*h = t;
	return 0;
}

static int tk_put(void *h, const void *k, const void *v, size_t vlen)
{
	struct tk *t = h;

	if (!tkrzw_dbm_set(t->db, k, KLEN, v, (int32_t)vlen, true))
		return -1;
	if (t->sync && !tkrzw_dbm_synchronize(t->db, true, NULL, NULL, ""))
		return -1;
	return 0;
}

static int tk_get(void *h, const void *k)
{
	struct tk *t = h;
	int32_t n;
	char *v = tkrzw_dbm_get(t->db, k, KLEN, &n);

	if (!v)
		return tkrzw_get_last_status_code() == TKRZW_STATUS_NOT_FOUND_ERROR ? 1 : -1;
	free(v);
	return 0;
}

static int tk_compact(void *h)
{
	return tkrzw_dbm_rebuild(((struct tk *)h)->db, "") ? 0 : -1;
}

static void tk_close(void *h)
{
	struct tk *t = h;

	tkrzw_dbm_close(t->db);
	free(t);
}

static struct engine engines[] = {
	{"bitcask", bc_a_open, bc_a_put, bc_a_get, bc_a_compact, bc_a_close, 0},
	{"lmdb", lm_open, lm_put, lm_get, lm_compact, lm_close, 0},
	{"leveldb", ldb_open, ldb_put, ldb_get, ldb_compact, ldb_close, 0},
	{"rocksdb", rdb_open, rdb_put, rdb_get, rdb_compact, rdb_close, 0},
	{"tkrzw", tk_open, tk_put, tk_get, tk_compact, tk_close, 0},
};
#define NENGINES (sizeof(engines) / sizeof(engines[0]))

/* ---- phases ---- */

enum phase {
	P_FILLSEQ,
	P_FILLRANDOM,
	P_READRANDOM,
	P_READMISSING,
	P_OVERWRITE,
	P_OPEN,
	P_RSS_PEAK,
	P_RSS_ANON,
	P_DISK_BEFORE,
	P_DISK_AFTER,
	P_SYNCS_PER_PUT,
	NPHASES
};

static const char *const phase_name[NPHASES] = {
	"fillseq",	   "fillrandom",     "readrandom",    "readmissing",
	"overwrite",	   "open_s",	     "rss_peak_mib",  "rss_anon_mib",
	"disk_before_mib", "disk_after_mib", "syncs_per_put",
};

/* True when bigger is better (ops/s). */
static bool phase_is_rate(int p)
{
	return p <= P_OVERWRITE;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

/*
 * Key i: "k" and 15 decimal digits, so ascending i is ascending key order. A missing key
 * is a present one with its last digit replaced by ':', the byte after '9': it sorts
 * between two present keys, so an ordered engine's lookup of it descends to a random leaf
 * as a hit does (the way LevelDB's db_bench makes its absent keys). Missing keys that all
 * sorted after the present ones would take the same cached path every time.
 */
static void key_of(uint64_t i, char prefix, char *k)
{
	k[0] = prefix;
	for (int d = KLEN - 1; d > 0; d--, i /= 10)
		k[d] = (char)('0' + i % 10);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* A bijection on [0, n): i -> (a*i + 12345) mod n, a coprime to n (see main). */
static uint64_t permute(uint64_t i, const struct cfg *c)
{
	return (c->perm_a * (i % c->n) + 12345) % c->n;
}

struct worker {
	pthread_t th;
	struct engine *e;
	void *h;
	const struct cfg *c;
	enum phase p;
	unsigned id;
	uint64_t from, to, errors;
};

/* Incompressible value bytes: each put takes vlen bytes at a random offset of this pool. */
#define POOL_BYTES (1u << 20)
static char *pool;

static int pool_init(size_t vlen)
{
	pool = malloc(POOL_BYTES + vlen);
	if (!pool)
		return -1;
	for (size_t i = 0; i + 8 <= POOL_BYTES + vlen; i += 8) {
		uint64_t x = mix(i);
		memcpy(pool + i, &x, 8);
	}
	return 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	char k[KLEN];
	const char *v;
	uint64_t rng = mix(w->id + 1 + (uint64_t)w->p * 977), n = w->c->n;

	for (uint64_t i = w->from; i < w->to; i++) {
		int rc;

		rng = mix(rng);
		v = pool + (rng >> 44); /* 20 bits: an offset below POOL_BYTES */
		switch (w->p) {
		case P_FILLSEQ:
			key_of(i, 'k', k);
			rc = w->e->put(w->h, k, v, w->c->vlen);
			break;
		case P_FILLRANDOM:
			key_of(permute(i, w->c), 'k', k);
			rc = w->e->put(w->h, k, v, w->c->vlen);
			break;
		case P_OVERWRITE:
			key_of(rng % n, 'k', k);
			rc = w->e->put(w->h, k, v, w->c->vlen);
			break;
		case P_READRANDOM:
			key_of(rng % n, 'k', k);
			rc = w->e->get(w->h, k);
			break;
		default:
			key_of(rng % n, 'k', k);
			k[KLEN - 1] = ':';
			rc = w->e->get(w->h, k) == 1 ? 0 : -1;
			break;
		}
		if (rc)
			w->errors++;
	}
	return NULL;
}

/* Run phase p over ops operations split across the threads; ops/s or -1 on errors. */
static double run_phase(struct engine *e, void *h, const struct cfg *c, enum phase p, uint64_t ops)
{
	struct worker w[MAX_THREADS];
	uint64_t errors = 0;
	double t0 = now();

	for (unsigned i = 0; i < c->threads; i++) {
		w[i] = (struct worker){.e = e, .h = h, .c = c, .p = p, .id = i};
		w[i].from = ops * i / c->threads;
		w[i].to = ops * (i + 1) / c->threads;
		if (pthread_create(&w[i].th, NULL, work, &w[i]))
			return -1;
	}
	for (unsigned i = 0; i < c->threads; i++) {
		pthread_join(w[i].th, NULL);
		errors += w[i].errors;
	}
	if (errors) {
		fprintf(stderr, "kvbench: %s %s: %llu errors\n", e->name, phase_name[p],
			(unsigned long long)errors);
		return -1;
	}
	return (double)ops / (now() - t0);
}

static uint64_t du_total;

static int du_fn(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)flag;
	(void)ftw;
	du_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

static double du_mib(const char *dir)
{
	du_total = 0;
	nftw(dir, du_fn, 16, FTW_PHYS);
	return (double)du_total / 1048576.0;
}

static double status_mib(const char *field)
{
	char line[256];
	double kb = -1;
	size_t fl = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, fl) && line[fl] == ':')
			kb = strtod(line + fl + 1, NULL);
	fclose(f);
	return kb < 0 ? -1 : kb / 1024.0;
}

static int rm_fn(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_fn, 16, FTW_DEPTH | FTW_PHYS);
}

/* The child: every phase for one engine, results into res[]. */
static int child(struct engine *e, const struct cfg *c, const char *base, double *res)
{
	char dir[4096];
	void *h;

	for (int p = 0; p < NPHASES; p++)
		res[p] = -1;
	if (!c->sync) {
		snprintf(dir, sizeof(dir), "%s/%s.seq", base, e->name);
		mkdir(dir, 0755);
		if (e->open(&h, dir, c, true))
			return -1;
		res[P_FILLSEQ] = run_phase(e, h, c, P_FILLSEQ, c->n);
		e->close(h);
		rm_rf(dir);
	}
	snprintf(dir, sizeof(dir), "%s/%s", base, e->name);
	mkdir(dir, 0755);
	if (e->open(&h, dir, c, true))
		return -1;
	res[P_FILLRANDOM] = run_phase(e, h, c, P_FILLRANDOM, c->n);
	if (!c->sync) {
		res[P_READRANDOM] = run_phase(e, h, c, P_READRANDOM, c->n);
		res[P_READMISSING] = run_phase(e, h, c, P_READMISSING, c->n);
		res[P_OVERWRITE] = run_phase(e, h, c, P_OVERWRITE, c->n);
		res[P_RSS_ANON] = status_mib("RssAnon");
		res[P_DISK_BEFORE] = du_mib(dir);
		int rc = e->compact(h);
		if (rc < 0)
			fprintf(stderr, "kvbench: %s: compaction failed\n", e->name);
		res[P_DISK_AFTER] = rc ? -1 : du_mib(dir);
	}
	bc_syncs_per_put = -1;
	e->close(h);
	if (!strcmp(e->name, "bitcask"))
		res[P_SYNCS_PER_PUT] = c->sync ? bc_syncs_per_put : -1;
	if (!c->sync) {
		double t0 = now();
		if (e->open(&h, dir, c, false))
			return -1;
		res[P_OPEN] = now() - t0;
		e->close(h);
	}
	res[P_RSS_PEAK] = status_mib("VmHWM");
	rm_rf(dir);
	return 0;
}

static int run_child(struct engine *e, const struct cfg *c, const char *base, double *res)
{
	int pfd[2], st;
	pid_t pid;
	ssize_t got;

	if (pipe(pfd))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		double r[NPHASES];
		int rc = child(e, c, base, r);
		if (write(pfd[1], r, sizeof(r)) != (ssize_t)sizeof(r))
			rc = -1;
		_exit(rc ? 1 : 0);
	}
	close(pfd[1]);
	got = read(pfd[0], res, sizeof(double) * NPHASES);
	close(pfd[0]);
	waitpid(pid, &st, 0);
	if (got != (ssize_t)(sizeof(double) * NPHASES))
		return -1;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of the values >= 0 among v[0..n); -1 if none. */
static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];
	int m = 0;

	for (int i = 0; i < n; i++)
		if (v[i] >= 0)
			s[m++] = v[i];
	if (!m)
		return -1;
	qsort(s, (size_t)m, sizeof(double), cmp_double);
	return m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
}

static void print_num(double v, int p)
{
	if (v < 0)
		printf(" n/a |");
	else if (phase_is_rate(p))
		printf(" %.0f |", v);
	else if (p == P_OPEN)
		printf(" %.3f |", v);
	else
		printf(" %.2f |", v);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: kvbench [-n keys] [-v value_bytes] [-t threads] [-r rounds] [-s] "
		"[-e engine,...] [-d workdir] [-l label] [-o raw.tsv]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct cfg c = {.n = 1000000, .vlen = 100, .threads = 1};
	static double res[MAX_ROUNDS][NENGINES][NPHASES];
	bool use[NENGINES];
	int rounds = 3, opt, failed = 0, ours = -1;
	const char *base = "/tmp/kvbench", *label = "", *raw = NULL, *list = NULL;
	FILE *rawf = NULL;

	while ((opt = getopt(argc, argv, "n:v:t:r:se:d:l:o:")) != -1) {
		switch (opt) {
		case 'n':
			c.n = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			c.vlen = strtoull(optarg, NULL, 0);
			break;
		case 't':
			c.threads = (unsigned)atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 's':
			c.sync = true;
			break;
		case 'e':
			list = optarg;
			break;
		case 'd':
			base = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 'o':
			raw = optarg;
			break;
		default:
			usage();
		}
	}
	if (!c.n || c.vlen < 8 || c.threads < 1 || c.threads > MAX_THREADS || rounds < 1 ||
	    rounds > MAX_ROUNDS)
		usage();
	c.perm_a = UINT64_C(2654435761) % c.n;
	while (c.n > 1 && (c.perm_a < 2 || gcd(c.perm_a, c.n) != 1))
		c.perm_a++;
	for (size_t e = 0; e < NENGINES; e++) {
		use[e] = !list || strstr(list, engines[e].name);
		if (use[e] && !strcmp(engines[e].name, "bitcask"))
			ours = (int)e;
	}
	if (pool_init(c.vlen)) {
		perror("kvbench");
		return 1;
	}
	mkdir(base, 0755);
	if (raw && !(rawf = fopen(raw, "a"))) {
		perror(raw);
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		for (size_t e = 0; e < NENGINES; e++) {
			if (!use[e])
				continue;
			fprintf(stderr, "kvbench %s: round %d/%d %s\n", label, r + 1, rounds,
				engines[e].name);
			if (run_child(&engines[e], &c, base, res[r][e])) {
				fprintf(stderr, "kvbench: %s failed\n", engines[e].name);
				failed = 1;
				for (int p = 0; p < NPHASES; p++)
					res[r][e][p] = -1;
			}
			for (int p = 0; rawf && p < NPHASES; p++)
				if (res[r][e][p] >= 0)
					fprintf(rawf, "%s\t%d\t%s\t%s\t%g\n", label, r,
						engines[e].name, phase_name[p], res[r][e][p]);
		}
	}
	if (rawf)
		fclose(rawf);

	/* Table: medians per engine, then per peer the median of per-round ratios. */
	printf("| %s phase (%llu keys x %zu B, %u thread%s%s) |", label, (unsigned long long)c.n,
	       c.vlen, c.threads, c.threads > 1 ? "s" : "", c.sync ? ", fsync each write" : "");
	for (size_t e = 0; e < NENGINES; e++)
		if (use[e])
			printf(" %s |", engines[e].name);
	for (size_t e = 0; e < NENGINES; e++)
		if (use[e] && (int)e != ours && ours >= 0)
			printf(" ours/%s |", engines[e].name);
	printf("\n|---|");
	for (size_t e = 0; e < NENGINES; e++)
		if (use[e])
			printf("---:|%s", (int)e != ours && ours >= 0 ? "---:|" : "");
	printf("\n");
	for (int p = 0; p < NPHASES; p++) {
		double col[MAX_ROUNDS], any = -1;
		for (size_t e = 0; e < NENGINES; e++)
			for (int r = 0; r < rounds && use[e]; r++)
				if (res[r][e][p] >= 0)
					any = 1;
		if (any < 0)
			continue;
		printf("| %s%s |", phase_name[p], phase_is_rate(p) ? " (ops/s)" : "");
		for (size_t e = 0; e < NENGINES; e++) {
			if (!use[e])
				continue;
			for (int r = 0; r < rounds; r++)
				col[r] = res[r][e][p];
			print_num(median(col, rounds), p);
		}
		for (size_t e = 0; e < NENGINES && ours >= 0; e++) {
			if (!use[e] || (int)e == ours)
				continue;
			for (int r = 0; r < rounds; r++) {
				double a = res[r][ours][p], b = res[r][e][p];
				col[r] = a > 0 && b > 0 ? a / b : -1;
			}
			double m = median(col, rounds);
			if (m < 0)
				printf(" n/a |");
			else
				printf(" %.2fx |", m);
		}
		printf("\n");
	}
	printf("\n");
	return failed;
}
