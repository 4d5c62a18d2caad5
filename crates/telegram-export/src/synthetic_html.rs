//! Writes the synthetic chat of [`crate::synthetic`] as an HTML export folder
//! (`messages.html`, `messages2.html`, ...) in Telegram Desktop's exact layout (format
//! reference, section 3): one space of indentation per open tag with block tags on their
//! own lines, text on its own unindented line, alphabetical attributes, 1000 messages per
//! page with `Next messages` / `Previous messages` links, date separators counting down
//! from -1, joined blocks (same author within 900 s on the same day), forwarded bodies,
//! reply links into earlier pages, tdesktop's escaping (`&apos;`, `&#x0B;`, `<br>`) and
//! generic media blocks for files that were not exported.
//!
//! Both writers draw from the same [`SyntheticChat`], so the JSON and HTML exports of a
//! seed hold the same messages with the same ids, authors, dates and texts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::synthetic::synthetic_chat_name;
use crate::synthetic_model::{
    civil_time_from_unix, CivilTime, SyntheticAction, SyntheticBody, SyntheticChat, SyntheticMedia, SyntheticMessage, SyntheticText,
    EDITED_GROUP_TITLE, FORMATTED_PARTS, FORWARDED_FROM,
};

const MESSAGES_PER_PAGE: u64 = 1000;
const JOIN_WITHIN_SECONDS: i64 = 900;
const MONTH_NAMES: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const NOT_INCLUDED_DESCRIPTION: &str = "Not included, change data exporting settings to download.";

/// Escapes text the way tdesktop's HTML writer does (`SerializeString`).
pub(crate) fn escape_html_like_tdesktop(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len() + 8);
    for character in raw.chars() {
        match character {
            '\n' | '\u{2028}' | '\u{2029}' => escaped.push_str("<br>"),
            '"' => escaped.push_str("&quot;"),
            '&' => escaped.push_str("&amp;"),
            '\'' => escaped.push_str("&apos;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            control if u32::from(control) < 0x20 => {
                escaped.push_str(&format!("&#x{:02X};", u32::from(control)));
            }
            other => escaped.push(other),
        }
    }
    escaped
}

fn page_file_name(page_index: usize) -> String {
    if page_index == 0 {
        "messages.html".to_owned()
    } else {
        format!("messages{}.html", page_index + 1)
    }
}

fn date_title(time: &CivilTime) -> String {
    format!("{:02}.{:02}.{:04} {:02}:{:02}:{:02} UTC+00:00", time.day, time.month, time.year, time.hour, time.minute, time.second)
}

/// The HTML `from_name` of a user: first and last name joined by one space, so a trailing
/// space when there is no last name.
fn composed_user_name(name: Option<&str>) -> String {
    match name {
        None => "Deleted Account".to_owned(),
        Some(name) if name.contains(' ') => name.to_owned(),
        Some(name) => format!("{name} "),
    }
}

fn file_size_text(size: u64) -> String {
    format!("{:.1} KB", size as f64 / 1024.0)
}

/// What the next block needs to know about the previous one on the page.
struct PreviousBlock {
    is_regular: bool,
    author_user_id: u64,
    unix_seconds: i64,
    is_forwarded: bool,
}

struct HtmlPageWriter {
    out: BufWriter<File>,
    open_tags: Vec<&'static str>,
}

impl HtmlPageWriter {
    fn indent(&self) -> String {
        " ".repeat(self.open_tags.len())
    }

    fn open(&mut self, tag: &'static str, attributes: &str) -> io::Result<()> {
        write!(self.out, "\n{}<{tag}{attributes}>\n", self.indent())?;
        self.open_tags.push(tag);
        Ok(())
    }

    fn empty(&mut self, tag: &str, attributes: &str) -> io::Result<()> {
        write!(self.out, "\n{}<{tag}{attributes}/>\n", self.indent())
    }

    fn close(&mut self) -> io::Result<()> {
        let tag = self.open_tags.pop().unwrap_or("div");
        write!(self.out, "\n{}</{tag}>\n", self.indent())
    }

