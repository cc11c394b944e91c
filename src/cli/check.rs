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
    for open in p.sip.open_listeners() {
        eprintln!(
            "warning: {open} is not on loopback and neither sip.allow nor [[sip.auth]] guards it: any host that reaches it may leave messages"
        );
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
                println!("  {:<16} {:<40} home of {}{me}", s.name, s.uri, s.mailboxes);
            }
        }
    }
    Ok(())
}
