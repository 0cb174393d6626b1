/* SPDX-License-Identifier: MIT */
/*
 * On-disk format constants and layouts. docs/FORMAT.md is normative; this header mirrors
 * it and each block names the section it follows. All integers are little-endian and
 * are read and written with the explicit helpers below, never by casting a struct onto
 * bytes. A change here changes the format: bump BC_FORMAT_VERSION, update FORMAT.md and
 * the golden files in tests/data/ in the same commit.
 */
#ifndef BC_ENGINE_FORMAT_H
#define BC_ENGINE_FORMAT_H

#include <stdint.h>
#include <string.h>

#include <bitcask/bitcask.h>

#define BC_FORMAT_VERSION 1

/* The tables below mirror FORMAT.md's byte tables; keep them aligned by hand. */
/* clang-format off */
/* FORMAT.md "Directory layout". File names are the 64-bit file id in 16 lowercase hex
 * digits plus a suffix. */
#define BC_DATA_SUFFIX ".data"
#define BC_HINT_SUFFIX ".hint"
#define BC_TMP_SUFFIX ".tmp" /* appended to a data or hint name while a merge writes it */
#define BC_LOCK_NAME "LOCK"
#define BC_FILE_NAME_MAX 32
/* A new active file takes the next multiple of this above the largest id; merge outputs
 * take the ids right after the last file of the run they replace. */
#define BC_ID_STEP (UINT64_C(1) << 16)

/* FORMAT.md "File header": 48 bytes at offset 0 of data and hint files. */
#define BC_FILE_MAGIC "bitcask\0"
#define BC_FILE_MAGIC_LEN 8
#define BC_FILE_HEADER_SIZE 48
enum bc_file_kind { BC_KIND_DATA = 1, BC_KIND_HINT = 2 };
#define BC_FH_MAGIC 0       /* 8 bytes */
#define BC_FH_VERSION 8     /* u16 */
#define BC_FH_KIND 10       /* u16 */
#define BC_FH_CHUNK 12      /* u32, BC_CHUNK_SIZE */
#define BC_FH_ID 16         /* u64 file id */
#define BC_FH_NEXT_OBJ 24   /* u64: every object id in use when the file was made is below */
#define BC_FH_CREATED 32    /* u64 ns */
#define BC_FH_RESERVED 40   /* u32, zero */
#define BC_FH_CRC 44        /* u32 crc32c of bytes [0, 44) */

/* FORMAT.md "Records": a 32-byte header, then key, metadata and value. */
#define BC_REC_HEADER_SIZE 32
#define BC_RH_CRC 0       /* u32 crc32c of bytes [4, end of record) */
#define BC_RH_TYPE 4      /* u8 */
#define BC_RH_FLAGS 5     /* u8 */
#define BC_RH_SPACE 6     /* u8 */
#define BC_RH_RESERVED 7  /* u8, zero */
#define BC_RH_TIME 8      /* u64 ns since the epoch */
#define BC_RH_EXPIRE 16   /* u64 unix seconds, 0 = never */
#define BC_RH_KLEN 24     /* u16 */
#define BC_RH_MLEN 26     /* u16 */
#define BC_RH_VLEN 28     /* u32 */

enum bc_rec_type {
	BC_REC_PUT = 1,    /* key, meta, inline value of at most BC_CHUNK_SIZE bytes */
	BC_REC_DELETE = 2, /* key only */
	BC_REC_LINK = 3,   /* key, meta; value = object id u64, size u64 */
	BC_REC_CHUNK = 4,  /* value = object id u64, index u32, zero u32, then data */
	BC_REC_TRUNC = 5,  /* value = object id u64, size u64 */
	BC_REC_BATCH = 6,  /* value = count u32, zero u32, bytes u64 of the members */
};
#define BC_REC_TYPE_MAX 6

/* Flag bit: this record is a member of the batch opened by the nearest BATCH record. */
#define BC_RF_BATCH 0x01u
#define BC_RF_KNOWN BC_RF_BATCH

#define BC_OBJ_VALUE_SIZE 16  /* LINK and TRUNC values */
#define BC_CHUNK_PREFIX 16    /* CHUNK value bytes before the data */
#define BC_BATCH_VALUE_SIZE 16
#define BC_MAX_INLINE BC_CHUNK_SIZE
/* The largest record of any kind; every record fits a buffer of this size. */
#define BC_MAX_RECORD (BC_REC_HEADER_SIZE + BC_MAX_KEY + BC_MAX_META + BC_CHUNK_PREFIX + BC_CHUNK_SIZE)
/* Data files are addressed with 32-bit offsets. */
#define BC_MAX_FILE_SIZE (UINT64_C(2) << 30)
#define BC_MAX_BATCH_RECORDS (UINT32_C(1) << 24)

/* FORMAT.md "Hint files": header, entries, trailer. */
#define BC_HINT_ENTRY_SIZE 24       /* fixed part; +16 for LINK, CHUNK, TRUNC; then the key */
#define BC_HE_OFFSET 0    /* u32 record offset in the data file */
#define BC_HE_TYPE 4      /* u8 */
#define BC_HE_SPACE 5     /* u8 */
#define BC_HE_KLEN 6      /* u16 */
#define BC_HE_MLEN 8      /* u16 */
#define BC_HE_RESERVED 10 /* u16, zero */
#define BC_HE_VLEN 12     /* u32 */
#define BC_HE_EXPIRE 16   /* u64 */
#define BC_HE_EXTRA 24    /* object u64 + (size u64 | index u32 + data length u32) */
#define BC_HINT_TRAILER_SIZE 24
#define BC_HT_MAGIC 0     /* 8 bytes "hintend\0" */
#define BC_HT_COVERED 8   /* u64 data file bytes the hint describes */
#define BC_HT_COUNT 16    /* u32 entries */
#define BC_HT_CRC 20      /* u32 crc32c of every byte of the file before this field */
#define BC_HINT_END_MAGIC "hintend\0"

/* clang-format on */

_Static_assert(BC_REC_HEADER_SIZE == BC_RH_VLEN + 4, "record header layout");
_Static_assert(BC_FILE_HEADER_SIZE == BC_FH_CRC + 4, "file header layout");
_Static_assert(BC_HINT_ENTRY_SIZE == BC_HE_EXTRA, "hint entry layout");
_Static_assert(BC_HINT_TRAILER_SIZE == BC_HT_CRC + 4, "hint trailer layout");
_Static_assert(BC_MAX_RECORD < UINT32_MAX, "record sizes fit u32");
_Static_assert(BC_MAX_FILE_SIZE + BC_MAX_RECORD <= UINT32_MAX, "offsets fit u32");

static inline uint16_t bc_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t bc_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t bc_le64(const uint8_t *p)
{
	return (uint64_t)bc_le32(p) | (uint64_t)bc_le32(p + 4) << 32;
}

static inline void bc_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void bc_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void bc_put64(uint8_t *p, uint64_t v)
{
	bc_put32(p, (uint32_t)v);
	bc_put32(p + 4, (uint32_t)(v >> 32));
}

#endif /* BC_ENGINE_FORMAT_H */
