//! [`JsonExportReader`]: streams the chats and messages of a Telegram Desktop `result.json`
//! as [`ExportEvent`]s, one message at a time.
//!
//! Both shapes of the file are read (format reference, sections 2.2 and 2.3):
//! - a single chat: a top-level object with `name`, `type`, `id` and `messages`;
//! - a whole account: a top-level object with optional sections (`about`,
//!   `personal_information`, `contacts`, `sessions`, ...) and `chats` / `left_chats`, each
//!   `{about, list: [chat, ...]}` where every chat has the single-chat shape.
//!
//! Sections other than the chats are skipped token by token without building values
//! (`personal_information` is kept, see [`JsonExportReader::personal_information`]), so
//! memory stays bounded by the size of one message. Because nothing is buffered, a chat
//! must give its `id` before its `messages`, as tdesktop always writes it.

use std::io::BufRead;

use serde_json::Value;

use crate::error::ExportError;
use crate::field_reader::{read_message_fields, MessageFields};
use crate::lexer::{JsonLexer, TextPosition, Token, TokenKind};
use crate::message::{Message, ParseOptions};

/// Describes one chat, sent before its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHeader {
    /// The chat's `id` as written: the bare user, group or channel id in exports since
    /// v2.7.2 (older exports wrote tdesktop's internal 64-bit peer id).
    pub chat_id: i64,
    /// The chat's title or the other user's first name; `None` when `null` or absent.
    pub name: Option<String>,
    /// The chat `type`, e.g. `personal_chat` or `private_supergroup` (`""` if absent).
    pub chat_type: String,
    /// Whether the chat comes from `left_chats` (groups and channels the user left).
    pub left: bool,
    /// The chat's position in the file, counting from 0 over `chats` then `left_chats`;
    /// in an account export its media folder is `chats/chat_<index_in_export + 1>`
    /// (zero-padded).
    pub index_in_export: u32,
}

/// One step of reading an export.
// Messages are moved once per event; boxing them would cost an allocation per message and
// make matching on events clumsier for callers, for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ExportEvent {
    /// A chat begins; its messages follow.
    ChatStarted(ChatHeader),
    /// One message of the current chat, in file order.
    Message(Message),
    /// The current chat is complete.
    ChatFinished {
        /// The chat's id, as in [`ChatHeader::chat_id`].
        chat_id: i64,
        /// How many messages the chat had.
        message_count: u64,
    },
}

/// A chat object being read: the top-level object of a single-chat export (which is also
/// where account sections appear) or one element of a chat list.
#[derive(Debug)]
struct ChatFrame {
    is_top_level: bool,
    left: bool,
    keys_seen: bool,
    name: Option<String>,
    chat_type: Option<String>,
    chat_id: Option<i64>,
    index_in_export: u32,
    started: bool,
    message_count: u64,
}

impl ChatFrame {
    fn new(is_top_level: bool, left: bool, index_in_export: u32) -> ChatFrame {
        ChatFrame {
            is_top_level,
            left,
            keys_seen: false,
            name: None,
            chat_type: None,
            chat_id: None,
            index_in_export,
            started: false,
            message_count: 0,
        }
    }

    fn header(&self, chat_id: i64) -> ChatHeader {
        ChatHeader {
            chat_id,
            name: self.name.clone(),
            chat_type: self.chat_type.clone().unwrap_or_default(),
            left: self.left,
            index_in_export: self.index_in_export,
        }
    }
}

