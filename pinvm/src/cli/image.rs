//! `pinvm image create`: filesystem images for the guest disk, cached.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use guest_images::disk::{self, Fs};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Make (or reuse from the cache) an empty filesystem image and print its path.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Filesystem.
    #[arg(long, value_name = "ext4|xfs|btrfs")]
    pub fs: Fs,
    /// Image size, e.g. 64M or 1G (default: 64M; 300M for xfs, its minimum).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Copy the image here instead of printing the cached path.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: ImageCommand) -> Result<i32> {
    let ImageCommand::Create(a) = cmd;
    let size = match &a.size {
        Some(s) => disk::parse_size(s)?,
        None => a.fs.default_size(),
    };
    let cache = guest_images::cache::cache_dir()?;
    let path = disk::create(&cache, a.fs, size)?;
    match a.out {
        Some(out) => {
            if out.exists() {
                anyhow::bail!("{} exists; not overwriting it", out.display());
            }
            std::fs::copy(&path, &out)
                .with_context(|| format!("copying {} to {}", path.display(), out.display()))?;
            println!("{}", out.display());
        }
        None => println!("{}", path.display()),
    }
    Ok(0)
}
