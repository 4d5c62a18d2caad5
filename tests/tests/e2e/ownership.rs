//! Archives belong to the account that imported them, with auth on: another account sees
//! none of their chats, messages, authors or search hits (and cannot tell them from chats
//! nobody archived) until the owner shares the chat, and loses them again when the share
//! is revoked; importing the same chat gives each account its own archive; admins see every
//! archive; the audit trail names the owner as the actor of the share and the revoke.

use std::time::Duration;

use chatvault_proto::audit::v1::AuditQueryRequest;
use chatvault_proto::common::v1::ConsistencyToken;
use chatvault_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use chatvault_proto::ingest::v1::{import_update, upload_export_request, ExportFileChunk, ImportSummary, UploadExportHeader, UploadExportRequest};
use chatvault_proto::storage::v1::storage_service_client::StorageServiceClient;
use chatvault_proto::storage::v1::{
    Chat, GetMessagesRequest, GetThreadRequest, ListChatsRequest, RevokeChatShareRequest, ShareChatRequest, StoredMessage,
};
use chatvault_proto::users::v1::{AuthorStatsRequest, AuthorStatsResponse, TopAuthorsRequest};
use tonic::transport::Channel;
use tonic::Code;

use crate::accounts::{authorized, unique_name, AuthPlatform, ADMIN_PASSWORD, ADMIN_USERNAME};
use crate::helpers::{fixture, wait_until};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;
/// A chat id nobody imports: what "does not exist" answers.
const UNKNOWN_CHAT_ID: i64 = 987_654_321;
const PASSWORD: &str = "correct horse 57";

/// Another account's export of the sample chat (same chat id), holding other messages.
fn second_export_of_the_sample_chat() -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "name": "Project Alpha",
        "type": "private_supergroup",
        "id": SAMPLE_CHAT_ID,
        "messages": [
            { "id": 1, "type": "message", "date": "2026-11-23T08:00:00", "date_unixtime": "1795420800",
              "from": "Zed Quinn", "from_id": "user77", "text": "Zeppelin inspection at noon", "text_entities": [{ "type": "plain", "text": "Zeppelin inspection at noon" }] },
            { "id": 2, "type": "message", "date": "2026-11-23T08:05:00", "date_unixtime": "1795421100",
              "from": "Zed Quinn", "from_id": "user77", "text": "Bring the checklists", "text_entities": [{ "type": "plain", "text": "Bring the checklists" }] },
            { "id": 30, "type": "message", "date": "2026-11-23T08:10:00", "date_unixtime": "1795421400",
              "from": "Zed Quinn", "from_id": "user77", "reply_to_message_id": 1, "text": "Zeppelin is ready", "text_entities": [{ "type": "plain", "text": "Zeppelin is ready" }] }
        ]
    }))
    .expect("JSON")
}

/// One account's calls, with its token.
struct Session {
    username: String,
    token: String,
    storage: StorageServiceClient<Channel>,
    users: chatvault_proto::users::v1::users_service_client::UsersServiceClient<Channel>,
    ingest: IngestServiceClient<Channel>,
}

impl Session {
    async fn log_in(platform: &AuthPlatform, ingest: &Channel, username: &str, password: &str) -> Self {
        let pair = platform.login(username, password).await.expect("logs in");
        Self {
            username: username.to_owned(),
            token: pair.access_token,
            storage: platform.storage.clone(),
            users: platform.users.clone(),
            ingest: IngestServiceClient::new(ingest.clone()),
        }
    }

    async fn upload_export(&self, result_json: &[u8]) -> ImportSummary {
        let requests = vec![
            UploadExportRequest { item: Some(upload_export_request::Item::Header(UploadExportHeader::default())) },
            UploadExportRequest {
                item: Some(upload_export_request::Item::Chunk(ExportFileChunk { relative_path: "result.json".into(), data: result_json.to_vec() })),
            },
        ];
        let mut updates =
            self.ingest.clone().upload_export(authorized(futures::stream::iter(requests), &self.token)).await.expect("upload accepted").into_inner();
        let mut summary = None;
        while let Some(update) = updates.message().await.expect("import updates") {
            if let Some(import_update::Update::Summary(done)) = update.update {
                summary = Some(done);
            }
        }
        summary.expect("the import ends with a summary")
    }

