//! Which mailboxes this server is home to, and so may announce.
//!
//! A mailbox's lamp is driven by its home server alone: the counts live
//! there (messages recorded elsewhere travel home first), so a server that
//! is not the home neither accepts subscriptions for the mailbox nor sends
//! unsolicited NOTIFYs for it. With a topology the home is the server the
//! topology names; a server on its own is home to the mailboxes it accepts.

use crate::config::{MailboxSet, Profile, Topology};

/// The home rule of one server, and the `[mwi] mailboxes` that narrow
/// its unsolicited NOTIFYs.
#[derive(Debug, Clone)]
pub struct HomeRule {
    topology: Option<Topology>,
    self_name: String,
    accept: MailboxSet,
    unsolicited: Option<MailboxSet>,
}

impl HomeRule {
    /// The rule a profile gives.
    pub fn of(profile: &Profile) -> HomeRule {
        HomeRule {
            topology: profile.topology.clone(),
            self_name: profile.server.name.clone(),
            accept: profile.mailboxes.clone(),
            unsolicited: profile.mwi.mailboxes.clone(),
        }
    }

    /// Whether this server is `mailbox`'s home.
    pub fn is_home(&self, mailbox: &str) -> bool {
        match &self.topology {
            Some(topology) => topology
                .home_of(mailbox)
                .is_some_and(|home| home.name == self.self_name),
            None => self.accept.contains(mailbox),
        }
    }

    /// The home server's name, when it is another one (for a refusal's
    /// Warning).
    pub fn other_home(&self, mailbox: &str) -> Option<String> {
        self.topology
            .as_ref()
            .and_then(|t| t.home_of(mailbox))
            .filter(|home| home.name != self.self_name)
            .map(|home| home.name.clone())
    }

    /// Whether unsolicited NOTIFYs are sent for `mailbox`.
    pub fn announces(&self, mailbox: &str) -> bool {
        self.is_home(mailbox)
            && self
                .unsolicited
                .as_ref()
                .is_none_or(|set| set.contains(mailbox))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProfileOrigin;

    #[test]
    fn without_a_topology_the_accepted_mailboxes_are_home() {
        let profile = Profile::parse(
            "[mailboxes]\naccept = [\"1000-1999\"]\n[mwi]\nmailboxes = [\"10*\"]\n",
            ProfileOrigin::Embedded,
        )
        .unwrap();
        let home = HomeRule::of(&profile);
        assert!(home.is_home("1500") && !home.is_home("2500"));
        assert!(home.announces("1001") && !home.announces("1500"));
        assert_eq!(home.other_home("1500"), None);
    }

    #[test]
    fn with_a_topology_only_the_named_home_is_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("topology.toml"),
            "[[server]]\nname = \"a\"\nuri = \"sip:127.0.0.11:5060;transport=tcp\"\nmailboxes = [\"1000-1999\"]\ninsecure = true\n\
             [[server]]\nname = \"b\"\nuri = \"sip:127.0.0.12:5060;transport=tcp\"\nmailboxes = [\"2000-2999\"]\ninsecure = true\n",
        )
        .unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[server]\nname = \"a\"\ntopology = \"topology.toml\"\n\
             [sip]\nlisten = [\"udp:127.0.0.11:5060\", \"tcp:127.0.0.11:5060\"]\n",
        )
        .unwrap();
        let home = HomeRule::of(&Profile::load(&path).unwrap());
        assert!(home.is_home("1001") && home.announces("1001"));
        // Accepted (a stand-in for b), but b is its home.
        assert!(!home.is_home("2001") && !home.announces("2001"));
        assert_eq!(home.other_home("2001").as_deref(), Some("b"));
        assert!(!home.is_home("9001"));
    }
}
