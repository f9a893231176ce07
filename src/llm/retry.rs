//! Retries of one model request: 429, 5xx, connect errors and timeouts are retried with exponential
//! backoff and full jitter (so a fleet of workers that were throttled together do not come back together),
//! and a server's `Retry-After` is obeyed as given. Implemented as a `tower` retry policy under
//! async-openai's client, the one place that sees the HTTP response and its headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use rand::Rng;
use reqwest::Response;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    max_retries: u32,
    base: Duration,
    cap: Duration,
    attempts: u32,
    /// Counts every retry across clones, for usage reports and tests.
    retries: Arc<AtomicU64>,
}

impl RetryPolicy {
    pub fn new(max_retries: u32, base: Duration, cap: Duration, retries: Arc<AtomicU64>) -> Self {
        RetryPolicy {
            max_retries,
            base,
            cap,
            attempts: 0,
            retries,
        }
    }

    /// The wait before retry number `attempt` (0-based): uniform in [0, min(cap, base·2^attempt)].
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

/// Whether a result is worth another try.
pub fn retryable(result: &Result<Response, OpenAIError>) -> bool {
    match result {
        Ok(response) => {
            let status = response.status();
            status.as_u16() == 429 || status.is_server_error()
        }
        Err(OpenAIError::Reqwest(e)) => e.is_connect() || e.is_timeout() || e.is_request(),
        Err(_) => false,
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

impl tower::retry::Policy<HttpRequestFactory, Response, OpenAIError> for RetryPolicy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    fn retry(
        &mut self,
        _req: &mut HttpRequestFactory,
        result: &mut Result<Response, OpenAIError>,
    ) -> Option<Self::Future> {
        if self.attempts >= self.max_retries || !retryable(result) {
            return None;
        }
        let delay = result
            .as_ref()
            .ok()
            .and_then(retry_after)
            // A server asking for minutes is better served by failing this call and letting the job retry.
            .map(|d| d.min(Duration::from_secs(120)))
            .unwrap_or_else(|| self.backoff(self.attempts));
        tracing::warn!(
            attempt = self.attempts + 1,
            delay_ms = delay.as_millis() as u64,
            "retrying model request"
        );
        self.attempts += 1;
        self.retries.fetch_add(1, Ordering::Relaxed);
        Some(Box::pin(tokio::time::sleep(delay)))
    }

    fn clone_request(&mut self, req: &HttpRequestFactory) -> Option<HttpRequestFactory> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy::new(
            5,
            Duration::from_millis(100),
            Duration::from_millis(1000),
            Arc::default(),
        );
        let waits: Vec<Duration> = (0..200).map(|_| p.backoff(10)).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_millis(1000)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "jitter spreads the waits");
        assert!((0..100).all(|_| p.backoff(0) <= Duration::from_millis(100)));
    }
}
