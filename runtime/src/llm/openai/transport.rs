//! The HTTP layer under async-openai: sends each request once and turns a refusal into an
//! [`HttpFailure`] that keeps what the retry policy needs (status, `Retry-After`) and the
//! provider's own message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Longest provider message passed on (an HTML error page is not a message).
const MESSAGE_LIMIT: usize = 1000;

/// A tower service that executes async-openai's requests with reqwest, without retrying.
#[derive(Clone, Debug)]
pub(super) struct Transport {
    client: reqwest::Client,
}

impl Transport {
    pub(super) fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = factory.build().await?;
            let response = client.execute(request).await.map_err(OpenAIError::Reqwest)?;
            if response.status().is_success() {
                return Ok(response);
            }
            Err(OpenAIError::Boxed(Box::new(HttpFailure::read(response).await)))
        })
    }
}

/// A provider's refusal: a status other than 2xx.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub(super) struct HttpFailure {
    pub(super) status: u16,
    /// The provider's `Retry-After`, seconds or an HTTP date.
    pub(super) retry_after: Option<Duration>,
    pub(super) message: String,
    /// The body says asking again cannot help (OpenAI's `insufficient_quota`, sent as a 429).
    pub(super) permanent: bool,
}

impl HttpFailure {
    async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let message = provider_message(&body)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_owned());
        Self {
            status: status.as_u16(),
            retry_after,
            message,
            permanent: out_of_quota(&body),
        }
    }
}

/// `Retry-After` as a delay: whole seconds, or an HTTP date (a date past is no delay).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The message of an OpenAI-style error body (`{"error": {"message": …}}`, or a bare
/// `{"error": "…"}` or `{"message": …}` as some compatible servers send), else the body's
/// text, cut to [`MESSAGE_LIMIT`] characters.
fn provider_message(body: &[u8]) -> Option<String> {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|json| {
        let error = json.get("error").unwrap_or(&json);
        error
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| error.as_str())
            .map(str::to_owned)
    });
    let message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if message.is_empty() {
        return None;
    }
    Some(message.chars().take(MESSAGE_LIMIT).collect())
}

/// Whether an error body says the account is out of quota: a 429 that no wait will lift.
fn out_of_quota(body: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let error = &json["error"];
    [&error["type"], &error["code"]]
        .into_iter()
        .any(|field| field.as_str() == Some("insufficient_quota"))
}

/// Removes the API key from text that leaves the model (providers quote a wrong key back).
#[derive(Clone)]
pub(super) struct Redactor {
    api_key: SecretString,
}

impl Redactor {
    pub(super) fn new(api_key: SecretString) -> Self {
        Self { api_key }
    }

    pub(super) fn redact(&self, text: &str) -> String {
        let key = self.api_key.expose_secret();
        if key.is_empty() {
            return text.to_owned();
        }
        text.replace(key, "[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn retry_after_in_seconds_is_read() {
        assert_eq!(retry_after(&headers("7")), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_as_an_http_date_is_the_time_until_it() {
        let in_ten = chrono::Utc::now() + chrono::Duration::seconds(10);
        let wait = retry_after(&headers(&in_ten.to_rfc2822())).unwrap();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(retry_after(&headers(date)), Some(Duration::ZERO));
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        assert_eq!(retry_after(&headers("soon")), None);
    }

    #[test]
    fn provider_messages_are_found_in_the_usual_shapes() {
        let openai = br#"{"error": {"message": "bad model", "type": "invalid_request_error"}}"#;
        assert_eq!(provider_message(openai).unwrap(), "bad model");
        assert_eq!(provider_message(br#"{"error": "nope"}"#).unwrap(), "nope");
        assert_eq!(
            provider_message(br#"{"message": "slow down"}"#).unwrap(),
            "slow down"
        );
        assert_eq!(
            provider_message(b"  upstream broke \n").unwrap(),
            "upstream broke"
        );
        assert_eq!(provider_message(b""), None);
        assert_eq!(provider_message(&[b'x'; 5000]).unwrap().len(), MESSAGE_LIMIT);
    }

    #[test]
    fn the_key_is_redacted() {
        let redactor = Redactor::new(SecretString::from("sk-secret"));
        assert_eq!(
            redactor.redact("Incorrect API key sk-secret."),
            "Incorrect API key [redacted]."
        );
    }
}
