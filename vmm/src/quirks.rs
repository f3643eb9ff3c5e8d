//! `KVM_EXIT_INTERNAL_ERROR` handling.
//!
//! On kvm_pvm (see shared/research/kvm-on-these-machines.md, pitfall 4) guest kernel code runs
//! in KVM's instruction emulator, which lacks some instructions. The ones with simple,
//! well-defined effects are completed here, on the vCPU's own thread, exactly as the CPU would:
//! - `int3`: advance RIP past it and inject #BP (the kernel's int3 self-test and text_poke_bp
//!   rely on the trap);
//! - `fwait`: with no pending x87 exception a no-op: advance RIP;
//! - `fninit`: reset the x87 state (control word 0x37f, status and tags clear);
//! - `ldmxcsr m32` / `stmxcsr m32` (every `kernel_fpu_begin()` loads MXCSR): move the value
//!   between guest memory and the vCPU's MXCSR.
//!
//! Anything else is a boot failure, reported with the instruction bytes.

use crate::arch::x86_64::decode::{decode, Gprs, Insn};
use kvm_bindings::{kvm_run, KVM_INTERNAL_ERROR_EMULATION};
use kvm_ioctls::VcpuFd;
use std::sync::atomic::{AtomicU64, Ordering};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const FLAG_INSTRUCTION_BYTES: u64 = 1;
const BP_VECTOR: u8 = 3;

/// How often each work-around ran, for the run report.
#[derive(Debug, Default)]
pub struct QuirkCounts {
    pub int3: AtomicU64,
    pub fwait: AtomicU64,
    pub fninit: AtomicU64,
    pub mxcsr: AtomicU64,
}

impl QuirkCounts {
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
    pub suberror: u32,
    pub data: Vec<u64>,
    /// The instruction bytes KVM reported, if any.
    pub insn: Vec<u8>,
}

impl InternalError {
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

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Handle an internal-error exit on the vCPU's own thread. `Ok(())` means the guest may run on;
/// `Err` is a one-line description for the boot-failure report.
pub fn handle(
    vcpu: &mut VcpuFd,
    mem: &GuestMemoryMmap,
    counts: &QuirkCounts,
) -> Result<(), String> {
    let err = InternalError::from_run(vcpu.get_kvm_run());
    let mut regs = vcpu
        .get_regs()
        .map_err(|e| format!("internal error (suberror {}), get_regs: {e}", err.suberror))?;
    let insn = if err.insn.is_empty() {
        read_at_rip(vcpu, mem, regs.rip)
    } else {
        err.insn.clone()
    };
    let rip = regs.rip;
    let fail = |why: String| {
        format!(
            "KVM internal error: suberror {} at RIP {:#x}, instruction bytes [{}], data [{}]{why}",
            err.suberror,
            rip,
            hex(&insn),
            err.data
                .iter()
                .map(|d| format!("{d:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let decoded = match decode(&insn) {
        Some(d) if err.suberror == KVM_INTERNAL_ERROR_EMULATION => d,
        _ => return Err(fail(String::new())),
    };
    let ioctl = |what: &str, e: kvm_ioctls::Error| fail(format!(" ({what} failed: {e})"));
    match &decoded.insn {
        Insn::Int3 | Insn::Fwait => {}
        Insn::Fninit => {
            let mut fpu = vcpu.get_fpu().map_err(|e| ioctl("get_fpu", e))?;
            fpu.fcw = 0x37f;
            fpu.fsw = 0;
            fpu.ftwx = 0;
            fpu.last_opcode = 0;
            fpu.last_ip = 0;
            fpu.last_dp = 0;
            vcpu.set_fpu(&fpu).map_err(|e| ioctl("set_fpu", e))?;
            counts.fninit.fetch_add(1, Ordering::Relaxed);
        }
        Insn::Ldmxcsr(m) | Insn::Stmxcsr(m) => {
            let sregs = vcpu.get_sregs().map_err(|e| ioctl("get_sregs", e))?;
            let g = gprs(&regs);
            let gva = m.address(&g, regs.rip, decoded.len, sregs.fs.base, sregs.gs.base);
            let mut fpu = vcpu.get_fpu().map_err(|e| ioctl("get_fpu", e))?;
            if matches!(decoded.insn, Insn::Ldmxcsr(_)) {
                let mut b = [0u8; 4];
                access(vcpu, mem, gva, &mut b, false).map_err(|w| fail(format!(" ({w})")))?;
                fpu.mxcsr = u32::from_le_bytes(b);
                vcpu.set_fpu(&fpu).map_err(|e| ioctl("set_fpu", e))?;
            } else {
                let mut b = fpu.mxcsr.to_le_bytes();
                access(vcpu, mem, gva, &mut b, true).map_err(|w| fail(format!(" ({w})")))?;
            }
            counts.mxcsr.fetch_add(1, Ordering::Relaxed);
        }
    }
    regs.rip += decoded.len as u64;
    vcpu.set_regs(&regs).map_err(|e| ioctl("set_regs", e))?;
    match decoded.insn {
        Insn::Int3 => {
            let mut ev = vcpu
                .get_vcpu_events()
                .map_err(|e| ioctl("get_vcpu_events", e))?;
            ev.exception.injected = 1;
            ev.exception.nr = BP_VECTOR;
            ev.exception.has_error_code = 0;
            ev.exception.error_code = 0;
            ev.flags = 0;
            vcpu.set_vcpu_events(&ev)
                .map_err(|e| ioctl("set_vcpu_events", e))?;
            counts.int3.fetch_add(1, Ordering::Relaxed);
        }
        Insn::Fwait => {
            counts.fwait.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    Ok(())
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
) -> Result<(), String> {
    for (i, b) in buf.iter_mut().enumerate() {
        let va = gva.wrapping_add(i as u64);
        let t = vcpu
            .translate_gva(va)
            .map_err(|e| format!("translating {va:#x}: {e}"))?;
        if t.valid == 0 {
            return Err(format!("operand address {va:#x} is not mapped"));
        }
        let gpa = GuestAddress(t.physical_address);
        let r = if write {
            mem.write_obj(*b, gpa)
        } else {
            mem.read_obj::<u8>(gpa).map(|v| *b = v)
        };
        r.map_err(|e| format!("operand at {va:#x} (GPA {gpa:#x}): {e}", gpa = gpa.0))?;
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
