//! The RabbitMQ queue (lapin). Topology, all durable, all on the default exchange:
//!
//! - `Q`: on-demand jobs, retries and replayed dead letters, a priority queue (`x-max-priority`);
//! - `Q.t.<tenant>`: one tenant's batch jobs, one queue per tenant (the tenant's name when it is
//!   short and plain, else `~` and a hash of it), listed in the store (`huixi_queue_tenants`) as
//!   they are first published to, so every worker finds them;
//! - `Q.retry.<ms>`: one per retry delay; a message waits out the queue's TTL and is dead-lettered back
//!   to `Q`, so retries need no plugin and survive a broker restart;
//! - `Q.dead`: jobs given up on, with the reason in a header.
//!
//! Fairness: a worker asks `Q` for a job first (`basic.get`, so an on-demand job overtakes every
//! batch job the broker already pushed to the worker), then takes the tenants' queues in turn, each
//! through a consumer of its own whose prefetch (per consumer, RabbitMQ's `global = false`) caps the
//! tenant's deliveries held by the worker. One tenant's backlog, however long, is then one turn in
//! the rotation: another tenant's 10 jobs wait for about 10 of it. A single queue would hand them out
//! after the whole backlog, and a per-tenant cap on one queue cannot reach past the backlog's head.
//!
//! Publishing waits for publisher confirms. Consuming uses manual acks, sent only after the results are
//! committed. A dropped connection is re-opened with backoff and the topology declared again; deliveries
//! in flight on the old channel are redelivered by the broker, which the idempotent worker absorbs.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::Mutex;

use super::{Delivery, Handle, Job, Lane, QueueError, MAX_PRIORITY};
use crate::store::{DeadJob, Store};

const ATTEMPTS: &str = "x-huixi-attempts";
const REASON: &str = "x-huixi-reason";
/// How often a worker looks in the store for tenants that started publishing.
const TENANTS_EVERY: Duration = Duration::from_secs(2);
/// How long a wait for a tenant's job lasts before `Q` is asked again: the longest an on-demand job
/// waits for an idle worker.
const SLICE: Duration = Duration::from_millis(100);

struct Link {
    connection: Connection,
    channel: Channel,
    /// Counts the links opened, so consumers made on an older one are known to be gone.
    generation: u64,
}

/// A worker's consumers of the tenants' queues, one each, taken in turn.
#[derive(Default)]
struct Rotation {
    tenants: Vec<(String, Consumer)>,
    /// Where the next turn starts.
    turn: usize,
    /// The link the consumers live on.
    generation: u64,
    refreshed: Option<Instant>,
}

pub struct AmqpQueue {
    url: String,
    name: String,
    retry_delays: Vec<Duration>,
    prefetch: u16,
    store: Store,
    link: Mutex<Option<Link>>,
    opened: std::sync::atomic::AtomicU64,
    /// Kept apart from the link and locked while waiting, so a wait that times out loses nothing.
    rotation: Mutex<Rotation>,
    /// Tenants whose queue this process declared and registered.
    declared: Mutex<HashSet<String>>,
}

impl AmqpQueue {
    /// Connects and declares the topology. `retry_delays` are the delays a pool's retry policy uses;
    /// `prefetch` caps the deliveries of each tenant's queue a worker holds; `store` keeps the list
    /// of tenants' queues.
    pub async fn connect(
        url: &str,
        name: &str,
        retry_delays: &[Duration],
        prefetch: u16,
        store: Store,
    ) -> Result<AmqpQueue, QueueError> {
        let q = AmqpQueue {
            url: url.to_string(),
            name: name.to_string(),
            retry_delays: retry_delays.to_vec(),
            prefetch,
            store,
            link: Mutex::new(None),
            opened: std::sync::atomic::AtomicU64::new(0),
            rotation: Mutex::new(Rotation::default()),
            declared: Mutex::new(HashSet::new()),
        };
        let link = q.open().await?;
        *q.link.lock().await = Some(link);
        Ok(q)
    }

    fn error(&self, e: impl std::fmt::Display) -> QueueError {
        QueueError::Broker {
            url: crate::store::redact(&self.url),
            message: e.to_string(),
        }
    }

