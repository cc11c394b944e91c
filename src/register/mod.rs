//! Registration with PBXs: vmesh as a registered user (RFC 3261 §10).
//!
//! Each `[[register]]` entry of the profile becomes a [`machine::Registration`],
//! a sans-IO state machine that decides when to REGISTER, how to answer a
//! digest challenge ([`authorizer`], RFC 8760), how long to wait after a
//! failure ([`backoff`]) and when to refresh.

pub mod authorizer;
pub mod backoff;
pub mod machine;
