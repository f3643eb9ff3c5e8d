//! Just enough x86-64 instruction decoding to step over the few instructions that kvm_pvm's
//! emulator cannot run (see `quirks`): legacy/REX prefixes, ModRM, SIB and displacement of a
//! memory operand. Pure functions over bytes and register values, so they are unit-tested.

/// General-purpose registers in encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
pub type Gprs = [u64; 16];

/// An instruction we know how to emulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insn {
    /// INT3 (CC).
    Int3,
    /// FWAIT (9B).
    Fwait,
    /// FNINIT (DB E3).
    Fninit,
    /// LDMXCSR m32 (0F AE /2).
    Ldmxcsr(MemOperand),
    /// STMXCSR m32 (0F AE /3).
    Stmxcsr(MemOperand),
}

/// A memory operand: segment override (FS/GS base applies) and effective-address parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemOperand {
    /// FS or GS override, whose base is added.
    pub segment: Option<Segment>,
    /// Base register (encoding number), if any.
    pub base: Option<usize>,
    /// Index register (encoding number) and scale, if any.
    pub index: Option<(usize, u8)>,
    /// Displacement.
    pub disp: i64,
    /// RIP-relative: `disp` is relative to the next instruction.
    pub rip_relative: bool,
}

/// A segment override whose base applies in 64-bit mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// FS (64 prefix).
    Fs,
    /// GS (65 prefix).
    Gs,
}

/// A decoded instruction and its length in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The instruction.
    pub insn: Insn,
    /// Its length in bytes, prefixes included.
    pub len: usize,
}

impl MemOperand {
    /// Linear address, given the registers, the instruction's address and length, and the
    /// FS/GS bases.
    pub fn address(&self, gprs: &Gprs, rip: u64, len: usize, fs: u64, gs: u64) -> u64 {
        let mut a = self.disp as u64;
        if self.rip_relative {
            a = a.wrapping_add(rip.wrapping_add(len as u64));
        }
        if let Some(b) = self.base {
            a = a.wrapping_add(gprs[b]);
        }
        if let Some((i, scale)) = self.index {
            a = a.wrapping_add(gprs[i] << scale);
        }
        match self.segment {
            Some(Segment::Fs) => a.wrapping_add(fs),
            Some(Segment::Gs) => a.wrapping_add(gs),
            None => a,
        }
    }
}

/// Decode the instruction at the start of `b`, if it is one we emulate.
pub fn decode(b: &[u8]) -> Option<Decoded> {
    let mut i = 0;
    let mut segment = None;
    let mut rex = 0u8;
    // Prefixes: segment overrides, operand/address size, REX (must come last).
    while let Some(&p) = b.get(i) {
        match p {
            0x64 => segment = Some(Segment::Fs),
            0x65 => segment = Some(Segment::Gs),
            0x26 | 0x2e | 0x36 | 0x3e | 0x66 => {}
            0x40..=0x4f => {
                rex = p;
                i += 1;
                break;
            }
            _ => break,
        }
        i += 1;
    }
    let op = *b.get(i)?;
    let plain = |insn| Some(Decoded { insn, len: i + 1 });
    match op {
        0xcc if i == 0 => plain(Insn::Int3),
        0x9b if i == 0 => plain(Insn::Fwait),
        0xdb if b.get(i + 1) == Some(&0xe3) => Some(Decoded {
            insn: Insn::Fninit,
            len: i + 2,
        }),
        0x0f if b.get(i + 1) == Some(&0xae) => {
            let (mem, reg, len) = modrm(b, i + 2, rex, segment)?;
            let insn = match reg {
                2 => Insn::Ldmxcsr(mem),
                3 => Insn::Stmxcsr(mem),
                _ => return None,
            };
            Some(Decoded { insn, len })
        }
        _ => None,
    }
}

