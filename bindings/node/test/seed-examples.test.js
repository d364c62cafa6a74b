'use strict';
// The seed document's JavaScript examples, run as written against an
// embedded server. Only the page variables they read are defined (form
// fields of the call example become plain objects), and the literal
// channelId '2ed4a942417e4b33949f1b65739f3f00' is replaced by the id of a
// real room where the example is meant to succeed (it is also run as
// written, to see the "room does not exist" branch).
const test = require('node:test');
const assert = require('node:assert/strict');
const ex = require('../testlib/seed-examples');
const { NIM, client, runExample, waitLog, waitFor } = require('../testlib/helpers');

// The seed's signalingNotify example ends in a stray `)` (`});` after a
// function declaration), a SyntaxError; that one character is removed.
const notifyExample = ex.signalingNotify.replace(/\}\n\}\);\s*$/, '}\n}\n');

let server;
test.before(() => {
  server = NIM.startServer({ memberDropGraceMs: 300 });
});
test.after(() => server.stop());

const warned = (cap, text) => cap.logs.find((l) => l.level === 'warn' && l.text.includes(text));

test('signalingCreate example: creates, then 10405 "房间已存在"', async () => {
  const alice = await client(server.url, 'create-alice');
  try {
    const c1 = await runExample(ex.create, alice);
    const ok = warned(c1, '创建房间成功');
    assert.ok(ok, JSON.stringify(c1.logs));
    const data = ok.args[1];
    assert.equal(data.code, 200);
    assert.equal(data.channelInfo.channelName, 'channel name');
    assert.equal(data.channelInfo.type, 1);
    assert.equal(data.channelInfo.creatorId, 'create-alice');
    assert.equal(typeof data.channelInfo.channelId, 'string');
    assert.equal(data.channelInfo.invalid, 0);
    assert.ok(data.channelInfo.expireTimestamp > data.channelInfo.createTimestamp);

    const c2 = await runExample(ex.create, alice);
    const fail = warned(c2, '创建房间失败');
    assert.ok(fail, JSON.stringify(c2.logs));
    assert.equal(fail.args[1].code, 10405);
    assert.equal(typeof fail.args[1].message, 'string');
    assert.ok(warned(c2, '房间已存在，请勿重复创建'));
    // the name is free again once the room is closed
    await alice.signalingClose({ channelId: data.channelInfo.channelId });
  } finally {
    await alice.destroy();
  }
});

