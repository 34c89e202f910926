//! A minimal, real SMTP server for tests: it listens on an ephemeral port, speaks enough of
//! RFC 5321 for a client such as lettre (greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT), accepts every message and hands each one to the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The address of `MAIL FROM:<…>`.
    pub mail_from: String,
    /// The addresses of every `RCPT TO:<…>`.
    pub rcpt_to: Vec<String>,
    /// Everything between `DATA` and the lone `.`, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

impl ReceivedMail {
    /// The header block (before the first empty line).
    pub fn headers(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or(self.data.as_str(), |(headers, _)| headers)
    }

    /// The value of header `name` (case-insensitive), with folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let unfolded = self.headers().replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body as text: quoted-printable decoded when the message says it is encoded so.
    pub fn body_text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if encoding == "quoted-printable" {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        }
    }
}

/// The `token` query parameter of the first link in `mail` whose path is `path` (such as
/// `/verify-email`), after undoing the transfer encoding.
pub fn link_token(mail: &ReceivedMail, path: &str) -> String {
    let body = mail.body_text();
    let marker = format!("{path}?token=");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("the mail holds a link {marker}…: {body}"));
    body[start + marker.len()..]
        .split(char::is_whitespace)
        .next()
        .unwrap()
        .to_owned()
}

/// Quoted-printable (RFC 2045 §6.7): `=` at a line end is a soft break, `=XX` is a byte.
pub fn decode_quoted_printable(encoded: &str) -> String {
    let joined = encoded.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && let Some(hex) = joined.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The server: runs until dropped.
pub struct SmtpServer {
    pub port: u16,
    received: mpsc::UnboundedReceiver<ReceivedMail>,
    /// Mail received while a test waited for another message, in arrival order.
    set_aside: VecDeque<ReceivedMail>,
    acceptor: JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on `127.0.0.1:0` and serves every connection in the background.
    pub async fn start() -> Self {
        Self::start_with_greeting_delay(Duration::ZERO).await
    }

    /// Like [`start`](Self::start), but every session waits `delay` before greeting: a slow
    /// mail server, to show what does and does not wait for it.
    pub async fn start_with_greeting_delay(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the SMTP server");
        let port = listener.local_addr().expect("the SMTP server's address").port();
        let (sender, received) = mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            // Dropping the set (when the acceptor is aborted) ends every connection too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        connections.spawn(serve_connection(stream, sender.clone(), delay));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self {
            port,
            received,
            set_aside: VecDeque::new(),
            acceptor,
        }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, which is what lettre speaks for `smtp://`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next message, or `None` if none arrives within `within`.
    pub async fn next_mail(&mut self, within: Duration) -> Option<ReceivedMail> {
        if let Some(mail) = self.set_aside.pop_front() {
            return Some(mail);
        }
        tokio::time::timeout(within, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// The first message (in arrival order) to `to` whose subject contains `subject`, or `None`
    /// if none arrives within `within`. Other mail is kept for later calls: a test picks the
    /// invitation out of the verification mail that registrations send meanwhile.
    pub async fn next_mail_to(&mut self, to: &str, subject: &str, within: Duration) -> Option<ReceivedMail> {
        let matches = |mail: &ReceivedMail| {
            mail.rcpt_to.iter().any(|rcpt| rcpt.eq_ignore_ascii_case(to))
                && mail.header("Subject").is_some_and(|s| s.contains(subject))
        };
        if let Some(index) = self.set_aside.iter().position(matches) {
            return self.set_aside.remove(index);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mail = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .ok()
                .flatten()?;
            if matches(&mail) {
                return Some(mail);
            }
            self.set_aside.push_back(mail);
        }
    }

    /// [`next_mail_to`](Self::next_mail_to), failing the test if none arrives within 10 s.
    pub async fn expect_mail_to(&mut self, to: &str, subject: &str) -> ReceivedMail {
        self.next_mail_to(to, subject, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("a mail to {to} about {subject:?} within 10 s"))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// One SMTP session. Any I/O error just ends it.
async fn serve_connection(
    stream: TcpStream,
    delivered: mpsc::UnboundedSender<ReceivedMail>,
    delay: Duration,
) {
    tokio::time::sleep(delay).await;
    let _ = session(stream, delivered).await;
}

async fn session(stream: TcpStream, delivered: mpsc::UnboundedSender<ReceivedMail>) -> std::io::Result<()> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    writer.write_all(b"220 localhost ESMTP test server\r\n").await?;

    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-localhost greets you\r\n250-8BITMIME\r\n250 OK\r\n",
            "HELO" => b"250 localhost\r\n",
            "MAIL" => {
                mail_from = angle_address(command);
                rcpt_to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                rcpt_to.push(angle_address(command));
                b"250 OK\r\n"
            }
            "DATA" => {
                writer
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut reader).await?;
                let _ = delivered.send(ReceivedMail {
                    mail_from: std::mem::take(&mut mail_from),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                b"250 OK: queued\r\n"
            }
            "RSET" => {
                mail_from.clear();
                rcpt_to.clear();
                b"250 OK\r\n"
            }
            "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                writer.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        writer.write_all(reply).await?;
    }
}

/// The message after `DATA`, up to the line holding only `.`; leading dots are unstuffed.
async fn read_data(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(data);
        }
        data.push_str(content.strip_prefix('.').unwrap_or(content));
        data.push_str("\r\n");
    }
}

/// `MAIL FROM:<a@b> SIZE=…` → `a@b`.
fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}

#[test]
fn quoted_printable_soft_breaks_and_escapes_are_decoded() {
    assert_eq!(
        decode_quoted_printable("https://x/reset?token=3D01ab.cd=\r\nef\r\nnext"),
        "https://x/reset?token=01ab.cdef\r\nnext"
    );
}
