//! `KVM_EXIT_INTERNAL_ERROR` handling.
//!
//! On kvm_pvm guest kernel code runs in KVM's instruction emulator, which lacks some
//! instructions: an exit with `KVM_INTERNAL_ERROR_EMULATION` and the instruction bytes comes
//! back to us where hardware would simply have run them. The ones with simple, well-defined
//! effects are completed here, on the vCPU's own thread, exactly as the CPU would:
//! - `int3`: advance RIP past it and inject #BP (the kernel's int3 self-test and text_poke_bp
//!   rely on the trap);
//! - `fwait`: with no pending x87 exception a no-op: advance RIP;
//! - `fninit`: reset the x87 state (control word 0x37f, status and tags clear);
//! - `ldmxcsr m32` / `stmxcsr m32` (every `kernel_fpu_begin()` loads MXCSR): move the value
//!   between guest memory and the vCPU's MXCSR.
//!
//! Anything else is a boot failure ([`QuirkError`]), reported with the instruction bytes.

use crate::arch::x86_64::decode::{decode, Decoded, Gprs, Insn, MemOperand};
use kvm_bindings::{kvm_run, KVM_INTERNAL_ERROR_EMULATION};
use kvm_ioctls::VcpuFd;
use std::sync::atomic::{AtomicU64, Ordering};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const FLAG_INSTRUCTION_BYTES: u64 = 1;
const BP_VECTOR: u8 = 3;

/// How often each work-around ran, for the run report.
#[derive(Debug, Default)]
pub struct QuirkCounts {
    /// `int3` stepped over with #BP injected.
    pub int3: AtomicU64,
    /// `fwait` stepped over.
    pub fwait: AtomicU64,
    /// `fninit` completed.
    pub fninit: AtomicU64,
    /// `ldmxcsr`/`stmxcsr` completed.
    pub mxcsr: AtomicU64,
}

impl QuirkCounts {
    /// "int3 N, fwait N, fninit N, ldmxcsr/stmxcsr N".
    pub fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "int3 {}, fwait {}, fninit {}, ldmxcsr/stmxcsr {}",
            n(&self.int3),
            n(&self.fwait),
            n(&self.fninit),
            n(&self.mxcsr)
        )
    }
}

/// What the emulator reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError {
    /// `KVM_INTERNAL_ERROR_*`.
    pub suberror: u32,
    /// The suberror's data words.
    pub data: Vec<u64>,
    /// The instruction bytes KVM reported, if any.
    pub insn: Vec<u8>,
}

impl InternalError {
    /// Read the `internal` member of `run` after a `KVM_EXIT_INTERNAL_ERROR`.
    pub fn from_run(run: &kvm_run) -> Self {
        // SAFETY: KVM filled the `internal` member of the union for KVM_EXIT_INTERNAL_ERROR,
        // which is how we got here; every bit pattern is a valid u32/u64.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        let data = internal.data[..n].to_vec();
        Self {
            suberror: internal.suberror,
            insn: instruction_bytes(internal.suberror, &data),
            data,
        }
    }
}

/// KVM's emulation-failure layout: data[0] = flags, then a byte count and up to 15 bytes.
fn instruction_bytes(suberror: u32, data: &[u64]) -> Vec<u8> {
    if suberror != KVM_INTERNAL_ERROR_EMULATION || data.len() < 3 {
        return Vec::new();
    }
    if data[0] & FLAG_INSTRUCTION_BYTES == 0 {
        return Vec::new();
    }
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&data[1].to_le_bytes());
    raw[8..].copy_from_slice(&data[2].to_le_bytes());
    let len = (raw[0] as usize).min(15);
    raw[1..1 + len].to_vec()
}

/// Bytes as "f3 0f b8".
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An internal-error exit this module cannot complete: the guest cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum QuirkError {
    /// The vCPU's registers could not be read, so the instruction is unknown.
    #[error("internal error (suberror {suberror}), get_regs: {source}")]
    Registers {
        /// The exit's suberror.
        suberror: u32,
        /// Why KVM_GET_REGS failed.
        source: kvm_ioctls::Error,
    },
    /// Not an instruction we complete, or completing it failed.
    #[error(
        "KVM internal error: suberror {} at RIP {:#x}, instruction bytes [{}], data [{}]{}",
        .exit.suberror,
        .rip,
        hex(.insn),
        data_list(&.exit.data),
        cause_suffix(.cause)
    )]
    Unhandled {
        /// What KVM reported.
        exit: InternalError,
        /// Where the guest stopped.
        rip: u64,
        /// The instruction bytes (from KVM, or read at RIP).
        insn: Vec<u8>,
        /// Why a known instruction could not be completed (None: not one we complete).
        cause: Option<Box<QuirkCause>>,
    },
}

