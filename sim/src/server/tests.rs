//! Unit tests of the HTTP plumbing: bearer tokens, gzip, the host of links.

use axum::http::{HeaderMap, HeaderValue, header};

use super::http::{accepts_gzip, base_url, bearer_token};

#[test]
fn bearer_tokens_and_gzip_are_recognised() {
    let mut headers = HeaderMap::new();
    assert_eq!(bearer_token(&headers), None);
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
    assert_eq!(bearer_token(&headers), None);
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
    assert_eq!(bearer_token(&headers), None);
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("bearer t0k3n"),
    );
    assert_eq!(bearer_token(&headers), Some("t0k3n"));

    assert!(!accepts_gzip(&headers));
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("br, GZIP"),
    );
    assert!(accepts_gzip(&headers));
}

#[test]
fn links_use_a_sane_host_only() {
    let mut headers = HeaderMap::new();
    assert_eq!(base_url(&headers), "http://localhost");
    headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
    assert_eq!(base_url(&headers), "http://127.0.0.1:8080");
    headers.insert(header::HOST, HeaderValue::from_static("evil.com/<script>"));
    assert_eq!(base_url(&headers), "http://localhost");
}
