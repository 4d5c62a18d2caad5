//! The bot's HTTP routes: Google's OAuth redirect back (`/oauth/google/callback`); the
//! Telegram webhook is merged in by [`crate::App`] when one is configured.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use teloxide::Bot;

use crate::handlers::{drive_link_declined, finish_drive_link, BotState};

/// What the callback routes share.
#[derive(Clone, Debug)]
pub struct CallbackState {
    pub state: Arc<BotState>,
    pub bot: Option<Bot>,
}

/// Google's redirect: `?code=…&state=…` after consent, `?error=…&state=…` when declined.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Returns the OAuth callback route.
pub fn routes(state: CallbackState) -> Router {
    Router::new().route("/oauth/google/callback", get(callback)).with_state(state)
}

async fn callback(State(callback): State<CallbackState>, Query(query): Query<CallbackQuery>) -> Response {
    let Some(state) = query.state.filter(|state| !state.is_empty() && state.len() <= 200) else {
        return page(StatusCode::BAD_REQUEST, "This page is where Google sends you back after linking Drive; open it from the link the bot sent.");
    };
    let pending = match callback.state.store.take_authorization(&state).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return page(StatusCode::BAD_REQUEST, "This link has expired or was used already. Send /drive to the bot for a new one."),
        Err(error) => {
            tracing::warn!(error = %error, "reading an OAuth state failed");
            return page(StatusCode::SERVICE_UNAVAILABLE, "chatvault could not check this link just now; try again in a moment.");
        }
    };
    if query.error.is_some() {
        drive_link_declined(callback.bot.as_ref(), &callback.state, &pending).await;
        return page(StatusCode::OK, "Google Drive was not linked. You can close this page; send /drive to the bot to try again.");
    }
    let Some(code) = query.code.filter(|code| !code.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "Google sent no authorization code. Send /drive to the bot to try again.");
    };
    match finish_drive_link(callback.bot.as_ref(), &callback.state, &pending, &code).await {
        Ok(()) => page(StatusCode::OK, "Google Drive is linked to chatvault. You can close this page and go back to Telegram."),
        Err(reason) => {
            tracing::warn!(reason = %reason, "linking Google Drive failed");
            page(StatusCode::BAD_GATEWAY, "Google Drive could not be linked. Send /drive to the bot to try again.")
        }
    }
}

/// A small page with fixed text (nothing from the request is echoed into it).
fn page(status: StatusCode, text: &'static str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>chatvault</title></head><body style=\"font-family:system-ui;max-width:36rem;margin:3rem auto;padding:0 1rem\">\
         <h1>chatvault</h1><p>{text}</p></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
