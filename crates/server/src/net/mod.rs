//! The network side: one session per connection, and the checks at the door.
//!
//! - [`session`]: handshake, login, requests, events of one connection.
//! - [`limits`]: per-IP connection and per-connection request bounds.
//! - [`tls`]: TLS termination and the stream a session runs over.
//! - [`auth`]: who may log in (static tokens, HMAC tokens).

pub mod auth;
pub mod limits;
pub mod session;
pub mod tls;
