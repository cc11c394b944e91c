//! `--key value` command-line options, checked as they are read.

use std::collections::HashMap;
use std::str::FromStr;

/// The options of one command.
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Reads `--key value` pairs (every option takes a value).
    pub fn parse(items: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut items = items.peekable();
        while let Some(item) = items.next() {
            let key = item
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {item:?}"))?;
            let value = items
                .next()
                .ok_or_else(|| format!("--{key} needs a value"))?;
            values.insert(key.to_string(), value);
        }
        Ok(Args { values })
    }

    /// A required option.
    pub fn get<T: FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self
            .values
            .get(key)
            .ok_or_else(|| format!("--{key} is required"))?;
        raw.parse()
            .map_err(|_| format!("--{key}: cannot read {raw:?}"))
    }

    /// An option with a default.
    pub fn get_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        if self.values.contains_key(key) {
            self.get(key)
        } else {
            Ok(default)
        }
    }

    /// An optional option.
    pub fn opt<T: FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        if self.values.contains_key(key) {
            self.get(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A comma-separated list.
    pub fn list<T: FromStr>(&self, key: &str) -> Result<Vec<T>, String> {
        let raw: String = self.get(key)?;
        raw.split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| format!("--{key}: cannot read {v:?}"))
            })
            .collect()
    }
}
