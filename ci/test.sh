#!/usr/bin/env bash
# The test command: install, build, lint, build both guest kernels (cached by content hash),
# then run unit and integration tests. Integration tests boot real kernels under /dev/kvm and
# print a loud SKIP line where there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
# The timeline report's browser test (harness/tests/timeline_browser.rs) runs headless Chromium.
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  echo "ci/test: installing chromium"
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings

PINVM=target/release/pinvm
# Build both guest kernels up front (each is a no-op when cached).
for v in debian-6.12 debian-6.1; do
  "$PINVM" kernel build --source "$v" --print-path
done

# Boot tests share two cores with emulated guest kernels: run them one at a time.
export PINVM_BIN="$PWD/$PINVM"
cargo test --release --workspace --exclude pinvm-agent --exclude fuzz-smoke -- --test-threads=1
cargo test --release -p pinvm-agent
# The fuzz smoke: every fuzz target for a few seconds (ci/fuzz.sh prints executions per target).
ci/fuzz.sh
