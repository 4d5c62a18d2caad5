//! Result rows. Every benchmark appends one JSON object per figure to the results file
//! (`CHATVAULT_BENCH_RESULTS`, by default `bench/out/results.jsonl`), which
//! `scripts/bench.sh` empties before it runs anything; `chatvault-bench summary` prints the
//! rows as one Markdown table in the order of the performance table (README,
//! "Performance"), each figure beside its limit, the ratio, the target and whether it is
//! met. Rows of that table a run did not measure are listed as "not run"; other figures
//! (parser alone, restore, hashing, peak memory of the other services) follow in a second
//! table.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// How a figure is held against its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// figure ÷ limit must be at least this.
    RatioAtLeast(f64),
    /// The figure must not exceed the limit (peak memory).
    AtMostLimit,
    /// No target: the figure is reported for information.
    None,
}

impl Target {
    /// The target as the summary prints it, e.g. `≥ 0.5 × limit`.
    pub fn text(self) -> String {
        match self {
            Target::RatioAtLeast(minimum) => format!("≥ {minimum} × limit"),
            Target::AtMostLimit => "≤ limit".to_owned(),
            Target::None => "—".to_owned(),
        }
    }

    fn to_json(self) -> Value {
        match self {
            Target::RatioAtLeast(minimum) => json!({ "ratio_at_least": minimum }),
            Target::AtMostLimit => json!("at_most_limit"),
            Target::None => Value::Null,
        }
    }

    fn from_json(value: &Value) -> Self {
        if let Some(minimum) = value.get("ratio_at_least").and_then(Value::as_f64) {
            Target::RatioAtLeast(minimum)
        } else if value.as_str() == Some("at_most_limit") {
            Target::AtMostLimit
        } else {
            Target::None
        }
    }
}

/// One measured figure beside the limit measured in the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Which row of the performance table this is (see [`PERFORMANCE_TABLE`]), or another key
    /// for a figure outside it.
    pub key: String,
    /// What was measured, with the sizes of this run.
    pub work: String,
    pub figure: f64,
    pub unit: String,
    pub limit: f64,
    /// What the limit is, e.g. `PostgreSQL COPY FROM, same rows, identical table`.
    pub limit_name: String,
    pub target: Target,
    /// Whether the run had the size the performance table names (a smaller run's ratio is
    /// indicative only).
    pub full_size: bool,
    /// Further figures of the row (files/s, latency percentiles, how the cache was dropped).
    pub notes: String,
}

impl Row {
    /// figure ÷ limit.
    pub fn ratio(&self) -> f64 {
        if self.limit > 0.0 {
            self.figure / self.limit
        } else {
            f64::NAN
        }
    }

    /// Whether the target is met; `None` for a figure without a target.
    pub fn met(&self) -> Option<bool> {
        match self.target {
            Target::RatioAtLeast(minimum) => Some(self.ratio() >= minimum),
            Target::AtMostLimit => Some(self.figure <= self.limit),
            Target::None => None,
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "work": self.work,
            "figure": self.figure,
            "unit": self.unit,
            "limit": self.limit,
            "limit_name": self.limit_name,
            "ratio": self.ratio(),
            "target": self.target.to_json(),
            "met": self.met(),
            "full_size": self.full_size,
            "notes": self.notes,
        })
    }

    fn from_json(value: &Value) -> anyhow::Result<Self> {
        let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
        let number = |field: &str| value.get(field).and_then(Value::as_f64);
        Ok(Row {
            key: text("key").context("a row without key")?,
            work: text("work").unwrap_or_default(),
            figure: number("figure").context("a row without figure")?,
            unit: text("unit").unwrap_or_default(),
            limit: number("limit").unwrap_or(f64::NAN),
            limit_name: text("limit_name").unwrap_or_default(),
            target: Target::from_json(value.get("target").unwrap_or(&Value::Null)),
            full_size: value.get("full_size").and_then(Value::as_bool).unwrap_or(false),
            notes: text("notes").unwrap_or_default(),
        })
    }
}

