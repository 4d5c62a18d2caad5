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
/// Secret used when `CHATVAULT_JWT_SECRET` is unset; fine on a laptop, never in production.
pub const DEVELOPMENT_JWT_SECRET: &str = "chatvault-development-secret-do-not-use-in-production";

/// gRPC methods callable without a token (path prefixes).
const PUBLIC_GRPC_PATHS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/chatvault.users.v1.AccountsService/Register",
    "/chatvault.users.v1.AccountsService/Login",
    "/chatvault.users.v1.AccountsService/Refresh",
    // Works only while no admin exists (checked by the users service).
    "/chatvault.users.v1.AccountsService/BootstrapAdmin",
];
/// REST paths callable without a token (path prefixes): probes and share links.
const PUBLIC_HTTP_PATHS: &[&str] = &["/healthz", "/metrics", "/s/"];

/// Authentication settings shared by every service.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `CHATVAULT_AUTH`: `on` (default) or `off`.
    pub enabled: bool,
    /// `CHATVAULT_JWT_SECRET`: the HS256 key; a development default with a warning.
    pub jwt_secret: Secret,
    /// `CHATVAULT_JWT_ACCESS_TTL_SECONDS`, default 900.
    pub access_ttl: Duration,
    /// The last password change of each account, filled by
    /// [`crate::revocation::spawn_password_change_follower`]; shared by every clone.
    pub password_changes: PasswordChanges,
}

impl AuthConfig {
    /// Reads the auth settings from `environment`.
    pub fn from_env_map(environment: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| environment.get(key).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let enabled = match get("CHATVAULT_AUTH").as_deref() {
            None | Some("on") | Some("true") | Some("1") => true,
            Some("off") | Some("false") | Some("0") => false,
            Some(other) => return Err(Error::Config(format!("CHATVAULT_AUTH must be on or off, not {other:?}"))),
        };
        let jwt_secret = Secret::new(get("CHATVAULT_JWT_SECRET").unwrap_or_else(|| DEVELOPMENT_JWT_SECRET.to_owned()));
        let access_ttl_seconds: u64 = match get("CHATVAULT_JWT_ACCESS_TTL_SECONDS") {
            None => 900,
            Some(text) => text
                .parse()
                .map_err(|error| Error::Config(format!("CHATVAULT_JWT_ACCESS_TTL_SECONDS={text:?}: {error}")))?,
        };
        if access_ttl_seconds == 0 {
            return Err(Error::Config("CHATVAULT_JWT_ACCESS_TTL_SECONDS must be at least 1".to_owned()));
        }
        Ok(Self {
            enabled,
            jwt_secret,
            access_ttl: Duration::from_secs(access_ttl_seconds),
            password_changes: PasswordChanges::default(),
        })
    }

    /// Returns whether the built-in development secret is in use.
    pub fn uses_development_secret(&self) -> bool {
        self.jwt_secret.expose() == DEVELOPMENT_JWT_SECRET
    }

    /// Returns the verifier of this configuration; warns loudly about a development secret.
    pub fn verifier(&self) -> TokenVerifier {
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            if self.enabled && self.uses_development_secret() {
                tracing::warn!("CHATVAULT_JWT_SECRET is not set: tokens are signed with the public development secret; set it before exposing chatvault to anyone");
            }
            if !self.enabled {
                tracing::warn!("CHATVAULT_AUTH=off: callers are trusted by the x-chatvault-user header");
            }
        });
        TokenVerifier { secret: Arc::new(self.jwt_secret.clone()), enabled: self.enabled, password_changes: self.password_changes.clone() }
    }

    /// Returns the layer checking tokens in front of gRPC services.
    pub fn grpc_layer(&self) -> AuthLayer {
        AuthLayer { verifier: self.verifier(), protocol: Protocol::Grpc }
    }

    /// Returns the layer checking tokens in front of REST routes.
    pub fn http_layer(&self) -> AuthLayer {
        AuthLayer { verifier: self.verifier(), protocol: Protocol::Http }
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
    let header_json: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
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
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
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
            return Ok(None);
        }
        let token = bearer.ok_or(TokenError::Missing)?;
        let claims = verify_access_token(&self.secret, &token, chrono::Utc::now().timestamp())
            .inspect_err(|error| tracing::info!(%path, %error, "request refused: bad token"))?;
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

/// The tower layer that checks bearer tokens; see the module docs.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: TokenVerifier,
    protocol: Protocol,
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: self.verifier.clone(), protocol: self.protocol }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    verifier: TokenVerifier,
    protocol: Protocol,
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
        let public = match self.protocol {
            Protocol::Grpc => PUBLIC_GRPC_PATHS.iter().any(|prefix| path.starts_with(prefix)),
            Protocol::Http => PUBLIC_HTTP_PATHS.iter().any(|prefix| path.starts_with(prefix)),
        };
        match self.verifier.authenticate(&path, public, request.headers_mut()) {
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

    fn claims(exp: i64) -> Claims {
        Claims { sub: "a1".into(), username: "alice".into(), role: "user".into(), exp, iat: 0, jti: "j".into() }
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
        let config = AuthConfig::from_env_map(&HashMap::from([("CHATVAULT_JWT_SECRET".to_owned(), "k".to_owned())])).unwrap();
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
        let config = AuthConfig::from_env_map(&HashMap::from([("CHATVAULT_JWT_SECRET".to_owned(), "k".to_owned())])).unwrap();
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
        let config = AuthConfig::from_env_map(&HashMap::from([("CHATVAULT_AUTH".to_owned(), "off".to_owned())])).unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(config.verifier().authenticate("/x", false, &mut headers), Ok(None));
        assert_eq!(headers.get(ROLE_HEADER).unwrap(), "admin");
    }
}
