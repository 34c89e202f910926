//! The executor: drives a run from its recorded state to its end, one recorded step at a time.
//!
//! Every decision comes from the run's events ([`domain::run::Run::next_action`]), so a run
//! taken over after a crash goes on from its last record: a model call begun and not recorded
//! is made again (its partial text void), a tool call started with no outcome is sent again
//! with the same idempotency key.

mod credits;
mod dispatcher;
mod http_toolbox;
mod model_step;
mod nats_queue;
mod prices;
mod redispatch;
mod run_loop;
mod start;
mod tool_step;
mod toolbox;

pub use dispatcher::{LocalDispatcher, RunQueue};
pub use http_toolbox::HttpToolbox;
pub use nats_queue::{NatsDispatcher, NatsRunQueue, QueueNames, RUNS_STREAM};
pub use prices::{Price, PriceTable};
pub use redispatch::{DISPATCH_GRACE, SWEEP_EVERY};
pub use run_loop::{Executor, ExecutorSettings};
pub use toolbox::{NoTools, ResolvedTool, Toolbox};