/// The rows of the performance table, in its order: key, work, target.
pub const PERFORMANCE_TABLE: [(&str, &str, Target); 12] = [
    ("import-json", "end-to-end JSON import, 1,000,000 messages", Target::RatioAtLeast(0.5)),
    ("import-media-messages", "JSON import with 20% media files: messages", Target::RatioAtLeast(0.5)),
    ("import-media-bytes", "JSON import with 20% media files: media bytes", Target::RatioAtLeast(0.5)),
    ("import-html", "HTML import, 200,000 messages", Target::RatioAtLeast(0.5)),
    ("upload", "file upload, 1 GiB", Target::RatioAtLeast(0.5)),
    ("download", "file download, 1 GiB, page cache dropped, hash verified", Target::RatioAtLeast(0.5)),
    ("concurrent-uploads", "100 concurrent uploads of 1 MiB files", Target::RatioAtLeast(0.5)),
    ("backup-csv", "CSV backup, 1,000,000 messages", Target::RatioAtLeast(0.7)),
    ("backup-parquet", "Parquet backup, 1,000,000 messages", Target::RatioAtLeast(0.5)),
    ("ingest-rss", "ingest peak RSS on a 2 GB export", Target::AtMostLimit),
    ("web-page-first", "web chat page of a 1,000,000-message chat: the newest page", Target::RatioAtLeast(0.5)),
    ("web-page-1000", "web chat page of a 1,000,000-message chat: the 1,000th page back", Target::RatioAtLeast(0.5)),
];

/// The results file: `CHATVAULT_BENCH_RESULTS`, else `bench/out/results.jsonl`.
pub fn results_path() -> PathBuf {
    std::env::var_os("CHATVAULT_BENCH_RESULTS")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("out").join("results.jsonl"))
}

/// Appends `row` to the results file as one JSON line.
pub fn record(row: &Row) -> anyhow::Result<()> {
    let path = results_path();
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).with_context(|| format!("opening {}", path.display()))?;
    writeln!(file, "{}", row.to_json()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads every row of a results file.
pub fn read(path: &Path) -> anyhow::Result<Vec<Row>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), index + 1))?;
        rows.push(Row::from_json(&value).with_context(|| format!("{} line {}", path.display(), index + 1))?);
    }
    Ok(rows)
}