    async fn chats(&self, token: &Option<ConsistencyToken>) -> Vec<Chat> {
        let request = ListChatsRequest { consistency_token: token.clone() };
        self.storage.clone().list_chats(authorized(request, &self.token)).await.expect("ListChats").into_inner().chats
    }

    async fn messages(&self, chat_id: i64, owner: Option<&str>, text_query: Option<&str>) -> Result<Vec<StoredMessage>, tonic::Status> {
        let request = GetMessagesRequest {
            chat_id,
            limit: 1000,
            owner: owner.map(str::to_owned),
            text_query: text_query.map(str::to_owned),
            ..Default::default()
        };
        Ok(self.storage.clone().get_messages(authorized(request, &self.token)).await?.into_inner().messages)
    }

    async fn thread(&self, chat_id: i64, message_id: i64, owner: Option<&str>) -> Result<Vec<StoredMessage>, tonic::Status> {
        let request = GetThreadRequest { chat_id, message_id, consistency_token: None, owner: owner.map(str::to_owned) };
        Ok(self.storage.clone().get_thread(authorized(request, &self.token)).await?.into_inner().messages)
    }

    /// `(author, messages, name)` of the chat's top authors, after `token`.
    async fn top_authors(
        &self,
        chat_id: i64,
        owner: Option<&str>,
        token: &Option<ConsistencyToken>,
    ) -> Result<Vec<(String, u64, Option<String>)>, tonic::Status> {
        let request = TopAuthorsRequest { chat_id, limit: 100, consistency_token: token.clone(), owner: owner.map(str::to_owned) };
        let authors = self.users.clone().top_authors(authorized(request, &self.token)).await?.into_inner().authors;
        Ok(authors.into_iter().map(|author| (author.author_id, author.message_count, author.name)).collect())
    }

    async fn author_stats(&self, author_id: &str, token: &Option<ConsistencyToken>) -> Result<AuthorStatsResponse, tonic::Status> {
        let request = AuthorStatsRequest { author_id: author_id.to_owned(), consistency_token: token.clone() };
        Ok(self.users.clone().author_stats(authorized(request, &self.token)).await?.into_inner())
    }

    async fn share(
        &self,
        chat_id: i64,
        owner: Option<&str>,
        grantee: &str,
    ) -> Result<chatvault_proto::storage::v1::ShareChatResponse, tonic::Status> {
        let request = ShareChatRequest { chat_id, owner: owner.map(str::to_owned), grantee: grantee.to_owned(), consistency_token: None };
        Ok(self.storage.clone().share_chat(authorized(request, &self.token)).await?.into_inner())
    }

    async fn revoke(
        &self,
        chat_id: i64,
        owner: Option<&str>,
        grantee: &str,
    ) -> Result<chatvault_proto::storage::v1::RevokeChatShareResponse, tonic::Status> {
        let request = RevokeChatShareRequest { chat_id, owner: owner.map(str::to_owned), grantee: grantee.to_owned(), consistency_token: None };
        Ok(self.storage.clone().revoke_chat_share(authorized(request, &self.token)).await?.into_inner())
    }
}

fn ids_and_texts(messages: &[StoredMessage]) -> Vec<(i64, String)> {
    messages.iter().map(|message| (message.message_id, message.text.clone())).collect()
}

fn archives(chats: &[Chat]) -> Vec<(i64, String, u64, Vec<String>)> {
    let mut listed: Vec<_> = chats.iter().map(|chat| (chat.chat_id, chat.owner.clone(), chat.message_count, chat.shared_with.clone())).collect();
    listed.sort();
    listed
}

