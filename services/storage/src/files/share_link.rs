//! Share-link secrets: a token is 32 random bytes in base64url; only its SHA-256 is
//! stored, and that hash in hex is the link's id (what ListShareLinks shows and
//! RevokeShareLink accepts instead of the token). A password is kept as an Argon2 PHC string.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;

use crate::Error;

/// Returns a new random token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns the stored form of a token (hex SHA-256).
pub fn token_hash(token: &str) -> String {
    chatvault_file_store::hashing::sha256_hex(token.as_bytes())
}

/// Returns whether `token` has the shape of a token this service hands out.
pub fn token_is_well_formed(token: &str) -> bool {
    token.len() == 43 && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Returns the id of the link a request names: the hash of `token`, or `link_id` (64 hex
/// digits, any case) itself. Exactly one of them must be given.
pub fn link_id_of_request(token: &str, link_id: &str) -> Result<String, Error> {
    match (token.trim(), link_id.trim()) {
        ("", "") => Err(Error::InvalidArgument("give the share link's token or its link_id".to_owned())),
        (_, "") => Ok(token_hash(token.trim())),
        ("", link_id) if link_id.len() == 64 && link_id.bytes().all(|byte| byte.is_ascii_hexdigit()) => Ok(link_id.to_ascii_lowercase()),
        ("", _) => Err(Error::InvalidArgument("link_id must be the 64 hex digits ListShareLinks shows".to_owned())),
        (_, _) => Err(Error::InvalidArgument("give the share link's token or its link_id, not both".to_owned())),
    }
}

/// Hashes a password with Argon2id and a random salt. CPU heavy: call off async threads.
pub fn hash_password(password: &str) -> Result<String, Error> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| Error::Internal(format!("salt: {error}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Internal(format!("password hash: {error}")))
}

/// Returns whether `password` matches `stored` (a PHC string). CPU heavy.
pub fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_formed() {
        let (first, second) = (new_token(), new_token());
        assert_ne!(first, second);
        assert!(token_is_well_formed(&first), "{first}");
        assert!(!token_is_well_formed("short"));
        assert_eq!(token_hash(&first).len(), 64);
    }

    #[test]
    fn a_request_names_a_link_by_exactly_one_of_token_and_id() {
        let token = new_token();
        let link_id = token_hash(&token);
        assert_eq!(link_id_of_request(&token, "").expect("by token"), link_id);
        assert_eq!(link_id_of_request(&format!(" {token}\n"), "").expect("trimmed token"), link_id);
        assert_eq!(link_id_of_request("", &link_id).expect("by id"), link_id);
        assert_eq!(link_id_of_request("", &link_id.to_ascii_uppercase()).expect("upper-case id"), link_id);
        for (token_given, id_given) in [("", ""), (" ", "\t"), (token.as_str(), link_id.as_str()), ("", "abc"), ("", &"g".repeat(64))] {
            assert!(
                matches!(link_id_of_request(token_given, id_given), Err(Error::InvalidArgument(_))),
                "token {token_given:?} with link_id {id_given:?} is refused"
            );
        }
    }

    #[test]
    fn passwords_verify_only_when_equal() {
        let stored = hash_password("correct horse").expect("hashes");
        assert!(password_matches("correct horse", &stored));
        assert!(!password_matches("wrong", &stored));
        assert!(!password_matches("correct horse", "not a hash"));
    }
}