    fn div_with_text(&mut self, class: &str, text: &str) -> io::Result<()> {
        self.open("div", &format!(" class=\"{class}\""))?;
        self.out.write_all(text.as_bytes())?;
        self.close()
    }

    fn write_start(&mut self, chat_name: &str, page_index: usize) -> io::Result<()> {
        self.out.write_all(b"<!DOCTYPE html>")?;
        self.open("html", "")?;
        self.open("head", "")?;
        self.empty("meta", " charset=\"utf-8\"")?;
        self.out.write_all(b"<title>Exported Data</title>")?;
        self.empty("meta", " content=\"width=device-width, initial-scale=1.0\" name=\"viewport\"")?;
        self.empty("link", " href=\"css/style.css\" rel=\"stylesheet\"")?;
        self.open("script", " src=\"js/script.js\" type=\"text/javascript\"")?;
        self.close()?;
        self.close()?;
        self.open("body", " onload=\"CheckLocation();\"")?;
        self.open("div", " class=\"page_wrap\"")?;
        self.open("div", " class=\"page_header\"")?;
        self.open("div", " class=\"content\"")?;
        self.div_with_text("text bold", &escape_html_like_tdesktop(&format!("{chat_name} ")))?;
        self.close()?;
        self.close()?;
        self.open("div", " class=\"page_body chat_page\"")?;
        self.open("div", " class=\"history\"")?;
        if page_index > 0 {
            let previous = page_file_name(page_index - 1);
            self.open("a", &format!(" class=\"pagination block_link\" href=\"{previous}\""))?;
            self.out.write_all(b"Previous messages")?;
            self.close()?;
        }
        Ok(())
    }

    fn write_end(mut self, next_page: Option<&str>) -> io::Result<()> {
        if let Some(next_page) = next_page {
            self.open("a", &format!(" class=\"pagination block_link\" href=\"{next_page}\""))?;
            self.out.write_all(b"Next messages")?;
            self.close()?;
        }
        while !self.open_tags.is_empty() {
            self.close()?;
        }
        self.out.flush()
    }

    fn write_userpic(&mut self, class: &str, name: &str) -> io::Result<()> {
        let initials: String = name.split(' ').filter_map(|word| word.chars().next()).take(2).collect();
        self.open("div", &format!(" class=\"{class}\""))?;
        self.open("div", " class=\"userpic userpic3\" style=\"width: 42px; height: 42px\"")?;
        self.open("div", " class=\"initials\" style=\"line-height: 42px\"")?;
        self.out.write_all(escape_html_like_tdesktop(&initials).as_bytes())?;
        self.close()?;
        self.close()?;
        self.close()
    }

    fn write_service_block(&mut self, html_id: i64, serialized_text: &str) -> io::Result<()> {
        self.open("div", &format!(" class=\"message service\" id=\"message{html_id}\""))?;
        self.div_with_text("body details", serialized_text)?;
        self.close()
    }

    fn write_generic_media(&mut self, class: &str, title: &str, status: &str) -> io::Result<()> {
        self.open("div", " class=\"media_wrap clearfix\"")?;
        self.open("div", &format!(" class=\"media clearfix pull_left {class}\""))?;
        self.open("div", " class=\"fill pull_left\"")?;
        self.close()?;
        self.open("div", " class=\"body\"")?;
        self.div_with_text("title bold", title)?;
        self.div_with_text("description", NOT_INCLUDED_DESCRIPTION)?;
        self.div_with_text("status details", &escape_html_like_tdesktop(status))?;
        self.close()?;
        self.close()?;
        self.close()
    }

