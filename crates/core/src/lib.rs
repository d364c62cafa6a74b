//! The signaling core: the seed's rules as pure functions over the room
//! model. No I/O, no clock, no randomness: the server passes them in, runs a
//! rule inside its store's atomic update and delivers what the rule decided.
//!
//! - [`model`]: rooms, members, invitations, log entries and timers.
//! - [`rules`]: one function per operation, table- and property-tested.

pub mod model;
pub mod rules;
