//! Streaming, bounded-memory readers for Telegram Desktop chat exports.
//!
//! The entry points are [`JsonExportReader`], which reads a `result.json` (a single chat
//! or a whole account), and [`HtmlExportReader`], which reads the `messages*.html` pages
//! of one chat. Both yield the same [`ExportEvent`]s: a [`ChatHeader`] per chat, then one
//! typed [`Message`] at a time, then the chat's message count. Files of several GB are
//! read with memory bounded by the size of one message.
//!
//! Layers, bottom up:
//! - [`lexer`]: a pull tokenizer accepting tdesktop's JSON, including its `\xHH` escapes;
//! - [`value_builder`]: builds one `serde_json::Value` from tokens, or skips a value;
//! - [`json_export`]: the export shapes and the event stream;
//! - [`message`], [`text`], [`media`], [`peer_id`]: mapping a message object to typed
//!   fields (only the keys the mapping reads are built as values; the rest is skipped and
//!   kept in [`Message::raw_json`]);
//! - [`html_export`]: the HTML reader, one page at a time through html5ever's tokenizer
//!   (`html_page` cuts the token stream into message blocks, `html_text` recovers text and
//!   entities, `html_message` and `html_media` map a block to a [`Message`]);
//! - [`synthetic`], [`synthetic_html`]: fast generators of the same realistic chat as JSON
//!   and as HTML pages, for benchmarks and tests.
//!
//! The format itself is described in `shared/telegram-export-format.md` (the "format
//! reference" in the docs of this crate).

mod error;
mod field_reader;
pub mod html_export;
mod html_media;
mod html_message;
mod html_page;
mod html_text;
pub mod json_export;
pub mod lexer;
pub mod media;
pub mod message;
pub mod peer_id;
pub mod synthetic;
pub mod synthetic_html;
mod synthetic_model;
pub mod text;
mod token;
pub mod value_builder;

pub use error::ExportError;
pub use html_export::{chat_id_from_name, HtmlExportReader, HtmlPageReader};
pub use html_message::HtmlParseOptions;
pub use json_export::{ChatHeader, ExportEvent, JsonExportReader};
pub use media::{Contact, GeoPoint, Media, MediaKind, NotIncludedReason, Poll, PollAnswer};
pub use message::{InvalidMessageError, Message, MessageKind, ParseOptions, Warning, WarningKind};
pub use synthetic::write_synthetic_export;
pub use synthetic_html::write_synthetic_html_export;
pub use text::{TextEntity, TextEntityKind};
