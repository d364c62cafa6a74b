'use strict';
// index.d.ts / index.d.mts against what they describe, so that the types
// cannot drift: the methods of NIM, the named exports of index.mjs, the
// settings of docs/CONFIG.md. (The test that packs the package also
// type-checks examples/call.ts with `tsc --strict` against them.)
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const NIM = require('..');

const dir = path.join(__dirname, '..');
const dts = fs.readFileSync(path.join(dir, 'index.d.ts'), 'utf8');
const dmts = fs.readFileSync(path.join(dir, 'index.d.mts'), 'utf8');
const sorted = (xs) => [...new Set(xs)].sort();

/** The members of `interface name` in index.d.ts (at four spaces), with those of the interfaces it extends. */
function members(name) {
  const m = new RegExp(`^  interface ${name}(?: extends ([\\w, ]+))? \\{\\n([\\s\\S]*?)^  \\}$`, 'm').exec(dts);
  assert.ok(m, `interface ${name} in index.d.ts`);
  const own = [...m[2].matchAll(/^ {4}(\w+)\??:/gm)].map((x) => x[1]);
  const bases = m[1] ? m[1].split(',').map((b) => b.trim()) : [];
  return [...own, ...bases.flatMap(members)];
}

/** The wire keys of each `pub struct …Params` of crates/protocol/src/params.rs. */
function wireParams() {
  const src = fs.readFileSync(path.join(dir, '..', '..', 'crates', 'protocol', 'src', 'params.rs'), 'utf8');
  const camel = (snake) => snake.replace(/_(\w)/g, (_, c) => c.toUpperCase());
  const structs = {};
  for (const m of src.matchAll(/^pub struct (\w+Params) \{\n([\s\S]*?)^\}/gm)) {
    let rename = null;
    structs[m[1]] = [];
    for (const line of m[2].split('\n')) {
      const r = /rename = "(\w+)"/.exec(line);
      if (r) rename = r[1];
      const f = /^ {4}pub (\w+):/.exec(line);
      if (f) {
        structs[m[1]].push(rename || camel(f[1]));
        rename = null;
      }
    }
  }
  return structs;
}

/** The keys of the `## section` table of docs/CONFIG.md. */
function configKeys(section) {
  const doc = fs.readFileSync(path.join(dir, '..', '..', 'docs', 'CONFIG.md'), 'utf8');
  const part = doc.split(/^## /m).find((s) => s.startsWith(section));
  return [...part.matchAll(/^\| `(\w+)` \|/gm)].map((x) => x[1]);
}

test('index.d.ts declares every request method of NIM, and no other', () => {
  const js = Object.getOwnPropertyNames(NIM.prototype).filter((n) => n.startsWith('signaling'));
  const declared = [...dts.matchAll(/^ {2}(signaling\w+)\(/gm)].map((m) => m[1]);
  assert.ok(js.length >= 16);
  assert.deepEqual(sorted(declared), sorted(js));
});

test('index.mjs exports what index.js hangs on NIM, and index.d.mts declares it', async () => {
  const esm = await import('nim-signaling');
  assert.equal(esm.default, NIM);
  const statics = Object.keys(NIM).filter((k) => k !== 'default');
  assert.deepEqual(sorted(Object.keys(esm).filter((k) => k !== 'default')), sorted([...statics, 'getInstance']));
  for (const k of statics) if (k !== 'NIM') assert.equal(esm[k], NIM[k], k);
  assert.equal(esm.getInstance, NIM.getInstance);
  const declared = [...dmts.matchAll(/^export declare const (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual(sorted([...declared, 'NIM']), sorted(Object.keys(esm).filter((k) => k !== 'default')));
});

test('index.d.mts re-exports every type of index.d.ts', () => {
  const types = [...dts.matchAll(/^ {2}(?:interface|type|class) (\w+)/gm)].map((m) => m[1]);
  const list = /export type \{([^}]*)\} from/.exec(dmts)[1].split(',').map((s) => s.trim()).filter(Boolean);
  // SignalingError, a class, is exported as a value and a type of its own
  assert.deepEqual(sorted([...list, 'SignalingError']), sorted(types));
});

test('ServerConfig and ClientOptions have the settings of docs/CONFIG.md', () => {
  assert.deepEqual(sorted(members('ServerConfig')), sorted(configKeys('Server')));
  const client = members('ClientOptions').filter((k) => !/^on/.test(k));
  assert.deepEqual(sorted(client), sorted(configKeys('Client')));
});

test("each operation's parameters are the keys the library reads (crates/protocol/src/params.rs)", () => {
  // d.ts interfaces by the Rust struct they type; login and inviteDelivered
  // are the library's own, QueryParams is a union (one key or the other)
  const typedAs = { InviteReplyParams: ['CancelParams', 'RejectParams'], LoginParams: [], DeliveredParams: [] };
  const structs = wireParams();
  assert.ok(Object.keys(structs).length >= 14, Object.keys(structs).join(' '));
  for (const [struct, keys] of Object.entries(structs)) {
    if (struct === 'QueryParams') {
      assert.match(dts, new RegExp(`type QueryParams = ${keys.map((k) => `\\{ ${k}: string \\}`).join(' \\| ')};`));
      continue;
    }
    for (const name of typedAs[struct] || [struct]) assert.deepEqual(sorted(members(name)), sorted(keys), name);
  }
});

test('the EVENT_TYPE_ constants are typed with their values', () => {
  for (const [k, v] of Object.entries(NIM).filter(([k]) => k.startsWith('EVENT_TYPE_'))) {
    assert.match(dts, new RegExp(`const ${k}: ${v};`), k);
    assert.match(dts, new RegExp(`readonly ${k}: ${v};`), k);
    assert.match(dmts, new RegExp(`const ${k}: ${v};`), k);
  }
});
