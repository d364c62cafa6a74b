//! Client functions of the C ABI.

use serde_json::Value;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dispatch::Dispatcher;
use super::last_error::answer;
use super::types::{
    nim_signaling_client, nim_signaling_event_cb, nim_signaling_result_cb, UserData,
};
use super::{c_json, c_str, guard, to_cstring, RUNTIME};
use ::nim_signaling_client::{Backlog, Client, ClientConfig, Completer, Notification};
use nim_signaling_protocol::codes::{INVALID_PARAM, NOT_CONNECTED};
use nim_signaling_protocol::{Failure, Op, Request};

/// The notification kinds an app can register for.
#[derive(Clone, Copy)]
enum Kind {
    Online = 0,
    MultiClientSync,
    MembersSync,
    Offline,
    Channels,
    ConnectionState,
}
const KINDS: usize = 6;

/// What the callback jobs of one client share.
struct Ctx {
    dispatcher: Arc<Dispatcher>,
    /// Notifications queued for the app's callbacks and not yet run.
    backlog: Arc<Backlog>,
    /// Registered callbacks, read by each notification job when it runs.
    /// A std Mutex: held only to copy a pointer pair, never while calling C.
    callbacks: Mutex<[Option<(unsafe extern "C" fn(*const c_char, *mut c_void), UserData)>; KINDS]>,
}

/// What a `nim_signaling_client *` points to.
struct Handle {
    client: Client,
    ctx: Arc<Ctx>,
}

/// How long `nim_signaling_client_free` waits for the connection to wind down.
const FREE_WAIT: Duration = Duration::from_secs(5);

impl Ctx {
    fn notify(self: &Arc<Self>, n: Notification) {
        let (kind, text) = match n {
            Notification::Online(t) => (Kind::Online, t),
            Notification::MultiClientSync(t) => (Kind::MultiClientSync, t),
            Notification::MembersSync(t) => (Kind::MembersSync, t),
            Notification::Offline(t) => (Kind::Offline, t),
            Notification::Channels(t) => (Kind::Channels, t),
            Notification::ConnectionState(change) => (Kind::ConnectionState, change.to_json()),
        };
        let ctx = self.clone();
        self.backlog.add();
        self.dispatcher.push(Box::new(move || {
            let cb = ctx.callbacks.lock().unwrap_or_else(|e| e.into_inner())[kind as usize];
            if let Some((f, ud)) = cb {
                let text = to_cstring(text);
                // SAFETY: a function pointer the app registered; the string
                // lives until it returns, as documented.
                unsafe { f(text.as_ptr(), ud.0) };
            }
            ctx.backlog.done();
        }));
    }

    /// A completer that queues the app's result callback on this client's
    /// dispatcher.
    fn completer(self: &Arc<Self>, cb: nim_signaling_result_cb, ud: *mut c_void) -> Completer {
        let ctx = self.clone();
        let ud = UserData(ud);
        Completer::new(move |code, json| {
            let Some(cb) = cb else { return };
            ctx.dispatcher.push(Box::new(move || {
                let ud = ud;
                let text = to_cstring(json);
                // SAFETY: the app's callback with its own user data.
                unsafe { cb(code, text.as_ptr(), ud.0) };
            }));
        })
    }
}

/// # Safety
/// `p` is NULL or a live handle from `nim_signaling_client_new`.
unsafe fn handle<'a>(p: *mut nim_signaling_client) -> Result<&'a Handle, Failure> {
    // SAFETY: by this function's contract `p` is NULL (`as_ref` gives
    // None) or the `Box<Handle>` that `nim_signaling_client_new` leaked,
    // aligned and initialised, and not freed while the app still calls
    // functions on it.
    unsafe { (p as *const Handle).as_ref() }
        .ok_or_else(|| Failure::new(INVALID_PARAM, "client is NULL"))
}

