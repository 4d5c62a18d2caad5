//! Generates realistic single-chat exports, for benchmarks, crash tests and round-trip
//! tests, in Telegram Desktop's exact layout: one space of indentation per level, the
//! field order of the format reference (section 2.5), raw UTF-8 text (Cyrillic, Hebrew,
//! emoji with ZWJ), tdesktop's `\x0B` escape bug, plain strings mixed with entity arrays
//! (with the trailing `""` quirk), replies, edits, forwards, service messages and media
//! with paths or placeholders, several authors and increasing `date_unixtime`.
//!
//! Output is deterministic for a given seed. Writing goes straight to a `BufWriter` with
//! no intermediate values, so generating a million messages takes seconds.

use std::io::{self, BufWriter, Write};

/// `(display name, user id)`; `None` as name is a deleted account (`"from": null`).
const AUTHORS: [(Option<&str>, u64); 7] = [
    (Some("Ann Lee"), 1001),
    (Some("Борис Петров"), 1002),
    (Some("Carla 🌸"), 1003),
    (Some("Dmitri"), 1004),
    (Some("שרה כהן"), 1005),
    (Some("Eve Adams"), 1006),
    (None, 1007),
];

/// Message texts, already escaped the way tdesktop escapes them.
const PLAIN_TEXTS: [&str; 12] = [
    "Привет! Как дела?",
    "Deploy is done 🚀",
    "Встреча в 15:00, не опаздывайте 🙏",
    "👩\u{200d}💻 работаю над отчётом",
    "ok",
    "Quote: \\\"ship it\\\" — said the lead",
    "line one\\nline two\\nline three",
    "שלום, מה שלומך? hello מה נשמע",
    "ctrl\\x0Bchar from an old client",
    "Sure 👍🏽 see you 🇺🇦",
    "Отчёт за третий квартал готов: выручка выросла на 12%, расходы снизились, \
     подробности в приложенном файле. Вопросы можно задавать в этом чате до пятницы.",
    "C:\\\\x41\\\\temp is a path, not an escape",
];

/// `(entity type, text, extra key and value as JSON)` for formatted parts.
const FORMATTED_PARTS: [(&str, &str, &str); 6] = [
    ("bold", "важно", ""),
    ("italic", "maybe", ""),
    (
        "text_link",
        "the plan",
        "\"href\": \"https://example.com/plan?q=1&x=%20\"",
    ),
    ("mention", "@ann_lee", ""),
    ("code", "cargo test", ""),
    ("pre", "fn main() {}", "\"language\": \"rust\""),
];

const NOT_INCLUDED: &str = "(File not included. Change data exporting settings to download.)";

