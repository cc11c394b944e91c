//! Message-waiting indication: the `message-summary` event package (RFC
//! 3842) over SIP-specific event notification (RFC 6665).
//!
//! Placeholder module header; completed with the service.

pub mod delivery;
pub mod notifier;
pub mod subscription;
pub mod summary;

#[cfg(test)]
mod notifier_tests;
