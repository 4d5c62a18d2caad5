//! Authentication: HS256 JSON Web Tokens issued by the users service and verified here, in
//! one tower layer every service puts in front of its gRPC services and REST routes.
//!
//! The layer is the trust boundary of caller identity. With auth on (the default) it strips
//! any client-sent `x-chatvault-user` / `x-chatvault-role` header, verifies the bearer token
//! and writes the token's username and role into those headers (and a [`VerifiedCaller`]
//! into the request extensions), so [`crate::caller`]'s functions keep working unchanged.
//! With `CHATVAULT_AUTH=off` it trusts the headers as before and treats a caller without a
//! role header as an admin (the behaviour of a single-user local install).
//!
//! Two more duties sit in the layer because it is the one place every request passes:
//! it refuses tokens issued before their account's last password change
//! ([`crate::revocation`]), and it runs the request as its caller
//! ([`crate::caller::act_as`]) so the events it publishes carry an `actor` header.
//!
//! HS256 is small enough to implement on `hmac` + `sha2` (constant-time comparison through
//! `Mac::verify_slice`); this avoids pulling a whole JOSE crate with RSA and EC into every
//! service.
//!
//! The signing secret is the installation's own: there is no built-in default. A missing,
//! short (under [`MIN_JWT_SECRET_BYTES`]) or publicly known secret ([`PUBLIC_JWT_SECRETS`])
//! stops every service at start-up, unless `CHATVAULT_INSECURE_DEV=1` says the machine is a
//! developer's, which is logged as a warning by every service.
//!
//! Services call each other with short-lived tokens of the role [`SERVICE_ROLE`] that they
//! mint themselves ([`ServiceTokenIssuer`]). Storage nodes accept nothing else
//! ([`AuthConfig::services_only_grpc_layer`]). A shared-secret token was chosen over mutual
//! TLS because every service already holds the installation's secret and verifies HS256
//! with this layer: nodes need one more variable (`CHATVAULT_JWT_SECRET`) instead of a
//! certificate authority, per-node certificates and their renewal. What it does not give is
//! transport encryption; a token seen on the wire is good for [`SERVICE_TOKEN_LIFETIME`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::caller::CALLER_HEADER;
use crate::config::Secret;
use crate::revocation::PasswordChanges;
use crate::{Error, Result};

/// The header carrying the verified caller's role (`user` or `admin`), written by the layer.
pub const ROLE_HEADER: &str = "x-chatvault-role";
/// The role that may register nodes, restore backups and read the whole audit trail.
pub const ADMIN_ROLE: &str = "admin";
/// The role of every newly registered account.
pub const USER_ROLE: &str = "user";
/// The role of the platform's own services calling each other (storage nodes accept only
/// it); never given to an account.
pub const SERVICE_ROLE: &str = "service";
/// How long a token minted by [`ServiceTokenIssuer`] stays valid.
pub const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The variable holding the installation's HS256 signing secret.
pub const JWT_SECRET_VARIABLE: &str = "CHATVAULT_JWT_SECRET";
/// The variable that lets services start with a weak or public secret (`1`, `true`, `on`).
pub const INSECURE_DEV_VARIABLE: &str = "CHATVAULT_INSECURE_DEV";
/// Shortest signing secret accepted, in bytes (HS256 keys should carry 256 bits).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// The secret services used before installations generated their own. It is public, so it
/// is refused; with `CHATVAULT_INSECURE_DEV=1` and no secret set it is still used, so the
/// services of a developer's machine agree.
pub const DEVELOPMENT_JWT_SECRET: &str = "chatvault-development-secret-do-not-use-in-production";
/// Every signing secret that has been public in this repository: tokens signed with any of
/// them can be forged by anyone, so services refuse to start with one.
pub const PUBLIC_JWT_SECRETS: &[&str] = &[DEVELOPMENT_JWT_SECRET, "chatvault-test-secret"];

/// The address of the person a service calls for (the web service's visitor), as that
/// service saw it. Trusted only from the platform's own services: the auth layer removes it
/// from every other request.
pub const CLIENT_ADDRESS_HEADER: &str = "x-chatvault-client-address";
/// The browser (User-Agent) of the person a service calls for; trusted like
/// [`CLIENT_ADDRESS_HEADER`].
pub const CLIENT_AGENT_HEADER: &str = "x-chatvault-client-agent";

