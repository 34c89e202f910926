//! Checking an organization's chain, one entry at a time in `seq` order, in constant memory:
//! what `GET /v1/audit/verify` and `agentry audit verify` do, and what `scripts/verify-audit.py`
//! does to an export.
//!
//! Each entry is checked in three steps, and the first failure is the chain's first break:
//! 1. its `seq` is the next one (1 for the first entry);
//! 2. its `prev_hash` is the hash of the entry before it (32 zero bytes for the first);
//! 3. its `hash` is the hash of its content.

use std::fmt;

use super::entry::{AuditEntry, GENESIS_HASH, to_hex};

/// How the chain breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// No entry has this `seq`: the next entry found has a later one (an entry was deleted).
    Missing,
    /// An entry with a `seq` already passed (entries reordered or repeated; exports only, the
    /// table cannot hold two entries with one `seq`).
    OutOfOrder,
    /// This entry was not in the chain when the next one was sealed: the next one links to the
    /// entry before this one (an entry inserted after the fact).
    Inserted,
    /// The entry's `prev_hash` is not the previous entry's hash: the entry before it is not the
    /// one it was sealed after (replaced, or altered together with its hash), or this entry was
    /// moved here.
    PrevHashMismatch,
    /// The entry's content does not hash to its `hash`: the entry was altered.
    HashMismatch,
}

impl BreakKind {
    /// The stable name clients and the Python verifier use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::OutOfOrder => "out_of_order",
            Self::Inserted => "inserted",
            Self::PrevHashMismatch => "prev_hash_mismatch",
            Self::HashMismatch => "hash_mismatch",
        }
    }
}

/// The first broken link of a chain: the entry (by `seq`) where it breaks, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Break {
    /// The entry named: the missing one, the inserted one, or the one that fails its check.
    pub seq: i64,
    /// How it breaks.
    pub kind: BreakKind,
}

impl fmt::Display for Break {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match self.kind {
            BreakKind::Missing => write!(formatter, "entry {seq} is missing"),
            BreakKind::OutOfOrder => write!(formatter, "entry {seq} is out of order"),
            BreakKind::Inserted => write!(
                formatter,
                "entry {seq} was inserted (the entry after it was sealed right after entry {})",
                seq - 1
            ),
            BreakKind::PrevHashMismatch => write!(
                formatter,
                "entry {seq} does not link to the entry before it (prev_hash mismatch)"
            ),
            BreakKind::HashMismatch => {
                write!(
                    formatter,
                    "entry {seq} was altered (its content does not hash to its hash)"
                )
            }
        }
    }
}

/// A walk along one chain; feed it the entries in order with [`ChainCheck::check`].
#[derive(Clone, Debug)]
pub struct ChainCheck {
    expected_seq: i64,
    previous_hash: Vec<u8>,
    /// The hash before `previous_hash`, to recognise an inserted entry.
    hash_before: Option<Vec<u8>>,
    checked: u64,
    broken: Option<Break>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            previous_hash: GENESIS_HASH.to_vec(),
            hash_before: None,
            checked: 0,
            broken: None,
        }
    }
}

impl ChainCheck {
    /// A walk from the start of a chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry; once the chain is broken, later entries are ignored. Returns the
    /// first break so far.
    pub fn check(&mut self, entry: &AuditEntry) -> Option<Break> {
        if self.broken.is_none() {
            match self.first_failure(entry) {
                Some(broken) => self.broken = Some(broken),
                None => {
                    self.checked += 1;
                    self.expected_seq = entry.seq + 1;
                    let previous = std::mem::replace(&mut self.previous_hash, entry.hash.clone());
                    self.hash_before = Some(previous);
                }
            }
        }
        self.broken
    }

    fn first_failure(&self, entry: &AuditEntry) -> Option<Break> {
        let at = |seq, kind| Some(Break { seq, kind });
        if entry.seq > self.expected_seq {
            return at(self.expected_seq, BreakKind::Missing);
        }
        if entry.seq < self.expected_seq {
            return at(entry.seq, BreakKind::OutOfOrder);
        }
        if entry.prev_hash != self.previous_hash {
            return match &self.hash_before {
                Some(before) if *before == entry.prev_hash => at(entry.seq - 1, BreakKind::Inserted),
                _ => at(entry.seq, BreakKind::PrevHashMismatch),
            };
        }
        if entry.computed_hash().as_slice() != entry.hash.as_slice() {
            return at(entry.seq, BreakKind::HashMismatch);
        }
        None
    }

