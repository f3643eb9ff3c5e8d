#!/usr/bin/env bash
# The second demonstration (README, "The 2019 debate, settled by experiment"): Hillf Danton's
# page_try_gup_pin RFC (2019), reconstructed as patches under test, against John Hubbard's
# prediction that it "leads to either system hangs or filesystem corruption, in the presence of
# long-lasting gup pins". Runs S12 (the stock kernel), S12A (writeback skips pinned folios in
# every sync mode, as the RFC did) and S12B (only in background writeback) on one kernel and
# the three filesystems; the scenarios name their patches, so the patched kernels are built
# (incrementally) on first use.
#
#   ci/demo-2019.sh            # Linux 6.12
#   ci/demo-2019.sh 6.1        # Linux 6.1
#
# Exit 0 when every cell matched its expectation, 1 when not, 125 when it could not test.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
kernel=${1:-6.12}
out=$(mktemp -d /tmp/pinvm-2019.XXXXXX)
echo "== S12 (stock), S12A (skip pinned folios in every sync mode), S12B (background only) on Linux $kernel"
exec target/release/pinvm suite S12 S12A S12B --kernel-version "$kernel" --out "$out" --html "$out/index.html"
