//! The structure of one HTML export page: a [`TokenSink`] for html5ever's spec-compliant
//! tokenizer that tracks the open elements and cuts the token stream into
//! [`HtmlBlock`]s, one per `div.message` of `div.history` (format reference, 3.1–3.6).
//!
//! Only the tokenizer of html5ever is used, not its tree builder: tdesktop writes
//! balanced, hand-indented markup, so a stack of open elements (void elements never
//! pushed, an end tag closing up to its nearest open match, stray end tags ignored) gives
//! the same structure without building a DOM, and a block is handed on as soon as its
//! `</div>` is read. Memory is bounded by one block, not by the page.
//!
//! Completeness rule: a page is complete when its `div.history` was closed and an
//! `</html>` end tag was read. A page without `div.history` is not an export page; a page
//! with one that ends early is truncated (see [`PageParser::check_complete`]).

use std::cell::RefCell;
use std::collections::VecDeque;

use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{Tag, TagKind, Token, TokenSink, TokenSinkResult};

use crate::error::ExportError;
use crate::html_media::{classify_in_media, media_capture_target, HtmlMediaBlock};
use crate::html_text::MarkupTextBuilder;

/// Nesting deeper than this is not a tdesktop page (they nest about 12 deep); refusing it
/// bounds memory on hostile input.
const MAX_NESTING_DEPTH: usize = 512;

/// Everything one `div.message` block held, before it is mapped to a message.
#[derive(Debug, Default)]
pub(crate) struct HtmlBlock {
    /// The number of `id="message<N>"`.
    pub(crate) id: i64,
    /// The line where the block starts.
    pub(crate) line: u64,
    pub(crate) is_service: bool,
    pub(crate) is_joined: bool,
    pub(crate) title_date: Option<String>,
    pub(crate) from_name: Option<String>,
    pub(crate) is_forwarded: bool,
    pub(crate) forwarded_from_name: Option<String>,
    pub(crate) forwarded_date_title: Option<String>,
    pub(crate) reply_text: Option<String>,
    pub(crate) reply_href: Option<String>,
    pub(crate) text: Option<MarkupTextBuilder>,
    pub(crate) service_text: Option<MarkupTextBuilder>,
    /// The first link in a service text (the pinned message of `pinned this message`).
    pub(crate) service_link_href: Option<String>,
    /// The new group photo of a service block (`a.userpic_link`).
    pub(crate) service_photo_href: Option<String>,
    pub(crate) signature: Option<String>,
    pub(crate) media: Option<HtmlMediaBlock>,
}

/// What an open element means to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Plain,
    PageHeader,
    History,
    MessageBlock,
    ForwardedBody,
    MediaWrap,
    Poll,
    Pagination,
}

/// Where the character data inside an element goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Capture {
    Nothing,
    HeaderName,
    FromName,
    ForwardedFromName,
    ReplyTo,
    MessageText,
    ServiceText,
    MediaTitle,
    MediaDescription,
    MediaStatus,
    VideoDuration,
    PollQuestion,
    PollDetails,
    PollAnswer,
    PollAnswerDetails,
    PollTotal,
    Signature,
    Pagination,
}

#[derive(Debug)]
struct OpenElement {
    name: String,
    role: Role,
    capture: Capture,
    /// Whether the element was pushed into a text builder, and whether it opened an entity.
    in_markup: bool,
    opened_entity: bool,
}

fn is_void_element(name: &str) -> bool {
    matches!(name, "area" | "base" | "br" | "col" | "embed" | "hr" | "img" | "input" | "link" | "meta" | "source" | "track" | "wbr" | "param")
}

pub(crate) fn attribute<'a>(tag: &'a Tag, name: &str) -> Option<&'a str> {
    tag.attrs.iter().find(|attribute| &*attribute.name.local == name).map(|attribute| &*attribute.value)
}

pub(crate) fn has_class(tag: &Tag, class_name: &str) -> bool {
    attribute(tag, "class").is_some_and(|classes| classes.split_ascii_whitespace().any(|name| name == class_name))
}

/// The state of parsing one page; driven by the tokenizer through [`PageSink`].
#[derive(Debug)]
pub(crate) struct PageParser {
    source_label: String,
    stack: Vec<OpenElement>,
    seen_first_tag: bool,
    seen_history: bool,
    history_closed: bool,
    seen_html_end: bool,
    header_name: Option<String>,
    header_buffer: Option<String>,
    pagination_text: String,
    pagination_href: Option<String>,
    next_page_href: Option<String>,
    block: Option<HtmlBlock>,
    completed: VecDeque<HtmlBlock>,
    error: Option<ExportError>,
    line: u64,
}

