//! The tool invoker against a real tool server: what a tool receives, how each failure is
//! reported, and the private-network fence.

mod failures;
mod helpers;
mod private_networks;
mod requests;
