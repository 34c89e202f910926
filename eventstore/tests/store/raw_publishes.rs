//! Counting every publish of one organization's events with a core NATS subscription.
//!
//! JetStream's duplicate window stores a re-published message once, so reading the stream
//! cannot show that a relay published an event twice (no checkpoint, two leaders). A core
//! subscriber on the same subjects receives every publish, duplicates included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

/// Publishes seen so far, by event id.
#[derive(Clone, Default)]
pub struct RawPublishes {
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl RawPublishes {
    /// Subscribes to `org_id`'s subjects on `url` (before anything is published).
    pub async fn subscribe(url: &str, org_id: Uuid) -> Self {
        let client = async_nats::connect(url).await.unwrap();
        let mut subscription = client
            .subscribe(format!("agentry.{org_id}.events.>"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let publishes = Self::default();
        let counts = Arc::clone(&publishes.counts);
        tokio::spawn(async move {
            let _client = client;
            while let Some(message) = subscription.next().await {
                let event: Value = serde_json::from_slice(&message.payload).unwrap();
                let id = event["id"].as_str().unwrap().to_owned();
                *counts.lock().unwrap().entry(id).or_insert(0) += 1;
            }
        });
        publishes
    }

    /// Waits until `distinct` different events were published, then a quiet second more (so
    /// late repeats show); returns the counts.
    pub async fn settle(&self, distinct: usize, within: Duration) -> HashMap<String, usize> {
        let deadline = tokio::time::Instant::now() + within;
        while self.counts.lock().unwrap().len() < distinct && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.counts.lock().unwrap().clone()
    }

    /// The ids published more than once, with their counts.
    pub fn repeated(counts: &HashMap<String, usize>) -> Vec<(String, usize)> {
        counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect()
    }
}
