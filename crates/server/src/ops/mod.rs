//! The operator side: HTTP listeners and reports about the engine.
//!
//! - [`admin`]: the admin HTTP API.
//! - [`metrics`]: counters, `/metrics` and `/healthz`.
//! - [`webhooks`]: room changes POSTed to receivers.
//! - [`push`]: the push gateway for offline invitees.
//! - [`process`]: the `process_*` metrics, from /proc.
//! - [`heap`]: handing the allocator's free memory back to the kernel.
//! - [`http`]: the HTTP plumbing they share (serving, signed POSTs).

pub mod admin;
pub mod heap;
pub mod http;
pub mod metrics;
pub mod process;
pub mod push;
pub mod webhooks;
