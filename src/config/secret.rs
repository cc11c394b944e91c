//! Secrets in profiles: the digest passwords of `[[register]]` entries,
//! `[[sip.auth]]` clients and `[mwi]`'s answers to challenges.
//!
//! Every table that takes a password takes it one way: `password` inline,
//! or `password_file`, a file (relative to the profile's directory) holding
//! the password on one line, so that the profile itself can be shared or
//! kept in version control without the secret. Either may be given, not
//! both. A password is never empty and has no control characters (RFC 7616
//! §3.4 hashes it as text); the file's line ending is not part of it.
//!
//! [`Password`] keeps the secret out of `Debug` output, so a profile can
//! be logged or shown in a test failure without it.

use std::fmt;
use std::path::Path;

use super::reader::{Node, Reader};

/// A digest password. Compared like a string but never printed: its
/// `Debug` output is a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A password given by other means than a profile (tests, tools).
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    /// The password itself, for computing a digest response.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The `password` and `password_file` keys of one table, as they are read.
#[derive(Default)]
pub(super) struct PasswordKeys {
    /// Whether either key was written (even with an error).
    given: bool,
    password: Option<Password>,
}

impl PasswordKeys {
    /// Reads key `name` (written `field` in messages) when it is
    /// `password` or `password_file`; false when it is neither. Relative
    /// `password_file` paths are resolved against `base_dir`.
    pub(super) fn read_key(
        &mut self,
        reader: &mut Reader<'_>,
        field: &str,
        name: &str,
        node: &Node<'_>,
        base_dir: &Path,
    ) -> bool {
        if !matches!(name, "password" | "password_file") {
            return false;
        }
        if self.given {
            reader.error(
                field,
                node.span(),
                "give either password or password_file, not both",
            );
            return true;
        }
        self.given = true;
        self.password = if name == "password" {
            read_password(reader, field, node)
        } else {
            read_password_file(reader, field, node, base_dir)
        };
        true
    }

    /// Whether `password` or `password_file` was written.
    pub(super) fn given(&self) -> bool {
        self.given
    }

    /// The password read, if one was given and is good.
    pub(super) fn into_password(self) -> Option<Password> {
        self.password
    }
}

fn read_password(reader: &mut Reader<'_>, key: &str, node: &Node<'_>) -> Option<Password> {
    let text = reader.string(key, node)?;
    check_password(text)
        .map_err(|m| reader.error(key, node.span(), m))
        .ok()
}

/// Reads the password from a file (relative to the profile): its one
/// line, without the line ending.
fn read_password_file(
    reader: &mut Reader<'_>,
    key: &str,
    node: &Node<'_>,
    base_dir: &Path,
) -> Option<Password> {
    let name = reader.string(key, node)?;
    let path = base_dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read {}: {e}", path.display());
            reader.error(key, node.span(), message);
            return None;
        }
    };
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    match check_password(line) {
        Ok(password) => Some(password),
        Err(message) => {
            reader.error(key, node.span(), format!("{}: {message}", path.display()));
            None
        }
    }
}

fn check_password(text: &str) -> Result<Password, &'static str> {
    if text.is_empty() {
        return Err("the password is empty");
    }
    if text.chars().any(char::is_control) {
        return Err("the password has control characters (or more than one line)");
    }
    Ok(Password(text.to_owned()))
}
