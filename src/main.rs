//! The `vmesh` binary: parses the command line and reports errors.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = vmesh::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("VMESH_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,rsipstack=warn")),
        )
        .init();
    match vmesh::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("vmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}
