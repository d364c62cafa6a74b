// A call in TypeScript: alice calls bob, bob accepts and joins, a request
// that fails, then both hang up. The tests type-check it with
// `tsc --strict` against the packed package, as CommonJS (call.ts) and as
// an ES module (the same text as call.mts), and run it.
import { startServer, getInstance, SignalingError } from 'nim-signaling';
import type { ChannelMembersResult, SignalingEvent, Server } from 'nim-signaling';

async function main(): Promise<void> {
  const server: Server = startServer({ inviteTtlMs: 30_000, auth: { mode: 'none' } });
  const alice = getInstance({ serverUrl: server.url, account: 'ts-alice', token: '' });
  const bob = getInstance({
    serverUrl: server.url,
    account: 'ts-bob',
    onconnect: (data) => console.log('bob connected:', 'account' in data ? data.account : data.state),
  });
  // bob must be online before alice calls, or the call answers 10201
  const [login] = await Promise.all([alice.ready(), bob.ready()]);
  console.log('alice logged in on', login.deviceId);

  const joined = new Promise<ChannelMembersResult>((resolve, reject) => {
    bob.on('signalingNotify', (event: SignalingEvent) => {
      if (event.eventType !== 'INVITE' || event.requestId === undefined) return;
      bob
        .signalingAccept({
          channelId: event.channelInfo.channelId,
          account: event.fromAccountId,
          requestId: event.requestId,
          autoJoin: true,
        })
        .then(({ code, channelInfo, members }) => {
          if (channelInfo && members) resolve({ code, channelInfo, members });
          else reject(new Error('autoJoin gave no room'));
        }, reject);
    });
  });
  const call = await alice.signalingCall({ type: 2, account: 'ts-bob', requestId: 'ts-1' });
  const room = await joined;
  console.log('room', call.channelInfo.channelId, 'members', room.members.map((m) => `${m.account}#${m.uid}`).join(' '));

  try {
    await alice.signalingJoin({ channelId: 'no-such-room' });
  } catch (e) {
    if (!(e instanceof SignalingError)) throw e;
    console.log('join failed as expected:', e.code, e.message);
  }

  await alice.signalingClose({ channelId: call.channelInfo.channelId });
  await Promise.all([alice.destroy(), bob.destroy()]);
  await server.stop();
}

// a rejection left unhandled makes node exit with an error
void main();
