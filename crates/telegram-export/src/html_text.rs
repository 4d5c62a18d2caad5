//! Recovers a message's text and its formatted spans from the markup inside an HTML
//! export's `div.text` (format reference, sections 2.6 and 3.7).
//!
//! The page parser ([`crate::html_page`]) pushes the decoded character data, `<br>`s and
//! entity tags of one `div.text` into a [`MarkupTextBuilder`]; [`MarkupTextBuilder::finish`]
//! then removes exactly the formatting whitespace tdesktop writes around the text (one
//! leading `\n`, and the trailing `\n` plus indentation) and returns the text with
//! [`TextEntity`] offsets counted in `char`s, like the JSON reader. Every newline that
//! belongs to a message is written as `<br>`, so raw newlines are formatting.

use serde_json::Map;

use crate::text::{ParsedText, TextEntity, TextEntityKind};

/// Where an entity starts or ends in the text being built.
#[derive(Debug, Clone, Copy, Default)]
struct TextPosition {
    byte: usize,
    char: usize,
}

/// An entity tag that has been opened and not yet closed.
#[derive(Debug)]
struct OpenEntity {
    /// `None` for a link, whose kind is decided from its text when it closes.
    kind: Option<TextEntityKind>,
    href: String,
    onclick: String,
    start: TextPosition,
}

#[derive(Debug)]
struct ClosedEntity {
    kind: TextEntityKind,
    href: Option<String>,
    document_id: Option<String>,
    start: TextPosition,
    end: TextPosition,
}

/// Collects one `div.text` (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct MarkupTextBuilder {
    text: String,
    char_count: usize,
    /// Whether the first thing pushed was a raw (formatting) newline.
    starts_with_raw_newline: bool,
    /// The position of the last raw newline, which may start the trailing formatting.
    last_raw_newline: Option<TextPosition>,
    open_entities: Vec<OpenEntity>,
    closed_entities: Vec<ClosedEntity>,
    /// The inner markup re-serialised, kept in `raw_json` so that nothing is lost.
    markup: String,
}

/// Returns the formatting an element of `div.text` stands for: `Some(None)` for a link
/// (decided when it closes), `None` for elements that are not entities.
fn entity_kind_of_tag(tag_name: &str, class: &str) -> Option<Option<TextEntityKind>> {
    let kind = match tag_name {
        "strong" | "b" => TextEntityKind::Bold,
        "em" | "i" => TextEntityKind::Italic,
        "u" => TextEntityKind::Underline,
        "s" | "del" | "strike" => TextEntityKind::Strikethrough,
        "code" => TextEntityKind::Code,
        "pre" => TextEntityKind::Pre,
        "blockquote" => TextEntityKind::Blockquote,
        "span" if class.split_ascii_whitespace().any(|name| name == "spoiler") => TextEntityKind::Spoiler,
        "a" => return Some(None),
        _ => return None,
    };
    Some(Some(kind))
}

/// Returns a link's path relative to the export root: account exports prefix every link
/// of a chat page with `../../` (format reference, section 1.2).
pub(crate) fn path_relative_to_export_root(href: &str) -> &str {
    let mut path = href;
    while let Some(rest) = path.strip_prefix("../") {
        path = rest;
    }
    path
}

