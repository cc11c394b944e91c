//! Errors found in a profile.
//!
//! A profile is checked as a whole: `vmesh check` lists every problem at once
//! so an operator fixes a file in one pass, and `vmesh serve` refuses to start
//! while any remain. Each error names the file, the dotted key and, when the
//! text is known, the line and column, so it can be found without guessing.

use std::fmt;

/// A place in the profile text, 1-based, as editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TextPosition {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column in characters, starting at 1.
    pub column: usize,
}

impl TextPosition {
    /// The position of byte `offset` in `source`, so a span reported by the
    /// TOML parser can be shown the way an editor shows it. An offset past
    /// the end (or inside a character) is clamped rather than trusted.
    pub fn of_offset(source: &str, offset: usize) -> TextPosition {
        let mut end = offset.min(source.len());
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let before = source.get(..end).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        TextPosition { line, column }
    }
}

impl fmt::Display for TextPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One problem in a profile.
///
/// Displayed as `FILE: KEY: MESSAGE (line L, column C)`; the key part is left
/// out for errors that belong to no key (the file cannot be read, or its TOML
/// syntax is broken), and the position when it is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{message}{}", key_part(.key), position_part(.position))]
pub struct ConfigError {
    /// The profile's path, or `<embedded default>` for the compiled-in one.
    pub file: String,
    /// The dotted key the problem is in, e.g. `sip.listen[1]` or
    /// `media.rtp_port_min`; empty when no key applies.
    pub key: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
    /// Where the offending key or value starts in the file, when known.
    pub position: Option<TextPosition>,
}

impl ConfigError {
    /// An error without a known position.
    pub fn new(
        file: impl Into<String>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: key.into(),
            message: message.into(),
            position: None,
        }
    }
}

fn key_part(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

fn position_part(position: &Option<TextPosition>) -> String {
    position.map_or_else(String::new, |p| format!(" ({p})"))
}

/// Every problem found in one profile, in file order; never empty when
/// returned as an error. Displayed one error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether any error is reported for exactly `key`; lets callers and
    /// tests ask about one key without matching message text.
    pub fn has_key(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }

    /// The errors reported for exactly `key`.
    pub fn for_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ConfigError> + 'a {
        self.0.iter().filter(move |e| e.key == key)
    }
}

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            TextPosition::of_offset(text, 0),
            TextPosition { line: 1, column: 1 }
        );
        let offset = text.rfind('=').unwrap();
        assert_eq!(
            TextPosition::of_offset(text, offset),
            TextPosition { line: 2, column: 4 }
        );
        // Past the end and inside a multi-byte character: clamped, no panic.
        assert_eq!(TextPosition::of_offset(text, 999).line, 3);
        assert_eq!(
            TextPosition::of_offset(text, 8),
            TextPosition { line: 2, column: 2 }
        );
    }

    #[test]
    fn display_is_file_key_message_position() {
        let mut e = ConfigError::new("p.toml", "sip.max_calls", "must not be 0");
        assert_eq!(e.to_string(), "p.toml: sip.max_calls: must not be 0");
        e.position = Some(TextPosition { line: 3, column: 1 });
        assert_eq!(
            e.to_string(),
            "p.toml: sip.max_calls: must not be 0 (line 3, column 1)"
        );
        let no_key = ConfigError::new("p.toml", "", "cannot read");
        assert_eq!(no_key.to_string(), "p.toml: cannot read");
    }

    #[test]
    fn errors_display_one_per_line() {
        let errors = ConfigErrors(vec![
            ConfigError::new("f", "a", "x"),
            ConfigError::new("f", "b", "y"),
        ]);
        assert_eq!(errors.to_string(), "f: a: x\nf: b: y");
        assert!(errors.has_key("b"));
        assert!(!errors.has_key("c"));
    }
}