/// gRPC methods callable without a token (path prefixes).
const PUBLIC_GRPC_PATHS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/chatvault.users.v1.AccountsService/Register",
    "/chatvault.users.v1.AccountsService/Login",
    "/chatvault.users.v1.AccountsService/Refresh",
    "/chatvault.users.v1.AccountsService/RegistrationStatus",
    // A share link's token is its own credential (as on the `/s/` HTTP route).
    "/chatvault.storage.v1.FilesService/DescribeShareLink",
    "/chatvault.storage.v1.FilesService/OpenShareLink",
    // Retired: the users service refuses every call (the first admin comes from
    // CHATVAULT_USERS_BOOTSTRAP_ADMIN). Public so an old client reads why instead of a
    // missing-token error.
    "/chatvault.users.v1.AccountsService/BootstrapAdmin",
];
/// gRPC methods of a storage node callable without a service token: probes and reflection.
const PUBLIC_SERVICE_GRPC_PATHS: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection."];
/// REST paths callable without a token (path prefixes): probes and share links.
/// `/oauth/google/callback` is Google's redirect back to the bot service (the `state` it
/// carries is the credential); `/telegram/webhook` is checked by Telegram's secret-token
/// header instead.
const PUBLIC_HTTP_PATHS: &[&str] = &["/healthz", "/metrics", "/s/", "/oauth/google/callback", "/telegram/webhook"];

/// Authentication settings shared by every service.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `CHATVAULT_AUTH`: `on` (default) or `off`.
    pub enabled: bool,
    /// `CHATVAULT_JWT_SECRET`: the installation's HS256 key, at least
    /// [`MIN_JWT_SECRET_BYTES`] bytes and not public (see [`check_jwt_secret`]).
    pub jwt_secret: Secret,
    /// Why the secret would have been refused, when `CHATVAULT_INSECURE_DEV=1` let it
    /// through; every service warns about it at start.
    pub insecure_secret: Option<JwtSecretWeakness>,
    /// `CHATVAULT_JWT_ACCESS_TTL_SECONDS`, default 900.
    pub access_ttl: Duration,
    /// The last password change of each account, filled by
    /// [`crate::revocation::follow_password_changes`]; shared by every clone.
    pub password_changes: PasswordChanges,
}

/// Why a signing secret is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtSecretWeakness {
    #[error("it is not set")]
    Missing,
    #[error("it has {bytes} bytes, fewer than {MIN_JWT_SECRET_BYTES}")]
    TooShort { bytes: usize },
    #[error("it has been published (a default of an older version or of the tests), so anyone can sign tokens with it")]
    Public,
}

/// Returns why `secret` must not sign tokens, or `Ok` when it is long and not public.
pub fn check_jwt_secret(secret: &str) -> std::result::Result<(), JwtSecretWeakness> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(JwtSecretWeakness::Missing);
    }
    if PUBLIC_JWT_SECRETS.contains(&secret) {
        return Err(JwtSecretWeakness::Public);
    }
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(JwtSecretWeakness::TooShort { bytes: secret.len() });
    }
    Ok(())
}

impl AuthConfig {
    /// Reads the auth settings from `environment`.
    ///
    /// Errors with [`Error::Config`] naming `CHATVAULT_JWT_SECRET` and how to generate one
    /// when the secret is missing, shorter than [`MIN_JWT_SECRET_BYTES`] or public, unless
    /// `CHATVAULT_INSECURE_DEV` is `1`; with auth off too, because services sign the
    /// tokens they send to storage nodes with it either way.
    pub fn from_env_map(environment: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| environment.get(key).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let enabled = match get("CHATVAULT_AUTH").as_deref() {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(other) => return Err(Error::Config(format!("CHATVAULT_AUTH must be on or off, not {other:?}"))),
        };
        let insecure_development = match get(INSECURE_DEV_VARIABLE).as_deref() {
            None | Some("0") | Some("false") | Some("off") => false,
            Some("1") | Some("true") | Some("on") => true,
            Some(other) => return Err(Error::Config(format!("{INSECURE_DEV_VARIABLE} must be 1 or 0, not {other:?}"))),
        };
        if !enabled && !insecure_development {
            // With auth off every caller is trusted by a header it writes itself (and one
            // without a role header is an admin): a door open to anyone who reaches a port.
            return Err(Error::Config(format!(
                "CHATVAULT_AUTH=off trusts every caller by the x-chatvault-user header it sends; it is allowed only \
                 together with {INSECURE_DEV_VARIABLE}=1, on a development machine nobody else reaches"
            )));
        }
        let configured_secret = get(JWT_SECRET_VARIABLE).unwrap_or_default();
        let (jwt_secret, insecure_secret) = match check_jwt_secret(&configured_secret) {
            Ok(()) => (Secret::new(configured_secret), None),
            Err(weakness) if insecure_development => {
                let secret = if weakness == JwtSecretWeakness::Missing { DEVELOPMENT_JWT_SECRET.to_owned() } else { configured_secret };
                (Secret::new(secret), Some(weakness))
            }
            Err(weakness) => {
                return Err(Error::Config(format!(
                    "{JWT_SECRET_VARIABLE} is refused: {weakness}. Every service of an installation needs the same \
                     random secret of at least {MIN_JWT_SECRET_BYTES} bytes: generate one with `openssl rand -base64 48` \
                     (scripts/services.sh start keeps one in .state/secrets/jwt-secret), or set {INSECURE_DEV_VARIABLE}=1 \
                     on a development machine nobody else reaches"
                )))
            }
        };
        let access_ttl_seconds: u64 = match get("CHATVAULT_JWT_ACCESS_TTL_SECONDS") {
            None => 900,
            Some(text) => text.parse().map_err(|error| Error::Config(format!("CHATVAULT_JWT_ACCESS_TTL_SECONDS={text:?}: {error}")))?,
        };
        if access_ttl_seconds == 0 {
            return Err(Error::Config("CHATVAULT_JWT_ACCESS_TTL_SECONDS must be at least 1".to_owned()));
        }
        Ok(Self {
            enabled,
            jwt_secret,
            insecure_secret,
            access_ttl: Duration::from_secs(access_ttl_seconds),
            password_changes: PasswordChanges::default(),
        })
    }

