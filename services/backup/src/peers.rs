//! The services backup talks to (storage and users for snapshots, ingest for restoring
//! files), called with a short-lived admin token of the backup service's own.

use std::time::Duration;

use chatvault_common::auth::{sign_access_token, AuthConfig, Claims, ADMIN_ROLE, ROLE_HEADER};
use chatvault_common::caller::CALLER_HEADER;
use chatvault_common::config::ServiceConfig;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use crate::Error;

/// The identity the backup service acts as towards other services.
pub const SERVICE_IDENTITY: &str = "system:backup";
const TOKEN_LIFETIME_SECONDS: i64 = 300;

/// Lazily connected channels to the other services.
#[derive(Clone, Debug)]
pub struct Peers {
    pub storage: Channel,
    pub users: Channel,
    pub ingest: Channel,
    auth: AuthConfig,
}

impl Peers {
    /// Reads `CHATVAULT_BACKUP_{STORAGE,USERS,INGEST}_URL` (defaults: the local ports).
    pub fn from_config(config: &ServiceConfig) -> Result<Self, Error> {
        let storage: String = config.setting("STORAGE_URL", "http://127.0.0.1:50052".to_owned())?;
        let users: String = config.setting("USERS_URL", "http://127.0.0.1:50053".to_owned())?;
        let ingest: String = config.setting("INGEST_URL", "http://127.0.0.1:50051".to_owned())?;
        Ok(Self { storage: channel(&storage)?, users: channel(&users)?, ingest: channel(&ingest)?, auth: config.auth.clone() })
    }

    /// Wraps `message` in a request carrying the backup service's admin credentials.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: SERVICE_IDENTITY.to_owned(),
            username: SERVICE_IDENTITY.to_owned(),
            role: ADMIN_ROLE.to_owned(),
            exp: now + TOKEN_LIFETIME_SECONDS,
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let token = sign_access_token(&self.auth.jwt_secret, &claims);
        let metadata = request.metadata_mut();
        if let Ok(value) = format!("Bearer {token}").parse() {
            metadata.insert("authorization", value);
        }
        // Read by services running with CHATVAULT_AUTH=off; replaced from the token otherwise.
        metadata.insert(CALLER_HEADER, tonic::metadata::MetadataValue::from_static(SERVICE_IDENTITY));
        metadata.insert(ROLE_HEADER, tonic::metadata::MetadataValue::from_static(ADMIN_ROLE));
        request
    }
}

fn channel(url: &str) -> Result<Channel, Error> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|error| Error::Internal(format!("{url:?} is not a service URL: {error}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}
