//! Calling an organization's HTTP tools: signed, bounded in time and size, and refused when
//! the target is a private address (unless allowed). Every failure is an outcome the model is
//! told about, never an error that stops the run.