    fn retry_queue(&self, delay: Duration) -> String {
        format!("{}.retry.{}", self.name, delay.as_millis())
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.name)
    }

    fn tenant_queue(&self, tenant: &str) -> String {
        format!("{}.t.{}", self.name, tenant_queue_suffix(tenant))
    }

    async fn open(&self) -> Result<Link, QueueError> {
        // Named after the queue, so an operator (or a test) can tell huixi's connections apart.
        let props = ConnectionProperties::default()
            .with_connection_name(format!("huixi {}", self.name).into());
        let connection = Connection::connect(&self.url, props)
            .await
            .map_err(|e| self.error(e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.error(e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error(e))?;
        let mut jobs = FieldTable::default();
        jobs.insert(
            "x-max-priority".into(),
            AMQPValue::LongInt(MAX_PRIORITY as i32),
        );
        self.declare(&channel, &self.name, jobs).await?;
        self.declare(&channel, &self.dead_queue(), FieldTable::default())
            .await?;
        for delay in &self.retry_delays {
            let mut args = FieldTable::default();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongInt(delay.as_millis() as i32),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.name.as_str().into()),
            );
            self.declare(&channel, &self.retry_queue(*delay), args)
                .await?;
        }
        Ok(Link {
            connection,
            channel,
            generation: self
                .opened
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1,
        })
    }

    async fn declare(
        &self,
        channel: &Channel,
        queue: &str,
        args: FieldTable,
    ) -> Result<u32, QueueError> {
        let q = channel
            .queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
            .await
            .map_err(|e| self.error(format!("declaring {queue}: {e}")))?;
        Ok(q.message_count())
    }

    /// The channel, re-opening the connection first if it was lost.
    async fn channel(&self) -> Result<Channel, QueueError> {
        Ok(self.channel_of_link().await?.0)
    }

    /// The channel and the generation of its link.
    async fn channel_of_link(&self) -> Result<(Channel, u64), QueueError> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref() {
            if l.connection.status().connected() && l.channel.status().connected() {
                return Ok((l.channel.clone(), l.generation));
            }
        }
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.open().await {
                Ok(l) => {
                    tracing::info!(queue = %self.name, "connected to RabbitMQ");
                    let found = (l.channel.clone(), l.generation);
                    *link = Some(l);
                    return Ok(found);
                }
                Err(e) => {
                    tracing::warn!("RabbitMQ unreachable, retrying in {backoff:?}: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn send(
        &self,
        queue: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> Result<bool, QueueError> {
        let channel = self.channel().await?;
        let confirm = channel
            .basic_publish(
                ShortString::from(""),
                queue.into(),
                BasicPublishOptions::default(),
                payload,
                props.with_delivery_mode(2),
            )
            .await
            .map_err(|e| self.error(e))?
            .await
            .map_err(|e| self.error(e))?;
        Ok(confirm.is_ack())
    }

    /// Declares the queues of tenants this process has not published batch jobs for yet, after
    /// listing them in the store: a queue a worker cannot find would never be consumed.
    async fn declare_tenants(&self, channel: &Channel, jobs: &[Job]) -> Result<(), QueueError> {
        let mut declared = self.declared.lock().await;
        let mut new: Vec<&str> = jobs
            .iter()
            .filter(|j| j.lane == Lane::Batch && !declared.contains(&j.tenant))
            .map(|j| j.tenant.as_str())
            .collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        self.store.register_queue_tenants(&self.name, &new).await?;
        for tenant in new {
            self.declare(channel, &self.tenant_queue(tenant), FieldTable::default())
                .await?;
            declared.insert(tenant.to_string());
        }
        Ok(())
    }

    pub async fn publish(&self, jobs: &[Job]) -> Result<usize, QueueError> {
        let channel = self.channel().await?;
        self.declare_tenants(&channel, jobs).await?;
        // Publish everything, then wait for the confirms: pipelined, not one round trip a job.
        let mut pending = Vec::with_capacity(jobs.len());
        for job in jobs {
            let target = match job.lane {
                Lane::Batch => self.tenant_queue(&job.tenant),
                Lane::OnDemand => self.name.clone(),
            };
            let props = BasicProperties::default()
                .with_priority(job.lane.priority())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    target.as_str().into(),
                    BasicPublishOptions::default(),
                    job.encode().as_bytes(),
                    props,
                )
                .await
                .map_err(|e| self.error(e))?;
            pending.push(confirm);
        }
        let mut confirmed = 0;
        for confirm in pending {
            if confirm.await.map_err(|e| self.error(e))?.is_ack() {
                confirmed += 1;
            }
        }
        Ok(confirmed)
    }

    /// The next job: from `Q` if it holds one, else from the next tenant in turn with a delivery at
    /// hand, else the first delivery of any tenant within `wait`.
    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let mut rotation = self.rotation.lock().await;
        let deadline = Instant::now() + wait;
        loop {
            let (channel, generation) = self.channel_of_link().await?;
            if rotation.generation != generation {
                // The consumers died with their link; the broker redelivers what they held.
                *rotation = Rotation {
                    generation,
                    ..Rotation::default()
                };
            }
            match channel
                .basic_get(self.name.as_str().into(), BasicGetOptions::default())
                .await
            {
                Ok(Some(m)) => return Ok(Some(delivery(m.delivery))),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("RabbitMQ channel failed, reconnecting: {e}");
                    self.drop_link().await;
                    return Ok(None);
                }
            }
            if rotation
                .refreshed
                .is_none_or(|t| t.elapsed() >= TENANTS_EVERY)
            {
                self.subscribe_new_tenants(&channel, &mut rotation).await?;
            }
            let n = rotation.tenants.len();
            let start = rotation.turn;
            for k in 0..n {
                let i = (start + k) % n;
                let Some(next) = rotation.tenants[i].1.next().now_or_never() else {
                    continue;
                };
                return self.settle_turn(&mut rotation, i, next).await;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let slice = left.min(SLICE);
            if n == 0 {
                tokio::time::sleep(slice).await;
                continue;
            }
            let waits = rotation.tenants.iter_mut().map(|(_, c)| c.next());
            // The other waits are dropped here, which loses nothing: a consumer keeps what it
            // received until it is asked again.
            let woken = tokio::time::timeout(slice, futures::future::select_all(waits))
                .await
                .ok()
                .map(|(next, i, _)| (next, i));
            if let Some((next, i)) = woken {
                return self.settle_turn(&mut rotation, i, next).await;
            }
        }
    }

    /// What tenant `i`'s consumer gave: a delivery, and the turn passes to the tenant after it; a
    /// failure, and the link is opened again; or its end, and it is subscribed again later.
    async fn settle_turn(
        &self,
        rotation: &mut Rotation,
        i: usize,
        next: Option<lapin::Result<lapin::message::Delivery>>,
    ) -> Result<Option<Delivery>, QueueError> {
        match next {
            Some(Ok(d)) => {
                rotation.turn = i + 1;
                Ok(Some(delivery(d)))
            }
            Some(Err(e)) => {
                tracing::warn!("RabbitMQ consumer failed, reconnecting: {e}");
                *rotation = Rotation::default();
                self.drop_link().await;
                Ok(None)
            }
            None => {
                // Cancelled by the broker (its queue deleted, say): subscribed again at the next look
                // at the tenants, which declares the queue again.
                tracing::warn!(tenant = %rotation.tenants[i].0, "RabbitMQ consumer was cancelled");
                rotation.tenants.remove(i);
                rotation.refreshed = None;
                Ok(None)
            }
        }
    }

    /// Consumes the queue of every tenant in the store's list that this worker does not consume yet.
    async fn subscribe_new_tenants(
        &self,
        channel: &Channel,
        rotation: &mut Rotation,
    ) -> Result<(), QueueError> {
        let listed = self.store.queue_tenants(&self.name).await?;
        for tenant in listed {
            if rotation.tenants.iter().any(|(t, _)| *t == tenant) {
                continue;
            }
            let queue = self.tenant_queue(&tenant);
            // Declared here too: the publisher may have died between listing the tenant and
            // declaring its queue.
            self.declare(channel, &queue, FieldTable::default()).await?;
            // Per consumer (global = false), so it caps this tenant's deliveries held here.
            channel
                .basic_qos(self.prefetch.max(1), BasicQosOptions::default())
                .await
                .map_err(|e| self.error(e))?;
            let c = channel
                .basic_consume(
                    queue.as_str().into(),
                    // The broker names the consumer: a reconnect never collides with an old tag.
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.error(e))?;
            rotation.tenants.push((tenant, c));
        }
        rotation.refreshed = Some(Instant::now());
        Ok(())
    }

    async fn drop_link(&self) {
        if let Some(l) = self.link.lock().await.take() {
            let _ = l.connection.close(200, "reconnecting".into()).await;
        }
    }

    pub async fn ack(&self, acker: &lapin::Acker) -> Result<(), QueueError> {
        // An ack on a channel that died is lost; the broker redelivers, and the job is a no-op then.
        if let Err(e) = acker.ack(BasicAckOptions::default()).await {
            tracing::warn!("ack lost with its channel, the job will come back: {e}");
        }
        Ok(())
    }

    pub async fn retry(
        &self,
        acker: &lapin::Acker,
        payload: &[u8],
        attempts: u32,
        delay: Duration,
    ) -> Result<(), QueueError> {
        // The delay queue with the largest delay not above the one asked for.
        let delay = self
            .retry_delays
            .iter()
            .copied()
            .filter(|d| *d <= delay)
            .max()
            .or_else(|| self.retry_delays.iter().copied().min());
        let target = match delay {
            Some(d) => self.retry_queue(d),
            None => self.name.clone(),
        };
        let props = BasicProperties::default().with_headers(headers(attempts, None));
        self.send(&target, payload, props).await?;
        self.ack(acker).await
    }

    pub async fn bury(
        &self,
        acker: &lapin::Acker,
        payload: &[u8],
        attempts: u32,
        reason: &str,
    ) -> Result<(), QueueError> {
        let props = BasicProperties::default().with_headers(headers(attempts, Some(reason)));
        self.send(&self.dead_queue(), payload, props).await?;
        self.ack(acker).await
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadJob>, QueueError> {
        // Read without taking: the messages are fetched unacknowledged on a channel of their own, and
        // closing that channel puts them all back.
        let link = self.open().await?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(m) = self.take_dead(&link.channel).await? else {
                break;
            };
            out.push(DeadJob {
                id: m.delivery.delivery_tag.to_string(),
                payload: String::from_utf8_lossy(&m.delivery.data).into_owned(),
                attempts: header_u32(&m.delivery.properties, ATTEMPTS),
                reason: header_string(&m.delivery.properties, REASON).unwrap_or_default(),
            });
        }
        let _ = link.connection.close(200, "listed".into()).await;
        Ok(out)
    }

    /// The next dead job, unacknowledged, or `None` when there is none.
    async fn take_dead(
        &self,
        channel: &Channel,
    ) -> Result<Option<lapin::message::BasicGetMessage>, QueueError> {
        channel
            .basic_get(
                self.dead_queue().as_str().into(),
                BasicGetOptions::default(),
            )
            .await
            .map_err(|e| self.error(e))
    }

    pub async fn replay(&self) -> Result<usize, QueueError> {
        let channel = self.channel().await?;
        let mut replayed = 0;
        loop {
            let Some(m) = self.take_dead(&channel).await? else {
                break;
            };
            let priority = m.delivery.properties.priority().unwrap_or(1);
            let props = BasicProperties::default().with_priority(priority);
            if self.send(&self.name, &m.delivery.data, props).await? {
                m.delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(|e| self.error(e))?;
                replayed += 1;
            }
        }
        Ok(replayed)
    }

    /// Ready jobs in the queue, its delay queues and the tenants' queues, and dead jobs. Jobs delivered but not yet
    /// acknowledged are not counted by RabbitMQ.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        let channel = self.channel().await?;
        let passive = |q: String| {
            let channel = channel.clone();
            async move {
                channel
                    .queue_declare(
                        q.as_str().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .map(|q| q.message_count() as u64)
            }
        };
        let mut waiting = passive(self.name.clone())
            .await
            .map_err(|e| self.error(e))?;
        for d in &self.retry_delays {
            waiting += passive(self.retry_queue(*d))
                .await
                .map_err(|e| self.error(e))?;
        }
        // Declared, not looked up passively: a listed tenant whose publisher died before declaring
        // its queue would otherwise close the channel with a 404.
        for tenant in self.store.queue_tenants(&self.name).await? {
            waiting += u64::from(
                self.declare(&channel, &self.tenant_queue(&tenant), FieldTable::default())
                    .await?,
            );
        }
        let dead = passive(self.dead_queue())
            .await
            .map_err(|e| self.error(e))?;
        Ok((waiting, dead))
    }
}

