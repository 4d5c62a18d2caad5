//! Media attached to a message: which kind, where its file is (a path relative to the
//! export root), or why the file is not in the export (format reference, sections 2.8 and
//! 2.9).
//!
//! Only the fields an archive needs to find and describe the file are mapped; everything
//! else stays available in [`crate::Message::raw_json`].

use serde_json::Value;

use crate::field_reader::{FieldReader, MessageField};
use crate::message::{Warning, WarningKind};
use crate::text::plain_text_of_value;

/// What kind of media a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A photo (`photo`).
    Photo,
    /// A sticker (`media_type: sticker`).
    Sticker,
    /// A GIF or other animation (`media_type: animation`).
    Animation,
    /// A video (`media_type: video_file`).
    VideoFile,
    /// A round video message (`media_type: video_message`).
    VideoMessage,
    /// A voice message (`media_type: voice_message`).
    VoiceMessage,
    /// A music file (`media_type: audio_file`).
    AudioFile,
    /// Any other file (`file` without `media_type`).
    Document,
    /// A shared contact (`contact_information`).
    Contact,
    /// A location (`location_information`).
    Location,
    /// A live location (`live_location_period_seconds`).
    LiveLocation,
    /// A venue (`place_name`/`address` with a location).
    Venue,
    /// A poll (`poll`).
    Poll,
    /// A game (`game_title`).
    Game,
    /// An invoice (`invoice_information`).
    Invoice,
    /// A giveaway (`giveaway_information`).
    Giveaway,
    /// Giveaway results (`giveaway_results`).
    GiveawayResults,
    /// Paid media (`paid_stars_amount`).
    PaidMedia,
    /// A to-do list (`todo_list`).
    TodoList,
    /// A `media_type` this crate does not know; kept verbatim.
    Other(String),
}

impl MediaKind {
    /// Returns a stable lowercase name, the export's `media_type` where there is one.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Photo => "photo",
            MediaKind::Sticker => "sticker",
            MediaKind::Animation => "animation",
            MediaKind::VideoFile => "video_file",
            MediaKind::VideoMessage => "video_message",
            MediaKind::VoiceMessage => "voice_message",
            MediaKind::AudioFile => "audio_file",
            MediaKind::Document => "document",
            MediaKind::Contact => "contact",
            MediaKind::Location => "location",
            MediaKind::LiveLocation => "live_location",
            MediaKind::Venue => "venue",
            MediaKind::Poll => "poll",
            MediaKind::Game => "game",
            MediaKind::Invoice => "invoice",
            MediaKind::Giveaway => "giveaway",
            MediaKind::GiveawayResults => "giveaway_results",
            MediaKind::PaidMedia => "paid_media",
            MediaKind::TodoList => "todo_list",
            MediaKind::Other(name) => name,
        }
    }
}

/// Why a file is not in the export, from the placeholder written instead of its path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NotIncludedReason {
    /// `(File not included. Change data exporting settings to download.)`
    NotSelected,
    /// `(File exceeds maximum size. Change data exporting settings to download.)`
    ExceedsSizeLimit,
    /// `(File unavailable, please try again later)`
    Unavailable,
    /// Another parenthesised placeholder; kept verbatim.
    Other(String),
}

/// Splits a file reference into a path or the reason why there is none.
/// Returns `(None, None)` for an empty string.
pub fn classify_file_reference(reference: String) -> (Option<String>, Option<NotIncludedReason>) {
    let reason = match reference.as_str() {
        "" => return (None, None),
        "(File not included. Change data exporting settings to download.)" | "(Photo not included. Change data exporting settings to download.)" => {
            NotIncludedReason::NotSelected
        }
        "(File exceeds maximum size. Change data exporting settings to download.)"
        | "(Photo exceeds maximum size. Change data exporting settings to download.)" => NotIncludedReason::ExceedsSizeLimit,
        "(File unavailable, please try again later)" | "(Photo unavailable, please try again later)" => NotIncludedReason::Unavailable,
        // Real paths always contain a folder ("photos/...", "chats/chat_01/files/..."), so a
        // parenthesised text without a slash is a placeholder in words we do not know.
        other if other.starts_with('(') && other.ends_with(')') && !other.contains('/') => NotIncludedReason::Other(reference),
        _ => return (Some(reference), None),
    };
    (None, Some(reason))
}

/// A shared contact.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Phone number as written.
    pub phone_number: Option<String>,
}

/// A point on the map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
}

