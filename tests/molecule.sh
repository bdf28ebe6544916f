#!/usr/bin/env bash
# Runs one molecule command with its whole output kept in a log outside the clone. When it
# fails, the failed tasks are printed again at the very end: molecule's destroy step and
# recap come after a failed verify, and CI keeps only the tail of the output.
# Usage: tests/molecule.sh <molecule args...>   (e.g. test -s rollback)
set -uo pipefail
log_dir=${MOLECULE_LOG_DIR:-/var/log/lakehouse-tick}
mkdir -p "$log_dir"
log="$log_dir/molecule-$(date -u +%Y%m%dT%H%M%SZ)-${*//[^a-z0-9]/_}.log"

molecule "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [[ $rc -ne 0 ]]; then
  echo
  echo "=== molecule $* failed (rc $rc); its failed tasks, from $log ==="
  # CI keeps only the last ~2 KB of output: per failure, its task and four lines of its
  # message, colours and frames stripped, lines cut to 240 characters, the last 16 lines.
  sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[[:space:]│]*//' "$log" \
    | awk '/^TASK \[/ {task = $0}
           /(fatal|failed): \[|FAILED! =>/ {print "-- " task; show = 4}
           show > 0 {print; show--}' \
    | cut -c1-240 | tail -n 16
fi
exit "$rc"
