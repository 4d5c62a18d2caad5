//! Restored uploads: a file coming back from a backup keeps the id, owner and upload time
//! it had, and is stored only when its bytes hash to the SHA-256 the backup recorded.
//! The gRPC handler checks the admin role; this module checks the identity itself.

use chatvault_proto::ingest::v1::RestoredFileIdentity;
use chrono::{DateTime, Utc};

use crate::Error;

/// The longest owner name accepted (the same bound as a caller name).
const MAX_OWNER_LEN: usize = 200;

/// The identity a restored file keeps, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredIdentity {
    /// A canonical (lowercase, hyphenated) UUID of version 7 (uploads) or 8 (attachments).
    pub file_id: String,
    pub owner: String,
    pub uploaded_at: DateTime<Utc>,
    /// Lowercase hex, 64 digits.
    pub sha256: String,
}

impl RestoredIdentity {
    /// Validates the identity sent with a restore upload; INVALID_ARGUMENT names the field.
    pub fn parse(identity: RestoredFileIdentity) -> Result<Self, Error> {
        let file_id = parsed_file_id(&identity.file_id)?;
        let owner = identity.owner.trim();
        if owner.is_empty() || owner.len() > MAX_OWNER_LEN || owner.chars().any(char::is_control) {
            return Err(Error::InvalidArgument(format!(
                "restore.owner must name the file's owner (1 to {MAX_OWNER_LEN} bytes, no control characters)"
            )));
        }
        let uploaded_at =
            (identity.uploaded_at_unix_ms > 0).then(|| DateTime::from_timestamp_millis(identity.uploaded_at_unix_ms)).flatten().ok_or_else(|| {
                Error::InvalidArgument(format!("restore.uploaded_at_unix_ms {} is not a valid upload time", identity.uploaded_at_unix_ms))
            })?;
        let sha256 = identity.sha256.trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument("restore.sha256 must be the file's SHA-256 as 64 hex digits".to_owned()));
        }
        Ok(Self { file_id, owner: owner.to_owned(), uploaded_at, sha256 })
    }
}

/// Returns `text` when it is a file id ingest could have generated: a canonical UUID of
/// version 7 (`upload`) or 8 (`attachment_file_id`). The canonical form matters because
/// part ids on the nodes are built from the id's text.
fn parsed_file_id(text: &str) -> Result<String, Error> {
    let refused = || Error::InvalidArgument(format!("restore.file_id {text:?} is not a chatvault file id (a lowercase UUID of version 7 or 8)"));
    let uuid = uuid::Uuid::parse_str(text).map_err(|_| refused())?;
    let canonical = uuid.hyphenated().to_string();
    if canonical != text || !matches!(uuid.get_version_num(), 7 | 8) {
        return Err(refused());
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> RestoredFileIdentity {
        RestoredFileIdentity {
            file_id: uuid::Uuid::now_v7().to_string(),
            owner: "alice".to_owned(),
            uploaded_at_unix_ms: 1_700_000_000_123,
            sha256: "AB".repeat(32),
        }
    }

    #[test]
    fn a_complete_identity_is_kept_with_a_lowercase_hash() {
        let given = identity();
        let parsed = RestoredIdentity::parse(given.clone()).expect("valid");
        assert_eq!(parsed.file_id, given.file_id);
        assert_eq!(parsed.owner, "alice");
        assert_eq!(parsed.uploaded_at.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(parsed.sha256, "ab".repeat(32));
    }

    #[test]
    fn attachment_ids_are_accepted_and_foreign_ids_refused() {
        let attachment = crate::import::attachments::attachment_file_id("ann", &[1, 2, 3]);
        assert!(RestoredIdentity::parse(RestoredFileIdentity { file_id: attachment, ..identity() }).is_ok());
        for file_id in [
            String::new(),
            "not-a-uuid".to_owned(),
            uuid::Uuid::new_v4().to_string(),
            uuid::Uuid::now_v7().to_string().to_uppercase(),
            uuid::Uuid::now_v7().simple().to_string(),
            format!("{}/../x", uuid::Uuid::now_v7()),
        ] {
            let refused = RestoredIdentity::parse(RestoredFileIdentity { file_id: file_id.clone(), ..identity() });
            assert!(matches!(refused, Err(Error::InvalidArgument(_))), "{file_id:?} is refused");
        }
    }

    #[test]
    fn owner_time_and_hash_are_checked() {
        let cases = [
            RestoredFileIdentity { owner: " ".to_owned(), ..identity() },
            RestoredFileIdentity { owner: "x".repeat(201), ..identity() },
            RestoredFileIdentity { uploaded_at_unix_ms: 0, ..identity() },
            RestoredFileIdentity { uploaded_at_unix_ms: i64::MAX, ..identity() },
            RestoredFileIdentity { sha256: "ab".repeat(31), ..identity() },
            RestoredFileIdentity { sha256: "zz".repeat(32), ..identity() },
        ];
        for case in cases {
            assert!(matches!(RestoredIdentity::parse(case.clone()), Err(Error::InvalidArgument(_))), "{case:?} is refused");
        }
    }
}
