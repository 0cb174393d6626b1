// SPDX-License-Identifier: MIT
/*
 * libbitcask-only figures for scripts/bench (no peer has the same mechanisms):
 *
 *   bcbench startup DIR N [ROUNDS]
 *     Fill N random 16-byte keys with 100-byte values and close (which writes hints). Then,
 *     interleaved round by round, open the store with its hint files read-write (as a
 *     daemon or an embedding program does: the newest file becomes the active one) and
 *     read-only, and with the hints moved aside (a full scan, read-only), each in a freshly
 *     exec'd process (not a fork of the one that filled, whose heap it would inherit) with
 *     a warm page cache, and report the median open time per million keys (bc_open alone,
 *     not close), and the keydir's bytes per key beyond the 16 key bytes (from bc_stats
 *     keydir_bytes, and from the growth of anonymous RSS over open).
 *
 *   bcbench merge DIR N VLEN [ROUNDS]
 *     Fill N keys (32 MiB files, auto merge off); each round overwrites every key, so half
 *     the store is dead, then runs a foreground thread doing random gets and puts, first
 *     alone for as long as the last merge took (2 s the first time), then beside a full
 *     bc_merge in another thread. Reports merge throughput (MiB of input per second) and
 *     foreground get/put p50 and p99 latencies with and without the merge (medians over
 *     rounds; the p99 ratio is the median of per-round ratios).
 *
 * Output: "<metric> <value>" lines.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#define KLEN 16
#define MAX_ROUNDS 16
#define MAX_SAMPLES (4u << 20)

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

static void key_of(uint64_t i, uint8_t *k)
{
	uint64_t a = mix(2 * i), b = mix(2 * i + 1);

	memcpy(k, &a, 8);
	memcpy(k + 8, &b, 8);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double anon_kib(void)
{
	char line[256];
	double kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kb = strtod(line + 8, NULL);
	fclose(f);
	return kb;
}

static int fill(struct bc_db *db, uint64_t n, size_t vlen, uint64_t seed)
{
	uint8_t k[KLEN], v[65536];

	if (vlen > sizeof(v))
		return -EINVAL;
	for (size_t i = 0; i < vlen; i++)
		v[i] = (uint8_t)mix(seed + i);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t s = mix(seed ^ i);
		key_of(i, k);
		memcpy(v, &s, vlen < 8 ? vlen : 8);
		int rc = bc_put(db, BC_SPACE_USER, k, KLEN, v, vlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* Rename every "*.hint" in dir to "*.hint.off" (off=true) or back. */
static void hints(const char *dir, bool off)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char a[4096], b[4096];

	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (off && l > 5 && !strcmp(e->d_name + l - 5, ".hint")) {
			snprintf(a, sizeof(a), "%s/%s", dir, e->d_name);
			snprintf(b, sizeof(b), "%s/%s.off", dir, e->d_name);
			rename(a, b);
		} else if (!off && l > 9 && !strcmp(e->d_name + l - 9, ".hint.off")) {
			snprintf(a, sizeof(a), "%s/%s", dir, e->d_name);
			snprintf(b, sizeof(b), "%s/%.*s", dir, (int)(l - 4), e->d_name);
			rename(a, b);
		}
	}
	closedir(d);
}

/*
 * The child of timed_open, in a process of its own (exec'd, so its heap is not the one the
 * fill left behind): open, write seconds, keydir bytes and anon RSS growth to fd, close.
 */
static int open_once(const char *dir, int fd, bool rw)
{
	struct bc_options o = {.merge_disable_auto = true, .read_only = !rw};
	struct bc_db *db;
	struct bc_stats s;
	double r[3], a0 = anon_kib(), t0 = now();

	if (bc_open(dir, &o, &db))
		return 1;
	r[0] = now() - t0;
	r[2] = (anon_kib() - a0) * 1024;
	if (bc_stats_get(db, &s))
		return 1;
	r[1] = (double)s.keydir_bytes / (double)s.keys - KLEN;
	r[2] = r[2] / (double)s.keys - KLEN;
	bc_stats_release(&s);
	bc_close(db);
	return write(fd, r, sizeof(r)) == sizeof(r) ? 0 : 1;
}

