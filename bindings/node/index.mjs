// The ES module face of nim-signaling: the CommonJS module (index.js) as
// the default export, and its functions and constants as named exports,
// so that `import { startServer, getInstance } from 'nim-signaling'`
// works. One module instance serves both: this file only re-exports.
import NIM from './index.js';

export default NIM;
export { NIM };
export const {
  getInstance,
  startServer,
  version,
  libraryPath,
  SignalingError,
  EVENT_TYPE_ROOM_CLOSE,
  EVENT_TYPE_ROOM_JOIN,
  EVENT_TYPE_INVITE,
  EVENT_TYPE_CANCEL_INVITE,
  EVENT_TYPE_REJECT,
  EVENT_TYPE_ACCEPT,
  EVENT_TYPE_LEAVE,
  EVENT_TYPE_CONTROL,
  EVENT_TYPE_INVITE_TIMEOUT,
  EVENT_TYPE_INVITE_DELIVERED,
  EVENT_TYPE_CHANNEL_UPDATE,
} = NIM;
