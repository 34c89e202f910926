//! One subscriber of a run's stream over WebSocket, as a well-behaved client: it reads every
//! frame, checks that ids grow by one (none lost, none repeated), measures each chunk's latency
//! from the time the LLM wrote into it, and when it is cut off (close 1013) or the connection
//! breaks it resumes after the last id it saw (`?after=`), as the protocol tells it to.
//!
//! Nothing is hidden: every cut-off, break, hole, repeat and failed connection is counted in
//! the phase's [`Tally`] and reported.

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::llm::now_micros;
use crate::target::Target;

/// Connection attempts (first and after each cut-off or break) before a subscriber gives up.
const CONNECT_ATTEMPTS: u32 = 20;
/// Resumptions (after cut-offs and breaks) one subscriber makes before it gives up.
const MAX_RESUMES: u32 = 50;
/// How long a closed connection may take to finish closing.
const CLOSING_WAIT: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every subscriber of a phase saw, together.
pub struct Tally {
    /// Raised while the phase measures: only then are latencies kept.
    pub measuring: AtomicBool,
    /// `message.delta` frames received (each one delivered delta).
    pub deltas: AtomicU64,
    /// Every frame received.
    pub frames: AtomicU64,
    /// Closes with 1013: the server cut a subscriber off for falling behind.
    pub cut_offs: AtomicU64,
    /// Connections that ended without a close frame before the run's end.
    pub breaks: AtomicU64,
    /// Closes with another code than 1000 or 1013.
    pub other_closes: AtomicU64,
    /// Ids missing between two frames a subscriber received.
    pub ids_lost: AtomicU64,
    /// Frames whose id a subscriber had already received.
    pub ids_repeated: AtomicU64,
    /// Handshakes that failed (each was retried).
    pub connect_failures: AtomicU64,
    /// Subscribers that gave up before the run's end.
    pub gave_up: AtomicU64,
    /// Frames that were not the event JSON, or deltas without a time in their text.
    pub unreadable: AtomicU64,
    /// Runs that ended otherwise than `run.completed` (seen by their first subscriber).
    pub runs_not_completed: AtomicU64,
    /// Token latencies in µs (chunk written by the LLM → frame read here), measured frames.
    pub latency: Mutex<Histogram<u64>>,
    /// The first unexpected close reason, for the report.
    pub first_odd_close: Mutex<Option<String>>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            measuring: AtomicBool::new(false),
            deltas: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            cut_offs: AtomicU64::new(0),
            breaks: AtomicU64::new(0),
            other_closes: AtomicU64::new(0),
            ids_lost: AtomicU64::new(0),
            ids_repeated: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            gave_up: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            runs_not_completed: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()),
            first_odd_close: Mutex::new(None),
        }
    }
}

impl Tally {
    /// The problems seen, as one line (`none` when there were none).
    pub fn problems(&self) -> String {
        let counts = [
            ("cut off (1013)", &self.cut_offs),
            ("connections broken", &self.breaks),
            ("other closes", &self.other_closes),
            ("ids lost", &self.ids_lost),
            ("ids repeated", &self.ids_repeated),
            ("failed handshakes", &self.connect_failures),
            ("subscribers gave up", &self.gave_up),
            ("unreadable frames", &self.unreadable),
            ("runs not completed", &self.runs_not_completed),
        ];
        let seen: Vec<String> = counts
            .iter()
            .map(|(name, count)| (name, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| format!("{count} {name}"))
            .collect();
        let mut line = if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(", ")
        };
        if let Some(reason) = self.first_odd_close.lock().unwrap().as_ref() {
            line.push_str(&format!(" (first other close: {reason})"));
        }
        line
    }
}

/// The client's WebSocket settings: frames are small, so a small read buffer (10,000 of
/// tungstenite's default 128 KiB would be 1.2 GiB in the bench itself).
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(8 * 1024)
}

/// The event JSON, as much of it as the bench reads.
#[derive(Deserialize)]
struct Incoming<'a> {
    id: Option<u64>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<IncomingData<'a>>,
}

#[derive(Deserialize)]
struct IncomingData<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

/// How a subscriber stops.
pub enum Until {
    /// At the run's end (after a normal close).
    End,
    /// When told (an idle subscriber holding its connection).
    Told(CancellationToken),
}