/// Why completing a known instruction failed.
#[derive(Debug, thiserror::Error)]
pub enum QuirkCause {
    /// A vCPU ioctl failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// The ioctl, e.g. "set_fpu".
        what: &'static str,
        /// Its error.
        source: kvm_ioctls::Error,
    },
    /// The memory operand could not be reached.
    #[error(transparent)]
    Operand(#[from] OperandError),
}

/// A memory operand that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OperandError {
    /// KVM_TRANSLATE failed.
    #[error("translating {va:#x}: {source}")]
    Translate {
        /// The guest-virtual address.
        va: u64,
        /// Its error.
        source: kvm_ioctls::Error,
    },
    /// The guest's page tables do not map the address.
    #[error("operand address {0:#x} is not mapped")]
    NotMapped(u64),
    /// The guest-physical address is not in guest memory.
    #[error("operand at {va:#x} (GPA {gpa:#x}): {source}")]
    Memory {
        /// The guest-virtual address.
        va: u64,
        /// Its translation.
        gpa: u64,
        /// Why guest memory refused it.
        source: vm_memory::GuestMemoryError,
    },
}

fn data_list(data: &[u64]) -> String {
    data.iter()
        .map(|d| format!("{d:#x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cause_suffix(cause: &Option<Box<QuirkCause>>) -> String {
    cause
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

/// Handle an internal-error exit on the vCPU's own thread. `Ok(())` means the guest may run on;
/// `Err` says why it cannot (its message is the boot-failure report).
pub fn handle(
    vcpu: &mut VcpuFd,
    mem: &GuestMemoryMmap,
    counts: &QuirkCounts,
) -> Result<(), QuirkError> {
    let exit = InternalError::from_run(vcpu.get_kvm_run());
    let regs = vcpu.get_regs().map_err(|source| QuirkError::Registers {
        suberror: exit.suberror,
        source,
    })?;
    let insn = if exit.insn.is_empty() {
        read_at_rip(vcpu, mem, regs.rip)
    } else {
        exit.insn.clone()
    };
    let decoded = match decode(&insn) {
        Some(d) if exit.suberror == KVM_INTERNAL_ERROR_EMULATION => Some(d),
        _ => None,
    };
    let result = match &decoded {
        Some(d) => complete(vcpu, mem, counts, regs, d).map_err(|c| Some(Box::new(c))),
        None => Err(None),
    };
    result.map_err(|cause| QuirkError::Unhandled {
        exit,
        rip: regs.rip,
        insn,
        cause,
    })
}

/// A closure turning a vCPU ioctl's error into a [`QuirkCause`].
fn ioctl(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> QuirkCause {
    move |source| QuirkCause::Ioctl { what, source }
}

/// Complete `d` as the CPU would: its effect, RIP past it, then the #BP of an `int3`.
fn complete(
    vcpu: &mut VcpuFd,
    mem: &GuestMemoryMmap,
    counts: &QuirkCounts,
    mut regs: kvm_bindings::kvm_regs,
    d: &Decoded,
) -> Result<(), QuirkCause> {
    match &d.insn {
        Insn::Int3 | Insn::Fwait => {}
        Insn::Fninit => {
            fninit(vcpu)?;
            counts.fninit.fetch_add(1, Ordering::Relaxed);
        }
        Insn::Ldmxcsr(m) | Insn::Stmxcsr(m) => {
            let load = matches!(d.insn, Insn::Ldmxcsr(_));
            mxcsr(vcpu, mem, &regs, m, d.len, load)?;
            counts.mxcsr.fetch_add(1, Ordering::Relaxed);
        }
    }
    regs.rip += d.len as u64;
    vcpu.set_regs(&regs).map_err(ioctl("set_regs"))?;
    match d.insn {
        Insn::Int3 => {
            inject_breakpoint(vcpu)?;
            counts.int3.fetch_add(1, Ordering::Relaxed);
        }
        Insn::Fwait => {
            counts.fwait.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    Ok(())
}

/// `fninit`: the x87 state after FINIT.
fn fninit(vcpu: &VcpuFd) -> Result<(), QuirkCause> {
    let mut fpu = vcpu.get_fpu().map_err(ioctl("get_fpu"))?;
    fpu.fcw = 0x37f;
    fpu.fsw = 0;
    fpu.ftwx = 0;
    fpu.last_opcode = 0;
    fpu.last_ip = 0;
    fpu.last_dp = 0;
    vcpu.set_fpu(&fpu).map_err(ioctl("set_fpu"))
}

/// `ldmxcsr m32` (`load`) or `stmxcsr m32`: move MXCSR between the operand and the vCPU.
fn mxcsr(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap,
    regs: &kvm_bindings::kvm_regs,
    m: &MemOperand,
    len: usize,
    load: bool,
) -> Result<(), QuirkCause> {
    let sregs = vcpu.get_sregs().map_err(ioctl("get_sregs"))?;
    let gva = m.address(&gprs(regs), regs.rip, len, sregs.fs.base, sregs.gs.base);
    let mut fpu = vcpu.get_fpu().map_err(ioctl("get_fpu"))?;
    if load {
        let mut b = [0u8; 4];
        access(vcpu, mem, gva, &mut b, false)?;
        fpu.mxcsr = u32::from_le_bytes(b);
        vcpu.set_fpu(&fpu).map_err(ioctl("set_fpu"))?;
    } else {
        let mut b = fpu.mxcsr.to_le_bytes();
        access(vcpu, mem, gva, &mut b, true)?;
    }
    Ok(())
}

/// Inject #BP, as the `int3` just stepped over would have raised.
fn inject_breakpoint(vcpu: &VcpuFd) -> Result<(), QuirkCause> {
    let mut ev = vcpu.get_vcpu_events().map_err(ioctl("get_vcpu_events"))?;
    ev.exception.injected = 1;
    ev.exception.nr = BP_VECTOR;
    ev.exception.has_error_code = 0;
    ev.exception.error_code = 0;
    ev.flags = 0;
    vcpu.set_vcpu_events(&ev).map_err(ioctl("set_vcpu_events"))
}

fn gprs(r: &kvm_bindings::kvm_regs) -> Gprs {
    [
        r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ]
}

/// Read (`write == false`) or write guest-virtual memory byte-wise through the vCPU's page
/// tables, so an operand that straddles a page boundary is handled.
fn access(
    vcpu: &VcpuFd,
    mem: &GuestMemoryMmap,
    gva: u64,
    buf: &mut [u8],
    write: bool,
) -> Result<(), OperandError> {
    for (i, b) in buf.iter_mut().enumerate() {
        let va = gva.wrapping_add(i as u64);
        let t = vcpu
            .translate_gva(va)
            .map_err(|source| OperandError::Translate { va, source })?;
        if t.valid == 0 {
            return Err(OperandError::NotMapped(va));
        }
        let gpa = GuestAddress(t.physical_address);
        let r = if write {
            mem.write_obj(*b, gpa)
        } else {
            mem.read_obj::<u8>(gpa).map(|v| *b = v)
        };
        r.map_err(|source| OperandError::Memory {
            va,
            gpa: gpa.0,
            source,
        })?;
    }
    Ok(())
}

/// Fallback when KVM did not report the bytes: translate RIP and read guest memory.
fn read_at_rip(vcpu: &VcpuFd, mem: &GuestMemoryMmap, rip: u64) -> Vec<u8> {
    let Ok(t) = vcpu.translate_gva(rip) else {
        return Vec::new();
    };
    if t.valid == 0 {
        return Vec::new();
    }
    let mut buf = [0u8; 15];
    // Stop at the page end: the next page may map elsewhere.
    let n = (0x1000 - (t.physical_address & 0xfff)).min(15) as usize;
    match mem.read_slice(&mut buf[..n], GuestAddress(t.physical_address)) {
        Ok(()) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_instruction_bytes() {
        let mut raw = [0u8; 16];
        raw[0] = 3;
        raw[1..4].copy_from_slice(&[0xf3, 0x0f, 0xb8]);
        let d = [
            1,
            u64::from_le_bytes(raw[..8].try_into().unwrap()),
            u64::from_le_bytes(raw[8..].try_into().unwrap()),
        ];
        assert_eq!(instruction_bytes(1, &d), vec![0xf3, 0x0f, 0xb8]);
        assert!(
            instruction_bytes(1, &[0, d[1], d[2]]).is_empty(),
            "flag clear"
        );
        assert!(instruction_bytes(2, &d).is_empty(), "other suberror");
        assert!(instruction_bytes(1, &d[..2]).is_empty(), "short data");
    }

    #[test]
    fn hex_format() {
        assert_eq!(hex(&[0xf3, 0x0f]), "f3 0f");
    }
}
