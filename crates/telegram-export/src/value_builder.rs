//! The JSON grammar on top of [`JsonLexer`]'s tokens: object keys and array elements with
//! their commas and colons, and whole values, built or skipped.
//!
//! Builds one JSON value from the token stream, or skips it without building anything.
//! The export reader uses [`JsonLexer::read_value`] for each message object (so memory is
//! bounded by the size of one message) and [`JsonLexer::skip_value`] for top-level sections
//! it does not need (contacts, sessions, ...), which may be large. Objects keep their key
//! order (serde_json's `preserve_order`); integers become `u64`/`i64`, other numbers `f64`.
//! Nesting deeper than [`MAXIMUM_NESTING_DEPTH`] is an error rather than a stack overflow.

use std::io::BufRead;

use serde_json::{Map, Number, Value};

use crate::error::ExportError;
use crate::lexer::{JsonLexer, JsonNumber, TextPosition, Token, TokenKind};

/// How deeply arrays and objects may nest inside one value; Telegram exports nest about ten
/// levels, so this only stops hostile input from exhausting the stack.
pub const MAXIMUM_NESTING_DEPTH: usize = 256;

fn number_to_value(number: JsonNumber) -> Value {
    match number {
        JsonNumber::Unsigned(value) => Value::Number(Number::from(value)),
        JsonNumber::Signed(value) => Value::Number(Number::from(value)),
        // The lexer only produces finite floats, so from_f64 always succeeds.
        JsonNumber::Float(value) => Number::from_f64(value).map_or(Value::Null, Value::Number),
    }
}

impl<R: BufRead> JsonLexer<R> {
    /// Reads the next key of an object (the key text is then in [`Self::string_value`]) and
    /// the colon after it; returns `None` at the closing `}`. `is_first_key` says whether
    /// the object's `{` was the last token, otherwise a `,` must come first.
    pub fn next_object_key(&mut self, is_first_key: bool) -> Result<Option<TextPosition>, ExportError> {
        let mut token = self.next_token()?;
        if !is_first_key {
            match token.kind {
                TokenKind::ObjectEnd => return Ok(None),
                TokenKind::Comma => token = self.next_token()?,
                _ => return Err(self.unexpected_token_error(token, "',' or '}' after an object member")),
            }
        } else if token.kind == TokenKind::ObjectEnd {
            return Ok(None);
        }
        if token.kind != TokenKind::String {
            return Err(self.unexpected_token_error(token, "a string key in an object"));
        }
        let colon = self.next_token()?;
        if colon.kind != TokenKind::Colon {
            return Err(self.unexpected_token_error(colon, "':' after an object key"));
        }
        Ok(Some(token.position))
    }

    /// Reads the first token of the next array element; returns `None` at the closing `]`.
    /// `is_first_element` says whether the array's `[` was the last token, otherwise a `,`
    /// must come first.
    pub fn next_array_element(&mut self, is_first_element: bool) -> Result<Option<Token>, ExportError> {
        let mut token = self.next_token()?;
        if !is_first_element {
            match token.kind {
                TokenKind::ArrayEnd => return Ok(None),
                TokenKind::Comma => token = self.next_token()?,
                _ => return Err(self.unexpected_token_error(token, "',' or ']' after an array element")),
            }
        } else if token.kind == TokenKind::ArrayEnd {
            return Ok(None);
        }
        if !token.kind.starts_value() {
            return Err(self.unexpected_token_error(token, "a value in an array"));
        }
        Ok(Some(token))
    }

    /// Reads the value token after an object key; the end of a container is an error.
    pub fn next_member_value(&mut self) -> Result<Token, ExportError> {
        let token = self.next_token()?;
        if !token.kind.starts_value() {
            return Err(self.unexpected_token_error(token, "a value after ':'"));
        }
        Ok(token)
    }

    /// Builds the value that starts with `first_token` (already read) and consumes the rest
    /// of it from the input.
    pub fn read_value(&mut self, first_token: Token) -> Result<Value, ExportError> {
        self.read_value_at_depth(first_token, 0)
    }

