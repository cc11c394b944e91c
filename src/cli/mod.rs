//! The `vmesh` command line (clap).
//!
//! Every command that reads state takes `--profile FILE` or `--data DIR`
//! (default `./vmesh-data`); `--json` prints exactly one JSON document on
//! stdout. Errors go to stderr with a non-zero exit (the binary's `main`).

mod certs;
mod check;
mod mailbox;
mod mesh;
mod messages;
mod output;
mod owner;
mod registrations;
mod serve;
mod subscriptions;
mod terminal;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use self::mailbox::MailboxCommand;
use crate::config::{ConfigErrors, Profile};

/// A SIP voicemail server for IP-PBXs, one per site, as a mesh of peers.
#[derive(Debug, Parser)]
#[command(name = "vmesh", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the voicemail server (the embedded default profile without --profile).
    Serve {
        /// Profile TOML file.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// Validate a profile; report every error with its file and key.
    Check {
        /// Profile TOML file (the embedded default without it).
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// Inspect and manage stored messages.
    Messages {
        #[command(subcommand)]
        command: MessagesCommand,
    },
    /// A mailbox's greetings, and its owner's access by phone (PIN).
    Mailbox {
        #[command(subcommand)]
        command: MailboxCommand,
    },
    /// The peers of the mesh and their health (OPTIONS pings).
    Peers {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Registrations with PBXs (the profile's register tables) and their state.
    Registrations {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Message-waiting subscriptions (phones and PBXs watching a mailbox).
    Subscriptions {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The mesh CA and the servers' certificates for mutual TLS.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Messages waiting for their home server, and failed transfers.
    Queue {
        #[command(subcommand)]
        command: Option<QueueCommand>,
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the mesh CA: DIR/ca.pem and DIR/ca.key (never overwritten).
    Init {
        /// Directory for the CA files (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue a key and certificate for server NAME: DIR/NAME.pem, DIR/NAME.key.
    Issue {
        /// The server's name in the topology.
        name: String,
        /// Directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = crate::config::DEFAULT_SERVER_VALIDITY_DAYS,
              value_parser = clap::value_parser!(i64).range(1..=36500))]
        days: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Send a failed (or waiting) message again, at once.
    Retry {
        /// Message id (full or a unique prefix of 8+ characters).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// List messages, newest first (every folder but deleted, unless --folder).
    List {
        /// Only this mailbox.
        #[arg(long)]
        mailbox: Option<String>,
        /// Only this folder.
        #[arg(long, value_enum)]
        folder: Option<FolderArg>,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one message (full id or a unique prefix of 8+ characters).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Write a message's audio to a WAV file.
    Export {
        id: String,
        /// Output file.
        #[arg(long, value_name = "FILE.wav")]
        out: PathBuf,
        /// Copy the stored file as it is (Ogg Opus or WAV) instead of WAV.
        #[arg(long)]
        raw: bool,
        /// Replace FILE if it exists (a symbolic link is never followed).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Move a message to the deleted folder (restorable until purged).
    Delete {
        /// Message id (full or a unique prefix of 8+ characters).
        id: String,
        /// Print the message as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Put a deleted message back in the folder it was deleted from.
    Restore {
        /// Message id (full or a unique prefix of 8+ characters).
        id: String,
        /// Print the message as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Move a message to another folder.
    Move {
        /// Message id (full or a unique prefix of 8+ characters).
        id: String,
        /// The folder to move it to.
        #[arg(long, value_enum)]
        to: MoveTarget,
        /// Print the message as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Mark a message heard (new becomes old) or new again.
    #[command(group(clap::ArgGroup::new("mark").required(true).args(["heard", "new"])))]
    Mark {
        /// Message id (full or a unique prefix of 8+ characters).
        id: String,
        /// Heard: a new message moves to old.
        #[arg(long)]
        heard: bool,
        /// Not heard: the message moves back to new.
        #[arg(long)]
        new: bool,
        /// Print the message as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// A folder, as `--folder` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FolderArg {
    New,
    Old,
    Saved,
    Deleted,
}

/// Where `messages move` may put a message (deleting is `messages delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MoveTarget {
    New,
    Old,
    Saved,
}

/// Where the state is: a profile's data_dir, or a data directory.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Profile whose data_dir to use.
    #[arg(long, value_name = "FILE", conflicts_with = "data", global = true)]
    pub profile: Option<PathBuf>,
    /// Data directory [default: ./vmesh-data].
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
}

impl StateArgs {
    /// The data directory these arguments name.
    pub fn data_dir(&self) -> Result<PathBuf, CliError> {
        if let Some(p) = &self.profile {
            return Ok(Profile::load(p)?.server.data_dir);
        }
        Ok(self
            .data
            .clone()
            .unwrap_or_else(|| PathBuf::from("vmesh-data")))
    }
}

/// Opens an existing store; a missing directory is an error here rather
/// than an empty store created by a typo.
fn open_store(dir: &std::path::Path) -> Result<crate::store::Store, CliError> {
    if !dir.join("vmesh.db").exists() {
        return Err(CliError::NoData(dir.to_path_buf()));
    }
    Ok(crate::store::Store::open(dir)?)
}

/// What a command can fail with; each says what the user should look at.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("invalid profile:\n{0}")]
    Profile(#[from] ConfigErrors),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Greeting(#[from] crate::voicemail::greetings::GreetingError),
    #[error(transparent)]
    Pin(#[from] owner::PinInputError),
    #[error(transparent)]
    Prompts(#[from] crate::retrieval::PromptError),
    #[error(transparent)]
    Server(#[from] crate::voicemail::ServerError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists; refusing to overwrite it (use --force to replace it)")]
    OutputExists(PathBuf),
    #[error("{0} is a symbolic link; refusing to write through it")]
    OutputIsSymlink(PathBuf),
    #[error("{0} is not a regular file; refusing to write to it")]
    OutputNotRegular(PathBuf),
    #[error("no data directory at {0} (use --data DIR or --profile FILE)")]
    NoData(PathBuf),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("JSON output: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Registrations(#[from] crate::register::status::StatusError),
    #[error(transparent)]
    Certs(#[from] crate::config::CaError),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { profile } => serve::run(profile.as_deref()),
        Command::Check { profile } => check::run(profile.as_deref()),
        Command::Messages { command } => messages::run(command),
        Command::Mailbox { command } => mailbox::run(command),
        Command::Peers { json, state } => mesh::peers(json, &state),
        Command::Registrations { json, state } => registrations::run(json, &state),
        Command::Subscriptions { json, state } => subscriptions::run(json, &state),
        Command::Certs { command } => match command {
            CertsCommand::Init { dir } => certs::init(&dir),
            CertsCommand::Issue { name, dir, days } => certs::issue(&name, &dir, days),
        },
        Command::Queue {
            command,
            json,
            state,
        } => mesh::queue(command, json, &state),
    }
}
