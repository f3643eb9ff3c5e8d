//! `pinvm report RESULTS_DIR [--html FILE]`: the timeline report of a results folder (one
//! self-contained HTML page per case, an index for a suite); `--html` on `run` and `suite`
//! calls the same code after the runs.

use anyhow::Result;
use clap::Args;
use harness::report::timeline;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pinvm report pinvm-out/S06-torn-writeback-6.12-ext4-1767225600 --html s06.html\n  \
pinvm report pinvm-out/suite-1767225600            # a page per case and index.html"
)]
pub struct ReportArgs {
    /// A results folder of `pinvm run` (one case) or of `pinvm suite` / `pinvm run --runs N`.
    pub results: PathBuf,
    /// Where to write the page (a case) or the index (a suite). Default: timeline.html or
    /// index.html in the results folder; case pages of a suite go into each case's folder.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> Result<i32> {
    write(&a.results, a.html.as_deref())?;
    Ok(0)
}

/// Write the report of `results` and say where it is.
pub fn write(results: &Path, html: Option<&Path>) -> Result<()> {
    let w = timeline::report(results, html)?;
    if w.cases.len() > 1 || w.cases.first() != Some(&w.main) {
        println!(
            "pinvm report: {} case pages; index {}",
            w.cases.len(),
            w.main.display()
        );
    } else {
        println!("pinvm report: timeline {}", w.main.display());
    }
    Ok(())
}
