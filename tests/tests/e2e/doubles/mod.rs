//! Wire-level doubles of the outside services the bot talks to, which cannot be reached
//! from a test machine: the Telegram Bot API server ([`telegram`]) and Google's OAuth 2.0
//! and Drive v3 endpoints ([`google`]).
//!
//! Each double is an axum server on `127.0.0.1:0`, run inside the test process, speaking
//! the real HTTP protocol of the service and recording every request it receives so a test
//! can assert what went over the wire. Waiting is done on a `watch` channel that every
//! state change bumps, with a deadline: never with sleeps.
//!
//! Not every test uses every knob and accessor of a double, hence the `dead_code` allowance.
#![allow(dead_code, reason = "a library of doubles: each test uses only part of it")]

pub(crate) mod google;
pub(crate) mod telegram;

/// Installs rustls's process-wide crypto provider (aws-lc-rs), which the HTTP clients of
/// these tests (reqwest, built without a provider of its own) use; harmless when done.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

use std::time::Duration;

use tokio::sync::watch;

/// Bumps the change counter that waiters watch; call after every state change.
fn bump(changes: &watch::Sender<u64>) {
    changes.send_modify(|version| *version = version.wrapping_add(1));
}

/// Evaluates `check` now and after every change until it yields a value or `limit` passes;
/// then evaluates it one last time. Subscribing before the first check loses no change.
async fn wait_for_change<T>(changes: &watch::Sender<u64>, limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let mut receiver = changes.subscribe();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        match tokio::time::timeout_at(deadline, receiver.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return check(),
        }
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`, as in form bodies).
/// Invalid escapes are kept as they are; invalid UTF-8 is replaced.
fn percent_decode(text: &str, plus_as_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let pair = std::str::from_utf8(&bytes[index + 1..index + 3]).ok().and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match pair {
                    Some(byte) => {
                        decoded.push(byte);
                        index += 3;
                    }
                    None => {
                        decoded.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' if plus_as_space => {
                decoded.push(b' ');
                index += 1;
            }
            byte => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Encodes every byte but the URL-unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Parses `application/x-www-form-urlencoded` text (a body or a query string) into pairs,
/// in order; a key without `=` gets an empty value.
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (percent_decode(key, true), percent_decode(value, true)),
            None => (percent_decode(pair, true), String::new()),
        })
        .collect()
}

/// Encodes pairs as `application/x-www-form-urlencoded` text.
fn encode_form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value))).collect::<Vec<_>>().join("&")
}

/// A fresh random token of 32 lowercase hex digits.
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    use super::google::GoogleDouble;
    use super::telegram::{FileKind, TelegramDouble, TelegramUser};

    const LIMIT: Duration = Duration::from_secs(10);

    fn client() -> reqwest::Client {
        super::install_crypto_provider();
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("reqwest client")
    }

    /// Posts `body` as JSON to `url`; returns the JSON answer, whatever its status.
    async fn post_json(http: &reqwest::Client, url: String, body: &serde_json::Value) -> serde_json::Value {
        http.post(url).json(body).send().await.expect("send").json().await.expect("json")
    }

    fn query_value(url: &str, key: &str) -> Option<String> {
        let query = url.split_once('?')?.1;
        super::parse_form(query).into_iter().find(|(name, _)| name == key).map(|(_, value)| value)
    }

    #[test]
    fn percent_coding_round_trips() {
        let text = "4/0Ab+c d&e=f?ü";
        assert_eq!(super::percent_decode(&super::percent_encode(text), true), text);
        assert_eq!(super::parse_form("a=1+2&b=%2F&c"), vec![("a".into(), "1 2".into()), ("b".into(), "/".into()), ("c".into(), String::new())]);
        assert_eq!(super::percent_decode("100%", false), "100%");
        assert_eq!(super::percent_decode("%4", false), "%4");
    }

    /// A PKCE authorization-code round trip: the consent redirect, a wrong verifier
    /// refused with `invalid_grant`, the right one answered with tokens, a refresh, a Drive
    /// call with the access token, and a revocation that ends both tokens.
    #[tokio::test]
    async fn google_pkce_round_trip() {
        let google = GoogleDouble::start("client-1.apps.googleusercontent.com", "secret-1").await;
        let base = google.base_url();
        let http = client();
        let verifier = "a-verifier-of-at-least-43-characters-0123456789abcdef";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let redirect_uri = "http://127.0.0.1:9/oauth/callback";
        let auth_url = |scope: &str| {
            format!(
                "{base}/o/oauth2/v2/auth?{}",
                super::encode_form(&[
                    ("response_type", "code"),
                    ("client_id", "client-1.apps.googleusercontent.com"),
                    ("redirect_uri", redirect_uri),
                    ("scope", scope),
                    ("state", "state-42"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("access_type", "offline"),
                ])
            )
        };

        let wrong_scope = http.get(auth_url("https://www.googleapis.com/auth/drive")).send().await.expect("auth");
        assert_eq!(wrong_scope.status(), 400);
        assert!(wrong_scope.text().await.expect("body").contains("invalid_scope"));

        let consent = http.get(auth_url(super::google::DRIVE_FILE_SCOPE)).send().await.expect("auth");
        assert_eq!(consent.status(), 302);
        let location = consent.headers()["location"].to_str().expect("location").to_owned();
        assert!(location.starts_with(redirect_uri), "{location}");
        assert_eq!(query_value(&location, "state").as_deref(), Some("state-42"));
        let code = query_value(&location, "code").expect("code");

        let exchange = |verifier: &str| {
            http.post(format!("{base}/token"))
                .basic_auth("client-1.apps.googleusercontent.com", Some("secret-1"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(super::encode_form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier),
                ]))
                .send()
        };
        let refused = exchange("the-wrong-verifier-0123456789-0123456789-0123456789").await.expect("token");
        assert_eq!(refused.status(), 400);
        let refused: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(refused, serde_json::json!({"error": "invalid_grant", "error_description": "Invalid code verifier."}));

        let granted = exchange(verifier).await.expect("token");
        assert_eq!(granted.status(), 200);
        let granted: serde_json::Value = granted.json().await.expect("json");
        assert_eq!(granted["token_type"], "Bearer");
        assert_eq!(granted["expires_in"], 3599);
        assert_eq!(granted["scope"], super::google::DRIVE_FILE_SCOPE);
        let access = granted["access_token"].as_str().expect("access token").to_owned();
        let refresh = granted["refresh_token"].as_str().expect("refresh token").to_owned();
        assert_eq!(exchange(verifier).await.expect("token").status(), 400, "a code is single-use");

        let refreshed: serde_json::Value = http
            .post(format!("{base}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(super::encode_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "client-1.apps.googleusercontent.com"),
                ("client_secret", "secret-1"),
            ]))
            .send()
            .await
            .expect("refresh")
            .json()
            .await
            .expect("json");
        assert!(refreshed.get("refresh_token").is_none());
        let access_2 = refreshed["access_token"].as_str().expect("access token").to_owned();
        assert_ne!(access, access_2);

        let listed = http.get(format!("{base}/drive/v3/files")).bearer_auth(&access_2).send().await.expect("list");
        assert_eq!(listed.status(), 200);

        let revoked = http
            .post(format!("{base}/revoke"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(super::encode_form(&[("token", &refresh)]))
            .send()
            .await
            .expect("revoke");
        assert_eq!(revoked.status(), 200);
        let denied = http.get(format!("{base}/drive/v3/files")).bearer_auth(&access_2).send().await.expect("list");
        assert_eq!(denied.status(), 401);
        let denied: serde_json::Value = denied.json().await.expect("json");
        assert_eq!(denied["error"]["errors"][0]["reason"], "authError");
        assert_eq!(google.consents().len(), 1);
        assert!(google.requests().iter().any(|request| request.path == "/revoke"));
    }

    /// Fetches an access token through the whole consent flow.
    async fn access_token(google: &GoogleDouble) -> String {
        let http = client();
        let base = google.base_url();
        let verifier = "verifier-verifier-verifier-verifier-verifier-verifier";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let consent = http
            .get(format!(
                "{base}/o/oauth2/v2/auth?{}",
                super::encode_form(&[
                    ("response_type", "code"),
                    ("client_id", "id"),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("scope", super::google::DRIVE_FILE_SCOPE),
                    ("state", "s"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ])
            ))
            .send()
            .await
            .expect("auth");
        let code = query_value(consent.headers()["location"].to_str().expect("location"), "code").expect("code");
        let granted: serde_json::Value = http
            .post(format!("{base}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(super::encode_form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("code_verifier", verifier),
                ("client_id", "id"),
                ("client_secret", "secret"),
            ]))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        granted["access_token"].as_str().expect("access token").to_owned()
    }

    /// A folder, then a resumable upload interrupted by `fail_upload_at`, a status query
    /// that reports what was kept, and the rest sent from there: the stored bytes equal the
    /// source, and the folder is found by name, parent and app property.
    #[tokio::test]
    async fn google_resumable_upload_resumes_after_interruption() {
        let google = GoogleDouble::start("id", "secret").await;
        let base = google.base_url();
        let http = client();
        let token = access_token(&google).await;
        let source: Vec<u8> = (0..700_000u32).map(|index| (index % 251) as u8).collect();

        let folder: serde_json::Value = http
            .post(format!("{base}/drive/v3/files?fields=id,name,mimeType,parents"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "chatvault's", "mimeType": super::google::FOLDER_MIME, "appProperties": {"chatvault": "root"}}))
            .send()
            .await
            .expect("create folder")
            .json()
            .await
            .expect("json");
        let folder_id = folder["id"].as_str().expect("folder id").to_owned();
        let found: serde_json::Value = http
            .get(format!("{base}/drive/v3/files"))
            .bearer_auth(&token)
            .query(&[
                ("q", format!("name = 'chatvault\\'s' and mimeType = '{}' and 'root' in parents and trashed = false and appProperties has {{ key='chatvault' and value='root' }}", super::google::FOLDER_MIME)),
                ("fields", "files(id,name,appProperties)".to_owned()),
            ])
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(found["files"][0]["id"], folder_id.as_str(), "{found}");
        assert_eq!(found["files"][0]["appProperties"]["chatvault"], "root");
        assert!(found["files"][0].get("mimeType").is_none(), "fields are honoured");
        let unsupported =
            http.get(format!("{base}/drive/v3/files")).bearer_auth(&token).query(&[("q", "fullText contains 'x'")]).send().await.expect("list");
        assert_eq!(unsupported.status(), 400);

        let started = http
            .post(format!("{base}/upload/drive/v3/files?uploadType=resumable&fields=id,size,name"))
            .bearer_auth(&token)
            .header("x-upload-content-type", "application/pdf")
            .header("x-upload-content-length", source.len().to_string())
            .json(&serde_json::json!({"name": "a.pdf", "parents": [folder_id], "appProperties": {"sha256": "x"}}))
            .send()
            .await
            .expect("start upload");
        assert_eq!(started.status(), 200);
        let session = started.headers()["location"].to_str().expect("location").to_owned();
        let upload_id = query_value(&session, "upload_id").expect("upload id");

        google.fail_upload_at(300_000);
        let total = source.len();
        let interrupted = http
            .put(&session)
            .header("content-range", format!("bytes 0-{}/{total}", 262_144 * 2 - 1))
            .body(source[..262_144 * 2].to_vec())
            .send()
            .await
            .expect("first chunk");
        assert_eq!(interrupted.status(), 503);
        let kept = google.wait_for_upload_bytes(Some(&upload_id), 300_000, LIMIT).await.expect("kept bytes");
        assert_eq!(kept.received, 300_000);

        let status = http.put(&session).header("content-range", format!("bytes */{total}")).send().await.expect("status query");
        assert_eq!(status.status(), 308);
        assert_eq!(status.headers()["range"], "bytes=0-299999");
        let misplaced =
            http.put(&session).header("content-range", format!("bytes 0-9/{total}")).body(source[..10].to_vec()).send().await.expect("put");
        assert_eq!(misplaced.status(), 400);

        let more = http
            .put(&session)
            .header("content-range", format!("bytes 300000-599999/{total}"))
            .body(source[300_000..600_000].to_vec())
            .send()
            .await
            .expect("put");
        assert_eq!(more.status(), 308);
        assert_eq!(more.headers()["range"], "bytes=0-599999");
        let done = http
            .put(&session)
            .header("content-range", format!("bytes 600000-{}/{total}", total - 1))
            .body(source[600_000..].to_vec())
            .send()
            .await
            .expect("put");
        assert_eq!(done.status(), 200);
        let file: serde_json::Value = done.json().await.expect("json");
        assert_eq!(file["size"], total.to_string());
        assert_eq!(file["name"], "a.pdf");
        let file_id = file["id"].as_str().expect("file id");
        assert_eq!(google.file_bytes(file_id).as_deref(), Some(&source[..]));
        assert_eq!(google.files_in(&folder_id).len(), 1);
        assert_eq!(google.folders_named("chatvault's").len(), 1);
        let media = http.get(format!("{base}/drive/v3/files/{file_id}?alt=media")).bearer_auth(&token).send().await.expect("media");
        assert_eq!(media.bytes().await.expect("bytes").as_ref(), &source[..]);
        let puts = google.upload_puts();
        assert_eq!(puts.len(), 5);
        assert_eq!(puts[1], (upload_id.clone(), format!("bytes */{total}")));

        google.quota_errors(1, super::google::QuotaKind::TooManyRequests);
        let limited = http.get(format!("{base}/drive/v3/files")).bearer_auth(&token).send().await.expect("list");
        assert_eq!(limited.status(), 429);
        google.expire_access_tokens();
        assert_eq!(http.get(format!("{base}/drive/v3/files")).bearer_auth(&token).send().await.expect("list").status(), 401);
    }

    fn telegram_user() -> TelegramUser {
        TelegramUser::new(777, "Ann", Some("ann"))
    }

    /// A long poll that is waiting when a person writes receives the update; every kind of
    /// file message deserializes with teloxide's own types into the right media kind.
    #[tokio::test]
    async fn telegram_long_poll_and_update_shapes() {
        use teloxide_core::types::{MediaKind, MessageKind, Update, UpdateKind};

        let telegram = TelegramDouble::start("42:SECRET").await;
        let base = telegram.base_url();
        let http = client();
        let user = telegram_user();

        let wrong = http.post(format!("{base}/bot42:WRONG/getMe")).json(&serde_json::json!({})).send().await.expect("getMe");
        assert_eq!(wrong.status(), 401);
        let me: serde_json::Value = http.post(format!("{base}/bot42:SECRET/GETME")).send().await.expect("getMe").json().await.expect("json");
        let me: teloxide_core::types::Me = serde_json::from_value(me["result"].clone()).expect("Me");
        assert_eq!(me.username(), "chatvault_test_bot");

        let poll = {
            let http = http.clone();
            let url = format!("{base}/bot42:SECRET/getUpdates");
            tokio::spawn(async move {
                http.post(url).json(&serde_json::json!({"offset": 0, "timeout": 20})).send().await.expect("poll").json::<serde_json::Value>().await
            })
        };
        telegram.wait_for_request("getUpdates", LIMIT).await.expect("the poll arrived");
        telegram.send_text(&user, "/start hello", 1_700_000_000);
        let answer = poll.await.expect("join").expect("json");
        // From text, as teloxide does: its `UpdateKind` needs borrowed keys and reads an
        // update parsed from a `serde_json::Value` as `UpdateKind::Error`.
        let updates: Vec<Update> = serde_json::from_str(&answer["result"].to_string()).expect("updates");
        assert_eq!(updates.len(), 1);
        let UpdateKind::Message(message) = &updates[0].kind else { panic!("not a message: {:?}", updates[0]) };
        assert_eq!(message.text(), Some("/start hello"));
        assert_eq!(message.chat.id.0, 777);
        let entities = message.entities().expect("entities");
        assert_eq!((entities[0].offset, entities[0].length), (0, 6));

        let mut offset = updates[0].id.0 as i64 + 1;
        for kind in FileKind::ALL {
            let sent = telegram.send_file(&user, kind, b"same bytes".to_vec(), "clip.bin", "application/octet-stream", 1_700_000_100);
            let answer: serde_json::Value = http
                .post(format!("{base}/bot42:SECRET/getUpdates"))
                .json(&serde_json::json!({"offset": offset, "timeout": 0}))
                .send()
                .await
                .expect("poll")
                .json()
                .await
                .expect("json");
            let updates: Vec<Update> = serde_json::from_str(&answer["result"].to_string()).expect("updates");
            assert_eq!(updates.len(), 1, "{answer}");
            offset = updates[0].id.0 as i64 + 1;
            let UpdateKind::Message(message) = &updates[0].kind else { panic!("{kind:?} is not a message: {answer}") };
            let MessageKind::Common(common) = &message.kind else { panic!("{kind:?}: {answer}") };
            let file_id = match (&common.media_kind, kind) {
                (MediaKind::Document(media), FileKind::Document) => media.document.file.id.0.clone(),
                (MediaKind::Photo(media), FileKind::Photo) => media.photo.last().expect("sizes").file.id.0.clone(),
                (MediaKind::Video(media), FileKind::Video) => media.video.file.id.0.clone(),
                (MediaKind::Audio(media), FileKind::Audio) => media.audio.file.id.0.clone(),
                (MediaKind::Voice(media), FileKind::Voice) => media.voice.file.id.0.clone(),
                (MediaKind::VideoNote(media), FileKind::VideoNote) => media.video_note.file.id.0.clone(),
                (other, kind) => panic!("{kind:?} arrived as {other:?}"),
            };
            assert_eq!(file_id, sent.file_id);
            let file: serde_json::Value = http
                .post(format!("{base}/bot42:SECRET/getFile"))
                .json(&serde_json::json!({"file_id": file_id}))
                .send()
                .await
                .expect("getFile")
                .json()
                .await
                .expect("json");
            let file: teloxide_core::types::File = serde_json::from_value(file["result"].clone()).expect("File");
            assert_eq!(file.meta.unique_id.0, sent.file_unique_id);
            let bytes = http.get(format!("{base}/file/bot42:SECRET/{}", file.path)).send().await.expect("download").bytes().await.expect("bytes");
            assert_eq!(bytes.as_ref(), b"same bytes");
        }
        let again = telegram.send_file(&user, FileKind::Document, b"same bytes".to_vec(), "b.bin", "application/octet-stream", 1_700_000_200);
        let first = telegram.send_file(&user, FileKind::Document, b"other bytes".to_vec(), "c.bin", "application/octet-stream", 1_700_000_200);
        assert_ne!(again.file_unique_id, first.file_unique_id);

        let big = telegram.send_big_file(&user, FileKind::Video, 25 * 1024 * 1024, "big.mp4", "video/mp4", 1_700_000_300);
        let too_big: serde_json::Value = http
            .post(format!("{base}/bot42:SECRET/getFile"))
            .json(&serde_json::json!({"file_id": big.file_id}))
            .send()
            .await
            .expect("getFile")
            .json()
            .await
            .expect("json");
        assert_eq!(too_big["description"], "Bad Request: file is too big");
    }

    /// The bot's side: messages, edits, documents, markup checks, webhooks.
    #[tokio::test]
    async fn telegram_bot_methods_and_webhook() {
        let telegram = TelegramDouble::start("42:SECRET").await;
        let base = telegram.base_url();
        let http = client();
        let user = telegram_user();
        let method = |name: &str| format!("{base}/bot42:SECRET/{name}");

        let unknown: serde_json::Value = post_json(&http, method("sendMessage"), &serde_json::json!({"chat_id": 5, "text": "x"})).await;
        assert_eq!(unknown["description"], "Bad Request: chat not found");
        telegram.send_text(&user, "hi", 1_700_000_000);
        let sent: serde_json::Value = post_json(
            &http,
            method("sendMessage"),
            &serde_json::json!({"chat_id": 777, "text": "Saved *a\\.pdf*", "parse_mode": "MarkdownV2", "unknown_field": 1}),
        )
        .await;
        let message: teloxide_core::types::Message = serde_json::from_value(sent["result"].clone()).expect("Message");
        assert_eq!(message.text(), Some("Saved a.pdf"));
        let bad: serde_json::Value =
            post_json(&http, method("sendMessage"), &serde_json::json!({"chat_id": 777, "text": "Saved a.pdf", "parse_mode": "MarkdownV2"})).await;
        assert!(
            bad["description"].as_str().expect("description").starts_with("Bad Request: can't parse entities: Character '.' is reserved"),
            "{bad}"
        );
        let html: serde_json::Value = post_json(&http, method("sendMessage"), &serde_json::json!({"chat_id": 777, "text": "<b>Open</b> <a href=\"https://example.test/x?a=1&amp;b=2\">this</a> &lt;3", "parse_mode": "HTML"})).await;
        assert_eq!(html["result"]["text"], "Open this <3");
        let edited: serde_json::Value = post_json(
            &http,
            method("editMessageText"),
            &serde_json::json!({"chat_id": "777", "message_id": message.id.0, "text": "Saved a.pdf (2/2)"}),
        )
        .await;
        assert_eq!(edited["ok"], true, "{edited}");
        let missing: serde_json::Value =
            post_json(&http, method("editMessageText"), &serde_json::json!({"chat_id": 777, "message_id": 999, "text": "x"})).await;
        assert_eq!(missing["description"], "Bad Request: message to edit not found");
        let found = telegram.wait_for_message(777, |text| text.contains("(2/2)"), LIMIT).await.expect("edited message");
        assert_eq!(found.text, "Saved a.pdf");
        assert_eq!(found.edits, vec!["Saved a.pdf (2/2)".to_owned()]);
        let links = telegram.messages_to(777)[1].links.clone();
        assert_eq!(links, vec!["https://example.test/x?a=1&b=2".to_owned()]);

        let form = reqwest::multipart::Form::new()
            .text("chat_id", "777")
            .text("document", "attach://f1")
            .text("caption", "Here")
            .part("f1", reqwest::multipart::Part::bytes(b"%PDF-1".to_vec()).file_name("export.pdf"));
        let document: serde_json::Value = http.post(method("sendDocument")).multipart(form).send().await.expect("send").json().await.expect("json");
        let document: teloxide_core::types::Message = serde_json::from_value(document["result"].clone()).expect("Message");
        let file_id = document.document().expect("document").file.id.0.clone();
        let again: serde_json::Value = post_json(&http, method("sendDocument"), &serde_json::json!({"chat_id": 777, "document": file_id})).await;
        assert_eq!(again["ok"], true, "{again}");
        let documents = telegram.wait_for_documents(777, 2, LIMIT).await;
        assert_eq!(documents[0], ("export.pdf".to_owned(), b"%PDF-1".to_vec(), Some("Here".to_owned())));
        assert_eq!(documents[1].1, b"%PDF-1".to_vec());
        let not_found: serde_json::Value = http.post(method("frobnicate")).send().await.expect("send").json().await.expect("json");
        assert_eq!(not_found["error_code"], 404);

        // A webhook receives the queued updates, in order, with the secret; the first
        // attempt fails and is retried.
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(Option<String>, serde_json::Value)>::new()));
        let failed_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hook = {
            let received = received.clone();
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                    let received = received.clone();
                    let failed_once = failed_once.clone();
                    async move {
                        if !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let secret = headers.get("x-telegram-bot-api-secret-token").map(|value| value.to_str().expect("ascii").to_owned());
                        received.lock().expect("lock").push((secret, body.0));
                        axum::http::StatusCode::OK
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hook_url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, hook).await });
        telegram.send_text(&user, "queued before the webhook", 1_700_000_010);
        let set: serde_json::Value = http
            .post(method("setWebhook"))
            .json(&serde_json::json!({"url": hook_url, "secret_token": "s3cret"}))
            .send()
            .await
            .expect("set")
            .json()
            .await
            .expect("json");
        assert_eq!(set["result"], true);
        let conflict = http.post(method("getUpdates")).json(&serde_json::json!({})).send().await.expect("poll");
        assert_eq!(conflict.status(), 409);
        let deliveries = telegram.wait_for_deliveries(3, LIMIT).await;
        let statuses: Vec<Option<u16>> = deliveries.iter().map(|delivery| delivery.status).collect();
        assert_eq!(statuses, vec![Some(500), Some(200), Some(200)], "{deliveries:?}");
        assert_eq!(deliveries[0].update_id, deliveries[1].update_id);
        let got = received.lock().expect("lock").clone();
        let texts: Vec<&str> = got.iter().map(|(_, update)| update["message"]["text"].as_str().expect("text")).collect();
        assert_eq!(texts, vec!["hi", "queued before the webhook"]);
        assert!(got.iter().all(|(secret, _)| secret.as_deref() == Some("s3cret")));
        let info: serde_json::Value = http.post(method("getWebhookInfo")).send().await.expect("info").json().await.expect("json");
        let info: teloxide_core::types::WebhookInfo = serde_json::from_value(info["result"].clone()).expect("WebhookInfo");
        assert_eq!(info.pending_update_count, 0);
    }

    #[test]
    fn markup_parsers() {
        use super::telegram::parse_formatted;
        assert_eq!(parse_formatted("a_b", None).expect("plain").0, "a_b");
        assert_eq!(parse_formatted("*bold* \\_x\\_ `co.de` [t](https://x.test/a\\)b)", Some("MarkdownV2")).expect("md").0, "bold _x_ co.de t");
        assert_eq!(parse_formatted("[t](https://x.test/a\\)b)", Some("MarkdownV2")).expect("md").1, vec!["https://x.test/a)b".to_owned()]);
        assert!(parse_formatted("*open", Some("MarkdownV2")).is_err());
        assert!(parse_formatted("1-2", Some("MarkdownV2")).is_err());
        assert_eq!(parse_formatted(">quote\n||spoiler||", Some("MarkdownV2")).expect("md").0, "quote\nspoiler");
        assert!(parse_formatted("<b>x", Some("HTML")).is_err());
        assert!(parse_formatted("<foo>x</foo>", Some("HTML")).is_err());
        assert!(parse_formatted("<b>x</i>", Some("HTML")).is_err());
        assert_eq!(parse_formatted("a < b & c", Some("HTML")).map(|parsed| parsed.0).ok(), None, "a bare < is refused");
        assert_eq!(parse_formatted("a &lt; b & c &#65;", Some("HTML")).expect("html").0, "a < b & c A");
        assert_eq!(parse_formatted("*bold* _it_ `c`", Some("Markdown")).expect("markdown").0, "bold it c");
    }
}
