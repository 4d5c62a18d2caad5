//! Guards the password checks of share links, which anyone on the network can start: each
//! check is an Argon2 verification (about 19 MiB of memory and tens of milliseconds of one
//! core), so without bounds a few clients could keep every core busy and try passwords as
//! fast as the machine hashes.
//!
//! Two bounds, applied before a password is verified, whether it came to the `/s/` HTTP
//! route or to the gRPC call OpenShareLink (one guard per service serves both, see
//! `share_link_access`):
//! - a [`Semaphore`] sized to the cores limits verifications running at once; a request
//!   waits for a permit only briefly and is then told to come back (503 / UNAVAILABLE), so a
//!   flood never builds an endless queue;
//! - a [`PasswordAttemptLimiter`] counts failed passwords per link in a fixed window of one
//!   minute; a link past its limit answers 429 / RESOURCE_EXHAUSTED, even to the right
//!   password, until the window passes. It tracks at most [`MAX_TRACKED_LINKS`] links, so its
//!   memory is bounded too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatvault_common::config::ServiceConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Error;

/// The window in which failed passwords of one link are counted.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);
/// The most links whose attempts are tracked at once. An entry is a token hash (64 bytes)
/// plus a few counters, so the table stays around 2 MiB; only links that exist and have a
/// password get an entry, and only while they had an attempt in the last window.
pub const MAX_TRACKED_LINKS: usize = 10_000;

/// How share-link passwords are checked (`CHATVAULT_STORAGE_SHARE_PASSWORD_…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePasswordSettings {
    /// Failed passwords a link accepts per minute before it answers 429
    /// (`_FAILURES_PER_MINUTE`, default 10).
    pub failures_per_minute: u32,
    /// Argon2 verifications running at once (`_CHECKS`, default: the number of cores).
    pub concurrent_checks: usize,
    /// How long a request waits for a verification slot before it is answered 503
    /// (`_WAIT_MS`, default 1000 ms).
    pub wait_for_check: Duration,
}

impl Default for SharePasswordSettings {
    fn default() -> Self {
        Self {
            failures_per_minute: 10,
            concurrent_checks: std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            wait_for_check: Duration::from_millis(1000),
        }
    }
}

impl SharePasswordSettings {
    /// Reads the settings; zero failures or zero checks is refused (no link could be opened).
    pub fn from_config(config: &ServiceConfig) -> Result<Self, Error> {
        let defaults = Self::default();
        let settings = Self {
            failures_per_minute: config.setting("SHARE_PASSWORD_FAILURES_PER_MINUTE", defaults.failures_per_minute)?,
            concurrent_checks: config.setting("SHARE_PASSWORD_CHECKS", defaults.concurrent_checks)?,
            wait_for_check: Duration::from_millis(config.setting("SHARE_PASSWORD_WAIT_MS", defaults.wait_for_check.as_millis() as u64)?),
        };
        if settings.failures_per_minute == 0 || settings.concurrent_checks == 0 {
            return Err(Error::InvalidArgument("CHATVAULT_STORAGE_SHARE_PASSWORD_FAILURES_PER_MINUTE and _CHECKS must be above 0".to_owned()));
        }
        Ok(settings)
    }
}

/// Why a password attempt may not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttemptRefused {
    /// The link had too many failed passwords in its window; `retry_after` is what is left
    /// of the window.
    #[error("too many wrong passwords for this share link")]
    TooManyFailures { retry_after: Duration },
    /// The table of tracked links is full of links with recent failures.
    #[error("too many share links are being guessed at; try again in a minute")]
    TooManyLinksTracked,
}

/// One link's attempts in its current window.
#[derive(Debug, Clone, Copy)]
struct AttemptWindow {
    started: Instant,
    failures: u32,
    /// Attempts started and not yet finished: they count against the limit, so a burst of
    /// parallel guesses cannot get past it before the first failures are recorded.
    in_flight: u32,
}

/// Counts failed passwords per link in fixed windows. Pure: the caller passes the time,
/// so the rules are tested without waiting.
#[derive(Debug)]
pub struct PasswordAttemptLimiter {
    max_failures: u32,
    window: Duration,
    max_links: usize,
    windows: HashMap<String, AttemptWindow>,
}

