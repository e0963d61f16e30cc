//! The delivery canary. Every `canary.interval_ms` the gateway sends a probe
//! the way a send goes: onto an ingest partition's stream (JetStream), through
//! the partition's owning worker, and back over core NATS to a subject this
//! gateway subscribes to. Probes take the partitions in turn, so a partition
//! without an owner fails one probe in every P. Workers answer it at once
//! and store nothing, so it shows,
//! even in a quiet system, whether sends get through and how fast; Postgres
//! and Redis are probed by `/readyz` directly.

use std::{
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream;
use bytes::Bytes;
use chat_proto::internal::{Envelope, Receipt};
use chat_protocol::subjects;
use futures::StreamExt;
use prost::Message as _;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::{config::CanaryConfig, error::GatewayError, metrics};

/// The canary's recent record, read by `/readyz`.
#[derive(Default)]
pub struct CanaryHealth {
    /// Probes failed since the last one that came back.
    failed_in_a_row: AtomicU32,
}

impl CanaryHealth {
    /// Whether readiness should fail: at least `after` probes failed in a
    /// row (never, with `after` = 0).
    pub fn failing(&self, after: u32) -> bool {
        after > 0 && self.failed_in_a_row.load(Ordering::Relaxed) >= after
    }
}

/// Why a probe failed, as a metrics label.
#[derive(Debug, Clone, Copy)]
pub enum ProbeFailure {
    /// JetStream did not take it (NATS down, stream full or missing).
    Publish,
    /// No worker answered within the interval.
    Timeout,
}

impl ProbeFailure {
    pub fn label(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Timeout => "timeout",
        }
    }
}

/// One gateway's canary: sends a probe per interval, one at a time.
pub struct Canary {
    js: jetstream::Context,
    answers: async_nats::Subscriber,
    gateway_id: String,
    partitions: u32,
    answer_subject: String,
    interval: Duration,
    /// Tickets start at a random point, as the send path's do, so an answer
    /// to an earlier run's probe never passes for this run's.
    next_ticket: u64,
    health: Arc<CanaryHealth>,
}

impl Canary {
    /// Subscribes to this gateway's canary answers; probes start with `run`.
    pub async fn subscribe(
        nats: &async_nats::Client,
        js: jetstream::Context,
        gateway_id: &str,
        partitions: u32,
        config: &CanaryConfig,
        health: Arc<CanaryHealth>,
    ) -> Result<Self, GatewayError> {
        let answer_subject = subjects::canary_answers(gateway_id);
        let answers = nats
            .subscribe(answer_subject.clone())
            .await
            .map_err(GatewayError::nats)?;
        Ok(Self {
            js,
            answers,
            gateway_id: gateway_id.to_owned(),
            partitions,
            answer_subject,
            interval: config.interval,
            next_ticket: rand::random::<u64>() >> 1,
            health,
        })
    }

    /// Probes every interval until shutdown. A probe not answered within
    /// the interval has failed, and the next starts at once: a path that
    /// breaks shows within two intervals.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let started = Instant::now();
            let outcome = match tokio::time::timeout(self.interval, self.probe()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ProbeFailure::Timeout),
            };
            match outcome {
                Ok(()) => {
                    self.health.failed_in_a_row.store(0, Ordering::Relaxed);
                    metrics::canary_ok(started.elapsed());
                }
                Err(failure) => {
                    let row = self.health.failed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(
                        reason = failure.label(),
                        failed_in_a_row = row,
                        "canary failed"
                    );
                    metrics::canary_failed(failure.label());
                }
            }
        }
    }

    /// Sends one probe and waits for its answer; answers to earlier probes
    /// (late, or from a worker catching up) are skipped.
    async fn probe(&mut self) -> Result<(), ProbeFailure> {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let envelope = Envelope {
            reply_to: self.answer_subject.clone(),
            ticket,
            received_ts_ms: chat_protocol::now_ms(),
            ..Default::default()
        };
        let payload = Bytes::from(envelope.encode_to_vec());
        let partition = (ticket % u64::from(self.partitions)) as u32;
        let published = self
            .js
            .publish(
                subjects::canary_ingest(partition, &self.gateway_id),
                payload,
            )
            .await
            .map_err(|_| ProbeFailure::Publish)?;
        published.await.map_err(|_| ProbeFailure::Publish)?;
        while let Some(msg) = self.answers.next().await {
            if Receipt::decode(msg.payload).is_ok_and(|r| r.ticket == ticket) {
                return Ok(());
            }
        }
        // The subscription ended: only when the client is gone.
        Err(ProbeFailure::Timeout)
    }
}