/// A small deterministic random generator (SplitMix64).
struct SplitMix64 {
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
struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

fn civil_time_from_unix(unix_seconds: i64) -> CivilTime {
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let shifted_days = days + 719_468;
    let era = shifted_days.div_euclid(146_097);
    let day_of_era = shifted_days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
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

struct ExportGenerator<W: Write> {
    out: BufWriter<W>,
    random: SplitMix64,
    next_photo_number: u64,
}

impl<W: Write> ExportGenerator<W> {
    fn write_iso_date(&mut self, key: &str, unix_seconds: i64) -> io::Result<()> {
        let time = civil_time_from_unix(unix_seconds);
        writeln!(
            self.out,
            "   \"{key}\": \"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}\",\n   \"{key}_unixtime\": \"{unix_seconds}\",",
            time.year, time.month, time.day, time.hour, time.minute, time.second
        )
    }

    fn write_name_field(&mut self, key: &str, name: Option<&str>) -> io::Result<()> {
        match name {
            Some(name) => writeln!(self.out, "   \"{key}\": \"{name}\","),
            None => writeln!(self.out, "   \"{key}\": null,"),
        }
    }

    fn write_service_fields(&mut self, message_id: u64) -> io::Result<()> {
        let (actor_name, actor_user_id) = AUTHORS[self.random.below(AUTHORS.len() as u64) as usize];
        self.write_name_field("actor", actor_name)?;
        writeln!(self.out, "   \"actor_id\": \"user{actor_user_id}\",")?;
        match self.random.below(4) {
            0 => {
                let pinned_id = message_id.saturating_sub(1 + self.random.below(20)).max(1);
                writeln!(self.out, "   \"action\": \"pin_message\",\n   \"message_id\": {pinned_id},")
            }
            1 => self.out.write_all(
                "   \"action\": \"invite_members\",\n   \"members\": [\n    \"Dmitri\",\n    null\n   ],\n".as_bytes(),
            ),
            2 => self.out.write_all("   \"action\": \"edit_group_title\",\n   \"title\": \"Команда 🚀 Alpha\",\n".as_bytes()),
            _ => self.out.write_all(b"   \"action\": \"join_group_by_link\",\n   \"inviter\": \"Ann Lee\",\n"),
        }
    }

    fn write_media_fields(&mut self, unix_seconds: i64) -> io::Result<()> {
        let time = civil_time_from_unix(unix_seconds);
        let stamp = format!(
            "{:02}-{:02}-{:04}_{:02}-{:02}-{:02}",
            time.day, time.month, time.year, time.hour, time.minute, time.second
        );
        self.next_photo_number += 1;
        let number = self.next_photo_number;
        match self.random.below(3) {
            0 => writeln!(
                self.out,
                "   \"photo\": \"photos/photo_{number}@{stamp}.jpg\",\n   \"photo_file_size\": {},\n   \"width\": 1280,\n   \"height\": 960,",
                50_000 + self.random.below(200_000)
            ),
            1 => writeln!(
                self.out,
                "   \"file\": \"{NOT_INCLUDED}\",\n   \"file_name\": \"sticker.webp\",\n   \"file_size\": {},\n   \"thumbnail\": \"{NOT_INCLUDED}\",\n   \"thumbnail_file_size\": 4312,\n   \"media_type\": \"sticker\",\n   \"sticker_emoji\": \"😆\",\n   \"mime_type\": \"image/webp\",\n   \"width\": 512,\n   \"height\": 512,",
                10_000 + self.random.below(30_000)
            ),
            _ => writeln!(
                self.out,
                "   \"file\": \"{NOT_INCLUDED}\",\n   \"file_name\": \"audio_{number}@{stamp}.ogg\",\n   \"file_size\": {},\n   \"media_type\": \"voice_message\",\n   \"mime_type\": \"audio/ogg\",\n   \"duration_seconds\": {},",
                5_000 + self.random.below(100_000),
                1 + self.random.below(120)
            ),
        }
    }

    fn write_plain_text(&mut self, text: &str) -> io::Result<()> {
        if text.is_empty() {
            return self
                .out
                .write_all(b"   \"text\": \"\",\n   \"text_entities\": []\n");
        }
        writeln!(
            self.out,
            "   \"text\": \"{text}\",\n   \"text_entities\": [\n    {{\n     \"type\": \"plain\",\n     \"text\": \"{text}\"\n    }}\n   ]"
        )
    }

    fn write_formatted_text(&mut self) -> io::Result<()> {
        let prefix = PLAIN_TEXTS[self.random.below(PLAIN_TEXTS.len() as u64) as usize];
        let (entity_type, entity_text, extra) =
            FORMATTED_PARTS[self.random.below(FORMATTED_PARTS.len() as u64) as usize];
        let extra_line = if extra.is_empty() {
            String::new()
        } else {
            format!(",\n     {extra}")
        };
        // tdesktop appends an empty part when the text has non-ASCII characters and the
        // last entity runs to the end (format reference, section 2.6).
        let has_trailing_empty_part = !prefix.is_ascii() || !entity_text.is_ascii();
        let entity_object = format!(
            "    {{\n     \"type\": \"{entity_type}\",\n     \"text\": \"{entity_text}\"{extra_line}\n    }}"
        );
        write!(
            self.out,
            "   \"text\": [\n    \"{prefix} \",\n{entity_object}"
        )?;
        if has_trailing_empty_part {
            self.out.write_all(b",\n    \"\"")?;
        }
        write!(
            self.out,
            "\n   ],\n   \"text_entities\": [\n    {{\n     \"type\": \"plain\",\n     \"text\": \"{prefix} \"\n    }},\n{entity_object}"
        )?;
        if has_trailing_empty_part {
            self.out
                .write_all(b",\n    {\n     \"type\": \"plain\",\n     \"text\": \"\"\n    }")?;
        }
        self.out.write_all(b"\n   ]\n")
    }

    fn write_message(&mut self, message_id: u64, unix_seconds: i64) -> io::Result<()> {
        let is_service = self.random.percent_chance(4);
        let message_type = if is_service { "service" } else { "message" };
        write!(
            self.out,
            "  {{\n   \"id\": {message_id},\n   \"type\": \"{message_type}\",\n"
        )?;
        self.write_iso_date("date", unix_seconds)?;
        if is_service {
            self.write_service_fields(message_id)?;
            return self
                .out
                .write_all(b"   \"text\": \"\",\n   \"text_entities\": []\n  }");
        }
        if self.random.percent_chance(5) {
            let edit_delay = 30 + self.random.below(3000) as i64;
            self.write_iso_date("edited", unix_seconds + edit_delay)?;
        }
        let (author_name, author_user_id) =
            AUTHORS[self.random.below(AUTHORS.len() as u64) as usize];
        self.write_name_field("from", author_name)?;
        writeln!(self.out, "   \"from_id\": \"user{author_user_id}\",")?;
        if self.random.percent_chance(3) {
            self.out
                .write_all("   \"forwarded_from\": \"Tech News 📰\",\n".as_bytes())?;
        }
        if message_id > 1 && self.random.percent_chance(15) {
            let replied_id = message_id - 1 - self.random.below(message_id.min(50) - 1);
            writeln!(self.out, "   \"reply_to_message_id\": {replied_id},")?;
        }
        let has_media = self.random.percent_chance(8);
        if has_media {
            self.write_media_fields(unix_seconds)?;
        }
        if has_media && self.random.percent_chance(50) {
            self.write_plain_text("")?;
        } else if self.random.percent_chance(12) {
            self.write_formatted_text()?;
        } else {
            let text = PLAIN_TEXTS[self.random.below(PLAIN_TEXTS.len() as u64) as usize];
            self.write_plain_text(text)?;
        }
        self.out.write_all(b"  }")
    }
}

/// Writes a single-chat `result.json` with `message_count` messages for chat `chat_id`,
/// deterministic for a given `seed`, in tdesktop's exact layout (see the module docs).
pub fn write_synthetic_export(
    writer: impl Write,
    chat_id: i64,
    message_count: u64,
    seed: u64,
) -> io::Result<()> {
    let mut generator = ExportGenerator {
        out: BufWriter::with_capacity(256 * 1024, writer),
        random: SplitMix64 { state: seed },
        next_photo_number: 0,
    };
    write!(
        generator.out,
        "{{\n \"name\": \"Synthetic chat {chat_id} — тест\",\n \"type\": \"private_supergroup\",\n \"id\": {chat_id},\n \"messages\": ["
    )?;
    let mut message_id: u64 = 1;
    let mut unix_seconds: i64 = 1_600_000_000 + (seed % 10_000_000) as i64;
    for message_index in 0..message_count {
        generator
            .out
            .write_all(if message_index == 0 { b"\n" } else { b",\n" })?;
        generator.write_message(message_id, unix_seconds)?;
        // Deleted messages leave gaps in the ids.
        message_id += if generator.random.percent_chance(3) {
            2 + generator.random.below(3)
        } else {
            1
        };
        unix_seconds += 1 + generator.random.below(600) as i64;
    }
    if message_count > 0 {
        generator.out.write_all(b"\n ")?;
    }
    generator.out.write_all(b"]\n}\n")?;
    generator.out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExportEvent, JsonExportReader, MessageKind, ParseOptions};

    fn generate(message_count: u64, seed: u64) -> Vec<u8> {
        let mut output = Vec::new();
        write_synthetic_export(&mut output, 99, message_count, seed)
            .expect("writing to memory cannot fail");
        output
    }

    #[test]
    fn civil_time_matches_known_dates() {
        let time = civil_time_from_unix(1_795_331_730);
        assert_eq!(
            (
                time.year,
                time.month,
                time.day,
                time.hour,
                time.minute,
                time.second
            ),
            (2026, 11, 22, 7, 15, 30)
        );
        let time = civil_time_from_unix(951_782_400);
        assert_eq!((time.year, time.month, time.day), (2000, 2, 29));
    }

    #[test]
    fn generated_export_parses_back_to_the_requested_message_count() {
        let output = generate(3000, 7);
        let mut events =
            JsonExportReader::new(&output[..], "synthetic.json", ParseOptions::default());
        let mut message_count = 0;
        let mut last_date = i64::MIN;
        let mut last_id = 0;
        let mut service_count = 0;
        let mut with_media = 0;
        let mut with_entities = 0;
        while let Some(event) = events.next_event().expect("generated export parses") {
            match event {
                ExportEvent::Message(message) => {
                    message_count += 1;
                    assert!(message.warnings.is_empty(), "{:?}", message.warnings);
                    let date = message.date_unix.expect("every message has a date");
                    assert!(date > last_date && message.id > last_id);
                    (last_date, last_id) = (date, message.id);
                    service_count += usize::from(message.kind == MessageKind::Service);
                    with_media += usize::from(message.media.is_some());
                    with_entities += usize::from(!message.entities.is_empty());
                }
                ExportEvent::ChatFinished {
                    chat_id,
                    message_count: finished_count,
                } => {
                    assert_eq!((chat_id, finished_count), (99, 3000));
                }
                ExportEvent::ChatStarted(header) => assert_eq!(header.chat_id, 99),
            }
        }
        assert_eq!(message_count, 3000);
        assert!(
            service_count > 30 && with_media > 100 && with_entities > 100,
            "{service_count} {with_media} {with_entities}"
        );
    }

    #[test]
    fn generated_export_uses_tdesktop_layout_and_is_deterministic() {
        let output = generate(50, 1);
        assert_eq!(output, generate(50, 1));
        assert_ne!(output, generate(50, 2));
        let text = String::from_utf8(output).expect("utf-8");
        assert!(text.starts_with("{\n \"name\": \"Synthetic chat 99 — тест\",\n \"type\": \"private_supergroup\",\n \"id\": 99,\n \"messages\": [\n  {\n   \"id\": 1,\n   \"type\": "));
        assert!(text.ends_with("\n  }\n ]\n}\n"));
    }

    #[test]
    fn empty_export_has_an_empty_messages_array() {
        let text = String::from_utf8(generate(0, 3)).expect("utf-8");
        assert!(text.ends_with("\"messages\": []\n}\n"), "{text}");
        let events: Vec<_> =
            JsonExportReader::new(text.as_bytes(), "empty.json", ParseOptions::default())
                .collect::<Result<_, _>>()
                .expect("parses");
        assert_eq!(events.len(), 2);
    }
}