impl PasswordAttemptLimiter {
    /// Allows `max_failures` failed attempts per link per `window`, tracking at most
    /// `max_links` links.
    pub fn new(max_failures: u32, window: Duration, max_links: usize) -> Self {
        Self { max_failures, window, max_links, windows: HashMap::new() }
    }

    /// Starts an attempt on the link `key` at `now`; end it with [`Self::finish`].
    pub fn begin(&mut self, key: &str, now: Instant) -> Result<(), AttemptRefused> {
        if !self.windows.contains_key(key) && self.windows.len() >= self.max_links {
            self.forget_finished_windows(now);
            if self.windows.len() >= self.max_links {
                return Err(AttemptRefused::TooManyLinksTracked);
            }
        }
        let window = self.windows.entry(key.to_owned()).or_insert(AttemptWindow { started: now, failures: 0, in_flight: 0 });
        let elapsed = now.saturating_duration_since(window.started);
        if elapsed >= self.window {
            *window = AttemptWindow { started: now, failures: 0, in_flight: window.in_flight };
        }
        if window.failures + window.in_flight >= self.max_failures {
            let retry_after = self.window.saturating_sub(now.saturating_duration_since(window.started));
            return Err(AttemptRefused::TooManyFailures { retry_after });
        }
        window.in_flight += 1;
        Ok(())
    }

    /// Ends an attempt begun on `key`; `failed` when the password was wrong. A link with
    /// no failures and nothing in flight is forgotten at once.
    pub fn finish(&mut self, key: &str, failed: bool) {
        let Some(window) = self.windows.get_mut(key) else { return };
        debug_assert!(window.in_flight > 0, "finish without begin");
        window.in_flight = window.in_flight.saturating_sub(1);
        if failed {
            window.failures += 1;
        }
        if window.failures == 0 && window.in_flight == 0 {
            self.windows.remove(key);
        }
    }

    /// Returns how many links are tracked.
    pub fn tracked_links(&self) -> usize {
        self.windows.len()
    }

    fn forget_finished_windows(&mut self, now: Instant) {
        let window_length = self.window;
        self.windows.retain(|_, window| window.in_flight > 0 || now.saturating_duration_since(window.started) < window_length);
    }
}

/// The shared bounds of one storage service: verification permits and the limiter.
#[derive(Debug, Clone)]
pub struct SharePasswordGuard {
    settings: SharePasswordSettings,
    checks: Arc<Semaphore>,
    wait_for_check: Duration,
    limiter: Arc<Mutex<PasswordAttemptLimiter>>,
}

/// Why a password check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckRefused {
    /// The link is past its failures (or the limiter is full): answer 429.
    Limited(AttemptRefused),
    /// No verification slot came free in time: answer 503.
    Busy,
}

impl SharePasswordGuard {
    pub fn new(settings: SharePasswordSettings) -> Self {
        Self {
            settings,
            checks: Arc::new(Semaphore::new(settings.concurrent_checks)),
            wait_for_check: settings.wait_for_check,
            limiter: Arc::new(Mutex::new(PasswordAttemptLimiter::new(settings.failures_per_minute, ATTEMPT_WINDOW, MAX_TRACKED_LINKS))),
        }
    }

    /// Returns the settings the guard was made with.
    pub fn settings(&self) -> SharePasswordSettings {
        self.settings
    }

    /// Returns whether `password` opens the link whose token hashes to `token_sha256` and
    /// whose password is stored as the Argon2 PHC string `stored`. The verification runs on
    /// a blocking thread and holds its permit until it ends, even when the request that
    /// asked for it goes away, so the bound holds for the CPU and not only for requests.
    ///
    /// Errors: [`CheckRefused::Limited`] before any hashing when the link is past its
    /// failures, [`CheckRefused::Busy`] when no permit came within the wait.
    pub async fn check(&self, token_sha256: &str, password: &str, stored: &str) -> Result<bool, CheckRefused> {
        let attempt = self.begin_attempt(token_sha256)?;
        let permit: OwnedSemaphorePermit = match tokio::time::timeout(self.wait_for_check, Arc::clone(&self.checks).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; a timeout means every slot stayed busy.
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("share link password check refused: every verification slot is busy");
                return Err(CheckRefused::Busy);
            }
        };
        let (password, stored) = (password.to_owned(), stored.to_owned());
        let verification = tokio::task::spawn_blocking(move || {
            let matches = super::share_link::password_matches(&password, &stored);
            drop(permit);
            matches
        });
        let matches = verification.await.unwrap_or(false);
        attempt.finish(!matches);
        Ok(matches)
    }

    fn begin_attempt(&self, token_sha256: &str) -> Result<PasswordAttempt, CheckRefused> {
        let mut limiter = self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        limiter.begin(token_sha256, Instant::now()).map_err(CheckRefused::Limited)?;
        Ok(PasswordAttempt { limiter: Arc::clone(&self.limiter), key: token_sha256.to_owned(), finished: false })
    }
}

