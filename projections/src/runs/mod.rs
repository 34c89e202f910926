//! The run history view: one row per run with its status, steps and usage, kept by the
//! `run_history` projector and read by the run lists.
//!
//! - [`steps`]: a run's steps as the API shows them, folded from its events;
//! - `projector`: folds each read of the log into the rows of the runs it touches;
//! - [`queries`]: the reads of the run lists.

mod projector;
pub mod queries;
pub mod steps;

pub(crate) use projector::as_bigint;
pub use projector::{RUN_HISTORY, RunHistoryProjector};
pub use steps::{CallView, StepView, apply_to_steps, steps_of};
