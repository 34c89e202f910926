//! A caller authorized for a write with a standing its append confirms.

use eventstore::{CallerStanding, DecidedWith};

use super::authenticate::UserCredentials;
use super::{Caller, CallerIds};

/// A caller resolved for a write route: possibly from a standing this process remembered
/// rather than one read for this request, and then only usable by a write whose append
/// confirms that standing ([`decided_with`](Self::decided_with)).
///
/// Kept apart from [`Caller`] so that such a caller cannot reach a route or a service that
/// would act on its remembered standing without the append's check: only services of this
/// crate written for it see the [`Caller`] inside, and they answer a refusal or an error only
/// once [`confirmed`](Self::confirmed) (see
/// [`IdentityService::confirm`](super::IdentityService::confirm)).
#[derive(Clone, Debug)]
pub struct GuardedCaller {
    caller: Caller,
    /// The user credentials the caller was resolved from (`None` for an API key, whose
    /// standing is read on every request), and the standing the append must find unchanged.
    user: Option<(UserCredentials, CallerStanding)>,
    /// Whether the standing came from memory rather than a read made for this request.
    remembered: bool,
}

impl GuardedCaller {
    /// An API key's caller, read for this request.
    pub(super) fn key(caller: Caller) -> Self {
        Self {
            caller,
            user: None,
            remembered: false,
        }
    }

    /// A user's caller with `standing`, read for this request (`remembered` false) or not.
    pub(super) fn user(
        caller: Caller,
        credentials: UserCredentials,
        standing: CallerStanding,
        remembered: bool,
    ) -> Self {
        Self {
            caller,
            user: Some((credentials, standing)),
            remembered,
        }
    }

    /// The caller as authorized, from a standing that may be remembered and no longer hold.
    /// Decide with it only what an append guarded by [`decided_with`](Self::decided_with)
    /// writes, and answer no refusal decided with it unless [`confirmed`](Self::confirmed).
    pub(crate) fn unconfirmed(&self) -> &Caller {
        &self.caller
    }

    /// Which rate limits its requests count against: ids, which no change of standing alters.
    pub fn ids(&self) -> CallerIds {
        self.caller.ids()
    }

    /// The user credentials it was resolved from, for reading its standing again.
    pub(super) fn credentials(&self) -> Option<UserCredentials> {
        self.user.as_ref().map(|(credentials, _)| *credentials)
    }

    /// Whether its standing was read for this request (or it is an API key, read on every
    /// request): a refusal decided with it may be answered as is.
    pub fn confirmed(&self) -> bool {
        !self.remembered
    }

    /// Whether its writes are guarded by a standing (every user's), so that an append that
    /// wrote nothing may have found the standing changed.
    pub(crate) fn guarded(&self) -> bool {
        self.user.is_some()
    }

    /// `decided_with`, with this caller's standing to be confirmed by the append.
    pub(crate) fn decided_with(&self, decided_with: DecidedWith) -> DecidedWith {
        decided_with.with_standing(self.user.as_ref().map(|(_, standing)| standing.clone()))
    }
}
