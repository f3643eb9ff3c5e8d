//! `pinvm journal show`: print a virtio-blk write journal readably.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
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

pub fn run(cmd: JournalCommand) -> Result<i32> {
    let JournalCommand::Show(a) = cmd;
    let mut out = std::io::stdout().lock();
    devices::block::journal::render_file(&a.file, &mut out)
        .with_context(|| format!("reading journal {}", a.file.display()))?;
    Ok(0)
}
