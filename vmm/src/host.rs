//! Facts about the host KVM that change how we boot.

use machine::cmdline::{with_appended, CmdlineError};
use std::path::Path;

/// True when /dev/kvm is provided by kvm_pvm (guest kernel code is emulated there).
pub fn is_kvm_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// CPU features the kvm_pvm instruction emulator cannot run. kvm_pvm ignores KVM_SET_CPUID2,
/// so the guest sees the host's CPUID (and would use, say, POPCNT or XSAVE, then stop with an
/// emulation failure) and must be told on its command line instead. Both 6.1 and 6.12 read at most 127
/// characters of `clearcpuid=` (a `char arg[128]` in cpu_parse_early_param), so the list holds
/// only what the *kernel* would execute; clearing `xsave` also clears AVX and everything that
/// depends on it. `cx16`: SLUB's cmpxchg16b, which the emulator lacks (seen on 6.1).
pub const PVM_CLEARCPUID: &str = "clearcpuid=cx16,popcnt,xsave,fsgsbase,smap,smep,pcid,invpcid,\
rdrand,rdseed,rdpid,umip,erms,fsrm,clflushopt,clwb,rdtscp";

/// kvm_pvm-only parameters: the RAID xor speed test at boot runs SSE templates, which the
/// kvm_pvm emulator cannot execute (xorps), and would cost seconds of emulated time anyway;
/// skipping it keeps the template chosen at core_initcall time.
pub const PVM_PLATFORM_PARAMS: &str = "initcall_blacklist=calibrate_xor_blocks";

/// kvm_pvm-only: the guest's TSC rate, from KVM_GET_TSC_KHZ. Emulated kernel code runs the
/// PIT calibration loop far too slowly ("tsc: Unable to calibrate against PIT"), there is no
/// HPET or PM timer to fall back on, and the guest then marks the TSC unstable and keeps time
/// with jiffies: its clock falls behind (24 s of guest time in a 35 s boot, seen here), no
/// high-resolution timers, no tickless idle, and every idle vCPU burns a host core on its
/// periodic tick. With the rate given, the TSC is the clocksource and idle vCPUs halt.
/// `tsc=reliable`: no clocksource watchdog (it has no second clock to compare with anyway).
pub fn pvm_tsc_params(khz: u32) -> String {
    format!("tsc_early_khz={khz} tsc=reliable")
}

/// The guest command line pinvm always uses, before the user's `--append`.
/// - `earlyprintk=serial`: a panic before the console driver registers is still seen;
/// - `reboot=k panic=1`: reboot and panic both end in the i8042 reset, which ends the VM;
/// - `pci=off nomodule i8042.* 8250.nr_uarts=1`: skip probes we do not need;
/// - `loglevel=5`: the console shows warnings, oopses and panics (each byte is a VM exit, so
///   informational messages stay off the console);
/// - `mitigations=off`: a test guest needs no side-channel hardening;
/// - `pinvm.ctl=`: where the agent finds the control page.
pub fn base_cmdline(control_page: u64, pvm: bool, tsc_khz: Option<u32>) -> String {
    let mut s = format!(
        "console=ttyS0 earlyprintk=serial,ttyS0,115200 reboot=k panic=1 pci=off nomodule \
         loglevel=5 i8042.noaux i8042.nomux \
         i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1 mitigations=off pinvm.ctl={control_page:#x}"
    );
    if pvm {
        s.push(' ');
        s.push_str(PVM_CLEARCPUID);
        s.push(' ');
        s.push_str(PVM_PLATFORM_PARAMS);
        if let Some(khz) = tsc_khz {
            s.push(' ');
            s.push_str(&pvm_tsc_params(khz));
        }
    }
    s
}

/// The full guest command line: pinvm's words, then the user's `--append` words
/// ([`machine::cmdline::with_appended`]).
pub fn cmdline(
    control_page: u64,
    pvm: bool,
    tsc_khz: Option<u32>,
    append: &[String],
) -> Result<String, CmdlineError> {
    with_appended(base_cmdline(control_page, pvm, tsc_khz), append, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_appends_and_validates() {
        let c = cmdline(
            0xd000_0000,
            false,
            None,
            &["loglevel=8".into(), "  ".into()],
        )
        .unwrap();
        assert!(c.ends_with(" loglevel=8"));
        assert!(cmdline(0, false, None, &["a\0b".into()]).is_err());
        assert!(cmdline(0, false, None, &["a\nb".into()]).is_err());
        let long = "x".repeat(2000);
        assert!(cmdline(0, true, None, &[long])
            .unwrap_err()
            .to_string()
            .contains("2047"));
    }

    #[test]
    fn cmdline_shape() {
        let c = base_cmdline(0xd000_0000, false, Some(2_000_000));
        assert!(c.contains("pinvm.ctl=0xd0000000"));
        assert!(!c.contains("clearcpuid"));
        assert!(!c.contains("tsc"), "hardware KVM calibrates its TSC: {c}");
        let t = base_cmdline(0xd000_0000, true, Some(2_000_000));
        assert!(t.ends_with(" tsc_early_khz=2000000 tsc=reliable"), "{t}");
        let p = base_cmdline(0xd000_0000, true, None);
        assert!(p.contains("clearcpuid=cx16,popcnt,") && p.contains(",rdtscp "));
        let value = PVM_CLEARCPUID.strip_prefix("clearcpuid=").unwrap();
        assert!(value.len() <= 127, "the kernel reads only 127 characters");
        assert!(p.ends_with("initcall_blacklist=calibrate_xor_blocks"));
        assert!(!p.contains(' ') || p.split(' ').all(|w| !w.is_empty()));
    }
}
