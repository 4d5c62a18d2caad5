//! `chatvault files`: put, get (one file or a whole date folder), ls, dates, rename, rm, share
//! links (create, list, revoke) and opening a share link without logging in.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chatvault_proto::ingest::v1::{upload_file_request, UploadFileRequest, UploadMetadata};
use chatvault_proto::storage::v1::{
    download_file_response, CreateShareLinkRequest, DeleteFileRequest, DescribeShareLinkRequest, DownloadFileRequest, DownloadFileResponse, FileInfo,
    ListFileDatesRequest, ListFilesRequest, ListShareLinksRequest, OpenShareLinkRequest, RenameFileRequest, RevokeShareLinkRequest, ShareLinkInfo,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Endpoints;
use crate::error_code::{coded_error, invalid_argument};
use crate::output::outln;

#[derive(Debug, clap::Args)]
pub(crate) struct FilesArgs {
    #[command(subcommand)]
    command: FilesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum FilesCommand {
    /// Upload files; prints each file's id.
    Put {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Download one file by id, or every file of a date folder with --date.
    Get {
        /// The file id (omit with --date).
        id: Option<String>,
        /// Download every file uploaded on this date (YYYY-MM-DD) into the folder -o.
        #[arg(long)]
        date: Option<String>,
        /// Output file (one id) or folder (--date); default: the original name in the current folder.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List the files uploaded on a date (YYYY-MM-DD, default today in UTC).
    Ls {
        #[arg(long)]
        date: Option<String>,
    },
    /// List your date folders: each upload date with its number of files and bytes, newest first.
    Dates,
    /// Rename a file: your own, or anyone's for admins.
    Rename {
        /// The file id.
        id: String,
        /// The new name: at most 255 bytes, without folders (no / or \) or control characters.
        name: String,
    },
    /// Delete a file; its parts are removed from the nodes in the background.
    Rm { id: String },
    /// Create a share link (anyone with it downloads without logging in).
    Share {
        id: String,
        /// Lifetime like 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        /// Password the downloader must give (in the X-Share-Password header or a POST form over HTTP; `chatvault files open` asks for it).
        #[arg(long)]
        password: Option<String>,
        /// Base URL of the storage HTTP server, to print the full link.
        #[arg(long, env = "CHATVAULT_STORAGE_HTTP_URL", default_value = "http://127.0.0.1:8082")]
        http_url: String,
    },
    /// List the share links of your files, newest first, with their state (active, expired or revoked).
    Shares {
        /// Only the links of this file (admins: of anyone's file).
        id: Option<String>,
    },
    /// Revoke a share link by its token (from `files share`) or its link id (from `files shares`).
    Unshare {
        /// The link's token, or its 64-hex-digit link id.
        token_or_link_id: String,
    },
    /// Download a file through a share link, without logging in; --info only shows what the link offers.
    Open {
        /// The link (http://host:8082/s/<token>) or just its token.
        link: String,
        /// The link's password, when it has one (prompted for when needed and omitted).
        #[arg(long, env = "CHATVAULT_SHARE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Output file or folder; default: the file's name in the current folder.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Only show whether the link needs a password, when it expires and (without a password) the file's name and size.
        #[arg(long, conflicts_with = "output")]
        info: bool,
    },
}

pub(crate) async fn run(endpoints: &Endpoints, args: FilesArgs, json: bool) -> anyhow::Result<()> {
    match args.command {
        FilesCommand::Put { paths } => put(endpoints, paths, json).await,
        FilesCommand::Get { id, date, output } => match (id, date) {
            (Some(id), None) => get_one(endpoints, &id, output, json).await.map(|_| ()),
            (None, Some(date)) => get_date(endpoints, &date, output.unwrap_or_else(|| PathBuf::from(".")), json).await,
            _ => Err(invalid_argument("give either a file id or --date YYYY-MM-DD")),
        },
        FilesCommand::Ls { date } => list(endpoints, date, json).await,
        FilesCommand::Dates => list_dates(endpoints, json).await,
        FilesCommand::Rename { id, name } => {
            let request = RenameFileRequest { file_id: id, name, consistency_token: None };
            let renamed = endpoints.files().await?.rename_file(request).await?.into_inner().file.unwrap_or_default();
            if json {
                crate::output::print_json(&file_json(&renamed));
            } else {
                outln!("renamed {} to {}", renamed.file_id, renamed.name);
            }
            Ok(())
        }
        FilesCommand::Shares { id } => list_share_links(endpoints, id, json).await,
        FilesCommand::Open { link, password, output, info } => open_share_link(endpoints, &link, password, output, info, json).await,
        FilesCommand::Rm { id } => {
            endpoints.files().await?.delete_file(DeleteFileRequest { file_id: id.clone(), consistency_token: None }).await?;
            if json {
                crate::output::print_json(&json!({ "deleted": id }));
            } else {
                outln!("deleted {id}");
            }
            Ok(())
        }
        FilesCommand::Share { id, expires, password, http_url } => {
            let expires_in_seconds = parse_duration_seconds(&expires)?;
            let request = CreateShareLinkRequest { file_id: id, expires_in_seconds, password: password.unwrap_or_default(), consistency_token: None };
            let link = endpoints.files().await?.create_share_link(request).await?.into_inner();
            let url = format!("{}{}", http_url.trim_end_matches('/'), link.path);
            if json {
                crate::output::print_json(&json!({ "url": url, "token": link.token, "expires_at_unix_ms": link.expires_at_unix_ms }));
            } else {
                outln!(
                    "{url}\n(expires {} UTC; revoke with `chatvault files unshare {}`, list with `chatvault files shares`)",
                    crate::output::format_unix(link.expires_at_unix_ms / 1000),
                    link.token
                );
            }
            Ok(())
        }
        FilesCommand::Unshare { token_or_link_id } => {
            endpoints.files().await?.revoke_share_link(revoke_request(&token_or_link_id)).await?;
            if json {
                crate::output::print_json(&json!({ "revoked": true }));
            } else {
                outln!("link revoked");
            }
            Ok(())
        }
    }
}

/// Returns the request revoking the link `token_or_link_id` names: 64 hex digits are a link
/// id (a token is 43 characters of base64url), anything else a token.
fn revoke_request(token_or_link_id: &str) -> RevokeShareLinkRequest {
    let text = token_or_link_id.trim();
    if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        RevokeShareLinkRequest { link_id: text.to_owned(), ..Default::default() }
    } else {
        RevokeShareLinkRequest { token: token_of_link(text).to_owned(), ..Default::default() }
    }
}

/// Returns the token of a share link given whole (`http://host:8082/s/<token>`, with or
/// without a query) or as the token alone.
fn token_of_link(link: &str) -> &str {
    let link = link.trim();
    let after_path = link.rsplit_once("/s/").map_or(link, |(_, token)| token);
    after_path.split(['?', '#', '/']).next().unwrap_or_default()
}

/// Parses `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
fn parse_duration_seconds(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|character: char| !character.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number.parse().map_err(|_| invalid_argument(format!("{text:?} is not a duration like 24h")))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(invalid_argument(format!("unknown duration unit {other:?} (use s, m, h or d)"))),
    };
    Ok(number * factor)
}

fn progress_bar(total: u64, json: bool, label: String) -> Option<ProgressBar> {
    (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(label);
        bar
    })
}

async fn put(endpoints: &Endpoints, paths: Vec<PathBuf>, json: bool) -> anyhow::Result<()> {
    // Every file is checked before the first is sent: a typo in the last name should not
    // leave the others half uploaded.
    for path in &paths {
        let metadata = tokio::fs::metadata(path).await.with_context(|| format!("cannot read {}", path.display()))?;
        if !metadata.is_file() {
            return Err(invalid_argument(format!("{} is not a file", path.display())));
        }
    }
    let mut client = endpoints.uploads().await?;
    for path in paths {
        let file = tokio::fs::File::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().await?.len();
        let name = path.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default();
        let bar = progress_bar(size, json, name.clone());
        let content_type = content_type_of_file_name(&name);
        let metadata = UploadFileRequest {
            message: Some(upload_file_request::Message::Metadata(UploadMetadata { name, content_type, restore: None, folder_date: String::new() })),
        };
        let chunk_bar = bar.clone();
        let chunks = futures::stream::unfold(file, move |mut file| {
            let bar = chunk_bar.clone();
            async move {
                let mut buffer = vec![0u8; 1 << 20];
                match file.read(&mut buffer).await {
                    Ok(0) | Err(_) => None,
                    Ok(read) => {
                        buffer.truncate(read);
                        if let Some(bar) = &bar {
                            bar.inc(read as u64);
                        }
                        Some((UploadFileRequest { message: Some(upload_file_request::Message::Chunk(buffer.into())) }, file))
                    }
                }
            }
        });
        let requests = futures::stream::once(async { metadata }).chain(chunks);
        let stored = client.upload_file(requests).await.with_context(|| format!("uploading {}", path.display()));
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let stored = stored?.into_inner();
        if stored.size != size {
            let message = format!("{} changed while it was uploaded ({} bytes sent, {size} expected)", path.display(), stored.size);
            return Err(coded_error(tonic::Code::Aborted, message));
        }
        if json {
            crate::output::print_json(
                &json!({ "id": stored.file_id, "path": path.display().to_string(), "size": stored.size, "sha256": stored.sha256 }),
            );
        } else {
            outln!("{}  {}  ({} bytes, survives {} node failures)", stored.file_id, path.display(), stored.size, stored.fault_tolerance);
        }
    }
    Ok(())
}

/// Returns the MIME type of a file named `file_name`, guessed from its extension
/// (`report.pdf` is `application/pdf`), or `application/octet-stream` when the extension is
/// missing or unknown. Downloads send it back as `Content-Type`.
fn content_type_of_file_name(file_name: &str) -> String {
    mime_guess::from_path(file_name).first_or_octet_stream().essence_str().to_owned()
}

/// Downloads one file; returns where it was written.
async fn get_one(endpoints: &Endpoints, id: &str, output: Option<PathBuf>, json: bool) -> anyhow::Result<PathBuf> {
    let stream = endpoints.files().await?.download_file(DownloadFileRequest { file_id: id.to_owned(), consistency_token: None }).await?.into_inner();
    save_download(stream, output, json).await.with_context(|| format!("downloading {id}"))
}

/// Writes a download stream (info, then chunks) to `output` (a file, or a folder to put the
/// file's name in; default: the name in the current folder) through a `.partial` file that
/// is renamed once the stream ended well; returns where it was written.
async fn save_download(mut stream: tonic::Streaming<DownloadFileResponse>, output: Option<PathBuf>, json: bool) -> anyhow::Result<PathBuf> {
    let info = match stream.message().await?.and_then(|message| message.message) {
        Some(download_file_response::Message::Info(info)) => info,
        _ => anyhow::bail!("the download did not start with the file's metadata"),
    };
    let target = match output {
        Some(path) if path.is_dir() => path.join(&info.name),
        Some(path) => path,
        None => PathBuf::from(&info.name),
    };
    let partial = partial_path(&target);
    let mut file = tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let bar = progress_bar(info.size, json, info.name.clone());
    let outcome = async {
        while let Some(message) = stream.message().await? {
            if let Some(download_file_response::Message::Chunk(chunk)) = message.message {
                file.write_all(&chunk).await?;
                if let Some(bar) = &bar {
                    bar.inc(chunk.len() as u64);
                }
            }
        }
        file.sync_all().await?;
        anyhow::Ok(())
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Err(error) = outcome {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    tokio::fs::rename(&partial, &target).await?;
    if json {
        crate::output::print_json(&json!({ "id": info.file_id, "path": target.display().to_string(), "size": info.size, "sha256": info.sha256 }));
    } else {
        outln!("{}  {} bytes  (SHA-256 verified)", target.display(), info.size);
    }
    Ok(target)
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    target.with_file_name(name)
}

async fn list_of_date(endpoints: &Endpoints, date: &str) -> anyhow::Result<Vec<FileInfo>> {
    Ok(endpoints.files().await?.list_files(ListFilesRequest { date: date.to_owned(), consistency_token: None }).await?.into_inner().files)
}

async fn get_date(endpoints: &Endpoints, date: &str, folder: PathBuf, json: bool) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&folder).await.with_context(|| format!("creating {}", folder.display()))?;
    let files = list_of_date(endpoints, date).await?;
    for info in &files {
        // Two files of one day may share a name; the id keeps them apart.
        let target = if files.iter().filter(|other| other.name == info.name).count() > 1 {
            folder.join(format!("{}-{}", info.file_id, info.name))
        } else {
            folder.join(&info.name)
        };
        get_one(endpoints, &info.file_id, Some(target), json).await?;
    }
    if !json {
        outln!("{} files of {date} downloaded into {}", files.len(), folder.display());
    }
    Ok(())
}

/// Returns a file as the JSON object `files ls` and `files rename` print.
fn file_json(file: &FileInfo) -> serde_json::Value {
    json!({ "id": file.file_id, "name": file.name, "size": file.size, "sha256": file.sha256, "content_type": file.content_type, "uploaded_at_unix_ms": file.uploaded_at_unix_ms })
}

async fn list(endpoints: &Endpoints, date: Option<String>, json: bool) -> anyhow::Result<()> {
    let date = date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string());
    let files = list_of_date(endpoints, &date).await?;
    if json {
        crate::output::print_json(&serde_json::Value::Array(files.iter().map(file_json).collect()));
        return Ok(());
    }
    if files.is_empty() {
        outln!("no files uploaded on {date}");
        return Ok(());
    }
    outln!("{:<36}  {:>12}  {:<19}  NAME", "ID", "SIZE", "UPLOADED (UTC)");
    for file in files {
        outln!("{:<36}  {:>12}  {:<19}  {}", file.file_id, file.size, crate::output::format_unix(file.uploaded_at_unix_ms / 1000), file.name);
    }
    Ok(())
}