/// Where the reader is inside the nesting of the file.
#[derive(Debug)]
enum Frame {
    Chat(ChatFrame),
    /// Inside `"chats": {...}` or `"left_chats": {...}`.
    ChatSection {
        left: bool,
        keys_seen: bool,
    },
    /// Inside `"list": [...]` of a chat section.
    ChatList {
        left: bool,
        elements_seen: bool,
    },
    /// Inside `"messages": [...]` of the chat frame below.
    Messages {
        elements_seen: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderPhase {
    BeforeTopLevel,
    InsideTopLevel,
    AfterTopLevel,
    Finished,
}

/// The keys of a chat object the reader acts on.
enum ChatKey {
    Name,
    Type,
    Id,
    Messages,
    ChatSection { left: bool },
    PersonalInformation,
    Other,
}

fn section_name(left: bool) -> &'static str {
    if left {
        "left_chats"
    } else {
        "chats"
    }
}

/// Streams [`ExportEvent`]s out of a `result.json`, in file order.
#[derive(Debug)]
pub struct JsonExportReader<R> {
    lexer: JsonLexer<R>,
    options: ParseOptions,
    frames: Vec<Frame>,
    phase: ReaderPhase,
    next_chat_index: u32,
    personal_information: Option<Value>,
    pending_event: Option<ExportEvent>,
    /// Reused for every message, so its allocation is made once.
    message_fields: MessageFields,
}

impl<R: BufRead> JsonExportReader<R> {
    /// Creates a reader; `source_label` names the input in errors (e.g. `result.json`).
    pub fn new(reader: R, source_label: impl Into<String>, options: ParseOptions) -> Self {
        JsonExportReader {
            lexer: JsonLexer::new(reader, source_label),
            options,
            frames: Vec::new(),
            phase: ReaderPhase::BeforeTopLevel,
            next_chat_index: 0,
            personal_information: None,
            pending_event: None,
            message_fields: MessageFields::default(),
        }
    }

    /// Returns how many bytes of the input have been consumed, for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.lexer.bytes_read()
    }

    /// Returns the `personal_information` section of an account export, once it has been
    /// read (it comes before the chats).
    pub fn personal_information(&self) -> Option<&Value> {
        self.personal_information.as_ref()
    }

    /// Returns the name of the input used in errors.
    pub fn source_label(&self) -> &str {
        self.lexer.source_label()
    }

    /// Returns the next event, or `None` when the whole file has been read and checked.
    /// After an error the reader is finished and returns `None`.
    pub fn next_event(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        if let Some(event) = self.pending_event.take() {
            return Ok(Some(event));
        }
        let result = self.advance_to_next_event();
        if result.is_err() {
            self.phase = ReaderPhase::Finished;
            self.frames.clear();
        }
        result
    }

