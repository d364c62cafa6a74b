//! The signaling engine: runs the rules inside the store's atomic updates,
//! delivers their events and keeps the timers.
//!
//! - [`service`]: requests in, rules run, events out.
//! - [`router`]: which sessions live on this node, and waking them (the
//!   service delivers through it, so it sits here rather than in `net`).
//! - [`store_failure`]: which NIM code each store error is answered with.

pub mod observe;
pub mod router;
pub mod service;
pub mod store_failure;
