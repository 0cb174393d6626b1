#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask merge: after overwrites and deletes spread over several data files (small
# --max-file-size), a full merge reports the bytes it reclaimed, dead and total bytes drop,
# and every live key keeps its value; a second merge finds nothing to do.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store

# field NAME: one field of bitcask stats.
field() {
	"$BC" stats "$D" | awk -v n="$1" '$1 == n { print $2 }'
}

head -c 4000 /dev/urandom >"$T/keep"
"$BC" put "$D" keep "$T/keep"
for i in $(seq 1 12); do
	head -c 10000 /dev/urandom >"$T/v"
	"$BC" --max-file-size 16384 put "$D" hot "$T/v"
	printf 'doomed %d' "$i" | "$BC" --max-file-size 16384 put "$D" "doomed$i"
done
# A large (chunked) value overwritten once: its old chunks are dead too.
head -c 300000 /dev/urandom | "$BC" --max-file-size 16384 put "$D" chunky
head -c 300000 /dev/urandom >"$T/chunky"
"$BC" --max-file-size 16384 put "$D" chunky "$T/chunky"
for i in $(seq 1 12); do
	"$BC" --max-file-size 16384 delete "$D" "doomed$i"
done

nfiles=$(field nfiles)
dead=$(field dead_bytes)
total=$(field total_bytes)
echo "# before: $nfiles files, $total bytes, $dead dead"
[ "$nfiles" -ge 3 ] || fail "only $nfiles data files: --max-file-size did not rotate"
[ "$dead" -ge $((11 * 10000 + 300000)) ] || fail "dead_bytes $dead before merge"
expect_eq "$(field keys)" 3 "keys before merge"

"$BC" merge "$D" >"$T/merge.out"
grep -Eq '^reclaimed_bytes [0-9]+$' "$T/merge.out" || fail "merge output: $(cat "$T/merge.out")"
reclaimed=$(awk '{ print $2 }' "$T/merge.out")
echo "# merge reclaimed $reclaimed"
[ "$reclaimed" -gt 0 ] || fail "merge reclaimed nothing"

dead2=$(field dead_bytes)
total2=$(field total_bytes)
echo "# after: $(field nfiles) files, $total2 bytes, $dead2 dead"
[ "$dead2" -lt "$dead" ] || fail "dead_bytes $dead -> $dead2"
[ "$total2" -lt "$total" ] || fail "total_bytes $total -> $total2"
# What merge reclaimed is what the store lost, give or take the files merge wrote.
[ "$reclaimed" -le "$total" ] || fail "reclaimed $reclaimed of $total bytes"
expect_eq "$(field keys)" 3 "keys after merge"

# Live values survive, deleted keys stay deleted.
"$BC" get "$D" keep | cmp -s - "$T/keep" || fail "keep after merge"
"$BC" get "$D" hot | cmp -s - "$T/v" || fail "hot after merge"
"$BC" get "$D" chunky | cmp -s - "$T/chunky" || fail "chunky after merge"
expect_fail 1 "$T/err" "$BC" get "$D" doomed5
expect_eq "$("$BC" list "$D" | tr '\n' ' ')" "chunky hot keep " "list after merge"
"$BC" check "$D" || fail "check after merge"

# Nothing left to do: reclaims nothing, changes nothing.
"$BC" --sync merge "$D" >"$T/merge.out"
expect_eq "$(cat "$T/merge.out")" "reclaimed_bytes 0" "second merge"
"$BC" get "$D" hot | cmp -s - "$T/v" || fail "hot after the second merge"

# A merge of an empty new store is fine too.
"$BC" merge "$T/empty" >"$T/merge.out"
expect_eq "$(cat "$T/merge.out")" "reclaimed_bytes 0" "merge of an empty store"

pass
