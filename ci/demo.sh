#!/usr/bin/env bash
# The main job (README): on a fresh machine, install and build what is missing, build (or
# reuse) the default guest kernel, and run the flagship scenario, S3: a driver takes a plain
# get_user_pages() reference on pages of an mmap'd ext4 file, memory reclaim strips their
# buffers, the device writes them, the driver dirties them, fsync says "done" -- and the data
# never reaches the disk. pinvm catches the loss on the host and prints the verdict with its
# evidence. Then the control (the same steps with pin_user_pages) shows nothing is lost.
#
# Exit 0 when pinvm caught the corruption and the control was clean, 1 when not, 125 when it
# could not test.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
PINVM=target/release/pinvm
out=$(mktemp -d /tmp/pinvm-demo.XXXXXX)
kernel=${PINVM_DEMO_KERNEL:-6.12}

echo "== S3 on Linux $kernel, ext4: FOLL_GET pin + reclaim, then DMA and fsync"
set +e
"$PINVM" run S03 --kernel-version "$kernel" --fs ext4 --out "$out/S03"
found=$?
set -e
if [ "$found" -eq 125 ]; then
  echo "pinvm demo: could not test (see above)"; exit 125
fi

echo
echo "== the control: the same steps with pin_user_pages (FOLL_PIN)"
set +e
"$PINVM" run S03b --kernel-version "$kernel" --fs ext4 --out "$out/S03b"
control=$?
set -e
[ "$control" -eq 125 ] && { echo "pinvm demo: could not test the control"; exit 125; }

echo
if [ "$found" -eq 1 ] && [ "$control" -eq 0 ]; then
  echo "pinvm demo: CAUGHT the lost write with FOLL_GET; the FOLL_PIN control is clean."
  echo "Evidence: $out/S03/verdicts.json, console.log, journal (pinvm journal show), dma.log (pinvm dma show)"
  exit 0
fi
echo "pinvm demo: unexpected: S3 exit $found (want 1), control exit $control (want 0); see $out"
exit 1
