//! Attachments: the media files an export holds are stored in file storage and linked to
//! their messages; references that leave the export folder are refused and reported; a
//! re-import stores nothing twice.

use chatvault_proto::storage::v1::GetMessagesRequest;

use crate::files_support::{random_bytes, FilesPlatform};
use crate::helpers::import_with;

const CHAT_ID: i64 = 7_300_000_001;

fn message(id: i64, media: &str) -> String {
    format!(
        "  {{\n   \"id\": {id},\n   \"type\": \"message\",\n   \"date\": \"2026-11-22T10:00:00\",\n   \"date_unixtime\": \"{}\",\n   \"from\": \"Ann\",\n   \"from_id\": \"user1\",\n{media},\n   \"text\": \"message {id}\"\n  }}",
        1_795_320_000 + id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_files_are_stored_linked_and_downloadable_and_escapes_are_refused() {
    let (platform, nodes) = FilesPlatform::start_with_nodes(6, &[]).await;
    let export = tempfile::tempdir().expect("temp");
    let outside = tempfile::tempdir().expect("temp");
    let photo = random_bytes(300_000);
    let document = random_bytes(70_001);
    std::fs::create_dir_all(export.path().join("photos")).expect("mkdir");
    std::fs::create_dir_all(export.path().join("files")).expect("mkdir");
    std::fs::write(export.path().join("photos/photo_1@22-11-2026_10-00-00.jpg"), &photo).expect("photo");
    std::fs::write(export.path().join("files/Q3 plan (1).pdf"), &document).expect("document");
    std::fs::write(outside.path().join("secret.txt"), b"not part of the export").expect("outside file");
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), export.path().join("files/link.txt")).expect("symlink");
    let messages = [
        message(1, "   \"photo\": \"photos/photo_1@22-11-2026_10-00-00.jpg\",\n   \"width\": 800,\n   \"height\": 600"),
        message(2, "   \"file\": \"files/Q3 plan (1).pdf\",\n   \"file_name\": \"Q3 plan.pdf\",\n   \"mime_type\": \"application/pdf\""),
        message(3, "   \"photo\": \"photos/photo_1@22-11-2026_10-00-00.jpg\",\n   \"width\": 800,\n   \"height\": 600"),
        message(4, "   \"file\": \"../secret.txt\",\n   \"mime_type\": \"text/plain\""),
        message(5, "   \"file\": \"files/link.txt\",\n   \"mime_type\": \"text/plain\""),
        message(6, "   \"file\": \"files/missing.bin\",\n   \"mime_type\": \"application/octet-stream\""),
    ];
    let result = format!(
        "{{\n \"name\": \"Attachments\",\n \"type\": \"personal_chat\",\n \"id\": {CHAT_ID},\n \"messages\": [\n{}\n ]\n}}\n",
        messages.join(",\n")
    );
    std::fs::write(export.path().join("result.json"), result).expect("result.json");

    let mut ingest = platform.ingest.clone();
    let summary = import_with(&mut ingest, export.path()).await.expect("the export imports");
    assert_eq!(summary.messages, 6);
    assert_eq!(summary.attachments, 2, "the photo (twice referenced) and the document");
    let warning = |kind: &str| summary.warnings.iter().find(|warning| warning.kind == kind).map_or(0, |warning| warning.count);
    assert_eq!(warning("attachment_path_refused"), 2, "../ and the link out: {:?}", summary.warnings);
    assert_eq!(warning("attachment_missing"), 1, "{:?}", summary.warnings);

    let stored = platform
        .storage
        .clone()
        .get_messages(GetMessagesRequest { chat_id: CHAT_ID, consistency_token: summary.consistency_token.clone(), ..Default::default() })
        .await
        .expect("GetMessages")
        .into_inner()
        .messages;
    let file_id_of = |id: i64| {
        stored.iter().find(|message| message.message_id == id).and_then(|message| message.media.as_ref()).and_then(|media| media.file_id.clone())
    };
    let photo_id = file_id_of(1).expect("the photo is linked");
    let document_id = file_id_of(2).expect("the document is linked");
    assert_eq!(file_id_of(3).as_deref(), Some(photo_id.as_str()), "one file, many messages");
    assert_ne!(photo_id, document_id);
    assert_eq!((file_id_of(4), file_id_of(5), file_id_of(6)), (None, None, None));

    let (photo_info, photo_bytes) = platform.download(&photo_id).await.expect("photo downloads");
    assert_eq!(photo_bytes, photo);
    assert_eq!(photo_info.name, "photo_1@22-11-2026_10-00-00.jpg");
    let (document_info, document_bytes) = platform.download(&document_id).await.expect("document downloads");
    assert_eq!(document_bytes, document);
    assert_eq!(document_info.content_type, "application/pdf");

    // Importing the same export again links the same files and stores nothing new.
    let mut used_before = 0;
    for node in &nodes {
        used_before += node.used_bytes().await;
    }
    let again = import_with(&mut ingest, export.path()).await.expect("the export imports again");
    assert_eq!(again.attachments, 2);
    let stored_again = platform
        .storage
        .clone()
        .get_messages(GetMessagesRequest { chat_id: CHAT_ID, consistency_token: again.consistency_token.clone(), ..Default::default() })
        .await
        .expect("GetMessages")
        .into_inner()
        .messages;
    assert_eq!(stored_again, stored, "nothing changed");
    let mut used_after = 0;
    for node in &nodes {
        used_after += node.used_bytes().await;
    }
    assert_eq!(used_after, used_before, "no part stored twice");
}
