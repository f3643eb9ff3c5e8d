#!/usr/bin/env bash
# Install what pinvm needs on a Debian/Ubuntu x86_64 machine, then build it.
# Idempotent: installs only what is missing. Used by ci/demo.sh, ci/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Guest kernel sources and build tools (ccache makes rebuilds in new build slots cheap; git
# and python3 for bisecting and the synthetic history), filesystem tools for disk images, a
# static busybox for the guest's shell and utilities.
PKGS=(linux-source-6.12 linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev
      cpio xz-utils e2fsprogs xfsprogs btrfs-progs busybox-static qemu-system-x86 ccache git
      python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci/setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "ci/setup: cargo is missing: install Rust (https://rustup.rs) first" >&2
  exit 125
fi
# The guest agent is a static musl binary, built with pinvm (guest-images/build.rs).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi

cargo build --release --workspace --exclude pinvm-agent
