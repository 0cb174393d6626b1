#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run one libFuzzer target: replay the seed corpus, then fuzz for SECONDS, keeping what it
# finds in WORKDIR (never in the checked-in seeds). Prints the executions and fails on a
# crash, a leak or a timeout, leaving the reproducer (crash-*, leak-*, timeout-*) in WORKDIR.
#   run.sh FUZZER SEEDDIR WORKDIR SECONDS [extra libFuzzer flags]
set -euo pipefail
fuzzer=$(realpath "$1") seeds=$(realpath "$2") work=$(realpath -m "$3") secs=$4
shift 4
mkdir -p "$work"
log=$work.log
rc=0
(cd "$work" && "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/" "$@" "$work" "$seeds") >"$log" 2>&1 || rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo "fuzz $(basename "$fuzzer"): ${execs:-?} executions in ${secs} s, corpus $(ls "$work" | wc -l) files (exit $rc)" | tee "$work.summary"
if [ $rc -ne 0 ]; then
	tail -60 "$log"
	ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null || true
	exit 1
fi
