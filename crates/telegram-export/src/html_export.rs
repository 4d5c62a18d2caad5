//! [`HtmlExportReader`]: streams the messages of a chat exported as HTML
//! (`messages.html`, `messages2.html`, ...) as the same [`ExportEvent`]s as the JSON
//! reader; [`HtmlPageReader`] reads one page.
//!
//! Pages are read one at a time, in numeric order of their file names (format reference,
//! 3.2), each through html5ever's tokenizer fed in 64 KiB chunks, so memory stays bounded
//! by one message block whatever the number or size of the pages. A page's `Next messages`
//! link must name the next page found in the folder; a missing page is an error rather
//! than a silently shorter chat.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};

use crate::error::ExportError;
use crate::html_message::{BlockMapper, HtmlParseOptions};
use crate::html_page::{PageParser, PageSink};
use crate::json_export::{ChatHeader, ExportEvent};
use crate::message::Message;

const CHUNK_SIZE: usize = 64 * 1024;

/// Returns a stable chat id for an HTML export made without one (HTML does not contain
/// the chat id): `-(1 + FNV-1a-64(name) mod (2^53 - 1))`, where `name` is the trimmed
/// header name as UTF-8. It is negative so it can never equal a real exported chat id
/// (always positive), and below 2^53 in magnitude so it survives a JavaScript number.
pub fn chat_id_from_name(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.trim().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let bounded = hash % ((1u64 << 53) - 1);
    -1 - bounded as i64
}

/// Reads one HTML export page: its header name and its messages, in order.
pub struct HtmlPageReader<R> {
    reader: R,
    source_label: String,
    tokenizer: Tokenizer<PageSink>,
    input: BufferQueue,
    mapper: BlockMapper,
    /// Bytes read but not yet fed because they end inside a UTF-8 sequence.
    incomplete_utf8: Vec<u8>,
    chunk: Vec<u8>,
    bytes_read: u64,
    lines_read: u64,
    input_finished: bool,
    failed: bool,
}

impl<R> fmt::Debug for HtmlPageReader<R> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("HtmlPageReader")
            .field("source_label", &self.source_label)
            .field("bytes_read", &self.bytes_read)
            .field("input_finished", &self.input_finished)
            .finish_non_exhaustive()
    }
}

impl<R: Read> HtmlPageReader<R> {
    /// Creates a reader of one page; `source_label` names it in errors (e.g.
    /// `messages2.html`) and `chat_id` is stamped on its messages.
    pub fn new(reader: R, source_label: impl Into<String>, chat_id: i64, options: HtmlParseOptions) -> Self {
        let source_label = source_label.into();
        let sink = PageSink { parser: RefCell::new(PageParser::new(source_label.clone())) };
        HtmlPageReader {
            reader,
            tokenizer: Tokenizer::new(sink, TokenizerOpts::default()),
            input: BufferQueue::default(),
            mapper: BlockMapper::new(chat_id, options, source_label.clone()),
            source_label,
            incomplete_utf8: Vec::new(),
            chunk: vec![0; CHUNK_SIZE],
            bytes_read: 0,
            lines_read: 0,
            input_finished: false,
            failed: false,
        }
    }

    /// Returns how many bytes of the page have been read.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Sets the chat id stamped on the messages read from now on.
    pub fn set_chat_id(&mut self, chat_id: i64) {
        self.mapper.chat_id = chat_id;
    }

    /// Returns the chat name of the page header (trimmed), reading as far as needed;
    /// `None` when the page has no header.
    pub fn chat_name(&mut self) -> Result<Option<String>, ExportError> {
        loop {
            let parser = self.tokenizer.sink.parser.borrow();
            let name = parser.header_name().map(str::to_owned);
            // The header comes before the history; once a block is complete it is too late.
            let stop = name.is_some() || parser.has_block() || self.input_finished;
            drop(parser);
            if stop {
                return Ok(name);
            }
            self.feed_next_chunk()?;
        }
    }

    /// Returns the target of the page's `Next messages` link; complete once
    /// [`HtmlPageReader::next_message`] has returned `None`.
    pub fn next_page_href(&self) -> Option<String> {
        self.tokenizer.sink.parser.borrow().next_page_href().map(str::to_owned)
    }

