//! The vocabulary of the spoken prompts: every recorded clip the menu and
//! the sentence builder can ask for.
//!
//! A clip is named, and its name is the stem of a file in the language's
//! prompt folder (`sip-profiles/prompts/en/<name>.opus`); the words
//! themselves are data (the folder's `manifest.tsv` holds the text each
//! file says, from which `scripts/make-prompts.sh` makes the audio). So
//! another language is another folder with the same names, not code.
//!
//! Numbers are the words a cardinal is built from (zero to nineteen, the
//! tens, "hundred", "thousand"); digit-by-digit reading (caller numbers,
//! mailbox numbers) uses the clips of zero to nine. [`Clip::Pause`] is
//! silence between sentences and has no file.

use std::fmt;

use jiff::civil::Weekday;

/// Pause length rendered for [`Clip::Pause`], in milliseconds: a sentence
/// break, long enough to hear, short enough not to feel like a gap.
pub const PAUSE_MS: u32 = 300;

/// One spoken unit of a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clip {
    /// A fixed word or sentence.
    Phrase(Phrase),
    /// A number word (see [`NumberWord`]).
    Number(NumberWord),
    /// A day of the week.
    Weekday(Weekday),
    /// A month of the year.
    Month(Month),
    /// Silence between two sentences ([`PAUSE_MS`]).
    Pause,
}

impl Clip {
    /// The clip's file stem in a prompt folder; `None` for [`Clip::Pause`].
    pub fn name(self) -> Option<String> {
        Some(match self {
            Clip::Phrase(p) => p.name().to_owned(),
            Clip::Number(n) => format!("number-{}", n.value()),
            Clip::Weekday(d) => weekday_name(d).to_owned(),
            Clip::Month(m) => m.name().to_owned(),
            Clip::Pause => return None,
        })
    }

    /// Every clip that has a file: what a complete prompt folder holds.
    pub fn all() -> Vec<Clip> {
        let mut all: Vec<Clip> = Phrase::ALL.iter().map(|&p| Clip::Phrase(p)).collect();
        all.extend(NumberWord::all().map(Clip::Number));
        all.extend(WEEKDAYS.iter().map(|&d| Clip::Weekday(d)));
        all.extend((1..=12).filter_map(Month::new).map(Clip::Month));
        all
    }
}

impl fmt::Display for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name),
            None => f.write_str("(pause)"),
        }
    }
}

/// A word a cardinal number is spoken with: 0 to 19 and the tens 20 to 90.
/// Only those values can be built, so every `NumberWord` has a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NumberWord(u8);

impl NumberWord {
    /// "zero".
    pub const ZERO: NumberWord = NumberWord(0);

    /// The word for `n`, if `n` is one (0..=19, or a multiple of ten up to 90).
    pub fn new(n: u32) -> Option<NumberWord> {
        let valid = n < 20 || (n < 100 && n.is_multiple_of(10));
        valid.then_some(NumberWord(n as u8))
    }

    /// The number it says.
    pub fn value(self) -> u8 {
        self.0
    }

    /// Every number word.
    pub fn all() -> impl Iterator<Item = NumberWord> {
        (0..20).chain((20..100).step_by(10)).map(NumberWord)
    }
}

/// A month of the year, 1 (January) to 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Month(u8);

impl Month {
    /// Month `n` (1..=12).
    pub fn new(n: i8) -> Option<Month> {
        (1..=12).contains(&n).then_some(Month(n as u8))
    }

    fn name(self) -> &'static str {
        const NAMES: [&str; 12] = [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ];
        NAMES[usize::from(self.0 - 1)]
    }
}

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

/// Declares [`Phrase`] with each variant's file stem, so the list of names
/// cannot drift from the enum.
macro_rules! phrases {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A fixed word or sentence. The manifest of each language says
        /// what each one says; the doc comments give the English.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Phrase {
            $($(#[$doc])* $variant,)*
        }

        impl Phrase {
            /// Every phrase.
            pub const ALL: &'static [Phrase] = &[$(Phrase::$variant,)*];

            /// Its file stem.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Phrase::$variant => $name,)*
                }
            }
        }
    };
}

