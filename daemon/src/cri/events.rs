//! GetContainerEvents: a thin handler over [`crate::event_bus::EventBus`].

use std::pin::Pin;

use corral_cri_api::v1::{ContainerEventResponse, GetEventsRequest};
use tonic::Status;

use super::runtime::RuntimeApi;

pub type EventStream =
    Pin<Box<dyn futures::Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

impl RuntimeApi {
    pub(super) fn do_get_container_events(&self, _req: GetEventsRequest) -> EventStream {
        let sub = self.events.subscribe();
        tracing::info!(subscriber = sub.id, "GetContainerEvents: new subscriber");
        Box::pin(sub.into_stream())
    }
}
