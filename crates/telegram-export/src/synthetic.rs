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

use crate::synthetic_model::{
    civil_time_from_unix, SyntheticAction, SyntheticBody, SyntheticChat, SyntheticMedia, SyntheticMessage, SyntheticText, EDITED_GROUP_TITLE,
    FORMATTED_PARTS, FORWARDED_FROM, NOT_INCLUDED,
};

/// Escapes a string the way tdesktop's JSON writer does, including its `\xHH` bug for
/// control characters (format reference, section 2.1).
pub(crate) fn escape_json_like_tdesktop(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len() + 8);
    for character in raw.chars() {
        match character {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            control if u32::from(control) < 0x20 => {
                escaped.push_str(&format!("\\x{:02X}", u32::from(control)));
            }
            other => escaped.push(other),
        }
    }
    escaped
}

struct JsonExportWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonExportWriter<W> {
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
            Some(name) => writeln!(self.out, "   \"{key}\": \"{}\",", escape_json_like_tdesktop(name)),
            None => writeln!(self.out, "   \"{key}\": null,"),
        }
    }

    fn write_service_fields(&mut self, actor: (Option<&str>, u64), action: &SyntheticAction) -> io::Result<()> {
        let (actor_name, actor_user_id) = actor;
        self.write_name_field("actor", actor_name)?;
        writeln!(self.out, "   \"actor_id\": \"user{actor_user_id}\",")?;
        match action {
            SyntheticAction::PinMessage { pinned_id } => writeln!(self.out, "   \"action\": \"pin_message\",\n   \"message_id\": {pinned_id},"),
            SyntheticAction::InviteMembers => {
                self.out.write_all("   \"action\": \"invite_members\",\n   \"members\": [\n    \"Dmitri\",\n    null\n   ],\n".as_bytes())
            }
            SyntheticAction::EditGroupTitle => writeln!(self.out, "   \"action\": \"edit_group_title\",\n   \"title\": \"{EDITED_GROUP_TITLE}\","),
            SyntheticAction::JoinGroupByLink => self.out.write_all(b"   \"action\": \"join_group_by_link\",\n   \"inviter\": \"Ann Lee\",\n"),
        }
    }

    fn write_media_fields(&mut self, media: &SyntheticMedia) -> io::Result<()> {
        match media {
            SyntheticMedia::Photo {
                number,
                stamp,
                file_size,
            } => writeln!(
                self.out,
                "   \"photo\": \"photos/photo_{number}@{stamp}.jpg\",\n   \"photo_file_size\": {file_size},\n   \"width\": 1280,\n   \"height\": 960,"
            ),
            SyntheticMedia::Sticker { file_size } => writeln!(
                self.out,
                "   \"file\": \"{NOT_INCLUDED}\",\n   \"file_name\": \"sticker.webp\",\n   \"file_size\": {file_size},\n   \"thumbnail\": \"{NOT_INCLUDED}\",\n   \"thumbnail_file_size\": 4312,\n   \"media_type\": \"sticker\",\n   \"sticker_emoji\": \"😆\",\n   \"mime_type\": \"image/webp\",\n   \"width\": 512,\n   \"height\": 512,"
            ),
            SyntheticMedia::Voice {
                number,
                stamp,
                file_size,
                duration_seconds,
            } => writeln!(
                self.out,
                "   \"file\": \"{NOT_INCLUDED}\",\n   \"file_name\": \"audio_{number}@{stamp}.ogg\",\n   \"file_size\": {file_size},\n   \"media_type\": \"voice_message\",\n   \"mime_type\": \"audio/ogg\",\n   \"duration_seconds\": {duration_seconds},"
            ),
        }
    }

    fn write_plain_text(&mut self, raw_text: &str) -> io::Result<()> {
        if raw_text.is_empty() {
            return self.out.write_all(b"   \"text\": \"\",\n   \"text_entities\": []\n");
        }
        let text = escape_json_like_tdesktop(raw_text);
        writeln!(
            self.out,
            "   \"text\": \"{text}\",\n   \"text_entities\": [\n    {{\n     \"type\": \"plain\",\n     \"text\": \"{text}\"\n    }}\n   ]"
        )
    }

    fn write_formatted_text(&mut self, raw_prefix: &str, part_index: usize) -> io::Result<()> {
        let prefix = escape_json_like_tdesktop(raw_prefix);
        let (entity_type, entity_text, extra_key, extra_value) = FORMATTED_PARTS[part_index];
        let extra_line = if extra_key.is_empty() { String::new() } else { format!(",\n     \"{extra_key}\": \"{extra_value}\"") };
        // tdesktop appends an empty part when the text has non-ASCII characters and the
        // last entity runs to the end (format reference, section 2.6).
        let has_trailing_empty_part = !raw_prefix.is_ascii() || !entity_text.is_ascii();
        let entity_object = format!("    {{\n     \"type\": \"{entity_type}\",\n     \"text\": \"{entity_text}\"{extra_line}\n    }}");
        write!(self.out, "   \"text\": [\n    \"{prefix} \",\n{entity_object}")?;
        if has_trailing_empty_part {
            self.out.write_all(b",\n    \"\"")?;
        }
        write!(
            self.out,
            "\n   ],\n   \"text_entities\": [\n    {{\n     \"type\": \"plain\",\n     \"text\": \"{prefix} \"\n    }},\n{entity_object}"
        )?;
        if has_trailing_empty_part {
            self.out.write_all(b",\n    {\n     \"type\": \"plain\",\n     \"text\": \"\"\n    }")?;
        }
        self.out.write_all(b"\n   ]\n")
    }

    fn write_message(&mut self, message: &SyntheticMessage) -> io::Result<()> {
        let message_id = message.id;
        let message_type = match message.body {
            SyntheticBody::Service { .. } => "service",
            SyntheticBody::Regular { .. } => "message",
        };
        write!(self.out, "  {{\n   \"id\": {message_id},\n   \"type\": \"{message_type}\",\n")?;
        self.write_iso_date("date", message.unix_seconds)?;
        let SyntheticBody::Regular { edited_unix, author, is_forwarded, reply_to_id, media, text } = &message.body else {
            if let SyntheticBody::Service { actor, action } = &message.body {
                self.write_service_fields(*actor, action)?;
            }
            return self.out.write_all(b"   \"text\": \"\",\n   \"text_entities\": []\n  }");
        };
        if let Some(edited_unix) = edited_unix {
            self.write_iso_date("edited", *edited_unix)?;
        }
        let (author_name, author_user_id) = author;
        self.write_name_field("from", *author_name)?;
        writeln!(self.out, "   \"from_id\": \"user{author_user_id}\",")?;
        if *is_forwarded {
            writeln!(self.out, "   \"forwarded_from\": \"{FORWARDED_FROM}\",")?;
        }
        if let Some(replied_id) = reply_to_id {
            writeln!(self.out, "   \"reply_to_message_id\": {replied_id},")?;
        }
        if let Some(media) = media {
            self.write_media_fields(media)?;
        }
        match text {
            SyntheticText::Empty => self.write_plain_text("")?,
            SyntheticText::Plain(raw_text) => self.write_plain_text(raw_text)?,
            SyntheticText::Formatted { prefix, part_index } => self.write_formatted_text(prefix, *part_index)?,
        }
        self.out.write_all(b"  }")
    }
}

