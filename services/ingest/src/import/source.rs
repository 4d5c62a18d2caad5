//! Where an export is and how to read it: a JSON `result.json` (single chat or whole
//! account), or HTML pages (`messages.html`, `messages2.html`, … of one chat, or every chat
//! folder of an account export). Both formats yield the same events.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use telegram_export::{ExportError, ExportEvent, HtmlExportReader, HtmlParseOptions, JsonExportReader, ParseOptions};

use crate::Error;

/// A located export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSource {
    /// A `result.json`.
    Json(PathBuf),
    /// Folders of HTML pages, one per chat, in export order.
    Html(Vec<PathBuf>),
}

impl ExportSource {
    /// Returns the export's root folder, against which media references are resolved (an
    /// account export's chat folders sit in `chats/`, their references start there).
    pub fn root(&self) -> PathBuf {
        match self {
            ExportSource::Json(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ExportSource::Html(folders) => {
                let folder = folders.first().cloned().unwrap_or_default();
                match folder.parent() {
                    Some(chats) if chats.file_name().is_some_and(|name| name == "chats") => chats.parent().map(Path::to_path_buf).unwrap_or(folder),
                    _ => folder,
                }
            }
        }
    }

    /// Returns a path naming the export, for logs and the `ChatImported` source.
    pub fn label(&self) -> String {
        match self {
            ExportSource::Json(path) => path.display().to_string(),
            ExportSource::Html(folders) => folders.first().map(|folder| folder.display().to_string()).unwrap_or_default(),
        }
    }
}

/// Finds the export that `path` names: a `result.json` or `messages*.html` file, or a folder
/// holding one (an "HTML and JSON" export is read as JSON, the richer of the two), an
/// account export's `chats/chat_*/` folders, or the same one level down (the single folder an
/// archive unpacks to).
pub fn locate_export(path: &Path) -> Result<ExportSource, Error> {
    let metadata = std::fs::metadata(path).map_err(|error| Error::NotFound(format!("cannot read {}: {error}", path.display())))?;
    if metadata.is_file() {
        let is_html = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("html"));
        return Ok(match (is_html, path.parent()) {
            (true, Some(folder)) => ExportSource::Html(vec![folder.to_path_buf()]),
            _ => ExportSource::Json(path.to_path_buf()),
        });
    }
    if let Some(source) = export_in_folder(path)? {
        return Ok(source);
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(path)?.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    if let [only_folder] = entries.as_slice() {
        if only_folder.is_dir() {
            if let Some(source) = export_in_folder(only_folder)? {
                return Ok(source);
            }
        }
    }
    Err(Error::InvalidArgument(format!(
        "{} holds no Telegram export: expected result.json (JSON) or messages.html (HTML), or a .zip of the export folder",
        path.display()
    )))
}

/// Finds the export that a path on the server names, like [`locate_export`], except that a
/// file is read only when its name can be an export's (`.json` or `.html`), and a JSON file
/// only when it opens with `{` as every export does: any other file, such as `/etc/passwd`,
/// is refused with the same message, which says nothing about what the file holds.
///
/// Errors: NOT_FOUND when the path cannot be read, INVALID_ARGUMENT when it is not an export.
pub fn locate_server_export(path: &Path) -> Result<ExportSource, Error> {
    let not_an_export = || Error::InvalidArgument(format!("{} is not a Telegram export (no result.json or messages.html)", path.display()));
    let named_like_an_export = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json") || extension.eq_ignore_ascii_case("html"));
    if path.is_file() && !named_like_an_export {
        return Err(not_an_export());
    }
    let source = locate_export(path)?;
    if let ExportSource::Json(json_path) = &source {
        let opens_an_object =
            opens_a_json_object(json_path).map_err(|error| Error::NotFound(format!("cannot read {}: {error}", json_path.display())))?;
        if !opens_an_object {
            return Err(not_an_export());
        }
    }
    Ok(source)
}

/// Returns whether the first byte of `path` that is not whitespace (after a UTF-8 byte order
/// mark) opens a JSON object. Looks at the first 4 KiB only.
fn opens_a_json_object(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 4096];
    let mut file = File::open(path)?;
    let mut filled = 0;
    // A short read is not the end of the file: fill the buffer or reach the end.
    loop {
        let read = file.read(&mut head[filled..])?;
        filled += read;
        if read == 0 || filled == head.len() {
            break;
        }
    }
    let text = head[..filled].strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head[..filled]);
    Ok(text.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{'))
}

fn export_in_folder(folder: &Path) -> Result<Option<ExportSource>, Error> {
    if folder.join("result.json").is_file() {
        return Ok(Some(ExportSource::Json(folder.join("result.json"))));
    }
    if folder.join("messages.html").is_file() {
        return Ok(Some(ExportSource::Html(vec![folder.to_path_buf()])));
    }
    let chats_folder = folder.join("chats");
    if folder.join("export_results.html").is_file() && chats_folder.is_dir() {
        let mut chat_folders: Vec<(u32, PathBuf)> = std::fs::read_dir(&chats_folder)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|chat_folder| chat_folder.join("messages.html").is_file())
            .filter_map(|chat_folder| {
                let number = chat_folder.file_name()?.to_str()?.strip_prefix("chat_")?.parse::<u32>().ok()?;
                Some((number, chat_folder))
            })
            .collect();
        chat_folders.sort();
        if !chat_folders.is_empty() {
            return Ok(Some(ExportSource::Html(chat_folders.into_iter().map(|(_, chat_folder)| chat_folder).collect())));
        }
    }
    Ok(None)
}