/// Decides what a link in a message text is, from its markup (format reference, 2.6):
/// returns the kind, the `href` kept for `text_link`, and the `document_id` of a custom
/// emoji.
fn classify_link(href: &str, onclick: &str, link_text: &str) -> (TextEntityKind, Option<String>, Option<String>) {
    let onclick_kinds = [
        ("ShowHashtag", TextEntityKind::Hashtag),
        ("ShowBotCommand", TextEntityKind::BotCommand),
        ("ShowCashtag", TextEntityKind::Cashtag),
        ("ShowMentionName", TextEntityKind::MentionName),
    ];
    if let Some((_, kind)) = onclick_kinds.into_iter().find(|(function, _)| onclick.contains(function)) {
        return (kind, None, None);
    }
    if onclick.contains("ShowNotLoadedEmoji") {
        return (TextEntityKind::CustomEmoji, None, Some(String::new()));
    }
    if onclick.contains("ShowNotAvailableEmoji") {
        return (TextEntityKind::CustomEmoji, None, Some("(unavailable)".to_owned()));
    }
    if href == link_text {
        return (TextEntityKind::Link, None, None);
    }
    if href.strip_prefix("mailto:") == Some(link_text) {
        return (TextEntityKind::Email, None, None);
    }
    if href.strip_prefix("tel:") == Some(link_text) {
        return (TextEntityKind::Phone, None, None);
    }
    if let Some(username) = link_text.strip_prefix('@') {
        if !username.is_empty() && href.contains("://") && href.ends_with(username) {
            return (TextEntityKind::Mention, None, None);
        }
    }
    // A custom emoji whose sticker was exported links to the sticker file: a relative path,
    // where every other link of a text carries a scheme.
    if !href.is_empty() && !href.contains(':') {
        let document_id = path_relative_to_export_root(href).to_owned();
        return (TextEntityKind::CustomEmoji, None, Some(document_id));
    }
    (TextEntityKind::TextLink, Some(href.to_owned()), None)
}

fn escape_markup_text(raw: &str, out: &mut String) {
    for character in raw.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            other => out.push(other),
        }
    }
}

impl MarkupTextBuilder {
    fn position(&self) -> TextPosition {
        TextPosition { byte: self.text.len(), char: self.char_count }
    }

    /// Appends decoded character data; raw newlines in it are formatting.
    pub(crate) fn push_character_data(&mut self, data: &str) {
        escape_markup_text(data, &mut self.markup);
        for (index, piece) in data.split('\n').enumerate() {
            if index > 0 {
                if self.text.is_empty() && !self.starts_with_raw_newline {
                    self.starts_with_raw_newline = true;
                }
                self.last_raw_newline = Some(self.position());
                self.text.push('\n');
                self.char_count += 1;
            }
            self.text.push_str(piece);
            self.char_count += piece.chars().count();
        }
    }

    /// Appends a `<br>`: a newline of the message.
    pub(crate) fn push_line_break(&mut self) {
        self.markup.push_str("<br>");
        self.text.push('\n');
        self.char_count += 1;
    }

    /// Records a start tag inside the text; returns whether it opened an entity (then the
    /// caller must call [`MarkupTextBuilder::close_element`] when it ends).
    pub(crate) fn open_element(&mut self, tag_name: &str, attributes: &[(&str, &str)]) -> bool {
        let attribute = |name: &str| attributes.iter().find(|(attribute_name, _)| *attribute_name == name).map_or("", |(_, value)| *value);
        self.markup.push('<');
        self.markup.push_str(tag_name);
        for (name, value) in attributes {
            self.markup.push(' ');
            self.markup.push_str(name);
            self.markup.push_str("=\"");
            escape_markup_text(value, &mut self.markup);
            self.markup.push('"');
        }
        self.markup.push('>');
        let Some(kind) = entity_kind_of_tag(tag_name, attribute("class")) else {
            return false;
        };
        self.open_entities.push(OpenEntity {
            kind,
            href: attribute("href").to_owned(),
            onclick: attribute("onclick").to_owned(),
            start: self.position(),
        });
        true
    }

    /// Records an end tag inside the text, closing the innermost entity when `was_entity`.
    pub(crate) fn close_element(&mut self, tag_name: &str, was_entity: bool) {
        self.markup.push_str("</");
        self.markup.push_str(tag_name);
        self.markup.push('>');
        if !was_entity {
            return;
        }
        let Some(open) = self.open_entities.pop() else {
            return;
        };
        let end = self.position();
        let (kind, href, document_id) = match open.kind {
            Some(kind) => (kind, None, None),
            None => {
                let link_text = self.text.get(open.start.byte..end.byte).unwrap_or("");
                classify_link(&open.href, &open.onclick, link_text)
            }
        };
        self.closed_entities.push(ClosedEntity { kind, href, document_id, start: open.start, end });
    }

