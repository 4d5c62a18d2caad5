//! The bot's Prometheus metrics: what people send, what is stored where, what fails and
//! why, how long storing takes, and when the bot is used.

use std::sync::LazyLock;

use chatvault_common::http::register;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Files received by the bot, by kind (`document`, `photo`, ...).
pub static FILES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_bot_files_received_total", "files people sent to the bot, by kind"), &["kind"]))
});

/// Bytes received by the bot (as Telegram announced them), by kind.
pub static BYTES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_bot_bytes_received_total", "bytes of the files people sent to the bot, by kind"), &["kind"]))
});

/// Files stored by the workers, by target (`chatvault`, `drive`) and whether the bytes
/// were already there (`duplicate`: `true`/`false`).
pub static FILES_STORED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_bot_files_stored_total", "files the storage workers stored, by target and duplicate"),
        &["target", "duplicate"],
    ))
});

/// Bytes stored by the workers, by target.
pub static BYTES_STORED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_bot_bytes_stored_total", "bytes the storage workers stored, by target"), &["target"]))
});

/// Files that could not be stored (or a target of them), by reason (`too_big`,
/// `telegram`, `chatvault`, `drive_quota`, `drive_auth`, `drive`).
pub static STORE_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(Opts::new("chatvault_bot_store_failures_total", "files or targets not stored, by reason"), &["reason"]))
});

/// Drive calls retried after a quota answer or an interruption, by reason.
pub static DRIVE_RETRIES: LazyLock<IntCounterVec> =
    LazyLock::new(|| register(IntCounterVec::new(Opts::new("chatvault_bot_drive_retries_total", "Drive calls retried, by reason"), &["reason"])));

/// Seconds from the bot receiving a file to the worker having stored it.
pub static STORE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(HistogramVec::new(
        HistogramOpts::new("chatvault_bot_store_seconds", "time from receipt by the bot to stored, by kind")
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
        &["kind"],
    ))
});

/// Messages and commands handled, by hour of day (`00`–`23`, in the sender's time zone)
/// and what they were (`file`, `command`): when the bot is used most.
pub static USES_BY_HOUR: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(IntCounterVec::new(
        Opts::new("chatvault_bot_uses_total", "messages handled by the bot, by hour of day in the sender's time zone and kind of use"),
        &["hour", "use"],
    ))
});
