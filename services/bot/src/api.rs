//! `chatvault.bot.v1.TelegramService`: link codes, the link's state and unlinking, for the
//! CLI and the web pages. Every call is the signed-in person's own.

use std::sync::Arc;

use chatvault_common::auth::{VerifiedCaller, SERVICE_ROLE};
use chatvault_proto::bot::v1::telegram_service_server::TelegramService;
use chatvault_proto::bot::v1::{
    bot_event, CreateLinkCodeRequest, CreateLinkCodeResponse, GetLinkRequest, GetLinkResponse, TelegramUnlinked, UnlinkRequest, UnlinkResponse,
};
use tonic::{Request, Response, Status};

use crate::events::Events;
use crate::store::Store;
use crate::BotError;

/// The gRPC API of the bot service.
#[derive(Clone, Debug)]
pub struct TelegramApi {
    store: Store,
    events: Events,
    /// The bot's username once `getMe` answered (for deep links).
    bot_username: Arc<std::sync::OnceLock<String>>,
}

impl TelegramApi {
    pub fn new(store: Store, events: Events, bot_username: Arc<std::sync::OnceLock<String>>) -> Self {
        Self { store, events, bot_username }
    }
}

/// Returns the person calling: their account id and username. Service tokens are refused:
/// a link is always a person's own.
fn person<T>(request: &Request<T>) -> Result<(String, String), BotError> {
    match request.extensions().get::<VerifiedCaller>() {
        Some(caller) if caller.role == SERVICE_ROLE => {
            Err(BotError::FailedPrecondition("a Telegram link belongs to a person; call with a person's token".to_owned()))
        }
        Some(caller) => Ok((caller.account_id.clone(), caller.username.clone())),
        // CHATVAULT_AUTH=off (development): the caller header names the person.
        None => {
            let username = chatvault_common::caller::caller_of_metadata(request.metadata());
            Ok((username.clone(), username))
        }
    }
}

#[tonic::async_trait]
impl TelegramService for TelegramApi {
    async fn create_link_code(&self, request: Request<CreateLinkCodeRequest>) -> Result<Response<CreateLinkCodeResponse>, Status> {
        let (account_id, username) = person(&request)?;
        if let Some(link) = self.store.link_of_account(&account_id).await? {
            return Err(BotError::FailedPrecondition(format!(
                "{username} is linked to a Telegram account already (since {}); unlink it first",
                link.linked_at.format("%Y-%m-%d")
            ))
            .into());
        }
        let (code, expires_at) = self.store.create_link_code(&account_id, &username).await?;
        let deep_link = self.bot_username.get().map(|bot| format!("https://t.me/{bot}?start={code}")).unwrap_or_default();
        Ok(Response::new(CreateLinkCodeResponse { code, expires_at_unix: expires_at.timestamp(), deep_link }))
    }

    async fn get_link(&self, request: Request<GetLinkRequest>) -> Result<Response<GetLinkResponse>, Status> {
        let (account_id, _) = person(&request)?;
        let Some(link) = self.store.link_of_account(&account_id).await? else {
            return Ok(Response::new(GetLinkResponse {
                time_zone: "UTC".to_owned(),
                store_target: "chatvault".to_owned(),
                ..GetLinkResponse::default()
            }));
        };
        let grant = self.store.grant(&account_id).await?;
        Ok(Response::new(GetLinkResponse {
            linked: true,
            telegram_user_id: link.telegram_user_id,
            telegram_username: link.telegram_username,
            linked_at_unix: link.linked_at.timestamp(),
            time_zone: link.time_zone,
            store_target: link.store_target,
            drive_linked: grant.is_some(),
            drive_needs_relink: grant.is_some_and(|grant| grant.needs_relink),
        }))
    }

    async fn unlink(&self, request: Request<UnlinkRequest>) -> Result<Response<UnlinkResponse>, Status> {
        let (account_id, username) = person(&request)?;
        let Some(link) = self.store.unlink_account(&account_id).await? else {
            return Err(BotError::NotFound(format!("{username} is not linked to a Telegram account")).into());
        };
        let event = TelegramUnlinked { account_id: account_id.clone(), username: username.clone(), telegram_user_id: link.telegram_user_id };
        self.events.publish(&username, &account_id, bot_event::Event::TelegramUnlinked(event)).await?;
        Ok(Response::new(UnlinkResponse {}))
    }
}
