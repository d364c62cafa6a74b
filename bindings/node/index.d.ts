// Types of nim-signaling for Node (index.js, CommonJS). The shapes are the
// C library's (include/nim_signaling.h) and the wire protocol's
// (docs/PROTOCOL.md); ES modules get the same through index.d.mts.
//
// Nothing here needs @types/node: the event methods of NIM are declared
// with their event names instead of through Node's EventEmitter type.

declare namespace NIM {
  // ------------------------------------------------------------ objects

  /** Room type: 1 audio, 2 video, 3 other. */
  type ChannelType = 1 | 2 | 3;

  /** A boolean; 0 and 1 are taken too (the seed's own examples send them). */
  type Flag = boolean | number;

  /** A uid: a number or a numeric string; absent or ≤ 0 lets the server pick one. */
  type Uid = number | string;

  /** A room. */
  interface ChannelInfo {
    channelId: string;
    channelName: string;
    type: ChannelType;
    ext: string;
    /** ms since the epoch */
    createTimestamp: number;
    /** ms since the epoch */
    expireTimestamp: number;
    creatorId: string;
    /** 0 valid, 1 closed or expired (when this object was made). */
    invalid: 0 | 1;
  }

  /** One member of a room. */
  interface Member {
    account: string;
    uid: number;
    /** when it joined, ms since the epoch */
    createTimestamp: number;
    expireTimestamp: number;
  }

  /** A room with its members. */
  interface ChannelWithMembers {
    channelInfo: ChannelInfo;
    members: Member[];
  }

  /** Push parameters of an invitation, for invitees with no device online. */
  interface PushInfo {
    pushTitle?: string;
    pushContent?: string;
    /** JSON text or an object; passed through to the push gateway. */
    pushPayload?: string | { [key: string]: unknown };
    /** default false */
    needPush?: Flag;
    /** default true */
    needBadge?: Flag;
  }

  /** `eventType` of an event (9 and up are nim-signaling's additions). */
  type EventTypeName =
    | 'ROOM_CLOSE'
    | 'ROOM_JOIN'
    | 'INVITE'
    | 'CANCEL_INVITE'
    | 'REJECT'
    | 'ACCEPT'
    | 'LEAVE'
    | 'CONTROL'
    | 'INVITE_TIMEOUT'
    | 'INVITE_DELIVERED'
    | 'CHANNEL_UPDATE';

  /** `eventTypeCode`: 1-8 as NIM numbers them, 9 INVITE_TIMEOUT, 10 INVITE_DELIVERED, 11 CHANNEL_UPDATE. */
  type EventTypeCode = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11;

  /** One signaling event (signalingNotify, the offline list, signalingSync). */
  interface SignalingEvent {
    eventType: EventTypeName;
    eventTypeCode: EventTypeCode;
    /** the room; in the offline list, as valid as it is now */
    channelInfo: ChannelInfo;
    /** who did it (the inviter of INVITE_TIMEOUT, the invitee of INVITE_DELIVERED) */
    fromAccountId: string;
    attachExt: string;
    /** ms since the epoch */
    time: number;
    /** ROOM_JOIN: who joined */
    member?: Member;
    /** the account it was addressed to: the invitee of INVITE, CANCEL_INVITE, INVITE_TIMEOUT; the inviter of ACCEPT, REJECT, INVITE_DELIVERED */
    toAccount?: string;
    requestId?: string;
    /** INVITE, when the inviter sent one */
    pushInfo?: PushInfo;
    /** INVITE_DELIVERED: how many devices of the invitee the INVITE has reached */
    deliveredCount?: number;
  }

  /**
   * signalingMutilClientSyncNotify: an ACCEPT, REJECT or CHANNEL_UPDATE
   * done on another device of this account. Here `eventType` is the
   * number (compare it with `nim.EVENT_TYPE_ACCEPT`), `eventTypeName`
   * the name.
   */
  interface MultiClientSyncEvent extends Omit<SignalingEvent, 'eventType'> {
    eventType: EventTypeCode;
    eventTypeName: EventTypeName;
  }

  /** The connection state reported to onwillreconnect / onconnect / ondisconnect. */
  interface ConnectionState {
    state: 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'kicked';
    code: number;
    /** on `connected`: events may have been missed; rebuild from the offline list and channels sync that follow */
    resync?: 'trimmed' | 'stateLost';
    /** set when the state comes from a failed login */
    message?: string;
  }

