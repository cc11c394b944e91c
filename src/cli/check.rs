//! `vmesh check`: validate a profile and, when it names one, its topology.

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
    let listen: Vec<String> = p.sip.listen.iter().map(ToString::to_string).collect();
    println!(
        "{origin}: OK (server {}, listen {}, data {})",
        p.server.name,
        listen.join(" "),
        p.server.data_dir.display()
    );
    if let (Some((cert, key)), Some(ca)) = (
        p.tls.pair(),
        p.topology.as_ref().and_then(|t| t.ca.as_ref()),
    ) {
        if p.uses_tls() {
            // Loading the profile checked them: they name this server and
            // chain to the mesh CA.
            println!(
                "tls: {} and {} name {} and are issued by the mesh CA {}",
                cert.display(),
                key.display(),
                p.server.name,
                ca.display()
            );
        }
    }
    match &p.topology {
        None => println!("single server; mailboxes {}", p.mailboxes),
        Some(t) => {
            println!(
                "topology {}: {} server(s)",
                t.path.display(),
                t.servers.len()
            );
            for s in &t.servers {
                let me = if s.name == p.server.name {
                    "  (this server)"
                } else {
                    ""
                };
                let insecure = if s.insecure {
                    "  (insecure: plain TCP)"
                } else {
                    ""
                };
                println!(
                    "  {:<16} {:<40} home of {}{me}{insecure}",
                    s.name, s.uri, s.mailboxes
                );
            }
        }
    }
    Ok(())
}
