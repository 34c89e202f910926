//! An audit entry: what it says, its place in its organization's chain, and its hash.
//!
//! The hash is SHA-256 over a 0x00 byte and the entry's canonical JSON (RFC 6962's leaf hash),
//! so a Merkle tree over the same leaves can be added later without hashing history again.
//! Every field but `hash` is in the canonical JSON, `seq` and `prev_hash` included: moving,
//! removing or inserting an entry breaks the chain. `docs/audit-chain.md` is the specification.

use chrono::{DateTime, Utc};
use eventstore::RecordedEvent;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::canonical::{Member, canonical_object};

/// The previous hash of an organization's first entry: 32 zero bytes.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What an entry says about its event: who, as whom, what, on what, when, from where.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EntryContent {
    /// The event.
    pub event_id: Uuid,
    /// When it was recorded, to the microsecond.
    pub recorded_at: DateTime<Utc>,
    /// `user:<uuid>`, `api_key:<uuid>` or `system`, as the event's metadata says.
    pub actor: String,
    /// The platform administrator acting as `actor`, when one was.
    pub impersonator_id: Option<String>,
    /// The event type.
    pub action: String,
    /// The aggregate type the event belongs to.
    pub target_type: String,
    /// The aggregate's id.
    pub target_id: String,
    /// The HTTP request that caused it.
    pub request_id: Option<String>,
    /// The request's client address.
    pub client_ip: Option<String>,
    /// The request's `User-Agent`.
    pub user_agent: Option<String>,
}

/// Binding an entry's content to a statement, its ten columns in [`EntryContent`]'s order
/// (`event_id` … `user_agent`): one order for every statement that writes them.
pub(super) trait BindContent<'q> {
    /// The statement with `content` bound to its next ten parameters.
    fn bind_content(self, content: &'q EntryContent) -> Self;
}

impl<'q> BindContent<'q> for sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_content(self, content: &'q EntryContent) -> Self {
        self.bind(content.event_id)
            .bind(content.recorded_at)
            .bind(&content.actor)
            .bind(&content.impersonator_id)
            .bind(&content.action)
            .bind(&content.target_type)
            .bind(&content.target_id)
            .bind(&content.request_id)
            .bind(&content.client_ip)
            .bind(&content.user_agent)
    }
}

/// A metadata field of an event that an entry cannot do without is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("audit projector cannot read event {event_id} ({event_type}): {reason}")]
pub struct MalformedEvent {
    event_id: Uuid,
    event_type: String,
    reason: &'static str,
}

impl EntryContent {
    /// The entry for `event`, from its metadata; the metadata's strings are copied as they are.
    pub fn from_event(event: &RecordedEvent) -> Result<Self, MalformedEvent> {
        let malformed = |reason| MalformedEvent {
            event_id: event.id,
            event_type: event.event_type.clone(),
            reason,
        };
        let text = |key: &str| {
            event
                .metadata
                .get(key)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
        };
        let recorded_at = event
            .recorded_at()
            .ok_or_else(|| malformed("metadata has no RFC 3339 `recorded_at`"))?;
        Ok(Self {
            event_id: event.id,
            recorded_at: to_microseconds(recorded_at),
            actor: text("actor").ok_or_else(|| malformed("metadata has no `actor`"))?,
            impersonator_id: text("impersonator_id"),
            action: event.event_type.clone(),
            target_type: event.aggregate_type.clone(),
            target_id: event.aggregate_id.clone(),
            request_id: text("request_id"),
            client_ip: text("client_ip"),
            user_agent: text("user_agent"),
        })
    }

    /// This content as entry `seq` of `org_id`'s log, after an entry whose hash is `prev_hash`.
    pub fn seal(self, org_id: Uuid, seq: i64, prev_hash: Vec<u8>) -> AuditEntry {
        let mut entry = AuditEntry {
            org_id,
            seq,
            content: self,
            prev_hash,
            hash: Vec::new(),
        };
        entry.hash = entry.computed_hash().to_vec();
        entry
    }
}