  // ------------------------------------------------------------ results

  /** What every request resolves with: the seed's `data` object. */
  interface Result {
    code: 200;
  }

  /** The login result: onconnect's argument and what `ready()` resolves with. */
  interface LoginData extends Result {
    account: string;
    deviceId: string;
    /** the last event sequence number of this account the server had assigned */
    seq: number;
    epoch: string;
    resumed: boolean;
    resync?: 'trimmed' | 'stateLost';
    heartbeatIntervalMs: number;
    maxFrameBytes: number;
  }

  interface ChannelResult extends Result {
    channelInfo: ChannelInfo;
  }

  interface ChannelMembersResult extends Result, ChannelWithMembers {}

  /** signalingAccept: channelInfo and members with autoJoin only. */
  interface AcceptResult extends Result {
    channelInfo?: ChannelInfo;
    members?: Member[];
  }

  /** signalingCall: `glare` when it accepted the callee's own invitation instead (nim-signaling's addition). */
  interface CallResult extends ChannelMembersResult {
    glare?: boolean;
  }

  interface SyncResult extends Result {
    /** the events kept for this device while it was offline */
    eventList: SignalingEvent[];
    /** the rooms this account is in */
    channels: ChannelWithMembers[];
  }

  interface InviteManyResult extends Result {
    /** one per account, in the order given: 200 rings, 10201/10202 offline (kept), 10430 busy, 10407 already in, 10419 full */
    results: { account: string; code: number }[];
  }

  interface Invitation {
    channelId: string;
    /** the other side */
    account: string;
    requestId: string;
    state: 'pending' | 'accepted' | 'rejected' | 'cancelled' | 'expired';
    createTimestamp: number;
    expireTimestamp: number;
  }

  interface InvitationsResult extends Result {
    /** oldest first */
    sent: Invitation[];
    received: Invitation[];
  }

  // --------------------------------------------------------- parameters

  interface CreateParams {
    type: ChannelType;
    /** unique among valid rooms; default: the new channelId */
    channelName?: string;
    ext?: string;
  }

  interface CloseParams {
    channelId: string;
    offlineEnabled?: Flag;
    ext?: string;
  }

  interface JoinParams {
    channelId: string;
    uid?: Uid;
    offlineEnabled?: Flag;
    attachExt?: string;
  }

  interface LeaveParams {
    channelId: string;
    offlineEnabled?: Flag;
    attachExt?: string;
  }

  /** What an invitation carries (invite, inviteMany, call). */
  interface InvitationParams {
    requestId: string;
    offlineEnabled?: Flag;
    attachExt?: string;
    pushInfo?: PushInfo;
    /** nim-signaling's addition: fail with 10430 when the invitee is in another call or ringing */
    busyCheck?: Flag;
    /** nim-signaling's addition: ms this invitation rings before INVITE_TIMEOUT (≥ 1, at most the server's inviteTtlMs, the default) */
    timeoutMs?: number;
  }

  interface InviteParams extends InvitationParams {
    channelId: string;
    /** the invitee */
    account: string;
  }

  interface InviteManyParams extends InvitationParams {
    channelId: string;
    /** 1 to 100 accounts, no repeats */
    accounts: string[];
  }

  /** What names an invitation when answering it (cancel, reject, accept), beside `account`. */
  interface AnswerParams {
    channelId: string;
    requestId: string;
    offlineEnabled?: Flag;
    attachExt?: string;
  }

  interface CancelParams extends AnswerParams {
    /** the invitee */
    account: string;
  }

  interface RejectParams extends AnswerParams {
    /** the inviter */
    account: string;
  }

  interface AcceptParams extends RejectParams {
    /** join the room in the same step */
    autoJoin?: Flag;
    uid?: Uid;
    joinAttachExt?: string;
  }

  interface ControlParams {
    channelId: string;
    /** no account: every member */
    account?: string;
    attachExt?: string;
  }

  interface CallParams extends InvitationParams {
    type: ChannelType;
    channelName?: string;
    ext?: string;
    uid?: Uid;
    /** the invitee */
    account: string;
  }

  type QueryParams = { channelId: string } | { channelName: string };

  interface PushTokenParams {
    /** at most 4096 bytes, no control characters; empty removes it */
    token: string;
    /** "apns", "fcm", …: free text for the push gateway */
    provider?: string;
  }

