//! One incoming call as the UAS sees it: who it is for ([`mailbox`]) and
//! who it is from ([`parties`]), read from the INVITE, and whether it
//! leaves a message or is an owner calling in ([`access`]).

pub mod access;
pub mod mailbox;
pub mod parties;
