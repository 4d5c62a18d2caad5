//! The web front door's chat page on the imported 1,000,000-message chat: the server time
//! to render the newest page and the 1,000th page back (reached as a reader reaches it,
//! one "older" link after another), each against the GetMessages call of the same page,
//! in the same process and run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chatvault_bench::platform::Platform;
use chatvault_bench::results::{record, Row, Target};
use chatvault_proto::storage::v1::{GetMessagesRequest, ListChatsRequest};
use chatvault_web::clients::{Caller, Clients};
use chatvault_web::pages::chats::{chat_page, ChatQuery, PAGE_SIZE};
use chatvault_web::session::{Sessions, Signed};
use chatvault_web::settings::WebSettings;
use chatvault_web::AppState;

/// Timed renders (and calls) per page, after one untimed warm-up each.
const ROUNDS: u32 = 50;
/// The deep page: this many pages back from the newest (fewer for a chat without as many).
const DEEP_PAGE: u64 = 1000;

pub(crate) async fn run(platform: &Platform, chat_id: i64, message_count: u64, full_size: bool) -> anyhow::Result<()> {
    let deep_page = (message_count / u64::from(PAGE_SIZE)).clamp(1, DEEP_PAGE);
    let storage_url = format!("http://{}", platform.storage.grpc_addr);
    let settings = Arc::new(WebSettings {
        users_url: storage_url.clone(),
        storage_url: storage_url.clone(),
        ingest_url: format!("http://{}", platform.ingest.grpc_addr),
        audit_url: storage_url.clone(),
        backup_url: storage_url.clone(),
        bot_url: storage_url,
        public_url: "http://127.0.0.1:8080".to_owned(),
        session_idle_days: 14,
    });
    let pool = chatvault_common::db::connect_pool(&platform.database.url, 2)?;
    let auth =
        chatvault_common::auth::AuthConfig::from_env_map(&chatvault_common::test_support::service_environment(platform.database.url.expose(), ""))?;
    let clients = Clients::connect(&settings, auth.service_token_issuer("web")).map_err(|error| anyhow::anyhow!("{error}"))?;
    let state = AppState {
        sessions: Sessions::new(pool.clone(), clients.clone(), settings.clone()),
        clients,
        settings,
        jobs: chatvault_web::jobs::Jobs::default(),
        thumbnails: chatvault_web::thumbnails::Thumbnails::new(pool),
    };
    // The platform runs without authentication: the caller headers name the reader.
    let admin = Caller { username: "bench".to_owned(), role: "admin".to_owned(), access_token: String::new() };
    let mut storage = state.clients.storage();
    let chats = storage.list_chats(admin.request(ListChatsRequest::default())).await?.into_inner().chats;
    let owner = chats.iter().find(|chat| chat.chat_id == chat_id).map(|chat| chat.owner.clone()).context("the imported chat is listed")?;
    let signed = Signed { caller: Caller { username: owner, ..admin }, csrf: String::new() };
    let page_request = |before: i64| GetMessagesRequest { chat_id, limit: PAGE_SIZE, before_message_id: Some(before), ..Default::default() };

    // The 1,000th page back, as the "older messages" links reach it.
    let mut deep_before = i64::MAX;
    for _ in 1..deep_page {
        let page = storage.get_messages(signed.caller.request(page_request(deep_before))).await?.into_inner();
        deep_before = page.messages.first().map(|message| message.message_id).context("the chat has as many pages as its messages fill")?;
    }
    let deep_label = format!("page {deep_page} back");

    println!();
    println!("{:<52} {:>12} {:>12} {:>8}", "chat page (web, server side)", "render", "GetMessages", "ratio");
    for (key, label, before) in [("web-page-first", "newest page", i64::MAX), ("web-page-1000", deep_label.as_str(), deep_before)] {
        let query = ChatQuery { before: Some(before), ..ChatQuery::default() };
        let html = chat_page(&state, &signed, chat_id, query.clone()).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        let shown = html.matches("<article class=\"msg").count();
        chatvault_bench::results::check_equal("messages on the rendered page", shown, PAGE_SIZE as usize)?;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            chat_page(&state, &signed, chat_id, query.clone()).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        }
        let render_seconds = started.elapsed().as_secs_f64() / f64::from(ROUNDS);
        storage.get_messages(signed.caller.request(page_request(before))).await?;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            storage.get_messages(signed.caller.request(page_request(before))).await?;
        }
        let call_seconds = started.elapsed().as_secs_f64() / f64::from(ROUNDS);
        println!("{:<52} {:>9.2} ms {:>9.2} ms {:>8.3}", label, render_seconds * 1e3, call_seconds * 1e3, call_seconds / render_seconds);
        record(&Row {
            key: key.to_owned(),
            work: format!("web chat page, {label}, {} messages ({PAGE_SIZE} a page)", chatvault_bench::results::thousands(message_count)),
            figure: 1.0 / render_seconds,
            unit: "pages/s".to_owned(),
            limit: 1.0 / call_seconds,
            limit_name: "GetMessages of the same page".to_owned(),
            target: Target::RatioAtLeast(0.5),
            full_size,
            notes: format!("render {:.2} ms vs GetMessages {:.2} ms, mean of {ROUNDS}", render_seconds * 1e3, call_seconds * 1e3),
        })?;
    }
    Ok(())
}
