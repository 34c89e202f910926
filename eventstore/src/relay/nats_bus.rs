use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::{self, context::ContextBuilder, message::PublishMessage, stream};
use bytes::Bytes;
use futures::StreamExt;

use super::subject::subject_filter;
use super::{
    BusError, BusEvent, EventFilter, EventSubscription, PendingAcks, Publisher, SubscriptionError,
    subject_for,
};
use crate::RecordedEvent;

/// The JetStream stream that holds every event.
pub const STREAM_NAME: &str = "AGENTRY_EVENTS";
/// Its subjects: the contract's `agentry.<org_id>.events.<aggregate_type>.<aggregate_id>`.
pub const STREAM_SUBJECTS: &str = "agentry.*.events.>";
/// How long JetStream remembers a message id: a re-publish inside it is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long the relay waits for one ack before retrying the batch with the same ids.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Publishes in flight before the relay waits for acks.
const MAX_ACKS_IN_FLIGHT: usize = 1_024;
/// Room left in the server's `max_payload` for the message's headers (`Nats-Msg-Id` takes
/// about 60 bytes); the event JSON gets the rest.
const HEADER_ALLOWANCE: usize = 1_024;
/// The header naming the relay lease epoch that sent a message.
pub const EPOCH_HEADER: &str = "Agentry-Relay-Epoch";

/// NATS JetStream as the bus between nodes.
#[derive(Clone, Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream_ready: Arc<AtomicBool>,
}

impl NatsBus {
    /// Connects to `url`. The connection keeps retrying in the background, including at start,
    /// so a node starts (and keeps accepting writes) while NATS is down.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .name("agentry")
            .connect(url)
            .await
            .map_err(|error| BusError::Nats(error.to_string()))?;
        Ok(Self::from_client(client))
    }

    /// Wraps an existing client (tests share one).
    pub fn from_client(client: async_nats::Client) -> Self {
        let jetstream = ContextBuilder::new()
            .timeout(ACK_TIMEOUT)
            .max_ack_inflight(MAX_ACKS_IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Self {
            client,
            jetstream,
            stream_ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The underlying client, for subscribers.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context, for consumers.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Whether the client is connected right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Sends a batch with every ack in flight at once; the returned [`PendingAcks`] resolve
    /// when JetStream stored it.
    ///
    /// Each message id is the event id, so a batch retried after a timeout (which does not
    /// mean "not stored") or after a relay crash is stored once. The lease is checked before
    /// every message: a leader frozen mid-batch stops where it was when it wakes.
    pub async fn publish(
        &self,
        events: &[Arc<RecordedEvent>],
        publisher: Publisher<'_>,
    ) -> Result<PendingAcks, BusError> {
        self.ensure_stream().await?;
        let mut acks = Vec::with_capacity(events.len());
        // The limit the connected server announced (the client's default until it has).
        let max_json = self.client.max_payload().saturating_sub(HEADER_ALLOWANCE);
        let epoch = publisher.epoch.to_string();
        for event in events {
            if !(publisher.still_leading)() {
                return Err(BusError::LeaseLost);
            }
            let (sent, payload) = BusEvent::encode_within(event, max_json)
                .map_err(|error| BusError::Nats(error.to_string()))?;
            if sent.truncated {
                metrics::counter!("agentry_relay_truncated_events_total").increment(1);
                tracing::info!(
                    event_id = %event.id, event_type = %event.event_type, fields = ?sent.truncated_fields,
                    max_payload = max_json + HEADER_ALLOWANCE,
                    "event too large for NATS: published without its largest data fields"
                );
            }
            let message = PublishMessage::build()
                .payload(Bytes::from(payload))
                .message_id(event.id.to_string())
                .header(EPOCH_HEADER, epoch.as_str());
            let ack = self
                .jetstream
                .send_publish(subject_for(event), message)
                .await
                .map_err(|error| BusError::Nats(error.to_string()))?;
            acks.push(ack);
        }
        Ok(PendingAcks::new(acks))
    }

    /// A core subscription on the contract's subjects for `filter`: it sees every publish from
    /// now on (a re-published event twice). Returns once the server has registered it, so
    /// nothing published after this returns is missed.
    pub async fn subscribe(&self, filter: EventFilter) -> Result<EventSubscription, BusError> {
        let subscriber = self
            .client
            .subscribe(subject_filter(filter))
            .await
            .map_err(|error| BusError::Nats(error.to_string()))?;
        // The round trip that proves the server registered the subscription; bounded, so a
        // caller is told NATS is unavailable instead of waiting for it to come back.
        tokio::time::timeout(ACK_TIMEOUT, self.client.flush())
            .await
            .map_err(|_| BusError::Nats("no answer from NATS to a subscription".to_owned()))?
            .map_err(|error| BusError::Nats(error.to_string()))?;
        let events = subscriber.map(|message| {
            serde_json::from_slice::<BusEvent>(&message.payload)
                .map_err(|error| SubscriptionError::Unreadable(format!("{}: {error}", message.subject)))
        });
        Ok(EventSubscription::new(Box::pin(events)))
    }

    /// Creates the stream on first use (and again after a failure), so neither the relay nor
    /// an operator has to before the first event.
    async fn ensure_stream(&self) -> Result<(), BusError> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        self.jetstream
            .get_or_create_stream(stream::Config {
                name: STREAM_NAME.to_owned(),
                subjects: vec![STREAM_SUBJECTS.to_owned()],
                duplicate_window: DUPLICATE_WINDOW,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|error| BusError::Nats(error.to_string()))?;
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}
