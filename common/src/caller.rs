//! Who is calling. Until authentication (JWT) arrives, the caller is the value of the
//! gRPC metadata or HTTP header `x-chatvault-user` (default `local`); these two functions
//! are the one place the JWT interceptor will replace.

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
}
