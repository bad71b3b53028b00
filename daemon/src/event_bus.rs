//! The fan-out behind `GetContainerEvents`: any number of subscribers, each with its own
//! bounded queue. Publishing never waits. A subscriber whose queue is full when an event comes
//! is dropped: its stream delivers what was queued, then ends with RESOURCE_EXHAUSTED saying
//! why (the kubelet's evented PLEG then falls back to relisting and subscribes again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use corral_cri_api::v1::ContainerEventResponse;
use futures::Stream;
use tokio::sync::mpsc::{self, error::TrySendError};
use tonic::Status;

/// The event bus. Cheap to share behind an `Arc`.
pub struct EventBus {
    capacity: usize,
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    /// Subscribers dropped for falling behind, since start.
    dropped: AtomicU64,
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<ContainerEventResponse>,
    /// Why the stream ends, set before `tx` is dropped (unset: the daemon closed it cleanly).
    end: Arc<OnceLock<Status>>,
}

/// One subscriber's end: the events, then the reason it was dropped, if any.
pub struct Subscription {
    pub id: u64,
    rx: mpsc::Receiver<ContainerEventResponse>,
    end: Arc<OnceLock<Status>>,
}

impl EventBus {
    /// A bus whose subscribers may each fall `capacity` events behind (at least 1).
    pub fn new(capacity: usize) -> EventBus {
        EventBus {
            capacity: capacity.max(1),
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
        }
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.capacity);
        let end = Arc::new(OnceLock::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subs().push(Subscriber {
            id,
            tx,
            end: Arc::clone(&end),
        });
        tracing::debug!(subscriber = id, "container events: subscribed");
        Subscription { id, rx, end }
    }

    /// Whether anyone listens (publishers skip building events otherwise). Subscribers whose
    /// client went away count until the next publish notices.
    pub fn has_subscribers(&self) -> bool {
        !self.subs().is_empty()
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        let mut subs = self.subs();
        subs.retain(|s| !s.tx.is_closed());
        subs.len()
    }

    /// Subscribers dropped for falling behind since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues `event` for every subscriber without waiting; drops those whose queue is full.
    pub fn publish(&self, event: &ContainerEventResponse) {
        let capacity = self.capacity;
        self.subs().retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Closed(_)) => {
                tracing::debug!(subscriber = s.id, "container events: subscriber went away");
                false
            }
            Err(TrySendError::Full(_)) => {
                let _ = s.end.set(Status::resource_exhausted(format!(
                    "GetContainerEvents: this subscriber fell {capacity} events behind \
                     ([events] subscriber_buffer) and was dropped so the runtime never waits \
                     for a slow reader; subscribe again and relist"
                )));
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    subscriber = s.id,
                    capacity,
                    "container events: dropping a subscriber that fell behind"
                );
                false
            }
        });
    }

    /// Ends every subscription with `status` (the daemon is stopping).
    pub fn close(&self, status: Status) {
        for s in self.subs().drain(..) {
            let _ = s.end.set(status.clone());
        }
    }
}

impl Subscription {
    /// The events as a gRPC response stream.
    pub fn into_stream(self) -> impl Stream<Item = Result<ContainerEventResponse, Status>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut sub = state?;
            match sub.rx.recv().await {
                Some(event) => Some((Ok(event), Some(sub))),
                None => sub.end.get().cloned().map(|status| (Err(status), None)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn event(id: &str) -> ContainerEventResponse {
        ContainerEventResponse {
            container_id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event() {
        let bus = EventBus::new(4);
        let (a, b) = (bus.subscribe(), bus.subscribe());
        bus.publish(&event("1"));
        bus.publish(&event("2"));
        bus.close(Status::unavailable("bye"));
        for sub in [a, b] {
            let got: Vec<_> = sub.into_stream().collect().await;
            let ids: Vec<_> = got
                .iter()
                .map(|r| r.as_ref().map(|e| e.container_id.clone()))
                .collect::<Vec<_>>();
            assert_eq!(ids.len(), 3);
            assert_eq!(ids[0].as_deref().ok(), Some("1"));
            assert_eq!(ids[1].as_deref().ok(), Some("2"));
            assert_eq!(
                ids[2].as_ref().unwrap_err().code(),
                tonic::Code::Unavailable
            );
        }
    }

    #[tokio::test]
    async fn a_full_subscriber_is_dropped_and_told_why() {
        let bus = EventBus::new(2);
        let slow = bus.subscribe();
        let fast = bus.subscribe();
        let mut fast = fast.into_stream().boxed();
        for i in 0..3 {
            bus.publish(&event(&i.to_string()));
            assert_eq!(
                fast.next().await.unwrap().unwrap().container_id,
                i.to_string()
            );
        }
        assert_eq!(bus.subscribers(), 1);
        assert_eq!(bus.dropped(), 1);
        let got: Vec<_> = slow.into_stream().collect().await;
        assert_eq!(got.len(), 3, "two queued events, then the status");
        let status = got[2].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("fell 2 events behind"),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_subscriber_that_went_away_is_forgotten() {
        let bus = EventBus::new(2);
        drop(bus.subscribe());
        bus.publish(&event("1"));
        assert!(!bus.has_subscribers());
        assert_eq!(bus.dropped(), 0);
    }
}