    fn advance_to_next_event(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        loop {
            match self.phase {
                ReaderPhase::Finished => return Ok(None),
                ReaderPhase::BeforeTopLevel => {
                    self.read_top_level_start()?;
                    continue;
                }
                ReaderPhase::AfterTopLevel => {
                    self.check_end_of_input()?;
                    return Ok(None);
                }
                ReaderPhase::InsideTopLevel => {}
            }
            let event = match self.frames.last_mut() {
                Some(Frame::Chat(_)) => self.advance_in_chat()?,
                Some(Frame::ChatSection { .. }) => self.advance_in_chat_section()?,
                Some(Frame::ChatList { .. }) => self.advance_in_chat_list()?,
                Some(Frame::Messages { .. }) => self.advance_in_messages()?,
                None => {
                    self.phase = ReaderPhase::AfterTopLevel;
                    None
                }
            };
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    fn read_top_level_start(&mut self) -> Result<(), ExportError> {
        let token = self.lexer.next_token()?;
        match token.kind {
            TokenKind::ObjectStart => {
                self.frames.push(Frame::Chat(ChatFrame::new(true, false, 0)));
                self.phase = ReaderPhase::InsideTopLevel;
                Ok(())
            }
            TokenKind::EndOfInput => Err(self.lexer.truncated_error("before the top-level object")),
            other => Err(self.lexer.unexpected_structure_error(token.position, "an object at the top level", other.describe())),
        }
    }

    fn check_end_of_input(&mut self) -> Result<(), ExportError> {
        let token = self.lexer.next_token()?;
        if token.kind != TokenKind::EndOfInput {
            return Err(self.lexer.malformed_error(
                token.position,
                format!("expected the end of the file after the top-level object, found {}", token.kind.describe()),
            ));
        }
        self.phase = ReaderPhase::Finished;
        Ok(())
    }

    fn current_chat(&mut self) -> Option<&mut ChatFrame> {
        self.frames.iter_mut().rev().find_map(|frame| match frame {
            Frame::Chat(chat) => Some(chat),
            _ => None,
        })
    }

    fn classify_chat_key(&self, is_top_level: bool) -> ChatKey {
        match self.lexer.string_value() {
            "name" => ChatKey::Name,
            "type" => ChatKey::Type,
            "id" => ChatKey::Id,
            "messages" => ChatKey::Messages,
            "chats" if is_top_level => ChatKey::ChatSection { left: false },
            "left_chats" if is_top_level => ChatKey::ChatSection { left: true },
            "personal_information" if is_top_level => ChatKey::PersonalInformation,
            _ => ChatKey::Other,
        }
    }

    fn advance_in_chat(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        let Some(Frame::Chat(chat)) = self.frames.last_mut() else {
            return Ok(None);
        };
        let is_first_key = !chat.keys_seen;
        let is_top_level = chat.is_top_level;
        chat.keys_seen = true;
        if self.lexer.next_object_key(is_first_key)?.is_none() {
            let end_position = self.lexer.position();
            return self.finish_chat_object(end_position);
        }
        let key = self.classify_chat_key(is_top_level);
        let value_token = self.lexer.next_member_value()?;
        let value_position = value_token.position;
        match key {
            ChatKey::Name => {
                let name = match value_token.kind {
                    TokenKind::String => Some(self.lexer.take_string_value()),
                    TokenKind::Null => None,
                    other => {
                        return Err(self.unexpected(value_position, "a string or null for the chat \"name\"", other));
                    }
                };
                self.with_current_chat(|chat| chat.name = name);
            }
            ChatKey::Type => {
                if value_token.kind != TokenKind::String {
                    return Err(self.unexpected(value_position, "a string for the chat \"type\"", value_token.kind));
                }
                let chat_type = self.lexer.take_string_value();
                self.with_current_chat(|chat| chat.chat_type = Some(chat_type));
            }
            ChatKey::Id => {
                let chat_id = match value_token.kind {
                    TokenKind::Number(number) => number.as_i64(),
                    _ => None,
                };
                let Some(chat_id) = chat_id else {
                    return Err(self.unexpected(value_position, "an integer for the chat \"id\"", value_token.kind));
                };
                self.with_current_chat(|chat| chat.chat_id = Some(chat_id));
            }
            ChatKey::Messages => return self.start_messages(value_token),
            ChatKey::ChatSection { left } => {
                if value_token.kind != TokenKind::ObjectStart {
                    let expected = format!("an object for \"{}\"", section_name(left));
                    return Err(self.unexpected(value_position, &expected, value_token.kind));
                }
                self.frames.push(Frame::ChatSection { left, keys_seen: false });
            }
            ChatKey::PersonalInformation => {
                self.personal_information = Some(self.lexer.read_value(value_token)?);
            }
            ChatKey::Other => self.lexer.skip_value(value_token)?,
        }
        Ok(None)
    }

    fn with_current_chat(&mut self, update: impl FnOnce(&mut ChatFrame)) {
        if let Some(Frame::Chat(chat)) = self.frames.last_mut() {
            update(chat);
        }
    }

    fn unexpected(&self, position: TextPosition, expected: &str, found: TokenKind) -> ExportError {
        if found == TokenKind::EndOfInput {
            return self.lexer.truncated_error(&format!("where {expected} was expected"));
        }
        self.lexer.unexpected_structure_error(position, expected, found.describe())
    }

    fn start_messages(&mut self, value_token: Token) -> Result<Option<ExportEvent>, ExportError> {
        if value_token.kind != TokenKind::ArrayStart {
            return Err(self.unexpected(value_token.position, "an array for \"messages\"", value_token.kind));
        }
        let Some(Frame::Chat(chat)) = self.frames.last_mut() else {
            return Ok(None);
        };
        let Some(chat_id) = chat.chat_id else {
            let position = value_token.position;
            return Err(ExportError::UnsupportedLayout {
                source_label: self.lexer.source_label().to_owned(),
                byte_offset: position.byte_offset,
                line: position.line,
                detail: "the chat's \"messages\" come before its \"id\"; the streaming reader needs the \"id\" first, as telegram desktop writes it"
                    .to_owned(),
            });
        };
        let event = if chat.started {
            None
        } else {
            chat.started = true;
            Some(ExportEvent::ChatStarted(chat.header(chat_id)))
        };
        self.frames.push(Frame::Messages { elements_seen: false });
        Ok(event)
    }

    fn finish_chat_object(&mut self, end_position: TextPosition) -> Result<Option<ExportEvent>, ExportError> {
        let Some(Frame::Chat(chat)) = self.frames.pop() else {
            return Ok(None);
        };
        if chat.started {
            let chat_id = chat.chat_id.unwrap_or_default();
            return Ok(Some(ExportEvent::ChatFinished { chat_id, message_count: chat.message_count }));
        }
        if chat.is_top_level {
            // An account export, or a top-level object without messages: no chat of its own.
            return Ok(None);
        }
        let Some(chat_id) = chat.chat_id else {
            return Err(self.lexer.unexpected_structure_error(
                end_position,
                format!("an \"id\" in every chat of \"{}.list\"", section_name(chat.left)),
                "a chat without one",
            ));
        };
        // A chat without a "messages" key still exists: report it as an empty chat.
        self.pending_event = Some(ExportEvent::ChatFinished { chat_id, message_count: 0 });
        Ok(Some(ExportEvent::ChatStarted(chat.header(chat_id))))
    }

    fn advance_in_chat_section(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        let Some(Frame::ChatSection { left, keys_seen }) = self.frames.last_mut() else {
            return Ok(None);
        };
        let left = *left;
        let is_first_key = !*keys_seen;
        *keys_seen = true;
        if self.lexer.next_object_key(is_first_key)?.is_none() {
            self.frames.pop();
            return Ok(None);
        }
        let is_list = self.lexer.string_value() == "list";
        let value_token = self.lexer.next_member_value()?;
        if !is_list {
            self.lexer.skip_value(value_token)?;
            return Ok(None);
        }
        if value_token.kind != TokenKind::ArrayStart {
            let expected = format!("an array for \"{}.list\"", section_name(left));
            return Err(self.unexpected(value_token.position, &expected, value_token.kind));
        }
        self.frames.push(Frame::ChatList { left, elements_seen: false });
        Ok(None)
    }

    fn advance_in_chat_list(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        let Some(Frame::ChatList { left, elements_seen }) = self.frames.last_mut() else {
            return Ok(None);
        };
        let left = *left;
        let is_first_element = !*elements_seen;
        *elements_seen = true;
        let Some(element_token) = self.lexer.next_array_element(is_first_element)? else {
            self.frames.pop();
            return Ok(None);
        };
        if element_token.kind != TokenKind::ObjectStart {
            let expected = format!("an object for a chat in \"{}.list\"", section_name(left));
            return Err(self.unexpected(element_token.position, &expected, element_token.kind));
        }
        let index_in_export = self.next_chat_index;
        self.next_chat_index = self.next_chat_index.saturating_add(1);
        self.frames.push(Frame::Chat(ChatFrame::new(false, left, index_in_export)));
        Ok(None)
    }

    fn advance_in_messages(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        let Some(Frame::Messages { elements_seen }) = self.frames.last_mut() else {
            return Ok(None);
        };
        let is_first_element = !*elements_seen;
        *elements_seen = true;
        let Some(element_token) = self.lexer.next_array_element(is_first_element)? else {
            self.frames.pop();
            return Ok(None);
        };
        if element_token.kind != TokenKind::ObjectStart {
            return Err(self.unexpected(element_token.position, "an object for a message in \"messages\"", element_token.kind));
        }
        // The message's compact JSON is recorded while it is parsed, which is much cheaper
        // than serialising a built value again; only the fields the mapping reads are built.
        self.lexer.start_compact_capture(element_token);
        let read_result = read_message_fields(&mut self.lexer, element_token, &mut self.message_fields);
        let raw_json = self.lexer.finish_compact_capture();
        read_result?;
        let options = self.options;
        let Some(chat) = self.current_chat() else {
            return Ok(None);
        };
        let chat_id = chat.chat_id.unwrap_or_default();
        chat.message_count += 1;
        match Message::from_message_fields(&mut self.message_fields, raw_json, chat_id, &options) {
            Ok(message) => Ok(Some(ExportEvent::Message(message))),
            Err(invalid) => Err(self.lexer.unexpected_structure_error(element_token.position, invalid.expected, invalid.found)),
        }
    }
}

impl<R: BufRead> Iterator for JsonExportReader<R> {
    type Item = Result<ExportEvent, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
#[path = "json_export_tests.rs"]
mod tests;