  interface UpdateChannelParams {
    channelId: string;
    /** at most 4096 bytes; empty clears it */
    ext: string;
    offlineEnabled?: Flag;
  }

  // ------------------------------------------------------------ options

  /** Handlers of the notifications, by event name (`nim.on(name, handler)`). */
  interface Events {
    /** One event for this device. */
    signalingNotify: (event: SignalingEvent) => void;
    /** An ACCEPT, REJECT or CHANNEL_UPDATE done on another device of this account. */
    signalingMutilClientSyncNotify: (event: MultiClientSyncEvent) => void;
    /** The members of a room changed without an event (a member's device vanished). */
    signalingMembersSyncNotify: (room: ChannelWithMembers) => void;
    /** After a login: the events kept while this device was offline (oldest first). */
    signalingUnreadMessageSyncNotify: (events: SignalingEvent[]) => void;
    /** After each login: the rooms this account is in. */
    signalingChannelsSyncNotify: (channels: ChannelWithMembers[]) => void;
  }

  /** `NIM.getInstance(options)`: the client configuration and its callbacks. */
  interface ClientOptions {
    /** `ws://host:port` or `wss://host:port` */
    serverUrl: string;
    /** further nodes; each reconnect moves on to the next */
    serverUrls?: string[];
    /** 1-128 bytes */
    account: string;
    /** checked by the server's `auth`; default "" */
    token?: string;
    /** identifies this device; made up when absent */
    deviceId?: string;
    /** default 10000 */
    requestTimeoutMs?: number;
    /** default true */
    reconnect?: boolean;
    /** default 5000 */
    heartbeatIntervalMs?: number;
    /** default 20000 */
    heartbeatTimeoutMs?: number;
    /** acknowledge each INVITE so the inviter gets INVITE_DELIVERED; default true */
    inviteReceipts?: boolean;
    /** PEM file of the CAs that verify `wss://` servers instead of the system's roots */
    caFile?: string;

    /** Logged in: the login data; after a reconnect, the `connected` state. */
    onconnect?: (this: NIM, data: LoginData | ConnectionState) => void;
    onwillreconnect?: (this: NIM, state: ConnectionState) => void;
    ondisconnect?: (this: NIM, state: ConnectionState) => void;
    /** The login was refused (e.g. 302) or failed. */
    onerror?: (this: NIM, error: SignalingError) => void;
    onSignalingNotify?: Events['signalingNotify'];
    onSignalingMutilClientSyncNotify?: Events['signalingMutilClientSyncNotify'];
    onSignalingMembersSyncNotify?: Events['signalingMembersSyncNotify'];
    onSignalingUnreadMessageSyncNotify?: Events['signalingUnreadMessageSyncNotify'];
    onSignalingChannelsSyncNotify?: Events['signalingChannelsSyncNotify'];
  }

  /** `NIM.startServer(config)`: the embedded server's settings (docs/CONFIG.md); unknown keys are refused (414). */
  interface ServerConfig {
    /** default "127.0.0.1:0" (a free port) */
    listen?: string;
    auth?:
      | { mode: 'none' }
      | { mode: 'static'; accounts: { [account: string]: string } }
      | { mode: 'hmac'; secret: string };
    roomTtlMs?: number;
    inviteTtlMs?: number;
    memberDropGraceMs?: number;
    maxMembers?: number;
    heartbeatIntervalMs?: number;
    heartbeatTimeoutMs?: number;
    loginTimeoutMs?: number;
    maxConnections?: number;
    maxPendingLogins?: number;
    maxFrameBytes?: number;
    logMaxEvents?: number;
    logRetentionMs?: number;
    maxOfflineEvents?: number;
    maxOfflineEventsPerSender?: number;
    offlineRetentionMs?: number;
    maxRoomsPerAccount?: number;
    maxPendingInvitesPerAccount?: number;
    maxRoomsCreatedPerAccount?: number;
    maxDevicesPerAccount?: number;
    maxConnectionsPerIp?: number;
    maxPendingLoginsPerIp?: number;
    maxRequestsPerSecond?: number;
    metricsListen?: string;
    store?: { kind: 'memory' } | { kind: 'redis'; url: string; prefix?: string };
    tls?: { certFile: string; keyFile: string };
    adminListen?: string;
    adminToken?: string;
    webhooks?: {
      urls: string[];
      secret?: string;
      events?: string[];
      queueSize?: number;
      timeoutMs?: number;
      maxAttempts?: number;
      retryBaseMs?: number;
      retryMaxMs?: number;
      caFile?: string;
    };
    push?: { url: string; secret?: string; timeoutMs?: number; caFile?: string };
    logging?: { format?: 'text' | 'json'; level?: string };
  }

