//! Who is calling. The caller is the value of the gRPC metadata or HTTP header
//! `x-chatvault-user` (default `local`), which [`crate::auth`]'s layer overwrites with the
//! verified token's username (with auth off the header is trusted).
//!
//! The layer also runs each request as its *acting caller* (a task-local, [`act_as`]), so
//! every event published while the request runs carries that caller in its `actor` header
//! ([`crate::envelope::Envelope::to_headers`]) without threading it through every call.
//! Work that outlives the request in a task of its own (an import) re-enters [`act_as`];
//! background work of a service acts as [`system_actor`].

use std::future::Future;

/// The header naming the caller.
pub const CALLER_HEADER: &str = "x-chatvault-user";
/// The caller when no header is given.
pub const DEFAULT_CALLER: &str = "local";

/// Returns the caller of a gRPC request.
pub fn caller_of_metadata(metadata: &tonic::metadata::MetadataMap) -> String {
    caller_of_value(metadata.get(CALLER_HEADER).and_then(|value| value.to_str().ok()))
}

/// Returns the caller of an HTTP request.
pub fn caller_of_headers(headers: &axum::http::HeaderMap) -> String {
    caller_of_value(headers.get(CALLER_HEADER).and_then(|value| value.to_str().ok()))
}

tokio::task_local! {
    static ACTING_CALLER: String;
}

/// Returns `work` running as `actor`: events it publishes name `actor` as their cause.
pub fn act_as<F: Future>(actor: String, work: F) -> impl Future<Output = F::Output> {
    ACTING_CALLER.scope(actor, work)
}

/// Returns the caller the current task acts for, when it runs inside [`act_as`].
pub fn acting_caller() -> Option<String> {
    ACTING_CALLER.try_with(Clone::clone).ok()
}

/// Returns the actor of work a service does on its own (rebalancing, purging): `system:<service>`.
pub fn system_actor(service: &str) -> String {
    format!("system:{service}")
}

fn caller_of_value(value: Option<&str>) -> String {
    match value.map(str::trim) {
        Some(name) if !name.is_empty() && name.len() <= 200 => name.to_owned(),
        _ => DEFAULT_CALLER.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_blank_headers_mean_the_local_user() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert_eq!(caller_of_metadata(&metadata), DEFAULT_CALLER);
        metadata.insert(CALLER_HEADER, "alice".parse().expect("ascii"));
        assert_eq!(caller_of_metadata(&metadata), "alice");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(CALLER_HEADER, " ".parse().expect("ascii"));
        assert_eq!(caller_of_headers(&headers), DEFAULT_CALLER);
    }

    #[tokio::test]
    async fn the_acting_caller_is_known_only_inside_act_as() {
        assert_eq!(acting_caller(), None);
        let inside = act_as("alice".to_owned(), async {
            tokio::task::yield_now().await;
            acting_caller()
        })
        .await;
        assert_eq!(inside.as_deref(), Some("alice"));
        assert_eq!(acting_caller(), None);
        assert_eq!(system_actor("storage"), "system:storage");
    }
}
