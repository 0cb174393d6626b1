// SPDX-License-Identifier: MIT
/*
 * The two halves of the kill -9 crash test (t9000-crash-kill.sh).
 *
 *   crash_writer write DIR LOG SEED [NOPS]
 *     Open the store in DIR with BC_SYNC_ALWAYS (BC_SYNC_NONE when the environment has
 *     BC_CRASH_SYNC=none: small appends then go through the active file's mapping, which
 *     a SIGKILL must not lose either) and perform seeded random operations on
 *     a small key set: small and chunked puts, deletes, batches (puts, deletes, renames
 *     across spaces and onto existing keys), and now and then a merge. Before each
 *     operation it appends "B seq op ..." to LOG (every effect spelled out: keys, value
 *     lengths and hashes); after the operation returns 0, "A seq". Each line is one
 *     write() on an O_APPEND descriptor, so a SIGKILL leaves whole lines (the page cache
 *     keeps them; no fsync is needed when only the process dies). It runs NOPS operations
 *     (default: until killed). It refuses to start while the log ends in an operation
 *     nobody resolved: run verify first.
 *
 *   crash_writer verify DIR LOG
 *     Replay LOG into the expected state: every acknowledged operation applied, in order.
 *     At most one operation was in flight when the writer died (a "B" without "A"): the
 *     store may hold the state with it or without it, nothing else. Open the store (which
 *     recovers it), compare every key of spaces 0 and 1 (value length and hash; no key
 *     missing, none extra), record the in-flight operation's fate as "R seq 0|1" so later
 *     runs replay it the same way, close, and run bc_check, which must find no problem.
 *     Prints one line: keys, operations, in-flight outcome. Exit 0 on success, 1 on a
 *     mismatch, 2 on a usage or I/O error.
 *
 * Keys are "k00".."k47" in space 0 and "d00".."d07" in space 1, so operations collide.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bitcask/bitcask.h>

#define NKEYS0 48
#define NKEYS1 8
#define NSLOTS (NKEYS0 + NKEYS1)
#define MAX_MEMBERS 6
#define LINE_MAX_ 1024

/* ---- keys and values ---- */

static unsigned slot_space(int s)
{
	return s < NKEYS0 ? 0 : 1;
}

static void slot_key(int s, char out[8])
{
	if (s < NKEYS0)
		snprintf(out, 8, "k%02u", (unsigned)s % 100u);
	else
		snprintf(out, 8, "d%02u", (unsigned)(s - NKEYS0) % 100u);
}

/* "0/k07" or "1/d03" back to a slot; -1 if it is not one. */
static int parse_slot(const char *tok)
{
	int n;
	if (sscanf(tok, "0/k%d", &n) == 1 && n >= 0 && n < NKEYS0)
		return n;
	if (sscanf(tok, "1/d%d", &n) == 1 && n >= 0 && n < NKEYS1)
		return NKEYS0 + n;
	return -1;
}

static void slot_name(int s, char out[16])
{
	char k[8];
	slot_key(s, k);
	snprintf(out, 16, "%u/%s", slot_space(s), k);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

static uint64_t fnv(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = UINT64_C(1469598103934665603);
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(1099511628211);
	return h;
}

/* The value of operation seq, member m: deterministic, so only its hash is logged. */
static void make_value(uint64_t seq, int m, uint8_t *buf, size_t len)
{
	uint64_t s = seq * 0x9E3779B97F4A7C15u + (uint64_t)m + 1;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t r = rng_next(&s);
		memcpy(buf + i, &r, 8);
	}
	uint64_t r = rng_next(&s);
	memcpy(buf + i, &r, len - i);
}

/* ---- the model: each slot's value length and hash ---- */

struct val {
	bool present;
	uint64_t len, hash;
};

struct member {
	char kind; /* 'p' put, 'd' delete, 'm' rename */
	int a, b; /* slots (b for renames) */
	uint64_t len, hash;
};

struct op {
	uint64_t seq;
	int n;
	struct member m[MAX_MEMBERS];
	bool batch;
};

static void apply(struct val *v, const struct op *op)
{
	for (int i = 0; i < op->n; i++) {
		const struct member *m = &op->m[i];
		switch (m->kind) {
		case 'p':
			v[m->a] = (struct val){true, m->len, m->hash};
			break;
		case 'd':
			v[m->a].present = false;
			break;
		case 'm':
			v[m->b] = v[m->a];
			v[m->a].present = false;
			break;
		}
	}
}