/* In a fresh process: open, report seconds, keydir bytes and anon RSS growth, close. */
static int timed_open(const char *dir, bool rw, double out[3])
{
	int pfd[2], st;
	pid_t pid;

	if (pipe(pfd))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char fd[16];
		close(pfd[0]);
		snprintf(fd, sizeof(fd), "%d", pfd[1]);
		execl("/proc/self/exe", "bcbench", "open-once", dir, fd, rw ? "rw" : "ro",
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	ssize_t got = read(pfd[0], out, 3 * sizeof(double));
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return got == 3 * sizeof(double) && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

static int startup(const char *dir, uint64_t n, int rounds)
{
	struct bc_options o = {.merge_disable_auto = true};
	struct bc_db *db;
	double hint[MAX_ROUNDS], hint_ro[MAX_ROUNDS], scan[MAX_ROUNDS], kd[MAX_ROUNDS];
	double rss[MAX_ROUNDS], r[3];
	double m = (double)n / 1e6;
	int rc = bc_open(dir, &o, &db);

	if (rc || (rc = fill(db, n, 100, 1)) || (rc = bc_close(db))) {
		fprintf(stderr, "bcbench: fill: %s\n", bc_strerror(rc));
		return 1;
	}
	if (timed_open(dir, true, r)) /* warm the page cache */
		return 1;
	for (int i = 0; i < rounds; i++) {
		if (timed_open(dir, true, r))
			return 1;
		hint[i] = r[0] / m;
		kd[i] = r[1];
		rss[i] = r[2];
		if (timed_open(dir, false, r))
			return 1;
		hint_ro[i] = r[0] / m;
		hints(dir, true);
		rc = timed_open(dir, false, r);
		hints(dir, false);
		if (rc)
			return 1;
		scan[i] = r[0] / m;
	}
	printf("keys %llu\n", (unsigned long long)n);
	printf("open_hint_s_per_mkeys %.4f\n", median(hint, rounds));
	printf("open_hint_ro_s_per_mkeys %.4f\n", median(hint_ro, rounds));
	printf("open_scan_s_per_mkeys %.4f\n", median(scan, rounds));
	printf("keydir_bytes_per_key %.1f\n", median(kd, rounds));
	printf("anon_rss_bytes_per_key %.1f\n", median(rss, rounds));
	return 0;
}

/* ---- merge under load ---- */

struct fg {
	struct bc_db *db;
	uint64_t n;
	atomic_bool stop;
	double *get_lat, *put_lat;
	size_t ngets, nputs;
	uint64_t rng;
};

static void *foreground(void *arg)
{
	struct fg *f = arg;
	uint8_t k[KLEN], v[100];

	memset(v, 0x5a, sizeof(v));
	f->ngets = f->nputs = 0;
	while (!atomic_load(&f->stop) && f->ngets < MAX_SAMPLES && f->nputs < MAX_SAMPLES) {
		void *val;
		size_t len;
		double t0;

		f->rng = mix(f->rng);
		key_of(f->rng % f->n, k);
		t0 = now();
		if (f->rng & 1) {
			if (bc_put(f->db, BC_SPACE_USER, k, KLEN, v, sizeof(v)))
				break;
			f->put_lat[f->nputs++] = now() - t0;
		} else {
			if (bc_get(f->db, BC_SPACE_USER, k, KLEN, 0, &val, &len))
				break;
			free(val);
			f->get_lat[f->ngets++] = now() - t0;
		}
	}
	return NULL;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return -1;
	qsort(v, n, sizeof(double), cmp_double);
	return v[(size_t)(p * (double)(n - 1))];
}

struct merger {
	struct bc_db *db;
	int rc;
	atomic_bool done;
};

static void *merge_thread(void *arg)
{
	struct merger *m = arg;

	m->rc = bc_merge(m->db, true);
	atomic_store(&m->done, true);
	return NULL;
}

/* Run the foreground for secs seconds, or until *until is set when until is given. */
static int run_fg(struct fg *f, double secs, atomic_bool *until, double q[4])
{
	pthread_t th;
	double t0 = now();

	atomic_store(&f->stop, false);
	if (pthread_create(&th, NULL, foreground, f))
		return -1;
	while (until ? !atomic_load(until) : now() - t0 < secs) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	atomic_store(&f->stop, true);
	pthread_join(th, NULL);
	q[0] = pct(f->get_lat, f->ngets, 0.50) * 1e6;
	q[1] = pct(f->get_lat, f->ngets, 0.99) * 1e6;
	q[2] = pct(f->put_lat, f->nputs, 0.50) * 1e6;
	q[3] = pct(f->put_lat, f->nputs, 0.99) * 1e6;
	return 0;
}

static int merge(const char *dir, uint64_t n, size_t vlen, int rounds)
{
	struct bc_options o = {.merge_disable_auto = true, .max_file_size = 32u << 20};
	struct bc_db *db;
	struct fg f = {.n = n, .rng = 42};
	double base[MAX_ROUNDS][4], during[MAX_ROUNDS][4], tput[MAX_ROUNDS], col[MAX_ROUNDS];
	double last = 2.0;
	int rc = bc_open(dir, &o, &db);

	f.get_lat = malloc(MAX_SAMPLES * sizeof(double));
	f.put_lat = malloc(MAX_SAMPLES * sizeof(double));
	if (rc || !f.get_lat || !f.put_lat || (rc = fill(db, n, vlen, 1))) {
		fprintf(stderr, "bcbench: fill: %s\n", bc_strerror(rc));
		return 1;
	}
	f.db = db;
	for (int r = 0; r < rounds; r++) {
		struct merger m = {.db = db};
		struct bc_stats s;
		pthread_t th;
		double t0;

		if ((rc = fill(db, n, vlen, (uint64_t)r + 2)) || (rc = bc_stats_get(db, &s))) {
			fprintf(stderr, "bcbench: overwrite: %s\n", bc_strerror(rc));
			return 1;
		}
		uint64_t input = s.total_bytes;
		bc_stats_release(&s);
		if (run_fg(&f, last, NULL, base[r]))
			return 1;
		t0 = now();
		if (pthread_create(&th, NULL, merge_thread, &m) ||
		    run_fg(&f, 0, &m.done, during[r]))
			return 1;
		pthread_join(th, NULL);
		last = now() - t0;
		if (m.rc) {
			fprintf(stderr, "bcbench: merge: %s\n", bc_strerror(m.rc));
			return 1;
		}
		tput[r] = (double)input / 1048576.0 / last;
		fprintf(stderr,
			"bcbench merge: round %d: %.2f s, get p99 %.1f -> %.1f us, "
			"put p99 %.1f -> %.1f us\n",
			r + 1, last, base[r][1], during[r][1], base[r][3], during[r][3]);
	}
	static const char *const names[4] = {"get_p50_us", "get_p99_us", "put_p50_us",
					     "put_p99_us"};
	printf("merge_input_mib_s %.1f\n", median(tput, rounds));
	for (int q = 0; q < 4; q++) {
		for (int r = 0; r < rounds; r++)
			col[r] = base[r][q];
		printf("idle_%s %.1f\n", names[q], median(col, rounds));
		for (int r = 0; r < rounds; r++)
			col[r] = during[r][q];
		printf("merge_%s %.1f\n", names[q], median(col, rounds));
	}
	for (int r = 0; r < rounds; r++)
		col[r] = during[r][1] / base[r][1];
	printf("get_p99_ratio %.2f\n", median(col, rounds));
	for (int r = 0; r < rounds; r++)
		col[r] = during[r][3] / base[r][3];
	printf("put_p99_ratio %.2f\n", median(col, rounds));
	free(f.get_lat);
	free(f.put_lat);
	return bc_close(db) ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int rounds;

	if (!strcmp(cmd, "startup") && (argc == 4 || argc == 5)) {
		rounds = argc == 5 ? atoi(argv[4]) : 3;
		if (rounds >= 1 && rounds <= MAX_ROUNDS)
			return startup(argv[2], strtoull(argv[3], NULL, 0), rounds);
	}
	if (!strcmp(cmd, "open-once") && argc == 5) /* timed_open's child */
		return open_once(argv[2], atoi(argv[3]), !strcmp(argv[4], "rw"));
	if (!strcmp(cmd, "merge") && (argc == 5 || argc == 6)) {
		rounds = argc == 6 ? atoi(argv[5]) : 3;
		if (rounds >= 1 && rounds <= MAX_ROUNDS)
			return merge(argv[2], strtoull(argv[3], NULL, 0),
				     strtoull(argv[4], NULL, 0), rounds);
	}
	fprintf(stderr, "usage: bcbench startup DIR N [ROUNDS] | merge DIR N VLEN [ROUNDS]\n");
	return 2;
}