test('room flow: join, signalingNotify, invite, cancel, control, leave, close examples', async () => {
  const alice = await client(server.url, 'alice');
  const cs3 = await client(server.url, 'cs3');
  try {
    // cs3 listens with the seed's signalingNotify example
    const notes = await runExample(notifyExample, cs3);
    const { channelInfo } = await alice.signalingCreate({ type: 2, channelName: 'flow' });
    const room = channelInfo.channelId;

    // join as written: the seed's channelId does not exist here
    const j0 = await runExample(ex.join, alice);
    assert.equal(warned(j0, '加入房间失败').args[1].code, 10404);
    assert.ok(warned(j0, '房间不存在'));

    const j1 = await runExample(ex.join, alice, {}, { seedRoom: room });
    const joined = warned(j1, '加入房间成功');
    assert.ok(joined, JSON.stringify(j1.logs));
    assert.equal(joined.args[1].code, 200);
    assert.equal(joined.args[1].channelInfo.channelId, room);
    assert.deepEqual(joined.args[1].members.map((m) => [m.account, m.uid]), [['alice', 132]]);
    const j2 = await runExample(ex.join, alice, {}, { seedRoom: room });
    assert.equal(warned(j2, '加入房间失败').args[1].code, 10407);
    assert.ok(warned(j2, '已经在房间内'));

    // invite cs3 (online): success, and cs3's handler sees INVITE
    const inv = await runExample(ex.invite, alice, {}, { seedRoom: room });
    const invOk = warned(inv, '邀请别人加入房间成功');
    assert.ok(invOk, JSON.stringify(inv.logs));
    assert.equal(invOk.args[1].code, 200);
    await waitLog(notes, '独立呼叫信令： 邀请事件');
    const invEvent = notes.logs.find((l) => l.args[0] === 'signalingOnlineNotify: ' && l.args[1].eventType === 'INVITE').args[1];
    assert.equal(invEvent.fromAccountId, 'alice');
    assert.equal(invEvent.toAccount, 'cs3');
    assert.equal(invEvent.requestId, '123');
    assert.equal(invEvent.attachExt, '12');
    assert.equal(invEvent.channelInfo.channelId, room);
    assert.equal(invEvent.pushInfo.pushTitle, 'title');
    assert.equal(typeof invEvent.time, 'number');

    // cancel it: cs3 sees CANCEL_INVITE; a second cancel fails
    const can = await runExample(ex.cancel, alice, {}, { seedRoom: room });
    assert.equal(warned(can, '取消邀请别人加入房间成功').args[1].code, 200);
    await waitLog(notes, '独立呼叫信令：取消邀请事件');
    const can2 = await runExample(ex.cancel, alice, {}, { seedRoom: room });
    const can2err = warned(can2, '取消邀请别人加入房间失败').args[1];
    assert.ok([10408, 10409, 10410].includes(can2err.code), JSON.stringify(can2err));

    // cs3 joins; alice's control (the example's variables) reaches cs3
    await cs3.signalingJoin({ channelId: room });
    const ctl = await runExample(ex.control, alice, { channelId: room, account: 'cs3', attachExt: 'mute' });
    assert.equal(warned(ctl, '控制信令发送').args[1].code, 200);
    await waitLog(notes, '独立呼叫信令：自定义控制事件');
    const ctlEvent = notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'CONTROL').args[1];
    assert.equal(ctlEvent.attachExt, 'mute');
    assert.equal(ctlEvent.fromAccountId, 'alice');

    // alice leaves: cs3 sees LEAVE; leaving again is 10406 "不在频道内"
    const lv = await runExample(ex.leave, alice, {}, { seedRoom: room });
    assert.equal(warned(lv, '离开房间成功').args[1].code, 200);
    await waitLog(notes, '独立呼叫信令：离开房间事件');
    const lv2 = await runExample(ex.leave, alice, {}, { seedRoom: room });
    assert.equal(warned(lv2, '离开房间失败').args[1].code, 10406);
    assert.ok(warned(lv2, '不在频道内'));

    // alice (back in) closes: cs3, the other member, sees ROOM_CLOSE
    await alice.signalingJoin({ channelId: room });
    await waitLog(notes, '独立呼叫信令：加入房间事件');
    const joinEvent = notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'ROOM_JOIN').args[1];
    assert.equal(joinEvent.member.account, 'alice');
    const cl = await runExample(ex.close, alice, {}, { seedRoom: room });
    assert.equal(warned(cl, '关闭房间成功').args[1].code, 200);
    await waitLog(notes, '独立呼叫信令：房间关闭事件');
    const closeEvent = notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'ROOM_CLOSE').args[1];
    assert.equal(closeEvent.channelInfo.channelId, room);
    assert.equal(closeEvent.fromAccountId, 'alice');
    // closing the seed's (nonexistent) room fails
    const cl2 = await runExample(ex.close, alice);
    assert.equal(warned(cl2, '关闭房间失败').args[1].code, 10404);
  } finally {
    await alice.destroy();
    await cs3.destroy();
  }
});

