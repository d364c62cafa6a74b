'use strict';
// nim-signaling for Node: the NIM Web SDK "independent call signaling" API
// (NIM.getInstance, nim.signalingXxx() promises, nim.on('signalingNotify'))
// over the C library libnim_signaling, loaded with koffi.
//
// Threads: the library calls its callbacks on its own threads. koffi queues
// such calls to the main JS thread and the library thread waits there until
// the JS function has returned (so the borrowed strings stay valid while we
// copy them). Hence nothing here may block the main thread waiting for the
// library's callback thread: client_free and server_stop, which wait for
// callbacks to finish, always run on a worker thread (koffi's `.async`).

const fs = require('fs');
const path = require('path');
const { EventEmitter } = require('events');
const { libraryName, prebuildPath } = require('./libpath');

let koffi = null;
let native = null;

// ---------------------------------------------------------------- library

/**
 * Where to look when NIM_SIGNALING_LIB is not set, in order: the copy
 * bundled in this package for this platform and CPU, then the dynamic
 * loader's own search (LD_LIBRARY_PATH, ldconfig, rpath), then the builds
 * of the repository this folder sits in (a checkout, or a package
 * installed from its path).
 */
function candidates() {
  const base = libraryName();
  const repo = path.resolve(__dirname, '..', '..', 'target');
  return [prebuildPath(), base, ...['dist', 'release', 'debug'].map((p) => path.join(repo, p, base))];
}

/** koffi's library from NIM_SIGNALING_LIB, else the first candidate that loads. */
function openLibrary() {
  const env = process.env.NIM_SIGNALING_LIB;
  if (env) {
    try {
      return { lib: koffi.load(env), path: env };
    } catch (e) {
      throw new Error(`nim-signaling: cannot load NIM_SIGNALING_LIB=${env}: ${e.message}`);
    }
  }
  const tried = [];
  for (const c of candidates()) {
    if (path.isAbsolute(c) && !fs.existsSync(c)) {
      tried.push(`${c} (missing)`);
      continue;
    }
    try {
      return { lib: koffi.load(c), path: c };
    } catch (e) {
      tried.push(`${c} (${e.message})`);
    }
  }
  throw new Error(
    `nim-signaling: cannot load the nim-signaling C library for ${process.platform}-${process.arch}. ` +
      `Set NIM_SIGNALING_LIB to the path of ${libraryName()} (build it with \`cargo build --release --lib\`). ` +
      'Tried: ' + tried.join('; ')
  );
}

/** The function `decl` of `lib`, or null when the library lacks the symbol (an older build). */
function optionalFunc(lib, decl) {
  try {
    return lib.func(decl);
  } catch (_) {
    return null;
  }
}

function loadNative() {
  if (native) return native;
  koffi = require('koffi');
  const { lib, path: libPath } = openLibrary();

  // user_data is declared intptr_t (same size and registers as void * on
  // every supported ABI): it carries a small integer, never a pointer.
  const ResultCb = koffi.proto('void nim_signaling_result_cb(int32_t code, const char *json, intptr_t ud)');
  const EventCb = koffi.proto('void nim_signaling_event_cb(const char *json, intptr_t ud)');
  const req = (name) => lib.func(`int32_t ${name}(void *client, const char *params, nim_signaling_result_cb *cb, intptr_t ud)`);
  const reg = (name) => lib.func(`int32_t ${name}(void *client, nim_signaling_event_cb *cb, intptr_t ud)`);
  native = {
    path: libPath,
    clientNew: lib.func('int32_t nim_signaling_client_new(const char *cfg, _Out_ void **out)'),
    clientFree: lib.func('void nim_signaling_client_free(void *client)'),
    login: lib.func('int32_t nim_signaling_login(void *client, nim_signaling_result_cb *cb, intptr_t ud)'),
    logout: lib.func('int32_t nim_signaling_logout(void *client, nim_signaling_result_cb *cb, intptr_t ud)'),
    ops: {
      signalingCreate: req('nim_signaling_create'),
      signalingClose: req('nim_signaling_close'),
      signalingJoin: req('nim_signaling_join'),
      signalingLeave: req('nim_signaling_leave'),
      signalingInvite: req('nim_signaling_invite'),
      // Ours, not the Web SDK's: one requestId to several invitees.
      signalingInviteMany: req('nim_signaling_invite_many'),
      signalingCancel: req('nim_signaling_cancel_invite'),
      signalingAccept: req('nim_signaling_accept'),
      signalingReject: req('nim_signaling_reject'),
      signalingControl: req('nim_signaling_control'),
      signalingCall: req('nim_signaling_call'),
      signalingSync: req('nim_signaling_sync'),
      signalingGetChannelInfo: req('nim_signaling_query_channel_info'),
      // Ours, not the Web SDK's: this device's push token (docs/PUSH.md).
      signalingRegisterPushToken: req('nim_signaling_register_push_token'),
      // Ours: this account's invitations, and changing a room's ext.
      signalingQueryInvitations: req('nim_signaling_query_invitations'),
      signalingUpdateChannel: req('nim_signaling_update_channel'),
    },
    reg: {
      online: reg('nim_signaling_reg_online_notify_cb'),
      multi: reg('nim_signaling_reg_multi_client_sync_notify_cb'),
      members: reg('nim_signaling_reg_members_sync_cb'),
      offline: reg('nim_signaling_reg_offline_notify_cb'),
      channels: reg('nim_signaling_reg_channels_sync_cb'),
      state: reg('nim_signaling_reg_connection_state_cb'),
    },
    serverStart: lib.func('int32_t nim_signaling_server_start(const char *cfg, _Out_ void **out)'),
    serverUrl: lib.func('const char *nim_signaling_server_url(void *server)'),
    serverStop: lib.func('void nim_signaling_server_stop(void *server)'),
    version: lib.func('const char *nim_signaling_version(void)'),
    // Why the last call on this thread that returned other than 200 at
    // once did so; absent from libraries older than the function.
    lastError: optionalFunc(lib, 'const char *nim_signaling_last_error(void)'),
  };

  // One registered JS function per callback kind for the whole process,
  // never unregistered: no library thread can ever call a freed trampoline.
  native.resultCb = koffi.register((code, json, ud) => guard(() => onResult(code, json, Number(ud))), koffi.pointer(ResultCb));
  native.eventCbs = {};
  for (const kind of Object.keys(native.reg)) {
    native.eventCbs[kind] = koffi.register((json, ud) => guard(() => onEvent(kind, json, Number(ud))), koffi.pointer(EventCb));
  }
  return native;
}