/// Reads events from either format, one page or message at a time.
pub(crate) enum ExportReader {
    Json(Box<JsonExportReader<BufReader<File>>>),
    Html {
        folders: Vec<PathBuf>,
        next_folder: usize,
        current: Option<Box<HtmlExportReader>>,
        chat_id: Option<i64>,
        options: HtmlParseOptions,
        bytes_of_finished_chats: u64,
    },
}

impl ExportReader {
    /// Opens `source`. `html_chat_id` names the chat of a single-chat HTML export (HTML does
    /// not carry it); without it the id is derived from the chat's name.
    pub(crate) fn open(source: &ExportSource, local_utc_offset_seconds: i32, html_chat_id: Option<i64>) -> Result<Self, Error> {
        match source {
            ExportSource::Json(path) => {
                let file = File::open(path).map_err(|error| Error::NotFound(format!("cannot open {}: {error}", path.display())))?;
                let options = ParseOptions { local_utc_offset_seconds };
                Ok(Self::Json(Box::new(JsonExportReader::new(BufReader::with_capacity(1 << 20, file), path.display().to_string(), options))))
            }
            ExportSource::Html(folders) => Ok(Self::Html {
                folders: folders.clone(),
                next_folder: 0,
                current: None,
                chat_id: if folders.len() == 1 { html_chat_id } else { None },
                options: HtmlParseOptions { local_utc_offset_seconds },
                bytes_of_finished_chats: 0,
            }),
        }
    }

    /// Returns the next event, or `None` at the end of the export.
    pub(crate) fn next_event(&mut self) -> Result<Option<ExportEvent>, ExportError> {
        match self {
            Self::Json(reader) => reader.next_event(),
            Self::Html { folders, next_folder, current, chat_id, options, bytes_of_finished_chats } => loop {
                if let Some(reader) = current {
                    if let Some(event) = reader.next_event()? {
                        return Ok(Some(event));
                    }
                    *bytes_of_finished_chats += reader.bytes_total();
                    *current = None;
                }
                let Some(folder) = folders.get(*next_folder) else { return Ok(None) };
                *next_folder += 1;
                *current = Some(Box::new(HtmlExportReader::open(folder, *chat_id, *options)?));
            },
        }
    }

