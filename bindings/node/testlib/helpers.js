'use strict';
// Test helpers: an embedded server, logged-in clients, and a runner for the
// seed's examples that captures their console output.
const NIM = require('..');

const SEED_ROOM = "'2ed4a942417e4b33949f1b65739f3f00'";

async function client(url, account, extra = {}) {
  const nim = NIM.getInstance(Object.assign({ serverUrl: url, account, token: '' }, extra));
  await nim.ready();
  return nim;
}

function capture() {
  const logs = [];
  const rec = (level) => (...args) => logs.push({ level, args, text: args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') });
  return { logs, console: { log: rec('log'), warn: rec('warn'), error: rec('error'), info: rec('info') } };
}

/**
 * Runs one seed example as a function of `console`, `nim` and the page's
 * own variables (`scope`); resolves after every promise it made settled
 * and its then/catch handlers ran. `seedRoom` replaces the example's
 * literal channelId by a real one.
 */
async function runExample(code, nim, scope = {}, opts = {}) {
  if (opts.seedRoom) code = code.split(SEED_ROOM).join(JSON.stringify(opts.seedRoom));
  const cap = opts.capture || capture();
  const promises = [];
  const proxy = new Proxy(nim, {
    get(target, prop) {
      const v = target[prop];
      if (typeof v !== 'function') return v;
      return (...args) => {
        const r = v.apply(target, args);
        if (typeof prop === 'string' && prop.startsWith('signaling')) promises.push(r);
        return r === target ? proxy : r;
      };
    },
  });
  const names = Object.keys(scope);
  // eslint-disable-next-line no-new-func
  const f = new Function('console', 'nim', ...names, code);
  f(cap.console, proxy, ...names.map((k) => scope[k]));
  await Promise.allSettled(promises);
  await new Promise((r) => setImmediate(r));
  return cap;
}

async function waitFor(pred, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const has = (cap, text) => cap.logs.find((l) => l.text.includes(text));
const waitLog = (cap, text, ms) => waitFor(() => has(cap, text), JSON.stringify(text), ms);

module.exports = { NIM, client, capture, runExample, waitFor, waitLog, has, SEED_ROOM };
