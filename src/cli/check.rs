//! `vmesh check`: validate a profile.

use std::path::Path;

use super::CliError;
use crate::config::Profile;

pub fn run(profile: Option<&Path>) -> Result<(), CliError> {
    let p = match profile {
        Some(path) => Profile::load(path)?,
        None => Profile::embedded_default(),
    };
    let origin = match profile {
        Some(path) => path.display().to_string(),
        None => "embedded default profile".to_string(),
    };
    println!(
        "{origin}: OK (server {}, listen {}, data {})",
        p.server.name,
        p.sip
            .listen
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        p.server.data_dir.display()
    );
    Ok(())
}
