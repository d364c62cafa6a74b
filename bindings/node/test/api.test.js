'use strict';
// Error objects, connection callbacks, handler exceptions, threads and
// process exit.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');
const { NIM, client, waitFor } = require('../testlib/helpers');

let server;
test.before(() => {
  // 'many requests at once' creates 200 rooms from one account, over the
  // default maxRoomsCreatedPerAccount (100).
  server = NIM.startServer({ maxRoomsCreatedPerAccount: 1000 });
});
test.after(() => server.stop());

test('errors reject with the seed error object {code, message}', async () => {
  const alice = await client(server.url, 'err-alice');
  try {
    // joining a room that does not exist: 10404
    const e = await alice.signalingJoin({ channelId: 'no-such-room' }).then(
      () => assert.fail('resolved'),
      (err) => err
    );
    assert.equal(e.code, 10404);
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0);
    assert.ok(e instanceof Error);
    assert.ok(e instanceof NIM.SignalingError);
    await assert.rejects(alice.signalingLeave({ channelId: 'no-such-room' }), { code: 10404 });
    await assert.rejects(alice.signalingInvite({ channelId: 'no-such-room', account: 'x', requestId: '1' }), { code: 10404 });
    await assert.rejects(alice.signalingGetChannelInfo({ channelName: 'nope' }), { code: 10404 });
    // a missing required field: 414
    await assert.rejects(alice.signalingCreate({ channelName: 'no type' }), { code: 414 });
    await assert.rejects(alice.signalingJoin({}), { code: 414 });
    // not a member: 10406
    const { channelInfo } = await alice.signalingCreate({ type: 1, channelName: 'err-room' });
    await assert.rejects(alice.signalingLeave({ channelId: channelInfo.channelId }), { code: 10406 });
    await assert.rejects(alice.signalingCreate({ type: 1, channelName: 'err-room' }), { code: 10405 });
    const q = await alice.signalingGetChannelInfo({ channelName: 'err-room' });
    assert.equal(q.code, 200);
    assert.equal(q.channelInfo.channelId, channelInfo.channelId);
    assert.deepEqual(q.members, []);
  } finally {
    await alice.destroy();
  }
  // after destroy: 415
  await assert.rejects(alice.signalingCreate({ type: 1 }), { code: 415 });
});

test('onconnect gets the login data; a refused token gives onerror/ondisconnect 302 and 415 requests', async () => {
  const srv = NIM.startServer({ auth: { mode: 'static', accounts: { amy: 'good' } } });
  try {
    let connected = null;
    const amy = NIM.getInstance({ serverUrl: srv.url, account: 'amy', token: 'good', onconnect: (d) => (connected = d) });
    await amy.ready();
    assert.equal(connected.code, 200);
    assert.equal(connected.account, 'amy');
    assert.equal(NIM.getInstance({ serverUrl: srv.url, account: 'amy' }), amy, 'same account, same instance');

    const seen = {};
    const bad = NIM.getInstance({
      serverUrl: srv.url,
      account: 'amy',
      deviceId: 'second',
      token: 'wrong',
      onerror: (e) => (seen.error = e),
      ondisconnect: (d) => (seen.disconnect = d),
      onconnect: () => (seen.connect = true),
    });
    await assert.rejects(bad.ready(), { code: 302 });
    assert.equal(seen.error.code, 302);
    assert.equal(seen.disconnect.code, 302);
    assert.equal(seen.connect, undefined);
    await assert.rejects(bad.signalingCreate({ type: 1 }), { code: 415 });
    await bad.destroy();

    // the server going away: onwillreconnect (reconnect is on by default)
    let willReconnect = null;
    amy.options.onwillreconnect = (s) => (willReconnect = s);
    await srv.stop();
    await waitFor(() => willReconnect, 'onwillreconnect');
    assert.equal(willReconnect.state, 'reconnecting');
    await amy.destroy();
  } finally {
    await srv.stop();
  }
});

test('a throwing handler does not stop the others, nor the library', async () => {
  const a = await client(server.url, 'thr-a');
  const b = await client(server.url, 'thr-b');
  const orig = console.error;
  const errors = [];
  console.error = (...args) => errors.push(args);
  try {
    const got = [];
    b.on('signalingNotify', () => {
      throw new Error('boom');
    });
    b.on('signalingNotify', (ev) => got.push(ev));
    await a.signalingCall({ type: 1, account: 'thr-b', requestId: 't1' });
    await a.signalingCall({ type: 1, account: 'thr-b', requestId: 't2' });
    await waitFor(() => got.length === 2, 'two INVITE events');
    assert.deepEqual(got.map((e) => e.requestId), ['t1', 't2']);
    assert.equal(errors.length, 2);
    // and the client still works
    assert.equal((await b.signalingSync()).code, 200);
  } finally {
    console.error = orig;
    await Promise.all([a.destroy(), b.destroy()]);
  }
});

test('destroy() from inside a handler does not deadlock', async () => {
  const a = await client(server.url, 'dd-a');
  const b = await client(server.url, 'dd-b');
  let destroyed = null;
  b.on('signalingNotify', () => {
    destroyed = b.destroy();
  });
  await a.signalingCall({ type: 1, account: 'dd-b', requestId: 'x' });
  await waitFor(() => destroyed, 'the INVITE');
  await destroyed;
  await a.destroy();
});

