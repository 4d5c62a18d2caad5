//! Failed log-ins of usernames no account holds, counted like those of real accounts, so the
//! answers do not tell which names exist: the same growing delay, and after the same number of
//! failures the same "locked until" refusal for the same time.
//!
//! Kept in memory, bounded: at most `capacity` names; when full, names not seen for a lockout
//! period are forgotten first, and a name that still does not fit is answered as a first
//! failure (a spray of random names cannot grow memory). Each users instance counts alone.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// The failures of one unknown name.
#[derive(Debug, Clone, Copy)]
struct Failures {
    consecutive: u32,
    locked_until: Option<DateTime<Utc>>,
    last_seen: DateTime<Utc>,
}

/// Counts failed log-ins of unknown names (lowercased, as usernames compare).
#[derive(Debug)]
pub struct UnknownNameFailures {
    names: Mutex<HashMap<String, Failures>>,
    capacity: usize,
}

impl UnknownNameFailures {
    /// Returns a counter remembering at most `capacity` names.
    pub fn new(capacity: usize) -> Self {
        Self { names: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Returns when `name`'s lock ends, if it is locked at `now`.
    pub fn locked_until(&self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        names.get(&name.to_lowercase()).and_then(|failures| failures.locked_until).filter(|until| *until > now)
    }

    /// Records a failed log-in of `name` at `now`; returns the consecutive failures (for the
    /// delay) and, when this failure reaches `threshold`, the end of the lock it starts.
    pub fn record_failure(&self, name: &str, now: DateTime<Utc>, threshold: u32, lockout: Duration) -> (u32, Option<DateTime<Utc>>) {
        let key = name.to_lowercase();
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !names.contains_key(&key) && names.len() >= self.capacity {
            names.retain(|_, failures| failures.last_seen + lockout > now || failures.locked_until.is_some_and(|until| until > now));
            if names.len() >= self.capacity {
                return (1, None);
            }
        }
        let failures = names.entry(key).or_insert(Failures { consecutive: 0, locked_until: None, last_seen: now });
        failures.consecutive += 1;
        failures.last_seen = now;
        if failures.consecutive >= threshold {
            // As for an account: the lock starts and the count begins again.
            let until = now + lockout;
            failures.consecutive = 0;
            failures.locked_until = Some(until);
            return (threshold, Some(until));
        }
        (failures.consecutive, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_is_locked_after_the_threshold_like_an_account() {
        let counter = UnknownNameFailures::new(10);
        let now = Utc::now();
        let lockout = Duration::minutes(15);
        assert_eq!(counter.record_failure("Nobody", now, 3, lockout), (1, None));
        assert_eq!(counter.record_failure("nobody", now, 3, lockout), (2, None), "names compare without case");
        let (failures, until) = counter.record_failure("NOBODY", now, 3, lockout);
        assert_eq!((failures, until), (3, Some(now + lockout)));
        assert_eq!(counter.locked_until("nobody", now + Duration::minutes(1)), Some(now + lockout));
        assert_eq!(counter.locked_until("nobody", now + lockout + Duration::seconds(1)), None);
    }

    #[test]
    fn a_spray_of_names_cannot_grow_memory_past_the_capacity() {
        let counter = UnknownNameFailures::new(100);
        let now = Utc::now();
        for index in 0..1_000 {
            counter.record_failure(&format!("name{index}"), now, 5, Duration::minutes(15));
        }
        assert_eq!(counter.names.lock().expect("lock").len(), 100);
        // Once the remembered names are a lockout period old, new ones fit again.
        counter.record_failure("late", now + Duration::minutes(16), 5, Duration::minutes(15));
        assert!(counter.names.lock().expect("lock").contains_key("late"));
    }
}