/// One entry of an organization's audit log, as stored and exported.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    /// The organization whose log it is in.
    pub org_id: Uuid,
    /// 1, 2, 3, … in that log.
    pub seq: i64,
    /// What it says.
    #[sqlx(flatten)]
    pub content: EntryContent,
    /// The previous entry's hash as stored ([`GENESIS_HASH`] for the first).
    pub prev_hash: Vec<u8>,
    /// This entry's hash as stored.
    pub hash: Vec<u8>,
}

impl AuditEntry {
    /// The canonical JSON the hash is computed over: every field but `hash`.
    pub fn canonical_content(&self) -> String {
        self.canonical(false)
    }

    /// The export's line for this entry (without the newline): the canonical JSON with `hash`
    /// added, so that removing `hash` from the line gives back the hashed bytes.
    pub fn export_line(&self) -> String {
        self.canonical(true)
    }

    /// What the hash must be for what the entry says now: SHA-256(0x00 ‖ canonical content).
    pub fn computed_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update([0x00]);
        hasher.update(self.canonical_content().as_bytes());
        hasher.finalize().into()
    }

    fn canonical(&self, with_hash: bool) -> String {
        let content = &self.content;
        let org_id = self.org_id.to_string();
        let event_id = content.event_id.to_string();
        let recorded_at = timestamp(content.recorded_at);
        let prev_hash = to_hex(&self.prev_hash);
        let hash = with_hash.then(|| to_hex(&self.hash));
        canonical_object(&[
            ("action", Some(Member::Text(&content.action))),
            ("actor", Some(Member::Text(&content.actor))),
            ("client_ip", text(&content.client_ip)),
            ("event_id", Some(Member::Text(&event_id))),
            ("hash", hash.as_deref().map(Member::Text)),
            ("impersonator_id", text(&content.impersonator_id)),
            ("org_id", Some(Member::Text(&org_id))),
            ("prev_hash", Some(Member::Text(&prev_hash))),
            ("recorded_at", Some(Member::Text(&recorded_at))),
            ("request_id", text(&content.request_id)),
            ("seq", Some(Member::Integer(self.seq))),
            ("target_id", Some(Member::Text(&content.target_id))),
            ("target_type", Some(Member::Text(&content.target_type))),
            ("user_agent", text(&content.user_agent)),
        ])
    }
}

/// An optional text member.
fn text(value: &Option<String>) -> Option<Member<'_>> {
    value.as_deref().map(Member::Text)
}