test('many requests at once keep order and all complete', async () => {
  const a = await client(server.url, 'many-a');
  try {
    const ps = [];
    for (let i = 0; i < 200; i++) ps.push(a.signalingCreate({ type: 3, channelName: `many-${i}` }));
    const rs = await Promise.all(ps);
    assert.deepEqual(rs.map((r) => r.channelInfo.channelName), rs.map((_, i) => `many-${i}`));
  } finally {
    await a.destroy();
  }
});

function runChild(src, env = {}) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-e', src], {
    cwd: path.join(__dirname, '..'),
    env: Object.assign({}, process.env, env),
    encoding: 'utf8',
    timeout: 20000,
  });
  return Object.assign(r, { ms: Date.now() - t0 });
}

test('a process exits on its own after destroy() and stop(), and stays up while a client lives', () => {
  const r = runChild(`
    const NIM = require('.');
    const srv = NIM.startServer({});
    const a = NIM.getInstance({ serverUrl: srv.url, account: 'exit-a' });
    const b = NIM.getInstance({ serverUrl: srv.url, account: 'exit-b' });
    // nothing but the library could keep the process up until the INVITE
    b.on('signalingNotify', async (ev) => {
      console.log('got', ev.eventType);
      await a.destroy(); await b.destroy(); await srv.stop();
      console.log('done');
    });
    Promise.all([a.ready(), b.ready()])
      .then(() => a.signalingCall({ type: 1, account: 'exit-b', requestId: 'r' }))
      .catch((e) => { console.error('call failed', e); process.exit(2); });
  `);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /got INVITE\ndone\n/);
  assert.ok(r.ms < 10000, `took ${r.ms} ms`);
});

test('signalingRegisterPushToken (ours) takes a token and refuses a bad one', async () => {
  const bob = await client(server.url, 'push-bob');
  try {
    const r = await bob.signalingRegisterPushToken({ token: 'tok-1', provider: 'apns' });
    assert.equal(r.code, 200);
    await assert.rejects(bob.signalingRegisterPushToken({ token: 5 }), { code: 414 });
  } finally {
    await bob.destroy();
  }
});

test('signalingQueryInvitations, INVITE_DELIVERED and signalingUpdateChannel (ours)', async () => {
  const a = await client(server.url, 'qru-a');
  const b = await client(server.url, 'qru-b');
  try {
    const seenA = [];
    const seenB = [];
    a.on('signalingNotify', (ev) => seenA.push(ev));
    b.on('signalingNotify', (ev) => seenB.push(ev));
    const { channelInfo } = await a.signalingCall({ type: 1, account: 'qru-b', requestId: 'u1' });
    const cid = channelInfo.channelId;
    await waitFor(() => seenA.some((e) => e.eventType === 'INVITE_DELIVERED'), 'the receipt');
    const rec = seenA.find((e) => e.eventType === 'INVITE_DELIVERED');
    assert.equal(rec.eventTypeCode, NIM.EVENT_TYPE_INVITE_DELIVERED);
    assert.equal(rec.deliveredCount, 1);
    const q = await a.signalingQueryInvitations();
    assert.deepEqual(q.sent.map((i) => [i.channelId, i.account, i.requestId, i.state]), [[cid, 'qru-b', 'u1', 'pending']]);
    assert.deepEqual(q.received, []);
    const u = await a.signalingUpdateChannel({ channelId: cid, ext: 'new' });
    assert.equal(u.channelInfo.ext, 'new');
    // bob is only invited, not a member: not his to change, and he hears nothing.
    await assert.rejects(b.signalingUpdateChannel({ channelId: cid, ext: 'x' }), { code: 10406 });
    assert.equal(NIM.EVENT_TYPE_CHANNEL_UPDATE, 11);
  } finally {
    await Promise.all([a.destroy(), b.destroy()]);
  }
});

test('a missing library is a clear error', () => {
  const r = runChild(`
    const NIM = require('.');
    try { NIM.startServer({}); } catch (e) { console.log(e.message); process.exit(3); }
  `, { NIM_SIGNALING_LIB: '/nonexistent/libnim_signaling.so' });
  assert.equal(r.status, 3, r.stderr);
  assert.match(r.stdout, /NIM_SIGNALING_LIB=\/nonexistent\/libnim_signaling\.so/);
});

test('signalingInviteMany (ours) rings each invitee and answers one result per account', async () => {
  const alice = await client(server.url, 'many-alice');
  const bob = await client(server.url, 'many-bob');
  const rung = [];
  bob.on('signalingNotify', (ev) => rung.push(ev));
  try {
    const { channelInfo } = await alice.signalingCreate({ type: 1 });
    await alice.signalingJoin({ channelId: channelInfo.channelId });
    const r = await alice.signalingInviteMany({
      channelId: channelInfo.channelId,
      accounts: ['many-bob', 'many-nobody', 'many-alice'],
      requestId: 'g1',
    });
    assert.equal(r.code, 200);
    assert.deepEqual(r.results, [
      { account: 'many-bob', code: 200 },
      { account: 'many-nobody', code: 10201 },
      { account: 'many-alice', code: 10407 },
    ]);
    const inv = await waitFor(() => rung.find((e) => e.eventType === 'INVITE'), 'INVITE');
    assert.equal(inv.requestId, 'g1');
    assert.equal(inv.fromAccountId, 'many-alice');
    await assert.rejects(alice.signalingInviteMany({ channelId: channelInfo.channelId, accounts: [], requestId: 'g2' }), { code: 414 });
  } finally {
    await alice.destroy();
    await bob.destroy();
  }
});
