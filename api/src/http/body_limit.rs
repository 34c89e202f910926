use poem::error::ReadBodyError;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::catch_all::problem_response;
use super::{ErrorCode, Problem};

/// Refuses bodies over a documented size with 413 problem+json, whether or not the client sent
/// `Content-Length` (poem-openapi itself reads bodies without any limit, and poem's `SizeLimit`
/// only looks at the header).
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit {
    max_bytes: usize,
}

impl BodyLimit {
    /// A limit of `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The endpoint [`BodyLimit`] wraps around the routes.
pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let declared = request
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared.is_some_and(|length| length > self.max_bytes) {
            return Ok(self.too_large());
        }
        match request.take_body().into_bytes_limit(self.max_bytes).await {
            Ok(bytes) => request.set_body(bytes),
            Err(ReadBodyError::PayloadTooLarge) => return Ok(self.too_large()),
            Err(error) => {
                let detail = format!("the request body could not be read: {error}");
                return Ok(problem_response(Problem::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRequest,
                    detail,
                )));
            }
        }
        self.inner.call(request).await.map(IntoResponse::into_response)
    }
}

impl<E> BodyLimitEndpoint<E> {
    fn too_large(&self) -> Response {
        let detail = format!("request bodies are limited to {} bytes", self.max_bytes);
        problem_response(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            detail,
        ))
    }
}
