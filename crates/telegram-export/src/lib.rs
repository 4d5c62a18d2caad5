//! Streaming, bounded-memory readers for Telegram Desktop chat exports.
//!
//! The entry point is [`JsonExportReader`], which reads a `result.json` (a single chat or a
//! whole account) and yields [`ExportEvent`]s: a [`ChatHeader`] per chat, then one typed
//! [`Message`] at a time, then the chat's message count. Files of several GB are read with
//! memory bounded by the size of one message.
//!
//! Layers, bottom up:
//! - [`lexer`]: a pull tokenizer accepting tdesktop's JSON, including its `\xHH` escapes;
//! - [`value_builder`]: builds one `serde_json::Value` from tokens, or skips a value;
//! - [`json_export`]: the export shapes and the event stream;
//! - [`message`], [`text`], [`media`], [`peer_id`]: mapping a message object to typed
//!   fields (only the keys the mapping reads are built as values; the rest is skipped and
//!   kept in [`Message::raw_json`]);
//! - [`synthetic`]: a fast generator of realistic exports for benchmarks and tests.
//!
//! The format itself is described in `shared/telegram-export-format.md` (the "format
//! reference" in the docs of this crate).

mod error;
mod field_reader;
pub mod json_export;
pub mod lexer;
pub mod media;
pub mod message;
pub mod peer_id;
pub mod synthetic;
pub mod text;
mod token;
pub mod value_builder;

pub use error::ExportError;
pub use json_export::{ChatHeader, ExportEvent, JsonExportReader};
pub use media::{Contact, GeoPoint, Media, MediaKind, NotIncludedReason, Poll, PollAnswer};
pub use message::{InvalidMessageError, Message, MessageKind, ParseOptions, Warning, WarningKind};
pub use synthetic::write_synthetic_export;
pub use text::{TextEntity, TextEntityKind};
