//! One `message-summary` subscription as the notifier sees it (RFC 6665
//! §4.2): its mailbox, where it stands, and its stream of NOTIFYs.
//!
//! A subscription is `Active` until it expires, is ended by an unsubscribe
//! (a SUBSCRIBE with `Expires: 0`, §4.1.2.3) or loses its mailbox; it is
//! then `Terminating` until its final NOTIFY, with `Subscription-State:
//! terminated` and the reason (§4.2.2), has been answered or given up on.
//! Its dialog (tags, route set, CSeq) is the I/O layer's and the store's.

use std::time::{Duration, Instant};

use super::delivery::Delivery;

/// Why a subscription ended, as `Subscription-State: terminated;reason=`
/// says it (RFC 6665 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// It expired, or the subscriber unsubscribed (`Expires: 0`).
    Timeout,
    /// Its mailbox is no longer served here; retrying will not help.
    Noresource,
}

impl TerminationReason {
    /// The `reason` token.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Timeout => "timeout",
            TerminationReason::Noresource => "noresource",
        }
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Accepted and current until `expires_at`.
    Active { expires_at: Instant },
    /// Ended; its final NOTIFY is due or in flight.
    Terminating { reason: TerminationReason },
}

/// What a NOTIFY's `Subscription-State` says (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// `active;expires=N`: N seconds are left.
    Active { expires_in: Duration },
    /// `terminated;reason=R`.
    Terminated { reason: TerminationReason },
}

impl SubscriptionStatus {
    /// The header value. `expires` is rounded up, so a subscriber never
    /// refreshes later than it must.
    pub fn header_value(&self) -> String {
        match self {
            SubscriptionStatus::Active { expires_in } => {
                let secs = expires_in.as_secs() + u64::from(expires_in.subsec_nanos() > 0);
                format!("active;expires={secs}")
            }
            SubscriptionStatus::Terminated { reason } => {
                format!("terminated;reason={}", reason.as_str())
            }
        }
    }
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscribed mailbox.
    pub mailbox: String,
    /// Where it stands.
    pub state: SubscriptionState,
    /// Its NOTIFYs.
    pub delivery: Delivery,
}

impl Subscription {
    /// The `Subscription-State` of a NOTIFY sent at `now`.
    pub fn status(&self, now: Instant) -> SubscriptionStatus {
        match self.state {
            SubscriptionState::Active { expires_at } => SubscriptionStatus::Active {
                expires_in: expires_at.saturating_duration_since(now),
            },
            SubscriptionState::Terminating { reason } => SubscriptionStatus::Terminated { reason },
        }
    }

    /// Whether it is still active.
    pub fn is_active(&self) -> bool {
        matches!(self.state, SubscriptionState::Active { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_state_headers() {
        let active = SubscriptionStatus::Active {
            expires_in: Duration::from_millis(3_599_200),
        };
        assert_eq!(active.header_value(), "active;expires=3600");
        let exact = SubscriptionStatus::Active {
            expires_in: Duration::from_secs(60),
        };
        assert_eq!(exact.header_value(), "active;expires=60");
        let ended = SubscriptionStatus::Terminated {
            reason: TerminationReason::Timeout,
        };
        assert_eq!(ended.header_value(), "terminated;reason=timeout");
        let gone = SubscriptionStatus::Terminated {
            reason: TerminationReason::Noresource,
        };
        assert_eq!(gone.header_value(), "terminated;reason=noresource");
    }
}