    /// Returns the verifier of this configuration; warns loudly, once per process, about a
    /// secret let through by `CHATVAULT_INSECURE_DEV=1` and about auth being off.
    pub fn verifier(&self) -> TokenVerifier {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            if let Some(weakness) = self.insecure_secret {
                tracing::warn!(
                    %weakness,
                    "INSECURE: CHATVAULT_INSECURE_DEV=1 lets this service run with a signing secret anyone may know; \
                     anyone can forge tokens, including admin and service tokens; never expose this installation"
                );
            }
            if !self.enabled {
                tracing::warn!("CHATVAULT_AUTH=off: callers are trusted by the x-chatvault-user header");
            }
        });
        TokenVerifier { secret: Arc::new(self.jwt_secret.clone()), enabled: self.enabled, password_changes: self.password_changes.clone() }
    }

    /// Returns the layer checking tokens in front of gRPC services.
    pub fn grpc_layer(&self) -> AuthLayer {
        AuthLayer { verifier: self.verifier(), protocol: Protocol::Grpc, audience: Audience::Everyone }
    }

    /// Returns the layer checking tokens in front of REST routes.
    pub fn http_layer(&self) -> AuthLayer {
        AuthLayer { verifier: self.verifier(), protocol: Protocol::Http, audience: Audience::Everyone }
    }

    /// Returns the gRPC layer of a storage node: besides health and reflection it lets
    /// through only tokens of the [`SERVICE_ROLE`] signed with this secret. A call without
    /// a valid token is UNAUTHENTICATED; a valid user or admin token is PERMISSION_DENIED.
    /// With `CHATVAULT_AUTH=off` it trusts every caller, like the other services.
    pub fn services_only_grpc_layer(&self) -> AuthLayer {
        AuthLayer { verifier: self.verifier(), protocol: Protocol::Grpc, audience: Audience::ServicesOnly }
    }

    /// Returns the issuer of the tokens `service_name` sends to other services.
    pub fn service_token_issuer(&self, service_name: &str) -> ServiceTokenIssuer {
        ServiceTokenIssuer { secret: Arc::new(self.jwt_secret.clone()), identity: format!("service:{service_name}") }
    }
}

/// Mints the short-lived [`SERVICE_ROLE`] tokens one service sends to another (storage
/// nodes); cheap to clone.
///
/// The identity `service:<name>` cannot collide with an account: usernames hold no `:`.
#[derive(Clone, Debug)]
pub struct ServiceTokenIssuer {
    secret: Arc<Secret>,
    identity: String,
}

impl ServiceTokenIssuer {
    /// Returns a token of the service role valid for [`SERVICE_TOKEN_LIFETIME`] from now.
    ///
    /// A fresh token per call: one HMAC over a few hundred bytes costs microseconds, far
    /// less than the call it rides on, and nothing has to decide when to renew.
    pub fn mint(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        let lifetime_seconds = i64::try_from(SERVICE_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: self.identity.clone(),
            username: self.identity.clone(),
            role: SERVICE_ROLE.to_owned(),
            exp: now.saturating_add(lifetime_seconds),
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        sign_access_token(&self.secret, &claims)
    }

    /// Returns `authorization: Bearer <fresh token>` as gRPC metadata.
    pub fn authorization_metadata(&self) -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
        // A JWT is base64url and dots, always valid ASCII metadata.
        format!("Bearer {}", self.mint()).parse().expect("a bearer token is ascii")
    }
}

