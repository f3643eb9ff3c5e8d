#!/usr/bin/env bash
# Regenerate the real-console fixtures of the oracle's console parser
# (oracle/tests/fixtures/console/<kernel>-<trigger>.txt, checked by oracle/tests/console.rs).
#
# For each guest kernel (6.12, 6.1) it builds a crash-test variant
# (ci/crashtest.config: LKDTM, sysrq, hung-task and soft-lockup
# detectors, UBSAN bounds checks), boots it once per trigger and keeps the whole console as
# the kernel printed it. The default kernels give the clean-boot (negative) fixtures.
# Run by hand, not in CI: a cold crash-test kernel build takes minutes, every boot ~10-60 s.
#
#   ci/capture-console-fixtures.sh [6.12|6.1 ...]    # default: both
#
# index.txt next to the fixtures records what pinvm boot exited with for each of them
# (0 ok, 1 crash/hang, 125 untestable).
set -euo pipefail
cd "$(dirname "$0")/.."

out=oracle/tests/fixtures/console
mkdir -p "$out"
cargo build --release -p pinvm >&2
pinvm=target/release/pinvm
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(6.12 6.1)

index="$out/index.txt"
touch "$index"

# record NAME RC: one line per fixture in index.txt (replacing an older one)
record() {
    grep -v "^$1 " "$index" > "$index.tmp" || true
    echo "$1 exit=$2" >> "$index.tmp"
    sort "$index.tmp" > "$index"
    rm -f "$index.tmp"
}

# boot KERNEL NAME TIMEOUT SCRIPT [pinvm boot options]: boot, keep the console as NAME.txt
boot() {
    local kernel=$1 name=$2 timeout=$3 script=$4 rc=0
    shift 4
    echo "== $name: $script" >&2
    "$pinvm" boot --kernel "$kernel" --timeout "$timeout" --no-console "$@" \
        --console-log "$out/$name.txt" -- sh -c "$script" || rc=$?
    echo "   exit $rc" >&2
    record "$name" "$rc"
}

lkdtm='mount -t debugfs none /sys/kernel/debug; echo'
direct='> /sys/kernel/debug/provoke-crash/DIRECT'

for v in "${versions[@]}"; do
    # PLAIN_KERNEL / CRASH_KERNEL (with one version) reuse kernels built before.
    plain=${PLAIN_KERNEL:-$("$pinvm" kernel build --source "debian-$v" --print-path)}
    crash=${CRASH_KERNEL:-$(nice -n 10 "$pinvm" kernel build --source "debian-$v" \
        --config ci/crashtest.config --print-path)}

    # Negative fixtures: clean boots, of the default kernel and of the crash-test one.
    boot "$plain" "$v-clean" 60 'echo hello'
    boot "$crash" "$v-clean-crashtest" 60 'echo hello'
    # More vCPUs than this 2-CPU host has: kvm_pvm leaks the host's CPUID and the scheduler
    # prints "BUG: arch topology borken" (a pr_err, not a crash).
    boot "$plain" "$v-clean-cpus4" 60 'echo hello' --cpus 4

    boot "$crash" "$v-warning" 60 "$lkdtm WARNING $direct; echo done"
    boot "$crash" "$v-bug" 60 "$lkdtm BUG $direct; echo done"
    # The same with the kernel panicking on them: the panic belongs to the report.
    boot "$crash" "$v-warning-panic_on_warn" 60 "$lkdtm WARNING $direct; echo done" \
        --append panic_on_warn=1
    boot "$crash" "$v-bug-panic_on_oops" 60 "$lkdtm BUG $direct; echo done" \
        --append oops=panic
    boot "$crash" "$v-exception" 60 "$lkdtm EXCEPTION $direct; echo done"
    boot "$crash" "$v-panic" 60 "$lkdtm PANIC $direct; echo done"
    boot "$crash" "$v-array_bounds" 60 "$lkdtm ARRAY_BOUNDS $direct; echo done"
    boot "$crash" "$v-hung_task" 60 \
        "echo 5 > /proc/sys/kernel/hung_task_timeout_secs; $lkdtm HUNG_TASK $direct; echo done"
    # pinvm boots with loglevel=5: the blocked task's stack (KERN_INFO) is not printed. Once
    # more with it.
    boot "$crash" "$v-hung_task-loglevel7" 60 \
        "echo 5 > /proc/sys/kernel/hung_task_timeout_secs; $lkdtm HUNG_TASK $direct; echo done" \
        --append loglevel=7
    boot "$crash" "$v-softlockup" 90 "$lkdtm SOFTLOCKUP $direct; echo done"
    boot "$crash" "$v-sysrq_c" 60 'echo c > /proc/sysrq-trigger; echo done'
done
