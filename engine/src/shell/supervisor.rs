//! The supervisor of establishment actors: it hears when one stops or fails and has the
//! engine forget it, restarting a failed one from the store.

use std::sync::{Arc, OnceLock, Weak};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info};

use super::{Engine, Shared};

pub(crate) enum SupervisorMsg {}

pub(crate) struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = Arc<OnceLock<Weak<Shared>>>;
    type Arguments = Arc<OnceLock<Weak<Shared>>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        engine: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(engine)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        engine: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(shared) = engine.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let engine = Engine::from_shared(shared);
        match event {
            SupervisionEvent::ActorFailed(cell, failure) => {
                error!(actor = %cell.get_id(), error = %failure, "establishment actor failed; restarting from the store");
                let id = cell.get_id();
                tokio::spawn(async move { engine.actor_ended(id, true).await });
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                info!(actor = %cell.get_id(), reason = reason.as_deref().unwrap_or(""), "establishment actor stopped");
                engine.actor_ended(cell.get_id(), false).await;
            }
            _ => {}
        }
        Ok(())
    }
}