    /// Returns the bytes read so far, for progress.
    pub(crate) fn bytes_read(&self) -> u64 {
        match self {
            Self::Json(reader) => reader.bytes_read(),
            Self::Html { current, bytes_of_finished_chats, .. } => {
                *bytes_of_finished_chats + current.as_deref().map_or(0, HtmlExportReader::bytes_read)
            }
        }
    }
}

/// Returns the size of the export's files that are read (result.json, or the HTML pages).
pub(crate) fn export_bytes_total(source: &ExportSource) -> u64 {
    match source {
        ExportSource::Json(path) => std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0),
        ExportSource::Html(folders) => folders
            .iter()
            .flat_map(|folder| std::fs::read_dir(folder).into_iter().flatten().flatten())
            .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.starts_with("messages") && name.ends_with(".html")))
            .filter_map(|entry| entry.metadata().ok().map(|metadata| metadata.len()))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_found_by_file_folder_and_single_subfolder() {
        let root = tempfile::tempdir().expect("temp");
        let json_folder = root.path().join("ChatExport_2026-11-22");
        std::fs::create_dir_all(&json_folder).expect("mkdir");
        std::fs::write(json_folder.join("result.json"), "{}").expect("write");
        std::fs::write(json_folder.join("messages.html"), "").expect("write");
        assert_eq!(
            locate_export(&json_folder).expect("folder"),
            ExportSource::Json(json_folder.join("result.json")),
            "JSON wins in HTML-and-JSON exports"
        );
        assert_eq!(locate_export(root.path()).expect("one level down"), ExportSource::Json(json_folder.join("result.json")));
        assert_eq!(locate_export(&json_folder.join("messages.html")).expect("html file"), ExportSource::Html(vec![json_folder.clone()]));

        let account = root.path().join("account");
        for chat in ["chat_2", "chat_10", "chat_1"] {
            std::fs::create_dir_all(account.join("chats").join(chat)).expect("mkdir");
            std::fs::write(account.join("chats").join(chat).join("messages.html"), "").expect("write");
        }
        std::fs::write(account.join("export_results.html"), "").expect("write");
        let ExportSource::Html(folders) = locate_export(&account).expect("account") else { panic!("html expected") };
        let names: Vec<String> =
            folders.iter().map(|folder| folder.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()).collect();
        assert_eq!(names, vec!["chat_1", "chat_2", "chat_10"], "numeric order");

        std::fs::write(root.path().join("passwd"), "root:x:0:0").expect("write");
        let refused = locate_server_export(&root.path().join("passwd")).expect_err("not an export by its name");
        assert!(
            matches!(&refused, Error::InvalidArgument(message) if message.ends_with("is not a Telegram export (no result.json or messages.html)")),
            "{refused:?}"
        );
        assert_eq!(locate_server_export(&json_folder).expect("folder"), ExportSource::Json(json_folder.join("result.json")));
        std::fs::write(root.path().join("passwd.json"), "root:x:0:0").expect("write");
        let disguised = locate_server_export(&root.path().join("passwd.json")).expect_err("not an export by its first byte");
        let expected_message = "passwd.json is not a Telegram export (no result.json or messages.html)";
        assert!(matches!(&disguised, Error::InvalidArgument(message) if message.ends_with(expected_message)), "{disguised:?}");
        std::fs::write(root.path().join("bom.json"), "\u{feff}\n  {\"name\": \"x\"}").expect("write");
        assert!(locate_server_export(&root.path().join("bom.json")).is_ok(), "a byte order mark and whitespace may come first");

        let empty = tempfile::tempdir().expect("temp");
        assert!(matches!(locate_export(empty.path()), Err(Error::InvalidArgument(_))));
        assert!(matches!(locate_export(&empty.path().join("missing")), Err(Error::NotFound(_))));
    }
}
