//! `pinvm`: boot patched Linux kernels under KVM and judge what happens.

mod cli;

use clap::Parser;
use std::process::ExitCode;
use vmm::outcome::EXIT_UNTESTABLE;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_UNTESTABLE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pinvm: error: {e:#}");
            EXIT_UNTESTABLE
        }
    };
    // Exit codes follow `git bisect run`: never 128 or more.
    ExitCode::from(code.clamp(0, 125) as u8)
}
