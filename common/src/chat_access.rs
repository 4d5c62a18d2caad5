//! Who sees which archive of a chat: the one rule storage and users apply to every query
//! (each over its own projection of the grants).
//!
//! An archive is one account's copy of a chat: the pair (owner, chat id), the owner being the
//! username of the account that imported it. A caller sees their own archives and those
//! shared with them (`ChatShared` on `chat.events`, until `ChatShareRevoked`); an admin sees
//! every archive, including those from before owners existed (owner `""`). A caller who sees
//! no archive of a chat id gets the same answer as for a chat id nobody archived, so nothing
//! tells them that another account holds it.
//!
//! In SQL the rule reads, for a row with `owner` and `chat_id`, `$admin OR owner = $caller OR
//! EXISTS (a grant of (owner, chat_id) to $caller)`.

use tonic::metadata::MetadataMap;

use crate::text::PgText;

/// The longest username accepted as a grantee (the bound of a caller name).
pub const MAX_USERNAME_BYTES: usize = 200;

/// The caller of a query or command, as the auth layer verified it (with auth off, the
/// trusted headers, which make a caller without a role an admin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub username: String,
    pub is_admin: bool,
}

impl Viewer {
    /// Returns the caller of a gRPC request.
    pub fn of_metadata(metadata: &MetadataMap) -> Self {
        Self { username: crate::caller::caller_of_metadata(metadata), is_admin: crate::auth::is_admin_metadata(metadata) }
    }

    /// Returns whether the caller may share or unshare `owner`'s archive: its owner or an admin.
    pub fn may_share(&self, owner: &str) -> bool {
        self.is_admin || self.username == owner
    }
}

/// Which archive of a chat id a request means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveChoice {
    /// The archive of this owner.
    Owner(String),
    /// The caller sees no archive of the chat (or not the one they named): answer as for a
    /// chat nobody archived.
    NotVisible,
    /// The caller sees several archives, none of them their own, and named none: these owners.
    Ambiguous(Vec<String>),
}

/// Chooses the archive a request means among the owners of the archives of the chat the
/// caller sees (`visible_owners`): the one named by `requested_owner`; without it the
/// caller's own, else the only one they see.
pub fn choose_archive(requested_owner: Option<&str>, visible_owners: &[String], viewer: &Viewer) -> ArchiveChoice {
    if let Some(requested) = requested_owner {
        return match visible_owners.iter().find(|owner| owner.as_str() == requested) {
            Some(owner) => ArchiveChoice::Owner(owner.clone()),
            None => ArchiveChoice::NotVisible,
        };
    }
    if visible_owners.contains(&viewer.username) {
        return ArchiveChoice::Owner(viewer.username.clone());
    }
    match visible_owners {
        [] => ArchiveChoice::NotVisible,
        [only] => ArchiveChoice::Owner(only.clone()),
        several => ArchiveChoice::Ambiguous(several.to_vec()),
    }
}

/// Returns the message for an ambiguous choice: which owners to choose from.
pub fn ambiguity_message(chat_id: i64, owners: &[String]) -> String {
    let listed: Vec<String> =
        owners.iter().map(|owner| if owner.is_empty() { "\"\" (imported before owners)".to_owned() } else { owner.clone() }).collect();
    format!("chat {chat_id} is archived by several accounts ({}): choose one with owner", listed.join(", "))
}

