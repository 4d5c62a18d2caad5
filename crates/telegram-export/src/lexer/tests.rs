//! Unit tests of the lexer: escapes (including tdesktop's `\xHH`), numbers, positions,
//! UTF-8 errors and reading across buffer boundaries.

use std::io::BufReader;

use super::*;

fn lex_all(input: &[u8]) -> Result<Vec<(TokenKind, Option<String>)>, ExportError> {
    let mut lexer = JsonLexer::new(input, "test.json");
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        if token.kind == TokenKind::EndOfInput {
            return Ok(tokens);
        }
        let text = (token.kind == TokenKind::String).then(|| lexer.string_value().to_owned());
        tokens.push((token.kind, text));
    }
}

fn lex_single_string(input: &[u8]) -> Result<String, ExportError> {
    let mut lexer = JsonLexer::new(input, "test.json");
    let token = lexer.next_token()?;
    assert_eq!(token.kind, TokenKind::String);
    Ok(lexer.take_string_value())
}

#[test]
fn decodes_standard_escapes() {
    let text = lex_single_string(br#""a\"b\\c\/d\be\ff\ng\rh\ti""#).expect("valid string");
    assert_eq!(text, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti");
}

#[test]
fn decodes_unicode_escapes_and_surrogate_pairs() {
    let text = lex_single_string(br#""\u00e9\u2028\u2029\ud83d\ude00\uD83D\uDC4D""#).expect("valid string");
    assert_eq!(text, "é\u{2028}\u{2029}😀👍");
}

#[test]
fn decodes_tdesktop_hex_escapes_as_latin_code_points() {
    let text = lex_single_string(br#""1=412\x012=97180\x0B\x1f""#).expect("tdesktop string");
    assert_eq!(text, "1=412\u{1}2=97180\u{b}\u{1f}");
}

#[test]
fn keeps_escaped_backslash_before_x_as_text() {
    let text = lex_single_string(br#""C:\\x41\\\x41""#).expect("valid string");
    assert_eq!(text, "C:\\x41\\A");
}

#[test]
fn keeps_raw_utf8_emoji_and_rtl_text_exactly() {
    let original = "👩\u{200d}💻 שלום مرحبا 🇺🇦 e\u{301}";
    let input = format!("\"{original}\"");
    assert_eq!(lex_single_string(input.as_bytes()).expect("valid string"), original);
}

#[test]
fn rejects_invalid_escapes_and_lone_surrogates() {
    for input in [&br#""\q""#[..], br#""\x4""#, br#""\xZZ""#, br#""\ud83d""#, br#""\ud83dx""#, br#""\ude00""#, br#""\ud83d\u0041""#] {
        let error = lex_single_string(input).expect_err("invalid escape");
        assert!(matches!(error, ExportError::MalformedJson { byte_offset: 1, .. }), "{input:?}: {error}");
    }
}

#[test]
fn reports_invalid_utf8_with_its_byte_offset() {
    let error = lex_single_string(b"\"ab\\ncd\xff\"").expect_err("invalid utf-8");
    assert!(matches!(error, ExportError::InvalidUtf8 { byte_offset: 7, line: 1, .. }), "{error}");
    let error = lex_single_string(b"\"\xc3\\n\"").expect_err("split sequence");
    assert!(matches!(error, ExportError::InvalidUtf8 { byte_offset: 1, .. }), "{error}");
    assert!(error.to_string().contains("invalid utf-8"));
}

#[test]
fn reports_truncated_strings_with_the_end_offset() {
    let error = lex_single_string(b"\"abc").expect_err("truncated");
    assert!(matches!(error, ExportError::Truncated { byte_offset: 4, .. }), "{error}");
    assert_eq!(error.to_string(), "test.json: unexpected end of file at byte 4 (line 1) inside a string");
    let error = lex_single_string(b"\"abc\\").expect_err("truncated escape");
    assert!(matches!(error, ExportError::Truncated { byte_offset: 5, .. }), "{error}");
}

#[test]
fn parses_numbers_as_integers_or_floats() {
    let tokens = lex_all(b"[0, -0, 42, -999999950, 18446744073709551615, 18446744073709551616, 1.5, -2e3, 3E+2]").expect("valid numbers");
    let numbers: Vec<JsonNumber> = tokens
        .into_iter()
        .filter_map(|(kind, _)| match kind {
            TokenKind::Number(number) => Some(number),
            _ => None,
        })
        .collect();
    assert_eq!(
        numbers,
        [
            JsonNumber::Unsigned(0),
            JsonNumber::Signed(0),
            JsonNumber::Unsigned(42),
            JsonNumber::Signed(-999_999_950),
            JsonNumber::Unsigned(u64::MAX),
            JsonNumber::Float(18_446_744_073_709_551_616.0),
            JsonNumber::Float(1.5),
            JsonNumber::Float(-2000.0),
            JsonNumber::Float(300.0),
        ]
    );
}

#[test]
fn rejects_malformed_numbers() {
    for input in [&b"01"[..], b"-", b"1.", b".5", b"1e", b"1-2", b"--1", b"1e999"] {
        let error = lex_all(input).expect_err("invalid number");
        assert!(matches!(error, ExportError::MalformedJson { .. }), "{input:?}: {error}");
    }
}

#[test]
fn reads_literals_and_rejects_misspelled_ones() {
    let tokens = lex_all(b"[true,false,null]").expect("valid literals");
    let kinds: Vec<TokenKind> = tokens.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        [TokenKind::ArrayStart, TokenKind::True, TokenKind::Comma, TokenKind::False, TokenKind::Comma, TokenKind::Null, TokenKind::ArrayEnd]
    );
    assert!(matches!(lex_all(b"nul"), Err(ExportError::Truncated { .. })));
    assert!(matches!(lex_all(b"trux"), Err(ExportError::MalformedJson { .. })));
}

#[test]
fn tracks_byte_offsets_and_lines_of_tokens() {
    let input = b"{\n \"a\": 1,\n \"b\": \"x\\ny\"\n}";
    let mut lexer = JsonLexer::new(&input[..], "test.json");
    let mut positions = Vec::new();
    loop {
        let token = lexer.next_token().expect("valid json");
        positions.push((token.kind, token.position.byte_offset, token.position.line));
        if token.kind == TokenKind::EndOfInput {
            break;
        }
    }
    assert_eq!(positions[0], (TokenKind::ObjectStart, 0, 1));
    assert_eq!(positions[1], (TokenKind::String, 3, 2));
    assert_eq!(positions[3], (TokenKind::Number(JsonNumber::Unsigned(1)), 8, 2));
    assert_eq!(positions[5], (TokenKind::String, 12, 3));
    assert_eq!(positions[7], (TokenKind::String, 17, 3));
    assert_eq!(positions[8], (TokenKind::ObjectEnd, 24, 4));
    assert_eq!(positions[9], (TokenKind::EndOfInput, 25, 4));
    assert_eq!(lexer.bytes_read(), input.len() as u64);
}

#[test]
fn reads_tokens_across_tiny_buffer_boundaries() {
    let input = "{\"k\\u00e9y\": [\"Привет \\x0B 👩\u{200d}💻\", -12.5e1, true, null, 123456789]}";
    let expected = lex_all(input.as_bytes()).expect("valid json");
    for capacity in 1..8 {
        let mut lexer = JsonLexer::new(BufReader::with_capacity(capacity, input.as_bytes()), "test.json");
        let mut tokens = Vec::new();
        loop {
            let token = lexer.next_token().expect("valid json");
            if token.kind == TokenKind::EndOfInput {
                break;
            }
            let text = (token.kind == TokenKind::String).then(|| lexer.string_value().to_owned());
            tokens.push((token.kind, text));
        }
        assert_eq!(tokens, expected, "buffer capacity {capacity}");
    }
}

#[test]
fn reports_invalid_utf8_offsets_across_buffer_boundaries() {
    let input = b"[\"abcdef\\tgh\xe2\x82\"]";
    for capacity in 1..6 {
        let mut lexer = JsonLexer::new(BufReader::with_capacity(capacity, &input[..]), "test.json");
        assert_eq!(lexer.next_token().expect("array").kind, TokenKind::ArrayStart);
        let error = lexer.next_token().expect_err("invalid utf-8");
        assert!(matches!(error, ExportError::InvalidUtf8 { byte_offset: 12, .. }), "capacity {capacity}: {error}");
    }
}

#[test]
fn skips_a_leading_byte_order_mark() {
    let tokens = lex_all(b"\xEF\xBB\xBF[]").expect("valid json");
    assert_eq!(tokens.len(), 2);
}

#[test]
fn rejects_unexpected_characters() {
    let error = lex_all(b"[1] x").expect_err("garbage");
    assert!(error.to_string().contains("unexpected character 'x'"), "{error}");
    assert_eq!(error.byte_offset(), 4);
    let error = lex_all(b"\xd0\x9f").expect_err("non-ascii outside strings");
    assert!(error.to_string().contains("unexpected byte 0xd0"), "{error}");
}

#[test]
fn accepts_raw_control_characters_inside_strings_and_counts_raw_newlines() {
    let mut lexer = JsonLexer::new(&b"\"a\nb\tc\" 1"[..], "test.json");
    assert_eq!(lexer.next_token().expect("string").kind, TokenKind::String);
    assert_eq!(lexer.string_value(), "a\nb\tc");
    let number = lexer.next_token().expect("number");
    assert_eq!(number.position.line, 2);
}
