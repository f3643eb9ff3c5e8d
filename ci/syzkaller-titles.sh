#!/usr/bin/env bash
# pinvm's crash titles against syzkaller's own report corpus (pkg/report/testdata/linux/report
# in github.com/google/syzkaller: consoles with the titles syzkaller gives them), at a pinned
# syzkaller commit. Fetches only that directory (sparse, blob-filtered, depth 1) into a cache
# directory once, then runs the ignored measurement test, which prints the agreement figures
# and the disagreements and fails below the floor.
#
#   ci/syzkaller-titles.sh                      # floor 90 % exact first-title agreement
#   PINVM_SYZKALLER_FLOOR=95 ci/syzkaller-titles.sh
#   PINVM_SYZKALLER_LIST=1 ci/syzkaller-titles.sh   # every disagreement, not two per category
#
# Environment: PINVM_SYZKALLER_CACHE (default ~/.cache/pinvm-syzkaller), PINVM_SYZKALLER_REPO
# (default https://github.com/google/syzkaller.git; a local clone works too),
# PINVM_SYZKALLER_COMMIT (default: the pinned commit below).
set -euo pipefail
cd "$(dirname "$0")/.."

# The syzkaller commit measured (the corpus grows with syzkaller; a newer one may differ).
COMMIT=${PINVM_SYZKALLER_COMMIT:-1e72964b0111319984575e60f266d1fa0a98abb5}
REPO=${PINVM_SYZKALLER_REPO:-https://github.com/google/syzkaller.git}
CACHE=${PINVM_SYZKALLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinvm-syzkaller}
SUBDIR=pkg/report/testdata/linux/report
DEST="$CACHE/$COMMIT"

if [ ! -d "$DEST/$SUBDIR" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  git -C "$tmp" init -q
  git -C "$tmp" remote add origin "$REPO"
  git -C "$tmp" sparse-checkout set --no-cone "/$SUBDIR/"
  if ! git -C "$tmp" fetch -q --depth 1 --filter=blob:none origin "$COMMIT"; then
    echo "syzkaller-titles: could not fetch $COMMIT from $REPO (network? set PINVM_SYZKALLER_REPO to a local clone)" >&2
    exit 1
  fi
  git -C "$tmp" -c advice.detachedHead=false checkout -q FETCH_HEAD
  rm -rf "$DEST"
  mv "$tmp" "$DEST"
  trap - EXIT
fi
n=$(find "$DEST/$SUBDIR" -maxdepth 1 -type f | wc -l)
echo "syzkaller corpus: $DEST/$SUBDIR ($n files, commit $COMMIT)"

PINVM_SYZKALLER_CORPUS="$DEST/$SUBDIR" \
  PINVM_SYZKALLER_FLOOR="${PINVM_SYZKALLER_FLOOR:-90}" \
  cargo test --release -p oracle --test syzkaller_titles -- --ignored --nocapture
