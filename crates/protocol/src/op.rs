//! The operations of the protocol: the one list of them, each with its wire
//! name (`"op"` of a request frame). Parsing (`Request::parse`), the
//! server's metrics and the C ABI all take their operations from here.

use std::fmt;
use std::str::FromStr;

use super::codes::{Failure, INVALID_PARAM};

/// Declares `Op` with its variants, `Op::ALL` and `Op::as_str` from one
/// list, so that no operation can be in one and missing from another.
macro_rules! ops {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// One operation of the protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Op {
            $($(#[$doc])* $variant,)*
        }

        impl Op {
            /// Every operation, in declaration order (`Op::ALL[op.index()] == op`).
            pub const ALL: &'static [Op] = &[$(Op::$variant,)*];

            /// The name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)*
                }
            }
        }
    };
}

ops! {
    Login => "login",
    Logout => "logout",
    Create => "create",
    Close => "close",
    Join => "join",
    Leave => "leave",
    Invite => "invite",
    Cancel => "cancel",
    Accept => "accept",
    Reject => "reject",
    Control => "control",
    Call => "call",
    Sync => "sync",
    QueryChannelInfo => "queryChannelInfo",
    /// Not in NIM.
    RegisterPushToken => "registerPushToken",
    /// Not in NIM.
    InviteMany => "inviteMany",
    /// Not in NIM.
    QueryInvitations => "queryInvitations",
    /// Not in NIM; sent by the client library itself, not by apps.
    InviteDelivered => "inviteDelivered",
    /// Not in NIM.
    UpdateChannel => "updateChannel",
}

impl Op {
    /// The operation named `name` on the wire, if any (names are
    /// case-sensitive).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.as_str() == name)
    }

    /// This operation's position in [`Op::ALL`]: a dense index for tables
    /// with one slot per operation.
    pub const fn index(self) -> usize {
        self as usize
    }
}

// `index` is the declaration order, which is the order of `ALL`.
const _: () = {
    let mut i = 0;
    while i < Op::ALL.len() {
        assert!(Op::ALL[i].index() == i);
        i += 1;
    }
};

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOp(pub String);

impl fmt::Display for UnknownOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown operation \"{}\"", self.0)
    }
}

impl std::error::Error for UnknownOp {}

/// An unknown operation is invalid parameters (414), as on the wire.
impl From<UnknownOp> for Failure {
    fn from(e: UnknownOp) -> Failure {
        Failure::new(INVALID_PARAM, e.to_string())
    }
}

impl FromStr for Op {
    type Err = UnknownOp;

    fn from_str(name: &str) -> Result<Op, UnknownOp> {
        Op::from_name(name).ok_or_else(|| UnknownOp(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips_through_its_name() {
        for (i, op) in Op::ALL.iter().copied().enumerate() {
            assert_eq!(op.index(), i, "{op:?}");
            assert_eq!(Op::from_name(op.as_str()), Some(op), "{op:?}");
            assert_eq!(op.as_str().parse::<Op>(), Ok(op), "{op:?}");
            assert_eq!(op.to_string(), op.as_str());
        }
        let mut names: Vec<_> = Op::ALL.iter().map(|op| op.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Op::ALL.len(), "two operations share a name");
    }

    #[test]
    fn unknown_names_are_no_op() {
        for name in ["", "Login", "LOGIN", "login ", "bogus", "invite_many"] {
            assert_eq!(Op::from_name(name), None, "{name:?}");
            let e = name.parse::<Op>().unwrap_err();
            let f = Failure::from(e);
            assert_eq!(f.code, INVALID_PARAM);
            assert_eq!(f.message, format!("unknown operation \"{name}\""));
        }
    }
}
