//! `--put` and `--share`, shared by the commands that boot a guest.

use anyhow::Result;
use clap::Args;
use guest_images::hostfs::{HostPath, PathKind};
use harness::prepare::HostFiles;

/// Host files in the guest.
#[derive(Args, Debug, Clone, Default)]
pub struct HostFileArgs {
    /// Copy a host file or directory into the guest's initramfs at GUEST (default
    /// /put/<name>); modes are kept (repeatable; at most 64 MiB in all: every byte slows the
    /// boot, use --share for more).
    #[arg(long = "put", value_name = "HOST[:GUEST]")]
    pub puts: Vec<String>,
    /// Make a read-only ext4 image of a host directory (cached by content) and mount it in
    /// the guest at GUEST (default /share) (repeatable, at most 8).
    #[arg(long = "share", value_name = "DIR[:GUEST]")]
    pub shares: Vec<String>,
}

impl HostFileArgs {
    /// Parses every argument; a missing host path or a bad guest path is an error now.
    pub fn files(&self) -> Result<HostFiles> {
        let parse = |kind, v: &[String]| -> Result<Vec<HostPath>> {
            v.iter().map(|a| HostPath::parse(kind, a)).collect()
        };
        Ok(HostFiles {
            puts: parse(PathKind::Put, &self.puts)?,
            shares: parse(PathKind::Share, &self.shares)?,
        })
    }
}