/// One answer of a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct PollAnswer {
    /// The answer's plain text.
    pub text: String,
    /// How many people chose it.
    pub voters: Option<u64>,
    /// Whether the exporting user chose it.
    pub chosen: bool,
}

/// A poll.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Poll {
    /// The question's plain text.
    pub question: String,
    /// Whether the poll is closed.
    pub closed: bool,
    /// How many people voted.
    pub total_voters: Option<u64>,
    /// The answers in order.
    pub answers: Vec<PollAnswer>,
}

/// The media of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// What kind of media it is.
    pub kind: MediaKind,
    /// The file's path relative to the export root, as written (`/` separators); `None`
    /// when the file is not in the export or the media has no file.
    pub path: Option<String>,
    /// Why the file is not in the export, when a placeholder stands in for the path.
    pub not_included_reason: Option<NotIncludedReason>,
    /// The original file name (`file_name`).
    pub file_name: Option<String>,
    /// The size in bytes (`file_size` or `photo_file_size`), given even for skipped files.
    pub file_size: Option<u64>,
    /// The MIME type.
    pub mime_type: Option<String>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Duration of audio or video in seconds.
    pub duration_seconds: Option<u32>,
    /// The thumbnail's path relative to the export root.
    pub thumbnail_path: Option<String>,
    /// Why the thumbnail is not in the export.
    pub thumbnail_not_included_reason: Option<NotIncludedReason>,
    /// The emoji of a sticker.
    pub sticker_emoji: Option<String>,
    /// The performer of a music file.
    pub performer: Option<String>,
    /// The title of a music file, or of a game.
    pub title: Option<String>,
    /// A shared contact's details.
    pub contact: Option<Contact>,
    /// The location of a location, live location or venue.
    pub location: Option<GeoPoint>,
    /// The name of a venue.
    pub place_name: Option<String>,
    /// The address of a venue.
    pub address: Option<String>,
    /// The poll, for [`MediaKind::Poll`].
    pub poll: Option<Poll>,
    /// Whether the media is hidden behind a spoiler (`media_spoiler`).
    pub has_spoiler: bool,
}

impl Media {
    pub(crate) fn new(kind: MediaKind) -> Media {
        Media {
            kind,
            path: None,
            not_included_reason: None,
            file_name: None,
            file_size: None,
            mime_type: None,
            width: None,
            height: None,
            duration_seconds: None,
            thumbnail_path: None,
            thumbnail_not_included_reason: None,
            sticker_emoji: None,
            performer: None,
            title: None,
            contact: None,
            location: None,
            place_name: None,
            address: None,
            poll: None,
            has_spoiler: false,
        }
    }
}

fn take_file_reference(fields: &mut FieldReader<'_>, field: MessageField) -> (Option<String>, Option<NotIncludedReason>) {
    match fields.take_string(field) {
        Some(reference) => classify_file_reference(reference),
        None => (None, None),
    }
}

fn media_kind_of_document(media_type: Option<&str>, warnings: &mut Vec<Warning>) -> MediaKind {
    match media_type {
        None => MediaKind::Document,
        Some("sticker") => MediaKind::Sticker,
        Some("animation") => MediaKind::Animation,
        Some("video_file") => MediaKind::VideoFile,
        Some("video_message") => MediaKind::VideoMessage,
        Some("voice_message") => MediaKind::VoiceMessage,
        Some("audio_file") => MediaKind::AudioFile,
        Some(other) => {
            warnings.push(Warning::new(WarningKind::UnknownMediaType, format!("unknown media_type {other:?}")));
            MediaKind::Other(other.to_owned())
        }
    }
}

fn parse_geo_point(value: Option<&Value>) -> Option<GeoPoint> {
    let object = value?.as_object()?;
    Some(GeoPoint { latitude: object.get("latitude")?.as_f64()?, longitude: object.get("longitude")?.as_f64()? })
}

fn parse_contact(value: Option<&Value>) -> Contact {
    let field = |key: &str| value.and_then(|value| value.get(key)).and_then(Value::as_str).map(str::to_owned);
    Contact { first_name: field("first_name"), last_name: field("last_name"), phone_number: field("phone_number") }
}

