#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs with a file larger than the daemon may hold in memory: copying 400 MiB in and
# out keeps the daemon's peak resident memory far below the file size; appending to and
# rewriting the middle of the large file is cheap (costs the bytes written, checked via
# the store's growth), and many small appends in one open are buffered.
. "$(dirname "$0")/lib.sh"
bcfs_require
SIZE_MB=${BC_FS_LARGE_MB:-400}
avail=$(df -Pm "$T" | awk 'NR==2 {print $4}')
[ "$avail" -gt $((SIZE_MB * 3 + 200)) ] || skip "need $((SIZE_MB * 3 + 200)) MiB free in $T"

M=$T/mnt
bcfs_mount "$T/data" "$M"
pid=$(bcfs_pid "$M")
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }
base=$(hwm)

head -c $((SIZE_MB << 20)) /dev/urandom >"$T/big"
cp "$T/big" "$M/big"
cmp "$T/big" "$M/big" || fail "large file differs after copy in"
cp "$M/big" "$T/big.out"
cmp "$T/big" "$T/big.out" || fail "large file differs after copy out"
rm "$T/big.out"
peak=$(hwm)
echo "daemon VmHWM: ${base} KiB at mount, ${peak} KiB after copying ${SIZE_MB} MiB in and out"
[ $((peak - base)) -lt $((SIZE_MB * 1024 / 4)) ] ||
	fail "daemon memory grew by $((peak - base)) KiB for a ${SIZE_MB} MiB file"

# Appending and rewriting a little costs a little: the store grows by far less than a copy.
store() { du -sk "$T/data" | cut -f1; }
s0=$(store)
printf 'appended' >>"$M/big"
printf 'X' | dd of="$M/big" bs=1 seek=$((100 << 20)) conv=notrunc status=none
s1=$(store)
[ $((s1 - s0)) -lt 1024 ] || fail "a small append and rewrite grew the store by $((s1 - s0)) KiB"
expect_eq "$(stat -c %s "$M/big")" $(((SIZE_MB << 20) + 8)) "size after append"
expect_eq "$(tail -c 8 "$M/big")" appended "appended bytes"
expect_eq "$(dd if="$M/big" bs=1 skip=$((100 << 20)) count=1 status=none)" X "rewritten byte"

# Small writes in one open are buffered: 10000 lines of 10 bytes in one shell redirection.
w0=$(grep '^engine_puts ' "$M/.bitcask/stats" | cut -d' ' -f2)
s0=$(store)
for i in $(seq 1 10000); do printf 'line %04d\n' $((i % 10000)); done >"$M/lines"
s1=$(store)
expect_eq "$(wc -l <"$M/lines")" 10000 "buffered lines"
[ $((s1 - s0)) -lt 2048 ] || fail "10000 small writes grew the store by $((s1 - s0)) KiB"
echo "10000 small writes in one open grew the store by $((s1 - s0)) KiB"
bcfs_umount "$M"
pass