    fn write_media(&mut self, media: &SyntheticMedia) -> io::Result<()> {
        match media {
            SyntheticMedia::Photo { number, stamp, .. } => {
                self.open("div", " class=\"media_wrap clearfix\"")?;
                self.open("a", &format!(" class=\"photo_wrap clearfix pull_left\" href=\"photos/photo_{number}@{stamp}.jpg\""))?;
                self.empty(
                    "img",
                    &format!(" class=\"photo\" src=\"photos/photo_{number}@{stamp}_thumb.jpg\" style=\"width: 260px; height: 195px\""),
                )?;
                self.close()?;
                self.close()
            }
            SyntheticMedia::Sticker { file_size } => {
                self.write_generic_media("media_photo", "Sticker", &format!("😆, {}", file_size_text(*file_size)))
            }
            SyntheticMedia::Voice { file_size, duration_seconds, .. } => self.write_generic_media(
                "media_voice_message",
                "Voice message",
                &format!("{:02}:{:02}, {}", duration_seconds / 60, duration_seconds % 60, file_size_text(*file_size)),
            ),
        }
    }
}

fn formatted_text_markup(prefix: &str, part_index: usize) -> String {
    let (entity_type, entity_text, _, extra_value) = FORMATTED_PARTS[part_index];
    let text = escape_html_like_tdesktop(entity_text);
    let entity_markup = match entity_type {
        "bold" => format!("<strong>{text}</strong>"),
        "italic" => format!("<em>{text}</em>"),
        "code" => format!("<code>{text}</code>"),
        "pre" => format!("<pre>{text}</pre>"),
        "mention" => format!("<a href=\"https://t.me/{}\">{text}</a>", text.trim_start_matches('@')),
        _ => format!("<a href=\"{}\">{text}</a>", escape_html_like_tdesktop(extra_value)),
    };
    format!("{}{entity_markup}", escape_html_like_tdesktop(&format!("{prefix} ")))
}

/// Writes the synthetic chat `chat_id` with `message_count` messages for `seed` as HTML
/// pages into `folder` (created if missing): the same messages as
/// [`crate::write_synthetic_export`] writes as JSON for the same arguments.
pub fn write_synthetic_html_export(folder: &Path, chat_id: i64, message_count: u64, seed: u64) -> io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let chat_name = synthetic_chat_name(chat_id);
    let new_page = |page_index: usize| -> io::Result<HtmlPageWriter> {
        let file = File::create(folder.join(page_file_name(page_index)))?;
        let mut page = HtmlPageWriter { out: BufWriter::with_capacity(256 * 1024, file), open_tags: Vec::new() };
        page.write_start(&chat_name, page_index)?;
        Ok(page)
    };
    let mut page_index = 0;
    let mut page = new_page(page_index)?;
    let mut last_id_per_finished_page: Vec<u64> = Vec::new();
    let mut previous: Option<PreviousBlock> = None;
    let mut previous_id = 0;
    let mut next_separator_id: i64 = -1;
    let mut page_message_count = 0;
    for message in SyntheticChat::new(message_count, seed) {
        if page_message_count == MESSAGES_PER_PAGE {
            page.write_end(Some(&page_file_name(page_index + 1)))?;
            last_id_per_finished_page.push(previous_id);
            page_index += 1;
            page = new_page(page_index)?;
            previous = None;
            page_message_count = 0;
        }
        let time = civil_time_from_unix(message.unix_seconds);
        let day_changed = previous.as_ref().is_none_or(|previous| {
            let previous_time = civil_time_from_unix(previous.unix_seconds);
            (previous_time.year, previous_time.month, previous_time.day) != (time.year, time.month, time.day)
        });
        if day_changed {
            let month = MONTH_NAMES[(time.month as usize).saturating_sub(1) % 12];
            let day_text = format!("{} {month} {}", time.day, time.year);
            page.write_service_block(next_separator_id, &day_text)?;
            next_separator_id -= 1;
        }
        let message_link = |message_id: u64, text: &str| match last_id_per_finished_page.iter().position(|last_id| message_id <= *last_id) {
            Some(index) => format!("<a href=\"{}#go_to_message{message_id}\">{text}</a>", page_file_name(index)),
            None => format!("<a href=\"#go_to_message{message_id}\" onclick=\"return GoToMessage({message_id})\">{text}</a>"),
        };
        previous = Some(write_block(&mut page, &message, previous.as_ref(), &time, message_link)?);
        previous_id = message.id;
        page_message_count += 1;
    }
    if message_count == 0 {
        page.write_service_block(next_separator_id, "No exported messages")?;
    }
    page.write_end(None)
}

