//! The billing application service: opening accounts, buying credits.

use domain::Role;
use std::sync::Arc;

use domain::credit_account::{CreditAccount, CreditAccountCommand, CreditAccountError, CreditAccountEvent};
use domain::idempotency::IdempotencyKey;
use domain::organization::OrganizationError;
use eventstore::store::CoalescingBus;
use eventstore::{CommandBus, CommandContext, CommandError, CommitObserver, EventStore, RequestOrigin};
use sqlx::PgPool;
use uuid::Uuid;

use super::stripe::{CheckoutSession, StripeCallError, StripeClient};
use super::{BillingConfig, BillingError, StripeConfig};
use crate::identity::{Caller, IdentityError};

/// How many times a command on one account is decided again after losing a race with another
/// node, before the caller is told to retry. Higher than the store's default: every LLM call of
/// an organization goes through its one account, and a lost race costs one short query.
const ACCOUNT_ATTEMPTS: usize = 20;

/// Grants remembered for a receiver of [`BillingService::credits_granted`] that is behind.
const GRANT_SIGNALS: usize = 256;

/// Stripe's smallest charge in cents (USD 0.50).
const STRIPE_MINIMUM_CHARGE: u64 = 50;

/// The `organization.created` event of an organization: what its account is opened for.
const ORGANIZATION_CREATED: &str = "
    SELECT event_id FROM events
     WHERE aggregate_type = 'organization' AND aggregate_id = $1 AND sequence = 1";

/// Billing's application service: one per process, shared by the routes and (later) the
/// runtime, so every reservation of a process goes through one cache and one lock per account.
pub struct BillingService {
    pub(super) pool: PgPool,
    pub(super) store: EventStore,
    /// Every LLM call of every run reserves from and is charged on its organization's account:
    /// commands that queue on one account share an append.
    pub(super) accounts: CoalescingBus<CreditAccount>,
    pub(super) config: BillingConfig,
    pub(super) stripe: Option<StripeClient>,
    granted: tokio::sync::broadcast::Sender<Uuid>,
}

/// Tells [`BillingService::credits_granted`]'s receivers of every grant this process commits.
struct GrantSignal(tokio::sync::broadcast::Sender<Uuid>);

impl CommitObserver<CreditAccount> for GrantSignal {
    fn committed(&self, aggregate_id: &str, _context: &CommandContext, events: &[CreditAccountEvent]) {
        let granted = events
            .iter()
            .any(|event| matches!(event, CreditAccountEvent::Granted { .. }));
        if let (true, Ok(org_id)) = (granted, aggregate_id.parse()) {
            // No receiver (a process that runs nothing) is fine.
            let _ = self.0.send(org_id);
        }
    }
}

impl BillingService {
    /// A service over `store` with `config`.
    pub fn new(store: &EventStore, config: BillingConfig) -> Self {
        let stripe = config.stripe.as_ref().and_then(|stripe| {
            let key = stripe.secret_key.clone()?;
            Some(StripeClient::new(&stripe.api_base, key))
        });
        let (granted, _) = tokio::sync::broadcast::channel(GRANT_SIGNALS);
        Self {
            pool: store.pool().clone(),
            store: store.clone(),
            accounts: CoalescingBus::new(
                CommandBus::new(store.clone(), ())
                    .with_attempts(ACCOUNT_ATTEMPTS)
                    .with_observer(Arc::new(GrantSignal(granted.clone()))),
            ),
            config,
            stripe,
            granted,
        }
    }

    /// The organizations credits are granted to from now on, as this process grants them
    /// (purchases through the webhook, signup grants): what wakes runs waiting for credits at
    /// once rather than at the next sweep. A receiver that falls behind misses some; the sweep
    /// still finds their runs.
    pub fn credits_granted(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.granted.subscribe()
    }

    /// The organization's account, opened now with the signup grant if it has none yet.
    ///
    /// Registration opens it right after creating the organization; an organization created
    /// before billing existed, or whose registration stopped in between, gets its account (and
    /// the signup grant, once) the first time anything touches it.
    pub async fn account(&self, org_id: Uuid) -> Result<CreditAccount, BillingError> {
        let account = self.accounts.bus().load(&org_id.to_string()).await?;
        if account.exists() {
            return Ok(account);
        }
        self.open(org_id).await
    }

    /// The organization's balance as this process last knew it, without asking the store
    /// (`None` when it holds no state of the account). It may be behind other nodes' entries:
    /// never refuse on it alone.
    pub async fn remembered_balance(&self, org_id: Uuid) -> Option<i64> {
        let (account, _) = self.accounts.bus().remembered(&org_id.to_string()).await?;
        account.exists().then(|| account.balance())
    }

