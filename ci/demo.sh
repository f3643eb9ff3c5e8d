#!/usr/bin/env bash
# The main job: install and build what is missing, build (or reuse) the default guest kernel,
# boot it, run a command, then let the guest write a stamped file on an ext4 disk and show
# what the host saw: the file's extents (from the guest) and the block write journal.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
PINVM=target/release/pinvm
out=$(mktemp -d /tmp/pinvm-demo.XXXXXX)

echo "== boot the default kernel and run a command"
"$PINVM" boot --verbose -- sh -c 'uname -a; echo "vCPUs: $(nproc)"'

echo "== write 1 MiB on ext4, fsync, report extents; the host journals every block write"
image=$("$PINVM" image create --fs ext4)
"$PINVM" boot --verbose --disk "$image" --journal "$out/journal" --keep-disk "$out/disk.img" \
  --report "$out/report.json" \
  --step 'write /mnt/demo 1M stamp:demo' --step 'fsync /mnt/demo' --step 'fiemap /mnt/demo'
echo "== the journal (first records)"
"$PINVM" journal show "$out/journal" | grep -v '^  seg' | head -20
echo "results in $out (journal, kept disk image, report.json)"
