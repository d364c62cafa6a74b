//! Handing the allocator's free memory back to the kernel.
//!
//! glibc's malloc keeps what a process freed for reuse, and gives it back
//! by itself only when free space gathers at the top of a heap, which a
//! few long-lived allocations above it prevent. So after a flood (rooms,
//! offline events, connections) has come and gone, VmRSS would stay at
//! the flood's peak although the server holds no more than before it
//! (docs/PERFORMANCE.md, "Hostile load"). The sweeper therefore asks
//! malloc, every [`TRIM_EVERY_MS`], to give its free pages back.
//!
//! Elsewhere (musl, macOS, Android's bionic) this does nothing: those
//! allocators return memory on their own terms.

use std::time::{Duration, Instant};

/// How often the free memory is handed back. Often enough that VmRSS
/// follows the server's own bounds within seconds of their lifetimes;
/// rare enough that the walk over malloc's free lists (each arena's lock
/// held in turn) costs nothing that shows (docs/PERFORMANCE.md).
pub const TRIM_EVERY_MS: i64 = 10_000;

/// Hands malloc's free pages back to the kernel, and logs (debug) how long
/// that took. Blocking: run it off the runtime's worker threads.
pub fn trim() {
    let start = Instant::now();
    give_back();
    let took: Duration = start.elapsed();
    tracing::debug!(
        took_us = took.as_micros() as u64,
        "free heap memory handed back"
    );
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back() {
    // SAFETY: malloc_trim takes no pointers and only rearranges malloc's
    // own free lists, under its own locks; any thread may call it at any
    // time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back() {}

/// Maps smaller than this many slots are left as they are.
const SPARSE_FLOOR: usize = 1024;

/// Gives back the table space `map` keeps for entries it no longer has,
/// when it holds less than a quarter of its capacity: a hash map keeps
/// its capacity when its entries go, so after a flood (ten thousand
/// never-seen accounts, twenty thousand deviceIds) its table would stay
/// the flood's size, and [`trim`] cannot hand back pages that table
/// still holds. Cheap to call after every sweep: it only rehashes a map
/// that is mostly empty.
pub fn shrink_when_sparse<K: Eq + std::hash::Hash, V>(map: &dashmap::DashMap<K, V>) {
    let capacity = map.capacity();
    if capacity > SPARSE_FLOOR && capacity > 4 * map.len() {
        map.shrink_to_fit();
    }
}