    /// Returns the next message of the page, or `None` once the page has been read and
    /// checked to be complete. After an error the reader returns `None`.
    pub fn next_message(&mut self) -> Result<Option<Message>, ExportError> {
        if self.failed {
            return Ok(None);
        }
        let result = self.advance();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn advance(&mut self) -> Result<Option<Message>, ExportError> {
        loop {
            let block = self.tokenizer.sink.parser.borrow_mut().take_block();
            if let Some(block) = block {
                match self.mapper.map_block(block) {
                    Some(message) => return Ok(Some(message)),
                    None => continue,
                }
            }
            if self.input_finished {
                let parser = self.tokenizer.sink.parser.borrow();
                parser.check_complete(self.bytes_read)?;
                return Ok(None);
            }
            self.feed_next_chunk()?;
        }
    }

    fn take_parser_error(&mut self) -> Result<(), ExportError> {
        match self.tokenizer.sink.parser.borrow_mut().take_error() {
            Some(ExportError::UnexpectedStructure { source_label, line, expected, found, .. }) => {
                Err(ExportError::UnexpectedStructure { source_label, byte_offset: self.bytes_read, line, expected, found })
            }
            Some(other) => Err(other),
            None => Ok(()),
        }
    }

    fn feed_next_chunk(&mut self) -> Result<(), ExportError> {
        if self.input_finished {
            return Ok(());
        }
        let read_count = loop {
            match self.reader.read(&mut self.chunk) {
                Ok(count) => break count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ExportError::Io { source_label: self.source_label.clone(), byte_offset: self.bytes_read, source }),
            }
        };
        if read_count == 0 {
            if !self.incomplete_utf8.is_empty() {
                return Err(self.invalid_utf8_error(&[]));
            }
            self.input_finished = true;
            self.tokenizer.end();
            return self.take_parser_error();
        }
        let mut bytes = std::mem::take(&mut self.incomplete_utf8);
        bytes.extend_from_slice(&self.chunk[..read_count]);
        if self.bytes_read == 0 {
            self.check_page_starts_with_a_tag(&bytes)?;
        }
        let valid_length = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(error) => return Err(self.invalid_utf8_error(&bytes[..error.valid_up_to()])),
        };
        self.incomplete_utf8 = bytes.split_off(valid_length);
        let text = std::str::from_utf8(&bytes).unwrap_or("");
        self.bytes_read += text.len() as u64;
        self.lines_read += memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
        self.input.push_back(StrTendril::from_slice(text));
        // The sink never asks to run a script, so feeding always consumes the whole queue.
        let _ = self.tokenizer.feed(&self.input);
        self.take_parser_error()
    }

    /// Fails early, on the first chunk, when the page does not start like HTML (a JSON
    /// file or a binary given as a page): after an optional byte order mark and
    /// whitespace, an HTML page starts with `<`.
    fn check_page_starts_with_a_tag(&self, first_bytes: &[u8]) -> Result<(), ExportError> {
        let without_bom = first_bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first_bytes);
        let Some(first_content) = without_bom.iter().position(|byte| !byte.is_ascii_whitespace()) else {
            return Ok(());
        };
        if without_bom[first_content] == b'<' {
            return Ok(());
        }
        let line = 1 + memchr::memchr_iter(b'\n', &without_bom[..first_content]).count() as u64;
        Err(ExportError::UnexpectedStructure {
            source_label: self.source_label.clone(),
            byte_offset: (first_content + first_bytes.len() - without_bom.len()) as u64,
            line,
            expected: "an html page of a telegram desktop chat export".to_owned(),
            found: "text before the first tag (not html)".to_owned(),
        })
    }

    /// Describes invalid UTF-8 found after `valid_prefix` (the valid bytes before it).
    fn invalid_utf8_error(&self, valid_prefix: &[u8]) -> ExportError {
        let prefix_newlines = memchr::memchr_iter(b'\n', valid_prefix).count() as u64;
        ExportError::InvalidUtf8 {
            source_label: self.source_label.clone(),
            byte_offset: self.bytes_read + valid_prefix.len() as u64,
            line: self.lines_read + 1 + prefix_newlines,
        }
    }
}

/// Where [`HtmlExportReader`] is in the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderPhase {
    BeforeHeader,
    Messages,
    Finished,
}

/// Streams [`ExportEvent`]s out of an HTML chat export folder: one
/// [`ExportEvent::ChatStarted`], the messages of every page in order, then
/// [`ExportEvent::ChatFinished`].
#[derive(Debug)]
pub struct HtmlExportReader {
    folder: PathBuf,
    pages: Vec<(u64, PathBuf)>,
    next_page_index: usize,
    current_page: Option<HtmlPageReader<File>>,
    chat_id: Option<i64>,
    options: HtmlParseOptions,
    index_in_export: u32,
    phase: ReaderPhase,
    message_count: u64,
    bytes_total: u64,
    bytes_of_finished_pages: u64,
}

/// Returns the page number of `messages.html` (1), `messages2.html` (2), ...
fn page_number_of_file_name(file_name: &str) -> Option<u64> {
    let number = file_name.strip_prefix("messages")?.strip_suffix(".html")?;
    if number.is_empty() {
        return Some(1);
    }
    number.parse().ok().filter(|number| *number >= 2)
}

fn io_error(path: &Path, source: io::Error) -> ExportError {
    ExportError::Io { source_label: path.display().to_string(), byte_offset: 0, source }
}

