//! The library's logs routed to the host: `nim_signaling_set_log_cb`.
//!
//! The library logs with `tracing`. Until the host asks, no subscriber is
//! installed, so nothing is formatted and nothing reaches stdout or stderr.
//! The first `nim_signaling_set_log_cb` installs one process-wide subscriber
//! whose only output is the registered C callback; later calls swap the
//! callback and the level.
//!
//! The callback runs on the thread that logged, while a read lock on the
//! registration is held: that is what lets `nim_signaling_set_log_cb`
//! promise that once it returns, the previous callback is neither running
//! nor called again. A thread-local flag keeps the callback from being
//! entered twice on one thread (what the library logs while the callback
//! runs is dropped) and refuses `nim_signaling_set_log_cb` from inside it,
//! which would otherwise wait for itself.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::last_error::answer;
use nim_signaling_protocol::codes::{FORBIDDEN, INTERNAL, INVALID_PARAM};
use nim_signaling_protocol::Failure;

/// Log levels of `nim_signaling_set_log_cb`, most severe first; a level
/// lets through its own messages and the more severe ones.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nim_signaling_log_level {
    /// Nothing is logged.
    NIM_SIGNALING_LOG_OFF = 0,
    NIM_SIGNALING_LOG_ERROR = 1,
    NIM_SIGNALING_LOG_WARN = 2,
    NIM_SIGNALING_LOG_INFO = 3,
    NIM_SIGNALING_LOG_DEBUG = 4,
    NIM_SIGNALING_LOG_TRACE = 5,
}

/// A log line: `level` (1 error … 5 trace), `target` (the module that
/// logged, e.g. `"nim_signaling::server::session"`) and `message` (the
/// text, then its fields as ` key=value`). Both strings are owned by the
/// library and valid only until the callback returns.
pub type nim_signaling_log_cb = Option<
    unsafe extern "C" fn(
        level: i32,
        target: *const c_char,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

struct Sink {
    cb: unsafe extern "C" fn(i32, *const c_char, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the host promises (in the header) that its callback may be called
// from any thread with this user_data.
unsafe impl Send for Sink {}
// SAFETY: the header also allows calls from several threads at once, and a
// shared Sink is only read: its pointers are copied, never written.
unsafe impl Sync for Sink {}

/// The registered callback; None: off.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// The most verbose level let through (0: off), read before any formatting.
static LEVEL: AtomicI32 = AtomicI32::new(0);
static INSTALL: Once = Once::new();
/// Whether the process-wide subscriber is ours (false: the host already had
/// one when we tried).
static INSTALLED: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn level_number(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Formats an event as its message followed by ` key=value` per field.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// C strings without interior NULs (replaced, so that nothing is cut short).
fn c_string(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let bytes: Vec<u8> = e
            .into_vec()
            .into_iter()
            .map(|b| if b == 0 { b'?' } else { b })
            .collect();
        CString::new(bytes).unwrap_or_default()
    })
}

struct ToCallback;

/// The fields of a span (` rid=… op=…`), kept with it so that every event
/// inside it carries them.
struct SpanFields(String);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ToCallback {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut line = Line::default();
            attrs.record(&mut line);
            span.extensions_mut().insert(SpanFields(line.fields));
        }
    }

    // "Sometimes": ask `enabled` at every event, so a level set later takes
    // effect at once instead of whatever was cached when a callsite was
    // first seen.
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        level_number(metadata.level()) <= LEVEL.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if IN_CALLBACK.with(Cell::get) {
            return;
        }
        let meta = event.metadata();
        let level = level_number(meta.level());
        if level > LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        // Then the fields of the spans it happened in (a request's `rid`).
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    line.message.push_str(&f.0);
                }
            }
        }
        let target = c_string(meta.target().to_string());
        let message = c_string(line.message);
        let sink = SINK.read().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sink.as_ref() {
            IN_CALLBACK.with(|f| f.set(true));
            // SAFETY: the host registered `cb` for exactly this call; the
            // strings live until it returns.
            unsafe { (s.cb)(level, target.as_ptr(), message.as_ptr(), s.user_data) };
            IN_CALLBACK.with(|f| f.set(false));
        }
    }
}

/// Installs the subscriber once; false if the process already has another.
fn install() -> bool {
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ToCallback);
        if tracing::subscriber::set_global_default(subscriber).is_ok() {
            INSTALLED.store(1, Ordering::SeqCst);
        }
    });
    INSTALLED.load(Ordering::SeqCst) == 1
}

/// Routes the library's logs to `cb` from now on: messages at `level` (an
/// `nim_signaling_log_level`) and more severe. `cb` NULL or level 0 turns
/// logging off; logging is off until this is first called, and the library
/// never writes to stdout or stderr itself.
///
/// `cb` is called on whatever thread logged (library threads, or the
/// caller's own thread during a call such as `nim_signaling_server_start`),
/// possibly from several threads at once; it should return quickly. It may
/// call other `nim_signaling_` functions, but what they log meanwhile is
/// dropped. `user_data` is passed back as is and must stay valid until a
/// later call of this function has replaced it: once that call returns,
/// the previous callback is not running and is never called again.
///
/// Returns 200; 414 for a level outside 0-5; 403 when called from inside
/// the log callback (nothing changed); 500 when the process already has
/// another global `tracing` subscriber (a Rust host's: the logs go there).
#[no_mangle]
pub extern "C" fn nim_signaling_set_log_cb(
    level: i32,
    cb: nim_signaling_log_cb,
    user_data: *mut c_void,
) -> i32 {
    answer(|| {
        if !(0..=5).contains(&level) {
            return Err(Failure::new(
                INVALID_PARAM,
                format!("level {level} is outside 0 (off) to 5 (trace)"),
            ));
        }
        if IN_CALLBACK.with(Cell::get) {
            return Err(Failure::new(
                FORBIDDEN,
                "nim_signaling_set_log_cb was called from inside the log callback",
            ));
        }
        let sink = match cb {
            Some(cb) if level > 0 => Some(Sink { cb, user_data }),
            _ => None,
        };
        if sink.is_some() && !install() {
            return Err(Failure::new(
                INTERNAL,
                "this process already has a global tracing subscriber (the host's): the logs go there",
            ));
        }
        // Taking the write lock waits for callbacks in progress.
        let mut slot = SINK.write().unwrap_or_else(|e| e.into_inner());
        LEVEL.store(if sink.is_some() { level } else { 0 }, Ordering::SeqCst);
        *slot = sink;
        Ok(())
    })
}
