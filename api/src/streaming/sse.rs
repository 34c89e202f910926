//! `GET /v1/runs/{id}/events` as Server-Sent Events.
//!
//! Each event is `id: <id>\ndata: <json>\n\n`, without an `event:` line, so that
//! `EventSource.onmessage` gets every event (the type is in the JSON). A comment line `: ping`
//! goes out every heartbeat. After the run's last event the response ends. A stream ended
//! before its run sends a last `data:` line, `{"type":"stream.cut_off",…}` without an id (so
//! `lastEventId` stays the last event's), and ends.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use poem::http::StatusCode;
use poem::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use streams::{RunStream, StreamFrame, StreamItem};

use super::{Chore, Ending, OpenStreamGauge, RunStreamMessage, Upkeep, count_ending};

/// The media type of the stream.
const EVENT_STREAM: &str = "text/event-stream";
/// A comment line: ignored by clients, enough for proxies to see the connection is alive.
const HEARTBEAT: &[u8] = b": ping\n\n";

/// What the SSE route answers once the stream is open.
pub enum EventStreamAnswer {
    /// 200 and the events.
    Stream(Box<SseSession>),
    /// 204: the run has ended and nothing follows the id resumed after. `EventSource`
    /// reconnects after a response ends, with `Last-Event-ID`; a 204 is what stops it.
    NothingAfter,
}

impl EventStreamAnswer {
    /// The answer for `stream`, whose chores `upkeep` does.
    pub fn new(mut stream: RunStream, upkeep: Upkeep) -> Self {
        // A stream of a run that had ended answers at once; a live run's first event may be a
        // long time coming and must not hold back the response's head.
        let first = stream.next().now_or_never();
        if first == Some(StreamItem::Ended) {
            return Self::NothingAfter;
        }
        Self::Stream(Box::new(SseSession {
            stream,
            first,
            upkeep,
            done: false,
            _open: OpenStreamGauge::new("sse"),
        }))
    }
}

/// One client's stream: its events, heartbeats and checks, as the response body's chunks.
pub struct SseSession {
    stream: RunStream,
    /// An item taken before the response started.
    first: Option<StreamItem>,
    upkeep: Upkeep,
    done: bool,
    _open: OpenStreamGauge,
}

impl SseSession {
    /// The next chunk of the body; `None` ends it.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(item) = self.first.take() {
            return self.chunk_of(item);
        }
        tokio::select! {
            biased;
            chore = self.upkeep.due() => match chore {
                Chore::Heartbeat => Some(Bytes::from_static(HEARTBEAT)),
                Chore::End(ending) => self.end_early(ending),
                // Not raised for SSE (there are no client messages to hear): a client that went
                // away is noticed when a heartbeat cannot be written.
                Chore::Gone => {
                    self.done = true;
                    None
                }
            },
            item = self.stream.next() => self.chunk_of(item),
        }
    }

    fn chunk_of(&mut self, item: StreamItem) -> Option<Bytes> {
        match item {
            StreamItem::Frame(frame) => Some(event_chunk(&frame)),
            StreamItem::Ended => {
                self.done = true;
                None
            }
            StreamItem::CutOff { .. } => self.end_early(Ending::FellBehind),
        }
    }

    /// The last chunk of a stream ended before its run.
    fn end_early(&mut self, ending: Ending) -> Option<Bytes> {
        self.done = true;
        count_ending("sse", &ending);
        let message = ending.json(self.stream.last_id());
        Some(Bytes::from(format!("data: {message}\n\n")))
    }
}

/// `id: <id>\ndata: <json>\n\n`. The JSON is compact and holds no line break; were one there,
/// each line would get its own `data:` field, which clients join back with `\n`.
fn event_chunk(frame: &StreamFrame) -> Bytes {
    let mut chunk = BytesMut::with_capacity(frame.json.len() + 32);
    let _ = writeln!(chunk, "id: {}", frame.id);
    for line in frame.json.split(|byte| *byte == b'\n') {
        chunk.put_slice(b"data: ");
        chunk.put_slice(line.strip_suffix(b"\r").unwrap_or(line));
        chunk.put_u8(b'\n');
    }
    chunk.put_u8(b'\n');
    chunk.freeze()
}

impl IntoResponse for EventStreamAnswer {
    fn into_response(self) -> Response {
        let session = match self {
            Self::NothingAfter => return StatusCode::NO_CONTENT.into_response(),
            Self::Stream(session) => session,
        };
        let chunks = futures::stream::unfold(session, |mut session| async move {
            let chunk = session.next_chunk().await?;
            Some((Ok::<_, std::io::Error>(chunk), session))
        });
        Response::builder()
            .header(CONTENT_TYPE, EVENT_STREAM)
            .header(CACHE_CONTROL, "no-cache")
            // Proxies such as nginx would otherwise hold events back to fill a buffer.
            .header("x-accel-buffering", "no")
            .body(Body::from_bytes_stream(chunks))
    }
}

impl ApiResponse for EventStreamAnswer {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The run's events as Server-Sent Events, each `id: <id>` and \
                                  `data: <the event's JSON>`; `: ping` comment lines between \
                                  them; after the run's last event the response ends. A stream \
                                  ended early sends `data: {\"type\":\"stream.cut_off\",\"reason\":…,\
                                  \"resume_after\":<id>}` last.",
                    status: Some(200),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: EVENT_STREAM,
                        schema: RunStreamMessage::schema_ref(),
                    }],
                    headers: vec![],
                },
                MetaResponse {
                    description: "The run has ended and no event follows the id resumed after \
                                  (an `EventSource` stops reconnecting).",
                    status: Some(204),
                    status_range: None,
                    content: vec![],
                    headers: vec![],
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        RunStreamMessage::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use streams::StreamFrame;
    use uuid::Uuid;

    use super::event_chunk;

    #[test]
    fn an_event_is_its_id_and_one_data_line() {
        let frame = StreamFrame::delta(Uuid::nil(), 42, 1, "Hi\n");
        let chunk = event_chunk(&frame);
        let text = String::from_utf8(chunk.to_vec()).unwrap_or_default();
        assert_eq!(
            text,
            format!("id: 42\ndata: {}\n\n", String::from_utf8_lossy(&frame.json))
        );
        assert_eq!(text.matches('\n').count(), 3, "{text}");
    }

    #[test]
    fn a_line_break_in_the_json_becomes_another_data_line() {
        let mut frame = StreamFrame::delta(Uuid::nil(), 7, 1, "x");
        frame.json = Bytes::from_static(b"{\"a\":\r\n1}");
        let chunk = event_chunk(&frame);
        assert_eq!(&chunk[..], b"id: 7\ndata: {\"a\":\ndata: 1}\n\n");
    }
}