/// Creates a client (not yet connected).
///
/// `config_json` (borrowed for the call): `serverUrl` (required, `ws://` or
/// `wss://`), `serverUrls`, `account` (required), `token`, `deviceId`,
/// `requestTimeoutMs` (10000), `reconnect` (true), `heartbeatIntervalMs`
/// (5000), `heartbeatTimeoutMs` (20000), `caFile`. Unknown keys are ignored.
///
/// On 200 `*out_client` receives a handle the caller owns and must free
/// with `nim_signaling_client_free`; on any other code it is not written.
/// Returns 414 for NULL arguments or a bad config, 500 on internal failure.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_client_new(
    config_json: *const c_char,
    out_client: *mut *mut nim_signaling_client,
) -> i32 {
    answer(|| {
        if out_client.is_null() {
            return Err(Failure::new(INVALID_PARAM, "out_client is NULL"));
        }
        // SAFETY: `config_json` is NULL or a NUL-terminated string valid
        // for this call, as documented ("borrowed for the call").
        let cfg = unsafe { c_str(config_json, "config_json") }.and_then(ClientConfig::from_json)?;
        let ctx = Arc::new(Ctx {
            dispatcher: Dispatcher::new(),
            backlog: Arc::default(),
            callbacks: Mutex::new([None; KINDS]),
        });
        let sink_ctx = ctx.clone();
        let client = {
            let _rt = RUNTIME.enter();
            let backlog = ctx.backlog.clone();
            Client::with_backlog(cfg, Arc::new(move |n| sink_ctx.notify(n)), backlog)
        };
        let handle = Box::into_raw(Box::new(Handle { client, ctx })) as *mut nim_signaling_client;
        // SAFETY: `out_client` is not NULL (checked above) and, as
        // documented, points to a `nim_signaling_client *` the caller lets
        // us write.
        unsafe { *out_client = handle };
        Ok(())
    })
}

/// Logs out (if needed), disconnects and frees the client. NULL is a no-op.
///
/// Requests still pending complete (code 415) before this returns; after
/// it returns no callback of this client runs. May be called from inside
/// one of this client's callbacks: the callbacks still queued then run
/// inline, before it returns. The handle is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_client_free(client: *mut nim_signaling_client) {
    guard((), || {
        if client.is_null() {
            return;
        }
        // SAFETY: not NULL, so by the documented contract a handle from
        // `nim_signaling_client_new` not yet freed: the `Box<Handle>` it
        // leaked, whose ownership comes back here exactly once.
        let h = unsafe { Box::from_raw(client as *mut Handle) };
        h.client.shutdown();
        if !h.client.wait_finished_blocking(FREE_WAIT) {
            tracing::warn!("client connection did not stop within {FREE_WAIT:?}");
        }
        h.ctx.dispatcher.drain_and_close();
        drop(h);
    })
}

/// Connects to the server and logs in. Returns 200 when started; `cb` then
/// gets the login result: 200 with `{"code":200,"account",...}`, 302 for a
/// refused token, 415/408 when the server cannot be reached. After a
/// successful login the offline and channels notifications follow.
/// Returns 414 for a NULL client.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_login(
    client: *mut nim_signaling_client,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    answer(|| {
        // SAFETY: `client` is NULL or a live handle, as every function
        // taking one requires.
        let h = unsafe { handle(client) }?;
        h.client.login_with(h.ctx.completer(cb, user_data));
        Ok(())
    })
}

/// Logs out and disconnects (no reconnect). Returns 200 when started (`cb`
/// then gets 200), 415 when not logged in, 414 for a NULL client.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_logout(
    client: *mut nim_signaling_client,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    answer(|| {
        // SAFETY: `client` is NULL or a live handle, as every function
        // taking one requires.
        let h = unsafe { handle(client) }?;
        if !h.client.is_logged_in() {
            return Err(not_logged_in());
        }
        h.client.logout_with(h.ctx.completer(cb, user_data));
        Ok(())
    })
}

/// The refusal of a request made before login or after logout.
fn not_logged_in() -> Failure {
    Failure::new(
        NOT_CONNECTED,
        "not logged in: call nim_signaling_login first (and wait for its callback)",
    )
}

/// The shared path of every operation: check, validate, send.
///
/// # Safety
/// `client` is NULL or a live handle; `params_json` is NULL or a
/// NUL-terminated string valid for the call (the contract of every request
/// function).
unsafe fn start(
    client: *mut nim_signaling_client,
    op: Op,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    answer(|| {
        // SAFETY: `client` is NULL or a live handle (this function's
        // contract).
        let h = unsafe { handle(client) }?;
        // SAFETY: `params_json` is NULL or a NUL-terminated string valid
        // for this call (this function's contract).
        let params: Value = unsafe { c_json(params_json, "params_json") }?;
        let req = Request::parse_op(op, &params)?;
        if !h.client.is_logged_in() {
            return Err(not_logged_in());
        }
        h.client
            .request_with(req.op(), params, h.ctx.completer(cb, user_data))
            .map_err(|(refused, f)| {
                refused.cancel();
                tracing::debug!(
                    op = req.op(),
                    code = f.code,
                    "request refused: {}",
                    f.message
                );
                f
            })
    })
}

