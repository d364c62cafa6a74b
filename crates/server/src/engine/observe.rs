//! The ports between the engine and the operator side. The engine reports
//! what happens through [`Observer`] and asks for pushes through [`Pusher`];
//! it knows neither metrics, nor webhooks, nor any gateway. `ops` implements
//! them, and `start` wires them in, so the dependency points from `ops` to
//! the engine and never back.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::store::{PushToken, Room};
use nim_signaling_protocol::objects::PushInfo;
use nim_signaling_protocol::{ChannelInfo, Op};

/// Why a room changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause<'a> {
    /// A client's request.
    Request {
        op: Op,
        account: &'a str,
        device: &'a str,
    },
    /// The operator, through the admin API (`action`: e.g. "closeRoom").
    Admin { action: &'static str },
    /// The invitation expiry timer.
    InviteTimeout,
    /// The timer of a device that stayed away past the member drop grace.
    DeviceGone { account: &'a str, device: &'a str },
    /// The sweeper forgot a room whose time ran out.
    RoomExpiry,
}

/// Things that happen once, which the operator side may count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happening {
    ConnectionOpened,
    ConnectionClosed,
    /// A connection was closed as soon as it was accepted (its address
    /// already held maxConnectionsPerIp, or maxPendingLoginsPerIp not
    /// logged in yet); it never opened.
    ConnectionRefused,
    /// A connection not logged in yet was told to close so that a new
    /// one could have its place: every place among the pending logins
    /// (maxPendingLogins) was taken, and it was the oldest.
    PendingEvicted,
    /// A login was refused (a bad token, a limit: maxDevicesPerAccount,
    /// maxConnections).
    LoginRefused,
    /// A login succeeded: a session starts.
    SessionOpened,
    SessionClosed,
    /// This many event frames were written to a session.
    EventsSent(u64),
    /// A session was dropped because it did not take its events in time.
    SlowReaderDropped,
    /// A request was answered from its retry record instead of being applied.
    RepeatAnswered,
    /// This many timers ran.
    TimersRun(u64),
    /// The push gateway took a push (true) or refused it / did not answer.
    Pushed(bool),
}

/// What the engine tells whoever watches it. Every method has an empty
/// default, so an observer implements only what it cares about. Calls come
/// from the engine's tasks and must not block: queue, count, return.
pub trait Observer: Send + Sync + 'static {
    /// Whether [`Observer::room_changed`] is wanted: the engine keeps a copy
    /// of each room before and after a change only when someone looks.
    fn watches_rooms(&self) -> bool {
        false
    }
    /// A committed change of one room (`before`: None when it was created).
    fn room_changed(&self, _before: Option<&Room>, _after: &Room, _cause: &Cause<'_>, _now: i64) {}
    /// Rooms the sweeper forgot.
    fn rooms_forgotten(&self, _rooms: &[Room], _now: i64) {}
    /// One request (`op`: its wire name) answered with `code` after `took`.
    fn request_answered(&self, _op: &str, _code: i32, _took: Duration) {}
    fn happened(&self, _what: Happening) {}
}

/// Several observers as one, in order.
#[derive(Default, Clone)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    pub fn new(all: Vec<Arc<dyn Observer>>) -> Self {
        Observers(all)
    }
}

impl Observer for Observers {
    fn watches_rooms(&self) -> bool {
        self.0.iter().any(|o| o.watches_rooms())
    }
    fn room_changed(&self, before: Option<&Room>, after: &Room, cause: &Cause<'_>, now: i64) {
        for o in &self.0 {
            o.room_changed(before, after, cause, now);
        }
    }
    fn rooms_forgotten(&self, rooms: &[Room], now: i64) {
        for o in &self.0 {
            o.rooms_forgotten(rooms, now);
        }
    }
    fn request_answered(&self, op: &str, code: i32, took: Duration) {
        for o in &self.0 {
            o.request_answered(op, code, took);
        }
    }
    fn happened(&self, what: Happening) {
        for o in &self.0 {
            o.happened(what);
        }
    }
}

/// What one push is about: the invitation that could not ring.
pub struct Push<'a> {
    /// The invitee.
    pub account: &'a str,
    pub info: &'a PushInfo,
    pub channel: &'a ChannelInfo,
    pub from: &'a str,
    pub request_id: &'a str,
    pub attach_ext: &'a str,
    /// The invitee's devices' registered tokens.
    pub tokens: &'a [PushToken],
    pub at: i64,
}

/// Where the pushes of offline invitees go. Unlike an observer its answer
/// matters: it decides between 10201 (pushed) and 10202.
#[async_trait]
pub trait Pusher: Send + Sync + 'static {
    /// True when the push was taken.
    async fn send(&self, push: &Push<'_>) -> bool;
}