test('accept and reject examples, with the signalingMutilClientSyncNotify example on a second device', async () => {
  const cs3 = await client(server.url, 'cs3', { deviceId: 'cs3-accept' });
  const bob = await client(server.url, 'bob', { deviceId: 'bob-phone' });
  const bobPc = await client(server.url, 'bob', { deviceId: 'bob-pc' });
  assert.notEqual(bob, bobPc);
  try {
    const cs3Notes = await runExample(notifyExample, cs3);
    const pcNotes = await runExample(ex.mutilClientSyncNotify, bobPc);
    const { channelInfo } = await cs3.signalingCreate({ type: 1 });
    const room = channelInfo.channelId;
    await cs3.signalingJoin({ channelId: room });

    // cs3 invites bob with requestId '123'; bob (phone) runs the accept example
    await cs3.signalingInvite({ channelId: room, account: 'bob', requestId: '123' });
    const acc = await runExample(ex.accept, bob, { autoJoin: false }, { seedRoom: room });
    const accOk = warned(acc, '接受别人的邀请');
    assert.ok(accOk, JSON.stringify(acc.logs));
    assert.equal(accOk.args[1].code, 200);
    await waitLog(cs3Notes, '独立呼叫信令：接受邀请事件');
    const accEvent = cs3Notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'ACCEPT').args[1];
    assert.equal(accEvent.fromAccountId, 'bob');
    assert.equal(accEvent.requestId, '123');
    assert.equal(accEvent.attachExt, '12');
    // bob's PC: the multi-client example switches on nim.EVENT_TYPE_ACCEPT (6)
    await waitLog(pcNotes, '独立呼叫信令：接受邀请事件');
    const sync = pcNotes.logs.find((l) => l.args[0] === 'signalingMutilClientSyncNotify: ').args[1];
    assert.equal(sync.eventType, 6);
    assert.equal(sync.requestId, '123');
    // accepting again: 10410 "邀请已经接受"
    const acc2 = await runExample(ex.accept, bob, { autoJoin: false }, { seedRoom: room });
    assert.equal(warned(acc2, '失败').args[1].code, 10410);
    assert.ok(warned(acc2, '邀请已经接受'));

    // a second invitation, rejected with the reject example's variables
    await cs3.signalingInvite({ channelId: room, account: 'bob', requestId: 'r2' });
    const rej = await runExample(ex.reject, bob, { channelId: room, account: 'cs3', requestId: 'r2', offlineEnabled: false, ext: 'busy' });
    assert.equal(warned(rej, '拒绝别人的邀请，data').args[1].code, 200);
    await waitLog(cs3Notes, '独立呼叫信令：拒绝邀请事件');
    const rejEvent = cs3Notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'REJECT').args[1];
    assert.equal(rejEvent.attachExt, 'busy');
    await waitLog(pcNotes, '独立呼叫信令：拒绝邀请事件');
    assert.equal(NIM.EVENT_TYPE_REJECT, 5);
    assert.equal(bob.EVENT_TYPE_REJECT, 5);
    assert.equal(bob.EVENT_TYPE_ACCEPT, 6);
    // rejecting a nonexistent invitation: 10408 "邀请不存在或已过期"
    const rej2 = await runExample(ex.reject, bob, { channelId: room, account: 'cs3', requestId: 'nope', offlineEnabled: false, ext: '' });
    assert.equal(warned(rej2, '拒绝别人的邀请失败').args[1].code, 10408);
    assert.ok(warned(rej2, '邀请不存在或已过期'));
  } finally {
    await Promise.all([cs3.destroy(), bob.destroy(), bobPc.destroy()]);
  }
});

// the call example's page: form fields and variables
function callPage(account, over = {}) {
  return Object.assign(
    {
      pushEnableNode: { checked: true },
      customNotificationNode: { value: 'Incoming call' },
      pushContentNode: { value: 'alice is calling' },
      payloadNode: { value: '{"room":"x"}' },
      pushNeedBadgeNode: { checked: false },
      type: 2,
      channelName: '',
      ext: 'call ext',
      channelId: '',
      uid: 7,
      account,
      requestId: 'call-1',
      offlineEnabled: true,
      joinExt: 'join ext',
    },
    over
  );
}

