//! Opening a share link: the one path behind the `/s/{token}` HTTP route and the public
//! gRPC calls DescribeShareLink and OpenShareLink, so all of them answer alike.
//!
//! A link that does not work now (unknown, expired, revoked, its file deleted) is refused
//! the same way whatever the reason. A link's password is checked through the service's one
//! [`SharePasswordGuard`] (the catalog's), so failures per link are counted across both
//! protocols and the verification slots are shared. Describing a link checks no password
//! and so reveals nothing of its file while one is required.

use chatvault_proto::storage::v1::FileInfo;
use std::time::Duration;

use super::catalog::FileCatalog;
use super::download::FileManifest;
use super::share_password_guard::{AttemptRefused, CheckRefused};
use crate::Error;

/// Why a share link was not opened. Each protocol words these its own way (the HTTP route
/// adds where a password goes) and maps them to its own status.
#[derive(Debug, thiserror::Error)]
pub enum ShareLinkRefusal {
    /// Unknown, expired or revoked, or its file was deleted: all alike.
    #[error("no such share link, or it expired or was revoked")]
    NotFound,
    /// The link has a password and none was given.
    #[error("this share link needs a password")]
    PasswordMissing,
    #[error("wrong password for this share link")]
    PasswordWrong,
    /// The link is past its failed passwords per minute; even the right one waits.
    #[error("too many wrong passwords for this share link; try again in {} seconds", seconds_to_wait(*.retry_after))]
    TooManyFailures { retry_after: Duration },
    /// The table of links with recent failures is full.
    #[error("{}", AttemptRefused::TooManyLinksTracked)]
    TooManyLinksGuessed,
    /// Every verification slot stayed busy for the whole wait.
    #[error("too many share link passwords are being checked right now; try again in a moment")]
    ChecksBusy,
    /// The catalog could not answer (database, nodes).
    #[error(transparent)]
    Failed(#[from] Error),
}

impl ShareLinkRefusal {
    /// Returns how many whole seconds to wait before trying again, for the refusals that
    /// pass with time.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ShareLinkRefusal::TooManyFailures { retry_after } => Some(seconds_to_wait(*retry_after)),
            ShareLinkRefusal::TooManyLinksGuessed => Some(60),
            ShareLinkRefusal::ChecksBusy => Some(1),
            _ => None,
        }
    }
}

/// The gRPC answer to a refused link: NOT_FOUND, UNAUTHENTICATED for a missing or wrong
/// password, RESOURCE_EXHAUSTED past the failures, UNAVAILABLE when every slot is busy.
impl From<ShareLinkRefusal> for tonic::Status {
    fn from(refusal: ShareLinkRefusal) -> Self {
        match refusal {
            ShareLinkRefusal::NotFound => tonic::Status::not_found(refusal.to_string()),
            ShareLinkRefusal::PasswordMissing => tonic::Status::unauthenticated(format!("{refusal}: give it in the request's password field")),
            ShareLinkRefusal::PasswordWrong => tonic::Status::unauthenticated(refusal.to_string()),
            ShareLinkRefusal::TooManyFailures { .. } | ShareLinkRefusal::TooManyLinksGuessed => {
                tonic::Status::resource_exhausted(refusal.to_string())
            }
            ShareLinkRefusal::ChecksBusy => tonic::Status::unavailable(refusal.to_string()),
            ShareLinkRefusal::Failed(error) => error.into(),
        }
    }
}

/// Returns whole seconds to wait, rounded up, at least one.
pub fn seconds_to_wait(duration: Duration) -> u64 {
    (duration.as_secs() + u64::from(duration.subsec_nanos() > 0)).max(1)
}

/// What a share link shows before its password is given.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareLinkPreview {
    pub password_required: bool,
    pub expires_at_unix_ms: i64,
    /// The file, only for a link without a password.
    pub file: Option<FileInfo>,
}

impl FileCatalog {
    /// Returns what the link `token` shows without its password: whether it needs one, when
    /// it expires and, for a link without a password, its file.
    pub async fn describe_share_link(&self, token: &str) -> Result<ShareLinkPreview, ShareLinkRefusal> {
        let link = self.live_share_link(token.trim()).await?.ok_or(ShareLinkRefusal::NotFound)?;
        let password_required = link.password_hash.is_some();
        Ok(ShareLinkPreview { password_required, expires_at_unix_ms: link.expires_at_unix_ms, file: (!password_required).then_some(link.file) })
    }

    /// Opens the link `token`: checks that it works now, then its password (bounded by the
    /// guard), and returns the manifest to stream its file from.
    pub async fn open_share_link(&self, token: &str, password: Option<&str>) -> Result<FileManifest, ShareLinkRefusal> {
        let link = self.live_share_link(token.trim()).await?.ok_or(ShareLinkRefusal::NotFound)?;
        if let Some(stored) = &link.password_hash {
            let given = password.filter(|password| !password.is_empty()).ok_or(ShareLinkRefusal::PasswordMissing)?;
            match self.share_passwords().check(&link.token_sha256, given, stored).await {
                Ok(true) => {}
                Ok(false) => return Err(ShareLinkRefusal::PasswordWrong),
                Err(CheckRefused::Limited(AttemptRefused::TooManyFailures { retry_after })) => {
                    tracing::info!(link = &link.token_sha256[..12], "share link password attempts limited");
                    return Err(ShareLinkRefusal::TooManyFailures { retry_after });
                }
                Err(CheckRefused::Limited(AttemptRefused::TooManyLinksTracked)) => {
                    tracing::warn!("share link password attempts limited: the table of guessed links is full");
                    return Err(ShareLinkRefusal::TooManyLinksGuessed);
                }
                Err(CheckRefused::Busy) => return Err(ShareLinkRefusal::ChecksBusy),
            }
        }
        self.manifest_of_shared_file(&link.file.file_id).await?.ok_or(ShareLinkRefusal::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        assert_eq!(seconds_to_wait(Duration::from_millis(40_001)), 41);
        assert_eq!(seconds_to_wait(Duration::from_secs(40)), 40);
        assert_eq!(seconds_to_wait(Duration::ZERO), 1);
    }

    #[test]
    fn refusals_map_to_the_grpc_codes_the_proto_names() {
        let status = |refusal: ShareLinkRefusal| tonic::Status::from(refusal);
        assert_eq!(status(ShareLinkRefusal::NotFound).code(), tonic::Code::NotFound);
        let missing = status(ShareLinkRefusal::PasswordMissing);
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("needs a password"), "{}", missing.message());
        let wrong = status(ShareLinkRefusal::PasswordWrong);
        assert_eq!((wrong.code(), wrong.message()), (tonic::Code::Unauthenticated, "wrong password for this share link"));
        let limited = status(ShareLinkRefusal::TooManyFailures { retry_after: Duration::from_millis(1500) });
        assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
        assert!(limited.message().contains("try again in 2 seconds"), "{}", limited.message());
        assert_eq!(status(ShareLinkRefusal::TooManyLinksGuessed).code(), tonic::Code::ResourceExhausted);
        assert_eq!(status(ShareLinkRefusal::ChecksBusy).code(), tonic::Code::Unavailable);
        assert_eq!(status(ShareLinkRefusal::Failed(Error::Unavailable("node down".to_owned()))).code(), tonic::Code::Unavailable);
    }
}
