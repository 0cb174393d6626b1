#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Crash consistency under SIGKILL: crash_writer performs seeded random puts, deletes,
# batches with renames and chunked values on one store, logging
# each operation before it starts and again when it is acknowledged; it is killed with
# SIGKILL at a random moment (during an operation, a rotation, a merge, or its own open
# and recovery), and crash_writer verify then checks that every acknowledged operation
# is in the store with the right value, that nothing else appeared, and that the one
# operation in flight is either wholly applied or wholly absent. The next writer
# continues on the same store, so recovery after recovery is exercised. Writers alternate
# between BC_SYNC_ALWAYS and BC_SYNC_NONE: with NONE, small appends are copied into the
# active file's mapping, into room reserved ahead of them, and a SIGKILL keeps the page
# cache, so every acknowledged operation must survive that way too.
#
# BC_CRASH_KILLS sets the number of kills (default 250, about a minute under ASan);
# BC_CRASH_LONG=1 makes it 5000. BC_TEST_SEED changes the seed (default 9000).
. "$(dirname "$0")/lib.sh"

CW=$BC_BUILD_DIR/tests/integration/crash_writer
[ -x "$CW" ] || skip "no $CW"
KILLS=${BC_CRASH_KILLS:-250}
[ -n "${BC_CRASH_LONG:-}" ] && KILLS=${BC_CRASH_KILLS:-5000}
SEED=${BC_TEST_SEED:-9000}
RANDOM=$((SEED % 32768))
D=$T/store
L=$T/ack.log
echo "# seed $SEED (set BC_TEST_SEED to repeat), $KILLS kills"

kills=0 checks=0 applied=0 lost=0 idle=0 early=0
for ((i = 1; i <= KILLS; i++)); do
	sync=always
	[ $((i % 2)) = 1 ] && sync=none
	BC_CRASH_SYNC=$sync "$CW" write "$D" "$L" $((SEED * 100000 + i)) >"$T/writer.out" 2>&1 &
	pid=$!
	# A random moment in the first 0.3 s: some kills land in the writer's own start-up
	# and recovery, most in the middle of operations.
	sleep "0.$(printf '%03d' $((RANDOM % 300)))"
	kill -KILL "$pid" 2>/dev/null || true
	rc=0
	{ wait "$pid"; } 2>/dev/null || rc=$?
	if [ "$rc" -ne 137 ]; then
		cat "$T/writer.out" >&2
		fail "kill $i ($sync writer): the writer exited with $rc before it was killed"
	fi
	kills=$((kills + 1))
	grep -q 'Sanitizer' "$T/writer.out" && { cat "$T/writer.out" >&2; fail "sanitizer report"; }
	if ! "$CW" verify "$D" "$L" >"$T/verify.out" 2>&1; then
		cat "$T/verify.out" >&2
		cp -r "$D" "$T/store-at-failure"
		fail "kill $i ($sync writer): verification failed (log $L, store copy $T/store-at-failure)"
	fi
	checks=$((checks + 1))
	case $(cat "$T/verify.out") in
	*"in flight: applied"*) applied=$((applied + 1)) ;;
	*"in flight: lost"*) lost=$((lost + 1)) ;;
	*) idle=$((idle + 1)) ;;
	esac
	[ -s "$L" ] || early=$((early + 1))
done
acked=$(grep -c '^A ' "$L" || true)
echo "# $kills kills, $checks verifications, $acked acknowledged operations;" \
	"in-flight operation applied $applied, lost $lost, none $idle"
echo "# last: $(tail -n 1 "$T/verify.out")"
[ "$acked" -gt 0 ] || fail "no operation was ever acknowledged"
pass
