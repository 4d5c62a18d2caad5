//! Normalises peer ids (`from_id`, `actor_id`, `reply_to_peer_id`) to the modern
//! `"user123"` / `"channel123"` / `"chat123"` form.
//!
//! Exports before v2.7.2 (April 2021) wrote bare numbers (format reference, section 2.5):
//! up to v2.3 the plain user id, and from v2.4 the exporter's 64-bit peer id with the type
//! in the high 32 bits (`2^32 + id` for users, `2^33 + id` for chats and channels). In that
//! era ids fit in 32 bits, so a number below `2^32` is a user id. The exporter did not tell
//! basic groups from channels in the high bits; `2^33 + id` becomes `"channel<id>"`,
//! because the only chats that author messages (channel posts, anonymous admins,
//! supergroup-level actions) are channels.

use serde_json::Value;

const LEGACY_USER_TYPE_BITS: u64 = 1;
const LEGACY_CHAT_OR_CHANNEL_TYPE_BITS: u64 = 2;

/// Returns the modern string form of a legacy numeric peer id, or `None` when the number
/// does not fit the legacy encoding.
pub fn normalize_legacy_numeric_peer_id(numeric_id: u64) -> Option<String> {
    let type_bits = numeric_id >> 32;
    let bare_id = numeric_id & 0xFFFF_FFFF;
    match type_bits {
        0 => Some(format!("user{numeric_id}")),
        LEGACY_USER_TYPE_BITS => Some(format!("user{bare_id}")),
        LEGACY_CHAT_OR_CHANNEL_TYPE_BITS => Some(format!("channel{bare_id}")),
        _ => None,
    }
}

/// What a peer id field holds after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NormalizedPeerId {
    /// The field is absent or `null`.
    Absent,
    /// A usable id in the modern form.
    Normalized(String),
    /// A value that is not a peer id; kept as text for the warning.
    Unrecognized(String),
}

/// Normalises the value of a peer id field.
pub(crate) fn normalize_peer_id_value(value: Option<Value>) -> NormalizedPeerId {
    match value {
        None | Some(Value::Null) => NormalizedPeerId::Absent,
        Some(Value::String(text)) => match text.parse::<u64>() {
            // A bare number in a string: treat it like the numeric legacy forms.
            Ok(numeric_id) => match normalize_legacy_numeric_peer_id(numeric_id) {
                Some(normalized) => NormalizedPeerId::Normalized(normalized),
                None => NormalizedPeerId::Unrecognized(text),
            },
            Err(_) if text.is_empty() => NormalizedPeerId::Absent,
            Err(_) => NormalizedPeerId::Normalized(text),
        },
        Some(Value::Number(number)) => match number.as_u64().and_then(normalize_legacy_numeric_peer_id) {
            Some(normalized) => NormalizedPeerId::Normalized(normalized),
            None => NormalizedPeerId::Unrecognized(number.to_string()),
        },
        Some(other) => NormalizedPeerId::Unrecognized(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalize(value: Value) -> NormalizedPeerId {
        normalize_peer_id_value(Some(value))
    }

    #[test]
    fn modern_ids_are_kept() {
        for id in ["user123", "channel456", "chat789"] {
            assert_eq!(normalize(json!(id)), NormalizedPeerId::Normalized(id.to_owned()));
        }
    }

    #[test]
    fn bare_user_ids_of_old_exports_get_the_user_prefix() {
        assert_eq!(normalize(json!(123_456_789)), NormalizedPeerId::Normalized("user123456789".to_owned()));
        assert_eq!(normalize(json!(4_294_967_295_u64)), NormalizedPeerId::Normalized("user4294967295".to_owned()));
    }

    #[test]
    fn internal_64_bit_peer_ids_are_decoded_from_the_high_bits() {
        assert_eq!(normalize(json!(4_294_967_296_u64 + 77)), NormalizedPeerId::Normalized("user77".to_owned()));
        assert_eq!(normalize(json!(8_589_934_592_u64 + 1_234_567)), NormalizedPeerId::Normalized("channel1234567".to_owned()));
        assert_eq!(normalize(json!("8589934593")), NormalizedPeerId::Normalized("channel1".to_owned()));
    }

    #[test]
    fn values_that_are_not_peer_ids_are_reported() {
        assert_eq!(normalize(json!(-5)), NormalizedPeerId::Unrecognized("-5".to_owned()));
        assert_eq!(normalize(json!(3_u64 << 32)), NormalizedPeerId::Unrecognized("12884901888".to_owned()));
        assert_eq!(normalize(json!(true)), NormalizedPeerId::Unrecognized("true".to_owned()));
        assert_eq!(normalize_peer_id_value(None), NormalizedPeerId::Absent);
        assert_eq!(normalize(Value::Null), NormalizedPeerId::Absent);
    }
}
