//! "Telegram": link the account to the Telegram bot with a one-time code, see the link
//! (time zone, where files go, Google Drive's state) and end it.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chatvault_proto::bot::v1::{CreateLinkCodeRequest, GetLinkRequest, GetLinkResponse, UnlinkRequest};

use super::chats::date_time_text;
use super::layout::{render, Chrome};
use crate::session::Signed;
use crate::{AppState, WebError};

/// A link code just made.
#[derive(Debug)]
pub struct CodeView {
    pub code: String,
    pub deep_link: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "telegram.html")]
struct TelegramPage {
    chrome: Chrome,
    link: GetLinkResponse,
    linked_since: String,
    code: Option<CodeView>,
}

async fn page(state: &AppState, signed: &Signed, code: Option<CodeView>) -> Result<Response, WebError> {
    let link = state.clients.telegram().get_link(signed.caller.request(GetLinkRequest {})).await?.into_inner();
    let linked_since = date_time_text(Some(link.linked_at_unix));
    render(&TelegramPage { chrome: Chrome::of(signed, "Telegram", "telegram"), link, linked_since, code })
}

/// `GET /telegram`: the link's state.
pub async fn show(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    page(&state, &signed, None).await
}

/// `POST /telegram/code`: a one-time code to send to the bot.
pub async fn create_code(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    let code = state.clients.telegram().create_link_code(signed.caller.request(CreateLinkCodeRequest {})).await?.into_inner();
    let view = CodeView { expires: date_time_text(Some(code.expires_at_unix)), code: code.code, deep_link: code.deep_link };
    page(&state, &signed, Some(view)).await
}

/// `POST /telegram/unlink`: ends the link.
pub async fn unlink(State(state): State<AppState>, signed: Signed) -> Result<Response, WebError> {
    state.clients.telegram().unlink(signed.caller.request(UnlinkRequest {})).await?;
    Ok(Redirect::to("/telegram").into_response())
}
