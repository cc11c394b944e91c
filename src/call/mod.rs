//! One incoming call as the UAS sees it: who it is for ([`mailbox`]) and
//! who it is from ([`parties`]), read from the INVITE.

pub mod mailbox;
pub mod parties;
