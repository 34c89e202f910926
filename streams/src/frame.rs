//! A run's events as its readers receive them: `{id, type, run_id, data}`, one per stream id.

use bytes::Bytes;
use domain::run::RunEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// One event of a run's stream, serialized once and shared by every reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamFrame {
    /// Its stream id: 1, 2, 3, … per run.
    pub id: u64,
    /// The first id it accounts for: `id`, or for an event that skips ids (a takeover or a
    /// cancel while a model streamed) the first id skipped. A reader expecting any id from
    /// here to `id` takes it.
    pub covers_from: u64,
    /// The event type, e.g. `message.delta`.
    pub event_type: String,
    /// Whether the run ends with it (`run.completed`, `run.failed`, `run.cancelled`).
    pub terminal: bool,
    /// `{"id":…,"type":…,"run_id":…,"data":{…}}`, as SSE and WebSocket send it.
    pub json: Bytes,
}

/// The JSON of a frame; `data` is the event's own fields.
#[derive(Serialize, Deserialize)]
struct Wire<D> {
    id: u64,
    #[serde(rename = "type")]
    event_type: String,
    run_id: Uuid,
    data: D,
}

/// The fields of `data` a frame's reader needs to place it.
#[derive(Deserialize)]
struct Placing {
    #[serde(default)]
    skipped_ids: u64,
}

impl StreamFrame {
    /// The frames of one recorded event of run `run_id`: one, or one per chunk of a
    /// `message.delta` (`data: {step, text}`).
    pub fn of_event(run_id: Uuid, event: &RunEvent) -> Vec<Self> {
        if let RunEvent::MessageDelta {
            first_id,
            step,
            chunks,
        } = event
        {
            return chunks
                .iter()
                .zip(*first_id..)
                .map(|(text, id)| Self::delta(run_id, id, *step, text))
                .collect();
        }
        let mut data = match serde_json::to_value(event) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        let event_type = data
            .remove("type")
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        data.remove("id");
        vec![Self::build(
            run_id,
            event.last_id(),
            event.first_id(),
            event_type,
            event.is_terminal(),
            &Value::Object(data),
        )]
    }

    /// The frame of one chunk of text the model streamed, with the id the executor gave it.
    pub fn delta(run_id: Uuid, id: u64, step: u32, text: &str) -> Self {
        #[derive(Serialize)]
        struct Delta<'a> {
            step: u32,
            text: &'a str,
        }
        Self::build(
            run_id,
            id,
            id,
            "message.delta".to_owned(),
            false,
            &Delta { step, text },
        )
    }

    /// Reads a frame back from its JSON (as NATS carries it between nodes).
    pub fn parse(json: Bytes) -> Result<Self, serde_json::Error> {
        let wire: Wire<Placing> = serde_json::from_slice(&json)?;
        Ok(Self {
            id: wire.id,
            covers_from: wire.id.saturating_sub(wire.data.skipped_ids),
            terminal: is_terminal(&wire.event_type),
            event_type: wire.event_type,
            json,
        })
    }

    fn build(
        run_id: Uuid,
        id: u64,
        covers_from: u64,
        event_type: String,
        terminal: bool,
        data: &impl Serialize,
    ) -> Self {
        let wire = Wire {
            id,
            event_type,
            run_id,
            data,
        };
        // Serializing ids, strings and maps of JSON values cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        Self {
            id,
            covers_from,
            event_type: wire.event_type,
            terminal,
            json: Bytes::from(json),
        }
    }
}

fn is_terminal(event_type: &str) -> bool {
    matches!(event_type, "run.completed" | "run.failed" | "run.cancelled")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use domain::run::RunEvent;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::StreamFrame;

    #[test]
    fn a_delta_event_is_one_frame_per_chunk_with_consecutive_ids() {
        let run_id = Uuid::now_v7();
        let event = RunEvent::MessageDelta {
            first_id: 7,
            step: 2,
            chunks: vec!["Hel".into(), "lo".into()],
        };

        let frames = StreamFrame::of_event(run_id, &event);

        let sent: Vec<Value> = frames
            .iter()
            .map(|frame| serde_json::from_slice(&frame.json).unwrap())
            .collect();
        assert_eq!(
            sent,
            [
                json!({"id": 7, "type": "message.delta", "run_id": run_id, "data": {"step": 2, "text": "Hel"}}),
                json!({"id": 8, "type": "message.delta", "run_id": run_id, "data": {"step": 2, "text": "lo"}}),
            ]
        );
        assert_eq!(StreamFrame::parse(frames[1].json.clone()).unwrap(), frames[1]);
    }

    #[test]
    fn an_event_keeps_its_fields_as_data_and_a_skip_is_placed_from_its_first_skipped_id() {
        let run_id = Uuid::now_v7();
        let event = RunEvent::Cancelled {
            id: 1_030,
            by: "user:1".into(),
            skipped_ids: 1_024,
            abandoned_call: None,
        };

        let frame = StreamFrame::of_event(run_id, &event).remove(0);

        assert_eq!((frame.id, frame.covers_from, frame.terminal), (1_030, 6, true));
        let sent: Value = serde_json::from_slice(&frame.json).unwrap();
        assert_eq!(
            sent,
            json!({"id": 1_030, "type": "run.cancelled", "run_id": run_id, "data": {"by": "user:1", "skipped_ids": 1_024}})
        );
        assert_eq!(StreamFrame::parse(frame.json.clone()).unwrap(), frame);
    }
}