impl HtmlExportReader {
    /// Opens the chat export in `folder` (the folder holding `messages.html`; for an
    /// account export, `chats/chat_NNN`). HTML does not contain the chat id: pass it as
    /// `chat_id`, or `None` to use [`chat_id_from_name`] of the page header.
    pub fn open(folder: &Path, chat_id: Option<i64>, options: HtmlParseOptions) -> Result<Self, ExportError> {
        let mut pages = Vec::new();
        let entries = std::fs::read_dir(folder).map_err(|error| io_error(folder, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| io_error(folder, error))?;
            let file_name = entry.file_name();
            let Some(number) = file_name.to_str().and_then(page_number_of_file_name) else {
                continue;
            };
            pages.push((number, entry.path()));
        }
        pages.sort();
        if pages.first().map(|(number, _)| *number) != Some(1) {
            let first_page = folder.join("messages.html");
            return Err(io_error(&first_page, io::Error::new(io::ErrorKind::NotFound, "the first page is missing")));
        }
        let mut bytes_total = 0;
        for (_, path) in &pages {
            bytes_total += std::fs::metadata(path).map_err(|error| io_error(path, error))?.len();
        }
        // Account exports keep chats in `chats/chat_NNN`: the number is the chat's position.
        let index_in_export = folder
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("chat_"))
            .and_then(|number| number.parse::<u32>().ok())
            .map_or(0, |number| number.saturating_sub(1));
        Ok(HtmlExportReader {
            folder: folder.to_owned(),
            pages,
            next_page_index: 0,
            current_page: None,
            chat_id,
            options,
            index_in_export,
            phase: ReaderPhase::BeforeHeader,
            message_count: 0,
            bytes_total,
            bytes_of_finished_pages: 0,
        })
    }

    /// Returns how many bytes of all pages have been read, for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_of_finished_pages + self.current_page.as_ref().map_or(0, HtmlPageReader::bytes_read)
    }

    /// Returns the total size of all pages.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// Returns the folder being read.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Returns the next event, or `None` when every page has been read and checked.
    /// After an error the reader is finished and returns `None`.
    pub fn next_event(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        let result = self.advance();
        if result.is_err() {
            self.phase = ReaderPhase::Finished;
            self.current_page = None;
        }
        result
    }

    fn open_next_page(&mut self) -> Result<bool, ExportError> {
        let Some((_, path)) = self.pages.get(self.next_page_index) else {
            return Ok(false);
        };
        let label = path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
        let file = File::open(path).map_err(|error| io_error(path, error))?;
        self.next_page_index += 1;
        let chat_id = self.chat_id.unwrap_or_default();
        self.current_page = Some(HtmlPageReader::new(file, label, chat_id, self.options));
        Ok(true)
    }

    fn advance(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        match self.phase {
            ReaderPhase::Finished => Ok(None),
            ReaderPhase::BeforeHeader => {
                self.open_next_page()?;
                let name = match self.current_page.as_mut() {
                    Some(page) => page.chat_name()?,
                    None => None,
                };
                let chat_id = match self.chat_id {
                    Some(chat_id) => chat_id,
                    None => chat_id_from_name(name.as_deref().unwrap_or("")),
                };
                self.chat_id = Some(chat_id);
                if let Some(page) = self.current_page.as_mut() {
                    page.set_chat_id(chat_id);
                }
                self.phase = ReaderPhase::Messages;
                Ok(Some(ExportEvent::ChatStarted(ChatHeader {
                    chat_id,
                    name,
                    chat_type: String::new(),
                    left: false,
                    index_in_export: self.index_in_export,
                })))
            }
            ReaderPhase::Messages => self.advance_in_messages(),
        }
    }

    fn advance_in_messages(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        loop {
            let Some(page) = self.current_page.as_mut() else {
                self.phase = ReaderPhase::Finished;
                return Ok(Some(ExportEvent::ChatFinished { chat_id: self.chat_id.unwrap_or_default(), message_count: self.message_count }));
            };
            if let Some(message) = page.next_message()? {
                self.message_count += 1;
                return Ok(Some(ExportEvent::Message(message)));
            }
            let next_href = page.next_page_href();
            self.bytes_of_finished_pages += page.bytes_read();
            let finished_label = page.source_label.clone();
            self.current_page = None;
            let next_listed =
                self.pages.get(self.next_page_index).and_then(|(_, path)| path.file_name()).map(|name| name.to_string_lossy().into_owned());
            if let Some(next_href) = next_href {
                let next_file = next_href.split('#').next().unwrap_or("").to_owned();
                if next_listed.as_deref() != Some(next_file.as_str()) {
                    return Err(ExportError::UnexpectedStructure {
                        source_label: finished_label,
                        byte_offset: 0,
                        line: 0,
                        expected: format!("the next page {next_file:?} in the export folder"),
                        found: match next_listed {
                            Some(listed) => format!("{listed:?}"),
                            None => "no further page".to_owned(),
                        },
                    });
                }
            }
            self.open_next_page()?;
        }
    }
}

impl Iterator for HtmlExportReader {
    type Item = Result<ExportEvent, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_sort_numerically() {
        assert_eq!(page_number_of_file_name("messages.html"), Some(1));
        assert_eq!(page_number_of_file_name("messages10.html"), Some(10));
        assert_eq!(page_number_of_file_name("messages1.html"), None);
        assert_eq!(page_number_of_file_name("messages.htm"), None);
    }

    #[test]
    fn derived_chat_ids_are_stable_and_negative() {
        let id = chat_id_from_name(" Project Alpha ");
        assert_eq!(id, chat_id_from_name("Project Alpha"));
        assert!(id < 0 && id > -(1i64 << 53));
        assert_ne!(id, chat_id_from_name("Project Beta"));
    }
}
