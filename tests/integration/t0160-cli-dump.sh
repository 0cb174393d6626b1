#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bitcask dump: one line per record in log order, with type, flags, space, lengths,
# object/chunk and expiry; the key, escaped, last.
. "$(dirname "$0")/lib.sh"

BC=$BIN/bitcask
[ -x "$BC" ] || skip "no $BC"
D=$T/store

printf abc | "$BC" put "$D" k1
"$BC" delete "$D" k1
printf 'x' | "$BC" put --ttl 1000 "$D" ttl
head -c 100000 /dev/urandom | "$BC" put "$D" big
"$BC" dump "$D" >"$T/dump"
cat "$T/dump" | sed 's/^/# /'

N='[0-9]+'
F="^[^ ]+:$N"
# Every line is a record or damage; this store has no damage.
LINE="$F [a-z]+ flags=(batch|-) space=$N time=$N expire=$N meta=$N value=$N object=$N chunk=$N klen=$N key="
bad=$(grep -Ev "$LINE" "$T/dump" || true)
[ -z "$bad" ] || fail "malformed dump lines: $bad"
grep -q ' damage ' "$T/dump" && fail "damage in a clean store"

grep -Eq "$F put flags=- space=0 time=$N expire=0 meta=0 value=3 object=$N chunk=$N klen=2 key=k1\$" "$T/dump" \
	|| fail "put of k1"
grep -Eq "$F delete flags=- space=0 .* klen=2 key=k1\$" "$T/dump" || fail "delete of k1"
# put before delete: log order.
expect_eq "$(grep -E ' key=k1$' "$T/dump" | awk '{ print $2 }' | tr '\n' ' ')" "put delete " \
	"order of k1's records"
# Expiry: about 1000 s from now.
exp=$(grep -E ' key=ttl$' "$T/dump" | sed -E 's/.* expire=([0-9]+) .*/\1/')
now=$(date +%s)
[ "$exp" -gt $((now + 900)) ] && [ "$exp" -le $((now + 1000)) ] || fail "expire $exp (now $now)"
# A chunked value: two chunks of one object and a link of size 100000 to it.
line=$(grep -E " link .* value=100000 .* key=big\$" "$T/dump") || fail "no link of big"
obj=$(sed -E 's/.* object=([0-9]+) .*/\1/' <<<"$line")
[[ $obj =~ ^[0-9]+$ ]] || fail "object of big: $line"
expect_eq "$(grep -Ec " chunk .* object=$obj chunk=[01] klen=0 key=\$" "$T/dump")" 2 "chunks of big"
# Offsets grow within a file.
awk '{ split($1, a, ":"); if (a[1] == f && a[2] + 0 <= o) exit 1; f = a[1]; o = a[2] + 0 }' "$T/dump" \
	|| fail "offsets out of order"

# dump does not need the lock: it works beside a writer.
mkfifo "$T/fifo"
"$BC" put "$D" held <"$T/fifo" &
holder=$!
at_exit "kill $holder 2>/dev/null"
exec 3>"$T/fifo"
wait_for 20 grep -qw "$holder" "$D/LOCK" || fail "put did not take the lock"
"$BC" dump "$D" >/dev/null || fail "dump beside a writer"
"$BC" check "$D" || fail "check beside a writer"
exec 3>&-
wait $holder || fail "the holding put failed"

# A missing store.
expect_fail 1 "$T/err" "$BC" dump "$T/nothing"
expect_eq "$(wc -l <"$T/err")" 1 "lines on stderr for a missing store"
grep -q "No such file or directory" "$T/err" || fail "missing store: $(cat "$T/err")"

pass