  /** A server started by `NIM.startServer`. */
  interface Server {
    /** `ws://127.0.0.1:PORT` (`wss://` with `tls`) */
    readonly url: string;
    /** Stops it (connected clients see the connection drop); resolves once it is gone. */
    stop(): Promise<void>;
  }

  // ------------------------------------------------------------- errors

  /**
   * The codes a request can fail with (NIM's numbering):
   * 302 login refused; 403 not allowed (a per-account limit, or kicked);
   * 408 no reply within requestTimeoutMs; 414 invalid parameter (refused
   * before anything was sent: the message names the key and what was
   * wrong); 415 not logged in, connection lost, or instance destroyed;
   * 416 rate limited or too many requests outstanding; 500 internal;
   * 501 not in this build; 10201 the invitee is offline (the invitation
   * is kept); 10202 offline and the push could not be sent; 10404 no
   * such room; 10405 the room exists; 10406 not in the room; 10407
   * already in the room; 10408 no such invitation, cancelled or expired;
   * 10409 already rejected; 10410 already accepted; 10417 uid taken;
   * 10419 room full; 10420 in the room from another device; 10430 the
   * invitee is busy (nim-signaling's addition, with busyCheck).
   */
  type ErrorCode =
    | 302 | 403 | 408 | 414 | 415 | 416 | 500 | 501
    | 10201 | 10202 | 10404 | 10405 | 10406 | 10407 | 10408 | 10409 | 10410
    | 10417 | 10419 | 10420 | 10430;

  /**
   * What a failed request rejects with: the seed's `error` object as an
   * Error. signalingCall failing with 10201/10202 still carries the room
   * it kept (`channelInfo`, `members`).
   */
  class SignalingError extends Error {
    constructor(code: number, obj?: { message?: string; [key: string]: unknown });
    readonly name: 'SignalingError';
    /** an ErrorCode, or another code a newer server sends */
    code: ErrorCode | (number & {});
    message: string;
    channelInfo?: ChannelInfo;
    members?: Member[];
  }

  // ---------------------------------------------------------- functions

  /**
   * A client for `options.account` that logs in at once. The same
   * serverUrl + account + deviceId gives the same live instance.
   */
  function getInstance(options: ClientOptions): NIM;
  /** The class itself, for `const { NIM } = require('nim-signaling')`. */
  const NIM: NIMClass;
  /** Starts a signaling server in this process. Throws a SignalingError (414 with the reason for a bad config). */
  function startServer(config?: ServerConfig): Server;
  /** The C library's version, e.g. "0.1.0". */
  function version(): string;
  /** The library file in use: NIM_SIGNALING_LIB, the copy bundled for this platform, or a fallback. */
  function libraryPath(): string;

  const EVENT_TYPE_ROOM_CLOSE: 1;
  const EVENT_TYPE_ROOM_JOIN: 2;
  const EVENT_TYPE_INVITE: 3;
  const EVENT_TYPE_CANCEL_INVITE: 4;
  const EVENT_TYPE_REJECT: 5;
  const EVENT_TYPE_ACCEPT: 6;
  const EVENT_TYPE_LEAVE: 7;
  const EVENT_TYPE_CONTROL: 8;
  const EVENT_TYPE_INVITE_TIMEOUT: 9;
  const EVENT_TYPE_INVITE_DELIVERED: 10;
  const EVENT_TYPE_CHANNEL_UPDATE: 11;
}

/**
 * One account on one device: the NIM Web SDK's instance, with the
 * "independent call signaling" API. Every request returns a Promise of
 * its result and rejects with a `NIM.SignalingError`; every operation can
 * fail with 414 (bad parameters), 415 (not logged in, destroyed), 416 and
 * 408 besides the codes listed with it.
 */
declare class NIM {
  /** Made by NIM.getInstance. */
  private constructor(options: NIM.ClientOptions, key: string);

  /** The class itself (`module.exports.default`). */
  static readonly default: NIMClass;

  /** A copy of the options given to getInstance. */
  readonly options: NIM.ClientOptions;

  /** Resolves with the login data, rejects with the login error. */
  ready(): Promise<NIM.LoginData>;

