//! `pinvm journal show`: print a virtio-blk write journal readably, decoding what each written
//! 4 KiB block holds when the journal kept the data (`--journal-data`): a DMA generation
//! (`dma r1 p3 g7`), a torn block mixing generations, or a stamped file sector.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use proto::journal::{render, Journal};
use proto::stamp::dma::{classify_block, BlockClass};
use proto::stamp::file::decode as decode_stamp;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// Print every record of a journal written by `pinvm boot --journal`.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The journal file.
    pub file: PathBuf,
}

/// What a written 4 KiB block holds.
fn describe(block: &[u8]) -> String {
    let Ok(b) = <&[u8; 4096]>::try_from(block) else {
        return "short block".into();
    };
    match classify_block(b) {
        BlockClass::Uniform {
            region,
            page,
            generation,
        } => format!("dma r{region} p{page} g{generation}"),
        BlockClass::Mixed {
            region,
            page,
            generations,
        } => format!("TORN dma r{region} p{page} sector generations {generations:?}"),
        BlockClass::Foreign => match decode_stamp(&block[..512]) {
            Some((tag, off)) => format!("file stamp {tag} off={off}"),
            None => "other data".into(),
        },
    }
}

pub fn run(cmd: JournalCommand) -> Result<i32> {
    let JournalCommand::Show(a) = cmd;
    let ctx = || format!("reading journal {}", a.file.display());
    let j = Journal::open(&a.file).with_context(ctx)?;
    let mut out = std::io::stdout().lock();
    for rec in j.records() {
        let rec = rec.with_context(ctx)?;
        render(&rec, &mut out)?;
        if let Some(data) = &rec.data {
            for (i, b) in data.chunks(4096).enumerate() {
                writeln!(
                    out,
                    "  block sector={} {}",
                    rec.sector + i as u64 * 8,
                    describe(b)
                )?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_blocks() {
        assert_eq!(describe(&[0u8; 4096]), "other data");
        assert_eq!(describe(&[0u8; 100]), "short block");
        let mut b = vec![0u8; 4096];
        b[..512].copy_from_slice(&proto::stamp::file::stamp_sector("t", 8192));
        assert_eq!(describe(&b), "file stamp t off=8192");
    }
}
