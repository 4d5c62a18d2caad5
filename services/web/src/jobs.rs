//! Long admin operations started from a page (creating or verifying a backup): they run
//! in the background, and their page shows their progress until they end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use serde::Serialize;

/// One step of a running operation, as the backup service reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobProgress {
    pub phase: String,
    pub item: String,
    pub done: u64,
    pub total: u64,
    pub unit: String,
}

/// How an operation is doing.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: String,
    /// `Creating a backup`, `Verifying backup …`.
    pub title: String,
    pub started_by: String,
    pub progress: JobProgress,
    /// Set once it ended: `Ok(summary)` or `Err(what went wrong)`.
    pub outcome: Option<Result<String, String>>,
}

/// What an operation's stream yields.
#[derive(Debug)]
pub enum JobUpdate {
    Progress(JobProgress),
    Done(String),
}

/// The operations of this web instance (kept in memory: they end when the service stops,
/// as the gRPC call behind them does).
#[derive(Clone, Debug, Default)]
pub struct Jobs(Arc<Mutex<HashMap<String, Job>>>);

/// The most operations kept; the oldest finished ones are forgotten first.
const KEPT_JOBS: usize = 100;

impl Jobs {
    /// Starts following `updates` in the background; returns the operation's id.
    pub fn start<S>(&self, title: String, started_by: String, updates: S) -> String
    where
        S: Stream<Item = Result<JobUpdate, tonic::Status>> + Send + 'static,
    {
        let id = uuid::Uuid::now_v7().to_string();
        let job = Job { id: id.clone(), title, started_by, progress: JobProgress::default(), outcome: None };
        {
            let mut jobs = self.lock();
            if jobs.len() >= KEPT_JOBS {
                if let Some(oldest) = jobs.values().filter(|job| job.outcome.is_some()).map(|job| job.id.clone()).min() {
                    jobs.remove(&oldest);
                }
            }
            jobs.insert(id.clone(), job);
        }
        let jobs = self.clone();
        let job_id = id.clone();
        tokio::spawn(async move {
            let mut updates = std::pin::pin!(updates);
            let mut outcome = Err("the operation ended without a result".to_owned());
            while let Some(update) = updates.next().await {
                match update {
                    Ok(JobUpdate::Progress(progress)) => jobs.update(&job_id, |job| job.progress = progress),
                    Ok(JobUpdate::Done(summary)) => outcome = Ok(summary),
                    Err(status) => {
                        outcome = Err(status.message().to_owned());
                        break;
                    }
                }
            }
            jobs.update(&job_id, |job| job.outcome = Some(outcome));
        });
        id
    }

    /// Returns the operation `id` when `viewer` started it (admins see every one).
    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().get(id).cloned()
    }

    /// Operations newest first.
    pub fn list(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.lock().values().cloned().collect();
        jobs.sort_by(|a, b| b.id.cmp(&a.id));
        jobs
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().get_mut(id) {
            change(job);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
