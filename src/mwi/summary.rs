//! The `application/simple-message-summary` body (RFC 3842 §5).
//!
//! ```text
//! Messages-Waiting: yes
//! Message-Account: sip:1001@vm.example.com
//! Voice-Message: 2/8 (0/0)
//! ```
//!
//! `Messages-Waiting` is `yes` exactly while there are new (unheard)
//! messages (§5.2); the `Voice-Message` line gives new/old and, in
//! parentheses, the urgent new/old counts. vmesh records no urgency, so
//! those are 0, but the line keeps them: phones parse the long form. Lines
//! end with CRLF, as the body's ABNF (§5.2) asks.

use std::fmt::Write as _;

use crate::store::MailboxCounts;

/// The SIP event package name (RFC 3842 §3.1).
pub const EVENT_PACKAGE: &str = "message-summary";

/// The body's media type (RFC 3842 §3.5).
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// What one mailbox's lamp shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageSummary {
    /// Unheard messages.
    pub new: u32,
    /// Heard messages kept (old and saved).
    pub old: u32,
    /// Unheard urgent messages.
    pub urgent_new: u32,
    /// Heard urgent messages.
    pub urgent_old: u32,
}

impl From<MailboxCounts> for MessageSummary {
    fn from(counts: MailboxCounts) -> Self {
        MessageSummary {
            new: counts.new,
            old: counts.heard(),
            urgent_new: counts.urgent_new,
            urgent_old: counts.urgent_old,
        }
    }
}

impl MessageSummary {
    /// Whether the lamp is on: there are unheard messages.
    pub fn messages_waiting(&self) -> bool {
        self.new > 0
    }

    /// The body for `account`, the mailbox's URI (`sip:1001@host`).
    pub fn body(&self, account: &str) -> String {
        let mut body = String::new();
        let waiting = if self.messages_waiting() { "yes" } else { "no" };
        // Writing to a String cannot fail.
        let _ = write!(
            body,
            "Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\n\
             Voice-Message: {}/{} ({}/{})\r\n",
            self.new, self.old, self.urgent_new, self.urgent_old
        );
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_follows_rfc_3842() {
        let summary = MessageSummary {
            new: 2,
            old: 8,
            urgent_new: 0,
            urgent_old: 2,
        };
        assert_eq!(
            summary.body("sip:alice@vmail.example.com"),
            "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
             Voice-Message: 2/8 (0/2)\r\n"
        );
        let heard = MessageSummary {
            old: 3,
            ..MessageSummary::default()
        };
        assert!(!heard.messages_waiting());
        assert!(heard
            .body("sip:1@h")
            .starts_with("Messages-Waiting: no\r\n"));
        assert!(heard
            .body("sip:1@h")
            .ends_with("Voice-Message: 0/3 (0/0)\r\n"));
    }

    #[test]
    fn old_counts_every_heard_message_kept() {
        let counts = MailboxCounts {
            new: 1,
            old: 2,
            saved: 3,
            deleted: 4,
            urgent_new: 0,
            urgent_old: 0,
        };
        let summary = MessageSummary::from(counts);
        assert_eq!((summary.new, summary.old), (1, 5));
    }
}
