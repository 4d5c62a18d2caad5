//! HTML exports: the same chat imported from its HTML pages and from its JSON yields the
//! same messages (ids, authors, dates, text); broken pages are refused with nothing visible.

use std::collections::BTreeMap;
use std::io::BufWriter;

use chatvault_proto::chat::v1::MessageKind;

use crate::helpers::TestPlatform;

type Comparable = (Option<String>, Option<i64>, String);

fn comparable(messages: &[chatvault_proto::storage::v1::StoredMessage]) -> BTreeMap<i64, Comparable> {
    messages
        .iter()
        .filter(|message| message.kind == MessageKind::Regular as i32)
        .map(|message| (message.message_id, (message.from_name.clone(), message.date_unix, message.text.clone())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_and_json_exports_of_one_chat_import_the_same_messages() {
    let platform = TestPlatform::start().await;
    let folder = tempfile::tempdir().expect("temp");
    let chat_id = 6_100_000_001;
    let messages = 2_345; // three pages of HTML
    let json_path = folder.path().join("json").join("result.json");
    std::fs::create_dir_all(json_path.parent().expect("parent")).expect("mkdir");
    telegram_export::write_synthetic_export(BufWriter::new(std::fs::File::create(&json_path).expect("create")), chat_id, messages, 11)
        .expect("json export");
    let html_folder = folder.path().join("html");
    telegram_export::write_synthetic_html_export(&html_folder, chat_id, messages, 11).expect("html export");
    assert!(html_folder.join("messages3.html").is_file(), "the HTML export spans three pages");

    let json_summary = platform.import(&json_path).await.expect("JSON imports");
    let mut ingest = platform.ingest.clone();
    // HTML carries no chat id: import it under another id to compare the two side by side.
    let html_chat_id = chat_id + 1;
    let request = chatvault_proto::ingest::v1::ImportExportRequest {
        path: html_folder.display().to_string(),
        html_chat_id: Some(html_chat_id),
        ..Default::default()
    };
    let mut updates = ingest.import_export(request).await.expect("HTML import starts").into_inner();
    let mut html_summary = None;
    while let Some(update) = updates.message().await.expect("HTML import runs") {
        if let Some(chatvault_proto::ingest::v1::import_update::Update::Summary(done)) = update.update {
            html_summary = Some(done);
        }
    }
    let html_summary = html_summary.expect("HTML summary");
    assert_eq!(html_summary.chat_ids, vec![html_chat_id]);

    let from_json = comparable(&platform.all_messages(chat_id, json_summary.consistency_token.as_ref()).await);
    let from_html = comparable(&platform.all_messages(html_chat_id, html_summary.consistency_token.as_ref()).await);
    assert!(from_json.len() > 2_000, "most messages are regular: {}", from_json.len());
    assert_eq!(from_html.len(), from_json.len());
    for (id, json_message) in &from_json {
        assert_eq!(from_html.get(id), Some(json_message), "message {id}");
    }
}

#[tokio::test]
async fn a_page_that_is_not_a_telegram_export_is_refused_with_nothing_visible() {
    let platform = TestPlatform::start().await;
    let folder = tempfile::tempdir().expect("temp");
    let sample_chat_id = 1_234_567_890;
    telegram_export::write_synthetic_html_export(folder.path(), sample_chat_id, 1_500, 3).expect("html export");
    // The second page is replaced by a page from somewhere else, after 1,000 messages of
    // the first page were already published inside the transaction.
    std::fs::write(folder.path().join("messages2.html"), "<!DOCTYPE html><html><body><p>not an export</p></body></html>").expect("write");
    let request = chatvault_proto::ingest::v1::ImportExportRequest {
        path: folder.path().display().to_string(),
        html_chat_id: Some(sample_chat_id),
        ..Default::default()
    };
    let mut ingest = platform.ingest.clone();
    let outcome = async {
        let mut updates = ingest.import_export(request).await?.into_inner();
        while updates.message().await?.is_some() {}
        Ok::<(), tonic::Status>(())
    }
    .await;
    let status = outcome.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{}", status.message());
    assert!(status.message().contains("messages2.html"), "names the page: {}", status.message());

    // The JSON export of the same chat (same key, same partition) commits after the aborted
    // transaction; once it is visible, the refused messages would be too, were they committed.
    let summary = platform.import(&crate::helpers::fixture("sample-export")).await.expect("imports");
    let ids: Vec<i64> =
        platform.all_messages(sample_chat_id, summary.consistency_token.as_ref()).await.iter().map(|message| message.message_id).collect();
    assert_eq!(ids, vec![-999_999_950, 1, 2, 3, 5, 6, 7, 8], "only the sample's messages");
}
