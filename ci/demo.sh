#!/usr/bin/env bash
# The main job: install and build what is missing, build (or reuse) the default guest kernel,
# boot it and run a command in it.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
exec target/release/pinvm boot --verbose -- sh -c 'uname -a; echo "vCPUs: $(nproc)"'
