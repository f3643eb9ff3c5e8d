//! `pinvm dma show`: print the DMA device's log readably.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DmaCommand {
    /// Print every DMA write logged by `pinvm boot --dma-log` (time, region, page, file
    /// offset, generation, guest-physical address, bytes, trigger).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The DMA log file.
    pub file: PathBuf,
}

pub fn run(cmd: DmaCommand) -> Result<i32> {
    let DmaCommand::Show(a) = cmd;
    let mut out = std::io::stdout().lock();
    proto::dma_log::render_file(&a.file, &mut out)
        .with_context(|| format!("reading DMA log {}", a.file.display()))?;
    Ok(0)
}
