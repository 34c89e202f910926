//! The `Idempotency-Key` header of the requests that create something (a conversation, a run):
//! sent again with the same request, it answers what the first one created
//! (`commands/src/runs/repeated.rs`).

use domain::idempotency::IdempotencyKey;
use poem::Request;

use super::{ApiError, ErrorCode};

/// The header's name.
const HEADER: &str = "Idempotency-Key";

/// The key the request sent, if any: `parsed` is the operation's documented header parameter,
/// whose validators refuse a bad key first (422 `invalid_idempotency_key`,
/// `schema_refusals.rs`). poem reads a header that is not text (bytes above 0x7F) as absent;
/// the request's own headers tell that from no header at all, so such a key is refused
/// rather than ignored, which would make a request the client meant to be safe to repeat one
/// that is not; so are several such headers, of which poem would read the first.
pub fn idempotency_key(parsed: Option<&str>, request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let invalid = |detail: String| ApiError::unprocessable(ErrorCode::InvalidIdempotencyKey, detail);
    if request.headers().get_all(HEADER).iter().nth(1).is_some() {
        return Err(invalid(format!("send one {HEADER} header, not several")));
    }
    match (parsed, request.headers().contains_key(HEADER)) {
        (Some(text), _) => IdempotencyKey::new(text)
            .map(Some)
            .map_err(|refused| invalid(refused.to_string())),
        (None, true) => Err(invalid(format!(
            "the {HEADER} header is not text; {}",
            domain::idempotency::InvalidIdempotencyKey
        ))),
        (None, false) => Ok(None),
    }
}
