//! Registration: claim the email, create the user, create their first organization, mail an
//! email verification link, start a session.
//!
//! The steps touch three aggregates, so a crash (or a failed append) can stop between any two
//! of them. A retry of the same registration must be able to finish what the earlier attempt
//! left, instead of finding the address claimed forever by a user who does not exist:
//!
//! - the claim records the user id, and a claim whose user was never created is reused
//!   (the retry creates that very user);
//! - the first organization's id is derived from the user id, so a retry that finds the user
//!   but not the organization creates exactly that organization, once; this path requires the
//!   password the user was created with, since it hands out tokens for an existing user.
//!
//! Two registrations of one address racing through a recovery end as any race does: one
//! succeeds, the other gets `email_taken`.

use domain::organization::{Organization, OrganizationCommand};
use domain::user::UserCommand;
use domain::{EmailAddress, check_new_password};
use eventstore::RequestOrigin;
use uuid::Uuid;

use super::email_claims::Holder;
use super::service::dry_run;
use super::sessions::user_context;
use super::{IdentityError, IdentityService, Registered};
use eventstore::CommandError;

/// Namespace of first-organization ids (UUID v5 of the user id): any fixed UUID works, this
/// one must simply never change.
const FIRST_ORGANIZATION: Uuid = Uuid::from_u128(0x6167_656e_7472_7900_0000_0000_0000_0001);

/// Where a registration stands once the email is claimed.
enum Claimed {
    /// The user does not exist yet: a new claim, or one an interrupted attempt left behind.
    UserMissing(Uuid),
    /// The user exists (same password) but an interrupted attempt never created their
    /// first organization.
    OrganizationMissing(Uuid),
}

impl IdentityService {
    /// Creates a user, their first organization (with them as owner) and a session.
    ///
    /// Every input is validated before anything is written; the email is claimed first, so of
    /// two racing registrations of one email exactly one gets past that step. A registration
    /// interrupted between its steps is completed by the next attempt (see the module docs).
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        org_name: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<Registered, IdentityError> {
        let email = EmailAddress::parse(email)?;
        check_new_password(password, &email)?;
        dry_run::<Organization>(create_organization(org_name, Uuid::nil())).await?;
        // Hashed before the claim, so the window between claim and user stays milliseconds.
        let password_hash = self.hashing.hash(password.to_owned()).await?;
        let user_id = match self.claim_email(&email, password, origin.clone()).await? {
            Claimed::UserMissing(user_id) => {
                self.create_user(user_id, email, password_hash, origin.clone())
                    .await?;
                user_id
            }
            Claimed::OrganizationMissing(user_id) => user_id,
        };
        let org_id = first_organization_of(user_id);
        let mut context = user_context(user_id, origin);
        context.org_id = Some(org_id);
        let created = self
            .organizations
            .create(
                &org_id.to_string(),
                create_organization(org_name, user_id),
                &context,
            )
            .await
            .map_err(lost_race)?;
        // Recorded before the answer (the mail goes later): a verification link that cannot be
        // requested (say, the hourly limit after many retried registrations) costs nothing here.
        if let Err(error) = self
            .send_email_verification(user_id, context.request.clone())
            .await
        {
            tracing::warn!(%error, user = %user_id, "no email verification link at registration");
        }
        // Kept: the new tokens' first use and the first login read the user and their
        // membership from the view.
        self.wait_for_views(
            created.appended.last(),
            "the account and its organization were created; log in once the service has caught up",
        )
        .await?;
        let tokens = self.start_session(user_id, Some(org_id), &context).await?;
        Ok(Registered {
            user_id,
            org_id,
            tokens,
        })
    }

    /// Claims the address for a new user id, or finds what an interrupted registration of it
    /// left behind.
    async fn claim_email(
        &self,
        email: &EmailAddress,
        password: &str,
        origin: Option<RequestOrigin>,
    ) -> Result<Claimed, IdentityError> {
        let candidate = Uuid::now_v7();
        let context = user_context(candidate, origin);
        let holder = match self.claim_email_for(email, candidate, &context).await? {
            Holder::Candidate(user_id) => return Ok(Claimed::UserMissing(user_id)),
            Holder::Existing(holder) => holder,
        };
        let user = self.users.load(&holder.to_string()).await?;
        if !user.exists() {
            tracing::info!(user = %holder, "registration resumes a claim whose user was never created");
            return Ok(Claimed::UserMissing(holder));
        }
        // A lookalike address's account is someone else's: nothing to resume.
        if user.email() != Some(email) {
            return Err(IdentityError::EmailTaken);
        }
        let org_id = first_organization_of(holder);
        if self.organizations.load(&org_id.to_string()).await?.exists() {
            return Err(IdentityError::EmailTaken);
        }
        let stored = user.password_hash().map(str::to_owned);
        if self.hashing.verify(password.to_owned(), stored).await? {
            tracing::info!(user = %holder, "registration resumes a user whose organization was never created");
            return Ok(Claimed::OrganizationMissing(holder));
        }
        Err(IdentityError::EmailTaken)
    }

    async fn create_user(
        &self,
        user_id: Uuid,
        email: EmailAddress,
        password_hash: String,
        origin: Option<RequestOrigin>,
    ) -> Result<(), IdentityError> {
        let register = UserCommand::RegisterUser {
            email,
            password_hash: password_hash.into(),
        };
        let context = user_context(user_id, origin);
        self.users
            .create(&user_id.to_string(), register, &context)
            .await
            .map_err(lost_race)?;
        Ok(())
    }
}

/// The id of a user's first organization: derived, so a retried registration finds it.
fn first_organization_of(user_id: Uuid) -> Uuid {
    Uuid::new_v5(&FIRST_ORGANIZATION, user_id.as_bytes())
}

fn create_organization(name: &str, owner_user_id: Uuid) -> OrganizationCommand {
    OrganizationCommand::CreateOrganization {
        name: name.to_owned(),
        owner_user_id,
    }
}

/// A refusal while creating what an interrupted registration left out means another attempt
/// of the same registration created it first.
fn lost_race<E>(error: CommandError<E>) -> IdentityError
where
    E: Into<IdentityError>,
{
    match error {
        CommandError::Rejected(_) => IdentityError::EmailTaken,
        other => other.into(),
    }
}
