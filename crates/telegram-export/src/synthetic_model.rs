//! The message model behind the synthetic exports: a deterministic stream of
//! [`SyntheticMessage`]s that [`crate::synthetic`] renders as `result.json` and
//! [`crate::synthetic_html`] as `messages*.html`, so both formats describe the same chat
//! message for message.
//!
//! Texts are kept raw (unescaped); each writer escapes them the way tdesktop does for its
//! format.

/// `(display name, user id)`; `None` as name is a deleted account (`"from": null`).
pub(crate) const AUTHORS: [(Option<&str>, u64); 7] = [
    (Some("Ann Lee"), 1001),
    (Some("Борис Петров"), 1002),
    (Some("Carla 🌸"), 1003),
    (Some("Dmitri"), 1004),
    (Some("שרה כהן"), 1005),
    (Some("Eve Adams"), 1006),
    (None, 1007),
];

/// Message texts, raw: quotes, newlines, a control character, backslashes.
pub(crate) const PLAIN_TEXTS: [&str; 12] = [
    "Привет! Как дела?",
    "Deploy is done 🚀",
    "Встреча в 15:00, не опаздывайте 🙏",
    "👩\u{200d}💻 работаю над отчётом",
    "ok",
    "Quote: \"ship it\" — said the lead",
    "line one\nline two\nline three",
    "שלום, מה שלומך? hello מה נשמע",
    "ctrl\u{0B}char from an old client",
    "Sure 👍🏽 see you 🇺🇦",
    "Отчёт за третий квартал готов: выручка выросла на 12%, расходы снизились, \
     подробности в приложенном файле. Вопросы можно задавать в этом чате до пятницы.",
    "C:\\x41\\temp is a path, not an escape",
];

/// `(entity type, text, extra key, extra value)` for formatted parts; values are raw.
pub(crate) const FORMATTED_PARTS: [(&str, &str, &str, &str); 6] = [
    ("bold", "важно", "", ""),
    ("italic", "maybe", "", ""),
    ("text_link", "the plan", "href", "https://example.com/plan?q=1&x=%20"),
    ("mention", "@ann_lee", "", ""),
    ("code", "cargo test", "", ""),
    ("pre", "fn main() {}", "language", "rust"),
];

/// The placeholder written instead of a path for files that were not exported.
pub(crate) const NOT_INCLUDED: &str = "(File not included. Change data exporting settings to download.)";

/// The group title set by the synthetic `edit_group_title` service messages.
pub(crate) const EDITED_GROUP_TITLE: &str = "Команда 🚀 Alpha";

/// The name of the chat the original of every synthetic forward comes from.
pub(crate) const FORWARDED_FROM: &str = "Tech News 📰";

/// A small deterministic random generator (SplitMix64).
#[derive(Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Returns a number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    fn percent_chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A calendar date and time, UTC, from Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CivilTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl CivilTime {
    /// Returns the `DD-MM-YYYY_HH-MM-SS` stamp tdesktop puts in generated file names.
    pub(crate) fn file_name_stamp(&self) -> String {
        format!("{:02}-{:02}-{:04}_{:02}-{:02}-{:02}", self.day, self.month, self.year, self.hour, self.minute, self.second)
    }
}

pub(crate) fn civil_time_from_unix(unix_seconds: i64) -> CivilTime {
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let shifted_days = days + 719_468;
    let era = shifted_days.div_euclid(146_097);
    let day_of_era = shifted_days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    CivilTime {
        year,
        month,
        day,
        hour: (seconds_of_day / 3600) as u32,
        minute: (seconds_of_day / 60 % 60) as u32,
        second: (seconds_of_day % 60) as u32,
    }
}

/// A service action of the synthetic chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntheticAction {
    PinMessage {
        pinned_id: u64,
    },
    /// Invites `Dmitri` and a deleted account.
    InviteMembers,
    /// Renames the group to [`EDITED_GROUP_TITLE`].
    EditGroupTitle,
    /// Joins by a link from `Ann Lee`.
    JoinGroupByLink,
}

/// The media of a synthetic message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntheticMedia {
    /// An exported photo.
    Photo { number: u64, stamp: String, file_size: u64 },
    /// A sticker that was not exported.
    Sticker { file_size: u64 },
    /// A voice message that was not exported.
    Voice { number: u64, stamp: String, file_size: u64, duration_seconds: u64 },
}

/// The text of a synthetic regular message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntheticText {
    Empty,
    Plain(&'static str),
    /// `prefix + " "` unformatted, then the formatted part `FORMATTED_PARTS[part_index]`.
    Formatted {
        prefix: &'static str,
        part_index: usize,
    },
}