/// `(code, message)` of a refused call.
fn refusal<T: std::fmt::Debug>(outcome: Result<T, tonic::Status>) -> (Code, String) {
    let status = outcome.expect_err("refused");
    (status.code(), status.message().to_owned())
}

/// Asserts that `viewer` sees nothing of `owner`'s archive of the sample chat: no chat, no
/// messages (the answer of a chat nobody archived, whether or not the owner is named), no
/// thread, no authors, no search hits.
async fn assert_sees_nothing_of(viewer: &Session, owner: &str, token: &Option<ConsistencyToken>) {
    let nonexistent = refusal(viewer.messages(UNKNOWN_CHAT_ID, None, None).await);
    assert_eq!(nonexistent.0, Code::NotFound);
    let nonexistent_message = nonexistent.1.replace(&UNKNOWN_CHAT_ID.to_string(), &SAMPLE_CHAT_ID.to_string());
    assert!(viewer.chats(token).await.iter().all(|chat| chat.owner != owner), "{} lists a chat of {owner}", viewer.username);
    for outcome in [
        viewer.messages(SAMPLE_CHAT_ID, Some(owner), None).await,
        viewer.messages(SAMPLE_CHAT_ID, Some(owner), Some("deploying")).await,
        viewer.thread(SAMPLE_CHAT_ID, 2, Some(owner)).await,
    ] {
        assert_eq!(refusal(outcome), (Code::NotFound, nonexistent_message.clone()), "{} reads {owner}'s archive", viewer.username);
    }
    assert_eq!(viewer.top_authors(SAMPLE_CHAT_ID, Some(owner), token).await.expect("TopAuthors"), vec![], "authors of {owner}'s archive");
    let unknown_author = refusal(viewer.author_stats("user999", token).await);
    let hidden_author = refusal(viewer.author_stats("user42", token).await);
    assert_eq!(
        (hidden_author.0, hidden_author.1.replace("user42", "ID")),
        (unknown_author.0, unknown_author.1.replace("user999", "ID")),
        "user42 is only in {owner}'s archive"
    );
    assert_eq!(unknown_author.0, Code::NotFound);
}

