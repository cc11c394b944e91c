//! Text that is safe to print on an operator's terminal.
//!
//! Much of what the CLI shows comes from strangers: a caller's display name
//! and URI are whatever the INVITE said (RFC 3261 §20.20 allows almost any
//! UTF-8 in a quoted display name), a peer's last error is its Warning text.
//! Printed raw, an ESC sequence in a display name can move the cursor,
//! rewrite earlier lines or retitle the terminal, and a bidirectional
//! override can make one id read as another. So every field of the human
//! output goes through [`escape`]: C0 and C1 controls, DEL and the Unicode
//! bidirectional formatting characters (Unicode TR9 §2) are written as
//! `\xNN` or `\u{NNNN}`, and the backslash itself as `\\`, so the escaped
//! text is unambiguous. JSON output is not escaped here: serde_json already
//! escapes controls, and scripts must see the exact value.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every character that could act on a terminal escaped.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x100 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `Some(text)` escaped, or `absent` when there is none.
pub fn escape_or<'a>(text: Option<&'a str>, absent: &'a str) -> Cow<'a, str> {
    text.map_or(Cow::Borrowed(absent), escape)
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_bidi_control(c)
}

/// The explicit directional formatting characters of Unicode TR9 §2
/// (embeddings, overrides, isolates) and the implicit marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in [
            "",
            "Test Caller",
            "Zoë Müller 山田 😀",
            "sip:1001@pbx;user=phone",
        ] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn terminal_sequences_are_made_visible() {
        assert_eq!(
            escape("\u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "\\x1b[2J\\x1b]0;pwned\\x07"
        );
        assert_eq!(escape("a\r\nb\tc\0"), "a\\r\\nb\\tc\\x00");
        assert_eq!(escape("\u{7f}\u{9b}31m"), "\\x7f\\x9b31m");
        assert_eq!(escape("id\u{202e}cba"), "id\\u{202e}cba");
        assert_eq!(escape("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
    }

    #[test]
    fn backslashes_are_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(escape("\\x1b"), "\\\\x1b");
        assert_ne!(escape("\\x1b"), escape("\u{1b}"));
    }

    #[test]
    fn the_escaped_text_has_no_controls_left() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let escaped = escape(&all);
        assert!(!escaped
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c)));
    }

    #[test]
    fn absent_values_print_their_placeholder() {
        assert_eq!(escape_or(None, "-"), "-");
        assert_eq!(escape_or(Some("\u{1b}"), "-"), "\\x1b");
    }
}