/// What a synthetic message is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyntheticBody {
    Service {
        actor: (Option<&'static str>, u64),
        action: SyntheticAction,
    },
    Regular {
        edited_unix: Option<i64>,
        author: (Option<&'static str>, u64),
        is_forwarded: bool,
        reply_to_id: Option<u64>,
        media: Option<SyntheticMedia>,
        text: SyntheticText,
    },
}

/// One message of the synthetic chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntheticMessage {
    pub(crate) id: u64,
    pub(crate) unix_seconds: i64,
    pub(crate) body: SyntheticBody,
}

/// Yields the messages of the synthetic chat for a seed, oldest first: increasing ids with
/// gaps and increasing dates 1 s to 10 min apart.
#[derive(Debug)]
pub(crate) struct SyntheticChat {
    random: SplitMix64,
    next_photo_number: u64,
    next_message_id: u64,
    next_unix_seconds: i64,
    remaining: u64,
}

impl SyntheticChat {
    pub(crate) fn new(message_count: u64, seed: u64) -> SyntheticChat {
        SyntheticChat {
            random: SplitMix64 { state: seed },
            next_photo_number: 0,
            next_message_id: 1,
            next_unix_seconds: 1_600_000_000 + (seed % 10_000_000) as i64,
            remaining: message_count,
        }
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.random.below(choices.len() as u64) as usize]
    }

    fn service_body(&mut self, message_id: u64) -> SyntheticBody {
        let actor = self.pick(&AUTHORS);
        let action = match self.random.below(4) {
            0 => SyntheticAction::PinMessage { pinned_id: message_id.saturating_sub(1 + self.random.below(20)).max(1) },
            1 => SyntheticAction::InviteMembers,
            2 => SyntheticAction::EditGroupTitle,
            _ => SyntheticAction::JoinGroupByLink,
        };
        SyntheticBody::Service { actor, action }
    }

    fn media(&mut self, unix_seconds: i64) -> SyntheticMedia {
        let stamp = civil_time_from_unix(unix_seconds).file_name_stamp();
        self.next_photo_number += 1;
        let number = self.next_photo_number;
        match self.random.below(3) {
            0 => SyntheticMedia::Photo { number, stamp, file_size: 50_000 + self.random.below(200_000) },
            1 => SyntheticMedia::Sticker { file_size: 10_000 + self.random.below(30_000) },
            _ => SyntheticMedia::Voice { number, stamp, file_size: 5_000 + self.random.below(100_000), duration_seconds: 1 + self.random.below(120) },
        }
    }

    fn regular_body(&mut self, message_id: u64, unix_seconds: i64) -> SyntheticBody {
        let edited_unix = if self.random.percent_chance(5) { Some(unix_seconds + 30 + self.random.below(3000) as i64) } else { None };
        let author = self.pick(&AUTHORS);
        let is_forwarded = self.random.percent_chance(3);
        let reply_to_id =
            if message_id > 1 && self.random.percent_chance(15) { Some(message_id - 1 - self.random.below(message_id.min(50) - 1)) } else { None };
        let has_media = self.random.percent_chance(8);
        let media = has_media.then(|| self.media(unix_seconds));
        let text = if has_media && self.random.percent_chance(50) {
            SyntheticText::Empty
        } else if self.random.percent_chance(12) {
            let prefix = self.pick(&PLAIN_TEXTS);
            let part_index = self.random.below(FORMATTED_PARTS.len() as u64) as usize;
            SyntheticText::Formatted { prefix, part_index }
        } else {
            SyntheticText::Plain(self.pick(&PLAIN_TEXTS))
        };
        SyntheticBody::Regular { edited_unix, author, is_forwarded, reply_to_id, media, text }
    }
}

impl Iterator for SyntheticChat {
    type Item = SyntheticMessage;

    fn next(&mut self) -> Option<SyntheticMessage> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let id = self.next_message_id;
        let unix_seconds = self.next_unix_seconds;
        let body = if self.random.percent_chance(4) { self.service_body(id) } else { self.regular_body(id, unix_seconds) };
        // Deleted messages leave gaps in the ids.
        self.next_message_id += if self.random.percent_chance(3) { 2 + self.random.below(3) } else { 1 };
        self.next_unix_seconds += 1 + self.random.below(600) as i64;
        Some(SyntheticMessage { id, unix_seconds, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_matches_known_dates() {
        let time = civil_time_from_unix(1_795_331_730);
        assert_eq!(time, CivilTime { year: 2026, month: 11, day: 22, hour: 7, minute: 15, second: 30 });
        assert_eq!(time.file_name_stamp(), "22-11-2026_07-15-30");
        let time = civil_time_from_unix(951_782_400);
        assert_eq!((time.year, time.month, time.day), (2000, 2, 29));
    }

    #[test]
    fn chat_is_deterministic_and_increasing() {
        let first: Vec<_> = SyntheticChat::new(500, 3).collect();
        assert_eq!(first, SyntheticChat::new(500, 3).collect::<Vec<_>>());
        assert_eq!(first.len(), 500);
        assert!(first.windows(2).all(|pair| pair[0].id < pair[1].id && pair[0].unix_seconds < pair[1].unix_seconds));
    }
}
