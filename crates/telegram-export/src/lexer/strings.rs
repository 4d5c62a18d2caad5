//! String decoding for [`JsonLexer`]: the slow path for strings with escapes (including
//! tdesktop's `\xHH`), raw control characters, invalid UTF-8, or that cross the end of
//! the reader's buffer. Simple strings are handled in place by [`JsonLexer::next_token`].

use std::io::BufRead;

use super::{count_newlines, fill_buffer, hex_digit_value, JsonLexer};
use crate::error::ExportError;
use crate::token::TextPosition;

impl<R: BufRead> JsonLexer<R> {
    /// Decodes a string whose opening quote was consumed into `self.string_value`.
    pub(super) fn read_string_body(&mut self, string_start: TextPosition) -> Result<(), ExportError> {
        let mut decoded = std::mem::take(&mut self.string_value).into_bytes();
        decoded.clear();
        self.raw_run_starts.clear();
        self.raw_run_starts.push((0, self.consumed_bytes));
        loop {
            let buffer = match fill_buffer(&mut self.reader) {
                Ok(buffer) => buffer,
                Err(error) => return Err(self.io_error(error)),
            };
            if buffer.is_empty() {
                return Err(self.truncated_error("inside a string"));
            }
            let Some(delimiter_index) = memchr::memchr2(b'"', b'\\', buffer) else {
                decoded.extend_from_slice(buffer);
                let newline_count = count_newlines(buffer);
                let length = buffer.len();
                self.consume(length);
                self.line += newline_count;
                continue;
            };
            let raw_run = &buffer[..delimiter_index];
            decoded.extend_from_slice(raw_run);
            let newline_count = count_newlines(raw_run);
            let delimiter = buffer[delimiter_index];
            self.consume(delimiter_index + 1);
            self.line += newline_count;
            if delimiter == b'"' {
                break;
            }
            self.decode_escape(&mut decoded)?;
            self.raw_run_starts.push((decoded.len(), self.consumed_bytes));
        }
        match String::from_utf8(decoded) {
            Ok(text) => {
                self.string_value = text;
                Ok(())
            }
            Err(error) => {
                let invalid_index = error.utf8_error().valid_up_to();
                // Escapes always decode to complete characters, so the invalid byte is a raw
                // byte of the input: find the raw run it belongs to.
                let (run_decoded_start, run_raw_start) = self
                    .raw_run_starts
                    .iter()
                    .rev()
                    .find(|(decoded_start, _)| *decoded_start <= invalid_index)
                    .copied()
                    .unwrap_or((0, string_start.byte_offset + 1));
                Err(ExportError::InvalidUtf8 {
                    source_label: self.source_label.clone(),
                    byte_offset: run_raw_start + (invalid_index - run_decoded_start) as u64,
                    line: string_start.line,
                })
            }
        }
    }

    fn read_hex_digits(&mut self, digit_count: usize, escape_start: TextPosition) -> Result<u32, ExportError> {
        let mut value = 0;
        for _ in 0..digit_count {
            let byte = self.read_byte_within("inside a string")?;
            let Some(digit) = hex_digit_value(byte) else {
                return Err(self.malformed_error(escape_start, "invalid hex digit in an escape sequence"));
            };
            value = value * 16 + digit;
        }
        Ok(value)
    }

    /// Decodes one escape sequence whose backslash was consumed.
    fn decode_escape(&mut self, decoded: &mut Vec<u8>) -> Result<(), ExportError> {
        let escape_start = TextPosition { byte_offset: self.consumed_bytes - 1, line: self.line };
        let escape_letter = self.read_byte_within("inside a string")?;
        let simple_replacement = match escape_letter {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0C),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(byte) = simple_replacement {
            decoded.push(byte);
            return Ok(());
        }
        let character = match escape_letter {
            // Telegram Desktop's bug: control characters written as `\xHH`, meaning U+00HH.
            b'x' => char::from_u32(self.read_hex_digits(2, escape_start)?),
            b'u' => {
                let code_unit = self.read_hex_digits(4, escape_start)?;
                if (0xD800..0xDC00).contains(&code_unit) {
                    let low_surrogate = self.read_low_surrogate(escape_start)?;
                    char::from_u32(0x10000 + ((code_unit - 0xD800) << 10) + (low_surrogate - 0xDC00))
                } else {
                    char::from_u32(code_unit)
                }
            }
            other => {
                let shown = if other.is_ascii_graphic() { char::from(other) } else { '?' };
                return Err(self.malformed_error(escape_start, format!("invalid escape sequence '\\{shown}' in a string")));
            }
        };
        let Some(character) = character else {
            return Err(self.malformed_error(escape_start, "lone surrogate in a unicode escape"));
        };
        let mut encoded = [0u8; 4];
        decoded.extend_from_slice(character.encode_utf8(&mut encoded).as_bytes());
        Ok(())
    }

    fn read_low_surrogate(&mut self, escape_start: TextPosition) -> Result<u32, ExportError> {
        let backslash = self.read_byte_within("inside a string")?;
        if backslash != b'\\' {
            return Err(self.malformed_error(escape_start, "lone surrogate in a unicode escape"));
        }
        let letter = self.read_byte_within("inside a string")?;
        if letter != b'u' {
            return Err(self.malformed_error(escape_start, "lone surrogate in a unicode escape"));
        }
        let code_unit = self.read_hex_digits(4, escape_start)?;
        if !(0xDC00..0xE000).contains(&code_unit) {
            return Err(self.malformed_error(escape_start, "lone surrogate in a unicode escape"));
        }
        Ok(code_unit)
    }
}