/// signalingCreate: `{"type":1|2|3, "channelName"?, "ext"?}` → data
/// `{"channelInfo"}`; 10405 when the name is taken.
///
/// Every request function: `params_json` is borrowed for the call only.
/// Returns 200 when the request was started, and `cb` (if not NULL) is then
/// called exactly once, later, on a library thread, with the outcome (408
/// at `requestTimeoutMs`, 415 if the connection is lost first). Any other
/// return value — 414 for a NULL client, NULL/unparsable/non-object JSON, a
/// wrong type or a missing field, or a request whose frame would be larger
/// than the server's `maxFrameBytes` (as its login reply advertised; 65536
/// before the first login); 415 when not logged in; 416 when the
/// client already has 10000 requests outstanding — means nothing was sent
/// and `cb` will not be called.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_create(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Create, params_json, cb, user_data) }
}

/// signalingClose: `{"channelId", "offlineEnabled"?, "ext"?}`; the creator
/// or a member closes the room, the other members get ROOM_CLOSE. 10404,
/// 10406. Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_close(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Close, params_json, cb, user_data) }
}

/// signalingJoin: `{"channelId", "uid"?, "offlineEnabled"?, "attachExt"?}` →
/// `{"channelInfo","members"}`. 10404, 10407, 10417, 10419, 10420.
/// Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_join(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Join, params_json, cb, user_data) }
}

/// signalingLeave: `{"channelId", "offlineEnabled"?, "attachExt"?}`. 10404,
/// 10406. Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_leave(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Leave, params_json, cb, user_data) }
}

/// signalingInvite: `{"channelId", "account", "requestId",
/// "offlineEnabled"?, "attachExt"?, "pushInfo"?, "busyCheck"?,
/// "timeoutMs"?}`. `timeoutMs` (not in NIM): how long this invitation
/// rings before INVITE_TIMEOUT, at most the server's `inviteTtlMs` (the
/// default). 10201
/// (invitee offline) and 10202 (push unreachable) still keep the
/// invitation. 10404, 10406, 10407, 10419; with `busyCheck: true`, 10430
/// (not in NIM) when the invitee is in another audio/video call or already
/// ringing, and then nothing is recorded. Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_invite(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Invite, params_json, cb, user_data) }
}

/// inviteMany (not in NIM): one invitation with one requestId to each of
/// several accounts: `{"channelId", "accounts": ["…", …] (1 to 100, no
/// repeats), "requestId", "offlineEnabled"?, "attachExt"?, "pushInfo"?,
/// "busyCheck"?, "timeoutMs"?}` → `{"code":200, "results":[{"account","code"}, …]}`, one
/// result per account in the order given: 200 rings, 10201/10202 offline
/// (kept, as for invite), 10430 busy (with busyCheck), 10407 already in the
/// room, 10419 room full. Each invitee sees exactly a single invitation
/// with that requestId, answered and cancelled as usual. The room's own
/// failures fail the whole request: 10404, 10406 (the inviter is neither
/// member nor creator), 403 (the ringing invitations would pass
/// maxPendingInvitesPerAccount). Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_invite_many(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::InviteMany, params_json, cb, user_data) }
}

/// signalingCancel: `{"channelId", "account" (invitee), "requestId",
/// "offlineEnabled"?, "attachExt"?}`. 10404, 10408, 10409, 10410. Calling
/// convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_cancel_invite(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Cancel, params_json, cb, user_data) }
}

/// signalingAccept: `{"channelId", "account" (inviter), "requestId",
/// "offlineEnabled"?, "attachExt"?, "autoJoin"?, "uid"?, "joinAttachExt"?}`
/// → `{"channelInfo","members"}` with autoJoin. 10404, 10408, 10409, 10410,
/// 10201 (inviter offline; the accept still counts). Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_accept(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Accept, params_json, cb, user_data) }
}

/// signalingReject: `{"channelId", "account" (inviter), "requestId",
/// "offlineEnabled"?, "attachExt"?}`. Same codes as accept. Calling
/// convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reject(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Reject, params_json, cb, user_data) }
}

/// signalingControl: `{"channelId", "account"?, "attachExt"?}`; no account
/// means every member. Online only. 10404, 10406. Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_control(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Control, params_json, cb, user_data) }
}

