//! vmesh: a SIP voicemail application server for IP-PBXs, run as a mesh of
//! per-site peers. The README has the architecture in brief; each module's
//! documentation says what it owns. Dependencies flow one way:
//! `cli` → `voicemail` → (`call`, `media`, `store`, `retrieval`) → (`sip`,
//! `config`).

pub mod audio;
pub mod call;
pub mod cli;
pub mod config;
pub mod media;
pub mod mesh;
pub mod mwi;
pub mod register;
pub mod retrieval;
pub mod sip;
pub mod store;
pub mod voicemail;
