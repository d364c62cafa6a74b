'use strict';
// Requests and configs the library refuses at once (414) reject with its
// own reason (nim_signaling_last_error), not a generic message.
const test = require('node:test');
const assert = require('node:assert/strict');
const { NIM, client } = require('../testlib/helpers');

let server;
test.before(() => {
  server = NIM.startServer({});
});
test.after(() => server.stop());

test("parameters refused at once carry the library's reason, naming the key", async () => {
  const alice = await client(server.url, 'why-alice');
  try {
    const { channelInfo } = await alice.signalingCreate({ type: 1 });
    const channelId = channelInfo.channelId;
    const reason = (p) =>
      p.then(
        () => assert.fail('resolved'),
        (e) => {
          assert.ok(e instanceof NIM.SignalingError);
          assert.equal(e.code, 414);
          return e.message;
        }
      );
    // a misspelt key, a missing one, a value of the wrong type
    assert.match(await reason(alice.signalingInvite({ channelID: channelId, account: 'x', requestId: 'r' })), /`channelID`.*`channelId`/);
    assert.match(await reason(alice.signalingInvite({ channelId, account: 'x' })), /missing field `requestId`/);
    assert.match(await reason(alice.signalingCreate({ type: 'x' })), /type.*invalid type: string "x"/);
  } finally {
    await alice.destroy();
  }
  // the same for a bad server or client config
  assert.throws(() => NIM.startServer({ lisen: '127.0.0.1:0' }), (e) => e.code === 414 && /cannot start the server: .*`lisen`/.test(e.message));
  assert.throws(() => NIM.getInstance({ serverUrl: 'http://x', account: 'a' }), (e) => e.code === 414 && /cannot create the client: .*ws:\/\//.test(e.message));
});