/// signalingCall: create + join + invite in one step: `{"type", "channelName"?,
/// "ext"?, "uid"?, "account", "requestId", "offlineEnabled"?, "attachExt"?,
/// "pushInfo"?, "busyCheck"?, "timeoutMs"?}` → `{"channelInfo","members"}`
/// (also with 10201/10202). 10405; 10430 and `timeoutMs` as for invite.
///
/// Glare (not in NIM): when `account` has an invitation to us still ringing
/// in a valid room, no room is made: we accept its newest such invitation
/// and join its room (with our `uid`; our `attachExt` goes with the ACCEPT
/// and the ROOM_JOIN; our type, channelName, ext and requestId are unused)
/// → `{"channelInfo","members","glare":true}` with accept's code (200, or
/// 10201 when it has no device online); a failed join fails the call with
/// join's code (10417, 10419, …). Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_call(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Call, params_json, cb, user_data) }
}

/// signalingSync: `{}` → `{"eventList", "channels"}`: the events kept for
/// this device while it was offline, and the rooms its account is in.
/// Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_sync(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::Sync, params_json, cb, user_data) }
}

/// Room query: `{"channelId"}` or `{"channelName"}` →
/// `{"channelInfo","members"}`. 10404. Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_query_channel_info(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::QueryChannelInfo, params_json, cb, user_data) }
}

/// Registers this device's push token (an addition to NIM's API):
/// `{"token", "provider"?}` → `{}`. When an invitation with
/// `pushInfo.needPush` reaches this account while none of its devices is
/// online, the server's push gateway gets the tokens of all its devices
/// (docs/PUSH.md). The token stays until replaced; an empty token removes
/// it. `token`: at most 4096 bytes, no control characters; `provider`
/// ("apns", "fcm", …): free text for the gateway, at most 128 bytes. 414 for
/// bad params. Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_register_push_token(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::RegisterPushToken, params_json, cb, user_data) }
}

/// Lists this account's invitations (an addition to NIM's API): `{}` →
/// `{"sent":[…], "received":[…]}`, each item `{"channelId", "account" (the
/// other side), "requestId", "state", "createTimestamp",
/// "expireTimestamp"}`, oldest first (then by channelId). `state` is
/// "pending", "accepted", "rejected", "cancelled" or "expired" (a pending
/// invitation past its `expireTimestamp` reads "expired"). Only the
/// invitations the server still keeps: those of rooms not yet forgotten
/// (answered ones go once they are past their expiry and the room changes
/// again). After a restart this tells an app at once what is ringing.
/// Calling convention as `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_query_invitations(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::QueryInvitations, params_json, cb, user_data) }
}

/// Changes a room's ext (an addition to NIM's API): `{"channelId", "ext",
/// "offlineEnabled"?}` → `{"channelInfo"}` with the new ext. Allowed to the
/// creator and the members; the other members and the creator get
/// CHANNEL_UPDATE (`eventTypeCode` 11) with the new channelInfo, the
/// caller's other devices the same event as a multi-client sync. `ext`: at
/// most 4096 bytes (empty clears it). 10404 for a closed, expired or
/// unknown room; 10406 for anyone else. Calling convention as
/// `nim_signaling_create`.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_update_channel(
    client: *mut nim_signaling_client,
    params_json: *const c_char,
    cb: nim_signaling_result_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: the caller's arguments are as documented, which is what
    // `start` requires.
    unsafe { start(client, Op::UpdateChannel, params_json, cb, user_data) }
}

/// The shared path of every registration function.
///
/// # Safety
/// `client` is NULL or a live handle.
unsafe fn register(
    client: *mut nim_signaling_client,
    kind: Kind,
    cb: nim_signaling_event_cb,
    ud: *mut c_void,
) -> i32 {
    answer(|| {
        // SAFETY: `client` is NULL or a live handle, as every function
        // taking one requires.
        let h = unsafe { handle(client) }?;
        h.ctx.callbacks.lock().unwrap_or_else(|e| e.into_inner())[kind as usize] =
            cb.map(|f| (f, UserData(ud)));
        Ok(())
    })
}

/// Registers the signalingNotify callback: one event (JSON) per call.
///
/// Every registration function: a later call replaces the earlier
/// callback, NULL unregisters; it applies to notifications delivered after
/// it returns. Returns 200, or 414 for a NULL client.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_online_notify_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::Online, cb, user_data) }
}

/// Registers the signalingMutilClientSyncNotify callback: an ACCEPT,
/// REJECT or CHANNEL_UPDATE event done on another device of this account.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_multi_client_sync_notify_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::MultiClientSync, cb, user_data) }
}