impl PageParser {
    pub(crate) fn new(source_label: String) -> PageParser {
        PageParser {
            source_label,
            stack: Vec::new(),
            seen_first_tag: false,
            seen_history: false,
            history_closed: false,
            seen_html_end: false,
            header_name: None,
            header_buffer: None,
            pagination_text: String::new(),
            pagination_href: None,
            next_page_href: None,
            block: None,
            completed: VecDeque::new(),
            error: None,
            line: 1,
        }
    }

    /// Returns the chat name of the page header, trimmed, once it has been read.
    pub(crate) fn header_name(&self) -> Option<&str> {
        self.header_name.as_deref()
    }

    /// Returns the target of the page's `Next messages` link, if it has one.
    pub(crate) fn next_page_href(&self) -> Option<&str> {
        self.next_page_href.as_deref()
    }

    /// Takes the next completed message block.
    pub(crate) fn take_block(&mut self) -> Option<HtmlBlock> {
        self.completed.pop_front()
    }

    /// Returns whether a block has been completed and not yet taken.
    pub(crate) fn has_block(&self) -> bool {
        !self.completed.is_empty()
    }

    /// Takes the first structural error, if one was found.
    pub(crate) fn take_error(&mut self) -> Option<ExportError> {
        self.error.take()
    }

    /// Checks, once the whole page has been tokenized, that it was a complete export page.
    pub(crate) fn check_complete(&self, byte_length: u64) -> Result<(), ExportError> {
        if !self.seen_history {
            return Err(ExportError::UnexpectedStructure {
                source_label: self.source_label.clone(),
                byte_offset: byte_length,
                line: self.line,
                expected: "an html page of a telegram desktop chat export (with div.history)".to_owned(),
                found: "a page without div.history".to_owned(),
            });
        }
        if self.history_closed && self.seen_html_end {
            return Ok(());
        }
        let context = match &self.block {
            Some(block) => format!("inside the block of message {}", block.id),
            None if !self.history_closed => "before div.history is closed".to_owned(),
            None => "before </html>".to_owned(),
        };
        Err(ExportError::Truncated { source_label: self.source_label.clone(), byte_offset: byte_length, line: self.line, context })
    }

    fn fail(&mut self, expected: &str, found: String) {
        if self.error.is_none() {
            self.error = Some(ExportError::UnexpectedStructure {
                source_label: self.source_label.clone(),
                byte_offset: 0,
                line: self.line,
                expected: expected.to_owned(),
                found,
            });
        }
    }

    fn process(&mut self, token: Token, line: u64) -> TokenSinkResult<()> {
        self.line = line;
        if self.error.is_some() {
            return TokenSinkResult::Continue;
        }
        match token {
            Token::TagToken(tag) => {
                self.seen_first_tag = true;
                match tag.kind {
                    TagKind::StartTag => return self.start_tag(&tag),
                    TagKind::EndTag => self.end_tag(&tag),
                }
            }
            Token::CharacterTokens(text) => self.character_data(&text),
            Token::DoctypeToken(_) => self.seen_first_tag = true,
            Token::CommentToken(_) | Token::NullCharacterToken | Token::EOFToken | Token::ParseError(_) => {}
        }
        TokenSinkResult::Continue
    }

    fn current_capture(&self) -> Capture {
        self.stack.last().map_or(Capture::Nothing, |element| element.capture)
    }

    fn is_inside(&self, role: Role) -> bool {
        self.stack.iter().any(|element| element.role == role)
    }

    fn character_data(&mut self, data: &str) {
        if !self.seen_first_tag {
            if let Some(text_start) = data.find(|c: char| !c.is_whitespace()) {
                // The tokenizer reports the line where the text ends; name where it starts.
                let newlines_total = data.matches('\n').count() as u64;
                let newlines_before = data[..text_start].matches('\n').count() as u64;
                self.line = self.line.saturating_sub(newlines_total - newlines_before);
                self.fail("an html page of a telegram desktop chat export", "text before the first tag (not html)".to_owned());
            }
            return;
        }
        let capture = self.current_capture();
        if capture == Capture::HeaderName {
            self.header_buffer.get_or_insert_with(String::new).push_str(data);
            return;
        }
        if capture == Capture::Pagination {
            self.pagination_text.push_str(data);
            return;
        }
        let Some(block) = self.block.as_mut() else {
            return;
        };
        let target: &mut String = match capture {
            Capture::MessageText => {
                block.text.get_or_insert_with(MarkupTextBuilder::default).push_character_data(data);
                return;
            }
            Capture::ServiceText => {
                block.service_text.get_or_insert_with(MarkupTextBuilder::default).push_character_data(data);
                return;
            }
            Capture::FromName => block.from_name.get_or_insert_with(String::new),
            Capture::ForwardedFromName => block.forwarded_from_name.get_or_insert_with(String::new),
            Capture::ReplyTo => block.reply_text.get_or_insert_with(String::new),
            Capture::Signature => block.signature.get_or_insert_with(String::new),
            Capture::Nothing | Capture::HeaderName | Capture::Pagination => return,
            media_capture => {
                let Some(media) = block.media.as_mut() else {
                    return;
                };
                let Some(target) = media_capture_target(media, media_capture) else {
                    return;
                };
                target
            }
        };
        target.push_str(data);
    }

