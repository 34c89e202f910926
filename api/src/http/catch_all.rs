use poem::http::StatusCode;
use poem::web::Json;
use poem::{IntoResponse, Response};
use poem_openapi::error::ParseRequestPayloadError;

use super::Problem;
use super::text::NUL_REFUSED;

/// Turns every error that did not come from a typed operation response into problem+json:
/// unknown routes, wrong methods, unparsable bodies, bad parameters, wrong content types.
/// Errors already shaped by an operation pass through unchanged.
pub async fn into_problem(error: poem::Error) -> Response {
    if error.is_from_response() {
        return error.into_response();
    }
    if let Some(refused) = error.downcast_ref::<ParseRequestPayloadError>()
        && refused.reason.contains(NUL_REFUSED)
    {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return problem_response(Problem::new(status, "unstorable_text", refused.reason.clone()));
    }
    let status = error.status();
    let (code, detail) = if status.is_server_error() {
        tracing::error!(%error, "unhandled error");
        (
            "internal",
            "an internal error occurred; it has been logged with this request's id".to_owned(),
        )
    } else {
        (code_for(status), error.to_string())
    };
    problem_response(Problem::new(status, code, detail))
}

/// A problem as a complete response with the problem+json content type.
pub fn problem_response(problem: Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Json(serde_json::json!({
        "type": problem.problem_type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }))
    .with_status(status)
    .into_response();
    response.headers_mut().insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static("application/problem+json"),
    );
    response
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "client_error",
    }
}
