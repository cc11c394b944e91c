//! The `[server]` section: who this server is and where it keeps its data.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::reader::Reader;

/// Default server name, used in logs and, later, by peers in the mesh.
pub const DEFAULT_SERVER_NAME: &str = "vmesh";

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "vmesh-data";

/// Longest server name accepted.
const MAX_NAME_LEN: usize = 64;

/// Identity and storage of one vmesh server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// This server's name: 1 to 64 ASCII letters, digits, '-', '_' or '.',
    /// because it travels in SIP headers, log lines and peer lists where
    /// spaces and punctuation would need quoting.
    pub name: String,
    /// Where recordings and the SQLite index live. Relative paths are kept
    /// relative, i.e. to the working directory of the process.
    pub data_dir: PathBuf,
    /// The mesh topology file, resolved against the profile's directory so a
    /// profile and its topology can move together. Not read here.
    pub topology: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: DEFAULT_SERVER_NAME.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            topology: None,
        }
    }
}

impl ServerConfig {
    /// Reads `[server]`; `base_dir` is the directory relative `topology`
    /// paths are resolved against.
    pub(super) fn read(reader: &mut Reader<'_>, table: &DeTable<'_>, base_dir: &Path) -> Self {
        let mut server = ServerConfig::default();
        for (name, node) in table.iter() {
            let key = format!("server.{}", name.get_ref());
            match name.get_ref().as_ref() {
                "name" => {
                    if let Some(s) = reader.string(&key, node) {
                        match check_name(s) {
                            Ok(()) => server.name = s.to_owned(),
                            Err(message) => reader.error(&key, node.span(), message),
                        }
                    }
                }
                "data_dir" => {
                    if let Some(s) = reader.string(&key, node) {
                        if s.is_empty() {
                            reader.error(&key, node.span(), "must not be empty");
                        } else {
                            server.data_dir = PathBuf::from(s);
                        }
                    }
                }
                "topology" => {
                    if let Some(s) = reader.string(&key, node) {
                        if s.is_empty() {
                            reader.error(
                                &key,
                                node.span(),
                                "must not be empty; leave the key out for no topology",
                            );
                        } else {
                            server.topology = Some(base_dir.join(s));
                        }
                    }
                }
                _ => reader.unknown_key(&key, name.span()),
            }
        }
        server
    }
}

/// Checks a server name: the rule is shared with topology files, where
/// peers are named the same way.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "contains {c:?}; use only ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted_to_token_characters() {
        assert!(check_name("vm-a.site_1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("site a").is_err());
        assert!(check_name("vm\r\nX-Injected: 1").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_name(&"a".repeat(64)).is_ok());
    }
}
