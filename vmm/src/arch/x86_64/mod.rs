//! x86_64 specifics: memory layout, boot protocol structures, MP table, vCPU boot state.

pub mod bootparams;
pub mod cpu;
pub mod decode;
pub mod gdt;
pub mod layout;
pub mod mptable;
