//! Unit tests of media mapping: kinds, paths, placeholders and details.

use super::*;
use crate::field_reader::MessageFields;
use serde_json::json;

fn media_of(value: Value) -> (Option<Media>, Vec<Warning>) {
    let Value::Object(object) = value else { panic!("test input must be an object") };
    let mut fields = MessageFields::from_object(object);
    let mut warnings = Vec::new();
    let media = take_media(&mut FieldReader { fields: &mut fields, warnings: &mut warnings });
    (media, warnings)
}

#[test]
fn classifies_placeholders_and_paths() {
    let cases = [
        ("(File not included. Change data exporting settings to download.)", None, Some(NotIncludedReason::NotSelected)),
        ("(File exceeds maximum size. Change data exporting settings to download.)", None, Some(NotIncludedReason::ExceedsSizeLimit)),
        ("(File unavailable, please try again later)", None, Some(NotIncludedReason::Unavailable)),
        ("(Photo not included. Change data exporting settings to download.)", None, Some(NotIncludedReason::NotSelected)),
        ("files/Q3 plan (1).pdf", Some("files/Q3 plan (1).pdf"), None),
        ("", None, None),
    ];
    for (reference, path, reason) in cases {
        let (actual_path, actual_reason) = classify_file_reference(reference.to_owned());
        assert_eq!((actual_path.as_deref(), actual_reason), (path, reason), "{reference}");
    }
    let (path, reason) = classify_file_reference("(Some new wording)".to_owned());
    assert_eq!(path, None);
    assert_eq!(reason, Some(NotIncludedReason::Other("(Some new wording)".to_owned())));
}

#[test]
fn photo_with_path_and_size() {
    let (media, warnings) = media_of(json!({
        "photo": "photos/photo_3@22-11-2026_10-15-30.jpg", "photo_file_size": 183412, "width": 1280, "height": 960
    }));
    let media = media.expect("a photo");
    assert!(warnings.is_empty());
    assert_eq!(media.kind, MediaKind::Photo);
    assert_eq!(media.path.as_deref(), Some("photos/photo_3@22-11-2026_10-15-30.jpg"));
    assert_eq!((media.file_size, media.width, media.height), (Some(183_412), Some(1280), Some(960)));
}

#[test]
fn skipped_sticker_keeps_its_metadata() {
    let (media, _) = media_of(json!({
        "file": "(File not included. Change data exporting settings to download.)",
        "file_name": "sticker.webp", "file_size": 22000,
        "thumbnail": "(File not included. Change data exporting settings to download.)",
        "media_type": "sticker", "sticker_emoji": "😆", "mime_type": "image/webp", "width": 512, "height": 512
    }));
    let media = media.expect("a sticker");
    assert_eq!(media.kind, MediaKind::Sticker);
    assert_eq!(media.path, None);
    assert_eq!(media.not_included_reason, Some(NotIncludedReason::NotSelected));
    assert_eq!(media.thumbnail_not_included_reason, Some(NotIncludedReason::NotSelected));
    assert_eq!(media.file_name.as_deref(), Some("sticker.webp"));
    assert_eq!(media.sticker_emoji.as_deref(), Some("😆"));
    assert_eq!(media.mime_type.as_deref(), Some("image/webp"));
}

#[test]
fn document_kinds_follow_media_type() {
    for (media_type, kind) in [
        (Some("animation"), MediaKind::Animation),
        (Some("video_file"), MediaKind::VideoFile),
        (Some("video_message"), MediaKind::VideoMessage),
        (Some("voice_message"), MediaKind::VoiceMessage),
        (Some("audio_file"), MediaKind::AudioFile),
        (None, MediaKind::Document),
    ] {
        let mut object = json!({"file": "files/a.bin", "duration_seconds": 7, "thumbnail": "files/a.bin_thumb.jpg"});
        if let Some(media_type) = media_type {
            object["media_type"] = json!(media_type);
        }
        let (media, warnings) = media_of(object);
        let media = media.expect("media");
        assert!(warnings.is_empty());
        assert_eq!(media.kind, kind);
        assert_eq!(media.duration_seconds, Some(7));
        assert_eq!(media.thumbnail_path.as_deref(), Some("files/a.bin_thumb.jpg"));
    }
    let (media, warnings) = media_of(json!({"file": "files/x", "media_type": "hologram"}));
    assert_eq!(media.expect("media").kind, MediaKind::Other("hologram".to_owned()));
    assert_eq!(warnings[0].kind, WarningKind::UnknownMediaType);
}

#[test]
fn contact_location_venue_and_poll() {
    let (media, _) = media_of(json!({
        "contact_information": {"first_name": "Ann", "last_name": "", "phone_number": "+1 555"},
        "contact_vcard": "contacts/contact_1.vcard"
    }));
    let media = media.expect("contact");
    assert_eq!(media.kind, MediaKind::Contact);
    assert_eq!(media.path.as_deref(), Some("contacts/contact_1.vcard"));
    assert_eq!(media.contact.expect("contact").phone_number.as_deref(), Some("+1 555"));

    let (media, _) = media_of(json!({"location_information": {"latitude": 52.5, "longitude": 13.25}}));
    let media = media.expect("location");
    assert_eq!(media.kind, MediaKind::Location);
    assert_eq!(media.location, Some(GeoPoint { latitude: 52.5, longitude: 13.25 }));

    let (media, _) = media_of(json!({"location_information": null, "live_location_period_seconds": 900}));
    assert_eq!(media.expect("live").kind, MediaKind::LiveLocation);

    let (media, _) = media_of(json!({"place_name": "Cafe", "address": "Main St 1", "location_information": {"latitude": 1, "longitude": 2}}));
    let media = media.expect("venue");
    assert_eq!(media.kind, MediaKind::Venue);
    assert_eq!(media.place_name.as_deref(), Some("Cafe"));

    let (media, warnings) = media_of(json!({"poll": {
        "question": ["Lunch ", {"type": "bold", "text": "where"}, "?"], "closed": true, "total_voters": 3,
        "answers": [{"text": "Here", "voters": 2, "chosen": true}, {"text": [{"type": "plain", "text": "There"}], "voters": 1, "chosen": false}]
    }}));
    assert!(warnings.is_empty());
    let poll = media.expect("poll").poll.expect("poll details");
    assert_eq!(poll.question, "Lunch where?");
    assert!(poll.closed);
    assert_eq!(poll.total_voters, Some(3));
    assert_eq!(poll.answers[1].text, "There");
    assert!(poll.answers[0].chosen);
}

#[test]
fn other_media_and_none() {
    let (media, _) = media_of(json!({"game_title": "Chess", "game_description": "d"}));
    let media = media.expect("game");
    assert_eq!((media.kind, media.title.as_deref()), (MediaKind::Game, Some("Chess")));
    let (media, _) = media_of(json!({"invoice_information": {"title": "x"}}));
    assert_eq!(media.expect("invoice").kind, MediaKind::Invoice);
    let (media, _) = media_of(json!({"text": "hi", "width": 5}));
    assert!(media.is_none());
}
