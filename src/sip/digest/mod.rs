//! SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), both sides.
//!
//! [`algorithm`] is the computation both sides share (the algorithms, their
//! hashes and the request-digest); [`client`] answers the 401/407
//! challenges of a registrar or a PBX (the REGISTER client, unsolicited MWI
//! NOTIFYs); [`server`] challenges and verifies the requests vmesh takes
//! from PBXs (INVITEs). The client's types are re-exported here, as its
//! users name them.

pub mod algorithm;
pub mod client;
pub mod server;

pub use client::*;
