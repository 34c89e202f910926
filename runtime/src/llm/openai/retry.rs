//! Which failures are tried again, and when.
//!
//! A call refused with 429 or 5xx, or one that could not reach the provider (or lost it
//! before the first chunk), is tried again with exponential backoff and jitter, up to
//! `max_retries` times. The provider's `Retry-After` replaces the computed delay, cut to
//! `max_delay`. Anything else is final: another 4xx will not change by asking again (nor a
//! 429 whose body says `insufficient_quota`: OpenAI's "out of credit"), a
//! malformed answer neither, and a timeout has already spent the call's budget. Retries
//! only ever happen before the stream yields its first event: [`RetryPolicy::run`] wraps
//! the opening of a call, never its streaming.

use std::future::Future;
use std::time::Duration;

use async_openai::error::OpenAIError;
use backon::{ExponentialBuilder, Retryable};

use super::transport::{HttpFailure, Redactor};
use crate::llm::LlmError;

/// Why one attempt failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The provider answered with a status other than 2xx.
    Http(HttpFailure),
    /// The provider could not be reached, or the connection broke.
    Connection(String),
    /// No first chunk (or no next chunk) in time.
    Timeout(Duration),
    /// The provider's answer could not be read.
    Malformed(String),
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Http(failure) => !failure.permanent && (failure.status == 429 || failure.status >= 500),
            Failure::Connection(_) => true,
            Failure::Timeout(_) | Failure::Malformed(_) => false,
        }
    }

    /// What failed, for the log: never the provider's message, which may quote the key.
    fn kind(&self) -> String {
        match self {
            Failure::Http(failure) => format!("status {}", failure.status),
            Failure::Connection(_) => "connection".to_owned(),
            Failure::Timeout(_) => "timeout".to_owned(),
            Failure::Malformed(_) => "malformed answer".to_owned(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Http(failure) => failure.retry_after,
            _ => None,
        }
    }

    /// The error the caller sees, the API key removed from any text.
    pub(super) fn into_llm_error(self, redactor: &Redactor) -> LlmError {
        match self {
            Failure::Http(failure) => LlmError::Provider {
                status: failure.status,
                message: redactor.redact(&failure.message),
            },
            Failure::Connection(message) => LlmError::Connection(redactor.redact(&message)),
            Failure::Timeout(timeout) => LlmError::Timeout {
                seconds: timeout.as_secs_f64().ceil() as u64,
            },
            Failure::Malformed(message) => LlmError::Malformed(redactor.redact(&message)),
        }
    }
}

impl From<OpenAIError> for Failure {
    fn from(error: OpenAIError) -> Self {
        match error {
            OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
                Ok(failure) => Failure::Http(*failure),
                Err(other) => Failure::Connection(other.to_string()),
            },
            OpenAIError::ApiError(api) => Failure::Http(HttpFailure {
                status: api.status_code.as_u16(),
                retry_after: None,
                message: api.api_error.message,
                permanent: false,
            }),
            // Any transport error before a response (refused, reset, closed before the
            // headers): the request may not have been processed, and asking again is safe
            // for a chat completion (at worst the provider bills a second answer).
            OpenAIError::Reqwest(error) => Failure::Connection(error.to_string()),
            // The SSE body broke (connection lost mid-body, or bytes that are not SSE).
            OpenAIError::StreamError(error) => Failure::Connection(error.to_string()),
            other => Failure::Malformed(other.to_string()),
        }
    }
}

/// Retries with exponential backoff and full jitter.
#[derive(Clone, Copy, Debug)]
pub(super) struct RetryPolicy {
    pub(super) max_retries: u32,
    /// The first delay; it doubles with each retry, and jitter adds up to as much again.
    pub(super) min_delay: Duration,
    /// The longest delay, `Retry-After` included.
    pub(super) max_delay: Duration,
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails for good or runs out of retries; returns its
    /// last result and how many retries were made.
    pub(super) async fn run<T, Attempt, Fut>(&self, attempt: Attempt) -> (Result<T, Failure>, u32)
    where
        Attempt: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries as usize);
        let max_delay = self.max_delay;
        let mut retries = 0;
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Failure::retryable)
            // `delay` is `None` once the retries are spent: keep it so, whatever the provider says.
            .adjust(|failure, delay| {
                delay.map(|computed| {
                    failure
                        .retry_after()
                        .map_or(computed, |asked| asked.min(max_delay))
                })
            })
            .notify(|failure, delay| {
                retries += 1;
                tracing::warn!(
                    failure = failure.kind(),
                    ?delay,
                    retry = retries,
                    "model call failed, retrying"
                );
            })
            .await;
        (result, retries)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn unavailable() -> Failure {
        Failure::Http(HttpFailure {
            status: 503,
            retry_after: None,
            message: "busy".to_owned(),
            permanent: false,
        })
    }

    #[tokio::test]
    async fn delays_double_with_each_retry_and_jitter_adds_at_most_as_much_again() {
        let policy = RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_secs(5),
        };
        let mut attempts = Vec::new();
        let (result, retries) = policy
            .run(|| {
                attempts.push(Instant::now());
                async { Err::<(), _>(unavailable()) }
            })
            .await;

        assert!(matches!(result, Err(Failure::Http(_))));
        assert_eq!((retries, attempts.len()), (3, 4));
        let waits: Vec<Duration> = attempts.windows(2).map(|pair| pair[1] - pair[0]).collect();
        for (wait, base) in waits.iter().zip([40, 80, 160]) {
            let base = Duration::from_millis(base);
            assert!(
                *wait >= base && *wait < base * 2 + Duration::from_millis(30),
                "{waits:?}"
            );
        }
    }

    #[tokio::test]
    async fn final_failures_are_not_retried() {
        let policy = RetryPolicy {
            max_retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        for failure in [
            || Failure::Timeout(Duration::from_secs(1)),
            || Failure::Malformed("?".to_owned()),
            || {
                Failure::Http(HttpFailure {
                    status: 400,
                    retry_after: None,
                    message: "bad".to_owned(),
                    permanent: false,
                })
            },
        ] {
            let mut attempts = 0;
            let (_, retries) = policy
                .run(|| {
                    attempts += 1;
                    async move { Err::<(), _>(failure()) }
                })
                .await;
            assert_eq!((attempts, retries), (1, 0));
        }
    }
}
