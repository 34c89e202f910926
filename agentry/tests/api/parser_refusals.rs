//! "Requests refused before any route (too many or too large headers, an over-long URI, raw
//! bytes outside ASCII in the path) are answered with problem+json like every other error,
//! and ordinary requests, keep-alive included, are unaffected."
//!
//! Spoken over raw TCP: no HTTP client sends such requests, and the point is the exact bytes
//! the server answers.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// A response as read off the wire.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    /// Names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One connection to the application, reading responses one after another.
struct Connection {
    stream: TcpStream,
    /// Read but not yet part of a response returned.
    unread: Vec<u8>,
}

impl Connection {
    async fn open(app: &TestApp) -> Self {
        let address = app.address.trim_start_matches("http://");
        Self {
            stream: TcpStream::connect(address).await.unwrap(),
            unread: Vec::new(),
        }
    }

    /// Sends `request` and reads one response. A refused request may be answered (and the
    /// connection closed) before all of it is sent: a failed write is no failure here.
    async fn exchange(&mut self, request: &[u8]) -> RawResponse {
        let _ = self.stream.write_all(request).await;
        tokio::time::timeout(Duration::from_secs(10), self.read_response())
            .await
            .expect("a response within 10 s")
    }

    async fn read_response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(at) = find(&self.unread, b"\r\n\r\n") {
                break at + 4;
            }
            self.read_more().await;
        };
        let head = String::from_utf8(self.unread[..head_end].to_vec()).expect("an ASCII head");
        let mut lines = head.trim_end().split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("a status line, not {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line");
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.parse().unwrap())
            .unwrap_or_else(|| panic!("a content-length in {head:?}"));
        while self.unread.len() < head_end + length {
            self.read_more().await;
        }
        let body = self.unread[head_end..head_end + length].to_vec();
        self.unread.drain(..head_end + length);
        RawResponse {
            status,
            headers,
            body,
        }
    }

    async fn read_more(&mut self) {
        let mut chunk = [0_u8; 8192];
        let read = self.stream.read(&mut chunk).await.unwrap_or_else(|error| {
            panic!(
                "reading failed ({error}) after {:?}",
                String::from_utf8_lossy(&self.unread)
            )
        });
        assert!(
            read > 0,
            "the connection closed after {:?}",
            String::from_utf8_lossy(&self.unread)
        );
        self.unread.extend_from_slice(&chunk[..read]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn get(target: &[u8], extra_headers: &[u8]) -> Vec<u8> {
    [
        b"GET ".as_slice(),
        target,
        b" HTTP/1.1\r\nhost: localhost\r\n",
        extra_headers,
        b"\r\n",
    ]
    .concat()
}

/// Asserts `response` is a complete problem+json answer with `status` and `code` that closes
/// the connection.
fn assert_problem(case: &str, response: &RawResponse, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, status, "{case}: {response:?} {body}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{case}: {response:?} {body}"
    );
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "{case}: {response:?}"
    );
    assert!(response.header("x-request-id").is_some(), "{case}: {response:?}");
    let problem: Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("{case}: the body is not JSON ({error}): {body:?}"));
    assert_eq!(problem["code"], code, "{case}: {problem}");
    assert_eq!(problem["status"], status, "{case}: {problem}");
    assert_eq!(
        problem["type"],
        format!("urn:agentry:problem:{code}"),
        "{case}: {problem}"
    );
    for field in ["title", "detail"] {
        assert!(
            problem[field].as_str().is_some_and(|text| !text.is_empty()),
            "{case}: {problem}"
        );
    }
}

#[tokio::test]
async fn requests_refused_before_routing_are_answered_with_problems() {
    let app = TestApp::spawn().await;
    let many_headers: Vec<u8> = (0..150)
        .flat_map(|index| format!("x-filler-{index}: value\r\n").into_bytes())
        .collect();
    let huge_header = format!("x-huge: {}\r\n", "a".repeat(500 * 1024)).into_bytes();
    let long_uri = format!("/v1/{}", "a".repeat(70 * 1024)).into_bytes();
    let cases: [(&str, Vec<u8>, u16, &str); 4] = [
        (
            "150 headers",
            get(b"/healthz", &many_headers),
            431,
            "headers_too_large",
        ),
        (
            "a 500 KB header",
            get(b"/healthz", &huge_header),
            431,
            "headers_too_large",
        ),
        ("a 70 KB URI", get(&long_uri, b""), 414, "uri_too_long"),
        (
            "raw invalid UTF-8 in the path",
            get(b"/v1/\xff\xfe", b""),
            400,
            "bad_request",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = Connection::open(&app).await.exchange(&request).await;
        assert_problem(case, &response, status, code);
    }

    let healthy = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200, "the server still serves");
    app.cleanup().await;
}

#[tokio::test]
async fn keep_alive_responses_pass_unchanged_and_a_later_refusal_is_a_problem() {
    let app = TestApp::spawn().await;
    let mut connection = Connection::open(&app).await;
    for round in 0..3 {
        let response = connection.exchange(&get(b"/healthz", b"")).await;
        assert_eq!(response.status, 200, "round {round}: {response:?}");
        assert_ne!(response.header("connection"), Some("close"), "round {round}");
        assert!(response.header("x-request-id").is_some(), "round {round}");
    }
    let missing = connection.exchange(&get(b"/v1/nope", b"")).await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_ne!(missing.header("connection"), Some("close"));
    let missing_problem: Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(missing_problem["code"], "not_found");

    let many_headers: Vec<u8> = (0..150)
        .flat_map(|index| format!("x-filler-{index}: value\r\n").into_bytes())
        .collect();
    let refused = connection.exchange(&get(b"/healthz", &many_headers)).await;
    assert_problem(
        "150 headers after keep-alive requests",
        &refused,
        431,
        "headers_too_large",
    );
    app.cleanup().await;
}
