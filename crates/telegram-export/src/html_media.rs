//! Reads a `div.media_wrap` of an HTML export ([`HtmlMediaBlock`], filled by the page
//! parser) and maps it to [`Media`] (format reference, section 3.5).
//!
//! Links are HTML-unescaped by the tokenizer and never URL-decoded; the `../../` prefix of
//! account exports is removed so that paths are relative to the export root, as in JSON.
//! HTML carries less than JSON (no sizes of included files, no MIME types): what can be
//! read from titles and statuses is read (durations, sticker emoji, file names, poll
//! counts); everything else stays in [`crate::Message::raw_json`].

use serde_json::{json, Value};

use html5ever::tokenizer::Tag;

use crate::html_page::{attribute, has_class, Capture, HtmlBlock, Role};
use crate::html_text::path_relative_to_export_root;
use crate::media::{Contact, GeoPoint, Media, MediaKind, NotIncludedReason, Poll, PollAnswer};
use crate::message::{Warning, WarningKind};

/// A generic or special media block of a message (`div.media_wrap`), as written.
#[derive(Debug, Default)]
pub(crate) struct HtmlMediaBlock {
    /// `photo_wrap`, `video_file_wrap`, `animated_wrap` or `sticker_wrap`.
    pub(crate) wrap_class: Option<String>,
    /// Whether this is the generic block (`.media.clearfix.pull_left`).
    pub(crate) is_generic: bool,
    /// The `media_*` classes of the generic block, e.g. `media_voice_message`.
    pub(crate) media_classes: Vec<String>,
    pub(crate) href: Option<String>,
    /// A thumbnail that is also in the JSON export (`img.video_file`, `.animated`, `.thumb`).
    pub(crate) thumbnail_src: Option<String>,
    /// An HTML-only preview (`img.photo`, `img.sticker`).
    pub(crate) preview_src: Option<String>,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) status: String,
    pub(crate) video_duration: String,
    pub(crate) poll: Option<HtmlPoll>,
}

/// A poll block (`div.media_poll`).
#[derive(Debug, Default)]
pub(crate) struct HtmlPoll {
    pub(crate) question: String,
    pub(crate) details: String,
    /// `(text, details)` of each `div.answer`.
    pub(crate) answers: Vec<(String, String)>,
    pub(crate) total: String,
}

/// Returns the field of a media block that text under `capture` belongs to.
pub(crate) fn media_capture_target(media: &mut HtmlMediaBlock, capture: Capture) -> Option<&mut String> {
    let target = match capture {
        Capture::MediaTitle => &mut media.title,
        Capture::MediaDescription => &mut media.description,
        Capture::MediaStatus => &mut media.status,
        Capture::VideoDuration => &mut media.video_duration,
        Capture::PollQuestion => &mut media.poll.get_or_insert_with(HtmlPoll::default).question,
        Capture::PollDetails => &mut media.poll.get_or_insert_with(HtmlPoll::default).details,
        Capture::PollTotal => &mut media.poll.get_or_insert_with(HtmlPoll::default).total,
        Capture::PollAnswer | Capture::PollAnswerDetails => {
            let poll = media.poll.get_or_insert_with(HtmlPoll::default);
            if poll.answers.is_empty() {
                poll.answers.push((String::new(), String::new()));
            }
            let answer = poll.answers.last_mut()?;
            if capture == Capture::PollAnswer {
                &mut answer.0
            } else {
                &mut answer.1
            }
        }
        _ => return None,
    };
    Some(target)
}