    fn check_depth(&self, first_token: Token, depth: usize) -> Result<(), ExportError> {
        if depth >= MAXIMUM_NESTING_DEPTH {
            return Err(self.malformed_error(first_token.position, format!("values are nested more than {MAXIMUM_NESTING_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn read_value_at_depth(&mut self, first_token: Token, depth: usize) -> Result<Value, ExportError> {
        match first_token.kind {
            TokenKind::String => Ok(Value::String(self.take_string_value())),
            TokenKind::Number(number) => Ok(number_to_value(number)),
            TokenKind::True => Ok(Value::Bool(true)),
            TokenKind::False => Ok(Value::Bool(false)),
            TokenKind::Null => Ok(Value::Null),
            TokenKind::ObjectStart => {
                self.check_depth(first_token, depth)?;
                let mut object = Map::new();
                let mut is_first_key = true;
                while self.next_object_key(is_first_key)?.is_some() {
                    is_first_key = false;
                    let key = self.take_string_value();
                    let value_token = self.next_member_value()?;
                    let value = self.read_value_at_depth(value_token, depth + 1)?;
                    object.insert(key, value);
                }
                Ok(Value::Object(object))
            }
            TokenKind::ArrayStart => {
                self.check_depth(first_token, depth)?;
                let mut elements = Vec::new();
                let mut is_first_element = true;
                while let Some(element_token) = self.next_array_element(is_first_element)? {
                    is_first_element = false;
                    elements.push(self.read_value_at_depth(element_token, depth + 1)?);
                }
                Ok(Value::Array(elements))
            }
            TokenKind::ObjectEnd | TokenKind::ArrayEnd | TokenKind::Colon | TokenKind::Comma | TokenKind::EndOfInput => {
                Err(self.unexpected_token_error(first_token, "a value"))
            }
        }
    }

    /// Consumes the value that starts with `first_token` (already read) without building it,
    /// still checking that it is well formed.
    pub fn skip_value(&mut self, first_token: Token) -> Result<(), ExportError> {
        self.skip_value_at_depth(first_token, 0)
    }

    fn skip_value_at_depth(&mut self, first_token: Token, depth: usize) -> Result<(), ExportError> {
        match first_token.kind {
            TokenKind::String | TokenKind::Number(_) | TokenKind::True | TokenKind::False | TokenKind::Null => Ok(()),
            TokenKind::ObjectStart => {
                self.check_depth(first_token, depth)?;
                let mut is_first_key = true;
                while self.next_object_key(is_first_key)?.is_some() {
                    is_first_key = false;
                    let value_token = self.next_member_value()?;
                    self.skip_value_at_depth(value_token, depth + 1)?;
                }
                Ok(())
            }
            TokenKind::ArrayStart => {
                self.check_depth(first_token, depth)?;
                let mut is_first_element = true;
                while let Some(element_token) = self.next_array_element(is_first_element)? {
                    is_first_element = false;
                    self.skip_value_at_depth(element_token, depth + 1)?;
                }
                Ok(())
            }
            TokenKind::ObjectEnd | TokenKind::ArrayEnd | TokenKind::Colon | TokenKind::Comma | TokenKind::EndOfInput => {
                Err(self.unexpected_token_error(first_token, "a value"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_whole_value(input: &[u8]) -> Result<Value, ExportError> {
        let mut lexer = JsonLexer::new(input, "test.json");
        let first_token = lexer.next_token()?;
        let value = lexer.read_value(first_token)?;
        let end = lexer.next_token()?;
        assert_eq!(end.kind, TokenKind::EndOfInput);
        Ok(value)
    }

    #[test]
    fn builds_nested_values_keeping_key_order() {
        let value = read_whole_value(br#"{"z": 1, "a": [true, false, null, -5, 2.5, "s"], "m": {}}"#).expect("valid json");
        assert_eq!(value, json!({"z": 1, "a": [true, false, null, -5, 2.5, "s"], "m": {}}));
        let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn keeps_integers_as_integers() {
        let value = read_whole_value(b"[18446744073709551615, -9223372036854775808, 1e2]").expect("valid json");
        assert_eq!(value[0].as_u64(), Some(u64::MAX));
        assert_eq!(value[1].as_i64(), Some(i64::MIN));
        assert_eq!(value[2].as_f64(), Some(100.0));
        assert!(value[2].as_u64().is_none());
    }

    #[test]
    fn agrees_with_serde_json_on_standard_json() {
        let text = r#"{"id": 5, "text": ["a\nb", {"type": "bold", "text": "\u00e9\ud83d\ude00"}], "x": [[], {}, 0.125]}"#;
        let expected: Value = serde_json::from_str(text).expect("serde_json parses it");
        assert_eq!(read_whole_value(text.as_bytes()).expect("valid json"), expected);
    }

    #[test]
    fn rejects_grammar_errors() {
        for input in [&b"[1,]"[..], b"[1 2]", b"{\"a\" 1}", b"{\"a\": 1,}", b"{1: 2}", b"{\"a\":}", b"[,]", b"]"] {
            let error = read_whole_value(input).expect_err("invalid json");
            assert!(matches!(error, ExportError::MalformedJson { .. }), "{input:?}: {error}");
        }
    }

    #[test]
    fn reports_truncation_inside_containers() {
        let error = read_whole_value(b"{\"a\": [1, 2").expect_err("truncated");
        assert!(matches!(error, ExportError::Truncated { byte_offset: 11, .. }), "{error}");
    }

    #[test]
    fn refuses_too_deep_nesting_without_overflowing_the_stack() {
        let input = "[".repeat(100_000);
        let error = read_whole_value(input.as_bytes()).expect_err("too deep");
        assert!(error.to_string().contains("nested more than"), "{error}");
        let mut lexer = JsonLexer::new(input.as_bytes(), "deep.json");
        let first_token = lexer.next_token().expect("a token");
        assert!(lexer.skip_value(first_token).is_err());
    }

    #[test]
    fn skips_values_and_continues_after_them() {
        let mut lexer = JsonLexer::new(&br#"{"skip": {"a": [1, {"b": "c"}]}, "keep": 7}"#[..], "test.json");
        let start = lexer.next_token().expect("token");
        assert_eq!(start.kind, TokenKind::ObjectStart);
        assert!(lexer.next_object_key(true).expect("key").is_some());
        assert_eq!(lexer.string_value(), "skip");
        let value_token = lexer.next_member_value().expect("value");
        lexer.skip_value(value_token).expect("skips");
        assert!(lexer.next_object_key(false).expect("key").is_some());
        assert_eq!(lexer.string_value(), "keep");
        let value_token = lexer.next_member_value().expect("value");
        assert_eq!(lexer.read_value(value_token).expect("value"), json!(7));
        assert!(lexer.next_object_key(false).expect("end").is_none());
    }
}