/* "B seq batch|put|del  p 0/k01 len hash  d 0/k02  m 0/k03 1/d00 ..." */
static int format_op(const struct op *op, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "B %" PRIu64 " %s", op->seq, op->batch ? "batch" : "single");
	for (int i = 0; i < op->n && n < (int)cap; i++) {
		const struct member *m = &op->m[i];
		char a[16], b[16];
		slot_name(m->a, a);
		if (m->kind == 'p')
			n += snprintf(buf + n, cap - (size_t)n, " p %s %" PRIu64 " %016" PRIx64, a,
				      m->len, m->hash);
		else if (m->kind == 'd')
			n += snprintf(buf + n, cap - (size_t)n, " d %s", a);
		else {
			slot_name(m->b, b);
			n += snprintf(buf + n, cap - (size_t)n, " m %s %s", a, b);
		}
	}
	if (n + 2 > (int)cap)
		return -1;
	buf[n++] = '\n';
	buf[n] = 0;
	return n;
}

static int parse_op(char *line, struct op *op)
{
	memset(op, 0, sizeof(*op));
	char *save, *t = strtok_r(line, " \n", &save); /* "B" */
	t = strtok_r(NULL, " \n", &save);
	if (!t)
		return -1;
	op->seq = strtoull(t, NULL, 10);
	t = strtok_r(NULL, " \n", &save);
	if (!t)
		return -1;
	op->batch = !strcmp(t, "batch");
	while ((t = strtok_r(NULL, " \n", &save))) {
		if (op->n == MAX_MEMBERS)
			return -1;
		struct member *m = &op->m[op->n++];
		m->kind = t[0];
		char *a = strtok_r(NULL, " \n", &save);
		if (!a || (m->a = parse_slot(a)) < 0)
			return -1;
		if (m->kind == 'p') {
			char *l = strtok_r(NULL, " \n", &save), *h = strtok_r(NULL, " \n", &save);
			if (!l || !h)
				return -1;
			m->len = strtoull(l, NULL, 10);
			m->hash = strtoull(h, NULL, 16);
		} else if (m->kind == 'm') {
			char *b = strtok_r(NULL, " \n", &save);
			if (!b || (m->b = parse_slot(b)) < 0)
				return -1;
		} else if (m->kind != 'd') {
			return -1;
		}
	}
	return op->n ? 0 : -1;
}

/*
 * Replay the log into v. *pending receives the operation begun and neither acknowledged
 * nor resolved (has_pending says whether there is one); *next_seq the next free number.
 */
static int replay(const char *log, struct val *v, struct op *pending, bool *has_pending,
		  uint64_t *next_seq, uint64_t *nacked)
{
	memset(v, 0, sizeof(*v) * NSLOTS);
	*has_pending = false;
	*next_seq = 1;
	*nacked = 0;
	FILE *f = fopen(log, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[LINE_MAX_];
	struct op cur;
	bool open_ = false;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		if (!n || line[n - 1] != '\n')
			break; /* a torn last line: never acknowledged */
		uint64_t seq = strtoull(line + 2, NULL, 10);
		if (line[0] == 'B') {
			if (open_) {
				fprintf(stderr,
					"log: operation %" PRIu64 " begun while %" PRIu64
					" was unresolved\n",
					seq, cur.seq);
				fclose(f);
				return -EBADMSG;
			}
			if (parse_op(line, &cur)) {
				fprintf(stderr, "log: bad line: %s", line);
				fclose(f);
				return -EBADMSG;
			}
			open_ = true;
			*next_seq = seq + 1;
		} else if (line[0] == 'A' || line[0] == 'R') {
			if (!open_ || seq != cur.seq) {
				fprintf(stderr, "log: %c %" PRIu64 " without its B\n", line[0],
					seq);
				fclose(f);
				return -EBADMSG;
			}
			unsigned long long rseq;
			int fate = 0;
			bool applied = line[0] == 'A' ||
				(sscanf(line, "R %llu %d", &rseq, &fate) == 2 && fate == 1);
			if (applied)
				apply(v, &cur);
			if (line[0] == 'A')
				(*nacked)++;
			open_ = false;
		}
	}
	fclose(f);
	if (open_) {
		*pending = cur;
		*has_pending = true;
	}
	return 0;
}