    /// Opens the account with the configured signup grant, tied to the organization's creation
    /// event. Opening an open account answers it as it is.
    pub async fn open(&self, org_id: Uuid) -> Result<CreditAccount, BillingError> {
        let created: Option<(Uuid,)> = sqlx::query_as(ORGANIZATION_CREATED)
            .bind(org_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some((organization_event_id,)) = created else {
            return Err(IdentityError::Organization(OrganizationError::NotFound).into());
        };
        let mut context = CommandContext::system(Some(org_id));
        context.causation_id = Some(organization_event_id);
        let open = CreditAccountCommand::Open {
            org_id,
            organization_event_id,
            signup_grant: self.config.signup_credits,
        };
        match self.accounts.execute(&org_id.to_string(), open, &context).await {
            Ok(committed) => Ok(committed.state),
            Err(CommandError::Rejected(CreditAccountError::AlreadyOpen)) => {
                Ok(self.accounts.bus().load(&org_id.to_string()).await?)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Executes `command` on the organization's account, opening it first if it has none.
    pub(super) async fn execute(
        &self,
        org_id: Uuid,
        command: CreditAccountCommand,
        context: &CommandContext,
    ) -> Result<eventstore::Committed<CreditAccount>, BillingError> {
        let key = org_id.to_string();
        match self.accounts.execute(&key, command.clone(), context).await {
            Err(CommandError::Rejected(CreditAccountError::NotOpen)) => {
                self.open(org_id).await?;
                Ok(self.accounts.execute(&key, command, context).await?)
            }
            other => Ok(other?),
        }
    }

    /// Creates a Stripe Checkout Session for `credits` (owners and admins). The session carries
    /// the organization and the credits in its metadata (and its PaymentIntent's), which the
    /// webhook reads back when Stripe reports the payment.
    ///
    /// With the client's idempotency `key`, Stripe's own key is drawn from it (and the
    /// organization), so the same request repeated answers the session Stripe created for the
    /// first, for as long as Stripe keeps keys (24 hours); without one, each request is its own.
    pub async fn checkout(
        &self,
        caller: &Caller,
        credits: u64,
        key: Option<&IdempotencyKey>,
        origin: Option<RequestOrigin>,
    ) -> Result<CheckoutSession, BillingError> {
        let org_id = caller.org()?;
        caller.require(Role::can_buy_credits, "buy credits")?;
        let (Some(config), Some(stripe)) = (&self.config.stripe, &self.stripe) else {
            return Err(BillingError::StripeNotConfigured("STRIPE_SECRET_KEY"));
        };
        let amount = price_of(config, credits);
        if amount < STRIPE_MINIMUM_CHARGE {
            return Err(BillingError::PurchaseTooSmall {
                min_credits: minimum_credits(config),
            });
        }
        let form = checkout_form(config, org_id, credits, amount);
        let idempotency_key = match (key, origin) {
            (Some(key), _) => format!("agentry-checkout-{}", key.id_for(org_id, "checkout", Uuid::nil())),
            (None, Some(origin)) => format!("agentry-checkout-{}", origin.request_id),
            (None, None) => Uuid::now_v7().to_string(),
        };
        let session = stripe
            .create_checkout_session(&form, &idempotency_key)
            .await
            .map_err(|error| match error {
                // Stripe keeps the first request's parameters with the key.
                StripeCallError::KeyReused(_) => {
                    IdentityError::IdempotencyKeyReused("number of credits").into()
                }
                StripeCallError::Failed(text) => BillingError::Stripe(text),
            })?;
        tracing::info!(org = %org_id, credits, amount, session = %session.id, "checkout session created");
        Ok(session)
    }
}

/// What `credits` cost, in cents, rounded up.
fn price_of(config: &StripeConfig, credits: u64) -> u64 {
    let cents = u128::from(credits) * u128::from(config.price_per_million_credits);
    u64::try_from(cents.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The fewest credits whose price reaches Stripe's smallest charge.
fn minimum_credits(config: &StripeConfig) -> u64 {
    let price = config.price_per_million_credits.max(1);
    (STRIPE_MINIMUM_CHARGE * 1_000_000).div_ceil(price)
}

fn checkout_form(config: &StripeConfig, org_id: Uuid, credits: u64, amount: u64) -> Vec<(String, String)> {
    let pairs = [
        ("mode", "payment".to_owned()),
        ("success_url", config.success_url.clone()),
        ("cancel_url", config.cancel_url.clone()),
        ("client_reference_id", org_id.to_string()),
        ("metadata[org_id]", org_id.to_string()),
        ("metadata[credits]", credits.to_string()),
        ("payment_intent_data[metadata][org_id]", org_id.to_string()),
        ("payment_intent_data[metadata][credits]", credits.to_string()),
        ("line_items[0][quantity]", "1".to_owned()),
        ("line_items[0][price_data][currency]", config.currency.clone()),
        ("line_items[0][price_data][unit_amount]", amount.to_string()),
        (
            "line_items[0][price_data][product_data][name]",
            format!("{credits} Agentry credits"),
        ),
    ];
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}
