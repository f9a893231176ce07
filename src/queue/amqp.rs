//! The RabbitMQ queue (lapin). Topology, all durable, all on the default exchange:
//!
//! - `Q`: the jobs, a priority queue (`x-max-priority`), so on-demand jobs overtake the batch backlog;
//! - `Q.retry.<ms>`: one per retry delay; a message waits out the queue's TTL and is dead-lettered back
//!   to `Q`, so retries need no plugin and survive a broker restart;
//! - `Q.dead`: jobs given up on, with the reason in a header.
//!
//! Publishing waits for publisher confirms. Consuming uses manual acks, sent only after the results are
//! committed. A dropped connection is re-opened with backoff and the topology declared again; deliveries
//! in flight on the old channel are redelivered by the broker, which the idempotent worker absorbs.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::Mutex;

use super::{Delivery, Handle, Job, QueueError, MAX_PRIORITY};
use crate::store::DeadJob;

const ATTEMPTS: &str = "x-huixi-attempts";
const REASON: &str = "x-huixi-reason";

struct Link {
    connection: Connection,
    channel: Channel,
}

pub struct AmqpQueue {
    url: String,
    name: String,
    retry_delays: Vec<Duration>,
    prefetch: u16,
    link: Mutex<Option<Link>>,
    /// Kept apart from the link and locked while waiting, so a wait that times out loses nothing.
    consumer: Mutex<Option<Consumer>>,
}

impl AmqpQueue {
    /// Connects and declares the topology. `retry_delays` are the delays a pool's retry policy uses.
    pub async fn connect(
        url: &str,
        name: &str,
        retry_delays: &[Duration],
        prefetch: u16,
    ) -> Result<AmqpQueue, QueueError> {
        let q = AmqpQueue {
            url: url.to_string(),
            name: name.to_string(),
            retry_delays: retry_delays.to_vec(),
            prefetch,
            link: Mutex::new(None),
            consumer: Mutex::new(None),
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
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref() {
            if l.connection.status().connected() && l.channel.status().connected() {
                return Ok(l.channel.clone());
            }
        }
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.open().await {
                Ok(l) => {
                    tracing::info!(queue = %self.name, "connected to RabbitMQ");
                    let channel = l.channel.clone();
                    *link = Some(l);
                    return Ok(channel);
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

    pub async fn publish(&self, jobs: &[Job]) -> Result<usize, QueueError> {
        // Publish everything, then wait for the confirms: pipelined, not one round trip a job.
        let channel = self.channel().await?;
        let mut pending = Vec::with_capacity(jobs.len());
        for job in jobs {
            let props = BasicProperties::default()
                .with_priority(job.lane.priority())
                .with_delivery_mode(2);
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    self.name.as_str().into(),
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

    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let mut consumer = self.consumer.lock().await;
        if consumer.is_none() {
            let channel = self.channel().await?;
            channel
                .basic_qos(self.prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| self.error(e))?;
            let c = channel
                .basic_consume(
                    self.name.as_str().into(),
                    // The broker names the consumer: a reconnect never collides with an old tag.
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.error(e))?;
            *consumer = Some(c);
        }
        let stream = consumer.as_mut().expect("set above");
        let Ok(next) = tokio::time::timeout(wait, stream.next()).await else {
            return Ok(None);
        };
        match next {
            Some(Ok(d)) => {
                let attempts = header_u32(&d.properties, ATTEMPTS) + 1;
                let handle = Handle::Amqp {
                    acker: d.acker,
                    payload: d.data.clone(),
                };
                Ok(Some(Delivery::new(&d.data, attempts, handle)))
            }
            Some(Err(e)) => {
                tracing::warn!("RabbitMQ consumer failed, reconnecting: {e}");
                *consumer = None;
                self.drop_link().await;
                Ok(None)
            }
            None => {
                tracing::warn!("RabbitMQ consumer was cancelled, reconnecting");
                *consumer = None;
                self.drop_link().await;
                Ok(None)
            }
        }
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

    /// Ready jobs in the queue and its delay queues, and dead jobs. Jobs delivered but not yet
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
        let dead = passive(self.dead_queue())
            .await
            .map_err(|e| self.error(e))?;
        Ok((waiting, dead))
    }
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
