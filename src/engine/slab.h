/* SPDX-License-Identifier: MIT */
/*
 * Fixed-size blocks carved from 2 MiB slabs, for the keydir's nodes: a lookup touches a
 * node at every level of the tree, and with each node in its own 4 KiB page every one of
 * those touches is a TLB miss once the keydir outgrows the TLB. A slab is aligned to
 * 2 MiB and, from a store's second slab on, asks for transparent huge pages, so one TLB
 * entry covers 512 nodes. Not thread-safe: the owner serializes (the keydir's writers
 * hold its write lock).
 *
 * Memory follows frees: an empty slab is unmapped (one is kept, to absorb churn at a slab
 * boundary), a block freed into a slab on small pages is handed back to the kernel at
 * once, and a huge slab whose blocks fall under half used gives up its huge page and
 * becomes a small-page slab. So a slab holds at most twice its live blocks, and at most
 * one slab is held with none.
 */
#ifndef BC_ENGINE_SLAB_H
#define BC_ENGINE_SLAB_H

#include <stdbool.h>
#include <stddef.h>

#define BC_SLAB_SIZE ((size_t)2 << 20)

struct bc_slab;

struct bc_slabs {
	size_t unit; /* block size: a power of two, 1 KiB to 64 KiB */
	struct bc_slab *head, *tail; /* every slab but the spare; those with a free block first */
	struct bc_slab *spare; /* an empty slab kept mapped, or NULL */
	size_t slabs; /* mapped, the spare included */
	size_t bytes; /* what memory() reports */
	bool small_only; /* tests: never ask for huge pages */
};

/* Set up an allocator of unit-byte blocks (see unit above). Maps nothing yet. */
void bc_slabs_init(struct bc_slabs *sl, size_t unit);
/* A block, aligned to unit; NULL when no memory could be mapped. */
void *bc_slab_alloc(struct bc_slabs *sl);
/* Give back a block from bc_slab_alloc; its contents are lost. */
void bc_slab_free(struct bc_slabs *sl, void *p);
/* Unmap every slab: the blocks still handed out are gone too. */
void bc_slabs_fini(struct bc_slabs *sl);
/*
 * Bytes held: a huge slab counts whole, a small-page slab its header and live blocks.
 * (A huge slab counts whole even where the kernel backs it with small pages after all,
 * such as when transparent huge pages are off: an upper bound.)
 */
static inline size_t bc_slabs_memory(const struct bc_slabs *sl)
{
	return sl->bytes;
}

#endif /* BC_ENGINE_SLAB_H */
