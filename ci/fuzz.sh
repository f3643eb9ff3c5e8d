#!/usr/bin/env bash
# The fuzz smoke: every fuzz target of fuzz-smoke/ (guest-facing parsers and state machines,
# host file readers) for a time box each, on stable Rust, then executions per target.
#   ci/fuzz.sh                      # PINVM_FUZZ_SECS=3 per target (CI)
#   PINVM_FUZZ_SECS=600 ci/fuzz.sh  # a longer run
#   PINVM_FUZZ_SEED=N ci/fuzz.sh    # replay a failure's seed (printed with the failure)
#   ci/fuzz.sh journal_reader       # only the targets whose name contains this
# Longer coverage-guided runs of the block queue: devices/fuzz (cargo +nightly fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
export PINVM_FUZZ_SECS="${PINVM_FUZZ_SECS:-3}"
log=$(mktemp)
# The targets' scratch files, in memory where possible.
PINVM_FUZZ_DIR=$(mktemp -d -p "$( [ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" pinvm-fuzz.XXXXXX)
export PINVM_FUZZ_DIR
trap 'rm -f "$log"; rm -rf "$PINVM_FUZZ_DIR"' EXIT
status=0
echo "ci/fuzz: fuzz-smoke targets, $PINVM_FUZZ_SECS s each"
nice -n 10 cargo test --release -p fuzz-smoke -- --test-threads=1 --nocapture "$@" >"$log" 2>&1 \
  || status=1
grep -oE 'fuzz [a-z_]+: [0-9]+ executions in [0-9.]+ s \(seed [0-9]+\)' "$log" || true
if [ "$status" -ne 0 ]; then
  echo "ci/fuzz: a target failed; the end of its log follows, with the shrunk input and the seed"
  grep -v '^\s*Compiling' "$log" | tail -80
fi
echo
echo "ci/fuzz: executions per target (PINVM_FUZZ_SECS=$PINVM_FUZZ_SECS)"
grep -oE 'fuzz [a-z_]+: [0-9]+ executions in [0-9.]+ s' "$log" | grep -v '^fuzz \(edits\|fails\):' \
  | sed -E 's/^fuzz ([a-z_]+): ([0-9]+) executions in ([0-9.]+) s.*/\1 \2 \3/' \
  | awk '{ printf "  %-16s %10d  (%s s)\n", $1, $2, $3; n++; t += $2 } END { printf "  %d targets, %d executions\n", n, t }'
exit "$status"
