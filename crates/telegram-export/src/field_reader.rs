//! [`FieldReader`]: reads typed fields out of a message object, moving strings out instead
//! of cloning them and turning values of the wrong type into [`Warning`]s.

use serde_json::{Map, Value};

use crate::message::{Warning, WarningKind};

/// Reads typed fields out of a message object, turning wrong types into warnings.
pub(crate) struct FieldReader<'a> {
    pub(crate) object: &'a mut Map<String, Value>,
    pub(crate) warnings: &'a mut Vec<Warning>,
}

impl FieldReader<'_> {
    pub(crate) fn warn_unexpected_type(&mut self, key: &str, expected: &str, found: &Value) {
        self.warnings.push(Warning::new(
            WarningKind::UnexpectedFieldType,
            format!("field {key:?} should be {expected}, found {found}"),
        ));
    }

    /// Moves a string out of the object; `null` and absence give `None`.
    pub(crate) fn take_string(&mut self, key: &str) -> Option<String> {
        match self.object.get_mut(key).map(Value::take) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text),
            Some(other) => {
                self.warn_unexpected_type(key, "a string", &other);
                None
            }
        }
    }

    /// Reads an integer, also when written as a string of digits (tdesktop quotes `*_unixtime`).
    pub(crate) fn get_i64(&mut self, key: &str) -> Option<i64> {
        let parsed = match self.object.get(key)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            Value::Null => return None,
            _ => None,
        };
        if parsed.is_none() {
            if let Some(found) = self.object.get(key).cloned() {
                self.warn_unexpected_type(key, "an integer", &found);
            }
        }
        parsed
    }

    pub(crate) fn get_u64(&mut self, key: &str) -> Option<u64> {
        let value = self.get_i64(key)?;
        u64::try_from(value).ok()
    }

    pub(crate) fn get_u32(&mut self, key: &str) -> Option<u32> {
        let value = self.get_i64(key)?;
        u32::try_from(value).ok()
    }

    pub(crate) fn get_bool(&self, key: &str) -> bool {
        matches!(self.object.get(key), Some(Value::Bool(true)))
    }
}