  /** `{type, channelName?, ext?}` → `{channelInfo}`; 10405 when the name is taken. */
  signalingCreate(param: NIM.CreateParams): Promise<NIM.ChannelResult>;
  /** The creator or a member closes the room; the others get ROOM_CLOSE. 10404, 10406. */
  signalingClose(param: NIM.CloseParams): Promise<NIM.Result>;
  /** → `{channelInfo, members}`. 403, 10404, 10407, 10417, 10419, 10420. */
  signalingJoin(param: NIM.JoinParams): Promise<NIM.ChannelMembersResult>;
  /** 10404, 10406. */
  signalingLeave(param: NIM.LeaveParams): Promise<NIM.Result>;
  /** 403, 10201 and 10202 (the invitation is kept), 10404, 10406, 10407, 10419, 10430. */
  signalingInvite(param: NIM.InviteParams): Promise<NIM.Result>;
  /** Ours: one requestId to several invitees → one result per account. 403, 10404, 10406. */
  signalingInviteMany(param: NIM.InviteManyParams): Promise<NIM.InviteManyResult>;
  /** Cancels one's own invitation. 10404, 10408, 10409, 10410. */
  signalingCancel(param: NIM.CancelParams): Promise<NIM.Result>;
  /** → with autoJoin `{channelInfo, members}`. 10201 (the accept still counts), 10404, 10408, 10409, 10410; with autoJoin also 403, 10407, 10417, 10419, 10420. */
  signalingAccept(param: NIM.AcceptParams): Promise<NIM.AcceptResult>;
  /** 10201, 10404, 10408, 10409, 10410. */
  signalingReject(param: NIM.RejectParams): Promise<NIM.Result>;
  /** A custom message to one member or, without account, to all; online only. 10404, 10406. */
  signalingControl(param: NIM.ControlParams): Promise<NIM.Result>;
  /** Create + join + invite in one step → `{channelInfo, members, glare?}`. 403, 10201, 10202 (room kept), 10405, 10407, 10419, 10430; after glare also 10417, 10420. */
  signalingCall(param: NIM.CallParams): Promise<NIM.CallResult>;
  /** → `{eventList, channels}`. */
  signalingSync(param?: Record<string, never>): Promise<NIM.SyncResult>;
  /** `{channelId}` or `{channelName}` → `{channelInfo, members}`. 10404. */
  signalingGetChannelInfo(param: NIM.QueryParams): Promise<NIM.ChannelMembersResult>;
  /** Ours: this device's push token for the server's push gateway (docs/PUSH.md). */
  signalingRegisterPushToken(param: NIM.PushTokenParams): Promise<NIM.Result>;
  /** Ours: this account's invitations the server still keeps. */
  signalingQueryInvitations(param?: Record<string, never>): Promise<NIM.InvitationsResult>;
  /** Ours: changes the room's ext → `{channelInfo}`; the others get CHANNEL_UPDATE. 10404, 10406. */
  signalingUpdateChannel(param: NIM.UpdateChannelParams): Promise<NIM.ChannelResult>;

  /** Logs out (no reconnect); the instance stays usable only for destroy(). */
  logout(): Promise<NIM.Result>;
  /** Logs out, disconnects and frees the client; resolves when none of its callbacks can run any more. */
  destroy(): Promise<void>;

  on<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  addListener<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  once<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  prependListener<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  off<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  removeListener<E extends keyof NIM.Events>(event: E, listener: NIM.Events[E]): this;
  removeAllListeners(event?: keyof NIM.Events): this;
  listeners<E extends keyof NIM.Events>(event: E): NIM.Events[E][];
  listenerCount(event: keyof NIM.Events): number;

  readonly EVENT_TYPE_ROOM_CLOSE: 1;
  readonly EVENT_TYPE_ROOM_JOIN: 2;
  readonly EVENT_TYPE_INVITE: 3;
  readonly EVENT_TYPE_CANCEL_INVITE: 4;
  readonly EVENT_TYPE_REJECT: 5;
  readonly EVENT_TYPE_ACCEPT: 6;
  readonly EVENT_TYPE_LEAVE: 7;
  readonly EVENT_TYPE_CONTROL: 8;
  readonly EVENT_TYPE_INVITE_TIMEOUT: 9;
  readonly EVENT_TYPE_INVITE_DELIVERED: 10;
  readonly EVENT_TYPE_CHANNEL_UPDATE: 11;
}

type NIMClass = typeof NIM;

export = NIM;
