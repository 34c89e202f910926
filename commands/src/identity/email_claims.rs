//! Claiming an email address for a user, keyed so that lookalike addresses collide.
//!
//! The email claim aggregate's id is a digest of the address's confusable key (UTS #39
//! skeleton, [`EmailAddress::confusable_key`]): `valid@x.com` and `vаlid@x.com` (Cyrillic `а`)
//! race for one claim, so only one of them can hold an account. Look-ups (login, reset, members)
//! still match the exact normalized address, which is safe because of this: a lookalike of a
//! registered address can never be registered, so a look-up by it finds no account at all.
//!
//! Claims written before this key existed are keyed on the exact address; they are still read,
//! so an account made then cannot be registered a second time under the same address (which
//! would also break the users view's unique index). A lookalike of such an old address is not
//! caught unless its owner's claim is rewritten; new accounts are.

use domain::EmailAddress;
use domain::email_claim::EmailClaimCommand;
use eventstore::{CommandContext, CommandError};
use uuid::Uuid;

use super::{IdentityError, IdentityService, secrets};

/// Who holds an address once a claim was attempted.
pub(super) enum Holder {
    /// The claim was won for the candidate user.
    Candidate(Uuid),
    /// Another attempt, or an existing account, holds it.
    Existing(Uuid),
}

impl IdentityService {
    /// Claims `email` for `candidate`, or names who already holds it (or a lookalike of it).
    pub(super) async fn claim_email_for(
        &self,
        email: &EmailAddress,
        candidate: Uuid,
        context: &CommandContext,
    ) -> Result<Holder, IdentityError> {
        if let Some(holder) = self.exact_address_holder(email).await? {
            return Ok(Holder::Existing(holder));
        }
        let claim_id = email_claim_id(email);
        let claim = EmailClaimCommand::ClaimEmail { user_id: candidate };
        match self.emails.create(&claim_id, claim, context).await {
            Ok(_) => Ok(Holder::Candidate(candidate)),
            Err(CommandError::Rejected(_)) => self
                .emails
                .load(&claim_id)
                .await?
                .claimed_by()
                .map(Holder::Existing)
                .ok_or_else(|| IdentityError::Internal("email claim without a user".to_owned())),
            Err(other) => Err(other.into()),
        }
    }

    /// The user of a claim keyed on the exact address (written before claims were keyed on
    /// the confusable key), when that user exists.
    async fn exact_address_holder(&self, email: &EmailAddress) -> Result<Option<Uuid>, IdentityError> {
        let exact = secrets::secret_hash(email.as_str());
        let Some(holder) = self.emails.load(&exact).await?.claimed_by() else {
            return Ok(None);
        };
        Ok(self
            .users
            .load(&holder.to_string())
            .await?
            .exists()
            .then_some(holder))
    }
}

/// The email claim's aggregate id: a digest (addresses never appear in NATS subjects or ids)
/// of the confusable key, tagged so it never equals an exact-address claim's id.
fn email_claim_id(email: &EmailAddress) -> String {
    secrets::secret_hash(&format!("confusable-key:{}", email.confusable_key()))
}
