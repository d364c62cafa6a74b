//! The wire between client and server: frames, operations and their
//! parameters, the seed's objects and events, and the NIM codes. Knows no
//! socket and no state.

pub mod codes;
pub mod flex;
pub mod frames;
pub mod objects;
pub mod op;
pub mod param_errors;
pub mod params;

pub use codes::Failure;
pub use frames::NotifyKind;
pub use objects::{ChannelInfo, ChannelWithMembers, Event, EventType, Member, PushInfo};
pub use op::Op;
pub use params::Request;
