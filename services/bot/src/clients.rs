//! Channels to users, ingest and storage, and requests made as a linked person.

use std::time::Duration;

use chatvault_common::auth::{DelegatedTokenIssuer, ServiceTokenIssuer};
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use crate::settings::BotSettings;
use crate::BotError;

/// The largest message accepted from storage (a download chunk is 1 MiB).
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Lazily connected channels, and the credentials the bot calls with.
#[derive(Clone, Debug)]
pub struct Clients {
    users: Channel,
    ingest: Channel,
    storage: Channel,
    delegated: DelegatedTokenIssuer,
    service: ServiceTokenIssuer,
}

impl Clients {
    /// Creates the channels; nothing connects until the first call.
    pub fn connect(settings: &BotSettings, delegated: DelegatedTokenIssuer, service: ServiceTokenIssuer) -> Result<Self, BotError> {
        Ok(Self {
            users: channel(&settings.users_url, false)?,
            ingest: channel(&settings.ingest_url, true)?,
            storage: channel(&settings.storage_url, true)?,
            delegated,
            service,
        })
    }

    /// Wraps `message` in a request made as the linked person `username` (account
    /// `account_id`): a short-lived user-role token, so every service applies its own
    /// ownership rules and names the person as the actor.
    pub fn as_person<T>(&self, account_id: &str, username: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", self.delegated.mint(account_id, username))) {
            request.metadata_mut().insert("authorization", value);
        }
        // Read only by services run with CHATVAULT_AUTH=off (development).
        if let Ok(value) = MetadataValue::try_from(username) {
            request.metadata_mut().insert(chatvault_common::caller::CALLER_HEADER, value);
        }
        request
    }

    /// Wraps `message` in a request carrying the bot's own service token.
    pub fn as_service<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", self.service.authorization_metadata());
        request
    }

    pub fn accounts(&self) -> AccountsServiceClient<Channel> {
        AccountsServiceClient::new(self.users.clone())
    }

    pub fn uploads(&self) -> FileUploadServiceClient<Channel> {
        FileUploadServiceClient::new(self.ingest.clone())
    }

    pub fn files(&self) -> FilesServiceClient<Channel> {
        FilesServiceClient::new(self.storage.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn channel(url: &str, bulk: bool) -> Result<Channel, BotError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| BotError::Config(format!("{url:?} is not a service URL: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let endpoint = if bulk { chatvault_common::grpc::bulk_transfer_endpoint(endpoint) } else { endpoint };
    Ok(endpoint.connect_lazy())
}
