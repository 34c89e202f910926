//! The key prefix claim aggregate: state, decisions and how events change the state.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{KeyPrefixClaimCommand, KeyPrefixClaimError, KeyPrefixClaimEvent};
use crate::sink::write_all;

/// A key prefix and the key holding it (the aggregate id is the prefix).
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyPrefixClaim {
    key_id: Option<Uuid>,
}

impl KeyPrefixClaim {
    /// The key holding the prefix, if any.
    pub fn claimed_by(&self) -> Option<Uuid> {
        self.key_id
    }

    /// The same key claiming again is a no-op (a retried creation goes on); any other key is
    /// refused.
    fn claim(&self, key_id: Uuid) -> Result<Vec<KeyPrefixClaimEvent>, KeyPrefixClaimError> {
        match self.key_id {
            None => Ok(vec![KeyPrefixClaimEvent::Claimed { key_id }]),
            Some(holder) if holder == key_id => Ok(vec![]),
            Some(_) => Err(KeyPrefixClaimError::AlreadyClaimed),
        }
    }
}

impl Aggregate for KeyPrefixClaim {
    const TYPE: &'static str = "key_prefix_claim";
    type Command = KeyPrefixClaimCommand;
    type Event = KeyPrefixClaimEvent;
    type Error = KeyPrefixClaimError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            KeyPrefixClaimCommand::ClaimPrefix { key_id } => self.claim(key_id)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            KeyPrefixClaimEvent::Claimed { key_id } => self.key_id = Some(key_id),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;

    fn claim() -> TestFramework<KeyPrefixClaim> {
        TestFramework::with(())
    }

    #[test]
    fn the_first_claim_wins_the_prefix() {
        let key_id = Uuid::new_v4();
        claim()
            .given_no_previous_events()
            .when(KeyPrefixClaimCommand::ClaimPrefix { key_id })
            .then_expect_events(vec![KeyPrefixClaimEvent::Claimed { key_id }]);
    }

    #[test]
    fn a_second_key_cannot_claim_a_claimed_prefix() {
        claim()
            .given(vec![KeyPrefixClaimEvent::Claimed {
                key_id: Uuid::new_v4(),
            }])
            .when(KeyPrefixClaimCommand::ClaimPrefix {
                key_id: Uuid::new_v4(),
            })
            .then_expect_error(KeyPrefixClaimError::AlreadyClaimed);
    }

    #[test]
    fn the_same_key_claiming_again_records_nothing() {
        let key_id = Uuid::new_v4();
        claim()
            .given(vec![KeyPrefixClaimEvent::Claimed { key_id }])
            .when(KeyPrefixClaimCommand::ClaimPrefix { key_id })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let event = KeyPrefixClaimEvent::Claimed {
            key_id: Uuid::new_v4(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type().as_str());
    }
}
