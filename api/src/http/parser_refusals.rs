//! problem+json for the requests hyper refuses by itself.
//!
//! hyper answers a request it cannot parse — too many or too large headers (431), an over-long
//! URI (414), an unreadable request line or header such as a path with raw bytes outside ASCII
//! (400) — on its own, with an empty body, before any service (so before every poem middleware)
//! sees a request. poem 3.1 exposes neither hyper's HTTP/1 options nor a hook for that body.
//! Raising hyper's limits and enforcing lower ones in a middleware would still leave hyper's
//! own answers beyond the raised limits and for every unparsable request line.
//!
//! So the connection is wrapped instead: [`ProblemAcceptor`] wraps each accepted stream in a
//! [`ProblemIo`], which recognises hyper's automatic answer among the bytes written and writes
//! a complete problem+json response (same status, `connection: close`) in its place. The
//! answer is recognised exactly: the status line `HTTP/1.1 400|414|431`, then only
//! `connection: close`, `content-length: 0` and `date`, at the end of a write. No response of
//! the application can look like that: every one carries `x-request-id` (the `Observe`
//! middleware) and every error of ours has a body.
//!
//! Why "at the end of a write" is enough: the stream says it does not write vectored, so hyper
//! buffers a connection's output in one flat buffer and hands each write the whole unwritten
//! rest of it; its answer, written last before it closes the connection, always arrives whole at
//! the end of one write, possibly after the rest of an earlier response (pipelined requests under
//! back-pressure). That rest is passed on first, untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use poem::http::StatusCode;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use uuid::Uuid;

use super::catch_all::problem_json;
use super::{ErrorCode, Problem};

/// hyper's answer is under 200 bytes; a write is searched no further back than this.
const LONGEST_ANSWER: usize = 256;

/// An acceptor whose connections answer hyper's parse refusals with problem+json
/// (see the module documentation).
pub struct ProblemAcceptor<A> {
    inner: A,
}

impl<A> ProblemAcceptor<A> {
    /// Wraps the connections `inner` accepts.
    pub fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl<A: Acceptor> Acceptor for ProblemAcceptor<A> {
    type Io = ProblemIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (stream, local, remote, scheme) = self.inner.accept().await?;
        Ok((ProblemIo::new(stream), local, remote, scheme))
    }
}

/// A connection that writes problem+json in place of hyper's automatic answer.
pub struct ProblemIo<S> {
    inner: S,
    /// The problem response being written in place of hyper's answer, if one is.
    replacement: Option<Replacement>,
}

/// A problem response partly written, and what it stands for.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// How many bytes of the caller's buffer (hyper's answer) it replaces: reported written
    /// only once all of `bytes` are.
    replaces: usize,
}

impl<S> ProblemIo<S> {
    /// Wraps one connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            replacement: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> ProblemIo<S> {
    /// Writes what is left of the replacement, if any (it stays until `poll_write` reports it).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(replacement) = &mut self.replacement else {
            return Poll::Ready(Ok(()));
        };
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            replacement.written += written;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none() {
            match automatic_answer(buf) {
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                // What precedes the answer goes out as it is, in writes of its own.
                Some(answer) if answer.start > 0 => {
                    return Pin::new(&mut this.inner).poll_write(cx, &buf[..answer.start]);
                }
                Some(answer) => {
                    this.replacement = Some(Replacement {
                        bytes: problem_response(&answer),
                        written: 0,
                        replaces: buf.len(),
                    });
                }
            }
        }
        ready!(this.poll_drain(cx))?;
        let replaces = this
            .replacement
            .take()
            .map_or(0, |replacement| replacement.replaces);
        Poll::Ready(Ok(replaces.min(buf.len())))
    }

    /// Joins the slices so an answer split across them is recognised too (hyper does not
    /// write vectored here, since [`is_write_vectored`](Self::is_write_vectored) says no).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let joined: Vec<u8> = bufs.iter().flat_map(|slice| slice.iter().copied()).collect();
        self.poll_write(cx, &joined)
    }

    /// No: hyper then writes its whole output through one flat buffer (module documentation).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper's automatic answer, found at the end of a write.
#[derive(Debug)]
struct AutomaticAnswer<'a> {
    /// Where in the write it starts.
    start: usize,
    status: StatusCode,
    /// hyper's `date` header value, kept in the problem response.
    date: Option<&'a str>,
}

