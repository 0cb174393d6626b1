// SPDX-License-Identifier: MIT
/*
 * The append helper (ahead.h): a small queue of jobs on the active file and one thread
 * that runs them. Writers post under wlock, about once per MiB appended; the thread
 * takes a reference on each job's file, so a rotation or a merge may retire the file
 * while a job on it is queued or running. Nothing here touches the keydir or a byte of
 * a record: a fault only maps pages and a prepare only reads the missing ones into the
 * page cache (their contents stay as they are, so either landing beside or behind the
 * writer is harmless), and a write-behind only starts disk writes that the next
 * fdatasync would have made anyway.
 */
#include "ahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define JOBS 8 /* a fault or prepare per MiB, a write-behind per 4 MiB: more than in flight */

struct job {
	struct bc_file *f;
	enum bc_ahead_kind kind;
	uint64_t from, to;
};

struct bc_ahead {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	bool stop;
	bool no_fault; /* the io layer or the kernel cannot populate: faults are skipped */
	unsigned head, tail; /* jobs[tail % JOBS] is the oldest; head - tail are queued */
	struct job jobs[JOBS];
};

static void run(struct bc_db *db, struct bc_ahead *a, const struct job *j)
{
	if (j->kind == BC_AHEAD_WRITEBACK) {
		/*
		 * Unmap the range first. Writeback write-protects every mapped dirty page it
		 * takes, and while the writer runs on the other CPU each of those costs an
		 * interrupt there to flush its TLB: 1M 100-byte puts caused 103,016 TLB
		 * shootdowns with this writeback here and 1,033 with it in the writer; 1,356
		 * with the range unmapped first, which is one flush. A later read maps the
		 * pages again; they never left the page cache.
		 */
		bc_io_advise(db->io, j->f->wmap + j->from, j->to - j->from, BC_IO_RELEASE);
		bc_io_writeback(db->io, j->f->fd, j->from, j->to - j->from);
		return;
	}
	if (j->kind == BC_AHEAD_PREPARE) {
		bc_io_willneed(db->io, j->f->fd, j->from, j->to - j->from);
		return;
	}
	/* -EFAULT: the file was cut back under the job (a rotation); nothing to do. */
	if (bc_io_advise(db->io, j->f->wmap + j->from, j->to - j->from, BC_IO_POPULATE) ==
	    -EOPNOTSUPP) {
		pthread_mutex_lock(&a->mu);
		a->no_fault = true;
		pthread_mutex_unlock(&a->mu);
	}
}

static void *ahead_main(void *arg)
{
	struct bc_db *db = arg;
	struct bc_ahead *a = db->ahead;

	pthread_setname_np(pthread_self(), "bc-ahead");
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && a->head == a->tail)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->head == a->tail)
			break; /* stopped, and every job posted has run */
		struct job j = a->jobs[a->tail % JOBS];
		pthread_mutex_unlock(&a->mu);
		run(db, a, &j);
		bc_file_put(db, j.f);
		pthread_mutex_lock(&a->mu);
		a->tail++; /* only now: the slot's file reference is gone */
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

void bc_ahead_start(struct bc_db *db)
{
	struct bc_ahead *a = calloc(1, sizeof(*a));
	if (!a)
		return;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->no_fault = !db->io->advise;
	db->ahead = a;
	int rc = pthread_create(&a->th, NULL, ahead_main, db);
	if (rc) {
		bc_log(db, BC_LOG_WARN, "%s: no append helper thread: %s", db->dir, strerror(rc));
		db->ahead = NULL;
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
	}
}

void bc_ahead_stop(struct bc_db *db)
{
	struct bc_ahead *a = db->ahead;
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->th, NULL);
	db->ahead = NULL;
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void bc_ahead_post(struct bc_db *db, struct bc_file *f, enum bc_ahead_kind kind, uint64_t from,
		   uint64_t to)
{
	struct bc_ahead *a = db->ahead;
	if (to <= from)
		return;
	/* Only a mapped file's write-behind goes to the helper (see write_behind in db.c). */
	if (a && (kind != BC_AHEAD_WRITEBACK || f->wmap)) {
		pthread_mutex_lock(&a->mu);
		bool queued = false;
		if (a->head - a->tail < JOBS && !(kind == BC_AHEAD_FAULT && a->no_fault)) {
			atomic_fetch_add(&f->refs, 1);
			a->jobs[a->head % JOBS] = (struct job){f, kind, from, to};
			a->head++;
			pthread_cond_signal(&a->cv);
			queued = true;
		}
		pthread_mutex_unlock(&a->mu);
		if (queued)
			return;
	}
	if (kind == BC_AHEAD_WRITEBACK)
		bc_io_writeback(db->io, f->fd, from, to - from);
}
