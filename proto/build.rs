//! Compiles the protos with `protox` (pure Rust: no system `protoc`) and keeps the
//! encoded descriptor set for gRPC server reflection.

use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "chatvault/common/v1/common.proto",
    "chatvault/chat/v1/events.proto",
    "chatvault/ingest/v1/ingest.proto",
    "chatvault/storage/v1/storage.proto",
    "chatvault/files/v1/events.proto",
    "chatvault/storage/v1/nodes.proto",
    "chatvault/storage/v1/files.proto",
    "chatvault/storagenode/v1/storage_node.proto",
    "chatvault/ingest/v1/upload.proto",
    "chatvault/users/v1/users.proto",
    "chatvault/users/v1/accounts.proto",
    "chatvault/users/v1/events.proto",
    "chatvault/audit/v1/audit.proto",
    "chatvault/snapshot/v1/snapshot.proto",
    "chatvault/backup/v1/backup.proto",
    "chatvault/bot/v1/bot.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let file_descriptors = protox::compile(PROTO_FILES, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("chatvault_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&file_descriptors))?;
    tonic_prost_build::configure()
        .skip_protoc_run()
        // File bytes travel as `bytes::Bytes`: no copy between the network and the parts.
        .bytes(".chatvault.storagenode.v1")
        .bytes(".chatvault.ingest.v1.UploadFileRequest")
        .bytes(".chatvault.storage.v1.DownloadFileResponse")
        .bytes(".chatvault.snapshot.v1.TableData")
        .bytes(".chatvault.backup.v1.UploadBackupRequest")
        .file_descriptor_set_path(&descriptor_path)
        .compile_fds(file_descriptors)?;
    Ok(())
}
