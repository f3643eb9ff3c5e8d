//! `pinvm cache show|prune`: what the cache holds, and bounding it.

use anyhow::Result;
use clap::{Args, Subcommand};
use guest_images::usage::{self, PruneOptions};
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Show the cache's parts and sizes, and its entries from least to most recently used.
    Show,
    /// Remove build slots and kernels, least recently used first (a slot or kernel another
    /// pinvm is using is kept). Without options: down to the cap (PINVM_CACHE_MAX, 30G).
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Prune down to this size (e.g. 20G) instead of the cap.
    #[arg(long, value_name = "SIZE", value_parser = usage::parse_size)]
    max_size: Option<u64>,
    /// Remove every build slot and old build tree (published kernels stay; the next build
    /// of a new kernel is then a full one).
    #[arg(long)]
    slots: bool,
    /// Only say what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(cmd: CacheCommand) -> Result<i32> {
    let root = guest_images::cache::cache_dir()?;
    match cmd {
        CacheCommand::Show => show(&root),
        CacheCommand::Prune(a) => prune(&root, a),
    }
}

/// `1.5G`, `320M`, `12K`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ];
    for (u, n) in UNITS {
        if bytes >= n {
            return format!("{:.1}{u}", bytes as f64 / n as f64);
        }
    }
    format!("{bytes}B")
}

fn show(root: &Path) -> Result<i32> {
    let u = usage::usage(root)?;
    println!("cache {}", root.display());
    for (part, bytes, count) in &u.parts {
        println!(
            "  {:<16} {:>8}  {count} entries",
            part.name(),
            human(*bytes)
        );
    }
    let cap = usage::cap_from_env()?;
    println!(
        "  {:<16} {:>8}  (cap: {})",
        "total",
        human(u.total()),
        cap.map(human).unwrap_or_else(|| "none".into())
    );
    println!("removable entries, least recently used first:");
    for e in &u.entries {
        let age = e.used.elapsed().map(|d| d.as_secs() / 60).unwrap_or(0);
        println!(
            "  {:<16} {:>8}  used {age} min ago  {}",
            e.part.name(),
            human(e.bytes),
            e.path.display()
        );
    }
    Ok(0)
}

fn prune(root: &Path, a: PruneArgs) -> Result<i32> {
    let max_bytes = match (a.max_size, a.slots) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => usage::cap_from_env()?,
    };
    let opts = PruneOptions {
        max_bytes,
        all_slots: a.slots,
        keep: Vec::new(),
        dry_run: a.dry_run,
    };
    let removed = usage::prune(root, &opts)?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    let mut total = 0;
    for e in &removed {
        total += e.bytes;
        println!("{verb} {} ({})", e.path.display(), human(e.bytes));
    }
    println!("{verb} {} entries, {}", removed.len(), human(total));
    Ok(0)
}
