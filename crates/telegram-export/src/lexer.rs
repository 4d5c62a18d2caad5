//! A tolerant pull tokenizer for the JSON that Telegram Desktop writes.
//!
//! [`JsonLexer`] reads tokens one at a time from any [`BufRead`], working directly on the
//! reader's buffer (`fill_buf`/`consume`), so memory stays bounded by the longest single
//! string. Every token carries its absolute byte offset and line ([`TextPosition`]).
//!
//! It accepts standard JSON plus what Telegram Desktop writes on top of it:
//! - inside strings, `\xHH` (two hex digits) means U+00HH; tdesktop writes control
//!   characters that way (format reference, section 4 item 2). `\\x41` stays an escaped
//!   backslash followed by `x41`, because escapes are decoded pair by pair.
//! - raw control characters inside strings are kept as they are;
//! - a UTF-8 byte order mark at the very start is skipped.
//!
//! Invalid UTF-8 inside strings, bad escapes, lone surrogates and unknown characters are
//! errors. The grammar on top of the tokens (commas, colons, whole values) lives in
//! [`crate::value_builder`].
//!
//! Speed: a token that lies wholly inside the buffer (nearly all of them) is read in place,
//! strings without escapes with one scan and one UTF-8 check; anything else (escapes, a
//! token crossing the buffer's end, errors) takes a byte-by-byte slow path
//! (`lexer/strings.rs` for strings). While a message is read, the lexer can also record
//! its compact JSON text ([`JsonLexer::start_compact_capture`]), which is much cheaper than
//! serialising the built value again.

use std::fmt::Write as _;
use std::io::{self, BufRead};

use crate::error::ExportError;
use crate::token::parse_number_text;
pub use crate::token::{JsonNumber, TextPosition, Token, TokenKind};

/// The longest number literal accepted; longer runs of digits are not numbers tdesktop writes.
const MAXIMUM_NUMBER_LENGTH: usize = 512;

/// Reads JSON tokens from a [`BufRead`], tracking byte offsets and lines.
#[derive(Debug)]
pub struct JsonLexer<R> {
    reader: R,
    source_label: String,
    consumed_bytes: u64,
    line: u64,
    string_value: String,
    /// For the string being decoded: `(decoded length, raw offset)` at the start of each raw
    /// run between escapes, to map a UTF-8 error back to its byte in the input.
    raw_run_starts: Vec<(usize, u64)>,
    number_text: Vec<u8>,
    checked_byte_order_mark: bool,
    is_capturing: bool,
    compact_capture: String,
}

