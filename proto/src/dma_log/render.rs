//! DMA logs for people: `pinvm dma show`.

use std::path::Path;

use super::{DmaLog, DmaLogError, Trigger, VERSION};

/// Print a DMA log readably (for `pinvm dma show`): one line per write. Returns the number of
/// records; a truncated last record is reported on its own line.
pub fn render_file(path: &Path, w: &mut impl std::io::Write) -> Result<u64, DmaLogError> {
    let mut records = DmaLog::open(path)?.records();
    let mut n = 0;
    writeln!(w, "pinvm DMA log v{VERSION}")?;
    for r in records.by_ref() {
        let r = r?;
        let trigger = match r.trigger {
            Trigger::Burst => "burst".to_string(),
            Trigger::Rate => "rate".to_string(),
            Trigger::Writeback { seq } => format!("writeback(blk #{seq})"),
            Trigger::Unknown(c) => format!("unknown({c})"),
        };
        writeln!(
            w,
            "{}.{:09} region={} page={} file_off={} gen={} gpa={:#x}+{} ({}) {}",
            r.time_ns / 1_000_000_000,
            r.time_ns % 1_000_000_000,
            r.region,
            r.page,
            r.file_offset,
            r.generation,
            r.gpa,
            r.page_offset,
            r.bytes,
            trigger
        )?;
        n += 1;
    }
    if records.truncated() {
        writeln!(w, "(truncated last record)")?;
    }
    Ok(n)
}