/// Finds hyper's automatic answer at the end of `written`, if it is there.
fn automatic_answer(written: &[u8]) -> Option<AutomaticAnswer<'_>> {
    let head = written.strip_suffix(b"\r\n\r\n")?;
    let window = head.len().saturating_sub(LONGEST_ANSWER);
    let start = window
        + head[window..]
            .windows(b"HTTP/1.1 ".len())
            .rposition(|candidate| candidate == b"HTTP/1.1 ")?;
    let mut lines = std::str::from_utf8(&head[start..]).ok()?.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 ")?;
    let (status, _reason) = status.split_once(' ').unwrap_or((status, ""));
    let status = match status {
        "400" => StatusCode::BAD_REQUEST,
        "414" => StatusCode::URI_TOO_LONG,
        "431" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let (mut closes, mut empty, mut date) = (false, false, None);
    for line in lines {
        match line.split_once(": ")? {
            ("connection", "close") => closes = true,
            ("content-length", "0") => empty = true,
            ("date", value) => date = Some(value),
            _ => return None,
        }
    }
    (closes && empty).then_some(AutomaticAnswer { start, status, date })
}

/// The problem response for hyper's `answer`, with a request id of its own (logged, since
/// this request reaches no middleware that would log it).
fn problem_response(answer: &AutomaticAnswer<'_>) -> Vec<u8> {
    let (code, detail) = match answer.status {
        StatusCode::URI_TOO_LONG => (
            ErrorCode::UriTooLong,
            "the request URI is longer than the 64 KiB the server reads",
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            ErrorCode::HeadersTooLarge,
            "the request has more than 100 headers, or its head is over about 400 KiB",
        ),
        _ => (
            ErrorCode::BadRequest,
            "the request line or a header cannot be read: an invalid method, HTTP version or \
             header, or a path with raw bytes outside ASCII (percent-encode them)",
        ),
    };
    let request_id = Uuid::now_v7();
    tracing::info!(
        request_id = %request_id,
        status = answer.status.as_u16(),
        code = code.as_str(),
        "request refused before routing: {detail}"
    );
    let body = problem_json(&Problem::new(answer.status, code, detail)).to_string();
    let date = answer
        .date
        .map(|date| format!("date: {date}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {length}\r\n\
         connection: close\r\n{date}x-request-id: {request_id}\r\n\r\n{body}",
        status = answer.status,
        length = body.len(),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::future::poll_fn;

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// hyper's answer to too many headers, as it writes it.
    const TOO_MANY_HEADERS: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
        connection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\n";

    /// An ordinary response of the application, whole.
    const ORDINARY: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
        x-request-id: 0190-1\r\ncontent-length: 2\r\ndate: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\nok";

    async fn read_all(mut peer: DuplexStream) -> Vec<u8> {
        let mut read = Vec::new();
        peer.read_to_end(&mut read).await.unwrap();
        read
    }

    /// Writes `pieces` (each with `write_all`) through a `ProblemIo` on a pipe that takes
    /// `capacity` bytes at a time, shuts it down and tells what came out the other end.
    async fn through(capacity: usize, pieces: &[&[u8]]) -> Vec<u8> {
        let (stream, peer) = duplex(capacity);
        let reader = tokio::spawn(read_all(peer));
        let mut io = ProblemIo::new(stream);
        for piece in pieces {
            io.write_all(piece).await.unwrap();
        }
        io.shutdown().await.unwrap();
        reader.await.unwrap()
    }

    /// Asserts `written` is one complete problem response with `status`, `code` and hyper's date.
    fn assert_problem(written: &[u8], status: &str, code: &str) {
        let text = std::str::from_utf8(written).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next().unwrap(), format!("HTTP/1.1 {status}"));
        let headers: Vec<(&str, &str)> = lines.map(|line| line.split_once(": ").unwrap()).collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(header, _)| *header == name)
                .map(|(_, value)| *value)
        };
        assert_eq!(header("content-type"), Some("application/problem+json"), "{text}");
        assert_eq!(
            header("content-length"),
            Some(body.len().to_string().as_str()),
            "{text}"
        );
        assert_eq!(header("connection"), Some("close"), "{text}");
        assert_eq!(header("date"), Some("Thu, 03 Dec 2026 17:04:14 GMT"), "{text}");
        assert!(header("x-request-id").is_some(), "{text}");
        let problem: Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], code);
        assert_eq!(problem["type"], format!("urn:agentry:problem:{code}"));
        assert_eq!(problem["status"].to_string(), status[..3]);
        assert!(
            problem["title"].is_string() && problem["detail"].is_string(),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn each_automatic_answer_written_whole_becomes_its_problem() {
        let cases = [
            (
                TOO_MANY_HEADERS.to_vec(),
                "431 Request Header Fields Too Large",
                "headers_too_large",
            ),
            (
                b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\
                  date: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\n"
                    .to_vec(),
                "414 URI Too Long",
                "uri_too_long",
            ),
            (
                b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
                  date: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\n"
                    .to_vec(),
                "400 Bad Request",
                "bad_request",
            ),
        ];
        for (answer, status, code) in cases {
            assert_problem(&through(64 * 1024, &[&answer]).await, status, code);
        }
    }

    #[tokio::test]
    async fn a_pipe_taking_a_few_bytes_at_a_time_gets_the_whole_problem_after_what_preceded_it() {
        // hyper hands the rest of an earlier response and its answer to one write.
        let written = through(5, &[&[ORDINARY, TOO_MANY_HEADERS].concat()]).await;
        let (before, problem) = written.split_at(ORDINARY.len());
        assert_eq!(before, ORDINARY);
        assert_problem(
            problem,
            "431 Request Header Fields Too Large",
            "headers_too_large",
        );
    }

    #[tokio::test]
    async fn an_answer_split_across_vectored_slices_is_recognised_and_reported_written_whole() {
        let (stream, peer) = duplex(64 * 1024);
        let mut io = ProblemIo::new(stream);
        let (first, second) = TOO_MANY_HEADERS.split_at(20);
        let slices = [io::IoSlice::new(first), io::IoSlice::new(second)];
        let reported = io.write_vectored(&slices).await.unwrap();
        assert_eq!(reported, TOO_MANY_HEADERS.len());
        assert!(!io.is_write_vectored());
        io.shutdown().await.unwrap();
        assert_problem(
            &read_all(peer).await,
            "431 Request Header Fields Too Large",
            "headers_too_large",
        );
    }

    #[tokio::test]
    async fn flush_drains_a_pending_problem_and_the_answer_is_then_reported_written_once() {
        let (stream, peer) = duplex(8);
        let mut io = ProblemIo::new(stream);
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_write(cx, TOO_MANY_HEADERS))).await;
        assert!(
            first.is_pending(),
            "the pipe holds 8 bytes: the problem cannot be written yet"
        );
        let reader = tokio::spawn(read_all(peer));
        io.flush().await.unwrap();
        let drained = io
            .replacement
            .as_ref()
            .is_some_and(|replacement| replacement.written == replacement.bytes.len());
        assert!(drained, "flush writes the whole problem");
        assert_eq!(io.write(TOO_MANY_HEADERS).await.unwrap(), TOO_MANY_HEADERS.len());
        io.shutdown().await.unwrap();
        let written = reader.await.unwrap();
        assert_problem(
            &written,
            "431 Request Header Fields Too Large",
            "headers_too_large",
        );
    }

    #[tokio::test]
    async fn responses_of_the_application_pass_byte_identical() {
        let ours = [
            ORDINARY.to_vec(),
            // An error of ours: a body, and `x-request-id`.
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\n\
              x-request-id: 0190-2\r\ncontent-length: 2\r\ndate: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\n{}"
                .to_vec(),
            // Even an empty 400 that closes: it carries `x-request-id`.
            b"HTTP/1.1 400 Bad Request\r\nx-request-id: 0190-3\r\nconnection: close\r\n\
              content-length: 0\r\ndate: Thu, 03 Dec 2026 17:04:14 GMT\r\n\r\n"
                .to_vec(),
            // A head written on its own, and a body that ends like a head.
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-request-id: 0190-4\r\n\r\n".to_vec(),
            b"\r\n\r\n".to_vec(),
        ];
        let pieces: Vec<&[u8]> = ours.iter().map(Vec::as_slice).collect();
        for capacity in [3, 64 * 1024] {
            assert_eq!(
                through(capacity, &pieces).await,
                ours.concat(),
                "pipe of {capacity} bytes"
            );
        }
    }

    #[test]
    fn only_hypers_exact_answer_is_recognised() {
        assert!(automatic_answer(TOO_MANY_HEADERS).is_some_and(|answer| answer.start == 0));
        let not_answers: [&[u8]; 4] = [
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
              content-length: 0\r\nx-request-id: 1\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
              content-length: 0\r\n",
        ];
        for written in not_answers {
            assert!(
                automatic_answer(written).is_none(),
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
