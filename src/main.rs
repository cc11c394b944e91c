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
            eprintln!("vmesh: {}", report(&anyhow::Error::from(e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: most of vmesh's errors
/// already quote their source in their own text (a profile error lists
/// every problem), so a cause is added only when it says something new.
fn report(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
