#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs: exact errnos of the system calls behind the tools (fs_errno.c), then the same
# store mounted read-only refuses every change with EROFS.
. "$(dirname "$0")/lib.sh"
bcfs_require
H=$BC_BUILD_DIR/tests/integration/fs_errno
[ -x "$H" ] || skip "no fs_errno helper"

bcfs_mount "$T/data" "$T/mnt"
"$H" "$T/mnt" || fail "fs_errno"
bcfs_umount "$T/mnt"

bcfs_mount "$T/data" "$T/ro" -o ro
[ -f "$T/ro/f" ] || fail "read-only mount shows the files"
expect_eq "$(cat "$T/ro/f")" data "read through a read-only mount"
err=$( (echo x >"$T/ro/new") 2>&1 || true)
case $err in *"Read-only file system"*) ;; *) fail "create on ro mount: $err" ;; esac
err=$(mkdir "$T/ro/nd" 2>&1 || true)
case $err in *"Read-only file system"*) ;; *) fail "mkdir on ro mount: $err" ;; esac
bcfs_umount "$T/ro"
pass
