use poem::PathPattern;
use poem::error::NotFoundError;
use poem::http::StatusCode;
use poem::web::Json;
use poem::{IntoResponse, Response};
use poem_openapi::error::{ParseParamError, ParsePathError, ParseRequestPayloadError};

use super::ErrorCode;
use super::Problem;
use super::schema_refusals::{body_refusal, parameter_refusal, path_refusal};
use super::text::CONTROL_REFUSED;
use super::text_block::BLOCK_CONTROL_REFUSED;

/// Turns every error that did not come from a typed operation response into problem+json:
/// unknown routes, wrong methods, unparsable bodies, bad parameters, wrong content types.
/// Errors already shaped by an operation pass through unchanged.
pub async fn into_problem(error: poem::Error) -> Response {
    // Kept for the metrics label: the route this error happened on, as a template; none when
    // no route matched (a nest's prefix is no route).
    let pattern = if error.is::<NotFoundError>() {
        None
    } else {
        error.data::<PathPattern>().cloned()
    };
    let mut response = problem_for(error);
    if let Some(pattern) = pattern {
        response.set_data(pattern);
    }
    response
}

fn problem_for(error: poem::Error) -> Response {
    if error.is_from_response() {
        return error.into_response();
    }
    let payload = error.downcast_ref::<ParseRequestPayloadError>();
    let parameter = error.downcast_ref::<ParseParamError>();
    let path = error.downcast_ref::<ParsePathError>();
    let refused_text = payload
        .map(|payload| &payload.reason)
        .or(parameter.map(|parameter| &parameter.reason));
    if let Some(reason) = refused_text
        .filter(|reason| reason.contains(CONTROL_REFUSED) || reason.contains(BLOCK_CONTROL_REFUSED))
    {
        let status = StatusCode::BAD_REQUEST;
        return problem_response(Problem::new(status, ErrorCode::ControlCharacters, reason.clone()));
    }
    if let Some(code) = parameter.and_then(|parameter| unreadable_parameter_code(parameter.name)) {
        let detail = parameter.map_or_else(String::new, |parameter| parameter.reason.clone());
        return problem_response(Problem::new(StatusCode::BAD_REQUEST, code, detail));
    }
    let rule_broken = payload
        .and_then(|payload| body_refusal(&payload.reason))
        .or_else(|| parameter.and_then(|parameter| parameter_refusal(parameter.name, &parameter.reason)))
        .or_else(|| path.and_then(|path| path_refusal(&path.reason)));
    if let Some((code, detail)) = rule_broken {
        return problem_response(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail));
    }
    let status = error.status();
    let (code, detail) = if status.is_server_error() {
        tracing::error!(%error, "unhandled error");
        (
            ErrorCode::Internal,
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
    let mut response = Json(problem_json(&problem)).with_status(status).into_response();
    response.headers_mut().insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// The problem+json body of `problem`: every problem written outside a typed operation
/// response (here and in [`super::ProblemAcceptor`]) has this one shape.
pub fn problem_json(problem: &Problem) -> serde_json::Value {
    serde_json::json!({
        "type": problem.problem_type,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code.as_str(),
    })
}

/// Query parameters whose unreadable value has a code of its own (still a 400): clients tell a
/// malformed time from any other bad parameter.
fn unreadable_parameter_code(name: &str) -> Option<ErrorCode> {
    match name {
        "from" | "to" | "as_of" => Some(ErrorCode::InvalidTime),
        _ => None,
    }
}

fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
        StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ErrorCode::HeadersTooLarge,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Unprocessable,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
        _ => ErrorCode::BadRequest,
    }
}
