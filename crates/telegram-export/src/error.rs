//! The crate's one error type, [`ExportError`].
//!
//! Every error names the source (usually the file name), the absolute byte offset and the
//! line where the problem was found, so that a person can open the file and look. Only
//! problems with the *structure* of the file are errors; unknown or odd message content
//! becomes a [`crate::Warning`] on the message instead.

use std::io;

/// Fails a read of a Telegram export: the file cannot be read, is not JSON as Telegram
/// Desktop writes it, or does not have the shape of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading from the underlying reader failed.
    #[error("{source_label}: cannot read at byte {byte_offset}: {source}")]
    Io {
        /// The name of the source being read, e.g. `result.json`.
        source_label: String,
        /// How many bytes had been read before the failure.
        byte_offset: u64,
        /// The error of the reader.
        source: io::Error,
    },

    /// The input ends in the middle of a value: the file is truncated or incomplete.
    #[error("{source_label}: unexpected end of file at byte {byte_offset} (line {line}) {context}")]
    Truncated {
        /// The name of the source being read.
        source_label: String,
        /// The length of the input, where more was expected.
        byte_offset: u64,
        /// The (1-based) line where the input ends.
        line: u64,
        /// What was being read, e.g. `inside a string`.
        context: String,
    },

    /// A string contains bytes that are not valid UTF-8.
    #[error("{source_label}: at byte {byte_offset} (line {line}): invalid utf-8 in a string")]
    InvalidUtf8 {
        /// The name of the source being read.
        source_label: String,
        /// The offset of the first invalid byte.
        byte_offset: u64,
        /// The (1-based) line where the string starts.
        line: u64,
    },

    /// The input is not JSON (as Telegram Desktop writes it): a bad token, a missing comma,
    /// content after the top-level object, too deep nesting.
    #[error("{source_label}: at byte {byte_offset} (line {line}): {detail}")]
    MalformedJson {
        /// The name of the source being read.
        source_label: String,
        /// The offset of the offending token.
        byte_offset: u64,
        /// The (1-based) line of the offending token.
        line: u64,
        /// What is wrong, in words.
        detail: String,
    },

    /// The JSON is well formed but a value has the wrong type for its place in an export,
    /// e.g. `"messages": "oops"` or a top-level array.
    #[error("{source_label}: at byte {byte_offset} (line {line}): expected {expected}, found {found}")]
    UnexpectedStructure {
        /// The name of the source being read.
        source_label: String,
        /// The offset of the value that has the wrong type.
        byte_offset: u64,
        /// The (1-based) line of that value.
        line: u64,
        /// What the export format requires there.
        expected: String,
        /// What the file holds instead.
        found: String,
    },

    /// The file is an export, but laid out in a way a streaming reader cannot handle without
    /// buffering, e.g. a chat whose `messages` come before its `id`.
    #[error("{source_label}: at byte {byte_offset} (line {line}): {detail}")]
    UnsupportedLayout {
        /// The name of the source being read.
        source_label: String,
        /// The offset where the problem was noticed.
        byte_offset: u64,
        /// The (1-based) line where the problem was noticed.
        line: u64,
        /// What is wrong, in words.
        detail: String,
    },
}

impl ExportError {
    /// Returns the absolute byte offset in the input where the error was found.
    pub fn byte_offset(&self) -> u64 {
        match self {
            ExportError::Io { byte_offset, .. }
            | ExportError::Truncated { byte_offset, .. }
            | ExportError::InvalidUtf8 { byte_offset, .. }
            | ExportError::MalformedJson { byte_offset, .. }
            | ExportError::UnexpectedStructure { byte_offset, .. }
            | ExportError::UnsupportedLayout { byte_offset, .. } => *byte_offset,
        }
    }

    /// Returns the (1-based) line where the error was found, when it is known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ExportError::Io { .. } => None,
            ExportError::Truncated { line, .. }
            | ExportError::InvalidUtf8 { line, .. }
            | ExportError::MalformedJson { line, .. }
            | ExportError::UnexpectedStructure { line, .. }
            | ExportError::UnsupportedLayout { line, .. } => Some(*line),
        }
    }

    /// Returns the name of the source the error happened in, as given to the reader.
    pub fn source_label(&self) -> &str {
        match self {
            ExportError::Io { source_label, .. }
            | ExportError::Truncated { source_label, .. }
            | ExportError::InvalidUtf8 { source_label, .. }
            | ExportError::MalformedJson { source_label, .. }
            | ExportError::UnexpectedStructure { source_label, .. }
            | ExportError::UnsupportedLayout { source_label, .. } => source_label,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_structure_reads_like_a_sentence() {
        let error = ExportError::UnexpectedStructure {
            source_label: "result.json".to_owned(),
            byte_offset: 1234,
            line: 56,
            expected: "an array for \"messages\"".to_owned(),
            found: "a string".to_owned(),
        };
        assert_eq!(error.to_string(), "result.json: at byte 1234 (line 56): expected an array for \"messages\", found a string");
        assert_eq!(error.byte_offset(), 1234);
        assert_eq!(error.line(), Some(56));
        assert_eq!(error.source_label(), "result.json");
    }

    #[test]
    fn truncated_names_the_byte_offset() {
        let error =
            ExportError::Truncated { source_label: "result.json".to_owned(), byte_offset: 77, line: 3, context: "inside a string".to_owned() };
        assert_eq!(error.to_string(), "result.json: unexpected end of file at byte 77 (line 3) inside a string");
    }
}