/// Mints the short-lived access tokens with which a service acts for one person it has a
/// verified link to (the Telegram bot and its storage workers storing a person's files).
///
/// The token is an ordinary [`USER_ROLE`] token of that account, never an admin one even
/// for an admin, valid for [`SERVICE_TOKEN_LIFETIME`]: every other service applies its own
/// ownership rules to it unchanged, and events it causes name the person as their actor.
/// Only services holding the installation's secret can mint one, as with
/// [`ServiceTokenIssuer`]; a password change revokes those minted before it.
#[derive(Clone, Debug)]
pub struct DelegatedTokenIssuer {
    secret: Arc<Secret>,
}

impl DelegatedTokenIssuer {
    /// Returns the issuer signing with `config`'s secret.
    pub fn new(config: &AuthConfig) -> Self {
        Self { secret: Arc::new(config.jwt_secret.clone()) }
    }

    /// Returns a user-role token for account `account_id` named `username`.
    pub fn mint(&self, account_id: &str, username: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let lifetime_seconds = i64::try_from(SERVICE_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims {
            sub: account_id.to_owned(),
            username: username.to_owned(),
            role: USER_ROLE.to_owned(),
            exp: now.saturating_add(lifetime_seconds),
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        sign_access_token(&self.secret, &claims)
    }
}

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The account id.
    pub sub: String,
    pub username: String,
    pub role: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Token id (UUIDv7).
    pub jti: String,
}

/// The caller as proven by a verified token; in the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCaller {
    pub account_id: String,
    pub username: String,
    pub role: String,
}

impl VerifiedCaller {
    /// Returns whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == ADMIN_ROLE
    }
}

/// Why a token was refused; every variant means UNAUTHENTICATED.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("missing bearer token; log in first (chatvault login)")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token expired; refresh it or log in again")]
    Expired,
    #[error("token revoked by a password change; log in again")]
    Revoked,
}

/// Returns a signed HS256 token carrying `claims`.
pub fn sign_access_token(secret: &Secret, claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("hmac takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// Verifies `token` against `secret` at `now_unix`; returns its claims.
pub fn verify_access_token(secret: &Secret, token: &str, now_unix: i64) -> std::result::Result<Claims, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let header_json: serde_json::Value =
        URL_SAFE_NO_PAD.decode(header).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or(TokenError::Malformed)?;
    // Only HS256: an `alg: none` or asymmetric header is refused before anything else.
    if header_json.get("alg").and_then(|alg| alg.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("hmac takes any key length");
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature_bytes).map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or(TokenError::Malformed)?;
    if claims.exp <= now_unix {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Verifies tokens with one configuration.
#[derive(Clone, Debug)]
pub struct TokenVerifier {
    secret: Arc<Secret>,
    enabled: bool,
    password_changes: PasswordChanges,
}

impl TokenVerifier {
    /// Checks the request headers and rewrites the identity headers; returns the verified
    /// caller (None when auth is off or the path is public).
    fn authenticate(&self, path: &str, public: bool, headers: &mut HeaderMap) -> std::result::Result<Option<VerifiedCaller>, TokenError> {
        if !self.enabled {
            if !headers.contains_key(ROLE_HEADER) {
                headers.insert(ROLE_HEADER, HeaderValue::from_static(ADMIN_ROLE));
            }
            return Ok(None);
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::to_owned);
        headers.remove(CALLER_HEADER);
        headers.remove(ROLE_HEADER);
        if public {
            // A public call still names its person's address when a service makes it with
            // its own token (the web service logging a visitor in); anyone else's is removed.
            let from_service = bearer
                .as_deref()
                .and_then(|token| verify_access_token(&self.secret, token, chrono::Utc::now().timestamp()).ok())
                .is_some_and(|claims| claims.role == SERVICE_ROLE);
            if !from_service {
                remove_client_headers(headers);
            }
            return Ok(None);
        }
        let token = bearer.ok_or(TokenError::Missing)?;
        let claims = verify_access_token(&self.secret, &token, chrono::Utc::now().timestamp())
            .inspect_err(|error| tracing::info!(%path, %error, "request refused: bad token"))?;
        if claims.role != SERVICE_ROLE {
            remove_client_headers(headers);
        }
        if self.password_changes.revokes(&claims) {
            tracing::info!(%path, account_id = %claims.sub, "request refused: token issued before a password change");
            return Err(TokenError::Revoked);
        }
        let (Ok(username), Ok(role)) = (HeaderValue::from_str(&claims.username), HeaderValue::from_str(&claims.role)) else {
            return Err(TokenError::Malformed);
        };
        headers.insert(CALLER_HEADER, username);
        headers.insert(ROLE_HEADER, role);
        Ok(Some(VerifiedCaller { account_id: claims.sub, username: claims.username, role: claims.role }))
    }
}

fn remove_client_headers(headers: &mut HeaderMap) {
    headers.remove(CLIENT_ADDRESS_HEADER);
    headers.remove(CLIENT_AGENT_HEADER);
}

/// Where a gRPC request comes from, for the record: the address and browser a platform
/// service forwarded for its visitor (the layer keeps those headers only from services),
/// else the connection's peer and the client's own `user-agent`. Each at most 200 bytes.
pub fn client_of_request<T>(request: &tonic::Request<T>) -> (String, String) {
    let header =
        |name: &str| request.metadata().get(name).and_then(|value| value.to_str().ok()).map(|value| value.chars().take(200).collect::<String>());
    let address = header(CLIENT_ADDRESS_HEADER).or_else(|| request.remote_addr().map(|address| address.ip().to_string())).unwrap_or_default();
    let agent = header(CLIENT_AGENT_HEADER).or_else(|| header("user-agent")).unwrap_or_default();
    (address, agent)
}

/// Returns whether the caller of a gRPC request is an admin (as written by the layer).
pub fn is_admin_metadata(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata.get(ROLE_HEADER).and_then(|value| value.to_str().ok()) == Some(ADMIN_ROLE)
}

/// Returns whether the caller of an HTTP request is an admin (as written by the layer).
pub fn is_admin_headers(headers: &HeaderMap) -> bool {
    headers.get(ROLE_HEADER).and_then(|value| value.to_str().ok()) == Some(ADMIN_ROLE)
}

/// Returns PERMISSION_DENIED unless the gRPC caller is an admin.
pub fn require_admin(metadata: &tonic::metadata::MetadataMap, what: &str) -> std::result::Result<(), tonic::Status> {
    if is_admin_metadata(metadata) {
        Ok(())
    } else {
        Err(tonic::Status::permission_denied(format!("{what} needs the admin role")))
    }
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Grpc,
    Http,
}

/// Who may call the services behind a layer once their token verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Audience {
    /// Users, admins and services (the public services).
    Everyone,
    /// Only tokens of the service role (storage nodes).
    ServicesOnly,
}

/// The tower layer that checks bearer tokens; see the module docs.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: TokenVerifier,
    protocol: Protocol,
    audience: Audience,
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: self.verifier.clone(), protocol: self.protocol, audience: self.audience }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    verifier: TokenVerifier,
    protocol: Protocol,
    audience: Audience,
}