/** Runs f; an exception never propagates into koffi / the library. */
function guard(f) {
  try {
    f();
  } catch (e) {
    try {
      console.error('nim-signaling: exception in a callback:', e);
    } catch (_) {
      /* nothing left to do */
    }
  }
}

// ------------------------------------------------------- keep-alive timer
// The library's threads do not keep Node's event loop alive, so a program
// awaiting an event would exit. While a client or server lives, a timer
// does; nim.destroy() / server.stop() release it.

let liveHandles = 0;
let keepAlive = null;
function retain() {
  if (liveHandles++ === 0) keepAlive = setInterval(() => {}, 1 << 30);
}
function release() {
  if (--liveHandles === 0) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

// ------------------------------------------------------------- requests

let nextId = 1;
const pending = new Map(); // request id -> {resolve, reject}
const clients = new Map(); // client id -> NIM instance

function parse(json) {
  if (json == null) return {};
  try {
    return JSON.parse(json);
  } catch (e) {
    return { message: String(json) };
  }
}

class SignalingError extends Error {
  constructor(code, obj) {
    super(obj && obj.message ? obj.message : `nim-signaling error ${code}`);
    this.name = 'SignalingError';
    // the seed's error object: code, message, and any data beside them
    // (signalingCall with 10201/10202 keeps channelInfo and members)
    Object.assign(this, obj);
    this.code = code;
  }
}

function onResult(code, json, id) {
  const p = pending.get(id);
  if (!p) return;
  pending.delete(id);
  const obj = parse(json);
  if (code === 200) {
    obj.code = 200;
    p.resolve(obj);
  } else {
    p.reject(new SignalingError(code, obj));
  }
}

/**
 * The error of a C call that returned `rc` at once: `what` and the
 * library's own message (nim_signaling_last_error, read right after the
 * call on the same thread, as it asks), else `fallback`.
 */
function refused(rc, fallback, what = '') {
  const why = native.lastError ? native.lastError() : null;
  return new SignalingError(rc, { code: rc, message: why ? what + why : fallback });
}

/** Starts a request with `start(cb, id)`; a Promise of its data. */
function request(start) {
  const n = loadNative();
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    let rc;
    try {
      rc = start(n.resultCb, id);
    } catch (e) {
      pending.delete(id);
      reject(new SignalingError(414, { message: `bad parameters: ${e.message}` }));
      return;
    }
    if (rc !== 200) {
      // not started: the callback will never come
      pending.delete(id);
      const messages = { 414: 'invalid parameter', 415: 'not logged in', 416: 'too many requests outstanding' };
      reject(refused(rc, messages[rc] || `request refused (${rc})`));
    }
  });
}

// ----------------------------------------------------------- notifications

const EVENT_TYPES = {
  ROOM_CLOSE: 1,
  ROOM_JOIN: 2,
  INVITE: 3,
  CANCEL_INVITE: 4,
  REJECT: 5,
  ACCEPT: 6,
  LEAVE: 7,
  CONTROL: 8,
  INVITE_TIMEOUT: 9, // nim-signaling's addition
  INVITE_DELIVERED: 10, // nim-signaling's addition: the INVITE reached a device of the invitee
  CHANNEL_UPDATE: 11, // nim-signaling's addition: the room's ext changed
};

