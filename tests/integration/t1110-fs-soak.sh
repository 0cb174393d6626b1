#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs soak (docs/DURABILITY.md "Backups"): for BC_SOAK_SECONDS (default 60; scripts/soak
# for long runs) two writers create and delete files (small and large) through the mount,
# a reader checks every file it can read against what its writer wrote, merges are started
# through the control file, and backups are taken while all this runs: `snapshot NAME`
# followed by rsync -a of the snapshot, and plain rsync -a of the live data directory.
# Afterwards every snapshot backup, mounted on its own, holds exactly the files written
# before its snapshot command and not deleted; a live rsync backup mounts and every file in
# it reads back as written or, if it was being written during the copy, as a prefix of that
# (it may miss files a concurrent merge moved: use snapshot); the store itself, remounted, holds everything. The daemon's RSS and open fds,
# sampled throughout, must stay flat after warm-up.
. "$(dirname "$0")/lib.sh"
bcfs_require
command -v rsync >/dev/null || skip "no rsync"
secs=${BC_SOAK_SECONDS:-60}

M=$T/mnt D=$T/data
bcfs_mount "$D" "$M" -o max_file_size=256K -o automerge=0
pid=$(bcfs_pid "$M")
C=$M/.bitcask
head -c $((3 * 1024 * 1024)) /dev/urandom >"$T/src"
touch "$T/run"

# writer W: files w$W/k$N, 1 in 8 large; keeps 200 files, deleting the oldest.
# Journal lines (appended only after the operation returned): "W name md5" and "D name".
writer() {
	local w=$1 n=0 j size
	j=$T/journal.$w
	: >"$j"
	mkdir -p "$M/w$w"
	while [ -e "$T/run" ]; do
		if ((n % 8 == 7)); then size=$((100000 + RANDOM * 20)); else size=$((1 + RANDOM % 3000)); fi
		skip=$((RANDOM * 40))
		dd if="$T/src" of="$T/tmp.$w" iflag=skip_bytes,count_bytes skip=$skip count=$size \
			status=none
		cp "$T/tmp.$w" "$M/w$w/k$n" || { echo "writer $w: cp k$n failed" >>"$T/errors"; return; }
		echo "W w$w/k$n $(md5sum <"$T/tmp.$w" | cut -d' ' -f1) $skip $size" >>"$j"
		if ((n >= 200)); then
			rm "$M/w$w/k$((n - 200))" || { echo "writer $w: rm failed" >>"$T/errors"; return; }
			echo "D w$w/k$((n - 200))" >>"$j"
		fi
		n=$((n + 1))
	done
}

