//! Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI finds its CPUs,
//! its IOAPIC and the IRQ routing. Built as plain bytes (no unsafe), written at `MPTABLE`.

use super::layout::MPTABLE;

/// The MP table must end below the 640 KiB line (Linux scans the last KiB of base memory).
const BASE_MEM_END: u64 = 0xa0000;

const APIC_VERSION: u8 = 0x14;
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Family 6 stepping 0, and the feature flags "FPU" and "APIC".
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = 0x201;
/// KVM's IOAPIC has 24 pins; GSI n is pin n.
const IOAPIC_PINS: u8 = 24;

const ENTRY_CPU: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_INTSRC: u8 = 3;
const ENTRY_LINTSRC: u8 = 4;
const IRQ_INT: u8 = 0;
const IRQ_NMI: u8 = 1;
const IRQ_EXTINT: u8 = 3;

/// Largest vCPU count whose table still fits in the last KiB of base memory.
pub const MAX_CPUS: u8 =
    ((BASE_MEM_END - MPTABLE - 16 - 44 - 8 - 8 - IOAPIC_PINS as u64 * 8 - 16) / 20) as u8;

/// An MP table that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MpTableError {
    /// No vCPU, or more than fit.
    #[error("{0} vCPUs: the MP table supports 1 to {MAX_CPUS}")]
    CpuCount(u8),
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// The floating pointer followed by the configuration table, to be written at `MPTABLE`.
pub fn build(cpus: u8) -> Result<Vec<u8>, MpTableError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(MpTableError::CpuCount(cpus));
    }
    let ioapic_id = cpus + 1;

    let mut entries = Vec::new();
    for id in 0..cpus {
        entries.push(ENTRY_CPU);
        entries.push(id); // APIC id = vCPU index, as KVM's LAPIC reports it.
        entries.push(APIC_VERSION);
        entries.push(1 | if id == 0 { 2 } else { 0 }); // enabled, bootstrap processor
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, 0]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, APIC_VERSION, 1]);
    entries.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        // ISA IRQ `pin` of bus 0 goes to IOAPIC pin `pin`, default polarity and trigger.
        entries.extend_from_slice(&[ENTRY_INTSRC, IRQ_INT, 0, 0, 0, pin, ioapic_id, pin]);
    }
    entries.extend_from_slice(&[ENTRY_LINTSRC, IRQ_EXTINT, 0, 0, 0, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LINTSRC, IRQ_NMI, 0, 0, 0, 0, 0xff, 1]);
    let entry_count = (cpus as usize + 1 + 1 + IOAPIC_PINS as usize + 2) as u16;

    let table_addr = MPTABLE as u32 + 16;
    let mut table = Vec::with_capacity(44 + entries.len());
    table.extend_from_slice(b"PCMP");
    table.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
    table.push(4); // spec revision 1.4
    table.push(0); // checksum, below
    table.extend_from_slice(b"PINVM   ");
    table.extend_from_slice(b"PINVM-VMM   ");
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&entry_count.to_le_bytes());
    table.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    table.extend_from_slice(&0u32.to_le_bytes()); // extended table length + checksum + reserved
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut mpf = Vec::with_capacity(16);
    mpf.extend_from_slice(b"_MP_");
    mpf.extend_from_slice(&table_addr.to_le_bytes());
    mpf.push(1); // length in 16-byte units
    mpf.push(4); // spec revision 1.4
    mpf.push(0); // checksum, below
    mpf.extend_from_slice(&[0; 5]); // feature bytes: 0 = a configuration table is present
    mpf[10] = checksum(&mpf);

    mpf.extend_from_slice(&table);
    Ok(mpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_pointers_are_valid() {
        for cpus in [1u8, 2, 8, MAX_CPUS] {
            let t = build(cpus).unwrap();
            assert_eq!(&t[0..4], b"_MP_");
            assert_eq!(sum(&t[0..16]), 0, "floating pointer checksum");
            let ptr = u32::from_le_bytes(t[4..8].try_into().unwrap()) as u64;
            assert_eq!(ptr, MPTABLE + 16);
            let table = &t[16..];
            assert_eq!(&table[0..4], b"PCMP");
            let len = u16::from_le_bytes([table[4], table[5]]) as usize;
            assert_eq!(len, table.len());
            assert_eq!(sum(table), 0, "table checksum");
            let count = u16::from_le_bytes([table[34], table[35]]) as usize;
            assert_eq!(count, cpus as usize + 2 + 24 + 2);
            assert!(
                MPTABLE + t.len() as u64 <= BASE_MEM_END,
                "fits in base memory"
            );
        }
    }

    #[test]
    fn cpu_entries_name_bsp_and_apic_ids() {
        let t = build(3).unwrap();
        let e = &t[16 + 44..];
        for i in 0..3usize {
            let c = &e[i * 20..i * 20 + 20];
            assert_eq!(c[0], ENTRY_CPU);
            assert_eq!(c[1], i as u8);
            assert_eq!(c[3], if i == 0 { 3 } else { 1 });
        }
        let ioapic = &e[60 + 8..60 + 16];
        assert_eq!((ioapic[0], ioapic[1]), (ENTRY_IOAPIC, 4));
    }

    #[test]
    fn rejects_bad_counts() {
        assert_eq!(build(0), Err(MpTableError::CpuCount(0)));
        assert!(build(MAX_CPUS + 1).is_err());
    }
}
