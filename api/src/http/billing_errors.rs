//! Billing outcomes as problems: one exhaustive `match` per error enum, no catch-all arm, so a
//! refusal added to the domain does not compile until it has its own status and code.

use commands::billing::{BillingError, SignatureError};
use domain::credit_account::CreditAccountError;
use poem::http::StatusCode;

use super::{ApiError, ErrorCode};

/// Seconds before asking Stripe again.
const STRIPE_RETRY_AFTER: u64 = 30;
/// Seconds before retrying a deployment without Stripe: an operator must configure it first.
const NOT_CONFIGURED_RETRY_AFTER: u64 = 3_600;

/// One problem per billing outcome. Internal details are logged, never shown.
impl From<BillingError> for ApiError {
    fn from(error: BillingError) -> Self {
        let detail = error.to_string();
        let (status, code) = match error {
            BillingError::Account(refusal) => account_problem(refusal),
            BillingError::StripeNotConfigured(_) => {
                return Self::unavailable(ErrorCode::StripeNotConfigured, detail, NOT_CONFIGURED_RETRY_AFTER);
            }
            BillingError::Stripe(_) => {
                return Self::unavailable(ErrorCode::StripeUnavailable, detail, STRIPE_RETRY_AFTER);
            }
            BillingError::Signature(refusal) => (StatusCode::BAD_REQUEST, signature_code(refusal)),
            BillingError::InvalidEvent(_) => (StatusCode::BAD_REQUEST, ErrorCode::StripeEventInvalid),
            BillingError::PurchaseTooSmall { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::PurchaseTooSmall)
            }
            // The reservation service answers the first reservation instead; never a client's.
            BillingError::ReservationKeyTaken => return Self::internal(&detail),
            BillingError::Identity(other) => return other.into(),
        };
        Self::with_status(status, code, detail)
    }
}

fn account_problem(error: CreditAccountError) -> (StatusCode, ErrorCode) {
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    match error {
        CreditAccountError::AlreadyOpen => (StatusCode::CONFLICT, ErrorCode::CreditAccountExists),
        CreditAccountError::NotOpen => (StatusCode::NOT_FOUND, ErrorCode::NoCreditAccount),
        CreditAccountError::InsufficientCredits { .. } => {
            (StatusCode::PAYMENT_REQUIRED, ErrorCode::InsufficientCredits)
        }
        CreditAccountError::InvalidAmount { .. } => (INVALID, ErrorCode::InvalidCreditAmount),
        CreditAccountError::InvalidKey { .. } => (INVALID, ErrorCode::InvalidLlmCallKey),
        CreditAccountError::UnknownReservation => (StatusCode::NOT_FOUND, ErrorCode::UnknownReservation),
        CreditAccountError::InvalidReason { .. } => (INVALID, ErrorCode::RefundReasonInvalid),
        CreditAccountError::UnknownPurchase => (StatusCode::NOT_FOUND, ErrorCode::UnknownPurchase),
        CreditAccountError::ExceedsPurchase { .. } => (INVALID, ErrorCode::RefundExceedsPurchase),
    }
}

fn signature_code(error: SignatureError) -> ErrorCode {
    match error {
        SignatureError::Missing => ErrorCode::StripeSignatureMissing,
        SignatureError::Malformed => ErrorCode::StripeSignatureMalformed,
        SignatureError::Mismatch => ErrorCode::StripeSignatureInvalid,
        SignatureError::Stale { .. } => ErrorCode::StripeSignatureStale,
    }
}