#[tokio::test]
async fn a_chat_is_seen_by_its_owner_the_accounts_it_is_shared_with_and_admins_only() {
    let platform = AuthPlatform::start().await;
    let ingest = platform.start_ingest().await;
    let audit = platform.start_audit().await;
    let (alice_name, bob_name) = (unique_name("alice"), unique_name("bob"));
    for name in [&alice_name, &bob_name] {
        platform.register(name, PASSWORD).await.expect("registers");
    }
    let alice = Session::log_in(&platform, &ingest, &alice_name, PASSWORD).await;
    let bob = Session::log_in(&platform, &ingest, &bob_name, PASSWORD).await;
    let admin = Session::log_in(&platform, &ingest, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    let database = platform._database.client().await;

    // Alice imports the sample export: hers alone.
    let sample = std::fs::read(fixture("sample-export/result.json")).expect("sample");
    let alice_import = alice.upload_export(&sample).await;
    let token = alice_import.consistency_token.clone();
    assert_eq!(alice_import.messages, 8);
    assert_eq!(archives(&alice.chats(&token).await), vec![(SAMPLE_CHAT_ID, alice_name.clone(), 8, vec![])]);
    let alice_messages = alice.messages(SAMPLE_CHAT_ID, None, None).await.expect("her messages");
    assert_eq!(alice_messages.len(), 8);
    assert!(alice_messages.iter().all(|message| message.owner == alice_name));
    assert!(bob.chats(&token).await.is_empty(), "bob sees no chat");
    assert_sees_nothing_of(&bob, &alice_name, &token).await;
    // Without naming the owner, the chat is as unknown to bob as any other.
    let unknown = refusal(bob.messages(UNKNOWN_CHAT_ID, None, None).await);
    let hidden = refusal(bob.messages(SAMPLE_CHAT_ID, None, Some("deploying")).await);
    assert_eq!((hidden.0, hidden.1.replace(&SAMPLE_CHAT_ID.to_string(), "ID")), (unknown.0, unknown.1.replace(&UNKNOWN_CHAT_ID.to_string(), "ID")));
    assert_eq!(bob.top_authors(SAMPLE_CHAT_ID, None, &token).await.expect("TopAuthors"), vec![]);
    // Nor can bob share it: it does not exist for him.
    assert_eq!(refusal(bob.share(SAMPLE_CHAT_ID, Some(&alice_name), &bob_name).await).0, Code::NotFound);

    // Bob imports his own export of the same chat: each sees only their own archive.
    let bob_import = bob.upload_export(&second_export_of_the_sample_chat()).await;
    let token = bob_import.consistency_token.clone();
    assert_eq!(archives(&alice.chats(&token).await), vec![(SAMPLE_CHAT_ID, alice_name.clone(), 8, vec![])]);
    assert_eq!(archives(&bob.chats(&token).await), vec![(SAMPLE_CHAT_ID, bob_name.clone(), 3, vec![])]);
    let bob_own = vec![(1, "Zeppelin inspection at noon".to_owned()), (2, "Bring the checklists".to_owned()), (30, "Zeppelin is ready".to_owned())];
    assert_eq!(ids_and_texts(&bob.messages(SAMPLE_CHAT_ID, None, None).await.expect("his messages")), bob_own);
    assert_eq!(ids_and_texts(&alice.messages(SAMPLE_CHAT_ID, None, None).await.expect("her messages")), ids_and_texts(&alice_messages));
    assert_eq!(bob.messages(SAMPLE_CHAT_ID, None, Some("deploying")).await.expect("search"), vec![], "alice's words are not in bob's archive");
    assert_eq!(alice.messages(SAMPLE_CHAT_ID, None, Some("zeppelin")).await.expect("search"), vec![]);
    assert_eq!(
        ids_and_texts(&bob.messages(SAMPLE_CHAT_ID, None, Some("zeppelin")).await.expect("search")),
        vec![bob_own[0].clone(), bob_own[2].clone()]
    );
    assert_eq!(
        bob.top_authors(SAMPLE_CHAT_ID, None, &token).await.expect("TopAuthors"),
        vec![("user77".to_owned(), 3, Some("Zed Quinn".to_owned()))]
    );
    let alice_authors = vec![
        ("user42".to_owned(), 2, Some("Ann Lee".to_owned())),
        ("user43".to_owned(), 2, Some("Борис Петров".to_owned())),
        ("user44".to_owned(), 1, None),
    ];
    assert_eq!(alice.top_authors(SAMPLE_CHAT_ID, None, &token).await.expect("TopAuthors"), alice_authors);
    assert_eq!(refusal(alice.author_stats("user77", &token).await).0, Code::NotFound);
    assert_sees_nothing_of(&bob, &alice_name, &token).await;
    // The rows: two archives of one chat id, each counted on its own.
    let stored: Vec<(String, i64)> = database
        .query("SELECT owner, count(*) FROM messages WHERE chat_id = $1 GROUP BY owner ORDER BY count(*) DESC", &[&SAMPLE_CHAT_ID])
        .await
        .expect("count")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(stored, vec![(alice_name.clone(), 8), (bob_name.clone(), 3)]);
    // An upload is named by its path inside the upload, never the server's temporary folder.
    let sources: Vec<String> = database
        .query("SELECT source FROM chats WHERE chat_id = $1", &[&SAMPLE_CHAT_ID])
        .await
        .expect("sources")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(sources, vec!["upload:result.json".to_owned(); 2], "{sources:?}");

    // Alice shares her chat with bob.
    // A name nobody holds cannot receive a share: it would go to whoever registers it later.
    let unregistered = format!("nobody{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (code, message) = refusal(alice.share(SAMPLE_CHAT_ID, None, &unregistered).await);
    assert_eq!(code, Code::NotFound, "{message}");
    assert!(message.contains(&unregistered), "{message}");
    let shared = alice.share(SAMPLE_CHAT_ID, None, &bob_name.to_uppercase()).await.expect("alice shares, naming bob in capitals");
    assert_eq!(shared.grantee, bob_name, "the grant names the account as it registered");
    assert!(shared.changed);
    assert_eq!((shared.owner.as_str(), shared.grantee.as_str()), (alice_name.as_str(), bob_name.as_str()));
    let token = shared.consistency_token.clone();
    assert!(token.is_some());
    assert!(!alice.share(SAMPLE_CHAT_ID, None, &bob_name).await.expect("sharing again").changed, "already shared");
    assert_eq!(refusal(alice.share(SAMPLE_CHAT_ID, None, &alice_name).await).0, Code::InvalidArgument, "the owner sees it already");
    assert_eq!(refusal(bob.share(SAMPLE_CHAT_ID, Some(&alice_name), ADMIN_USERNAME).await).0, Code::PermissionDenied, "only the owner shares");
    assert_eq!(refusal(bob.revoke(SAMPLE_CHAT_ID, Some(&alice_name), &bob_name).await).0, Code::PermissionDenied, "only the owner revokes");
    assert_eq!(
        archives(&bob.chats(&token).await),
        vec![(SAMPLE_CHAT_ID, alice_name.clone(), 8, vec![]), (SAMPLE_CHAT_ID, bob_name.clone(), 3, vec![])],
        "bob sees both archives; only the owner sees whom a chat is shared with"
    );
    assert_eq!(archives(&alice.chats(&token).await), vec![(SAMPLE_CHAT_ID, alice_name.clone(), 8, vec![bob_name.clone()])]);
    // Bob's own archive stays the default; naming alice reads hers.
    assert_eq!(ids_and_texts(&bob.messages(SAMPLE_CHAT_ID, None, None).await.expect("his own")), bob_own);
    let through_share = bob.messages(SAMPLE_CHAT_ID, Some(&alice_name), None).await.expect("alice's, shared");
    assert_eq!(ids_and_texts(&through_share), ids_and_texts(&alice_messages));
    assert!(through_share.iter().all(|message| message.owner == alice_name));
    let found = bob.messages(SAMPLE_CHAT_ID, Some(&alice_name), Some("deploying")).await.expect("search in alice's archive");
    assert_eq!(found.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![2]);
    let thread = bob.thread(SAMPLE_CHAT_ID, 2, Some(&alice_name)).await.expect("thread in alice's archive");
    assert_eq!(thread.iter().map(|message| message.message_id).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(bob.top_authors(SAMPLE_CHAT_ID, Some(&alice_name), &token).await.expect("TopAuthors"), alice_authors);
    assert_eq!(bob.top_authors(SAMPLE_CHAT_ID, None, &token).await.expect("TopAuthors").len(), 1, "his own by default");
    let stats = bob.author_stats("user42", &token).await.expect("user42 through the share");
    assert_eq!(stats.total_messages, 2);
    assert_eq!(stats.names, vec!["Ann Lee".to_owned()]);
    assert_eq!(
        stats.chats.iter().map(|chat| (chat.chat_id, chat.owner.clone(), chat.message_count)).collect::<Vec<_>>(),
        vec![(SAMPLE_CHAT_ID, alice_name.clone(), 2)]
    );
    for grants in ["chat_grants", "author_chat_grants"] {
        let rows: Vec<(String, i64, String)> = database
            .query(&format!("SELECT owner, chat_id, grantee FROM {grants}"), &[])
            .await
            .expect("grants")
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        assert_eq!(rows, vec![(alice_name.clone(), SAMPLE_CHAT_ID, bob_name.clone())], "{grants}");
    }

    // Alice revokes: bob loses everything of hers again, and keeps his own.
    let revoked = alice.revoke(SAMPLE_CHAT_ID, None, &bob_name).await.expect("alice revokes");
    assert!(revoked.changed);
    let token = revoked.consistency_token.clone();
    assert!(!alice.revoke(SAMPLE_CHAT_ID, None, &bob_name).await.expect("revoking again").changed, "not shared any more");
    assert_eq!(archives(&bob.chats(&token).await), vec![(SAMPLE_CHAT_ID, bob_name.clone(), 3, vec![])]);
    assert_sees_nothing_of(&bob, &alice_name, &token).await;
    assert_eq!(ids_and_texts(&bob.messages(SAMPLE_CHAT_ID, None, None).await.expect("his own")), bob_own);
    for grants in ["chat_grants", "author_chat_grants"] {
        let left: i64 = database.query_one(&format!("SELECT count(*) FROM {grants}"), &[]).await.expect("count").get(0);
        assert_eq!(left, 0, "{grants}");
    }

    // An admin sees both archives and chooses one by owner.
    assert_eq!(
        archives(&admin.chats(&token).await),
        vec![(SAMPLE_CHAT_ID, alice_name.clone(), 8, vec![]), (SAMPLE_CHAT_ID, bob_name.clone(), 3, vec![])]
    );
    let ambiguous = refusal(admin.messages(SAMPLE_CHAT_ID, None, None).await);
    assert_eq!(ambiguous.0, Code::InvalidArgument);
    assert!(ambiguous.1.contains(&alice_name) && ambiguous.1.contains(&bob_name), "{}", ambiguous.1);
    assert_eq!(ids_and_texts(&admin.messages(SAMPLE_CHAT_ID, Some(&alice_name), None).await.expect("alice's")), ids_and_texts(&alice_messages));
    assert_eq!(ids_and_texts(&admin.messages(SAMPLE_CHAT_ID, Some(&bob_name), None).await.expect("bob's")), bob_own);
    assert_eq!(admin.top_authors(SAMPLE_CHAT_ID, Some(&bob_name), &token).await.expect("TopAuthors").len(), 1);
    let everywhere = admin.author_stats("user42", &token).await.expect("admins count every archive");
    assert_eq!(everywhere.total_messages, 2);

    // The audit trail holds the share and the revoke, with alice as their actor.
    let expected_types = ["chatvault.chat.v1.ChatShared", "chatvault.chat.v1.ChatShareRevoked"];
    let alice_grant_rows = || {
        let mut audit = audit.clone();
        let (actor, admin_token) = (alice_name.clone(), admin.token.clone());
        async move {
            let request = AuditQueryRequest { actor, limit: 100, ..Default::default() };
            let rows = audit.query(authorized(request, &admin_token)).await.map(|response| response.into_inner().rows).unwrap_or_default();
            rows.into_iter().filter(|row| expected_types.contains(&row.event_type.as_str())).collect::<Vec<_>>()
        }
    };
    let recorded = wait_until(Duration::from_secs(60), || async { alice_grant_rows().await.len() == 2 }).await;
    let rows = alice_grant_rows().await;
    assert!(recorded, "audit rows of alice's grants: {rows:?}");
    let mut types: Vec<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(types, vec!["chatvault.chat.v1.ChatShareRevoked", "chatvault.chat.v1.ChatShared"]);
    for row in &rows {
        assert_eq!((row.actor.as_str(), row.service.as_str(), row.key.as_str()), (alice_name.as_str(), "storage", "1234567890"));
        let event: serde_json::Value = serde_json::from_str(&row.event_json).expect("event JSON");
        let grant = event.as_object().and_then(|object| object.values().next()).expect("the oneof member");
        assert_eq!(
            (grant["owner"].as_str(), grant["grantee"].as_str(), grant["actor"].as_str()),
            (Some(alice_name.as_str()), Some(bob_name.as_str()), Some(alice_name.as_str()))
        );
    }
}
