#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcaskfs soak (docs/DURABILITY.md "Backups"): for BC_SOAK_SECONDS (default 60; scripts/soak
# for long runs) two writers create and delete files (small and large) through the mount,
# a reader checks every file it can read against what its writer wrote, merges are started
# through the control file, and backups are taken while all this runs: `snapshot NAME`
# followed by rsync -a of the snapshot, and plain rsync -a of the live data directory.
# Afterwards every snapshot backup, mounted on its own, holds every file written before its
# snapshot command whose removal had not begun when the command returned, and no file
# deleted before it; a live rsync backup mounts and every file in it reads back as written
# or, if it was being written during the copy, as a prefix of that (it may miss files a
# concurrent merge moved: use snapshot); the store itself, remounted, holds everything. The
# daemon's RSS and open fds, sampled throughout, must stay flat after warm-up.
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
# Journal lines: "W name md5 skip size" after the copy returned; "R name" before an rm
# starts and "D name" after it returned (an rm may take effect before a snapshot that
# returns before the rm's "D" line is written, so only "R" says a file may be gone).
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
			echo "R w$w/k$((n - 200))" >>"$j"
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

# The verification is linear in the journals: one table of every file written, one listing
# per backup, one awk pass over both.
# table: "name md5 skip size written-at deleted-at removing-at", line numbers in the file's
# own journal (0: never).
for w in 0 1; do
	awk '$1 == "W" { md5[$2] = $3; skip[$2] = $4; size[$2] = $5; at[$2] = NR }
		$1 == "D" { del[$2] = NR }
		$1 == "R" { rm[$2] = NR }
		END { for (k in md5) print k, md5[k], skip[k], size[k], at[k], del[k] + 0, rm[k] + 0 }' \
		"$T/journal.$w"
done >"$T/table"
all=$(awk '$7 == 0' "$T/table" | wc -l)

# check_tree MNT LABEL [BEFORE0 BEFORE1 AFTER0 AFTER1]: every file in MNT holds what its writer
# wrote or (it was being written when the backup was taken, like a crash) a prefix of it.
# With the journal lengths taken just before and just after a snapshot (or "all" for the end
# state): every file written before it and not being removed by its end is there and exact,
# and every file deleted before it is absent.
check_tree() {
	local mnt=$1 label=$2 b0=${3:-} b1=${4:-} a0=${5:-} a1=${6:-} name skip len
	(cd "$mnt" && find w0 w1 -type f -printf '%p %s\n') | LC_ALL=C sort >"$T/sizes" ||
		fail "$label: cannot list it"
	(cd "$mnt" && find w0 w1 -type f -print0 | xargs -0 -r md5sum) | awk '{ print $2, $1 }' |
		LC_ALL=C sort >"$T/sums" || fail "$label: cannot read every file"
	LC_ALL=C join "$T/sizes" "$T/sums" >"$T/have" # name size md5
	awk -v b0="$b0" -v b1="$b1" -v a0="$a0" -v a1="$a1" '
		function lim(v) { return v == "all" ? 1e18 : v == "" ? -1 : v + 0 }
		BEGIN { before[0] = lim(b0); before[1] = lim(b1); after[0] = lim(a0); after[1] = lim(a1) }
		NR == FNR {
			w = substr($1, 2, 1); md5[$1] = $2; skip[$1] = $3; size[$1] = $4
			if ($6 > 0 && $6 <= before[w]) absent[$1] = 1
			else if ($5 <= before[w] && ($7 == 0 || $7 > after[w])) { must[$1] = 1; nmust++ }
			next
		}
		{
			seen[$1] = 1; nhave++
			if (!($1 in md5)) print "FAIL", $1, "was never written"
			else if ($1 in absent) print "FAIL", $1, "was deleted before the backup but is in it"
			else if ($3 == md5[$1]) next
			else if ($1 in must || $2 >= size[$1]) print "FAIL", $1, "is not as written"
			else { print "PREFIX", $1, skip[$1], $2; nprefix++ }
		}
		END {
			for (k in must) if (!(k in seen)) print "FAIL", k, "is missing"
			print "COUNT", nhave + 0, nmust + 0, nprefix + 0
		}
	' "$T/table" "$T/have" >"$T/verdict"
	if grep -q '^FAIL' "$T/verdict"; then
		grep -m 5 '^FAIL' "$T/verdict" | sed "s|^FAIL|$label:|" >&2
		fail "$label: $(grep -c '^FAIL' "$T/verdict") wrong files"
	fi
	while read -r _ name skip len; do
		dd if="$T/src" iflag=skip_bytes,count_bytes skip="$skip" count="$len" status=none |
			cmp -s - "$mnt/$name" || fail "$label: $name holds content never written"
	done < <(grep '^PREFIX' "$T/verdict" || true)
	read -r _ checked_files checked_must checked_prefixes < <(grep '^COUNT' "$T/verdict")
	[ "$checked_files" -eq "$(wc -l <"$T/sizes")" ] || fail "$label: could not read every file"
}

bcfs_umount "$M"
for ((i = 1; i <= snaps; i++)); do
	bcfs_mount "$T/backup-snap$i" "$T/mb" -o ro
	check_tree "$T/mb" "snapshot backup $i" "$(cat "$T/snap$i.before.0")" \
		"$(cat "$T/snap$i.before.1")" "$(cat "$T/snap$i.after.0")" "$(cat "$T/snap$i.after.1")"
	echo "snapshot backup $i: $checked_must files required, all exact; $checked_files files in all"
	bcfs_umount "$T/mb"
done
for ((i = 1; i <= lives; i++)); do
	bcfs_mount "$T/backup-live$i" "$T/ml" -o ro
	check_tree "$T/ml" "live backup $i"
	echo "live rsync backup $i: $checked_files files, each as written" \
		"($checked_prefixes a prefix: copied mid-write)"
	bcfs_umount "$T/ml"
done
bcfs_mount "$D" "$M"
check_tree "$M" "store after the soak" all all all all
[ "$checked_files" -eq "$all" ] || fail "store after the soak: $checked_files files, $all expected"
echo "store after the soak: all $all files present and exact"
bcfs_umount "$M"
pass