/// Formats a figure in its unit: rates of items as whole numbers with thousands
/// separators, everything else with one or three decimals.
pub fn format_value(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "—".to_owned();
    }
    let number = if unit.ends_with("/s") && !unit.starts_with("MB") && value >= 100.0 {
        thousands(value.round() as u64)
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The summary of `rows`: the performance table (every row, measured or not), then the
/// other figures, as Markdown.
pub fn summary(rows: &[Row]) -> String {
    let mut out = String::new();
    let latest = |key: &str| rows.iter().rev().find(|row| row.key == key);
    let measured = PERFORMANCE_TABLE.iter().filter(|(key, _, _)| latest(key).is_some()).count();
    let met = PERFORMANCE_TABLE.iter().filter(|(key, _, _)| latest(key).is_some_and(|row| row.met() == Some(true))).count();
    let reduced = PERFORMANCE_TABLE.iter().any(|(key, _, _)| latest(key).is_some_and(|row| !row.full_size));
    out.push_str(&format!("performance table: {measured} of {} rows measured, {met} met\n\n", PERFORMANCE_TABLE.len()));
    out.push_str("| work | figure | limit (same run, same machine) | ratio | target | met |\n|---|---|---|---|---|---|\n");
    for (key, work, target) in PERFORMANCE_TABLE {
        match latest(key) {
            Some(row) => out.push_str(&table_line(row)),
            None => out.push_str(&format!("| {work} | — | — | — | {} | not run |\n", target.text())),
        }
    }
    if reduced {
        out.push_str("\n(reduced size): run smaller than the performance table names; its ratio is indicative only.\n");
    }
    let notes: Vec<&Row> = PERFORMANCE_TABLE.iter().filter_map(|(key, _, _)| latest(key)).filter(|row| !row.notes.is_empty()).collect();
    if !notes.is_empty() {
        out.push('\n');
        for row in notes {
            out.push_str(&format!("- {}: {}\n", row.work, row.notes));
        }
    }
    let others: Vec<&Row> = rows.iter().filter(|row| !PERFORMANCE_TABLE.iter().any(|(key, _, _)| *key == row.key)).collect();
    if !others.is_empty() {
        out.push_str("\nother figures of this run\n\n| work | figure | limit | ratio | target | met |\n|---|---|---|---|---|---|\n");
        for row in others {
            out.push_str(&table_line(row));
        }
    }
    out
}

fn table_line(row: &Row) -> String {
    let work = if row.full_size { row.work.clone() } else { format!("{} (reduced size)", row.work) };
    let limit = if row.limit.is_finite() { format!("{}: {}", format_value(row.limit, &row.unit), row.limit_name) } else { row.limit_name.clone() };
    let ratio = if row.ratio().is_finite() { format!("{:.3}", row.ratio()) } else { "—".to_owned() };
    let met = match row.met() {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "—",
    };
    format!("| {work} | {} | {limit} | {ratio} | {} | {met} |\n", format_value(row.figure, &row.unit), row.target.text())
}

/// Fails with the first difference when `actual` is not `expected`: every benchmark checks
/// its outcome against its source this way before it reports a figure.
pub fn check_equal<T: PartialEq + std::fmt::Debug>(what: &str, actual: T, expected: T) -> anyhow::Result<()> {
    if actual != expected {
        bail!("check failed: {what} is {actual:?}, expected {expected:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, figure: f64, limit: f64, target: Target) -> Row {
        Row {
            key: key.to_owned(),
            work: format!("work {key}"),
            figure,
            unit: "messages/s".to_owned(),
            limit,
            limit_name: "COPY".to_owned(),
            target,
            full_size: true,
            notes: String::new(),
        }
    }

    #[test]
    fn rows_survive_a_json_line() {
        let mut original = row("import-json", 1234.5, 2000.0, Target::RatioAtLeast(0.5));
        original.notes = "p99 12 ms".to_owned();
        assert_eq!(Row::from_json(&original.to_json()).unwrap(), original);
        let memory = row("ingest-rss", 90.0, 128.0, Target::AtMostLimit);
        assert_eq!(Row::from_json(&memory.to_json()).unwrap(), memory);
    }

    #[test]
    fn targets_compare_the_ratio_or_the_figure() {
        assert_eq!(row("a", 1000.0, 2000.0, Target::RatioAtLeast(0.5)).met(), Some(true));
        assert_eq!(row("a", 999.0, 2000.0, Target::RatioAtLeast(0.5)).met(), Some(false));
        assert_eq!(row("a", 128.0, 128.0, Target::AtMostLimit).met(), Some(true));
        assert_eq!(row("a", 128.1, 128.0, Target::AtMostLimit).met(), Some(false));
        assert_eq!(row("a", 1.0, 2.0, Target::None).met(), None);
    }

    #[test]
    fn the_summary_lists_every_row_of_the_table_and_the_others_after_it() {
        let rows = vec![
            row("import-json", 100.0, 400.0, Target::RatioAtLeast(0.5)),
            row("import-json", 300.0, 400.0, Target::RatioAtLeast(0.5)),
            row("parser-json", 5.0, 10.0, Target::None),
        ];
        let text = summary(&rows);
        assert!(text.starts_with(&format!("performance table: 1 of {} rows measured, 1 met\n", PERFORMANCE_TABLE.len())), "{text}");
        assert!(text.contains("| work import-json | 300 messages/s | 400 messages/s: COPY | 0.750 | ≥ 0.5 × limit | met |"), "{text}");
        assert!(!text.contains("| 100 messages/s"), "the latest row of a key wins: {text}");
        for (_, work, _) in PERFORMANCE_TABLE.iter().skip(1) {
            assert!(text.contains(&format!("| {work} | — |")), "{work} missing: {text}");
        }
        assert!(text.contains("other figures of this run") && text.contains("| work parser-json |"), "{text}");
    }

    #[test]
    fn values_are_formatted_in_their_unit() {
        assert_eq!(format_value(1_234_567.4, "messages/s"), "1,234,567 messages/s");
        assert_eq!(format_value(612.34, "MB/s"), "612.3 MB/s");
        assert_eq!(format_value(0.5, "s"), "0.500 s");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }
}