# reader: any journaled file it can read whole must have its md5 (or be gone: ENOENT).
reader() {
	local line name sum got
	while [ -e "$T/run" ]; do
		for w in 0 1; do
			line=$(grep '^W ' "$T/journal.$w" 2>/dev/null | shuf -n 1) || continue
			[ -n "$line" ] || continue
			name=${line#W }
			sum=${name#* }
			name=${name% *}
			if got=$({ md5sum <"$M/$name"; } 2>/dev/null); then
				[ "${got%% *}" = "$sum" ] || echo "reader: $name has wrong content" >>"$T/errors"
			fi
		done
	done
}

writer 0 &
load=($!)
writer 1 &
load+=($!)
reader &
load+=($!)
sleep_until() { # wait up to $1 s, ending early when the writers died
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt $deadline ] && [ ! -s "$T/errors" ]; do sleep 0.2; done
}

samples=()
snaps=0 lives=0
start=$SECONDS
while [ $((SECONDS - start)) -lt "$secs" ] && [ ! -s "$T/errors" ]; do
	sleep_until 5
	echo merge >"$C/control" 2>/dev/null || true # EBUSY while one runs
	# Snapshot backup: the journals' lengths now bound what it must hold.
	snaps=$((snaps + 1))
	for w in 0 1; do wc -l <"$T/journal.$w" >"$T/snap$snaps.before.$w"; done
	echo "snapshot snap$snaps" >"$C/control" || fail "snapshot snap$snaps"
	for w in 0 1; do wc -l <"$T/journal.$w" >"$T/snap$snaps.after.$w"; done
	rsync -a "$T/snap$snaps/" "$T/backup-snap$snaps/" || fail "rsync of snapshot $snaps"
	rm -rf "$T/snap$snaps"
	# Plain rsync of the live directory (vanishing files are rsync's exit 24).
	lives=$((lives + 1))
	rc=0
	rsync -a --exclude LOCK "$D/" "$T/backup-live$lives/" 2>"$T/rsync.err" || rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 24 ] || fail "rsync of the live directory: exit $rc: $(cat "$T/rsync.err")"
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
	# Descriptors other than the store's files stay constant; the store's track its files.
	fds=$(find "/proc/$pid/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -cv "^$D/" || true)
	dfd=$(find "/proc/$pid/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -c "^$D/" || true)
	nfiles=$(ls "$D" | wc -l)
	[ "$dfd" -le $((nfiles + 8)) ] || fail "daemon holds $dfd descriptors of store files, the store has $nfiles"
	samples+=("$((SECONDS - start)) $rss $fds")
done
rm -f "$T/run"
deadline=$((SECONDS + 60))
alive() {
	local p
	for p in "${load[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
while alive; do
	[ $SECONDS -lt $deadline ] || fail "load did not stop"
	sleep 0.1
done
[ ! -s "$T/errors" ] || { cat "$T/errors" >&2; fail "load errors"; }
echo "soak: $secs s, $(grep -c '^W' "$T/journal.0") + $(grep -c '^W' "$T/journal.1") files written, $snaps snapshots, $lives live rsyncs"
for x in ${samples[@]+"${samples[@]}"}; do echo "$x"; done |
	awk '{ printf "t=%ss rss=%sKiB other-fds=%s%s", $1, $2, $3, NR % 4 ? "  " : "\n" } END { print "" }'

# RSS and fds flat: compare the last sample with the one a quarter in (after warm-up).
n=${#samples[@]}
if [ "$n" -ge 4 ]; then
	read -r _ rss0 fd0 <<<"${samples[$((n / 4))]}"
	read -r _ rss1 fd1 <<<"${samples[$((n - 1))]}"
	[ "$rss1" -le $((rss0 * 3 / 2 + 32768)) ] || fail "daemon RSS grew from $rss0 to $rss1 KiB"
	[ "$fd1" -le $((fd0 + 4)) ] || fail "daemon's other fds grew from $fd0 to $fd1"
fi

# What a journal prefix says must exist: "name md5" of files written and not deleted.
expected() { # journal lines
	awk '$1 == "W" { s[$2] = $3 } $1 == "D" { delete s[$2] } END { for (k in s) print k, s[k] }'
}
# verify_tree MNT MUST GONE: every file in MUST ("name md5") is there with its md5, no file
# in GONE (names) is there, and every file there holds something its writer wrote.
verify_tree() {
	local mnt=$1 must=$2 gone=$3 name sum got
	while read -r name sum; do
		[ "$(md5sum <"$mnt/$name" | cut -d' ' -f1)" = "$sum" ] || fail "$mnt/$name missing or wrong"
	done <"$must"
	while read -r name; do
		[ ! -e "$mnt/$name" ] || fail "$mnt/$name was deleted before the backup but is in it"
	done <"$gone"
	(cd "$mnt" && find w0 w1 -type f 2>/dev/null) | while read -r name; do
		content_ok "$mnt" "$name" || fail "$mnt/$name holds content never written"
	done
}
# content_ok MNT NAME: the file holds what its writer wrote, or (it was being written when
# the backup was taken, like a crash) a prefix of it.
content_ok() {
	local f=$1/$2 rec len
	rec=$(grep -h "^W $2 " "$T/journal.0" "$T/journal.1") || return 1
	set -- $rec
	[ "$(md5sum <"$f" | cut -d' ' -f1)" = "$3" ] && return 0
	len=$(stat -c %s "$f")
	[ "$len" -lt "$5" ] && dd if="$T/src" iflag=skip_bytes,count_bytes skip="$4" count="$len" \
		status=none | cmp -s - "$f"
}
# must_gone I: the lists for snapshot I. Must: written before the command and not deleted
# by the time it returned; gone: deleted before the command.
must_gone() {
	local i=$1 w
	for w in 0 1; do head -n "$(cat "$T/snap$i.before.$w")" "$T/journal.$w"; done |
		awk '$1 == "W" { print $2, $3 }' >"$T/w-before"
	for w in 0 1; do head -n "$(cat "$T/snap$i.after.$w")" "$T/journal.$w"; done |
		awk '$1 == "D" { print $2 }' >"$T/d-after"
	for w in 0 1; do head -n "$(cat "$T/snap$i.before.$w")" "$T/journal.$w"; done |
		awk '$1 == "D" { print $2 }' >"$T/gone"
	awk 'NR == FNR { d[$1] = 1; next } !($1 in d)' "$T/d-after" "$T/w-before" >"$T/must"
}

bcfs_umount "$M"
for ((i = 1; i <= snaps; i++)); do
	must_gone "$i"
	bcfs_mount "$T/backup-snap$i" "$T/mb" -o ro
	verify_tree "$T/mb" "$T/must" "$T/gone"
	echo "snapshot backup $i: $(wc -l <"$T/must") files required, all exact"
	bcfs_umount "$T/mb"
done
all=$( (cat "$T/journal.0" "$T/journal.1") | expected | wc -l)
for ((i = 1; i <= lives; i++)); do
	bcfs_mount "$T/backup-live$i" "$T/ml" -o ro
	have=$( (cd "$T/ml" && find w0 w1 -type f 2>/dev/null) | wc -l)
	(cd "$T/ml" && find w0 w1 -type f 2>/dev/null) | while read -r name; do
		content_ok "$T/ml" "$name" || fail "live backup $i: $name holds content never written"
	done
	echo "live rsync backup $i: $have files, each as written (or a prefix: copied mid-write)"
	bcfs_umount "$T/ml"
done
bcfs_mount "$D" "$M"
(cat "$T/journal.0" "$T/journal.1") | expected >"$T/list"
(cat "$T/journal.0" "$T/journal.1") | awk '$1 == "D" { print $2 }' >"$T/gone"
verify_tree "$M" "$T/list" "$T/gone"
echo "store after the soak: all $all files present and exact"
bcfs_umount "$M"
pass