async fn list_dates(endpoints: &Endpoints, json: bool) -> anyhow::Result<()> {
    let dates = endpoints.files().await?.list_file_dates(ListFileDatesRequest::default()).await?.into_inner().dates;
    if json {
        let rows: Vec<_> =
            dates.iter().map(|date| json!({ "date": date.date, "file_count": date.file_count, "total_bytes": date.total_bytes })).collect();
        crate::output::print_json(&serde_json::Value::Array(rows));
        return Ok(());
    }
    if dates.is_empty() {
        outln!("no files uploaded yet");
        return Ok(());
    }
    outln!("{:<10}  {:>7}  {:>14}", "DATE", "FILES", "BYTES");
    for date in dates {
        outln!("{:<10}  {:>7}  {:>14}", date.date, date.file_count, date.total_bytes);
    }
    Ok(())
}

fn share_link_json(link: &ShareLinkInfo) -> serde_json::Value {
    json!({
        "link_id": link.link_id,
        "file_id": link.file_id,
        "file_name": link.file_name,
        "state": link.state,
        "has_password": link.has_password,
        "created_at_unix_ms": link.created_at_unix_ms,
        "expires_at_unix_ms": link.expires_at_unix_ms,
    })
}

async fn list_share_links(endpoints: &Endpoints, file_id: Option<String>, json: bool) -> anyhow::Result<()> {
    let request = ListShareLinksRequest { file_id: file_id.clone().unwrap_or_default(), consistency_token: None };
    let links = endpoints.files().await?.list_share_links(request).await?.into_inner().links;
    if json {
        crate::output::print_json(&serde_json::Value::Array(links.iter().map(share_link_json).collect()));
        return Ok(());
    }
    if links.is_empty() {
        match file_id {
            Some(file_id) => outln!("file {file_id} has no share links"),
            None => outln!("no share links: create one with `chatvault files share <file-id>`"),
        }
        return Ok(());
    }
    outln!("{:<64}  {:<7}  {:<19}  {:<8}  {:<36}  NAME", "LINK ID", "STATE", "EXPIRES (UTC)", "PASSWORD", "FILE ID");
    for link in links {
        outln!(
            "{:<64}  {:<7}  {:<19}  {:<8}  {:<36}  {}",
            link.link_id,
            link.state,
            crate::output::format_unix(link.expires_at_unix_ms / 1000),
            if link.has_password { "yes" } else { "no" },
            link.file_id,
            link.file_name
        );
    }
    Ok(())
}