    /// Returns the text without the formatting whitespace, its entities in text order, and
    /// the re-serialised inner markup.
    pub(crate) fn finish(mut self) -> (ParsedText, String) {
        // Entities left open by a truncated or odd block end where the text ends.
        while !self.open_entities.is_empty() {
            self.close_element("", true);
        }
        if let Some(newline) = self.last_raw_newline {
            let after_newline = self.text.get(newline.byte + 1..).unwrap_or("");
            if after_newline.bytes().all(|byte| byte == b' ') {
                self.text.truncate(newline.byte);
                self.char_count = newline.char;
            }
        }
        let removed_leading = self.starts_with_raw_newline && self.text.starts_with('\n');
        if removed_leading {
            self.text.remove(0);
            self.char_count = self.char_count.saturating_sub(1);
        }
        let shift = usize::from(removed_leading);
        let text_length = self.text.len();
        let char_count = self.char_count;
        let adjust = |position: TextPosition| TextPosition {
            byte: position.byte.saturating_sub(shift).min(text_length),
            char: position.char.saturating_sub(shift).min(char_count),
        };
        let mut entities: Vec<TextEntity> = self
            .closed_entities
            .into_iter()
            .map(|closed| {
                let (start, end) = (adjust(closed.start), adjust(closed.end));
                TextEntity {
                    kind: closed.kind,
                    text: self.text.get(start.byte..end.byte).unwrap_or("").to_owned(),
                    char_offset: start.char,
                    char_length: end.char.saturating_sub(start.char),
                    href: closed.href,
                    language: None,
                    user_id: None,
                    document_id: closed.document_id,
                    collapsed: None,
                    extra: Map::new(),
                }
            })
            .collect();
        entities.sort_by_key(|entity| entity.char_offset);
        let parsed = ParsedText { text: self.text, entities };
        (parsed, self.markup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(steps: &[&str]) -> ParsedText {
        let mut builder = MarkupTextBuilder::default();
        let mut open_tags: Vec<(String, bool)> = Vec::new();
        for step in steps {
            if *step == "<br>" {
                builder.push_line_break();
            } else if let Some(name) = step.strip_prefix("</") {
                let (tag, was_entity) = open_tags.pop().expect("balanced");
                assert_eq!(format!("{tag}>"), name);
                builder.close_element(&tag, was_entity);
            } else if let Some(tag) = step.strip_prefix('<') {
                let mut words = tag.trim_end_matches('>').splitn(2, ' ');
                let name = words.next().unwrap_or("").to_owned();
                let href = words.next().unwrap_or("");
                let attributes = if href.is_empty() { vec![] } else { vec![("href", href)] };
                let was_entity = builder.open_element(&name, &attributes);
                open_tags.push((name, was_entity));
            } else {
                builder.push_character_data(step);
            }
        }
        builder.finish().0
    }

    #[test]
    fn strips_only_formatting_whitespace() {
        let parsed = build(&["\n  Deploy ", "<strong>", "today", "</strong>", "<br>", "ok \n      "]);
        assert_eq!(parsed.text, "  Deploy today\nok ");
        assert_eq!(parsed.entities.len(), 1);
        let bold = &parsed.entities[0];
        assert_eq!((&bold.kind, bold.char_offset, bold.char_length, bold.text.as_str()), (&TextEntityKind::Bold, 9, 5, "today"));
    }

    #[test]
    fn classifies_links_by_their_markup() {
        let parsed = build(&[
            "\n",
            "<a https://t.me/ann>",
            "@ann",
            "</a>",
            " ",
            "<a https://x.org>",
            "https://x.org",
            "</a>",
            " ",
            "<a https://x.org/plan>",
            "plan",
            "</a>",
            " ",
            "<a ../../chats/chat_01/stickers/sticker.webp>",
            "😆",
            "</a>",
            "\n ",
        ]);
        let kinds: Vec<_> = parsed.entities.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(kinds, [TextEntityKind::Mention, TextEntityKind::Link, TextEntityKind::TextLink, TextEntityKind::CustomEmoji]);
        assert_eq!(parsed.entities[2].href.as_deref(), Some("https://x.org/plan"));
        assert_eq!(parsed.entities[3].document_id.as_deref(), Some("chats/chat_01/stickers/sticker.webp"));
        assert_eq!(parsed.entities[3].char_offset, 24);
    }
}