    fn start_tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        let parent_capture = self.current_capture();
        if matches!(parent_capture, Capture::MessageText | Capture::ServiceText) {
            return self.start_tag_in_text(tag, parent_capture);
        }
        if name == "br" {
            return TokenSinkResult::Continue;
        }
        if name == "img" {
            self.image(tag);
            return TokenSinkResult::Continue;
        }
        if is_void_element(name) {
            return TokenSinkResult::Continue;
        }
        let (role, capture) = self.classify_start_tag(tag, parent_capture);
        self.push(tag, role, capture, false, false);
        match name {
            "script" => TokenSinkResult::RawData(RawKind::ScriptData),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" => TokenSinkResult::RawData(RawKind::Rawtext),
            "title" | "textarea" => TokenSinkResult::RawData(RawKind::Rcdata),
            "plaintext" => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }

    fn start_tag_in_text(&mut self, tag: &Tag, capture: Capture) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        let Some(block) = self.block.as_mut() else {
            return TokenSinkResult::Continue;
        };
        if capture == Capture::ServiceText && name == "a" && block.service_link_href.is_none() {
            block.service_link_href = attribute(tag, "href").map(str::to_owned);
        }
        let builder = if capture == Capture::MessageText {
            block.text.get_or_insert_with(MarkupTextBuilder::default)
        } else {
            block.service_text.get_or_insert_with(MarkupTextBuilder::default)
        };
        if name == "br" {
            builder.push_line_break();
            return TokenSinkResult::Continue;
        }
        let attributes: Vec<(&str, &str)> = tag.attrs.iter().map(|attribute| (&*attribute.name.local, &*attribute.value)).collect();
        let opened_entity = builder.open_element(name, &attributes);
        if !is_void_element(name) {
            self.push(tag, Role::Plain, capture, true, opened_entity);
        }
        TokenSinkResult::Continue
    }

    fn push(&mut self, tag: &Tag, role: Role, capture: Capture, in_markup: bool, opened: bool) {
        if self.stack.len() >= MAX_NESTING_DEPTH {
            self.fail("a telegram desktop export page", format!("elements nested deeper than {MAX_NESTING_DEPTH}"));
            return;
        }
        self.stack.push(OpenElement { name: tag.name.to_string(), role, capture, in_markup, opened_entity: opened });
    }

    fn image(&mut self, tag: &Tag) {
        let Some(media) = self.block.as_mut().and_then(|block| block.media.as_mut()) else {
            return;
        };
        let source = attribute(tag, "src").map(str::to_owned);
        if ["video_file", "animated", "thumb"].iter().any(|class_name| has_class(tag, class_name)) {
            media.thumbnail_src = source;
        } else if has_class(tag, "photo") || has_class(tag, "sticker") {
            media.preview_src = source;
        }
    }

    fn classify_start_tag(&mut self, tag: &Tag, parent_capture: Capture) -> (Role, Capture) {
        let name: &str = &tag.name;
        let parent_role = self.stack.last().map(|element| element.role);
        if self.block.is_none() {
            return self.classify_outside_block(tag, parent_role, parent_capture);
        }
        let is_div = name == "div";
        let in_media = self.is_inside(Role::MediaWrap);
        let in_forwarded = self.is_inside(Role::ForwardedBody);
        let Some(block) = self.block.as_mut() else {
            return (Role::Plain, parent_capture);
        };
        if in_media {
            return classify_in_media(tag, parent_role, parent_capture, block);
        }
        if is_div && has_class(tag, "forwarded") && has_class(tag, "body") {
            block.is_forwarded = true;
            return (Role::ForwardedBody, Capture::Nothing);
        }
        if is_div && has_class(tag, "media_wrap") {
            block.media.get_or_insert_with(HtmlMediaBlock::default);
            return (Role::MediaWrap, Capture::Nothing);
        }
        if has_class(tag, "date") && has_class(tag, "details") {
            let title = attribute(tag, "title").map(str::to_owned);
            if name == "span" || in_forwarded {
                block.forwarded_date_title = block.forwarded_date_title.take().or(title);
            } else if block.title_date.is_none() {
                block.title_date = title;
            }
            return (Role::Plain, Capture::Nothing);
        }
        let capture = match name {
            "div" if has_class(tag, "from_name") && in_forwarded => Capture::ForwardedFromName,
            "div" if has_class(tag, "from_name") => Capture::FromName,
            "div" if has_class(tag, "reply_to") => Capture::ReplyTo,
            "div" if has_class(tag, "signature") => Capture::Signature,
            "div" if has_class(tag, "text") && !block.is_service => Capture::MessageText,
            "div" if has_class(tag, "body") && block.is_service && has_class(tag, "details") => Capture::ServiceText,
            "a" if parent_capture == Capture::ReplyTo => {
                block.reply_href = attribute(tag, "href").map(str::to_owned);
                Capture::ReplyTo
            }
            "a" if block.is_service && has_class(tag, "userpic_link") => {
                block.service_photo_href = attribute(tag, "href").map(str::to_owned);
                Capture::Nothing
            }
            _ if matches!(parent_capture, Capture::FromName | Capture::ForwardedFromName) => Capture::Nothing,
            _ => parent_capture,
        };
        (Role::Plain, capture)
    }

    fn classify_outside_block(&mut self, tag: &Tag, parent_role: Option<Role>, parent_capture: Capture) -> (Role, Capture) {
        let name: &str = &tag.name;
        if name == "div" && parent_role == Some(Role::History) && has_class(tag, "message") {
            self.start_block(tag);
            return (Role::MessageBlock, Capture::Nothing);
        }
        if name == "a" && parent_role == Some(Role::History) && has_class(tag, "pagination") {
            self.pagination_text.clear();
            self.pagination_href = attribute(tag, "href").map(str::to_owned);
            return (Role::Pagination, Capture::Pagination);
        }
        if name == "div" && has_class(tag, "history") && !self.seen_history {
            self.seen_history = true;
            return (Role::History, Capture::Nothing);
        }
        if has_class(tag, "page_header") {
            return (Role::PageHeader, Capture::Nothing);
        }
        if name == "div" && has_class(tag, "text") && self.is_inside(Role::PageHeader) && self.header_name.is_none() {
            return (Role::Plain, Capture::HeaderName);
        }
        (Role::Plain, parent_capture)
    }

    fn start_block(&mut self, tag: &Tag) {
        let id_attribute = attribute(tag, "id").unwrap_or("");
        let Some(id) = id_attribute.strip_prefix("message").and_then(|number| number.parse::<i64>().ok()) else {
            self.fail("a message block with id=\"message<number>\"", format!("id {id_attribute:?}"));
            return;
        };
        self.block = Some(HtmlBlock {
            id,
            line: self.line,
            is_service: has_class(tag, "service"),
            is_joined: has_class(tag, "joined"),
            ..HtmlBlock::default()
        });
    }

    fn end_tag(&mut self, tag: &Tag) {
        let name: &str = &tag.name;
        if name == "html" {
            self.seen_html_end = true;
        }
        if name == "br" {
            // `</br>` is read as `<br>` by HTML5 parsers.
            if let Some(block) = self.block.as_mut() {
                match self.stack.last().map(|element| element.capture) {
                    Some(Capture::MessageText) => block.text.get_or_insert_with(MarkupTextBuilder::default).push_line_break(),
                    Some(Capture::ServiceText) => block.service_text.get_or_insert_with(MarkupTextBuilder::default).push_line_break(),
                    _ => {}
                }
            }
            return;
        }
        let Some(position) = self.stack.iter().rposition(|element| element.name == name) else {
            return;
        };
        while self.stack.len() > position {
            let Some(element) = self.stack.pop() else {
                break;
            };
            self.close_element(element);
        }
    }

    fn close_element(&mut self, element: OpenElement) {
        if element.in_markup {
            if let Some(block) = self.block.as_mut() {
                let builder = if element.capture == Capture::MessageText { block.text.as_mut() } else { block.service_text.as_mut() };
                if let Some(builder) = builder {
                    builder.close_element(&element.name, element.opened_entity);
                }
            }
        }
        match element.role {
            Role::MessageBlock => {
                if let Some(block) = self.block.take() {
                    self.completed.push_back(block);
                }
            }
            Role::History => self.history_closed = true,
            Role::Pagination if self.pagination_text.contains("Next") => {
                self.next_page_href = self.pagination_href.take();
            }
            _ => {}
        }
        if element.capture == Capture::HeaderName {
            let name = self.header_buffer.take().unwrap_or_default();
            self.header_name = Some(name.trim().to_owned());
        }
    }
}

/// Feeds html5ever's tokens into a [`PageParser`].
#[derive(Debug)]
pub(crate) struct PageSink {
    pub(crate) parser: RefCell<PageParser>,
}

impl TokenSink for PageSink {
    type Handle = ();

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<()> {
        match self.parser.try_borrow_mut() {
            Ok(mut parser) => parser.process(token, line_number),
            // The reader never holds a borrow while the tokenizer runs.
            Err(_) => TokenSinkResult::Continue,
        }
    }
}
