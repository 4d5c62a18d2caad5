//! How text is kept exactly in PostgreSQL, whatever characters it holds.
//!
//! PostgreSQL's `text` (and every string inside `jsonb`) cannot hold U+0000, while a
//! Telegram export can (its JSON writer emits `\x00`-style escapes for control characters,
//! see shared/telegram-export-format.md). Every other character, control characters
//! included, is stored as it is. U+0000 is written as the two characters `U+FFFF U+FFFE`,
//! and U+FFFF itself as `U+FFFF U+FFFF`, so the mapping is reversible for every string:
//!
//! | text          | stored                     |
//! |---------------|----------------------------|
//! | `a\0b`        | `a\u{FFFF}\u{FFFE}b`        |
//! | `a\u{FFFF}b`  | `a\u{FFFF}\u{FFFF}b`        |
//! | anything else | unchanged                  |
//!
//! U+FFFF and U+FFFE are Unicode noncharacters, "permanently reserved for internal use" (The
//! Unicode Standard, section 23.7), so no real text is changed by the escape except the rare
//! text that holds U+0000 or U+FFFF. Stored text stays searchable: PostgreSQL's text search
//! parser reads noncharacters as separators, so `zebra\0quokka` is indexed as the words
//! `zebra` and `quokka`, as a reader would split it (a letter or digit as the escape's second
//! character would glue itself to the next word).
//!
//! This is the one place that knows the representation. Projections write text through
//! [`PgText`] (or [`encode`], [`encode_json`] for `jsonb`), queries read it back through
//! [`PgText`] (or [`decode`], [`decode_json`]), and backups decode it before writing CSV or
//! Parquet, so files and answers hold the text exactly as the export did.

use std::borrow::Cow;
use std::error::Error as StdError;

use bytes::BytesMut;
use serde_json::Value;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// The escape character: a Unicode noncharacter (U+FFFF).
pub const ESCAPE: char = '\u{FFFF}';
/// The character after [`ESCAPE`] that stands for U+0000: another noncharacter (U+FFFE).
const NUL_MARK: char = '\u{FFFE}';

/// Returns `text` in its stored form: U+0000 and U+FFFF escaped, everything else as is.
/// Borrows when there is nothing to escape (the common case).
pub fn encode(text: &str) -> Cow<'_, str> {
    if !text.contains(['\0', ESCAPE]) {
        return Cow::Borrowed(text);
    }
    let mut stored = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\0' => {
                stored.push(ESCAPE);
                stored.push(NUL_MARK);
            }
            ESCAPE => {
                stored.push(ESCAPE);
                stored.push(ESCAPE);
            }
            other => stored.push(other),
        }
    }
    Cow::Owned(stored)
}

/// Returns the text whose stored form is `stored` (the inverse of [`encode`]). An escape
/// character not followed by U+FFFE or another escape (never written by [`encode`]) is kept.
pub fn decode(stored: &str) -> Cow<'_, str> {
    if !stored.contains(ESCAPE) {
        return Cow::Borrowed(stored);
    }
    let mut text = String::with_capacity(stored.len());
    let mut characters = stored.chars().peekable();
    while let Some(character) = characters.next() {
        if character != ESCAPE {
            text.push(character);
            continue;
        }
        match characters.peek() {
            Some(&NUL_MARK) => {
                characters.next();
                text.push('\0');
            }
            Some(&ESCAPE) => {
                characters.next();
                text.push(ESCAPE);
            }
            _ => text.push(ESCAPE),
        }
    }
    Cow::Owned(text)
}

/// Returns `value` with every string and object key in its stored form, ready for `jsonb`.
pub fn encode_json(value: Value) -> Value {
    map_json_strings(value, &|text| match encode(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(stored) => stored,
    })
}

/// Returns `value` read from `jsonb` with every string and object key decoded.
pub fn decode_json(value: Value) -> Value {
    map_json_strings(value, &|stored| match decode(&stored) {
        Cow::Borrowed(_) => stored,
        Cow::Owned(text) => text,
    })
}