pub(crate) fn classify_in_media(tag: &Tag, parent_role: Option<Role>, parent_capture: Capture, block: &mut HtmlBlock) -> (Role, Capture) {
    let name: &str = &tag.name;
    let media = block.media.get_or_insert_with(HtmlMediaBlock::default);
    let wrap_class = ["photo_wrap", "video_file_wrap", "animated_wrap", "sticker_wrap"].into_iter().find(|class_name| has_class(tag, class_name));
    if let (Some(wrap_class), "a") = (wrap_class, name) {
        media.wrap_class = Some(wrap_class.to_owned());
        media.href = attribute(tag, "href").map(str::to_owned);
        return (Role::Plain, Capture::Nothing);
    }
    if has_class(tag, "media") && !media.is_generic {
        media.is_generic = true;
        media.href = attribute(tag, "href").map(str::to_owned);
        media.media_classes = attribute(tag, "class")
            .unwrap_or("")
            .split_ascii_whitespace()
            .filter(|class_name| class_name.starts_with("media_"))
            .map(str::to_owned)
            .collect();
        return (Role::Plain, Capture::Nothing);
    }
    if has_class(tag, "media_poll") {
        media.poll.get_or_insert_with(HtmlPoll::default);
        return (Role::Poll, Capture::Nothing);
    }
    let in_poll_answer = parent_capture == Capture::PollAnswer;
    let capture = match name {
        "div" if has_class(tag, "title") => Capture::MediaTitle,
        "div" if has_class(tag, "description") => Capture::MediaDescription,
        "div" if has_class(tag, "status") => Capture::MediaStatus,
        "div" if has_class(tag, "video_duration") => Capture::VideoDuration,
        "div" if has_class(tag, "question") => Capture::PollQuestion,
        "div" if has_class(tag, "answer") => {
            media.poll.get_or_insert_with(HtmlPoll::default).answers.push((String::new(), String::new()));
            Capture::PollAnswer
        }
        "div" if has_class(tag, "total") => Capture::PollTotal,
        "div" if has_class(tag, "details") && parent_role == Some(Role::Poll) => Capture::PollDetails,
        "span" if in_poll_answer && has_class(tag, "details") => Capture::PollAnswerDetails,
        _ => parent_capture,
    };
    (Role::Plain, capture)
}

/// Returns the reason of a generic block's `div.description`, when it is one of the
/// "not in the export" texts.
fn not_included_reason_of_description(description: &str) -> Option<NotIncludedReason> {
    match description {
        "Not included, change data exporting settings to download." => Some(NotIncludedReason::NotSelected),
        "Exceeds maximum size, change data exporting settings to download." => Some(NotIncludedReason::ExceedsSizeLimit),
        "Unavailable, please try again later." => Some(NotIncludedReason::Unavailable),
        _ => None,
    }
}

/// Reads `MM:SS` or `H:MM:SS` as seconds.
fn parse_duration(text: &str) -> Option<u32> {
    let mut seconds: u32 = 0;
    let mut part_count = 0;
    for part in text.trim().split(':') {
        let value: u32 = part.parse().ok()?;
        seconds = seconds.checked_mul(60)?.checked_add(value)?;
        part_count += 1;
    }
    (2..=3).contains(&part_count).then_some(seconds)
}

/// Returns the media of an included file link (a photo, or the photo of a service block).
pub(crate) fn photo_media(href: &str) -> Media {
    let mut media = Media::new(MediaKind::Photo);
    media.path = Some(path_relative_to_export_root(href).to_owned());
    media
}

fn file_path(href: Option<&str>) -> Option<String> {
    let href = href?;
    let is_global = href.starts_with("http://") || href.starts_with("https://");
    (!href.is_empty() && !is_global).then(|| path_relative_to_export_root(href).to_owned())
}

fn kind_of_generic_block(media: &HtmlMediaBlock, warnings: &mut Vec<Warning>) -> MediaKind {
    let class_name = media.media_classes.first().map_or("", String::as_str);
    let title = media.title.trim();
    match class_name {
        "media_photo" if title == "Sticker" => MediaKind::Sticker,
        "media_photo" => MediaKind::Photo,
        "media_video" if title == "Video message" => MediaKind::VideoMessage,
        "media_video" if title == "Animation" => MediaKind::Animation,
        "media_video" => MediaKind::VideoFile,
        "media_voice_message" => MediaKind::VoiceMessage,
        "media_audio_file" => MediaKind::AudioFile,
        "media_file" => MediaKind::Document,
        "media_contact" => MediaKind::Contact,
        "media_location" => MediaKind::Location,
        "media_live_location" => MediaKind::LiveLocation,
        "media_venue" => MediaKind::Venue,
        "media_game" => MediaKind::Game,
        "media_invoice" => MediaKind::Invoice,
        other => {
            warnings.push(Warning::new(WarningKind::UnknownMediaType, format!("unknown media block class {other:?}")));
            MediaKind::Other(other.trim_start_matches("media_").to_owned())
        }
    }
}

