//! The web service's settings (`CHATVAULT_WEB_*`).

use chatvault_common::config::ServiceConfig;

use crate::WebError;

/// Where the other services are and how the web service presents itself.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// gRPC URLs of the services (`CHATVAULT_WEB_{USERS,STORAGE,INGEST,AUDIT,BACKUP}_URL`;
    /// defaults: the local ports of `scripts/services.sh`).
    pub users_url: String,
    pub storage_url: String,
    pub ingest_url: String,
    pub audit_url: String,
    pub backup_url: String,
    /// The Telegram bot service (`CHATVAULT_WEB_BOT_URL`, default `http://127.0.0.1:50057`).
    pub bot_url: String,
    /// The URL people open (`CHATVAULT_WEB_PUBLIC_URL`, default `http://127.0.0.1:8080`):
    /// share links are written with it, and cookies get `Secure` when it is `https://`.
    pub public_url: String,
    /// Days a session lasts without use (`CHATVAULT_WEB_SESSION_IDLE_DAYS`, default 14;
    /// never longer than the refresh token).
    pub session_idle_days: i64,
}

impl WebSettings {
    /// Reads the settings; a public URL that is not `http(s)://host[:port]` is an error.
    pub fn from_config(config: &ServiceConfig) -> Result<Self, WebError> {
        let public_url: String = config.setting("PUBLIC_URL", "http://127.0.0.1:8080".to_owned())?;
        let public_url = public_url.trim_end_matches('/').to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) || public_url.contains(['?', '#', ' ']) {
            return Err(WebError::Config(format!("CHATVAULT_WEB_PUBLIC_URL {public_url:?} is not an http:// or https:// URL")));
        }
        Ok(Self {
            users_url: config.setting("USERS_URL", "http://127.0.0.1:50053".to_owned())?,
            storage_url: config.setting("STORAGE_URL", "http://127.0.0.1:50052".to_owned())?,
            ingest_url: config.setting("INGEST_URL", "http://127.0.0.1:50051".to_owned())?,
            audit_url: config.setting("AUDIT_URL", "http://127.0.0.1:50054".to_owned())?,
            backup_url: config.setting("BACKUP_URL", "http://127.0.0.1:50055".to_owned())?,
            bot_url: config.setting("BOT_URL", "http://127.0.0.1:50057".to_owned())?,
            public_url,
            session_idle_days: config.setting("SESSION_IDLE_DAYS", 14i64)?.clamp(1, 365),
        })
    }

    /// Whether cookies are marked `Secure` (the public URL is `https://`).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The `scheme://host[:port]` a same-origin request's `Origin` header carries.
    pub fn origin(&self) -> &str {
        let after_scheme = self.public_url.find("://").map_or(0, |index| index + 3);
        match self.public_url[after_scheme..].find('/') {
            Some(slash) => &self.public_url[..after_scheme + slash],
            None => &self.public_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chatvault_common::config::{DefaultPorts, ServiceConfig};

    use super::WebSettings;

    fn settings(public_url: &str) -> Result<WebSettings, crate::WebError> {
        let environment = HashMap::from([
            ("CHATVAULT_WEB_PUBLIC_URL".to_owned(), public_url.to_owned()),
            ("CHATVAULT_JWT_SECRET".to_owned(), chatvault_common::test_support::TEST_JWT_SECRET.to_string()),
        ]);
        let config = ServiceConfig::from_env_map("web", DefaultPorts { grpc: 0, http: 0 }, &environment).expect("config");
        WebSettings::from_config(&config)
    }

    #[test]
    fn the_public_url_gives_the_origin_and_the_cookie_security() {
        let plain = settings("http://127.0.0.1:8080/").expect("plain");
        assert_eq!((plain.origin(), plain.secure_cookies()), ("http://127.0.0.1:8080", false));
        let behind_proxy = settings("https://archive.example.org/chatvault").expect("https");
        assert_eq!((behind_proxy.origin(), behind_proxy.secure_cookies()), ("https://archive.example.org", true));
        assert!(settings("archive.example.org").is_err());
    }
}
