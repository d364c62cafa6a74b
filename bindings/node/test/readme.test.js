'use strict';
// The README's examples run as they are written (testlib/readme.js takes
// them from README.md, so they cannot drift from it), here against this
// checkout: `nim-signaling` resolves to this folder by its own name.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { readmeExamples, runExample, failure } = require('../testlib/readme');

const examples = readmeExamples();

test('the README has a CommonJS and an ES module example', () => {
  assert.deepEqual(examples.map((e) => e.name), ['example.js', 'example.mjs']);
  assert.match(examples[0].code, /require\('nim-signaling'\)/);
  assert.match(examples[1].code, /^import \{ [^}]+ \} from 'nim-signaling';$/m);
});

for (const ex of examples) {
  test(`README ${ex.name} runs and exits by itself`, () => {
    const r = runExample(ex, path.join(__dirname, '..'));
    assert.equal(failure(r), null);
    assert.ok(r.stdout.length > 0, 'it prints what happened');
  });
}