fn parse_poll(value: Value, warnings: &mut Vec<Warning>) -> Poll {
    let Value::Object(mut poll_object) = value else {
        warnings.push(Warning::new(WarningKind::UnexpectedFieldType, "field \"poll\" is not an object"));
        return Poll::default();
    };
    let question_value = poll_object.get_mut("question").map(Value::take).unwrap_or(Value::Null);
    let answers = match poll_object.get_mut("answers").map(Value::take) {
        Some(Value::Array(answers)) => answers
            .into_iter()
            .map(|mut answer| PollAnswer {
                voters: answer.get("voters").and_then(Value::as_u64),
                chosen: matches!(answer.get("chosen"), Some(Value::Bool(true))),
                text: plain_text_of_value(answer.get_mut("text").map(Value::take).unwrap_or(Value::Null), "poll answer", warnings),
            })
            .collect(),
        _ => Vec::new(),
    };
    Poll {
        question: plain_text_of_value(question_value, "poll question", warnings),
        closed: matches!(poll_object.get("closed"), Some(Value::Bool(true))),
        total_voters: poll_object.get("total_voters").and_then(Value::as_u64),
        answers,
    }
}

/// Finds the media of a message (regular or service, e.g. a new group photo) and moves
/// its fields out. Returns `None` when the message has no media.
pub(crate) fn take_media(fields: &mut FieldReader<'_>) -> Option<Media> {
    let mut media = if fields.contains(MessageField::Photo) {
        let mut media = Media::new(MediaKind::Photo);
        (media.path, media.not_included_reason) = take_file_reference(fields, MessageField::Photo);
        media.file_size = fields.get_u64(MessageField::PhotoFileSize);
        media
    } else if fields.contains(MessageField::File) {
        let media_type = fields.take_string(MessageField::MediaType);
        let mut media = Media::new(media_kind_of_document(media_type.as_deref(), fields.warnings));
        (media.path, media.not_included_reason) = take_file_reference(fields, MessageField::File);
        media.file_name = fields.take_string(MessageField::FileName);
        media.file_size = fields.get_u64(MessageField::FileSize);
        (media.thumbnail_path, media.thumbnail_not_included_reason) = take_file_reference(fields, MessageField::Thumbnail);
        media.sticker_emoji = fields.take_string(MessageField::StickerEmoji);
        media.performer = fields.take_string(MessageField::Performer);
        media.title = fields.take_string(MessageField::Title);
        media.mime_type = fields.take_string(MessageField::MimeType);
        media.duration_seconds = fields.get_u32(MessageField::DurationSeconds);
        media
    } else if fields.contains(MessageField::ContactInformation) {
        let mut media = Media::new(MediaKind::Contact);
        media.contact = Some(parse_contact(fields.get(MessageField::ContactInformation)));
        (media.path, media.not_included_reason) = take_file_reference(fields, MessageField::ContactVcard);
        media.file_size = fields.get_u64(MessageField::ContactVcardFileSize);
        media
    } else if fields.contains(MessageField::LocationInformation) {
        let kind = if fields.contains(MessageField::PlaceName) || fields.contains(MessageField::Address) {
            MediaKind::Venue
        } else if fields.contains(MessageField::LiveLocationPeriodSeconds) {
            MediaKind::LiveLocation
        } else {
            MediaKind::Location
        };
        let mut media = Media::new(kind);
        media.location = parse_geo_point(fields.get(MessageField::LocationInformation));
        media.place_name = fields.take_string(MessageField::PlaceName);
        media.address = fields.take_string(MessageField::Address);
        media
    } else if fields.contains(MessageField::Poll) {
        let mut media = Media::new(MediaKind::Poll);
        let poll_value = fields.take(MessageField::Poll).unwrap_or(Value::Null);
        media.poll = Some(parse_poll(poll_value, fields.warnings));
        media
    } else if fields.contains(MessageField::GameTitle) {
        let mut media = Media::new(MediaKind::Game);
        media.title = fields.take_string(MessageField::GameTitle);
        media
    } else {
        let kind = [
            (MessageField::InvoiceInformation, MediaKind::Invoice),
            (MessageField::GiveawayInformation, MediaKind::Giveaway),
            (MessageField::GiveawayResults, MediaKind::GiveawayResults),
            (MessageField::PaidStarsAmount, MediaKind::PaidMedia),
            (MessageField::TodoList, MediaKind::TodoList),
        ]
        .into_iter()
        .find(|(field, _)| fields.contains(*field))
        .map(|(_, kind)| kind)?;
        Media::new(kind)
    };
    media.width = fields.get_u32(MessageField::Width);
    media.height = fields.get_u32(MessageField::Height);
    media.has_spoiler = fields.get_bool(MessageField::MediaSpoiler);
    Some(media)
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
