//! `GET /v1/audit`'s query read into a filter, and its cursor.
//!
//! A filter that cannot match what the log holds (a malformed actor, an action the service never
//! records, an unknown target type, a time range that ends before it starts) is refused with its
//! own code rather than answered with an empty page, which would read as "nobody did that".

use chrono::{DateTime, SecondsFormat, Utc};
use domain::Actor;
use domain::event_types::{is_aggregate_type, is_event_type};
use projections::audit::queries::AuditFilter;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::http::{ApiError, ErrorCode};

/// Longest target id accepted (ids are UUIDs or short names).
const MAX_TARGET_ID_CHARS: usize = 256;

/// The query's filters as given.
pub(super) struct FilterParams {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// The filter the parameters ask for, or the 400 naming what is wrong with them.
pub(super) fn filter(params: FilterParams) -> Result<AuditFilter, ApiError> {
    let actor = params.actor.map(|text| parse_actor(&text)).transpose()?;
    if let Some(action) = &params.action
        && !is_event_type(action)
    {
        return Err(ApiError::bad_request(
            ErrorCode::UnknownAction,
            format!("`{action}` is not an event type this service records"),
        ));
    }
    let (target_type, target_id) = match params.target {
        Some(target) => parse_target(&target)?,
        None => (None, None),
    };
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTime,
            "`from` must be before `to`",
        ));
    }
    Ok(AuditFilter {
        actor,
        action: params.action,
        target_type,
        target_id,
        from: params.from,
        to: params.to,
    })
}

/// An actor in its canonical string form (the one entries hold).
fn parse_actor(text: &str) -> Result<String, ApiError> {
    text.parse::<Actor>().map(|actor| actor.to_string()).map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidActor,
            format!("`{text}` is none of `user:<uuid>`, `api_key:<uuid>` and `system`"),
        )
    })
}

/// `<type>` or `<type>:<id>`.
fn parse_target(text: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let (target_type, target_id) = match text.split_once(':') {
        Some((target_type, id)) => (target_type, Some(id)),
        None => (text, None),
    };
    let id_ok = target_id.is_none_or(|id| !id.is_empty() && id.chars().count() <= MAX_TARGET_ID_CHARS);
    if !is_aggregate_type(target_type) || !id_ok {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTarget,
            format!("`{text}` is not `<type>` or `<type>:<id>` with a type this service records"),
        ));
    }
    Ok((Some(target_type.to_owned()), target_id.map(str::to_owned)))
}

/// The cursor of the page after the entry `seq`: the entry's `seq` and a fingerprint of the
/// organization and filter, so a cursor is refused with any other query.
pub(super) fn cursor_after(org_id: Uuid, filter: &AuditFilter, seq: i64) -> String {
    format!("{seq}.{}", fingerprint(org_id, filter))
}

/// The `seq` to continue below, from a cursor this very query (organization and filter) gave.
pub(super) fn resume_before(org_id: Uuid, filter: &AuditFilter, cursor: &str) -> Result<i64, ApiError> {
    let mismatch = || {
        ApiError::bad_request(
            ErrorCode::CursorMismatch,
            "the cursor was not given by a previous page of this query (same filters, same organization)",
        )
    };
    let (seq, print) = cursor.split_once('.').ok_or_else(mismatch)?;
    let seq: i64 = seq.parse().map_err(|_| mismatch())?;
    if seq < 1 || print != fingerprint(org_id, filter) {
        return Err(mismatch());
    }
    Ok(seq)
}

/// The first 8 bytes of SHA-256 over the organization and every filter field, in hex.
fn fingerprint(org_id: Uuid, filter: &AuditFilter) -> String {
    let time = |time: Option<DateTime<Utc>>| {
        time.map(|time| time.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_default()
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let fields = [
        org_id.to_string(),
        text(&filter.actor),
        text(&filter.action),
        text(&filter.target_type),
        text(&filter.target_id),
        time(filter.from),
        time(filter.to),
    ];
    let digest = Sha256::digest(fields.join("\n").as_bytes());
    digest[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params() -> FilterParams {
        FilterParams {
            actor: None,
            action: None,
            target: None,
            from: None,
            to: None,
        }
    }

    #[test]
    fn a_cursor_works_only_for_its_own_query_and_organization() {
        let org = Uuid::now_v7();
        let filter = AuditFilter {
            action: Some("run.queued".into()),
            ..AuditFilter::default()
        };
        let cursor = cursor_after(org, &filter, 41);
        assert_eq!(resume_before(org, &filter, &cursor).ok(), Some(41));
        assert!(resume_before(Uuid::now_v7(), &filter, &cursor).is_err());
        assert!(resume_before(org, &AuditFilter::default(), &cursor).is_err());
        for bad in ["", "41", "x.y", "0.abc", &cursor.replace("41.", "-1.")] {
            assert!(resume_before(org, &filter, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_are_a_known_type_with_an_optional_id() {
        let target = |text: &str| {
            filter(FilterParams {
                target: Some(text.into()),
                ..params()
            })
        };
        let run = target("run:0190e5a4-0000-7000-8000-000000000001").ok().unwrap();
        assert_eq!(run.target_type.as_deref(), Some("run"));
        assert!(target("organization").is_ok());
        for bad in ["runs", "run:", "", ":x"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actors_are_normalised_and_malformed_ones_refused() {
        let id = Uuid::now_v7();
        let upper = format!("user:{}", id.to_string().to_uppercase());
        let parsed = filter(FilterParams {
            actor: Some(upper),
            ..params()
        });
        assert_eq!(parsed.ok().unwrap().actor, Some(format!("user:{id}")));
        assert!(
            filter(FilterParams {
                actor: Some("robot:1".into()),
                ..params()
            })
            .is_err()
        );
    }
}
