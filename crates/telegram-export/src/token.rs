//! The tokens [`crate::lexer::JsonLexer`] produces: their kinds, positions and numbers,
//! and the JSON number grammar.

/// The place of a token in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPosition {
    /// Absolute offset of the token's first byte, counted from the start of the input.
    pub byte_offset: u64,
    /// 1-based line number of the token's first byte.
    pub line: u64,
}

/// A JSON number, kept as an integer whenever it is written as one and fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JsonNumber {
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    /// A number with a fraction or exponent, or an integer too large for 64 bits.
    Float(f64),
}

impl JsonNumber {
    /// Returns the number as an `i64` when it is an integer that fits.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            JsonNumber::Unsigned(value) => i64::try_from(value).ok(),
            JsonNumber::Signed(value) => Some(value),
            JsonNumber::Float(_) => None,
        }
    }
}

/// The kind of a token; strings keep their decoded text in the lexer
/// ([`crate::lexer::JsonLexer::string_value`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenKind {
    /// `{`
    ObjectStart,
    /// `}`
    ObjectEnd,
    /// `[`
    ArrayStart,
    /// `]`
    ArrayEnd,
    /// `:`
    Colon,
    /// `,`
    Comma,
    /// A string; its decoded text is in [`crate::lexer::JsonLexer::string_value`] until the next token.
    String,
    /// A number.
    Number(JsonNumber),
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
    /// The end of the input.
    EndOfInput,
}

impl TokenKind {
    /// Returns how the token reads in an error message, e.g. `a string` or `an array`.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::ObjectStart => "an object",
            TokenKind::ObjectEnd => "'}'",
            TokenKind::ArrayStart => "an array",
            TokenKind::ArrayEnd => "']'",
            TokenKind::Colon => "':'",
            TokenKind::Comma => "','",
            TokenKind::String => "a string",
            TokenKind::Number(JsonNumber::Float(_)) => "a decimal number",
            TokenKind::Number(_) => "a number",
            TokenKind::True | TokenKind::False => "a boolean",
            TokenKind::Null => "null",
            TokenKind::EndOfInput => "the end of the file",
        }
    }

    /// Returns whether the token can start a value.
    pub fn starts_value(self) -> bool {
        !matches!(self, TokenKind::ObjectEnd | TokenKind::ArrayEnd | TokenKind::Colon | TokenKind::Comma | TokenKind::EndOfInput)
    }
}

/// One token with its position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Where the token starts.
    pub position: TextPosition,
}

/// Checks the JSON number grammar `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` and
/// returns whether the number is an integer (no fraction, no exponent).
fn validate_number_grammar(text: &[u8]) -> Option<bool> {
    let mut index = 0;
    if text.first() == Some(&b'-') {
        index += 1;
    }
    let count_digits = |from: usize| text[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let integer_digits = count_digits(index);
    if integer_digits == 0 || (integer_digits > 1 && text[index] == b'0') {
        return None;
    }
    index += integer_digits;
    let mut is_integer = true;
    if text.get(index) == Some(&b'.') {
        let fraction_digits = count_digits(index + 1);
        if fraction_digits == 0 {
            return None;
        }
        index += 1 + fraction_digits;
        is_integer = false;
    }
    if matches!(text.get(index), Some(b'e' | b'E')) {
        index += 1;
        if matches!(text.get(index), Some(b'+' | b'-')) {
            index += 1;
        }
        let exponent_digits = count_digits(index);
        if exponent_digits == 0 {
            return None;
        }
        index += exponent_digits;
        is_integer = false;
    }
    (index == text.len()).then_some(is_integer)
}

pub(crate) fn parse_number_text(text: &[u8]) -> Result<JsonNumber, String> {
    let printable = String::from_utf8_lossy(text);
    let Some(is_integer) = validate_number_grammar(text) else {
        return Err(format!("invalid number '{printable}'"));
    };
    if is_integer {
        let parsed = if text.first() == Some(&b'-') {
            printable.parse::<i64>().ok().map(JsonNumber::Signed)
        } else {
            printable.parse::<u64>().ok().map(JsonNumber::Unsigned)
        };
        if let Some(number) = parsed {
            return Ok(number);
        }
    }
    match printable.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(JsonNumber::Float(value)),
        _ => Err(format!("number out of range '{printable}'")),
    }
}
