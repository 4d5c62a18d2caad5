//! Telegram authors (users service): every name seen, first and last message, counts per
//! chat and in total, exact under re-import.

use chatvault_proto::users::v1::{AuthorStatsRequest, TopAuthorsRequest};

use crate::helpers::{fixture, TestPlatform};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;

#[tokio::test]
async fn authors_are_counted_exactly_and_stay_exact_under_reimport() {
    let platform = TestPlatform::start().await;
    let mut users = platform.users.clone();
    for round in 0..2 {
        let summary = platform.import(&fixture("sample-export")).await.expect("imports");
        let top = users
            .top_authors(TopAuthorsRequest { chat_id: SAMPLE_CHAT_ID, limit: 10, consistency_token: summary.consistency_token.clone(), owner: None })
            .await
            .expect("TopAuthors")
            .into_inner()
            .authors;
        let counts: Vec<(String, u64, Option<String>)> =
            top.iter().map(|author| (author.author_id.clone(), author.message_count, author.name.clone())).collect();
        // Regular messages only: Ann (1, 3), Борис (2, 7), a deleted account (5).
        assert_eq!(
            counts,
            vec![
                ("user42".to_owned(), 2, Some("Ann Lee".to_owned())),
                ("user43".to_owned(), 2, Some("Борис Петров".to_owned())),
                ("user44".to_owned(), 1, None),
            ],
            "round {round}"
        );
    }
    let stats =
        users.author_stats(AuthorStatsRequest { author_id: "user43".into(), consistency_token: None }).await.expect("AuthorStats").into_inner();
    assert_eq!(stats.names, vec!["Борис Петров".to_owned()]);
    assert_eq!(stats.total_messages, 2);
    assert_eq!(stats.first_message_unix, Some(1_795_331_762));
    assert_eq!(stats.last_message_unix, Some(1_795_339_800));
    assert_eq!(stats.chats.len(), 1);

    let unknown = users.author_stats(AuthorStatsRequest { author_id: "user999".into(), consistency_token: None }).await.expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let empty = users.author_stats(AuthorStatsRequest { author_id: " ".into(), consistency_token: None }).await.expect_err("empty");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_newer_export_that_renames_an_author_keeps_both_names_and_the_count() {
    let platform = TestPlatform::start().await;
    platform.import(&fixture("sample-export")).await.expect("imports");
    let renamed =
        std::fs::read_to_string(fixture("sample-export/result.json")).expect("fixture").replace("\"from\": \"Ann Lee\"", "\"from\": \"Ann Smith\"");
    let folder = tempfile::tempdir().expect("temp");
    let path = folder.path().join("result.json");
    std::fs::write(&path, renamed).expect("write");
    let summary = platform.import(&path).await.expect("imports");
    let stats = platform
        .users
        .clone()
        .author_stats(AuthorStatsRequest { author_id: "user42".into(), consistency_token: summary.consistency_token })
        .await
        .expect("AuthorStats")
        .into_inner();
    assert_eq!(stats.total_messages, 2);
    let mut names = stats.names.clone();
    names.sort();
    assert_eq!(names, vec!["Ann Lee".to_owned(), "Ann Smith".to_owned()]);
}