fn delivery(d: lapin::message::Delivery) -> Delivery {
    let attempts = header_u32(&d.properties, ATTEMPTS) + 1;
    let handle = Handle::Amqp {
        acker: d.acker,
        payload: d.data.clone(),
    };
    Delivery::new(&d.data, attempts, handle)
}

/// A tenant's name as part of a queue name: itself when short and plain, which keeps the queue easy
/// to find in the management UI; else `~` and a hash of it (`~` is never in a plain name, so the two
/// kinds cannot collide).
fn tenant_queue_suffix(tenant: &str) -> String {
    let plain = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return tenant.to_string();
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(tenant.as_bytes());
    format!("~{}", hex::encode(&digest[..16]))
}

fn headers(attempts: u32, reason: Option<&str>) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(ATTEMPTS.into(), AMQPValue::LongInt(attempts as i32));
    if let Some(r) = reason {
        h.insert(REASON.into(), AMQPValue::LongString(r.into()));
    }
    h
}

fn header_u32(props: &BasicProperties, key: &str) -> u32 {
    let value = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key).cloned());
    match value {
        Some(AMQPValue::LongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongLongInt(n)) => n.max(0) as u32,
        Some(AMQPValue::LongUInt(n)) => n,
        _ => 0,
    }
}

fn header_string(props: &BasicProperties, key: &str) -> Option<String> {
    let value = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key).cloned());
    match value {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::tenant_queue_suffix;

    #[test]
    fn plain_tenant_names_name_their_queue_and_others_are_hashed() {
        assert_eq!(tenant_queue_suffix("acme-01_cn"), "acme-01_cn");
        let odd = tenant_queue_suffix("会析.租户 one");
        assert!(odd.starts_with('~') && odd.len() == 33, "{odd}");
        assert_ne!(odd, tenant_queue_suffix("会析.租户 two"));
        assert!(tenant_queue_suffix("").starts_with('~'));
        assert!(tenant_queue_suffix(&"x".repeat(65)).starts_with('~'));
    }
}
