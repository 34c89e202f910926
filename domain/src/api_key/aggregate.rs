//! The API key aggregate: state, decisions and how events change the state.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiKeyCommand, ApiKeyError, ApiKeyEvent};
use crate::actor::Actor;
use crate::secret::TokenDigest;
use crate::sink::write_all;
use crate::text::{TextError, trimmed};

/// Longest API key name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

type Decision = Result<Vec<ApiKeyEvent>, ApiKeyError>;

/// An API key of one organization (the aggregate id is the key id).
///
/// `Debug` is written by hand so that the hash never reaches logs.
#[derive(Debug, Default, Serialize, Deserialize, Clone, PartialEq)]
pub struct ApiKey {
    org_id: Option<Uuid>,
    name: String,
    prefix: String,
    key_hash: TokenDigest,
    revoked: bool,
}

impl ApiKey {
    /// Whether `CreateApiKey` has happened.
    pub fn exists(&self) -> bool {
        self.org_id.is_some()
    }

    /// The owning organization; the application compares it with the caller's to keep tenants
    /// apart.
    pub fn org_id(&self) -> Option<Uuid> {
        self.org_id
    }

    /// The label.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public start of the key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Digest of the whole key, to compare with a presented key's digest.
    pub fn key_hash(&self) -> &str {
        self.key_hash.as_str()
    }

    /// Whether the key was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    fn create(
        &self,
        org_id: Uuid,
        name: &str,
        prefix: String,
        key_hash: TokenDigest,
        created_by: Actor,
    ) -> Decision {
        if self.exists() {
            return Err(ApiKeyError::AlreadyExists);
        }
        let name = trimmed(name, MAX_NAME_CHARS, false).map_err(|e| match e {
            TextError::Empty => ApiKeyError::EmptyName,
            TextError::TooLong => ApiKeyError::NameTooLong { max: MAX_NAME_CHARS },
        })?;
        Ok(vec![ApiKeyEvent::Created {
            org_id,
            name,
            prefix,
            key_hash,
            created_by,
        }])
    }

    fn revoke(&self, by: Actor) -> Decision {
        if !self.exists() {
            return Err(ApiKeyError::NotFound);
        }
        if self.revoked {
            return Err(ApiKeyError::AlreadyRevoked);
        }
        Ok(vec![ApiKeyEvent::Revoked { by }])
    }
}

impl Aggregate for ApiKey {
    const TYPE: &'static str = "api_key";
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = ApiKeyError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ApiKeyCommand::CreateApiKey {
                org_id,
                name,
                prefix,
                key_hash,
                created_by,
            } => self.create(org_id, &name, prefix, key_hash, created_by)?,
            ApiKeyCommand::RevokeApiKey { by } => self.revoke(by)?,
        };
        write_all(sink, self, events).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ApiKeyEvent::Created {
                org_id,
                name,
                prefix,
                key_hash,
                ..
            } => {
                self.org_id = Some(org_id);
                self.name = name;
                self.prefix = prefix;
                self.key_hash = key_hash;
            }
            ApiKeyEvent::Revoked { .. } => self.revoked = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use cqrs_es::DomainEvent;
    use cqrs_es::test::TestFramework;

    use super::*;
    use ApiKeyCommand as C;
    use ApiKeyEvent as E;

    fn key() -> TestFramework<ApiKey> {
        TestFramework::with(())
    }

    fn create(org_id: Uuid, name: &str, by: Actor) -> C {
        C::CreateApiKey {
            org_id,
            name: name.into(),
            prefix: "ak_live_1234".into(),
            key_hash: "digest".into(),
            created_by: by,
        }
    }

    fn created(org_id: Uuid, name: &str, by: Actor) -> E {
        E::Created {
            org_id,
            name: name.into(),
            prefix: "ak_live_1234".into(),
            key_hash: "digest".into(),
            created_by: by,
        }
    }

    fn someone() -> Actor {
        Actor::User { id: Uuid::new_v4() }
    }

    #[test]
    fn creating_records_the_trimmed_name_prefix_and_hash() {
        let (org, by) = (Uuid::new_v4(), someone());
        key()
            .given_no_previous_events()
            .when(create(org, "  CI key ", by))
            .then_expect_events(vec![created(org, "CI key", by)]);
    }

    #[test]
    fn a_key_cannot_be_created_twice() {
        let (org, by) = (Uuid::new_v4(), someone());
        key()
            .given(vec![created(org, "CI", by)])
            .when(create(org, "CI", by))
            .then_expect_error(ApiKeyError::AlreadyExists);
    }

    #[test]
    fn a_blank_name_is_rejected() {
        key()
            .given_no_previous_events()
            .when(create(Uuid::new_v4(), " ", someone()))
            .then_expect_error(ApiKeyError::EmptyName);
    }

    #[test]
    fn a_name_over_100_characters_is_rejected() {
        key()
            .given_no_previous_events()
            .when(create(Uuid::new_v4(), &"k".repeat(101), someone()))
            .then_expect_error(ApiKeyError::NameTooLong { max: 100 });
    }

    #[test]
    fn revoking_records_who_revoked() {
        let by = Actor::ApiKey { id: Uuid::new_v4() };
        key()
            .given(vec![created(Uuid::new_v4(), "CI", someone())])
            .when(C::RevokeApiKey { by })
            .then_expect_events(vec![E::Revoked { by }]);
    }

    #[test]
    fn a_key_cannot_be_revoked_twice() {
        key()
            .given(vec![
                created(Uuid::new_v4(), "CI", someone()),
                E::Revoked { by: Actor::System },
            ])
            .when(C::RevokeApiKey { by: Actor::System })
            .then_expect_error(ApiKeyError::AlreadyRevoked);
    }

    #[test]
    fn revoking_a_key_never_created_is_not_found() {
        key()
            .given_no_previous_events()
            .when(C::RevokeApiKey { by: Actor::System })
            .then_expect_error(ApiKeyError::NotFound);
    }

    #[test]
    fn the_state_exposes_what_authentication_needs_and_hides_the_hash_from_debug() {
        let org = Uuid::new_v4();
        let mut state = ApiKey::default();
        state.apply(created(org, "CI", someone()));
        state.apply(E::Revoked { by: Actor::System });
        assert_eq!(state.org_id(), Some(org));
        assert_eq!((state.prefix(), state.key_hash()), ("ak_live_1234", "digest"));
        assert!(state.is_revoked());
        assert!(!format!("{state:?} {:?}", created(org, "CI", Actor::System)).contains("digest"));
    }

    #[test]
    fn the_serialized_tag_of_every_event_is_its_event_type() {
        for event in [
            created(Uuid::new_v4(), "CI", someone()),
            E::Revoked { by: Actor::System },
        ] {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
        }
    }
}
