// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control-file command parser (src/fs/core_ctl.c) on arbitrary
 * lines. A parse returns 1 (command), 0 (blank) or -EINVAL with a reason; a snapshot NAME
 * is NUL-terminated and resolves to a path.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core_ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	struct bcfs_cmd cmd;
	const char *why = NULL;
	memset(&cmd, 0xa5, sizeof(cmd));
	int rc = bcfs_ctl_parse(line, size, &cmd, &why);
	if (rc == 1) {
		if (cmd.kind != BCFS_CMD_MERGE && cmd.kind != BCFS_CMD_SYNC &&
		    cmd.kind != BCFS_CMD_SNAPSHOT)
			abort();
		if (cmd.kind == BCFS_CMD_SNAPSHOT) {
			size_t n = strnlen(cmd.arg, sizeof(cmd.arg));
			if (n == 0 || n == sizeof(cmd.arg))
				abort();
			char *p = bcfs_ctl_snapshot_path("/srv/data", cmd.arg);
			if (!p)
				abort();
			free(p);
		}
	} else if (rc == -EINVAL) {
		if (!why || !*why)
			abort();
	} else if (rc != 0) {
		abort();
	}
	free(line);
	return 0;
}