/// Shows what a share link offers (`--info`) or downloads its file, asking for the password
/// when the link needs one and none was given.
async fn open_share_link(
    endpoints: &Endpoints,
    link: &str,
    password: Option<String>,
    output: Option<PathBuf>,
    info_only: bool,
    json: bool,
) -> anyhow::Result<()> {
    let token = token_of_link(link).to_owned();
    if token.is_empty() {
        return Err(invalid_argument(format!("{link:?} is neither a share link nor its token")));
    }
    let mut files = endpoints.files().await?;
    let preview = files.describe_share_link(DescribeShareLinkRequest { token: token.clone() }).await?.into_inner();
    if info_only {
        if json {
            crate::output::print_json(&json!({
                "password_required": preview.password_required,
                "expires_at_unix_ms": preview.expires_at_unix_ms,
                "name": preview.name,
                "size": preview.size,
                "content_type": preview.content_type,
            }));
        } else if preview.password_required {
            outln!(
                "a file behind a password (its name shows once the password is given); the link expires {} UTC",
                crate::output::format_unix(preview.expires_at_unix_ms / 1000)
            );
        } else {
            outln!(
                "{}  {} bytes  {}; the link expires {} UTC",
                preview.name,
                preview.size,
                preview.content_type,
                crate::output::format_unix(preview.expires_at_unix_ms / 1000)
            );
        }
        return Ok(());
    }
    let password = match password {
        Some(password) => password,
        None if preview.password_required => super::session::password_or_prompt(None, "share link password")?,
        None => String::new(),
    };
    let stream = files.open_share_link(OpenShareLinkRequest { token, password }).await?.into_inner();
    save_download(stream, output, json).await.context("downloading through the share link")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshare_tells_link_ids_from_tokens() {
        let link_id = "ab".repeat(32);
        assert_eq!(revoke_request(&link_id), RevokeShareLinkRequest { link_id: link_id.clone(), ..Default::default() });
        assert_eq!(revoke_request(&format!(" {} ", link_id.to_uppercase())).link_id, link_id.to_uppercase());
        let token = "A".repeat(43);
        assert_eq!(revoke_request(&token), RevokeShareLinkRequest { token: token.clone(), ..Default::default() });
        assert_eq!(revoke_request(&format!("http://127.0.0.1:8082/s/{token}")).token, token, "a whole link works too");
    }

    #[test]
    fn tokens_are_taken_from_whole_links() {
        assert_eq!(token_of_link("http://127.0.0.1:8082/s/abc_-DEF"), "abc_-DEF");
        assert_eq!(token_of_link("https://vault.example.org/s/abc?x=1#top"), "abc");
        assert_eq!(token_of_link(" abc "), "abc");
        assert_eq!(token_of_link("/s/"), "");
    }

    #[test]
    fn durations_take_common_units() {
        assert_eq!(parse_duration_seconds("24h").expect("hours"), 86_400);
        assert_eq!(parse_duration_seconds("30m").expect("minutes"), 1800);
        assert_eq!(parse_duration_seconds("90").expect("seconds"), 90);
        assert!(parse_duration_seconds("3w").is_err());
    }

    #[test]
    fn content_types_are_guessed_from_the_file_name() {
        assert_eq!(content_type_of_file_name("report.pdf"), "application/pdf");
        assert_eq!(content_type_of_file_name("photo.jpg"), "image/jpeg");
        assert_eq!(content_type_of_file_name("PHOTO.JPEG"), "image/jpeg");
        assert_eq!(content_type_of_file_name("clip.mp4"), "video/mp4");
        assert_eq!(content_type_of_file_name("notes.txt"), "text/plain");
        assert_eq!(content_type_of_file_name("archive.tar.gz"), "application/gzip");
    }

    #[test]
    fn unknown_or_missing_extensions_fall_back_to_octet_stream() {
        assert_eq!(content_type_of_file_name("Makefile"), "application/octet-stream");
        assert_eq!(content_type_of_file_name("data.chatvault-unknown-extension"), "application/octet-stream");
        assert_eq!(content_type_of_file_name(""), "application/octet-stream");
    }
}
