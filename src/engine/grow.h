/* SPDX-License-Identifier: MIT */
/*
 * Growable arrays: the one place the engine doubles a buffer's capacity, so every list it
 * builds (keys of a batch, records a merge copies, files found in a directory) grows the
 * same way and fails the same way.
 */
#ifndef BC_ENGINE_GROW_H
#define BC_ENGINE_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Room for need elements of size bytes in v, whose capacity is *cap elements: returns v
 * when it has room, else v reallocated to the capacity doubled from *cap (or from first)
 * until it holds need, updating *cap; NULL when out of memory (v and *cap unchanged).
 * There is always room for at least one element afterwards, so NULL never means "an
 * empty array that needed nothing".
 */
static inline void *bc_grow(void *v, size_t *cap, size_t need, size_t size, size_t first)
{
	if (!need)
		need = 1;
	if (need <= *cap)
		return v;
	size_t n = *cap ? *cap : first;
	while (n < need) {
		if (n > SIZE_MAX / 2 / size)
			return NULL;
		n *= 2;
	}
	void *p = realloc(v, n * size);
	if (p)
		*cap = n;
	return p;
}

#endif /* BC_ENGINE_GROW_H */
