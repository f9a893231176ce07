//! Delivers the webhook outbox: each event is POSTed to its tenant's URL, signed, and retried with
//! growing delays until the receiver answers 2xx. Delivery is at least once; receivers deduplicate by
//! the `X-Huixi-Delivery` id.
//!
//! Signature: `X-Huixi-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with the
//! timestamp in `X-Huixi-Timestamp` (Unix seconds), so a receiver can also refuse stale replays.

pub mod guard;

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::{OutboxEvent, Store};

/// The Standard Webhooks signature (standardwebhooks.com): `v1,` and the base64 HMAC-SHA256 of
/// `<id>.<timestamp>.<body>`, keyed by the secret — a `whsec_` secret's base64 bytes, any other
/// secret's own bytes — so receivers can verify with the spec's libraries.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| b64.decode(k).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Delay before the next try after `attempts` failed ones: 1 s, 2 s, 4 s … up to 10 minutes.
fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 10) as u64).min(Duration::from_secs(600))
}

/// Tries an event gets: with the delays of [`backoff`], about three and a half hours of a receiver
/// that is down. After that the event stays in the outbox with its last error, given up on, and
/// the tenant's other events go on.
pub const MAX_ATTEMPTS: i64 = 30;
/// Events of one tenant claimed per round, and how many of them are in flight at once. Each tenant
/// has its own sender, so a receiver that stalls holds back its own tenant's events only; within a
/// tenant, events are not ordered (each carries its id and timestamp).
const PER_TENANT: usize = 32;
const IN_FLIGHT: usize = 8;
/// How long a claimed event is this process's: longer than a round of [`PER_TENANT`] requests,
/// [`IN_FLIGHT`] at a time, at the timeout.
const LEASE: Duration = Duration::from_secs(120);
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at when nothing wakes the loop.
const POLL: Duration = Duration::from_millis(200);

/// Wakes this process's delivery loop: an event was just committed (a real-time alert is meant to
/// reach the CRM within the second, not at the next poll).
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

pub fn wake() {
    WAKE.notify_one();
}

/// Runs forever, sending what is due: in `serve` and in every `worker`, on any number of replicas,
/// each event claimed by one of them. Unless `allow_private`, only to public addresses, and never
/// following a redirect (a 3xx is a failed delivery: the receiver must answer itself).
pub async fn deliver_forever(store: Store, allow_private: bool) {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
    }
    let http = builder.build().expect("HTTP client");
    let busy: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>> = Arc::default();
    loop {
        let now_busy = busy.lock().expect("busy lock").clone();
        match store
            .claim_events(
                &now_busy,
                PER_TENANT,
                MAX_ATTEMPTS,
                LEASE.as_millis() as i64,
            )
            .await
        {
            Ok(events) => {
                let mut by_tenant: std::collections::BTreeMap<String, Vec<OutboxEvent>> =
                    Default::default();
                for e in events {
                    by_tenant.entry(e.tenant.clone()).or_default().push(e);
                }
                for (tenant, events) in by_tenant {
                    busy.lock().expect("busy lock").insert(tenant.clone());
                    let (store, http, busy) = (store.clone(), http.clone(), busy.clone());
                    tokio::spawn(async move {
                        use futures::StreamExt;
                        futures::stream::iter(events)
                            .for_each_concurrent(IN_FLIGHT, |e| {
                                deliver(&store, &http, allow_private, e)
                            })
                            .await;
                        busy.lock().expect("busy lock").remove(&tenant);
                        // More of this tenant's may be due now that its sender is free.
                        wake();
                    });
                }
            }
            Err(e) => tracing::warn!("webhook outbox unavailable: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = WAKE.notified() => {}
        }
    }
}

async fn deliver(store: &Store, http: &reqwest::Client, allow_private: bool, e: OutboxEvent) {
    // Checked again at delivery: a URL stored before the guard existed, or an address literal, never
    // goes through the resolver.
    if let Err(why) = guard::check_url(&e.url, allow_private) {
        let wait = backoff(e.attempts);
        tracing::warn!(tenant = %e.tenant, id = e.id, "webhook refused: {why}");
        if let Err(err) = store.mark_failed(e.id, wait.as_millis() as i64, &why).await {
            tracing::warn!("cannot record webhook delivery {}: {err}", e.id);
        }
        return;
    }
    let timestamp = chrono::Utc::now().timestamp();
    let webhook_id = format!("huixi-{}", e.id);
    // During a rotation both secrets sign (space-separated, as Standard Webhooks lists them), so a
    // receiver verifies with whichever it holds.
    let signatures = std::iter::once(&e.secret)
        .chain(&e.previous_secret)
        .map(|s| standard_signature(s, &webhook_id, timestamp, &e.payload))
        .collect::<Vec<_>>()
        .join(" ");
    let sent = http
        .post(&e.url)
        .header("content-type", "application/json")
        .header("x-huixi-event", &e.event)
        .header("x-huixi-delivery", e.id.to_string())
        .header("x-huixi-timestamp", timestamp.to_string())
        .header(
            "x-huixi-signature",
            signature(&e.secret, timestamp, &e.payload),
        )
        .header("webhook-id", &webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures)
        .body(e.payload.clone())
        .send()
        .await;
    let outcome = match sent {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("receiver answered {}", r.status())),
        Err(err) => Err(format!("cannot reach the receiver: {err:#}")),
    };
    let recorded = match outcome {
        Ok(()) => store.mark_delivered(e.id).await,
        Err(why) if e.attempts + 1 >= MAX_ATTEMPTS => {
            tracing::warn!(tenant = %e.tenant, id = e.id, "webhook given up after {MAX_ATTEMPTS} tries: {why}");
            metrics::counter!("huixi_webhook_given_up_total").increment(1);
            store
                .mark_failed(
                    e.id,
                    0,
                    &format!("given up after {MAX_ATTEMPTS} tries: {why}"),
                )
                .await
        }
        Err(why) => {
            let wait = backoff(e.attempts);
            tracing::info!(tenant = %e.tenant, id = e.id, "webhook not delivered, retrying in {wait:?}: {why}");
            metrics::counter!("huixi_webhook_failures_total").increment(1);
            store.mark_failed(e.id, wait.as_millis() as i64, &why).await
        }
    };
    if let Err(err) = recorded {
        tracing::warn!("cannot record webhook delivery {}: {err}", e.id);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        // Computed independently: python3 -c "import hmac,hashlib; print(hmac.new(b'key', b'1700000000.{}', hashlib.sha256).hexdigest())"
        assert_eq!(
            super::signature("key", 1700000000, "{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn standard_webhooks_signature_matches_the_specs_example() {
        // The example of the Standard Webhooks test vectors (standard-webhooks, libraries' tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            super::standard_signature(secret, id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn backoff_grows_and_stops_at_ten_minutes() {
        assert!(super::backoff(1) < super::backoff(2));
        assert_eq!(super::backoff(40), std::time::Duration::from_secs(600));
    }
}