/// Writes a single-chat `result.json` with `message_count` messages for chat `chat_id`,
/// deterministic for a given `seed`, in tdesktop's exact layout (see the module docs).
/// [`crate::write_synthetic_html_export`] writes the same chat as HTML pages.
pub fn write_synthetic_export(writer: impl Write, chat_id: i64, message_count: u64, seed: u64) -> io::Result<()> {
    let mut generator = JsonExportWriter { out: BufWriter::with_capacity(256 * 1024, writer) };
    write!(
        generator.out,
        "{{\n \"name\": \"{}\",\n \"type\": \"private_supergroup\",\n \"id\": {chat_id},\n \"messages\": [",
        synthetic_chat_name(chat_id)
    )?;
    for (message_index, message) in SyntheticChat::new(message_count, seed).enumerate() {
        generator.out.write_all(if message_index == 0 { b"\n" } else { b",\n" })?;
        generator.write_message(&message)?;
    }
    if message_count > 0 {
        generator.out.write_all(b"\n ")?;
    }
    generator.out.write_all(b"]\n}\n")?;
    generator.out.flush()
}

/// Returns the title of the synthetic chat `chat_id`.
pub(crate) fn synthetic_chat_name(chat_id: i64) -> String {
    format!("Synthetic chat {chat_id} — тест")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExportEvent, JsonExportReader, MessageKind, ParseOptions};

    fn generate(message_count: u64, seed: u64) -> Vec<u8> {
        let mut output = Vec::new();
        write_synthetic_export(&mut output, 99, message_count, seed).expect("writing to memory cannot fail");
        output
    }

    #[test]
    fn generated_export_parses_back_to_the_requested_message_count() {
        let output = generate(3000, 7);
        let mut events = JsonExportReader::new(&output[..], "synthetic.json", ParseOptions::default());
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
                ExportEvent::ChatFinished { chat_id, message_count: finished_count } => {
                    assert_eq!((chat_id, finished_count), (99, 3000));
                }
                ExportEvent::ChatStarted(header) => assert_eq!(header.chat_id, 99),
            }
        }
        assert_eq!(message_count, 3000);
        assert!(service_count > 30 && with_media > 100 && with_entities > 100, "{service_count} {with_media} {with_entities}");
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
        let events: Vec<_> = JsonExportReader::new(text.as_bytes(), "empty.json", ParseOptions::default()).collect::<Result<_, _>>().expect("parses");
        assert_eq!(events.len(), 2);
    }
}