fn poll_of_block(poll: &HtmlPoll) -> Poll {
    let count_of = |text: &str| -> Option<u64> {
        let text = text.trim();
        if text == "No votes" {
            return Some(0);
        }
        text.split_ascii_whitespace().next()?.parse().ok()
    };
    Poll {
        question: poll.question.trim().to_owned(),
        closed: poll.details.trim() == "Final results",
        total_voters: count_of(&poll.total),
        answers: poll
            .answers
            .iter()
            .map(|(text, details)| PollAnswer {
                text: text.trim().trim_start_matches("- ").trim_end().to_owned(),
                voters: if details.trim().is_empty() { Some(0) } else { count_of(details) },
                chosen: details.contains("chosen vote"),
            })
            .collect(),
    }
}

/// Maps a media block; unknown block classes become [`MediaKind::Other`] with a warning.
pub(crate) fn media_of_block(block: HtmlMediaBlock, warnings: &mut Vec<Warning>) -> Media {
    if let Some(poll) = &block.poll {
        let mut media = Media::new(MediaKind::Poll);
        media.poll = Some(poll_of_block(poll));
        return media;
    }
    let href = block.href.as_deref();
    let thumbnail_path = file_path(block.thumbnail_src.as_deref());
    if let Some(wrap_class) = block.wrap_class.as_deref() {
        let kind = match wrap_class {
            "photo_wrap" => MediaKind::Photo,
            "video_file_wrap" => MediaKind::VideoFile,
            "animated_wrap" => MediaKind::Animation,
            _ => MediaKind::Sticker,
        };
        let mut media = Media::new(kind);
        media.path = file_path(href);
        if media.kind != MediaKind::Photo {
            media.thumbnail_path = thumbnail_path;
        }
        media.duration_seconds = parse_duration(&block.video_duration);
        return media;
    }
    let kind = kind_of_generic_block(&block, warnings);
    let mut media = Media::new(kind);
    let title = block.title.trim();
    let status = block.status.trim();
    let description = block.description.trim();
    let status_first_part = status.split(", ").next().unwrap_or("");
    media.not_included_reason = not_included_reason_of_description(description);
    media.thumbnail_path = thumbnail_path;
    match media.kind {
        MediaKind::Location | MediaKind::LiveLocation | MediaKind::Venue => {
            media.location = href.and_then(location_of_map_link);
            if media.kind == MediaKind::Venue {
                media.place_name = Some(title.to_owned()).filter(|name| !name.is_empty());
                media.address = Some(description.to_owned()).filter(|text| !text.is_empty());
            }
        }
        MediaKind::Game | MediaKind::Invoice => {
            media.title = Some(title.to_owned()).filter(|text| !text.is_empty());
        }
        MediaKind::Contact => {
            let (first_name, last_name) = title.split_once(' ').unwrap_or((title, ""));
            media.contact = Some(Contact {
                first_name: Some(first_name.to_owned()).filter(|name| !name.is_empty()),
                last_name: Some(last_name.trim().to_owned()).filter(|name| !name.is_empty()),
                phone_number: Some(status.trim_end_matches(" - vCard").to_owned()).filter(|phone| !phone.is_empty()),
            });
            media.path = file_path(href);
        }
        MediaKind::Sticker => {
            media.path = file_path(href);
            let has_digit = status_first_part.chars().any(|c| c.is_ascii_digit());
            if !status_first_part.is_empty() && !has_digit {
                media.sticker_emoji = Some(status_first_part.to_owned());
            }
        }
        MediaKind::AudioFile => {
            media.path = file_path(href);
            media.duration_seconds = parse_duration(status_first_part);
            if let Some((performer, song_title)) = title.split_once(" \u{2013} ") {
                media.performer = Some(performer.to_owned());
                media.title = Some(song_title.to_owned());
            }
        }
        MediaKind::Document => {
            media.path = file_path(href);
            media.file_name = Some(title.to_owned()).filter(|name| !name.is_empty() && name != "File");
        }
        _ => {
            media.path = file_path(href);
            media.duration_seconds = parse_duration(status_first_part);
        }
    }
    if media.path.is_none() && media.not_included_reason.is_none() && href.is_none() {
        let is_file_kind = !matches!(
            media.kind,
            MediaKind::Location | MediaKind::LiveLocation | MediaKind::Venue | MediaKind::Game | MediaKind::Invoice | MediaKind::Contact
        );
        if is_file_kind && !description.is_empty() {
            media.not_included_reason = Some(NotIncludedReason::Other(description.to_owned()));
        }
    }
    media
}