function onEvent(kind, json, id) {
  const nim = clients.get(id);
  if (!nim) return;
  nim._event(kind, parse(json));
}

// ---------------------------------------------------------------- client

const instances = new Map(); // "serverUrl|account|deviceId" -> NIM

const OPTION_HANDLERS = {
  signalingNotify: 'onSignalingNotify',
  signalingMutilClientSyncNotify: 'onSignalingMutilClientSyncNotify',
  signalingMembersSyncNotify: 'onSignalingMembersSyncNotify',
  signalingUnreadMessageSyncNotify: 'onSignalingUnreadMessageSyncNotify',
  signalingChannelsSyncNotify: 'onSignalingChannelsSyncNotify',
};

class NIM extends EventEmitter {
  /**
   * NIM.getInstance(options): a client for `options.account` that logs in
   * at once. Options: serverUrl (required), serverUrls, account, token,
   * deviceId, requestTimeoutMs, reconnect, heartbeatIntervalMs,
   * heartbeatTimeoutMs, caFile; onconnect(data), onwillreconnect(obj),
   * ondisconnect(obj), onerror(error), and onSignalingNotify etc. The same
   * serverUrl + account + deviceId gives the same (live) instance.
   */
  static getInstance(options) {
    if (!options || typeof options !== 'object') throw new TypeError('NIM.getInstance(options): options required');
    const key = `${options.serverUrl}|${options.account}|${options.deviceId || ''}`;
    const existing = instances.get(key);
    if (existing && !existing._destroyed) return existing;
    const nim = new NIM(options, key);
    instances.set(key, nim);
    return nim;
  }

  constructor(options, key) {
    super();
    const n = loadNative();
    this.options = Object.assign({}, options);
    this._key = key;
    this._destroyed = false;
    this._destroying = null;
    this._connected = false;
    this._everConnected = false;
    for (const [k, v] of Object.entries(EVENT_TYPES)) this[`EVENT_TYPE_${k}`] = v;
    for (const [event, opt] of Object.entries(OPTION_HANDLERS)) {
      if (typeof options[opt] === 'function') this.on(event, options[opt]);
    }
    // an 'error' event without listener would throw from inside a callback
    this.on('error', () => {});

    const cfg = {};
    for (const [k, v] of Object.entries(options)) {
      if (typeof v !== 'function') cfg[k] = v;
    }
    if (cfg.token == null) cfg.token = '';
    const out = [null];
    const rc = n.clientNew(JSON.stringify(cfg), out);
    if (rc !== 200) throw refused(rc, `cannot create the client (${rc}): check serverUrl and account`, 'cannot create the client: ');
    this._handle = out[0];
    this._id = nextId++;
    clients.set(this._id, this);
    retain();
    for (const kind of Object.keys(n.reg)) n.reg[kind](this._handle, n.eventCbs[kind], this._id);

    this._login = request((cb, id) => n.login(this._handle, cb, id)).then(
      (data) => {
        this._connected = true;
        this._everConnected = true;
        this._call('onconnect', data);
        return data;
      },
      (error) => {
        this._call('onerror', error);
        this._call('ondisconnect', { code: error.code, message: error.message, state: 'disconnected' });
        return error;
      }
    );
  }

  /** Resolves with the login data, rejects with the login error. */
  ready() {
    return this._login.then((r) => (r instanceof Error ? Promise.reject(r) : r));
  }

  _call(name, arg) {
    const f = this.options[name];
    if (typeof f === 'function') guard(() => f.call(this, arg));
  }

  _emit(name, arg) {
    for (const l of this.listeners(name)) guard(() => l.call(this, arg));
  }

  _event(kind, obj) {
    switch (kind) {
      case 'online':
        this._emit('signalingNotify', obj);
        break;
      case 'multi':
        // The seed's example switches on nim.EVENT_TYPE_REJECT (5) /
        // EVENT_TYPE_ACCEPT (6): here eventType is the number.
        this._emit('signalingMutilClientSyncNotify', Object.assign({}, obj, { eventType: obj.eventTypeCode, eventTypeName: obj.eventType }));
        break;
      case 'members':
        this._emit('signalingMembersSyncNotify', obj);
        break;
      case 'offline':
        this._emit('signalingUnreadMessageSyncNotify', obj.eventList || []);
        break;
      case 'channels':
        this._emit('signalingChannelsSyncNotify', obj.channels || []);
        break;
      case 'state':
        this._state(obj);
        break;
    }
  }