fn write_block(
    page: &mut HtmlPageWriter,
    message: &SyntheticMessage,
    previous: Option<&PreviousBlock>,
    time: &CivilTime,
    message_link: impl Fn(u64, &str) -> String,
) -> io::Result<PreviousBlock> {
    let SyntheticBody::Regular { author, is_forwarded, reply_to_id, media, text, .. } = &message.body else {
        if let SyntheticBody::Service { actor, action } = &message.body {
            let actor = escape_html_like_tdesktop(actor.0.unwrap_or("Deleted"));
            let service_text = match action {
                SyntheticAction::PinMessage { pinned_id } => {
                    format!("{actor} pinned {}", message_link(*pinned_id, "this message"))
                }
                SyntheticAction::InviteMembers => {
                    format!("{actor} invited Dmitri and Deleted Account")
                }
                SyntheticAction::EditGroupTitle => {
                    format!("{actor} changed group title to &laquo;{}&raquo;", escape_html_like_tdesktop(EDITED_GROUP_TITLE))
                }
                SyntheticAction::JoinGroupByLink => {
                    format!("{actor} joined group by link from Ann Lee")
                }
            };
            page.write_service_block(message.id as i64, &service_text)?;
        }
        return Ok(PreviousBlock { is_regular: false, author_user_id: 0, unix_seconds: message.unix_seconds, is_forwarded: false });
    };
    let (author_name, author_user_id) = *author;
    let join_window = if *is_forwarded { 1 } else { JOIN_WITHIN_SECONDS };
    let is_joined = previous.is_some_and(|previous| {
        let previous_time = civil_time_from_unix(previous.unix_seconds);
        previous.is_regular
            && previous.author_user_id == author_user_id
            && previous.is_forwarded == *is_forwarded
            && (previous_time.year, previous_time.month, previous_time.day) == (time.year, time.month, time.day)
            && (message.unix_seconds - previous.unix_seconds).abs() <= join_window
    });
    let joined_class = if is_joined { " joined" } else { "" };
    page.open("div", &format!(" class=\"message default clearfix{joined_class}\" id=\"message{}\"", message.id))?;
    let composed_name = composed_user_name(author_name);
    if !is_joined {
        page.write_userpic("pull_left userpic_wrap", &composed_name)?;
    }
    page.open("div", " class=\"body\"")?;
    page.open("div", &format!(" class=\"pull_right date details\" title=\"{}\"", date_title(time)))?;
    write!(page.out, "{:02}:{:02}", time.hour, time.minute)?;
    page.close()?;
    if !is_joined {
        page.div_with_text("from_name", &escape_html_like_tdesktop(&composed_name))?;
    }
    if *is_forwarded {
        let original_time = civil_time_from_unix(message.unix_seconds - 86_400);
        page.write_userpic("pull_left forwarded userpic_wrap", FORWARDED_FROM)?;
        page.open("div", " class=\"forwarded body\"")?;
        page.open("div", " class=\"from_name\"")?;
        let title = date_title(&original_time);
        let shown = title.trim_end_matches(" UTC+00:00");
        write!(page.out, "{}<span class=\"date details\" title=\"{title}\"> {shown}</span>", escape_html_like_tdesktop(FORWARDED_FROM))?;
        page.close()?;
    }
    if let Some(replied_id) = reply_to_id {
        page.div_with_text("reply_to details", &format!("In reply to {}", message_link(*replied_id, "this message")))?;
    }
    if let Some(media) = media {
        page.write_media(media)?;
    }
    let markup = match text {
        SyntheticText::Empty => String::new(),
        SyntheticText::Plain(raw_text) => escape_html_like_tdesktop(raw_text),
        SyntheticText::Formatted { prefix, part_index } => formatted_text_markup(prefix, *part_index),
    };
    if !markup.is_empty() {
        page.div_with_text("text", &markup)?;
    }
    if *is_forwarded {
        page.close()?;
    }
    page.close()?;
    page.close()?;
    Ok(PreviousBlock { is_regular: true, author_user_id, unix_seconds: message.unix_seconds, is_forwarded: *is_forwarded })
}
