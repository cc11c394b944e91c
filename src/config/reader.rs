//! Reading values out of a parsed profile while collecting every error.
//!
//! serde-derive stops at the first error, but `vmesh check` must report all
//! of them, each with its key and line. So the profile is parsed into toml's
//! spanned document tree ([`DeTable`]) and walked by hand: each accessor here
//! returns the value, or records a [`ConfigError`] and returns `None` so the
//! caller keeps its default and goes on to the next key.

use std::ops::{Range, RangeInclusive};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigError, TextPosition};

/// A value in the document with its byte span.
pub(super) type Node<'i> = Spanned<DeValue<'i>>;

/// Collects the errors of one profile while its sections are read.
pub(super) struct Reader<'s> {
    file: String,
    source: &'s str,
    errors: Vec<ConfigError>,
}

impl<'s> Reader<'s> {
    /// A reader for `source`, whose errors will name `file`.
    pub(super) fn new(file: String, source: &'s str) -> Self {
        Reader {
            file,
            source,
            errors: Vec::new(),
        }
    }

    /// Records an error at `key`, located at the start of `span`.
    pub(super) fn error(&mut self, key: &str, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            message: message.into(),
            position: Some(TextPosition::of_offset(self.source, span.start)),
        });
    }

    /// Records an error at `key` that has no place in the text, e.g. a
    /// conflict between two keys that were both left at their defaults.
    pub(super) fn error_unplaced(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.file.clone(), key, message));
    }

    /// Records that `key` is not one vmesh knows, so a typo never silently
    /// leaves a setting at its default.
    pub(super) fn unknown_key(&mut self, key: &str, span: Range<usize>) {
        self.error(key, span, "unknown key");
    }

    /// The node as a table (a `[section]`).
    pub(super) fn table<'a, 'i>(
        &mut self,
        key: &str,
        node: &'a Node<'i>,
    ) -> Option<&'a DeTable<'i>> {
        match node.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(key, node.span(), "a table", other);
                None
            }
        }
    }

    /// The node as a string.
    pub(super) fn string<'a>(&mut self, key: &str, node: &'a Node<'_>) -> Option<&'a str> {
        match node.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.wrong_type(key, node.span(), "a string", other);
                None
            }
        }
    }

    /// The node as a whole number within `range`. TOML integers are signed
    /// 64-bit; anything outside `range` (including negatives) is an error
    /// that states the allowed range.
    pub(super) fn integer(
        &mut self,
        key: &str,
        node: &Node<'_>,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let DeValue::Integer(i) = node.get_ref() else {
            self.wrong_type(key, node.span(), "an integer", node.get_ref());
            return None;
        };
        let Ok(value) = i128::from_str_radix(i.as_str(), i.radix()) else {
            self.error(key, node.span(), format!("{i} is not a usable integer"));
            return None;
        };
        match u64::try_from(value) {
            Ok(v) if range.contains(&v) => Some(v),
            _ => {
                self.error(
                    key,
                    node.span(),
                    format!(
                        "{value} is out of range; expected {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// The node as a number within `range`: a TOML float, or an integer
    /// (`-50` for `-50.0`). Infinities and NaN are never in range.
    pub(super) fn float(
        &mut self,
        key: &str,
        node: &Node<'_>,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        let value = match node.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|v| v as f64),
            other => {
                self.wrong_type(key, node.span(), "a number", other);
                return None;
            }
        };
        match value {
            Some(v) if range.contains(&v) => Some(v),
            _ => {
                self.error(
                    key,
                    node.span(),
                    format!(
                        "{} is out of range; expected {} to {}",
                        self.source.get(node.span()).unwrap_or("the value").trim(),
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// The node as a boolean (`true` or `false`).
    pub(super) fn boolean(&mut self, key: &str, node: &Node<'_>) -> Option<bool> {
        match node.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.wrong_type(key, node.span(), "true or false", other);
                None
            }
        }
    }

    /// The node as an array of strings, each paired with its indexed key
    /// (`sip.listen[1]`) and span so callers can report entries one by one.
    /// Entries that are not strings are reported and left out.
    pub(super) fn strings<'a>(
        &mut self,
        key: &str,
        node: &'a Node<'_>,
    ) -> Option<Vec<ArrayEntry<'a>>> {
        let DeValue::Array(items) = node.get_ref() else {
            self.wrong_type(key, node.span(), "an array of strings", node.get_ref());
            return None;
        };
        let mut entries = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let entry_key = format!("{key}[{index}]");
            if let Some(value) = self.string(&entry_key, item) {
                entries.push(ArrayEntry {
                    key: entry_key,
                    span: item.span(),
                    value,
                });
            }
        }
        Some(entries)
    }

    /// Records a TOML syntax error, which belongs to no key.
    pub(super) fn syntax_error(&mut self, error: &toml::de::Error) {
        let position = error
            .span()
            .map(|span| TextPosition::of_offset(self.source, span.start));
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: String::new(),
            message: format!("TOML syntax error: {}", error.message().trim_end()),
            position,
        });
    }

    /// Whether an error was recorded at `key` or inside it (`sip.listen`
    /// also covers `sip.listen[1]`), so checks that build on a key can stay
    /// silent when the key itself is already reported.
    pub(super) fn has_error_within(&self, key: &str) -> bool {
        self.errors.iter().any(|e| {
            e.key
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// Every error recorded, in file order (errors without a position last).
    pub(super) fn finish(self) -> Vec<ConfigError> {
        let mut errors = self.errors;
        errors.sort_by_key(|e| (e.position.is_none(), e.position));
        errors
    }

    fn wrong_type(&mut self, key: &str, span: Range<usize>, expected: &str, found: &DeValue<'_>) {
        self.error(
            key,
            span,
            format!("expected {expected}, found {}", found.type_str()),
        );
    }
}

/// One string of an array, with what is needed to report it alone.
pub(super) struct ArrayEntry<'a> {
    /// The indexed key, e.g. `sip.listen[1]`.
    pub(super) key: String,
    /// Where the entry is in the text.
    pub(super) span: Range<usize>,
    /// The string itself.
    pub(super) value: &'a str,
}
