//! A command decided with another aggregate's state: its append commits only while that
//! aggregate is where the decision saw it (and, when it carries one, while its caller's
//! standing is the one the decision was authorized with).

use super::CallerStanding;

/// Another aggregate a command's decision rests on, at the version it was read at.
///
/// An append carrying it commits only if that aggregate has no event after `version`, checked
/// in the append's own statement, so nothing can slip in between the check and the write. A
/// decision can then use a state remembered in memory (no query to bring it up to date) and
/// still never commit on a stale one: when the other aggregate moved, nothing is written and
/// the caller reads it again and decides again. The same holds for the caller's standing
/// ([`with_standing`](Self::with_standing)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidedWith {
    /// The other aggregate's type.
    pub aggregate_type: String,
    /// Its id.
    pub aggregate_id: String,
    /// Its version (number of events) the decision saw.
    pub version: usize,
    /// The standing the caller was authorized with, when the append must confirm it.
    pub standing: Option<CallerStanding>,
}

impl DecidedWith {
    /// `aggregate_type`/`aggregate_id` at `version`.
    pub fn new(aggregate_type: &str, aggregate_id: &str, version: usize) -> Self {
        Self {
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            version,
            standing: None,
        }
    }

    /// The same condition, and the caller's `standing` unchanged (`None`: no such condition).
    pub fn with_standing(mut self, standing: Option<CallerStanding>) -> Self {
        self.standing = standing;
        self
    }
}
