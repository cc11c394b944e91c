//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), both sides.
//!
//! [`client`] answers the 401/407 challenges of a registrar or a PBX (the
//! REGISTER client, unsolicited MWI NOTIFYs); [`server`] challenges and
//! verifies the requests vmesh takes from PBXs (INVITEs). The client's
//! types are re-exported here, as the REGISTER client names them.

pub mod client;
pub mod server;

pub use client::*;