/// An attempt in flight; dropped without an outcome (the request went away, or no slot
/// came free) it counts as no failure.
#[derive(Debug)]
struct PasswordAttempt {
    limiter: Arc<Mutex<PasswordAttemptLimiter>>,
    key: String,
    finished: bool,
}

impl PasswordAttempt {
    fn finish(mut self, failed: bool) {
        self.finished = true;
        self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finish(&self.key, failed);
    }
}

impl Drop for PasswordAttempt {
    fn drop(&mut self) {
        if !self.finished {
            self.limiter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finish(&self.key, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_link_past_its_failures_refuses_every_attempt_until_the_window_passes() {
        let start = Instant::now();
        let mut limiter = PasswordAttemptLimiter::new(3, MINUTE, 100);
        for second in 0..3 {
            limiter.begin("link", start + Duration::from_secs(second)).expect("within the limit");
            limiter.finish("link", true);
        }
        let refused = limiter.begin("link", start + Duration::from_secs(20)).expect_err("past the limit");
        assert_eq!(refused, AttemptRefused::TooManyFailures { retry_after: Duration::from_secs(40) });
        assert!(limiter.begin("link", start + Duration::from_secs(59)).is_err(), "still inside the window");
        limiter.begin("other link", start + Duration::from_secs(20)).expect("other links are not affected");
        limiter.finish("other link", false);

        limiter.begin("link", start + MINUTE).expect("a new window");
        limiter.finish("link", false);
        assert_eq!(limiter.tracked_links(), 0, "a window without failures is forgotten");
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let start = Instant::now();
        let mut limiter = PasswordAttemptLimiter::new(2, MINUTE, 100);
        limiter.begin("link", start).expect("first");
        limiter.begin("link", start).expect("second");
        assert!(limiter.begin("link", start).is_err(), "two guesses are already running");
        limiter.finish("link", false);
        limiter.begin("link", start).expect("a slot came free");
    }

    #[test]
    fn successes_leave_no_trace_and_the_table_is_bounded() {
        let start = Instant::now();
        let mut limiter = PasswordAttemptLimiter::new(3, MINUTE, 2);
        limiter.begin("ok", start).expect("begins");
        limiter.finish("ok", false);
        assert_eq!(limiter.tracked_links(), 0);

        for link in ["a", "b"] {
            limiter.begin(link, start).expect("tracked");
            limiter.finish(link, true);
        }
        assert_eq!(limiter.begin("c", start + Duration::from_secs(1)), Err(AttemptRefused::TooManyLinksTracked));
        limiter.begin("c", start + MINUTE).expect("finished windows are forgotten when the table is full");
        assert!(limiter.tracked_links() <= 2);
    }

    #[tokio::test]
    async fn a_saturated_guard_answers_busy_after_its_wait() {
        let settings = SharePasswordSettings { failures_per_minute: 10, concurrent_checks: 1, wait_for_check: Duration::from_millis(20) };
        let guard = SharePasswordGuard::new(settings);
        let held = Arc::clone(&guard.checks).acquire_owned().await.expect("permit");
        assert_eq!(guard.check("link", "pw", "not a hash").await, Err(CheckRefused::Busy));
        drop(held);
        assert_eq!(guard.check("link", "pw", "not a hash").await, Ok(false), "a failed check");
        assert_eq!(guard.limiter.lock().expect("lock").tracked_links(), 1, "one failure recorded, none for the busy answer");
    }
}
