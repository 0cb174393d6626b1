/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF), the
 * checksum of every record, file header and hint file (docs/FORMAT.md "Checksums").
 * Uses the SSE4.2 instruction when the CPU has it, slicing-by-8 tables otherwise.
 */
#ifndef BC_ENGINE_CRC32C_H
#define BC_ENGINE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Extend crc (0 to start) with len bytes at buf. bc_crc32c(bc_crc32c(0, a, n), b, m) equals
 * the CRC of a followed by b. The check value: bc_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t bc_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * The CRC of a followed by b, given crc_a = bc_crc32c(0, a, ..), crc_b = bc_crc32c(0, b, len_b)
 * and len_b. Costs O(log len_b), whatever the lengths. Lets a writer checksum a body before
 * it knows the header that precedes it (bc_record_encode_header_crc).
 */
uint32_t bc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/*
 * The two implementations bc_crc32c chooses between, exposed so tests can compare them.
 * bc_crc32c_hw uses the SSE4.2 instruction when bc_crc32c_hw_available() says the CPU has
 * it, and the tables otherwise, so it is safe to call anywhere.
 */
uint32_t bc_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t bc_crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool bc_crc32c_hw_available(void);

#endif /* BC_ENGINE_CRC32C_H */
