//! Mailbox PINs: what a PIN may be, and how it is kept.
//!
//! A PIN is 4 to 12 digits, typed on a keypad. New PINs (from the CLI or
//! from the phone menu) must not be trivial: all one digit (`0000`), an
//! ascending or descending run (`1234`, `98765`), or the mailbox number
//! itself; those are the first guesses of anyone trying mailboxes.
//!
//! A PIN is stored only as an argon2id hash (RFC 9106) in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), from the RustCrypto
//! `argon2` crate, with a random 16-byte salt per hash and the parameters
//! OWASP recommends for argon2id: 19 MiB of memory (`m = 19456` KiB),
//! 2 passes (`t = 2`), 1 lane (`p = 1`). That costs tens of milliseconds of
//! one core per check, on purpose: a stolen database gives an attacker at
//! most a few thousand guesses per second per core over a space of at
//! least 10^4. The parameters travel inside each hash, so they can be
//! raised later without invalidating stored PINs.
//!
//! Verification is therefore slow by design: the call path must run
//! [`verify`] on a blocking thread (`tokio::task::spawn_blocking`), never on
//! the runtime's workers. [`verify_or_burn`] spends the same time when a
//! mailbox has no PIN, so the time to answer does not tell a caller which
//! mailboxes exist.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};

/// Fewest digits in a PIN.
pub const MIN_PIN_DIGITS: usize = 4;
/// Most digits in a PIN.
pub const MAX_PIN_DIGITS: usize = 12;

/// argon2id memory cost in KiB (19 MiB).
pub const ARGON2_M_COST: u32 = 19 * 1024;
/// argon2id passes over the memory.
pub const ARGON2_T_COST: u32 = 2;
/// argon2id lanes.
pub const ARGON2_P_COST: u32 = 1;

/// A PIN as typed: 4 to 12 ASCII digits. Its `Debug` form hides the
/// digits, so a PIN never reaches a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Checks the form of a PIN (not whether it is trivial: see
    /// [`check_new_pin`]).
    pub fn parse(text: &str) -> Result<Pin, PinRejection> {
        if !text.chars().all(|c| c.is_ascii_digit()) {
            return Err(PinRejection::NotDigits);
        }
        if !(MIN_PIN_DIGITS..=MAX_PIN_DIGITS).contains(&text.len()) {
            return Err(PinRejection::Length);
        }
        Ok(Pin(text.to_owned()))
    }

    /// The digits.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({} digits)", self.0.len())
    }
}

/// Why a PIN is refused; the messages are what the CLI prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinRejection {
    /// Something other than digits.
    #[error("a PIN is digits only")]
    NotDigits,
    /// Too short or too long.
    #[error("a PIN is {MIN_PIN_DIGITS} to {MAX_PIN_DIGITS} digits")]
    Length,
    /// One digit repeated.
    #[error("a PIN must not be one digit repeated")]
    AllSame,
    /// Each digit one above (or below) the one before.
    #[error("a PIN must not be a run of consecutive digits such as 1234 or 9876")]
    Run,
    /// The mailbox number, which anyone calling the mailbox knows.
    #[error("a PIN must not be the mailbox number")]
    MailboxNumber,
}

/// Checks a new PIN for `mailbox`: its form, then the trivial choices.
pub fn check_new_pin(text: &str, mailbox: &str) -> Result<Pin, PinRejection> {
    let pin = Pin::parse(text)?;
    let bytes = pin.0.as_bytes();
    if bytes.iter().all(|&b| b == bytes[0]) {
        return Err(PinRejection::AllSame);
    }
    let steps: Vec<i16> = bytes
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    if steps.iter().all(|&s| s == 1) || steps.iter().all(|&s| s == -1) {
        return Err(PinRejection::Run);
    }
    if pin.0 == mailbox {
        return Err(PinRejection::MailboxNumber);
    }
    Ok(pin)
}

/// A PIN could not be hashed (the system's random source failed).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the PIN: {0}")]
pub struct HashError(String);

/// The argon2id hasher with vmesh's parameters.
fn hasher() -> Argon2<'static> {
    // The constants are within argon2's limits, so this never falls back;
    // the fallback is the crate's default, which is the same OWASP choice.
    let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a PIN with a fresh random salt, as a PHC string. Slow (tens of
/// milliseconds): run it off any async runtime's workers.
pub fn hash(pin: &Pin) -> Result<String, HashError> {
    hasher()
        .hash_password(pin.0.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `pin` matches the stored `phc` hash. A hash that cannot be
/// parsed matches nothing. Slow by design: call it on a blocking thread.
pub fn verify(pin: &Pin, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        tracing::warn!("stored PIN hash is not a PHC string; refusing the login");
        return false;
    };
    hasher().verify_password(pin.0.as_bytes(), &parsed).is_ok()
}

/// [`verify`] when the mailbox has a PIN; when it has none (or does not
/// exist), the same work against a hash of no PIN, and `false`. Callers
/// then cannot tell the cases apart by timing.
pub fn verify_or_burn(pin: &Pin, phc: Option<&str>) -> bool {
    match phc {
        Some(phc) => verify(pin, phc),
        None => {
            static DECOY: OnceLock<String> = OnceLock::new();
            let decoy = DECOY.get_or_init(|| hash(&Pin("00000000".to_owned())).unwrap_or_default());
            // The decoy's PIN is all zeros, which no stored PIN can be, and
            // the answer is false whatever it says.
            let _ = verify(pin, decoy);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_of_a_pin() {
        assert!(Pin::parse("1357").is_ok());
        assert!(Pin::parse("135792468024").is_ok());
        assert_eq!(Pin::parse("135"), Err(PinRejection::Length));
        assert_eq!(Pin::parse("1357924680241"), Err(PinRejection::Length));
        assert_eq!(Pin::parse("12a4"), Err(PinRejection::NotDigits));
        assert_eq!(Pin::parse(" 1357"), Err(PinRejection::NotDigits));
        assert_eq!(Pin::parse("١٢٣٤"), Err(PinRejection::NotDigits));
        assert_eq!(
            format!("{:?}", Pin::parse("1357").unwrap()),
            "Pin(4 digits)"
        );
    }

    #[test]
    fn trivial_pins_are_refused() {
        assert_eq!(check_new_pin("0000", "1001"), Err(PinRejection::AllSame));
        assert_eq!(check_new_pin("777777", "1001"), Err(PinRejection::AllSame));
        assert_eq!(check_new_pin("1234", "1001"), Err(PinRejection::Run));
        assert_eq!(check_new_pin("3456789", "1001"), Err(PinRejection::Run));
        assert_eq!(check_new_pin("9876", "1001"), Err(PinRejection::Run));
        assert_eq!(
            check_new_pin("1001", "1001"),
            Err(PinRejection::MailboxNumber)
        );
        assert_eq!(check_new_pin("12", "1001"), Err(PinRejection::Length));
        assert!(check_new_pin("1357", "1001").is_ok());
        assert!(check_new_pin("1243", "1001").is_ok());
        assert!(check_new_pin("0123", "1001").is_err());
        assert!(check_new_pin("8901", "1001").is_ok(), "no wrap-around run");
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let pin = Pin::parse("4862").unwrap();
        let a = hash(&pin).unwrap();
        let b = hash(&pin).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!a.contains("4862"));
        assert!(verify(&pin, &a));
        assert!(verify(&pin, &b));
        assert!(!verify(&Pin::parse("4863").unwrap(), &a));
        assert!(!verify(&pin, "not a hash"));
        assert!(!verify_or_burn(&pin, None));
        assert!(verify_or_burn(&pin, Some(&a)));
    }
}
