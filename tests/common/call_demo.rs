//! What call_demo.c and call_demo.cpp print, step by step (the C and C++
//! versions of one two-party call), for the tests that run them.

pub const CALL_DEMO_LINES: &[&str] = &[
    "[alice] login -> 200",
    "[bob] login -> 200",
    "[alice] call -> 200",
    "[bob] event INVITE",
    "[bob] accept -> 200",
    "[alice] event ACCEPT",
    "[alice] event ROOM_JOIN",
    "[alice] control -> 200",
    "[bob] event CONTROL",
    "[alice] close -> 200",
    "[bob] event ROOM_CLOSE",
];
