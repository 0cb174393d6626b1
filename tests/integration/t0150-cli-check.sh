#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask check: a clean store passes silently; a flipped byte inside a record of a data
# file is reported as "file:offset: reason" at that record's offset (exit 1, a count on
# stderr), dump shows the damage at the same offset, and reads skip it. A lost chunk makes
# its value read as an error and check name the key. A damaged hint file is reported too.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store

head -c 300 /dev/zero | tr '\0' A | "$BC" put "$D" k1
{ printf 'MARKER'; head -c 300 /dev/zero | tr '\0' B; } | "$BC" put "$D" k2
head -c 300 /dev/zero | tr '\0' C | "$BC" put "$D" k3

"$BC" check "$D" >"$T/out" 2>"$T/err" || fail "check of a clean store: $(cat "$T/err")"
[ ! -s "$T/out" ] || fail "check of a clean store printed $(cat "$T/out")"
[ ! -s "$T/err" ] || fail "check of a clean store complained $(cat "$T/err")"

# Where k2's record starts, and the data file that holds it.
"$BC" dump "$D" >"$T/dump"
where=$(awk '/ put .* key=k2$/ { print $1 }' "$T/dump")
[ -n "$where" ] || fail "no put record for k2 in dump: $(cat "$T/dump")"
file=${where%:*}
off=${where##*:}
name=$(basename "$file")
[ -f "$D/$name" ] || fail "dump names '$file', not a file of $D"

# Flip the marker's first byte (inside k2's value, so the CRC no longer matches).
pos=$(grep -obUa MARKER "$D/$name" | head -n 1 | cut -d: -f1)
[ -n "$pos" ] || fail "marker not found in $name"
[ "$pos" -gt "$off" ] || fail "marker at $pos before its record at $off"
printf 'm' | dd of="$D/$name" bs=1 seek="$pos" conv=notrunc status=none

expect_fail 1 "$T/err" "$BC" check "$D" >"$T/out"
grep -Eq "(^|/)$name:$off: .+" "$T/out" || fail "check output lacks $name:$off: $(cat "$T/out")"
# (The hint written when the store was closed may be reported as not matching, too.)
n=$(wc -l <"$T/out")
expect_eq "$(wc -l <"$T/err")" 1 "lines on stderr"
grep -Eq "^bitcask: check: $D: $n problems? found\$" "$T/err" || fail "check stderr: $(cat "$T/err")"
bad=$(grep -Ev '^[^ ]+:[0-9]+: .+' "$T/out" || true)
[ -z "$bad" ] || fail "check lines not 'file:offset: reason': $bad"

# dump shows the damage in place of the record; k1 and k3 are still there.
"$BC" dump "$D" >"$T/dump2"
grep -Eq "(^|/)$name:$off damage .+" "$T/dump2" || fail "dump lacks the damage: $(cat "$T/dump2")"
grep -q ' key=k1$' "$T/dump2" || fail "dump lost k1"
grep -q ' key=k3$' "$T/dump2" || fail "dump lost k3"

# Reads never return damaged bytes; the others are intact.
expect_fail 1 "$T/err" "$BC" get "$D" k2 >"$T/out"
[ ! -s "$T/out" ] || fail "get of a damaged record printed bytes"
expect_eq "$("$BC" get "$D" k1 | tr -d A)" "" "k1 intact"
expect_eq "$("$BC" get "$D" k3 | wc -c)" 300 "k3 intact"
# The hint written at close still lists k2, so the read itself must catch the damage.
grep -q "^bitcask: get: $D: .*$name.*$off" "$T/err" || fail "get of k2: $(cat "$T/err")"
# Without the hint, open scans the file and skips the damaged record.
rm -f "$D"/*.hint
"$BC" stats "$D" >"$T/stats"
expect_eq "$(awk '$1 == "recovered_damaged_records" { print $2 }' "$T/stats")" 1 \
	"recovered_damaged_records"
expect_eq "$(awk '$1 == "keys" { print $2 }' "$T/stats")" 2 "keys without the damaged one"
expect_fail 1 "$T/err" "$BC" get "$D" k2

# A chunk whose record header is destroyed, in a file without a hint: nothing on disk says
# whose chunk it was, so the value must read as an error (never with zeros), and check
# names the key whose value may have lost it (docs/FORMAT.md "Recovery").
L=$T/lost
head -c 200000 /dev/urandom | "$BC" --max-file-size 4096 put "$L" big
echo v | "$BC" --max-file-size 4096 put "$L" after
"$BC" dump "$L" >"$T/dump3"
where=$(awk '/ chunk .* chunk=1 / { print $1 }' "$T/dump3")
[ -n "$where" ] || fail "no chunk 1 in dump: $(cat "$T/dump3")"
rm -f "$L"/*.hint
printf '\377' | dd of="$L/${where%:*}" bs=1 seek=$((${where##*:} + 4)) conv=notrunc status=none
expect_fail 1 "$T/err" "$BC" check "$L" >"$T/out"
grep -q 'key "big" (space 0): object 1 may have lost chunks to damage' "$T/out" ||
	fail "check does not name big: $(cat "$T/out")"
expect_fail 1 "$T/err" "$BC" get "$L" big >"$T/out"
[ ! -s "$T/out" ] || fail "get of a value with a lost chunk printed bytes"
expect_eq "$("$BC" get "$L" after)" v "after intact"

# A damaged hint file: several files so immutable ones have hints.
H=$T/hinted
for i in $(seq 1 8); do
	head -c 3000 /dev/urandom | "$BC" --max-file-size 4096 put "$H" "key$i"
done
"$BC" check "$H" || fail "check of a store with hint files"
hint=$(find "$H" -name '*.hint' | sort | head -n 1)
[ -n "$hint" ] || fail "no hint files in $H: $(ls "$H")"
size=$(stat -c %s "$hint")
printf '\377' | dd of="$hint" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_fail 1 "$T/err" "$BC" check "$H" >"$T/out"
grep -q "$(basename "$hint"):[0-9]*: " "$T/out" || fail "check does not name the hint: $(cat "$T/out")"
# The store still reads (open falls back to scanning the data file).
for i in $(seq 1 8); do
	"$BC" get "$H" "key$i" | wc -c | grep -qx 3000 || fail "key$i with a damaged hint"
done

# check of something that is not a store.
expect_fail 1 "$T/err" "$BC" check "$T/nothing"
expect_eq "$(wc -l <"$T/err")" 1 "lines on stderr for a missing store"
grep -q "No such file or directory" "$T/err" || fail "missing store: $(cat "$T/err")"

pass