/// An entry's time as the canonical form writes it: UTC, six fractional digits, `Z`.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `time` cut to whole microseconds: what Postgres keeps, so what is hashed is what is stored.
fn to_microseconds(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// Lowercase hexadecimal, two digits a byte.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    fn content() -> EntryContent {
        EntryContent {
            event_id: Uuid::parse_str("0190e5a4-8f7c-7a3e-9b1d-2c3d4e5f6a7b").unwrap(),
            recorded_at: "2026-12-06T10:15:30.123456Z".parse::<DateTime<Utc>>().unwrap(),
            actor: "user:0190e5a4-0000-7000-8000-000000000001".into(),
            impersonator_id: None,
            action: "api_key.created".into(),
            target_type: "api_key".into(),
            target_id: "0190e5a4-0000-7000-8000-0000000000aa".into(),
            request_id: Some("req-1".into()),
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8.5.0".into()),
        }
    }

    fn org() -> Uuid {
        Uuid::parse_str("0190e5a4-0000-7000-8000-0000000000ff").unwrap()
    }

    #[test]
    fn the_canonical_content_has_every_field_but_the_hash_in_name_order() {
        let entry = content().seal(org(), 1, GENESIS_HASH.to_vec());
        assert_eq!(
            entry.canonical_content(),
            concat!(
                r#"{"action":"api_key.created","actor":"user:0190e5a4-0000-7000-8000-000000000001","#,
                r#""client_ip":"203.0.113.9","event_id":"0190e5a4-8f7c-7a3e-9b1d-2c3d4e5f6a7b","#,
                r#""org_id":"0190e5a4-0000-7000-8000-0000000000ff","#,
                r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
                r#""recorded_at":"2026-12-06T10:15:30.123456Z","request_id":"req-1","seq":1,"#,
                r#""target_id":"0190e5a4-0000-7000-8000-0000000000aa","target_type":"api_key","#,
                r#""user_agent":"curl/8.5.0"}"#
            )
        );
    }

    #[test]
    fn the_hash_is_sha256_of_a_zero_byte_and_the_canonical_content() {
        let entry = content().seal(org(), 1, GENESIS_HASH.to_vec());
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(entry.canonical_content().as_bytes());
        let expected: [u8; 32] = Sha256::digest(&leaf).into();
        assert_eq!(entry.hash, expected.to_vec());
        assert_ne!(
            entry.hash,
            Sha256::digest(entry.canonical_content().as_bytes()).to_vec()
        );
    }

    #[test]
    fn the_export_line_is_the_canonical_content_with_the_hash_added() {
        let entry = content().seal(org(), 2, vec![7; 32]);
        let mut line: serde_json::Value = serde_json::from_str(&entry.export_line()).unwrap();
        assert_eq!(line["hash"], to_hex(&entry.hash));
        line.as_object_mut().unwrap().remove("hash");
        let content: serde_json::Value = serde_json::from_str(&entry.canonical_content()).unwrap();
        assert_eq!(line, content);
    }

    #[test]
    fn seq_and_prev_hash_are_hashed_so_an_entry_cannot_move() {
        let first = content().seal(org(), 1, GENESIS_HASH.to_vec());
        let moved = content().seal(org(), 2, GENESIS_HASH.to_vec());
        let relinked = content().seal(org(), 1, vec![1; 32]);
        assert_ne!(first.hash, moved.hash);
        assert_ne!(first.hash, relinked.hash);
    }

    /// The worked example of `docs/audit-chain.md`, hash for hash.
    #[test]
    fn the_documented_example_hashes_as_documented() {
        let uuid = |text: &str| Uuid::parse_str(text).unwrap();
        let org = uuid("0190e5a4-0000-7000-8000-0000000000ff");
        let first = EntryContent {
            event_id: uuid("0190e5a4-8f7c-7a3e-9b1d-2c3d4e5f6a7b"),
            recorded_at: "2026-12-06T10:15:30.123456Z".parse().unwrap(),
            actor: "user:0190e5a4-0000-7000-8000-000000000001".into(),
            impersonator_id: None,
            action: "organization.created".into(),
            target_type: "organization".into(),
            target_id: org.to_string(),
            request_id: Some("0190e5a4-8f7c-7a3e-9b1d-000000000001".into()),
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8.5.0".into()),
        }
        .seal(org, 1, GENESIS_HASH.to_vec());
        assert_eq!(
            to_hex(&first.hash),
            "b4c7a1c4e3197a9d3e17c1d6832a9d3f15f55d452463e39b11d5e9cb2b75c002"
        );
        let second = EntryContent {
            event_id: uuid("0190e5a4-9a00-7b00-8c00-0d0e0f101112"),
            recorded_at: "2026-12-06T10:16:02.000001Z".parse().unwrap(),
            actor: "user:0190e5a4-0000-7000-8000-000000000001".into(),
            impersonator_id: Some("0190e5a4-0000-7000-8000-0000000000ad".into()),
            action: "api_key.created".into(),
            target_type: "api_key".into(),
            target_id: "0190e5a4-9a00-7b00-8c00-0000000000aa".into(),
            request_id: Some("0190e5a4-9a00-7b00-8c00-000000000002".into()),
            client_ip: Some("2001:db8::17".into()),
            user_agent: Some("Mozilla/5.0 \"Kiosk\" é".into()),
        }
        .seal(org, 2, first.hash.clone());
        assert_eq!(
            to_hex(&second.hash),
            "c770bbbc5ac548a11cbd97b3f10677c89cbf18260f3264e5b04fe3337c9804a6"
        );
    }

    #[test]
    fn times_are_written_in_utc_with_six_fractional_digits() {
        let time = "2026-01-02T03:04:05+02:00".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(timestamp(time), "2026-01-02T01:04:05.000000Z");
    }
}
