//! Channels to the other services, and requests that carry the signed-in person's token.

use std::time::Duration;

use chatvault_common::auth::{ServiceTokenIssuer, CLIENT_ADDRESS_HEADER, CLIENT_AGENT_HEADER, ROLE_HEADER};
use chatvault_common::caller::CALLER_HEADER;
use chatvault_proto::audit::v1::audit_service_client::AuditServiceClient;
use chatvault_proto::backup::v1::backup_service_client::BackupServiceClient;
use chatvault_proto::ingest::v1::file_upload_service_client::FileUploadServiceClient;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::storage::v1::files_service_client::FilesServiceClient;
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::users::v1::accounts_service_client::AccountsServiceClient;
use chatvault_proto::users::v1::users_service_client::UsersServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use crate::settings::WebSettings;
use crate::WebError;

/// Lazily connected channels to every service the pages call.
#[derive(Clone, Debug)]
pub struct Clients {
    /// The web service's own credential, for the calls it makes on a visitor's behalf
    /// before there is a session (log-in): it lets users record the visitor's address.
    service_token: ServiceTokenIssuer,
    users: Channel,
    storage: Channel,
    ingest: Channel,
    audit: Channel,
    backup: Channel,
    bot: Channel,
}

/// Who a request is made for: the person signed in to the session.
#[derive(Clone, Debug)]
pub struct Caller {
    pub username: String,
    pub role: String,
    pub access_token: String,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == chatvault_common::auth::ADMIN_ROLE
    }

    /// Wraps `message` in a request with the caller's bearer token (and, for services run
    /// with `CHATVAULT_AUTH=off`, the caller headers they read instead; with auth on, the
    /// services replace those from the verified token).
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(format!("Bearer {}", self.access_token)) {
            metadata.insert("authorization", value);
        }
        if let Ok(value) = MetadataValue::try_from(self.username.as_str()) {
            metadata.insert(CALLER_HEADER, value);
        }
        if let Ok(value) = MetadataValue::try_from(self.role.as_str()) {
            metadata.insert(ROLE_HEADER, value);
        }
        request
    }
}

impl Clients {
    /// Creates the channels; nothing connects until the first call.
    pub fn connect(settings: &WebSettings, service_token: ServiceTokenIssuer) -> Result<Self, WebError> {
        Ok(Self {
            service_token,
            users: channel(&settings.users_url, false)?,
            storage: channel(&settings.storage_url, true)?,
            ingest: channel(&settings.ingest_url, true)?,
            audit: channel(&settings.audit_url, false)?,
            backup: channel(&settings.backup_url, false)?,
            bot: channel(&settings.bot_url, false)?,
        })
    }

    pub fn accounts(&self) -> AccountsServiceClient<Channel> {
        AccountsServiceClient::new(self.users.clone())
    }

    /// A log-in request made for a visitor at `address` with browser `agent`: carries the
    /// web service's own token, so users records where the log-in came from (the header is
    /// dropped from anyone else's request).
    pub fn visitor_request<T>(&self, message: T, address: &str, agent: &str) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.service_token.authorization_metadata());
        let agent: String = agent.chars().filter(|character| character.is_ascii() && !character.is_ascii_control()).take(200).collect();
        for (name, value) in [(CLIENT_ADDRESS_HEADER, address), (CLIENT_AGENT_HEADER, agent.as_str())] {
            if let Ok(value) = MetadataValue::try_from(value) {
                metadata.insert(name, value);
            }
        }
        request
    }

    pub fn users(&self) -> UsersServiceClient<Channel> {
        UsersServiceClient::new(self.users.clone())
    }

    pub fn storage(&self) -> StorageServiceClient<Channel> {
        StorageServiceClient::new(self.storage.clone())
    }

    pub fn files(&self) -> FilesServiceClient<Channel> {
        FilesServiceClient::new(self.storage.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub fn ingest(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.ingest.clone())
    }

    pub fn uploads(&self) -> FileUploadServiceClient<Channel> {
        FileUploadServiceClient::new(self.ingest.clone())
    }

    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.audit.clone())
    }

    pub fn telegram(&self) -> chatvault_proto::bot::v1::telegram_service_client::TelegramServiceClient<Channel> {
        chatvault_proto::bot::v1::telegram_service_client::TelegramServiceClient::new(self.bot.clone())
    }

    pub fn backup(&self) -> BackupServiceClient<Channel> {
        BackupServiceClient::new(self.backup.clone())
    }
}

/// The largest message the web service accepts from storage (a download chunk is 1 MiB).
const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

fn channel(url: &str, bulk: bool) -> Result<Channel, WebError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| WebError::Config(format!("{url:?} is not a service URL: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    let endpoint = if bulk { chatvault_common::grpc::bulk_transfer_endpoint(endpoint) } else { endpoint };
    Ok(endpoint.connect_lazy())
}