/// Returns the grantee of a share request, trimmed, or why it is refused.
pub fn checked_grantee(grantee: &str, owner: &str) -> Result<String, String> {
    let grantee = grantee.trim();
    if grantee.is_empty() || grantee.len() > MAX_USERNAME_BYTES || grantee.chars().any(char::is_control) {
        return Err(format!("grantee must name an account (1 to {MAX_USERNAME_BYTES} bytes, no control characters)"));
    }
    if grantee.to_lowercase() == owner.to_lowercase() {
        return Err(format!("{grantee} owns the chat and sees it already"));
    }
    Ok(grantee.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(username: &str, is_admin: bool) -> Viewer {
        Viewer { username: username.to_owned(), is_admin }
    }

    fn owners(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_callers_own_archive_is_the_default_then_the_only_one_they_see() {
        let bob = viewer("bob", false);
        assert_eq!(choose_archive(None, &owners(&["alice", "bob"]), &bob), ArchiveChoice::Owner("bob".into()));
        assert_eq!(choose_archive(None, &owners(&["alice"]), &bob), ArchiveChoice::Owner("alice".into()));
        assert_eq!(choose_archive(Some("alice"), &owners(&["alice", "bob"]), &bob), ArchiveChoice::Owner("alice".into()));
        let admin = viewer("root", true);
        assert_eq!(choose_archive(None, &owners(&["", "alice"]), &admin), ArchiveChoice::Ambiguous(owners(&["", "alice"])));
        assert_eq!(choose_archive(Some(""), &owners(&["", "alice"]), &admin), ArchiveChoice::Owner(String::new()));
        let message = ambiguity_message(7, &owners(&["", "alice"]));
        assert!(message.contains("alice") && message.contains("choose one with owner"), "{message}");
    }

    #[test]
    fn an_archive_the_caller_does_not_see_is_not_visible_like_one_that_does_not_exist() {
        let bob = viewer("bob", false);
        assert_eq!(choose_archive(Some("alice"), &owners(&["bob"]), &bob), ArchiveChoice::NotVisible);
        assert_eq!(choose_archive(None, &[], &bob), ArchiveChoice::NotVisible);
    }

    #[test]
    fn grantees_are_account_names_other_than_the_owner_and_owners_or_admins_share() {
        assert_eq!(checked_grantee("  bob ", "alice").expect("valid"), "bob");
        assert!(checked_grantee("", "alice").is_err());
        assert!(checked_grantee("alice", "alice").is_err());
        assert!(checked_grantee("b\u{0}b", "alice").is_err());
        assert!(checked_grantee(&"b".repeat(201), "alice").is_err());
        assert!(viewer("alice", false).may_share("alice"));
        assert!(!viewer("bob", false).may_share("alice"));
        assert!(viewer("root", true).may_share("alice"));
    }
}

/// What a batch of `chat.events` does to grants, folded: the last `ChatShared` or
/// `ChatShareRevoked` of each (owner, chat, grantee) decides. Storage and users each write
/// the result into their own grants table ([`GrantChanges::into_columns`]).
#[derive(Debug, Default)]
pub struct GrantChanges<'a> {
    last_event: std::collections::HashMap<(&'a str, i64, &'a str), Option<&'a chatvault_proto::chat::v1::ChatShared>>,
}

impl<'a> GrantChanges<'a> {
    /// Records a share.
    pub fn share(&mut self, shared: &'a chatvault_proto::chat::v1::ChatShared) {
        self.last_event.insert((shared.owner.as_str(), shared.chat_id, shared.grantee.as_str()), Some(shared));
    }

    /// Records a revoke.
    pub fn revoke(&mut self, revoked: &'a chatvault_proto::chat::v1::ChatShareRevoked) {
        self.last_event.insert((revoked.owner.as_str(), revoked.chat_id, revoked.grantee.as_str()), None);
    }

    /// Returns the grants to write and to delete as column arrays (for `unnest`), text in
    /// its stored form ([`crate::text`]).
    pub fn into_columns(self) -> GrantColumns<'a> {
        let mut columns = GrantColumns::default();
        for ((owner, chat_id, grantee), last) in self.last_event {
            match last {
                Some(shared) => {
                    columns.shared_owners.push(PgText::from(owner));
                    columns.shared_chats.push(chat_id);
                    columns.shared_grantees.push(PgText::from(grantee));
                    columns.granted_by.push(PgText::from(shared.actor.as_str()));
                    columns.granted_at.push(chrono::DateTime::from_timestamp(shared.shared_at_unix, 0).unwrap_or_default());
                }
                None => {
                    columns.revoked_owners.push(PgText::from(owner));
                    columns.revoked_chats.push(chat_id);
                    columns.revoked_grantees.push(PgText::from(grantee));
                }
            }
        }
        columns
    }
}

/// The grants of a batch as columns: shares (owner, chat, grantee, who granted, when) and
/// revokes (owner, chat, grantee).
#[derive(Debug, Default)]
pub struct GrantColumns<'a> {
    pub shared_owners: Vec<PgText<'a>>,
    pub shared_chats: Vec<i64>,
    pub shared_grantees: Vec<PgText<'a>>,
    pub granted_by: Vec<PgText<'a>>,
    pub granted_at: Vec<chrono::DateTime<chrono::Utc>>,
    pub revoked_owners: Vec<PgText<'a>>,
    pub revoked_chats: Vec<i64>,
    pub revoked_grantees: Vec<PgText<'a>>,
}
