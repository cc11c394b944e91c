//! `vmesh check`: validate a profile and, when it names one, its topology
//! and its prompt folder.

use std::path::Path;

use super::CliError;
use crate::config::{PilotKind, Profile};
use crate::retrieval::{PromptSource, Prompts};

pub fn run(profile: Option<&Path>) -> Result<(), CliError> {
    let p = match profile {
        Some(path) => Profile::load(path)?,
        None => Profile::embedded_default(),
    };
    // Every prompt of the chosen language must be there and decode.
    let prompts = Prompts::for_profile(&p.retrieval)?;
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
    for r in &p.register {
        let via = match &r.outbound_proxy {
            Some(proxy) => format!(" via {proxy}"),
            None => String::new(),
        };
        println!(
            "register {} at {}{via}: contact {}, expires {} s{}",
            r.user,
            r.registrar,
            r.contact_uri(),
            r.expires.as_secs(),
            if r.password.is_some() {
                ", with password"
            } else {
                ""
            }
        );
    }
    let pilots: Vec<String> = p
        .retrieval
        .pilots
        .iter()
        .map(|pilot| match pilot.kind {
            PilotKind::CallerMailbox => pilot.user.clone(),
            PilotKind::AskMailbox => format!("{} (asks for the mailbox)", pilot.user),
        })
        .collect();
    let source = match prompts.source() {
        PromptSource::BuiltIn => "built in".to_string(),
        PromptSource::Folder(dir) => dir.display().to_string(),
    };
    println!(
        "retrieval pilots {}; prompts {} ({source}); envelopes in {}",
        pilots.join(", "),
        p.retrieval.language,
        p.retrieval.timezone_name()
    );
    Ok(())
}
