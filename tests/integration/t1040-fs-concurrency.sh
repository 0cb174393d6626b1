#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs under concurrent traffic: several writers rewrite and append to their own
# files while readers check every read is a whole, consistent version; meanwhile a merge is
# started through /.bitcask/control and must finish beside the traffic, with stats showing
# it (merges_done grows, dead bytes shrink). Files of the same name are written and read
# by different processes with close-to-open consistency.
. "$(dirname "$0")/lib.sh"
bcfs_require
export LC_ALL=C

M=$T/mnt
bcfs_mount "$T/data" "$M" -o max_file_size=1M -o automerge=0
stat_of() { grep "^$1 " "$M/.bitcask/stats" | cut -d' ' -f2; }

# Dead data to merge: rewrite a set of files a few times.
mkdir "$M/w"
for r in 1 2 3 4; do
	for i in $(seq 1 20); do head -c 50000 /dev/urandom >"$M/w/f$i"; done
done
dead0=$(stat_of dead_bytes)
merges0=$(stat_of merges_done)
[ "$dead0" -gt 1000000 ] || fail "expected dead bytes before merge, got $dead0"

# Writers: each rewrites its file with a version line repeated, readers check that what
# they read is all one version (close-to-open: a reader opens after a writer closed).
writer() {
	local n=$1 v
	for v in $(seq 1 40); do
		{ yes "w$n v$v" || true; } | head -n 2000 >"$M/w/c$n.tmp"
		mv "$M/w/c$n.tmp" "$M/w/c$n"
		echo "w$n v$v" >>"$M/w/append$n"
	done
}
reader() {
	local n=$1 i
	for i in $(seq 1 60); do
		[ -e "$M/w/c$n" ] || continue
		local u
		u=$(sort -u "$M/w/c$n" | wc -l)
		[ "$u" -le 1 ] || { echo "reader $n saw a mixed file" >&2; return 1; }
	done
}
pids=()
for n in 1 2 3; do
	writer "$n" &
	pids+=($!)
	reader "$n" &
	pids+=($!)
done
# A reader of the big old files during the merge.
(for i in $(seq 1 10); do cat "$M"/w/f* >/dev/null; done) &
pids+=($!)
echo merge >"$M/.bitcask/control"
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent reader or writer failed"; done
wait_for 120 test "$(stat_of merge_state)" = idle || fail "merge did not finish"
merges1=$(stat_of merges_done)
[ "$merges1" -gt "$merges0" ] || fail "merges_done did not grow ($merges0 -> $merges1)"
expect_eq "$(stat_of merges_requested)" 1 "merges_requested"
# Writers keep making dead bytes while the merge runs, so judge the merge by what it
# reclaimed: at least half of the dead bytes that existed when it started.
reclaimed=$(stat_of merge_reclaimed_bytes)
[ "$reclaimed" -ge $((dead0 / 2)) ] ||
	fail "merge reclaimed $reclaimed bytes of the $dead0 dead bytes there were"
for n in 1 2 3; do
	expect_eq "$(sort -u "$M/w/c$n")" "w$n v40" "final version of c$n"
	expect_eq "$(wc -l <"$M/w/append$n")" 40 "appends of writer $n"
done

# Many processes appending to one file through one mount: no line is lost or torn.
pids=()
for n in $(seq 1 4); do
	(for i in $(seq 1 100); do echo "p$n line $i" >>"$M/shared"; done) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent appender failed"; done
expect_eq "$(wc -l <"$M/shared")" 400 "concurrent appends"
expect_eq "$(grep -cv '^p[1-4] line [0-9]*$' "$M/shared" || true)" 0 "no torn line"

# A file replaced by rename over and over while readers open it by name: every read sees
# one whole version, never the new file's bytes under the old file's size.
mkdir "$M/replace"
"$BC_BUILD_DIR/tests/integration/fs_replace" "$M/replace" 8 || fail "a reader saw a mixed file"
bcfs_umount "$M"
pass
