// Types of the ES module entry (index.mjs): the default export and the
// named exports, with the types of index.d.ts.
import NIM from './index.js';

export default NIM;
export { NIM };
export declare const getInstance: typeof NIM.getInstance;
export declare const startServer: typeof NIM.startServer;
export declare const version: typeof NIM.version;
export declare const libraryPath: typeof NIM.libraryPath;
export declare const SignalingError: typeof NIM.SignalingError;
export type SignalingError = NIM.SignalingError;
export declare const EVENT_TYPE_ROOM_CLOSE: 1;
export declare const EVENT_TYPE_ROOM_JOIN: 2;
export declare const EVENT_TYPE_INVITE: 3;
export declare const EVENT_TYPE_CANCEL_INVITE: 4;
export declare const EVENT_TYPE_REJECT: 5;
export declare const EVENT_TYPE_ACCEPT: 6;
export declare const EVENT_TYPE_LEAVE: 7;
export declare const EVENT_TYPE_CONTROL: 8;
export declare const EVENT_TYPE_INVITE_TIMEOUT: 9;
export declare const EVENT_TYPE_INVITE_DELIVERED: 10;
export declare const EVENT_TYPE_CHANNEL_UPDATE: 11;
export type {
  ChannelType, Flag, Uid, ChannelInfo, Member, ChannelWithMembers, PushInfo, EventTypeName,
  EventTypeCode, SignalingEvent, MultiClientSyncEvent, ConnectionState, Result, LoginData,
  ChannelResult, ChannelMembersResult, AcceptResult, CallResult, SyncResult, InviteManyResult,
  Invitation, InvitationsResult, CreateParams, CloseParams, JoinParams, LeaveParams,
  InvitationParams, InviteParams, InviteManyParams, AnswerParams, CancelParams, RejectParams,
  AcceptParams, ControlParams, CallParams, QueryParams, PushTokenParams, UpdateChannelParams,
  Events, ClientOptions, ServerConfig, Server, ErrorCode,
} from './index.js';