    /// Entries that verified.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The first break, if the chain has one so far.
    pub fn broken(&self) -> Option<Break> {
        self.broken
    }

    /// The last verified entry's `seq` and hash (hex): a checkpoint to keep outside, which a
    /// later export must still contain. `None` before the first entry.
    pub fn head(&self) -> Option<(i64, String)> {
        (self.checked > 0).then(|| (self.expected_seq - 1, to_hex(&self.previous_hash)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::audit::entry::EntryContent;

    /// A well-formed chain of `n` entries.
    fn chain(n: i64) -> Vec<AuditEntry> {
        let org = Uuid::now_v7();
        let mut entries: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = entries
                .last()
                .map_or(GENESIS_HASH.to_vec(), |entry| entry.hash.clone());
            entries.push(content(seq).seal(org, seq, prev));
        }
        entries
    }

    fn content(seq: i64) -> EntryContent {
        EntryContent {
            event_id: Uuid::now_v7(),
            recorded_at: Utc::now(),
            actor: "system".into(),
            impersonator_id: None,
            action: format!("thing.happened_{seq}"),
            target_type: "thing".into(),
            target_id: seq.to_string(),
            request_id: None,
            client_ip: None,
            user_agent: None,
        }
    }

    fn first_break(entries: &[AuditEntry]) -> Option<Break> {
        let mut check = ChainCheck::new();
        entries.iter().find_map(|entry| check.check(entry))
    }

    fn at(seq: i64, kind: BreakKind) -> Option<Break> {
        Some(Break { seq, kind })
    }

    #[test]
    fn an_intact_chain_has_no_break_and_its_head_is_the_last_entry() {
        let entries = chain(5);
        let mut check = ChainCheck::new();
        for entry in &entries {
            assert_eq!(check.check(entry), None);
        }
        assert_eq!(check.checked(), 5);
        assert_eq!(check.head(), Some((5, to_hex(&entries[4].hash))));
    }

    #[test]
    fn an_altered_entry_is_named() {
        let mut entries = chain(5);
        entries[2].content.actor = "systen".into();
        assert_eq!(first_break(&entries), at(3, BreakKind::HashMismatch));
    }

    #[test]
    fn a_deleted_entry_is_named_missing() {
        let mut entries = chain(5);
        entries.remove(1);
        assert_eq!(first_break(&entries), at(2, BreakKind::Missing));
    }

    #[test]
    fn an_entry_re_hashed_after_altering_breaks_the_next_link() {
        let mut entries = chain(5);
        entries[2].content.actor = "systen".into();
        entries[2].hash = entries[2].computed_hash().to_vec();
        assert_eq!(first_break(&entries), at(4, BreakKind::PrevHashMismatch));
    }

    #[test]
    fn an_inserted_entry_is_named_even_with_a_valid_hash() {
        let mut entries = chain(4);
        let forged = content(99).seal(entries[0].org_id, 3, entries[1].hash.clone());
        for entry in &mut entries[2..] {
            entry.seq += 1;
        }
        entries.insert(2, forged);
        assert_eq!(first_break(&entries), at(3, BreakKind::Inserted));
    }

    #[test]
    fn entries_swapped_in_place_are_caught_at_the_first() {
        let mut entries = chain(5);
        entries.swap(1, 3);
        entries[1].seq = 2;
        entries[3].seq = 4;
        assert_eq!(first_break(&entries), at(2, BreakKind::PrevHashMismatch));
    }

    #[test]
    fn lines_reordered_in_an_export_are_caught() {
        let mut entries = chain(5);
        entries.swap(1, 2);
        assert_eq!(first_break(&entries), at(2, BreakKind::Missing));
        let mut repeated = chain(3);
        repeated.insert(2, repeated[1].clone());
        assert_eq!(first_break(&repeated), at(2, BreakKind::OutOfOrder));
    }

    #[test]
    fn a_first_entry_not_linked_to_the_genesis_hash_is_caught() {
        let mut entries = chain(2);
        entries[0].prev_hash = vec![1; 32];
        assert_eq!(first_break(&entries), at(1, BreakKind::PrevHashMismatch));
    }
}
