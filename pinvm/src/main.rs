//! `pinvm`: boot patched Linux kernels under KVM and judge what happens. The command line
//! only: clap definitions and printing over the `harness` library and the `vmm` machine.

mod cli;
mod machines;

use clap::Parser;
use machine::outcome::EXIT_UNTESTABLE;
use std::process::ExitCode;

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