/// Registers the signalingMembersSyncNotify callback:
/// `{"channelInfo":{...},"members":[...]}` when members changed without an
/// event (a member's device vanished).
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_members_sync_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::MembersSync, cb, user_data) }
}

/// Registers the offline events callback: `{"eventList":[event,...]}` after
/// a login, when events were kept while this device was offline.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_offline_notify_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::Offline, cb, user_data) }
}

/// Registers the channels sync callback: `{"channels":[{"channelInfo",
/// "members"},...]}`, the rooms this account is in, after each login.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_channels_sync_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::Channels, cb, user_data) }
}

/// Registers the connection state callback: `{"state":"connecting" |
/// "connected" | "reconnecting" | "disconnected" | "kicked", "code":N}`.
///
/// While `reconnecting`, requests wait (up to their timeout) and the event
/// stream resumes where it stopped: each event reaches the callbacks once,
/// in order. A `connected` after a reconnect carries `"resync":"trimmed"`
/// or `"resync":"stateLost"` when the server could not resume (the device
/// was away too long, or the server lost its state): events of the gap may
/// be missing, and the offline list and channels sync that follow are the
/// state to rebuild from. Any `connected` (the first one too) carries
/// `"resync":"trimmed"` when the offline list that follows is incomplete:
/// the account's offline list was full (`maxOfflineEvents`) and dropped its
/// oldest events. See docs/DELIVERY.md.
#[no_mangle]
pub unsafe extern "C" fn nim_signaling_reg_connection_state_cb(
    client: *mut nim_signaling_client,
    cb: nim_signaling_event_cb,
    user_data: *mut c_void,
) -> i32 {
    // SAFETY: `client` is NULL or a live handle, as documented.
    unsafe { register(client, Kind::ConnectionState, cb, user_data) }
}

/// The shape every request function of the C ABI shares.
pub type RequestFn = unsafe extern "C" fn(
    *mut nim_signaling_client,
    *const c_char,
    nim_signaling_result_cb,
    *mut c_void,
) -> i32;

/// Every request function of the C ABI with its operation's wire name, for
/// code that drives them all (the tests, the fuzz targets, bindings that
/// want a table).
pub const REQUEST_FUNCTIONS: &[(&str, RequestFn)] = &[
    (Op::Create.as_str(), nim_signaling_create),
    (Op::Close.as_str(), nim_signaling_close),
    (Op::Join.as_str(), nim_signaling_join),
    (Op::Leave.as_str(), nim_signaling_leave),
    (Op::Invite.as_str(), nim_signaling_invite),
    (Op::InviteMany.as_str(), nim_signaling_invite_many),
    (Op::Cancel.as_str(), nim_signaling_cancel_invite),
    (Op::Accept.as_str(), nim_signaling_accept),
    (Op::Reject.as_str(), nim_signaling_reject),
    (Op::Control.as_str(), nim_signaling_control),
    (Op::Call.as_str(), nim_signaling_call),
    (Op::Sync.as_str(), nim_signaling_sync),
    (
        Op::QueryChannelInfo.as_str(),
        nim_signaling_query_channel_info,
    ),
    (
        Op::RegisterPushToken.as_str(),
        nim_signaling_register_push_token,
    ),
    (
        Op::QueryInvitations.as_str(),
        nim_signaling_query_invitations,
    ),
    (Op::UpdateChannel.as_str(), nim_signaling_update_channel),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations the C ABI sends without a request function of the
    /// shape `RequestFn`: login and logout have their own functions
    /// (`nim_signaling_login`, `nim_signaling_logout`), and the client
    /// library sends inviteDelivered itself when an INVITE arrives.
    const NOT_REQUEST_FUNCTIONS: &[Op] = &[Op::Login, Op::Logout, Op::InviteDelivered];

    #[test]
    fn request_functions_cover_every_op_an_app_sends() {
        for (name, _) in REQUEST_FUNCTIONS {
            let op = Op::from_name(name).unwrap_or_else(|| panic!("{name} is no operation"));
            assert!(!NOT_REQUEST_FUNCTIONS.contains(&op), "{op}");
        }
        for op in Op::ALL {
            let n = REQUEST_FUNCTIONS
                .iter()
                .filter(|(name, _)| *name == op.as_str())
                .count();
            let want = usize::from(!NOT_REQUEST_FUNCTIONS.contains(op));
            assert_eq!(n, want, "{op}: {n} request functions");
        }
    }
}