test('signalingCall example: room + join + invite; the callee sees INVITE with pushInfo; 10201 offline', async () => {
  const caller = await client(server.url, 'caller');
  const callee = await client(server.url, 'callee');
  try {
    const notes = await runExample(notifyExample, callee);
    const c = await runExample(ex.call, caller, callPage('callee'));
    const ok = warned(c, '呼叫成功');
    assert.ok(ok, JSON.stringify(c.logs));
    const data = ok.args[1];
    assert.equal(data.code, 200);
    assert.equal(data.channelInfo.type, 2);
    assert.equal(data.channelInfo.ext, 'call ext');
    assert.deepEqual(data.members.map((m) => [m.account, m.uid]), [['caller', 7]]);
    await waitLog(notes, '独立呼叫信令： 邀请事件');
    const inv = notes.logs.find((l) => l.args[1] && l.args[1].eventType === 'INVITE').args[1];
    assert.equal(inv.requestId, 'call-1');
    assert.equal(inv.attachExt, 'join ext');
    assert.equal(inv.channelInfo.channelId, data.channelInfo.channelId);
    assert.equal(inv.pushInfo.pushTitle, 'Incoming call');
    assert.equal(inv.pushInfo.pushContent, 'alice is calling');

    // calling an account with no device: 10201 "对方云信不在线", room kept
    const off = await runExample(ex.call, caller, callPage('nobody-online', { requestId: 'call-2', pushEnableNode: { checked: false } }));
    const err = warned(off, '呼叫失败');
    assert.ok(err, JSON.stringify(off.logs));
    assert.equal(err.args[1].code, 10201);
    assert.ok(warned(off, '对方云信不在线'));
    assert.equal(typeof err.args[1].channelInfo.channelId, 'string');
  } finally {
    await Promise.all([caller.destroy(), callee.destroy()]);
  }
});

test('signalingSync example and the offline / channels notifications after login', async () => {
  const alice = await client(server.url, 'sync-alice');
  const { channelInfo } = await alice.signalingCreate({ type: 1 });
  await alice.signalingJoin({ channelId: channelInfo.channelId });
  // sync-dave is offline: the invitation waits in his offline list
  await assert.rejects(
    alice.signalingInvite({ channelId: channelInfo.channelId, account: 'sync-dave', requestId: 'o1', offlineEnabled: true }),
    (e) => e.code === 10201
  );
  const unread = [];
  const channels = [];
  const dave = NIM.getInstance({
    serverUrl: server.url,
    account: 'sync-dave',
    onSignalingUnreadMessageSyncNotify: (list) => unread.push(list),
  });
  dave.on('signalingChannelsSyncNotify', (list) => channels.push(list));
  try {
    await dave.ready();
    await waitFor(() => unread.length && channels.length, 'offline and channels notifications');
    assert.equal(unread[0].length, 1);
    assert.equal(unread[0][0].eventType, 'INVITE');
    assert.equal(unread[0][0].requestId, 'o1');
    assert.deepEqual(channels[0], []);

    await dave.signalingAccept({ channelId: channelInfo.channelId, account: 'sync-alice', requestId: 'o1', autoJoin: true, uid: '55' });
    const s = await runExample(ex.sync, dave);
    const info = s.logs[0].args[0];
    assert.equal(info.code, 200);
    assert.ok(Array.isArray(info.eventList));
    assert.equal(info.channels.length, 1);
    assert.equal(info.channels[0].channelInfo.channelId, channelInfo.channelId);
    assert.deepEqual(info.channels[0].members.map((m) => m.account).sort(), ['sync-alice', 'sync-dave']);
  } finally {
    await Promise.all([alice.destroy(), dave.destroy()]);
  }
});

test('signalingMembersSyncNotify example: a member whose device vanished', async () => {
  const alice = await client(server.url, 'ms-alice');
  const eve = await client(server.url, 'ms-eve', { reconnect: false });
  try {
    const cap = await runExample(ex.membersSyncNotify, alice);
    const { channelInfo } = await alice.signalingCreate({ type: 1 });
    await alice.signalingJoin({ channelId: channelInfo.channelId });
    await eve.signalingJoin({ channelId: channelInfo.channelId });
    await eve.destroy(); // no leave: the device just goes away
    await waitLog(cap, 'signalingMembersSyncNotify');
    const ev = cap.logs.find((l) => l.args[0] === 'signalingMembersSyncNotify: ').args[1];
    assert.equal(ev.channelInfo.channelId, channelInfo.channelId);
    assert.deepEqual(ev.members.map((m) => m.account), ['ms-alice']);
  } finally {
    await Promise.all([alice.destroy(), eve.destroy()]);
  }
});
