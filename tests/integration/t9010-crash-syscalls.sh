#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A crash at every write, sync, rename, unlink and truncate system call of a fixed workload.
# crash_writer (see t9000) runs the same seeded operations each time; strace kills it with
# SIGKILL at the N-th call of one kind, for every N the workload reaches and every kind;
# after each kill the verifier opens the store and checks that every acknowledged
# operation is there, the one in flight is there whole or not at all, nothing else
# appeared, and bc_check finds no damage.
#   BC_SYSCALL_CRASH_OPS  operations in the workload (default 80)
#   BC_TEST_SEED          the workload's seed (default 7)
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || skip "strace is not installed"
W=$BC_BUILD_DIR/tests/integration/crash_writer
[ -x "$W" ] || fail "missing $W"
# LeakSanitizer cannot run under ptrace; everything else of ASan stays on.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
nops=${BC_SYSCALL_CRASH_OPS:-80}
seed=${BC_TEST_SEED:-7}
kinds=(pwritev fdatasync fsync renameat unlinkat ftruncate)

# How many calls of each kind the whole workload makes.
strace -f -qq -c -o "$T/counts" -e trace="$(
	IFS=,
	echo "${kinds[*]}"
)" "$W" write "$T/full" "$T/full.log" "$seed" "$nops" >/dev/null ||
	fail "the workload fails without a crash"
"$W" verify "$T/full" "$T/full.log" >/dev/null || fail "the uncrashed workload does not verify"

points=0
for kind in "${kinds[@]}"; do
	n=$(awk -v k="$kind" '$NF == k { print ($4 ~ /^[0-9]+$/) ? $4 : $5 }' "$T/counts")
	n=${n:-0}
	for ((i = 1; i <= n; i++)); do
		rm -rf "$T/store" "$T/log"
		rc=0
		strace -f -qq -o /dev/null -e trace="$kind" -e inject="$kind:signal=KILL:when=$i" \
			"$W" write "$T/store" "$T/log" "$seed" "$nops" >/dev/null 2>&1 || rc=$?
		# strace exits 128+9 when it killed the writer; anything else means the
		# injection did not happen and this run would prove nothing.
		[ "$rc" -eq 137 ] || fail "$kind call $i of $n: writer was not killed (exit $rc)"
		grep -q '^B ' "$T/log" 2>/dev/null || continue # killed before the first operation
		out=$("$W" verify "$T/store" "$T/log" 2>&1) ||
			fail "kill at $kind call $i of $n: $out (store kept in $T/store)"
		points=$((points + 1))
	done
	echo "$kind: $n calls, each one a crash point"
done
[ "$points" -gt 100 ] || fail "only $points crash points were exercised"
echo "crash points verified: $points"
pass