fn map_json_strings(value: Value, map: &dyn Fn(String) -> String) -> Value {
    match value {
        Value::String(text) => Value::String(map(text)),
        Value::Array(items) => Value::Array(items.into_iter().map(|item| map_json_strings(item, map)).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(key, item)| (map(key), map_json_strings(item, map))).collect()),
        other => other,
    }
}

/// Text as a PostgreSQL parameter or column value: encoded when written, decoded when read.
///
/// Write with `&PgText::from(text)` where a `&str` parameter would go; read with
/// `row.get::<_, PgText>(column).into_string()` (or `Option<PgText>` for a nullable column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgText<'a>(Cow<'a, str>);

impl<'a> PgText<'a> {
    /// Returns the text (decoded, as the export held it).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the text as an owned string.
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl<'a> From<&'a str> for PgText<'a> {
    fn from(text: &'a str) -> Self {
        Self(Cow::Borrowed(text))
    }
}

impl<'a> From<&'a String> for PgText<'a> {
    fn from(text: &'a String) -> Self {
        Self(Cow::Borrowed(text.as_str()))
    }
}

impl From<String> for PgText<'static> {
    fn from(text: String) -> Self {
        Self(Cow::Owned(text))
    }
}

impl From<PgText<'_>> for String {
    fn from(text: PgText<'_>) -> Self {
        text.into_string()
    }
}

impl ToSql for PgText<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        encode(&self.0).as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for PgText<'static> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let stored = <&str as FromSql>::from_sql(ty, raw)?;
        Ok(Self(Cow::Owned(decode(stored).into_owned())))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Reads a text column that may be NULL, decoded.
pub fn optional_text(row: &tokio_postgres::Row, column: usize) -> Option<String> {
    row.get::<_, Option<PgText>>(column).map(PgText::into_string)
}

/// Reads a text column, decoded.
pub fn text(row: &tokio_postgres::Row, column: usize) -> String {
    row.get::<_, PgText>(column).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_nul_or_escape_is_borrowed_unchanged() {
        for text in ["", "plain", "tab\there", "\u{1}\u{1f}\u{7f}", "emoji 👩‍👩‍👧 and RTL שלום", "\u{FFFE}"] {
            assert!(matches!(encode(text), Cow::Borrowed(_)), "{text:?}");
            assert!(matches!(decode(text), Cow::Borrowed(_)), "{text:?}");
        }
    }

    #[test]
    fn nul_and_the_escape_character_round_trip() {
        let cases = [
            "\0",
            "a\0b",
            "\0\0\0",
            "\u{FFFF}",
            "\u{FFFF}0",
            "\u{FFFF}\u{FFFE}",
            "\u{FFFE}\0",
            "\u{FFFF}\u{FFFF}",
            "\0\u{FFFF}0\u{FFFF}\0",
            "end with escape \u{FFFF}",
            "x\u{1}\u{1f}\0y",
        ];
        for text in cases {
            let stored = encode(text);
            assert!(!stored.contains('\0'), "{text:?} stored as {stored:?}");
            assert_eq!(decode(&stored), text, "{text:?} stored as {stored:?}");
        }
    }

    #[test]
    fn every_short_string_over_a_small_alphabet_round_trips() {
        // Exhaustive over {NUL, ESCAPE, NUL_MARK, 'a'} up to length 5: 1,365 strings.
        let alphabet = ['\0', ESCAPE, NUL_MARK, 'a'];
        let mut strings = vec![String::new()];
        let mut previous_level = vec![String::new()];
        for _ in 0..5 {
            let level: Vec<String> =
                previous_level.iter().flat_map(|text| alphabet.iter().map(move |character| format!("{text}{character}"))).collect();
            strings.extend(level.iter().cloned());
            previous_level = level;
        }
        assert!(strings.len() > 1000);
        for text in &strings {
            assert_eq!(decode(&encode(text)), text.as_str());
        }
    }

    #[test]
    fn json_strings_and_keys_round_trip() {
        let value = serde_json::json!({"te\u{0}xt": ["a\u{0}", {"n": 1, "s": "\u{FFFF}"}], "plain": true});
        let stored = encode_json(value.clone());
        assert!(!serde_json::to_string(&stored).expect("serialises").contains("\\u0000"));
        assert_eq!(decode_json(stored), value);
    }
}
