//! Date folders: the day a file was sent, in the sender's own time zone (IANA names from
//! the tz database, through `chrono-tz`).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
///
/// Errors with a sentence for the person naming the expected form.
pub fn parse_time_zone(text: &str) -> Result<Tz, String> {
    text.trim()
        .parse::<Tz>()
        .map_err(|_| format!("{:?} is not a time zone I know. Use an IANA name such as Europe/Berlin, America/New_York or UTC.", text.trim()))
}

/// Returns the date folder (`YYYY-MM-DD`) of a moment in `zone`.
pub fn folder_date(moment: DateTime<Utc>, zone: Tz) -> String {
    moment.with_timezone(&zone).format("%Y-%m-%d").to_string()
}

/// Parses the argument of `/files`: `YYYY-MM-DD`, `today` or `yesterday` (in `zone`, at
/// `now`); empty means today.
///
/// Errors with a sentence for the person.
pub fn parse_day(argument: &str, now: DateTime<Utc>, zone: Tz) -> Result<String, String> {
    let today = now.with_timezone(&zone).date_naive();
    match argument.trim().to_lowercase().as_str() {
        "" | "today" => Ok(today.format("%Y-%m-%d").to_string()),
        "yesterday" => Ok((today - chrono::Days::new(1)).format("%Y-%m-%d").to_string()),
        text => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(|date| date.format("%Y-%m-%d").to_string())
            .map_err(|_| format!("{text:?} is not a day. Send /files 2026-11-22, /files today or /files yesterday.")),
    }
}

/// Returns `bytes` as a person reads it: `812 B`, `3.1 MB`, `1.2 GB` (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_file_sent_at_23_30_utc_belongs_to_the_next_day_in_utc_plus_3() {
        let moment = Utc.with_ymd_and_hms(2026, 11, 22, 23, 30, 0).single().expect("moment");
        assert_eq!(folder_date(moment, parse_time_zone("Europe/Moscow").expect("zone")), "2026-11-23");
        assert_eq!(folder_date(moment, parse_time_zone("UTC").expect("zone")), "2026-11-22");
        assert_eq!(folder_date(moment, parse_time_zone("America/New_York").expect("zone")), "2026-11-22");
        assert!(parse_time_zone("Mars/Olympus").expect_err("unknown").contains("IANA"));
    }

    #[test]
    fn files_takes_a_date_today_or_yesterday_in_the_persons_zone() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 23, 30, 0).single().expect("now");
        let berlin = parse_time_zone("Europe/Berlin").expect("zone");
        assert_eq!(parse_day("today", now, berlin).expect("today"), "2026-11-23");
        assert_eq!(parse_day("Yesterday", now, berlin).expect("yesterday"), "2026-11-22");
        assert_eq!(parse_day("2026-01-05", now, berlin).expect("date"), "2026-01-05");
        assert!(parse_day("2026-13-01", now, berlin).is_err());
        assert_eq!(human_size(3_100_000), "3.1 MB");
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(999_999), "1.0 MB");
    }
}