phrases! {
    // Words that sentences are built from.
    /// "You have"
    YouHave = "you-have",
    /// "new"
    New = "new",
    /// "old"
    Old = "old",
    /// "and"
    And = "and",
    /// "no"
    No = "no",
    /// "message"
    Message = "message",
    /// "messages"
    Messages = "messages",
    /// "Message" (the envelope's first word: "Message 3.")
    MessageNumber = "message-number",
    /// "Received"
    Received = "received",
    /// "at"
    At = "at",
    /// "from"
    From = "from",
    /// "from an unknown caller"
    FromUnknownCaller = "from-unknown-caller",
    /// "oh" (the zero of "nine oh five")
    Oh = "oh",
    /// "hundred"
    Hundred = "hundred",
    /// "thousand"
    Thousand = "thousand",
    /// "A M"
    Am = "am",
    /// "P M"
    Pm = "pm",
    // Login.
    /// "Please enter your mailbox number, then the pound key."
    EnterMailbox = "enter-mailbox",
    /// "Please enter your PIN, then the pound key."
    EnterPin = "enter-pin",
    /// "Login incorrect."
    LoginIncorrect = "login-incorrect",
    /// "Too many failed attempts. Please try again later."
    TooManyAttempts = "too-many-attempts",
    /// "Goodbye."
    Goodbye = "goodbye",
    /// "That is not a valid option."
    InvalidOption = "invalid-option",
    // The main menu.
    /// "Press 1 to listen to your messages, or 0 for mailbox options."
    MainMenu = "main-menu",
    /// The main menu's keys in full, with star and pound.
    MainHelp = "main-help",
    // Listening.
    /// "Press 5 to repeat, 6 for the next message, 7 to delete, 9 to save,
    /// or star for help."
    MessageOptions = "message-options",
    /// Every key of the message menu.
    MessageHelp = "message-help",
    /// "Message deleted."
    MessageDeleted = "message-deleted",
    /// "Message saved."
    MessageSaved = "message-saved",
    /// "There are no more messages."
    NoMoreMessages = "no-more-messages",
    /// "There is no previous message."
    NoPreviousMessage = "no-previous-message",
    // Mailbox options.
    /// The mailbox options menu: 1 unavailable, 2 busy, 4 temporary
    /// greeting, 5 PIN, star to return.
    MailboxOptions = "mailbox-options",
    /// "Your temporary greeting is on. Press 1 to remove it, or 2 to record
    /// a new one."
    TemporaryGreetingOn = "temporary-greeting-on",
    /// "Your temporary greeting has been removed."
    TemporaryGreetingRemoved = "temporary-greeting-removed",
    /// "Record your unavailable greeting after the tone. Press pound when
    /// you are done."
    RecordUnavailable = "record-unavailable",
    /// The same for the busy greeting.
    RecordBusy = "record-busy",
    /// The same for the temporary greeting.
    RecordTemporary = "record-temporary",
    /// "The recording was too short."
    RecordingTooShort = "recording-too-short",
    /// "Press 1 to accept this greeting, 2 to record it again, or star to
    /// cancel."
    ReviewGreeting = "review-greeting",
    /// "Your greeting has been saved."
    GreetingSaved = "greeting-saved",
    /// "Your greeting was not changed."
    GreetingNotChanged = "greeting-not-changed",
    /// "Please enter your new PIN, 4 to 12 digits, then the pound key."
    EnterNewPin = "enter-new-pin",
    /// "Please enter your new PIN again, then the pound key."
    ReenterNewPin = "reenter-new-pin",
    /// "The PINs do not match."
    PinsDiffer = "pins-differ",
    /// "That PIN cannot be used. ..." (the rules of a PIN)
    PinRefused = "pin-refused",
    /// "Your PIN has been changed."
    PinChanged = "pin-changed",
    /// "Your PIN was not changed."
    PinNotChanged = "pin-not-changed",
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_clip_has_a_distinct_file_name() {
        let all = Clip::all();
        let names: HashSet<String> = all.iter().filter_map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.contains("number-0") && names.contains("number-90"));
        assert!(names.contains("monday") && names.contains("december"));
        assert_eq!(Clip::Pause.name(), None);
    }

    #[test]
    fn only_number_words_exist() {
        assert!(NumberWord::new(19).is_some());
        assert!(NumberWord::new(40).is_some());
        assert!(NumberWord::new(41).is_none());
        assert!(NumberWord::new(100).is_none());
        assert_eq!(NumberWord::all().count(), 28);
        assert!(Month::new(0).is_none() && Month::new(13).is_none());
    }
}