/// Returns the reader's buffer, retrying reads that were interrupted.
fn fill_buffer<R: BufRead>(reader: &mut R) -> io::Result<&[u8]> {
    loop {
        // Checked in two steps: returning the first borrow from inside the loop is not
        // accepted by the borrow checker, and fill_buf on a filled buffer is cheap.
        if let Err(error) = reader.fill_buf() {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        return reader.fill_buf();
    }
}

fn hex_digit_value(byte: u8) -> Option<u32> {
    match byte {
        b'0'..=b'9' => Some(u32::from(byte - b'0')),
        b'a'..=b'f' => Some(u32::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(byte - b'A' + 10)),
        _ => None,
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    if memchr::memchr(b'\n', bytes).is_none() {
        return 0;
    }
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The result of trying to read a token entirely inside the current buffer.
enum FastToken {
    /// The token was read; it is `length` bytes long.
    Complete { kind: TokenKind, length: usize },
    /// The token crosses the end of the buffer, has escapes or control characters, or is
    /// invalid: read it with the slow path, which also reports errors.
    NeedsSlowPath,
}

fn is_number_byte(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

/// Returns the index of the closing quote of a string body without escapes or control
/// characters; `None` when the string needs the slow path or does not end in `body`.
#[inline]
fn find_simple_string_end(body: &[u8]) -> Option<usize> {
    // Most strings in an export are short keys and values: a plain loop over the first
    // bytes beats memchr's setup cost, and memchr takes over for long texts.
    let short_length = body.len().min(32);
    for (index, &byte) in body[..short_length].iter().enumerate() {
        if byte == b'"' {
            return Some(index);
        }
        if byte == b'\\' || byte < 0x20 {
            return None;
        }
    }
    let end = short_length + memchr::memchr2(b'"', b'\\', &body[short_length..])?;
    if body[end] != b'"' {
        return None;
    }
    // Branch-free so that it vectorises; control characters need the slow path (line
    // counting, escaping in captures).
    let has_control_character = body[short_length..end].iter().fold(false, |found, &byte| found | (byte < 0x20));
    (!has_control_character).then_some(end)
}

/// Reads the token at the start of `bytes` when it lies wholly inside them. Strings are
/// taken only without escapes and control characters; their text goes to `string_value`,
/// number text to `number_text`.
#[inline]
fn scan_token_in_buffer(bytes: &[u8], string_value: &mut String, number_text: &mut Vec<u8>) -> FastToken {
    let Some(&first_byte) = bytes.first() else {
        return FastToken::NeedsSlowPath;
    };
    let single_byte_kind = match first_byte {
        b'{' => Some(TokenKind::ObjectStart),
        b'}' => Some(TokenKind::ObjectEnd),
        b'[' => Some(TokenKind::ArrayStart),
        b']' => Some(TokenKind::ArrayEnd),
        b':' => Some(TokenKind::Colon),
        b',' => Some(TokenKind::Comma),
        _ => None,
    };
    if let Some(kind) = single_byte_kind {
        return FastToken::Complete { kind, length: 1 };
    }
    match first_byte {
        b'"' => {
            let body = &bytes[1..];
            let Some(end) = find_simple_string_end(body) else {
                return FastToken::NeedsSlowPath;
            };
            let Ok(text) = std::str::from_utf8(&body[..end]) else {
                return FastToken::NeedsSlowPath;
            };
            string_value.clear();
            string_value.push_str(text);
            FastToken::Complete { kind: TokenKind::String, length: end + 2 }
        }
        b'-' | b'0'..=b'9' => {
            let Some(length) = bytes.iter().position(|&byte| !is_number_byte(byte)) else {
                return FastToken::NeedsSlowPath;
            };
            match parse_number_text(&bytes[..length]) {
                Ok(number) => {
                    number_text.clear();
                    number_text.extend_from_slice(&bytes[..length]);
                    FastToken::Complete { kind: TokenKind::Number(number), length }
                }
                Err(_) => FastToken::NeedsSlowPath,
            }
        }
        b't' if bytes.starts_with(b"true") => FastToken::Complete { kind: TokenKind::True, length: 4 },
        b'f' if bytes.starts_with(b"false") => FastToken::Complete { kind: TokenKind::False, length: 5 },
        b'n' if bytes.starts_with(b"null") => FastToken::Complete { kind: TokenKind::Null, length: 4 },
        _ => FastToken::NeedsSlowPath,
    }
}

/// Appends `text` as a JSON string literal with standard escapes.
fn push_json_string_escaped(output: &mut String, text: &str) {
    output.push('"');
    for character in text.chars() {
        match character {
            '"' => output.push_str("\\\""),
            '\\' => output.push_str("\\\\"),
            '\n' => output.push_str("\\n"),
            '\r' => output.push_str("\\r"),
            '\t' => output.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(output, "\\u{:04x}", u32::from(control));
            }
            other => output.push(other),
        }
    }
    output.push('"');
}

impl<R: BufRead> JsonLexer<R> {
    /// Creates a lexer; `source_label` names the input in errors (e.g. `result.json`).
    pub fn new(reader: R, source_label: impl Into<String>) -> Self {
        JsonLexer {
            reader,
            source_label: source_label.into(),
            consumed_bytes: 0,
            line: 1,
            string_value: String::new(),
            raw_run_starts: Vec::new(),
            number_text: Vec::new(),
            checked_byte_order_mark: false,
            is_capturing: false,
            compact_capture: String::new(),
        }
    }

    /// Returns how many bytes of the input have been consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.consumed_bytes
    }

    /// Returns the position just after the last consumed byte.
    pub fn position(&self) -> TextPosition {
        TextPosition { byte_offset: self.consumed_bytes, line: self.line }
    }

    /// Returns the name of the input used in errors.
    pub fn source_label(&self) -> &str {
        &self.source_label
    }

    /// Returns the decoded text of the last [`TokenKind::String`] token.
    pub fn string_value(&self) -> &str {
        &self.string_value
    }

    /// Moves the decoded text of the last [`TokenKind::String`] token out of the lexer.
    pub fn take_string_value(&mut self) -> String {
        std::mem::take(&mut self.string_value)
    }

    /// Builds the error for input that ends too early, at the current position.
    #[cold]
    #[inline(never)]
    pub fn truncated_error(&self, context: &str) -> ExportError {
        ExportError::Truncated {
            source_label: self.source_label.clone(),
            byte_offset: self.consumed_bytes,
            line: self.line,
            context: context.to_owned(),
        }
    }

    /// Builds the error for input that is not valid JSON.
    #[cold]
    #[inline(never)]
    pub fn malformed_error(&self, position: TextPosition, detail: impl Into<String>) -> ExportError {
        ExportError::MalformedJson {
            source_label: self.source_label.clone(),
            byte_offset: position.byte_offset,
            line: position.line,
            detail: detail.into(),
        }
    }

    /// Builds the error for a value whose type does not fit its place in an export.
    #[cold]
    #[inline(never)]
    pub fn unexpected_structure_error(&self, position: TextPosition, expected: impl Into<String>, found: impl Into<String>) -> ExportError {
        ExportError::UnexpectedStructure {
            source_label: self.source_label.clone(),
            byte_offset: position.byte_offset,
            line: position.line,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Builds the error for a token that breaks the JSON grammar; the end of input becomes
    /// a [`ExportError::Truncated`].
    #[cold]
    #[inline(never)]
    pub fn unexpected_token_error(&self, token: Token, expected: &str) -> ExportError {
        if token.kind == TokenKind::EndOfInput {
            return self.truncated_error(&format!("where {expected} was expected"));
        }
        self.malformed_error(token.position, format!("expected {expected}, found {}", token.kind.describe()))
    }

    #[cold]
    #[inline(never)]
    fn io_error(&self, source: io::Error) -> ExportError {
        ExportError::Io { source_label: self.source_label.clone(), byte_offset: self.consumed_bytes, source }
    }

    fn consume(&mut self, byte_count: usize) {
        self.reader.consume(byte_count);
        self.consumed_bytes += byte_count as u64;
    }

    /// Consumes one byte inside a multi-byte token; the end of input is an error.
    fn read_byte_within(&mut self, context: &str) -> Result<u8, ExportError> {
        let next_byte = match fill_buffer(&mut self.reader) {
            Ok(buffer) => buffer.first().copied(),
            Err(error) => return Err(self.io_error(error)),
        };
        let Some(byte) = next_byte else {
            return Err(self.truncated_error(context));
        };
        self.consume(1);
        if byte == b'\n' {
            self.line += 1;
        }
        Ok(byte)
    }

    fn skip_byte_order_mark(&mut self) -> Result<(), ExportError> {
        self.checked_byte_order_mark = true;
        let starts_with_mark = match fill_buffer(&mut self.reader) {
            Ok(buffer) => buffer.starts_with(b"\xEF\xBB\xBF"),
            Err(error) => return Err(self.io_error(error)),
        };
        if starts_with_mark {
            self.consume(3);
        }
        Ok(())
    }

    /// Starts recording the compact JSON text of the tokens that follow, beginning with
    /// `already_read` (the last token returned); used to keep each message's raw JSON
    /// without serialising it again. Strings are recorded with standard JSON escapes only
    /// (tdesktop's `\xHH` becomes `\u00HH`), so the record is always valid JSON.
    pub fn start_compact_capture(&mut self, already_read: Token) {
        self.compact_capture.clear();
        self.is_capturing = true;
        self.capture_token_text(already_read.kind, false);
    }

    /// Stops recording and returns the compact JSON text recorded since
    /// [`Self::start_compact_capture`].
    pub fn finish_compact_capture(&mut self) -> String {
        self.is_capturing = false;
        // Copied out at its exact size; the capture buffer keeps its capacity, so it does
        // not regrow for every message.
        String::from(self.compact_capture.as_str())
    }

    /// Appends the compact text of a token to the capture. `string_needs_escaping` is false
    /// when the string came from the fast path and has nothing to escape.
    fn capture_token_text(&mut self, kind: TokenKind, string_needs_escaping: bool) {
        let capture = &mut self.compact_capture;
        match kind {
            TokenKind::ObjectStart => capture.push('{'),
            TokenKind::ObjectEnd => capture.push('}'),
            TokenKind::ArrayStart => capture.push('['),
            TokenKind::ArrayEnd => capture.push(']'),
            TokenKind::Colon => capture.push(':'),
            TokenKind::Comma => capture.push(','),
            TokenKind::True => capture.push_str("true"),
            TokenKind::False => capture.push_str("false"),
            TokenKind::Null => capture.push_str("null"),
            TokenKind::Number(_) => {
                // Number text is ASCII digits and signs only, checked by the grammar.
                capture.extend(self.number_text.iter().map(|&byte| char::from(byte)));
            }
            TokenKind::String if string_needs_escaping => push_json_string_escaped(capture, &self.string_value),
            TokenKind::String => {
                capture.push('"');
                capture.push_str(&self.string_value);
                capture.push('"');
            }
            TokenKind::EndOfInput => {}
        }
    }

    /// Reads the next token.
    pub fn next_token(&mut self) -> Result<Token, ExportError> {
        if !self.checked_byte_order_mark {
            self.skip_byte_order_mark()?;
        }
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.io_error(error)),
            };
            if buffer.is_empty() {
                return Ok(Token { kind: TokenKind::EndOfInput, position: self.position() });
            }
            let mut index = 0;
            let mut newline_count = 0;
            while let Some(&byte) = buffer.get(index) {
                match byte {
                    b' ' | b'\t' | b'\r' => index += 1,
                    b'\n' => {
                        newline_count += 1;
                        index += 1;
                    }
                    _ => break,
                }
            }
            let Some(&first_byte) = buffer.get(index) else {
                self.consume(index);
                self.line += newline_count;
                continue;
            };
            let position = TextPosition { byte_offset: self.consumed_bytes + index as u64, line: self.line + newline_count };
            // The fast path reads a whole token that lies inside the buffer, without any
            // per-byte calls; everything unusual falls through to the slow path below.
            let fast_token = scan_token_in_buffer(&buffer[index..], &mut self.string_value, &mut self.number_text);
            match fast_token {
                FastToken::Complete { kind, length } => {
                    self.consume(index + length);
                    self.line += newline_count;
                    if self.is_capturing {
                        self.capture_token_text(kind, false);
                    }
                    return Ok(Token { kind, position });
                }
                FastToken::NeedsSlowPath => {
                    self.consume(index);
                    self.line += newline_count;
                    let kind = self.read_token_slowly(first_byte, position)?;
                    if self.is_capturing {
                        self.capture_token_text(kind, true);
                    }
                    return Ok(Token { kind, position });
                }
            }
        }
    }

    /// Reads a string, number or literal that starts at the next byte, byte by byte.
    #[cold]
    #[inline(never)]
    fn read_token_slowly(&mut self, first_byte: u8, position: TextPosition) -> Result<TokenKind, ExportError> {
        match first_byte {
            b'"' => {
                self.consume(1);
                self.read_string_body(position)?;
                Ok(TokenKind::String)
            }
            b'-' | b'0'..=b'9' => Ok(TokenKind::Number(self.read_number(position)?)),
            b't' => self.read_literal(b"true", TokenKind::True, position),
            b'f' => self.read_literal(b"false", TokenKind::False, position),
            b'n' => self.read_literal(b"null", TokenKind::Null, position),
            other => {
                let shown = if other.is_ascii_graphic() {
                    format!("unexpected character '{}'", char::from(other))
                } else {
                    format!("unexpected byte 0x{other:02x}")
                };
                Err(self.malformed_error(position, shown))
            }
        }
    }

    fn read_literal(&mut self, literal: &'static [u8], kind: TokenKind, position: TextPosition) -> Result<TokenKind, ExportError> {
        for &expected_byte in literal {
            let byte = self.read_byte_within("inside a literal")?;
            if byte != expected_byte {
                let literal_text = String::from_utf8_lossy(literal);
                return Err(self.malformed_error(position, format!("invalid literal, expected '{literal_text}'")));
            }
        }
        Ok(kind)
    }

    fn read_number(&mut self, position: TextPosition) -> Result<JsonNumber, ExportError> {
        self.number_text.clear();
        loop {
            let buffer = match fill_buffer(&mut self.reader) {
                Ok(buffer) => buffer,
                Err(error) => return Err(self.io_error(error)),
            };
            let length = buffer.iter().position(|byte| !matches!(byte, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).unwrap_or(buffer.len());
            let reached_end_of_number = length < buffer.len() || buffer.is_empty();
            self.number_text.extend_from_slice(&buffer[..length]);
            self.consume(length);
            if reached_end_of_number {
                break;
            }
            if self.number_text.len() > MAXIMUM_NUMBER_LENGTH {
                return Err(self.malformed_error(position, "number is too long"));
            }
        }
        parse_number_text(&self.number_text).map_err(|detail| self.malformed_error(position, detail))
    }
}

mod strings;

#[cfg(test)]
mod tests;