/// Reads the coordinates of a `https://maps.google.com/maps?q=LAT,LON&...` link.
fn location_of_map_link(href: &str) -> Option<GeoPoint> {
    let query = href.split_once("q=")?.1;
    let coordinates = query.split('&').next()?;
    let (latitude, longitude) = coordinates.split_once(',')?;
    Some(GeoPoint { latitude: latitude.trim().parse().ok()?, longitude: longitude.trim().parse().ok()? })
}

/// Describes a media block as written, for [`crate::Message::raw_json`].
pub(crate) fn media_raw_json(block: &HtmlMediaBlock) -> Value {
    let mut raw = serde_json::Map::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) {
            raw.insert(key.to_owned(), json!(value));
        }
    };
    put("wrap_class", block.wrap_class.as_deref());
    put("href", block.href.as_deref());
    put("thumbnail_src", block.thumbnail_src.as_deref());
    put("preview_src", block.preview_src.as_deref());
    put("title", Some(&block.title));
    put("description", Some(&block.description));
    put("status", Some(&block.status));
    put("video_duration", Some(&block.video_duration));
    if !block.media_classes.is_empty() {
        raw.insert("classes".to_owned(), json!(block.media_classes));
    }
    if let Some(poll) = &block.poll {
        raw.insert(
            "poll".to_owned(),
            json!({
                "question": poll.question.trim(),
                "details": poll.details.trim(),
                "answers": poll.answers.iter().map(|(text, details)| json!([text.trim(), details.trim()])).collect::<Vec<_>>(),
                "total": poll.total.trim(),
            }),
        );
    }
    Value::Object(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_map_links_are_read() {
        assert_eq!(parse_duration("00:07"), Some(7));
        assert_eq!(parse_duration("1:02:03"), Some(3723));
        assert_eq!(parse_duration("7"), None);
        let point = location_of_map_link("https://maps.google.com/maps?q=55.75,37.61&ll=55.75,37.61&z=16").expect("coordinates");
        assert_eq!((point.latitude, point.longitude), (55.75, 37.61));
    }

    #[test]
    fn generic_voice_block_not_included() {
        let block = HtmlMediaBlock {
            is_generic: true,
            media_classes: vec!["media_voice_message".to_owned()],
            title: "Voice message".to_owned(),
            description: "Not included, change data exporting settings to download.".to_owned(),
            status: "00:07, 45.2 KB".to_owned(),
            ..HtmlMediaBlock::default()
        };
        let media = media_of_block(block, &mut Vec::new());
        assert_eq!(media.kind, MediaKind::VoiceMessage);
        assert_eq!(media.not_included_reason, Some(NotIncludedReason::NotSelected));
        assert_eq!(media.duration_seconds, Some(7));
        assert_eq!(media.path, None);
    }
}