/// Follows `run_id`'s stream from its first event, resuming after each cut-off or break,
/// until `until`. `attached` hears when the first frame arrived (the server has the reader).
/// Answers the `message.delta` frames received.
pub async fn follow(
    target: &Target,
    run_id: &str,
    tally: &Tally,
    attached: Option<oneshot::Sender<()>>,
    until: Until,
    first_of_run: bool,
) -> u64 {
    let mut reader = Reader {
        tally,
        last_id: 0,
        ended: false,
        deltas: 0,
        latencies: Vec::new(),
        attached,
        first_of_run,
    };
    let mut resumes = 0;
    loop {
        let Some(socket) = connect(target, run_id, reader.last_id, tally).await else {
            tally.gave_up.fetch_add(1, Ordering::Relaxed);
            break;
        };
        match reader.read(socket, &until).await {
            Ending::Done => break,
            Ending::Resume => {
                resumes += 1;
                if resumes > MAX_RESUMES {
                    tally.gave_up.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    let mut histogram = tally.latency.lock().unwrap();
    for latency in &reader.latencies {
        histogram.saturating_record(*latency);
    }
    reader.deltas
}

async fn connect(target: &Target, run_id: &str, after: u64, tally: &Tally) -> Option<Socket> {
    for attempt in 0..CONNECT_ATTEMPTS {
        let request = target.websocket_request(run_id, after);
        match tokio_tungstenite::connect_async_with_config(request, Some(client_config()), true).await {
            Ok((socket, _)) => return Some(socket),
            Err(error) => {
                let failures = tally.connect_failures.fetch_add(1, Ordering::Relaxed);
                if failures == 0 {
                    eprintln!("first failed handshake ({}): {error}", target.name());
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
            }
        }
    }
    None
}

enum Ending {
    Done,
    Resume,
}

/// One subscriber's state across its connections.
struct Reader<'a> {
    tally: &'a Tally,
    last_id: u64,
    ended: bool,
    deltas: u64,
    latencies: Vec<u64>,
    attached: Option<oneshot::Sender<()>>,
    first_of_run: bool,
}

impl Reader<'_> {
    async fn read(&mut self, mut socket: Socket, until: &Until) -> Ending {
        loop {
            let message = match until {
                Until::End => socket.next().await,
                Until::Told(stop) => tokio::select! {
                    () = stop.cancelled() => {
                        let _ = tokio::time::timeout(Duration::from_secs(5), socket.close(None)).await;
                        return Ending::Done;
                    }
                    message = socket.next() => message,
                },
            };
            match message {
                Some(Ok(Message::Text(text))) => self.frame(text.as_str()),
                Some(Ok(Message::Close(close))) => {
                    let code = close.as_ref().map(|frame| frame.code);
                    let ending = match code {
                        Some(CloseCode::Normal) if self.ended => Ending::Done,
                        Some(CloseCode::Again) => {
                            self.tally.cut_offs.fetch_add(1, Ordering::Relaxed);
                            Ending::Resume
                        }
                        _ => {
                            self.tally.other_closes.fetch_add(1, Ordering::Relaxed);
                            let mut first = self.tally.first_odd_close.lock().unwrap();
                            if first.is_none() {
                                *first = Some(format!("{close:?} after id {}", self.last_id));
                            }
                            Ending::Done
                        }
                    };
                    // Our answer to the close goes out as we read on, until the server drops
                    // the connection.
                    let _ = tokio::time::timeout(CLOSING_WAIT, async {
                        while let Some(Ok(_)) = socket.next().await {}
                    })
                    .await;
                    return ending;
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => {
                    if self.ended {
                        return Ending::Done;
                    }
                    self.tally.breaks.fetch_add(1, Ordering::Relaxed);
                    return Ending::Resume;
                }
            }
        }
    }

    fn frame(&mut self, text: &str) {
        let received = now_micros();
        let tally = self.tally;
        tally.frames.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = serde_json::from_str::<Incoming>(text) else {
            tally.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // A cut-off's own message (`stream.cut_off`, no id) comes just before its close.
        let Some(id) = frame.id else { return };
        if let Some(attached) = self.attached.take() {
            let _ = attached.send(());
        }
        if id <= self.last_id {
            tally.ids_repeated.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if id > self.last_id + 1 {
            tally.ids_lost.fetch_add(id - self.last_id - 1, Ordering::Relaxed);
        }
        self.last_id = id;
        match frame.event_type.as_ref() {
            "message.delta" => {
                self.deltas += 1;
                tally.deltas.fetch_add(1, Ordering::Relaxed);
                let sent = frame
                    .data
                    .and_then(|data| data.text)
                    .and_then(|text| text.trim().parse::<u64>().ok());
                match sent {
                    Some(sent) if tally.measuring.load(Ordering::Relaxed) => {
                        self.latencies.push(received.saturating_sub(sent));
                    }
                    Some(_) => {}
                    None => {
                        tally.unreadable.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            "run.completed" => self.ended = true,
            "run.failed" | "run.cancelled" => {
                self.ended = true;
                if self.first_of_run {
                    tally.runs_not_completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}
