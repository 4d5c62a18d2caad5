//! `UploadExport`: the client streams the export (a folder's files, or a `.zip`), so no
//! shared filesystem is needed; paths that would leave the export folder are refused.

use std::io::Write;

use chatvault_proto::ingest::v1::{import_update, upload_export_request, ExportFileChunk, ImportSummary, UploadExportHeader, UploadExportRequest};

use crate::helpers::{fixture, TestPlatform};

const SAMPLE_CHAT_ID: i64 = 1_234_567_890;

fn header() -> UploadExportRequest {
    UploadExportRequest { item: Some(upload_export_request::Item::Header(UploadExportHeader::default())) }
}

fn chunk(relative_path: &str, data: &[u8]) -> UploadExportRequest {
    UploadExportRequest {
        item: Some(upload_export_request::Item::Chunk(ExportFileChunk { relative_path: relative_path.to_owned(), data: data.to_vec() })),
    }
}

async fn upload(platform: &TestPlatform, requests: Vec<UploadExportRequest>) -> Result<ImportSummary, tonic::Status> {
    let mut ingest = platform.ingest.clone();
    let mut updates = ingest.upload_export(futures::stream::iter(requests)).await?.into_inner();
    let mut summary = None;
    while let Some(update) = updates.message().await? {
        if let Some(import_update::Update::Summary(done)) = update.update {
            summary = Some(done);
        }
    }
    summary.ok_or_else(|| tonic::Status::internal("no summary"))
}

fn sample_bytes() -> Vec<u8> {
    std::fs::read(fixture("sample-export/result.json")).expect("sample")
}

#[tokio::test]
async fn an_uploaded_folder_imports_like_a_server_path() {
    let platform = TestPlatform::start().await;
    let bytes = sample_bytes();
    // Several chunks per file, and another file beside result.json (media files need
    // storage nodes; attachments.rs covers them).
    let (first_half, second_half) = bytes.split_at(bytes.len() / 2);
    let requests = vec![header(), chunk("css/style.css", b"body { margin: 0 }"), chunk("result.json", first_half), chunk("result.json", second_half)];
    let summary = upload(&platform, requests).await.expect("the upload imports");
    assert_eq!((summary.chats, summary.messages), (1, 8));
    let messages = platform.all_messages(SAMPLE_CHAT_ID, summary.consistency_token.as_ref()).await;
    assert_eq!(messages.len(), 8);
    assert_eq!(messages[1].text, "Hello, team! 👋");
}

#[tokio::test]
async fn an_uploaded_zip_of_the_export_folder_imports() {
    let platform = TestPlatform::start().await;
    let mut archive_bytes = Vec::new();
    {
        let mut archive = zip::ZipWriter::new(std::io::Cursor::new(&mut archive_bytes));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        archive.add_directory("ChatExport_2026-11-22/", options).expect("folder");
        archive.start_file("ChatExport_2026-11-22/result.json", options).expect("file");
        archive.write_all(&sample_bytes()).expect("write");
        archive.finish().expect("finish");
    }
    let summary = upload(&platform, vec![header(), chunk("ChatExport_2026-11-22.zip", &archive_bytes)]).await.expect("the zip imports");
    assert_eq!(summary.messages, 8);
    let messages = platform.all_messages(SAMPLE_CHAT_ID, summary.consistency_token.as_ref()).await;
    assert_eq!(messages.len(), 8);
}

#[tokio::test]
async fn paths_that_leave_the_export_folder_are_refused() {
    let platform = TestPlatform::start().await;
    for escaping in ["../outside.json", "/etc/passwd", "photos/../../outside"] {
        let status = upload(&platform, vec![header(), chunk(escaping, b"{}")]).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{escaping}: {}", status.message());
        assert!(status.message().contains("refused path"), "{escaping}: {}", status.message());
    }

    let mut archive_bytes = Vec::new();
    {
        let mut archive = zip::ZipWriter::new(std::io::Cursor::new(&mut archive_bytes));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        archive.start_file("../../escape.json", options).expect("file");
        archive.write_all(b"{}").expect("write");
        archive.finish().expect("finish");
    }
    let status = upload(&platform, vec![header(), chunk("evil.zip", &archive_bytes)]).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{}", status.message());

    let no_header = upload(&platform, vec![chunk("result.json", b"{}")]).await.expect_err("header first");
    assert_eq!(no_header.code(), tonic::Code::InvalidArgument);
    let no_export = upload(&platform, vec![header(), chunk("notes.txt", b"hello")]).await.expect_err("no result.json");
    assert_eq!(no_export.code(), tonic::Code::InvalidArgument);
    assert!(no_export.message().contains("result.json"), "{}", no_export.message());

    // The service still imports after refusing all of that.
    let summary = upload(&platform, vec![header(), chunk("result.json", &sample_bytes())]).await.expect("imports");
    assert_eq!(summary.messages, 8);
}
