//! Storage's side of archive visibility: the rule is [`chatvault_common::chat_access`], the
//! SQL is [`crate::db::sql::VISIBLE_CHAT_OWNERS`] and the `visible_chat!` condition; this
//! turns the rule's choices into storage's answers.

use chatvault_common::chat_access::{ambiguity_message, ArchiveChoice};
pub use chatvault_common::chat_access::{checked_grantee, Viewer};

use crate::Error;

/// Returns the answer for a chat the caller does not see: the one for a chat nobody archived.
pub fn chat_not_found(chat_id: i64) -> Error {
    Error::NotFound(format!("no chat with id {chat_id} is archived"))
}

/// Returns the owner of the archive of `chat_id` a request means among the owners of the
/// archives the caller sees (see [`chatvault_common::chat_access::choose_archive`]).
pub fn choose_archive(chat_id: i64, requested_owner: Option<&str>, visible_owners: &[String], viewer: &Viewer) -> Result<String, Error> {
    match chatvault_common::chat_access::choose_archive(requested_owner, visible_owners, viewer) {
        ArchiveChoice::Owner(owner) => Ok(owner),
        ArchiveChoice::NotVisible => Err(chat_not_found(chat_id)),
        ArchiveChoice::Ambiguous(owners) => Err(Error::InvalidArgument(ambiguity_message(chat_id, &owners))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(error: Error) -> (tonic::Code, String) {
        let status = tonic::Status::from(error);
        (status.code(), status.message().to_owned())
    }

    #[test]
    fn an_archive_the_caller_does_not_see_answers_exactly_like_one_that_does_not_exist() {
        let bob = Viewer { username: "bob".to_owned(), is_admin: false };
        let unseen = status_of(choose_archive(7, Some("alice"), &["bob".to_owned()], &bob).expect_err("not visible"));
        let missing = status_of(choose_archive(7, None, &[], &bob).expect_err("nothing"));
        assert_eq!(unseen, missing);
        assert_eq!(missing, (tonic::Code::NotFound, "no chat with id 7 is archived".to_owned()));
    }
}
