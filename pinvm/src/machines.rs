//! Which machine runs the guest: `--machine auto|kvm|qemu|qemu-kvm` (or `PINVM_MACHINE`).
//!
//! `auto` takes our own VMM where KVM runs guest code in hardware, and QEMU's TCG where
//! `/dev/kvm` is missing or is kvm_pvm (which emulates guest kernel code instruction by
//! instruction: an order of magnitude slower than TCG). docs/qemu.md.

use clap::ValueEnum;
use machine::{Machine, MachineError};
use qemu::{Accel, QemuMachine};

/// The user's choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MachineChoice {
    /// Our VMM on hardware KVM; QEMU TCG where /dev/kvm is missing or emulated (kvm_pvm).
    Auto,
    /// pinvm's own VMM on /dev/kvm.
    Kvm,
    /// QEMU with TCG (binary translation).
    Qemu,
    /// QEMU with -accel kvm.
    QemuKvm,
}

/// What this host's /dev/kvm is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKvm {
    /// No usable /dev/kvm.
    Missing,
    /// kvm_pvm: guest kernel code is emulated.
    Emulated,
    /// Hardware virtualization.
    Hardware,
}

/// Look at this host.
pub fn host_kvm() -> HostKvm {
    // Open it and ask for the API version: a /dev/kvm that exists but is not KVM (or is
    // hidden behind another file) counts as missing.
    let usable = vmm::vm::open_kvm().is_ok();
    match (usable, vmm::host::is_kvm_pvm()) {
        (false, _) => HostKvm::Missing,
        (true, true) => HostKvm::Emulated,
        (true, false) => HostKvm::Hardware,
    }
}

/// What `auto` means on a host: the first machine to try, and the one to fall back to when
/// QEMU is not installed.
pub fn auto_order(host: HostKvm) -> &'static [MachineChoice] {
    match host {
        HostKvm::Hardware => &[MachineChoice::Kvm],
        HostKvm::Emulated => &[MachineChoice::Qemu, MachineChoice::Kvm],
        HostKvm::Missing => &[MachineChoice::Qemu],
    }
}

/// The machine for `choice` on this host. `Unavailable` errors say what to install or load.
pub fn resolve(choice: MachineChoice) -> Result<Box<dyn Machine>, MachineError> {
    match choice {
        MachineChoice::Kvm => {
            vmm::vm::open_kvm().map_err(|e| MachineError::Unavailable {
                machine: vmm::NAME,
                why: format!("{e} (or use --machine qemu: QEMU's TCG needs no /dev/kvm)"),
            })?;
            Ok(Box::new(vmm::KvmMachine))
        }
        MachineChoice::Qemu => Ok(Box::new(QemuMachine::new(Accel::Tcg)?)),
        MachineChoice::QemuKvm => Ok(Box::new(QemuMachine::new(Accel::Kvm)?)),
        MachineChoice::Auto => {
            let host = host_kvm();
            let order = auto_order(host);
            let mut last = None;
            for (i, c) in order.iter().enumerate() {
                match resolve(*c) {
                    Ok(m) => {
                        if i > 0 {
                            eprintln!(
                                "pinvm: {}; running on our VMM over kvm_pvm, which emulates guest \
                                 kernel code and is about 20x slower than QEMU's TCG",
                                last.as_ref().map(ToString::to_string).unwrap_or_default()
                            );
                        }
                        return Ok(m);
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("every host has at least one candidate"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_hardware_kvm_and_tcg_elsewhere() {
        assert_eq!(auto_order(HostKvm::Hardware), &[MachineChoice::Kvm]);
        assert_eq!(
            auto_order(HostKvm::Emulated),
            &[MachineChoice::Qemu, MachineChoice::Kvm]
        );
        assert_eq!(auto_order(HostKvm::Missing), &[MachineChoice::Qemu]);
    }
}
