//! nim-signaling: self-hostable call signaling with the API of the NIM
//! "independent call signaling" SDK.
//!
//! Layers, imports pointing down only:
//! - [`ffi`]: the C ABI (handles, JSON in/out, callbacks, panic guard);
//! - [`client`]: the async Rust client the C ABI wraps;
//! - [`server`]: listener, sessions, service, pure rules, router;
//! - [`store`]: where state lives (memory; Redis for clusters);
//! - [`protocol`]: the wire — frames, operations, objects, codes.

pub mod client;
pub mod ffi;
pub mod protocol;
pub mod server;
pub mod store;
