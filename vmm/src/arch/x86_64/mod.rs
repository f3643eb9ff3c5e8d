//! x86_64 specifics: memory layout, boot protocol structures, MP table, vCPU boot state.

pub mod bootparams;
pub mod decode;
pub mod cpu;
pub mod gdt;
pub mod layout;
pub mod mptable;