static int log_line(int fd, const char *buf, size_t n)
{
	ssize_t w = write(fd, buf, n);
	if (w != (ssize_t)n) {
		fprintf(stderr, "log write: %s\n", w < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

/* Cut a torn last line off the log (a write() the kill interrupted cannot leave one on
 * Linux, but a verifier must never build on a partial line). */
static void log_trim(const char *log)
{
	size_t len = 0;
	FILE *f = fopen(log, "r");
	if (!f)
		return;
	int c;
	size_t pos = 0;
	while ((c = fgetc(f)) != EOF) {
		pos++;
		if (c == '\n')
			len = pos;
	}
	fclose(f);
	if (len != pos && truncate(log, (off_t)len) != 0)
		perror("truncate log");
}

static void quiet(void *ctx, enum bc_log_level level, const char *msg)
{
	(void)ctx;
	if (level <= BC_LOG_WARN || getenv("BC_TEST_VERBOSE"))
		fprintf(stderr, "bitcask[%d]: %s\n", level, msg);
}

static struct bc_options store_options(void)
{
	struct bc_options o = {0};
	const char *sync = getenv("BC_CRASH_SYNC");
	o.sync = sync && !strcmp(sync, "none") ? BC_SYNC_NONE : BC_SYNC_ALWAYS;
	o.max_file_size = 64 * 1024; /* rotations and many files */
	o.merge_disable_auto = true;
	o.log = quiet;
	return o;
}

/* ---- write ---- */

static int pick_present(struct val *v, uint64_t *rs)
{
	int cand[NSLOTS], n = 0;
	for (int i = 0; i < NSLOTS; i++)
		if (v[i].present)
			cand[n++] = i;
	return n ? cand[below(rs, (uint64_t)n)] : -1;
}

static int pick_slot(uint64_t *rs)
{
	return below(rs, 5) ? (int)below(rs, NKEYS0) : NKEYS0 + (int)below(rs, NKEYS1);
}

static size_t pick_len(uint64_t *rs)
{
	unsigned r = (unsigned)below(rs, 100);
	if (r < 5)
		return BC_CHUNK_SIZE + 1 + below(rs, 3 * BC_CHUNK_SIZE); /* chunked */
	if (r < 15)
		return below(rs, 8000);
	return below(rs, 400);
}

/* Plan one operation against the model (deletes and renames of present keys). */
static void plan(struct val *v, uint64_t *rs, uint64_t seq, struct op *op)
{
	memset(op, 0, sizeof(*op));
	op->seq = seq;
	struct val tmp[NSLOTS];
	memcpy(tmp, v, sizeof(tmp));
	unsigned r = (unsigned)below(rs, 100);
	op->batch = r >= 70;
	int n = op->batch ? 1 + (int)below(rs, MAX_MEMBERS) : 1;
	for (int i = 0; i < n; i++) {
		struct member *m = &op->m[op->n];
		unsigned k = (unsigned)below(rs, 100);
		int src = pick_present(tmp, rs);
		if (!op->batch)
			k = r < 50 ? 0 : 99; /* single put or delete */
		if (k < 55 || src < 0) {
			m->kind = 'p';
			m->a = pick_slot(rs);
			m->len = pick_len(rs);
		} else if (k < 75 || !op->batch) {
			m->kind = 'd';
			m->a = src;
		} else {
			m->kind = 'm';
			m->a = src;
			do
				m->b = pick_slot(rs);
			while (m->b == m->a);
		}
		if (m->kind == 'p') {
			uint8_t *buf = malloc(m->len + 8);
			if (!buf)
				abort();
			make_value(seq, op->n, buf, m->len);
			m->hash = fnv(buf, m->len);
			free(buf);
		}
		op->n++;
		struct op one = {.n = 1, .m = {*m}};
		apply(tmp, &one);
	}
}

static int run_op(struct bc_db *db, const struct op *op)
{
	struct bc_batch *b = NULL;
	int rc = 0;
	if (op->batch) {
		rc = bc_batch_new(&b);
		if (rc)
			return rc;
	}
	for (int i = 0; i < op->n && !rc; i++) {
		const struct member *m = &op->m[i];
		char ka[8], kb[8];
		slot_key(m->a, ka);
		unsigned sa = slot_space(m->a);
		if (m->kind == 'p') {
			uint8_t *buf = malloc(m->len + 8);
			if (!buf)
				return -ENOMEM;
			make_value(op->seq, i, buf, m->len);
			rc = b ? bc_batch_put(b, sa, ka, 3, buf, m->len, NULL, 0, 0)
			       : bc_put(db, sa, ka, 3, buf, m->len);
			free(buf);
		} else if (m->kind == 'd') {
			rc = b ? bc_batch_delete(b, sa, ka, 3) : bc_delete(db, sa, ka, 3);
		} else {
			slot_key(m->b, kb);
			rc = bc_batch_rename(b, sa, ka, 3, slot_space(m->b), kb, 3);
		}
	}
	if (!rc && b)
		rc = bc_batch_commit(db, b);
	bc_batch_free(b);
	return rc;
}

static int cmd_write(const char *dir, const char *log, uint64_t seed, uint64_t nops)
{
	struct val v[NSLOTS];
	struct op pending;
	bool has_pending;
	uint64_t seq, nacked;
	log_trim(log);
	int rc = replay(log, v, &pending, &has_pending, &seq, &nacked);
	if (rc)
		return 2;
	if (has_pending) {
		fprintf(stderr, "write: operation %" PRIu64 " is unresolved; run verify first\n",
			pending.seq);
		return 2;
	}
	int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (lfd < 0) {
		perror(log);
		return 2;
	}
	struct bc_options o = store_options();
	struct bc_db *db;
	rc = bc_open(dir, &o, &db);
	if (rc) {
		fprintf(stderr, "write: open %s: %s\n", dir, bc_strerror(rc));
		close(lfd);
		return 2;
	}
	uint64_t rs = seed ? seed : 1;
	for (uint64_t i = 0; !nops || i < nops; i++, seq++) {
		if (below(&rs, 40) == 0) {
			/* Not an operation on the model: a kill in a merge must lose nothing. */
			rc = bc_merge(db, below(&rs, 2));
			if (rc) {
				fprintf(stderr, "write: merge: %s\n", bc_strerror(rc));
				break;
			}
		}
		struct op op;
		char line[LINE_MAX_];
		plan(v, &rs, seq, &op);
		int n = format_op(&op, line, sizeof(line));
		if (n < 0 || log_line(lfd, line, (size_t)n)) {
			rc = -EIO;
			break;
		}
		rc = run_op(db, &op);
		if (rc) {
			fprintf(stderr, "write: operation %" PRIu64 ": %s\n", seq, bc_strerror(rc));
			break;
		}
		apply(v, &op);
		n = snprintf(line, sizeof(line), "A %" PRIu64 "\n", seq);
		if (log_line(lfd, line, (size_t)n)) {
			rc = -EIO;
			break;
		}
	}
	int crc = bc_close(db);
	close(lfd);
	return rc || crc ? 1 : 0;
}

/* ---- verify ---- */

/* Compare the store with v; prints the first difference unless quietly. */
static bool matches(struct bc_db *db, const struct val *v, bool loud)
{
	for (int s = 0; s < NSLOTS; s++) {
		char k[8], name[16];
		slot_key(s, k);
		slot_name(s, name);
		void *val;
		size_t len;
		int rc = bc_get(db, slot_space(s), k, 3, 0, &val, &len);
		if (!v[s].present) {
			if (rc == 0)
				free(val);
			if (rc != -ENOENT) {
				if (loud)
					fprintf(stderr, "  %s: get returned %d, expected missing\n",
						name, rc);
				return false;
			}
			continue;
		}
		if (rc) {
			if (loud)
				fprintf(stderr, "  %s: get: %s, expected %" PRIu64 " bytes\n", name,
					bc_strerror(rc), v[s].len);
			return false;
		}
		uint64_t h = fnv(val, len);
		free(val);
		if (len != v[s].len || h != v[s].hash) {
			if (loud)
				fprintf(stderr,
					"  %s: %zu bytes hash %016" PRIx64 ", expected %" PRIu64
					" bytes hash %016" PRIx64 "\n",
					name, len, h, v[s].len, v[s].hash);
			return false;
		}
	}
	/* Nothing else appeared: iteration lists exactly the present keys. */
	for (unsigned sp = 0; sp < 2; sp++) {
		struct bc_iter *it;
		if (bc_iter_new(db, sp, NULL, 0, &it))
			return false;
		const void *key;
		size_t kl;
		int rc, count = 0, want = 0;
		while ((rc = bc_iter_next(it, &key, &kl, NULL)) == 0) {
			char tok[16];
			snprintf(tok, sizeof(tok), "%u/%.*s", sp, (int)(kl < 8 ? kl : 8),
				 (const char *)key);
			int s = kl == 3 ? parse_slot(tok) : -1;
			if (s < 0 || !v[s].present) {
				if (loud)
					fprintf(stderr,
						"  unexpected key %s (%zu bytes) in space %u\n",
						tok, kl, sp);
				bc_iter_free(it);
				return false;
			}
			count++;
		}
		bc_iter_free(it);
		for (int s = 0; s < NSLOTS; s++)
			want += slot_space(s) == sp && v[s].present;
		if (rc != -ENOENT || count != want) {
			if (loud)
				fprintf(stderr,
					"  space %u: iteration gave %d keys (%d), expected %d\n",
					sp, count, rc, want);
			return false;
		}
	}
	return true;
}

static void on_problem(void *ctx, const char *file, uint64_t offset, const char *reason)
{
	(void)ctx;
	fprintf(stderr, "  check: %s at %" PRIu64 ": %s\n", file, offset, reason);
}

static int cmd_verify(const char *dir, const char *log)
{
	struct val v[NSLOTS], with[NSLOTS];
	struct op pending;
	bool has_pending;
	uint64_t next, nacked;
	log_trim(log);
	int rc = replay(log, v, &pending, &has_pending, &next, &nacked);
	if (rc)
		return 2;
	struct bc_options o = store_options();
	struct bc_db *db;
	rc = bc_open(dir, &o, &db);
	if (rc) {
		fprintf(stderr, "verify: open %s: %s\n", dir, bc_strerror(rc));
		return 1;
	}
	struct bc_stats st;
	bc_stats_get(db, &st);
	uint64_t damaged = st.recovered_damaged_records, torn = st.recovered_torn_bytes;
	size_t nfiles = st.nfiles;
	bc_stats_release(&st);
	int applied = -1; /* -1: nothing in flight */
	bool ok;
	if (has_pending) {
		memcpy(with, v, sizeof(with));
		apply(with, &pending);
		if (matches(db, with, false)) {
			applied = 1;
			ok = true;
		} else {
			applied = 0;
			ok = matches(db, v, false);
			if (!ok) {
				fprintf(stderr,
					"verify: the store is neither the state with operation %" PRIu64
					" (in flight) nor the state without it.\n with it:\n",
					pending.seq);
				matches(db, with, true);
				fprintf(stderr, " without it:\n");
				matches(db, v, true);
			}
		}
	} else {
		ok = matches(db, v, true);
		if (!ok)
			fprintf(stderr, "verify: the store differs from the acknowledged state\n");
	}
	if (damaged) {
		fprintf(stderr, "verify: open found %" PRIu64 " damaged records after a kill\n",
			damaged);
		ok = false;
	}
	int crc = bc_close(db);
	if (crc) {
		fprintf(stderr, "verify: close: %s\n", bc_strerror(crc));
		ok = false;
	}
	if (ok && has_pending) {
		int lfd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
		char line[64];
		int n = snprintf(line, sizeof(line), "R %" PRIu64 " %d\n", pending.seq, applied);
		if (lfd < 0 || log_line(lfd, line, (size_t)n))
			ok = false;
		if (lfd >= 0)
			close(lfd);
	}
	uint64_t problems = 0;
	rc = bc_check(dir, on_problem, NULL, &problems);
	if (rc || problems) {
		fprintf(stderr, "verify: check: %s, %" PRIu64 " problems\n", bc_strerror(rc),
			problems);
		ok = false;
	}
	int present = 0;
	for (int s = 0; s < NSLOTS; s++)
		present += (applied == 1 ? with : v)[s].present;
	printf("verified %d keys after %" PRIu64 " acknowledged operations; in flight: %s; "
	       "torn bytes %" PRIu64 "; %zu files\n",
	       present, nacked,
	       applied < 0	 ? "none"
		       : applied ? "applied"
				 : "lost",
	       torn, nfiles);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "write"))
		return cmd_write(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				 argc > 5 ? strtoull(argv[5], NULL, 0) : 0);
	if (argc == 4 && !strcmp(argv[1], "verify"))
		return cmd_verify(argv[2], argv[3]);
	fprintf(stderr, "usage: %s write DIR LOG SEED [NOPS] | verify DIR LOG\n", argv[0]);
	return 2;
}
