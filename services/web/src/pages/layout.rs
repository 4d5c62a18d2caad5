//! What every page shares: the header with the navigation, the error page, the assets.

use askama::Template;
use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::session::Signed;
use crate::WebError;

/// The frame of a page: title, navigation, who is signed in, the CSRF token of its forms.
#[derive(Clone, Debug, Default)]
pub struct Chrome {
    pub title: String,
    /// `chats`, `search`, `import`, `files`, `history`, `admin`: the highlighted tab.
    pub section: &'static str,
    /// Empty when nobody is signed in.
    pub username: String,
    pub is_admin: bool,
    pub csrf: String,
}

impl Chrome {
    pub fn of(signed: &Signed, title: impl Into<String>, section: &'static str) -> Self {
        Self { title: title.into(), section, username: signed.caller.username.clone(), is_admin: signed.caller.is_admin(), csrf: signed.csrf.clone() }
    }

    /// The frame of a page seen without signing in, with the anonymous CSRF token.
    pub fn public(title: impl Into<String>, csrf: String) -> Self {
        Self { title: title.into(), csrf, ..Self::default() }
    }
}

/// Renders `page`; a template error is a server error (logged), never a panic.
pub fn render<T: Template>(page: &T) -> Result<Response, WebError> {
    page.render().map(|html| Html(html).into_response()).map_err(|error| WebError::Internal(format!("rendering a page failed: {error}")))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    code: u16,
    reason: &'a str,
    message: &'a str,
}

/// The page of a failed request: its status and what the person can do about it.
pub fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let page = ErrorPage {
        chrome: Chrome { title: status.canonical_reason().unwrap_or("Error").to_owned(), ..Chrome::default() },
        code: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        message,
    };
    Html(page.render().unwrap_or_else(|_| format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"))))
}

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const ICON_SVG: &str = include_str!("../../static/icon.svg");

/// Serves the stylesheet, the script and the icon.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "app.css" => ("text/css; charset=utf-8", APP_CSS),
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "icon.svg" => ("image/svg+xml", ICON_SVG),
        _ => return (StatusCode::NOT_FOUND, error_page(StatusCode::NOT_FOUND, "there is no such file")).into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}