impl<S, RequestBody, ResponseBody> tower_service::Service<Request<RequestBody>> for AuthService<S>
where
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResponseBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request<RequestBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let public = match (self.protocol, self.audience) {
            (Protocol::Grpc, Audience::Everyone) => PUBLIC_GRPC_PATHS.iter().any(|prefix| path.starts_with(prefix)),
            (Protocol::Grpc, Audience::ServicesOnly) => PUBLIC_SERVICE_GRPC_PATHS.iter().any(|prefix| path.starts_with(prefix)),
            (Protocol::Http, _) => PUBLIC_HTTP_PATHS.iter().any(|prefix| path.starts_with(prefix)),
        };
        match self.verifier.authenticate(&path, public, request.headers_mut()) {
            Ok(Some(caller)) if self.audience == Audience::ServicesOnly && caller.role != SERVICE_ROLE => {
                tracing::info!(%path, username = %caller.username, role = %caller.role, "request refused: only services may call");
                let status = tonic::Status::permission_denied("only chatvault's own services may call a storage node");
                Box::pin(std::future::ready(Ok(status.into_http::<ResponseBody>())))
            }
            Ok(caller) => {
                // The actor of events published while serving: the token's user, or with
                // auth off the trusted header; a public call (log-in, share link) acts for
                // nobody.
                let actor = match &caller {
                    Some(verified) => Some(verified.username.clone()),
                    None if !self.verifier.enabled => Some(crate::caller::caller_of_headers(request.headers())),
                    None => None,
                };
                if let Some(caller) = caller {
                    request.extensions_mut().insert(caller);
                }
                match actor {
                    Some(actor) => Box::pin(crate::caller::act_as(actor, self.inner.call(request))),
                    None => Box::pin(self.inner.call(request)),
                }
            }
            Err(error) => {
                let response = match self.protocol {
                    Protocol::Grpc => tonic::Status::unauthenticated(error.to_string()).into_http::<ResponseBody>(),
                    Protocol::Http => {
                        let mut response = Response::new(ResponseBody::default());
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                        response.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                        response
                    }
                };
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret long enough to pass [`check_jwt_secret`], different in every test.
    fn random_secret() -> String {
        format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
    }

    fn config_with(pairs: &[(&str, &str)]) -> Result<AuthConfig> {
        AuthConfig::from_env_map(&pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect())
    }

    fn config_with_random_secret() -> AuthConfig {
        config_with(&[(JWT_SECRET_VARIABLE, &random_secret())]).expect("a random secret is accepted")
    }

    fn claims(exp: i64) -> Claims {
        Claims { sub: "a1".into(), username: "alice".into(), role: "user".into(), exp, iat: 0, jti: "j".into() }
    }

    fn bearer_headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        headers
    }

    #[test]
    fn a_forwarded_client_address_is_kept_only_from_a_service() {
        let config = config_with_random_secret();
        let verifier = config.verifier();
        let forwarded = |token: Option<String>| {
            let mut headers = token.map(|token| bearer_headers(&token)).unwrap_or_default();
            headers.insert(CLIENT_ADDRESS_HEADER, HeaderValue::from_static("203.0.113.7"));
            headers.insert(CLIENT_AGENT_HEADER, HeaderValue::from_static("Firefox"));
            headers
        };
        let service_token = config.service_token_issuer("web").mint();
        let mut user = claims(chrono::Utc::now().timestamp() + 60);
        user.role = ADMIN_ROLE.into();
        let user_token = sign_access_token(&config.jwt_secret, &user);
        // Public path (log-in): kept with a service token, removed without one or with a person's.
        for (token, kept) in
            [(Some(service_token.clone()), true), (None, false), (Some(user_token.clone()), false), (Some("forged".to_owned()), false)]
        {
            let mut headers = forwarded(token);
            verifier.authenticate("/chatvault.users.v1.AccountsService/Login", true, &mut headers).expect("public");
            assert_eq!(headers.contains_key(CLIENT_ADDRESS_HEADER) && headers.contains_key(CLIENT_AGENT_HEADER), kept);
        }
        // Other paths: a person's token (even an admin's) loses the headers, a service keeps them.
        let mut headers = forwarded(Some(user_token));
        verifier.authenticate("/x", false, &mut headers).expect("admin");
        assert!(!headers.contains_key(CLIENT_ADDRESS_HEADER));
        let mut headers = forwarded(Some(service_token));
        verifier.authenticate("/x", false, &mut headers).expect("service");
        assert!(headers.contains_key(CLIENT_ADDRESS_HEADER));
    }

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let secret = Secret::new("s3cret");
        let token = sign_access_token(&secret, &claims(2_000));
        assert_eq!(verify_access_token(&secret, &token, 1_000), Ok(claims(2_000)));
        assert_eq!(verify_access_token(&secret, &token, 2_000), Err(TokenError::Expired));
        assert_eq!(verify_access_token(&Secret::new("other"), &token, 1_000), Err(TokenError::BadSignature));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut admin = claims(2_000);
        admin.role = "admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&admin).unwrap());
        assert_eq!(verify_access_token(&secret, &parts.join("."), 1_000), Err(TokenError::BadSignature));
        assert_eq!(verify_access_token(&secret, "a.b", 1_000), Err(TokenError::Malformed));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(verify_access_token(&secret, &format!("{none_header}.{}.", parts[1]), 1_000), Err(TokenError::Malformed));
    }

    #[test]
    fn the_layer_replaces_client_identity_headers_with_the_tokens() {
        let config = config_with_random_secret();
        let verifier = config.verifier();
        let mut headers = HeaderMap::new();
        headers.insert(CALLER_HEADER, HeaderValue::from_static("mallory"));
        headers.insert(ROLE_HEADER, HeaderValue::from_static("admin"));
        assert_eq!(verifier.authenticate("/x", false, &mut headers), Err(TokenError::Missing));
        let token = sign_access_token(&config.jwt_secret, &claims(i64::MAX));
        headers.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        headers.insert(ROLE_HEADER, HeaderValue::from_static("admin"));
        let caller = verifier.authenticate("/x", false, &mut headers).unwrap().unwrap();
        assert_eq!(caller.username, "alice");
        assert_eq!(headers.get(CALLER_HEADER).unwrap(), "alice");
        assert_eq!(headers.get(ROLE_HEADER).unwrap(), "user");
    }

    #[test]
    fn a_token_issued_before_a_password_change_is_refused() {
        let config = config_with_random_secret();
        let verifier = config.verifier();
        let now = chrono::Utc::now();
        let issued = Claims { iat: now.timestamp() - 60, jti: "old".into(), ..claims(i64::MAX) };
        let mut headers = HeaderMap::new();
        let bearer = format!("Bearer {}", sign_access_token(&config.jwt_secret, &issued));
        headers.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_str(&bearer).unwrap());
        assert!(verifier.authenticate("/x", false, &mut headers.clone()).is_ok());
        config.password_changes.record("a1", now, now - chrono::Duration::hours(1));
        assert_eq!(verifier.authenticate("/x", false, &mut headers), Err(TokenError::Revoked));
    }

    #[test]
    fn with_auth_off_headers_are_trusted_and_default_to_admin() {
        let config = config_with(&[("CHATVAULT_AUTH", "off"), (INSECURE_DEV_VARIABLE, "1"), (JWT_SECRET_VARIABLE, &random_secret())]).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(config.verifier().authenticate("/x", false, &mut headers), Ok(None));
        assert_eq!(headers.get(ROLE_HEADER).unwrap(), "admin");
    }

    #[test]
    fn services_refuse_a_missing_short_or_public_secret_and_name_the_variable() {
        let refused: Vec<(&str, String)> = vec![
            ("missing", String::new()),
            ("blank", "   ".to_owned()),
            ("short", "x".repeat(MIN_JWT_SECRET_BYTES - 1)),
            ("old development default", DEVELOPMENT_JWT_SECRET.to_owned()),
            ("old test secret", "chatvault-test-secret".to_owned()),
            ("old development default with spaces", format!("  {DEVELOPMENT_JWT_SECRET} ")),
        ];
        for (case, secret) in refused {
            let error = config_with(&[(JWT_SECRET_VARIABLE, &secret)]).expect_err(case).to_string();
            assert!(error.contains("CHATVAULT_JWT_SECRET"), "{case}: {error}");
            assert!(error.contains("openssl rand"), "{case}: the error says how to generate one: {error}");
            let error = config_with(&[(JWT_SECRET_VARIABLE, &secret), ("CHATVAULT_AUTH", "off")]).expect_err(case).to_string();
            assert!(error.contains(INSECURE_DEV_VARIABLE), "{case} with auth off: {error}");
        }
        assert!(config_with(&[]).is_err(), "no variable at all");
        let accepted = config_with(&[(JWT_SECRET_VARIABLE, &"x".repeat(MIN_JWT_SECRET_BYTES))]).expect("32 bytes are enough");
        assert_eq!(accepted.insecure_secret, None);
    }

    #[test]
    fn auth_off_is_refused_without_the_insecure_development_flag() {
        let error = config_with(&[("CHATVAULT_AUTH", "off"), (JWT_SECRET_VARIABLE, &random_secret())]).expect_err("an open door").to_string();
        assert!(error.contains("CHATVAULT_AUTH=off") && error.contains(INSECURE_DEV_VARIABLE), "{error}");
    }

    #[test]
    fn the_insecure_development_flag_lets_weak_secrets_through_and_says_so() {
        let unset = config_with(&[(INSECURE_DEV_VARIABLE, "1")]).expect("allowed on a developer's machine");
        assert_eq!(unset.insecure_secret, Some(JwtSecretWeakness::Missing));
        assert_eq!(unset.jwt_secret.expose(), DEVELOPMENT_JWT_SECRET, "services of one machine agree");
        let short = config_with(&[(INSECURE_DEV_VARIABLE, "true"), (JWT_SECRET_VARIABLE, "short")]).expect("allowed");
        assert_eq!(short.insecure_secret, Some(JwtSecretWeakness::TooShort { bytes: 5 }));
        assert_eq!(short.jwt_secret.expose(), "short");
        let strong = config_with(&[(INSECURE_DEV_VARIABLE, "1"), (JWT_SECRET_VARIABLE, &random_secret())]).expect("allowed");
        assert_eq!(strong.insecure_secret, None, "a strong secret is not insecure because of the flag");
        assert!(config_with(&[(INSECURE_DEV_VARIABLE, "0"), (JWT_SECRET_VARIABLE, "short")]).is_err());
        assert!(config_with(&[(INSECURE_DEV_VARIABLE, "maybe")]).is_err());
    }

    #[test]
    fn a_token_forged_with_the_old_development_secret_is_refused() {
        let config = config_with_random_secret();
        let now = chrono::Utc::now().timestamp();
        let forged_claims = Claims { role: ADMIN_ROLE.into(), username: "mallory".into(), ..claims(now + 600) };
        for public_secret in PUBLIC_JWT_SECRETS {
            let forged = sign_access_token(&Secret::new(*public_secret), &forged_claims);
            assert_eq!(verify_access_token(&config.jwt_secret, &forged, now), Err(TokenError::BadSignature));
            let mut headers = bearer_headers(&forged);
            assert_eq!(config.verifier().authenticate("/x", false, &mut headers), Err(TokenError::BadSignature));
            assert!(headers.get(ROLE_HEADER).is_none(), "no identity is written for a forged token");
        }
    }

    #[test]
    fn service_tokens_carry_the_service_role_and_expire_soon() {
        let config = config_with_random_secret();
        let token = config.service_token_issuer("ingest").mint();
        let now = chrono::Utc::now().timestamp();
        let claims = verify_access_token(&config.jwt_secret, &token, now).expect("verifies with the same secret");
        assert_eq!((claims.role.as_str(), claims.username.as_str()), (SERVICE_ROLE, "service:ingest"));
        assert!(claims.exp > now && claims.exp <= now + SERVICE_TOKEN_LIFETIME.as_secs() as i64 + 1, "{claims:?}");
        let other = config_with_random_secret();
        assert_eq!(verify_access_token(&other.jwt_secret, &token, now), Err(TokenError::BadSignature));
        let metadata = config.service_token_issuer("storage").authorization_metadata();
        assert!(metadata.to_str().unwrap().starts_with("Bearer "));
    }

    /// Runs one request through `layer` and returns the gRPC status code it answered with
    /// (`Ok` when the inner service was reached).
    async fn grpc_code_through(layer: &AuthLayer, path: &str, headers: HeaderMap) -> tonic::Code {
        use tower_layer::Layer as _;
        use tower_service::Service as _;
        let inner = tower_service_fn(|_request: Request<()>| async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) });
        let mut service = layer.layer(inner);
        let mut request = Request::new(());
        *request.uri_mut() = path.parse().unwrap();
        *request.headers_mut() = headers;
        let response = service.call(request).await.unwrap();
        tonic::Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |status| status.code())
    }

    /// A tower service from a closure (tower's `service_fn` without the dependency).
    fn tower_service_fn<F, Fut>(function: F) -> ServiceFn<F>
    where
        F: FnMut(Request<()>) -> Fut,
    {
        ServiceFn(function)
    }

    #[derive(Clone)]
    struct ServiceFn<F>(F);

    impl<F, Fut> tower_service::Service<Request<()>> for ServiceFn<F>
    where
        F: FnMut(Request<()>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<String>, std::convert::Infallible>>,
    {
        type Response = Response<String>;
        type Error = std::convert::Infallible;
        type Future = Fut;

        fn poll_ready(&mut self, _context: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            (self.0)(request)
        }
    }

    #[tokio::test]
    async fn the_storage_node_layer_lets_only_service_tokens_through() {
        let config = config_with_random_secret();
        let layer = config.services_only_grpc_layer();
        let path = "/chatvault.storagenode.v1.StorageNodeService/GetPart";
        let now = chrono::Utc::now().timestamp();
        assert_eq!(grpc_code_through(&layer, path, HeaderMap::new()).await, tonic::Code::Unauthenticated);
        let user = sign_access_token(&config.jwt_secret, &claims(now + 600));
        assert_eq!(grpc_code_through(&layer, path, bearer_headers(&user)).await, tonic::Code::PermissionDenied);
        let admin = sign_access_token(&config.jwt_secret, &Claims { role: ADMIN_ROLE.into(), ..claims(now + 600) });
        assert_eq!(grpc_code_through(&layer, path, bearer_headers(&admin)).await, tonic::Code::PermissionDenied);
        let foreign = config_with_random_secret().service_token_issuer("ingest").mint();
        assert_eq!(grpc_code_through(&layer, path, bearer_headers(&foreign)).await, tonic::Code::Unauthenticated);
        let forged = sign_access_token(&Secret::new(DEVELOPMENT_JWT_SECRET), &Claims { role: SERVICE_ROLE.into(), ..claims(now + 600) });
        assert_eq!(grpc_code_through(&layer, path, bearer_headers(&forged)).await, tonic::Code::Unauthenticated);
        let own = config.service_token_issuer("storage").mint();
        assert_eq!(grpc_code_through(&layer, path, bearer_headers(&own)).await, tonic::Code::Ok);
        // Probes stay open; the user-facing public paths (log-in) do not apply to nodes.
        assert_eq!(grpc_code_through(&layer, "/grpc.health.v1.Health/Check", HeaderMap::new()).await, tonic::Code::Ok);
        let login = "/chatvault.users.v1.AccountsService/Login";
        assert_eq!(grpc_code_through(&layer, login, HeaderMap::new()).await, tonic::Code::Unauthenticated);
        // The public services' layer still takes user tokens.
        assert_eq!(grpc_code_through(&config.grpc_layer(), path, bearer_headers(&user)).await, tonic::Code::Ok);
    }
}