/// Decode a ModRM memory operand at `b[at..]`; returns it, the reg field and the total length.
fn modrm(
    b: &[u8],
    at: usize,
    rex: u8,
    segment: Option<Segment>,
) -> Option<(MemOperand, u8, usize)> {
    let m = *b.get(at)?;
    let (md, reg, rm) = (m >> 6, (m >> 3) & 7, m & 7);
    if md == 3 {
        return None; // register operand: not a memory form
    }
    let rex_b = usize::from(rex & 1) << 3;
    let rex_x = usize::from((rex >> 1) & 1) << 3;
    let mut p = at + 1;
    let mut op = MemOperand {
        segment,
        base: None,
        index: None,
        disp: 0,
        rip_relative: false,
    };
    if rm == 4 {
        let sib = *b.get(p)?;
        p += 1;
        let (scale, idx, base) = (sib >> 6, usize::from((sib >> 3) & 7) | rex_x, sib & 7);
        if idx != 4 {
            op.index = Some((idx, scale));
        }
        if base == 5 && md == 0 {
            op.disp = i64::from(i32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?));
            p += 4;
        } else {
            op.base = Some(usize::from(base) | rex_b);
        }
    } else if rm == 5 && md == 0 {
        op.rip_relative = true;
        op.disp = i64::from(i32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?));
        p += 4;
    } else {
        op.base = Some(usize::from(rm) | rex_b);
    }
    match md {
        1 => {
            op.disp += i64::from(*b.get(p)? as i8);
            p += 1;
        }
        2 => {
            op.disp += i64::from(i32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?));
            p += 4;
        }
        _ => {}
    }
    Some((op, reg, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSP: usize = 4;

    #[test]
    fn ldmxcsr_rsp_disp8() {
        // ldmxcsr 0x4(%rsp), as in kernel_fpu_begin_mask()
        let d = decode(&[0x0f, 0xae, 0x54, 0x24, 0x04, 0x41, 0x80]).unwrap();
        assert_eq!(d.len, 5);
        let Insn::Ldmxcsr(m) = &d.insn else {
            panic!("{d:?}")
        };
        let mut g = [0u64; 16];
        g[RSP] = 0x1000;
        assert_eq!(m.address(&g, 0, d.len, 0, 0), 0x1004);
    }

    #[test]
    fn stmxcsr_with_rex_and_gs() {
        // stmxcsr %gs:0x10(%r12)  → 65 41 0f ae 5c 24 10
        let d = decode(&[0x65, 0x41, 0x0f, 0xae, 0x5c, 0x24, 0x10]).unwrap();
        assert_eq!(d.len, 7);
        let Insn::Stmxcsr(m) = &d.insn else {
            panic!("{d:?}")
        };
        let mut g = [0u64; 16];
        g[12] = 0x2000;
        assert_eq!(m.address(&g, 0, d.len, 0, 0x10_0000), 0x10_2010);
    }

    #[test]
    fn rip_relative_and_sib_forms() {
        // ldmxcsr 0x100(%rip) → 0f ae 15 00 01 00 00
        let d = decode(&[0x0f, 0xae, 0x15, 0x00, 0x01, 0, 0]).unwrap();
        let Insn::Ldmxcsr(m) = &d.insn else { panic!() };
        assert_eq!(m.address(&[0; 16], 0x1000, d.len, 0, 0), 0x1000 + 7 + 0x100);
        // ldmxcsr 0x8(%rax,%rcx,4) → 0f ae 54 88 08
        let d = decode(&[0x0f, 0xae, 0x54, 0x88, 0x08]).unwrap();
        let Insn::Ldmxcsr(m) = &d.insn else { panic!() };
        let mut g = [0u64; 16];
        g[0] = 0x100;
        g[1] = 0x10;
        assert_eq!(m.address(&g, 0, d.len, 0, 0), 0x100 + 0x40 + 8);
        // ldmxcsr disp32 with no base: 0f ae 14 25 78 56 34 12
        let d = decode(&[0x0f, 0xae, 0x14, 0x25, 0x78, 0x56, 0x34, 0x12]).unwrap();
        let Insn::Ldmxcsr(m) = &d.insn else { panic!() };
        assert_eq!(m.address(&[0; 16], 0, d.len, 0, 0), 0x1234_5678);
        assert_eq!(d.len, 8);
        // disp32 with base: ldmxcsr -0x10(%rbp) as mod=2 → 0f ae 95 f0 ff ff ff
        let d = decode(&[0x0f, 0xae, 0x95, 0xf0, 0xff, 0xff, 0xff]).unwrap();
        let Insn::Ldmxcsr(m) = &d.insn else { panic!() };
        let mut g = [0u64; 16];
        g[5] = 0x1000;
        assert_eq!(m.address(&g, 0, d.len, 0, 0), 0x1000 - 0x10);
    }

    #[test]
    fn simple_and_unknown() {
        assert_eq!(
            decode(&[0xcc]).unwrap(),
            Decoded {
                insn: Insn::Int3,
                len: 1
            }
        );
        assert_eq!(decode(&[0x9b]).unwrap().insn, Insn::Fwait);
        assert_eq!(
            decode(&[0xdb, 0xe3]).unwrap(),
            Decoded {
                insn: Insn::Fninit,
                len: 2
            }
        );
        assert_eq!(decode(&[0x0f, 0xae, 0xe8]), None, "lfence: register form");
        assert_eq!(
            decode(&[0x0f, 0xae, 0x2c, 0x24]),
            None,
            "xrstor-class /5 is not ours"
        );
        assert_eq!(decode(&[0xf3, 0x0f, 0xb8, 0xc0]), None, "popcnt");
        assert_eq!(decode(&[0x0f, 0xae, 0x54]), None, "truncated");
        assert_eq!(decode(&[]), None);
    }
}