  _state(obj) {
    switch (obj.state) {
      case 'connected':
        // the first one is reported by the login result
        if (!this._connected && this._everConnected) {
          this._connected = true;
          this._call('onconnect', obj);
        }
        break;
      case 'reconnecting':
        this._connected = false;
        this._call('onwillreconnect', obj);
        break;
      case 'disconnected':
      case 'kicked':
        if (this._connected || obj.state === 'kicked') {
          this._connected = false;
          this._call('ondisconnect', obj);
        }
        break;
    }
  }

  _op(name, param) {
    if (this._destroyed) return Promise.reject(new SignalingError(415, { code: 415, message: 'instance destroyed' }));
    const n = loadNative();
    const json = JSON.stringify(param == null ? {} : param);
    // requests made before the login completed wait for it
    return this._login.then(() => {
      if (this._destroyed) throw new SignalingError(415, { code: 415, message: 'instance destroyed' });
      return request((cb, id) => n.ops[name](this._handle, json, cb, id));
    });
  }

  signalingCreate(param) { return this._op('signalingCreate', param); }
  signalingClose(param) { return this._op('signalingClose', param); }
  signalingJoin(param) { return this._op('signalingJoin', param); }
  signalingLeave(param) { return this._op('signalingLeave', param); }
  signalingInvite(param) { return this._op('signalingInvite', param); }
  /** Ours, not the Web SDK's: `{channelId, accounts, requestId, …}` → `{results: [{account, code}]}`. */
  signalingInviteMany(param) { return this._op('signalingInviteMany', param); }
  signalingCancel(param) { return this._op('signalingCancel', param); }
  signalingAccept(param) { return this._op('signalingAccept', param); }
  signalingReject(param) { return this._op('signalingReject', param); }
  signalingControl(param) { return this._op('signalingControl', param); }
  signalingCall(param) { return this._op('signalingCall', param); }
  signalingSync(param) { return this._op('signalingSync', param); }
  /** NIM native room query: {channelId} or {channelName} → {channelInfo, members}. */
  signalingGetChannelInfo(param) { return this._op('signalingGetChannelInfo', param); }
  /** Ours, not the Web SDK's: `{token, provider?}` for the server's push gateway (docs/PUSH.md). */
  signalingRegisterPushToken(param) { return this._op('signalingRegisterPushToken', param); }
  /** Ours: `{}` → `{sent, received}`, this account's invitations the server still keeps. */
  signalingQueryInvitations(param) { return this._op('signalingQueryInvitations', param || {}); }
  /** Ours: `{channelId, ext, offlineEnabled?}` → `{channelInfo}`; the others get CHANNEL_UPDATE. */
  signalingUpdateChannel(param) { return this._op('signalingUpdateChannel', param); }

  /** Logs out (no reconnect); the instance stays usable only for destroy(). */
  logout() {
    const n = loadNative();
    return this._login.then(() => request((cb, id) => n.logout(this._handle, cb, id))).then((d) => {
      this._connected = false;
      return d;
    });
  }

  /**
   * Logs out, disconnects and frees the client. Resolves when no callback
   * of it can run any more. Pending requests reject with 415. Safe to call
   * from a handler and more than once.
   */
  destroy() {
    if (this._destroying) return this._destroying;
    this._destroyed = true;
    instances.delete(this._key);
    const n = loadNative();
    this._destroying = new Promise((resolve) => {
      n.clientFree.async(this._handle, () => {
        this._handle = null;
        clients.delete(this._id);
        this._connected = false;
        release();
        resolve();
      });
    });
    return this._destroying;
  }
}

for (const [k, v] of Object.entries(EVENT_TYPES)) NIM[`EVENT_TYPE_${k}`] = v;

/**
 * Starts a signaling server in this process. config: the C ABI's server
 * config (listen, auth, roomTtlMs, inviteTtlMs, memberDropGraceMs,
 * maxMembers, ...). Returns {url, stop()}; stop() returns a Promise.
 */
NIM.startServer = function startServer(config) {
  const n = loadNative();
  const out = [null];
  const rc = n.serverStart(JSON.stringify(config || {}), out);
  if (rc !== 200) throw refused(rc, `cannot start the server (${rc}): ${rc === 414 ? 'bad config' : 'cannot listen'}`, 'cannot start the server: ');
  const handle = out[0];
  const url = n.serverUrl(handle);
  retain();
  let stopping = null;
  return {
    url,
    stop() {
      if (!stopping) {
        stopping = new Promise((resolve) => {
          n.serverStop.async(handle, () => {
            release();
            resolve();
          });
        });
      }
      return stopping;
    },
  };
};

NIM.version = () => loadNative().version();
/** The library file in use (loading it if need be): NIM_SIGNALING_LIB, the bundled copy, or a fallback. */
NIM.libraryPath = () => loadNative().path;
NIM.SignalingError = SignalingError;

module.exports = NIM;
module.exports.default = NIM;
module.exports.NIM = NIM;
