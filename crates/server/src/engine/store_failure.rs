//! Which NIM code a client is answered with when the store fails: the one
//! place that decides it. Stores say what went wrong ([`StoreError`]); the
//! engine says what that means to a client. Thanks to this `From`, `?` in
//! the service turns a store error into its answer.
//!
//! | StoreError    | code           | why                                      |
//! |---------------|----------------|------------------------------------------|
//! | `Unavailable` | 500 (INTERNAL) | the server cannot do its part right now  |
//! | `Corrupt`     | 500 (INTERNAL) | stored state the server cannot read      |
//! | `Encode`      | 500 (INTERNAL) | a server bug: state it cannot write      |
//! | `Script`      | 500 (INTERNAL) | a server bug: a store script failed      |
//! | `Contended`   | 500 (INTERNAL) | a room too busy to update (try again)    |
//! | `Config`      | 500 (INTERNAL) | only when starting (a bad store URL)     |
//!
//! Every one is INTERNAL today, as before stores had errors of their own;
//! the message is the store error's text unchanged.

use crate::store::StoreError;
use nim_signaling_protocol::codes::INTERNAL;
use nim_signaling_protocol::Failure;

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::Unavailable(_)
            | StoreError::Corrupt(_)
            | StoreError::Encode(_)
            | StoreError::Script(_)
            | StoreError::Contended
            | StoreError::Config(_) => INTERNAL,
        };
        Failure::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_is_internal_with_its_message() {
        let cases = [
            (
                StoreError::Unavailable("store unavailable: refused".into()),
                "store unavailable: refused",
            ),
            (
                StoreError::Corrupt("stored log entry unreadable".into()),
                "stored log entry unreadable",
            ),
            (StoreError::Encode("bad".into()), "bad"),
            (
                StoreError::Script("store script append failed: ERR".into()),
                "store script append failed: ERR",
            ),
            (
                StoreError::Contended,
                "the room changed too often to be updated; try again",
            ),
            (
                StoreError::Config("store url x: invalid".into()),
                "store url x: invalid",
            ),
        ];
        for (e, message) in cases {
            let f = Failure::from(e);
            assert_eq!(f.code, INTERNAL);
            assert_eq!(f.message, message);
        }
    }
}
