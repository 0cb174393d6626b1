/* SPDX-License-Identifier: MIT */
/*
 * The append helper: a thread (bc-ahead) that does, on another CPU, the page cache work
 * around the active file that a writer would otherwise do between two appends. Ahead of
 * the appends it faults in the reserved room of a file mapped for them (so the copy into
 * the mapping finds its pages mapped and dirty), or brings the room of a file appended to
 * with pwritev into the page cache (so the write finds its pages there, zeroed). Behind
 * them it drops the bytes from the mapping and starts their disk writes (write-behind).
 * Every job is a hint: skipping one costs speed, never a byte. db.c, "Room ahead" and
 * "Write-behind", says when each is posted; docs/DESIGN.md "Threads" lists the thread.
 */
#ifndef BC_ENGINE_AHEAD_H
#define BC_ENGINE_AHEAD_H

#include <stdint.h>

struct bc_db;
struct bc_file;

enum bc_ahead_kind {
	BC_AHEAD_FAULT, /* fault in [from, to) of f->wmap for writing */
	BC_AHEAD_PREPARE, /* bring [from, to) of f into the page cache */
	BC_AHEAD_WRITEBACK, /* drop [from, to) from f->wmap, then start writing it to the disk */
};

/* Start the helper for db (db->ahead). Without it (no thread could be started) posts run
 * where they are made. */
void bc_ahead_start(struct bc_db *db);
/* Let the helper finish the jobs posted so far, then join it; accepts a db without one. */
void bc_ahead_stop(struct bc_db *db);
/*
 * Queue one job on f (the helper takes its own reference); a fault needs f->wmap. A
 * write-behind on a file with no writable mapping, or when the queue is full or there is
 * no helper, runs here; a fault or a prepare is then skipped: the writer's copy or write
 * brings the pages in itself.
 */
void bc_ahead_post(struct bc_db *db, struct bc_file *f, enum bc_ahead_kind kind, uint64_t from,
		   uint64_t to);

#endif /* BC_ENGINE_AHEAD_H */
