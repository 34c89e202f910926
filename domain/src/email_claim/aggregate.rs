//! The email claim aggregate: state, decisions and how events change the state.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EmailClaimCommand, EmailClaimError, EmailClaimEvent};
use crate::sink::write_all;

/// An email address and the user holding it (the aggregate id is the normalized address,
/// [`crate::EmailAddress::as_str`]).
#[derive(Default, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EmailClaim {
    user_id: Option<Uuid>,
}

impl EmailClaim {
    /// The user holding the address, if any.
    pub fn claimed_by(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The same user claiming again is a no-op rather than an error, so a registration retried
    /// after a crash between its steps can go on; any other user is refused.
    fn claim(&self, user_id: Uuid) -> Result<Vec<EmailClaimEvent>, EmailClaimError> {
        match self.user_id {
            None => Ok(vec![EmailClaimEvent::Claimed { user_id }]),
            Some(owner) if owner == user_id => Ok(vec![]),
            Some(_) => Err(EmailClaimError::AlreadyClaimed),
        }
    }
}

impl Aggregate for EmailClaim {
    const TYPE: &'static str = "email_claim";
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailClaimError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            EmailClaimCommand::ClaimEmail { user_id } => self.claim(user_id)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EmailClaimEvent::Claimed { user_id } => self.user_id = Some(user_id),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;

    fn claim() -> TestFramework<EmailClaim> {
        TestFramework::with(())
    }

    #[test]
    fn the_first_claim_wins_the_address() {
        let user_id = Uuid::new_v4();
        claim()
            .given_no_previous_events()
            .when(EmailClaimCommand::ClaimEmail { user_id })
            .then_expect_events(vec![EmailClaimEvent::Claimed { user_id }]);
    }

    #[test]
    fn a_second_user_cannot_claim_a_claimed_address() {
        claim()
            .given(vec![EmailClaimEvent::Claimed {
                user_id: Uuid::new_v4(),
            }])
            .when(EmailClaimCommand::ClaimEmail {
                user_id: Uuid::new_v4(),
            })
            .then_expect_error(EmailClaimError::AlreadyClaimed);
    }

    #[test]
    fn the_same_user_claiming_again_records_nothing() {
        let user_id = Uuid::new_v4();
        claim()
            .given(vec![EmailClaimEvent::Claimed { user_id }])
            .when(EmailClaimCommand::ClaimEmail { user_id })
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        let event = EmailClaimEvent::Claimed {
            user_id: Uuid::new_v4(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], event.event_type().as_str());
    }
}
