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
# The report writers' consumers (harness/src/report/consumers.rs): xmllint for the JUnit
# schema, kunit_tool from the kernel source for KTAP, kcidb-io (PyPI) for the kcidb JSON.
tools="${PINVM_CI_TOOLS:-$HOME/.cache/pinvm-ci}"
mkdir -p "$tools"
if ! command -v xmllint >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
  echo "ci/test: installing libxml2-utils (xmllint) and python3-venv"
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libxml2-utils python3-venv >/dev/null
fi
if [ ! -f "$tools/kunit/tools/testing/kunit/kunit.py" ]; then
  echo "ci/test: extracting kunit_tool from /usr/src/linux-source-6.12.tar.xz"
  rm -rf "$tools/kunit" && mkdir -p "$tools/kunit"
  tar -xJf /usr/src/linux-source-6.12.tar.xz -C "$tools/kunit" --strip-components=1 \
    --wildcards 'linux-source-6.12/tools/testing/kunit/*'
fi
export PINVM_KUNIT_PY="$tools/kunit/tools/testing/kunit/kunit.py"
if ! "$tools/venv/bin/python" -c 'import kcidb_io' 2>/dev/null; then
  echo "ci/test: installing kcidb-io into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q kcidb-io
fi
export PINVM_KCIDB_PYTHON="$tools/venv/bin/python"

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
