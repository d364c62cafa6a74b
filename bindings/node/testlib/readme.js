'use strict';
// The README's examples, run as written: every ```js block whose first
// line names its file (`// example.js`, `// example.mjs`) is run with
// node, as CommonJS or as an ES module by that name, in a given folder
// where `nim-signaling` resolves (this package itself, by its name, or an
// app that installed it).
//
// `node testlib/readme.js` runs them all in the current folder and exits
// non-zero when one fails (the test that installs the packed package runs
// it in an app folder).
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const README = path.join(__dirname, '..', 'README.md');

/** [{name, code}] of the README's named ```js blocks, in order. */
function readmeExamples() {
  const text = fs.readFileSync(README, 'utf8');
  const examples = [];
  for (const m of text.matchAll(/^```js\n([\s\S]*?)^```$/gm)) {
    const name = /^\/\/ (\S+\.m?js)\n/.exec(m[1]);
    if (name) examples.push({ name: name[1], code: m[1] });
  }
  return examples;
}

/** Runs one example in `cwd`: {name, status, stdout, stderr, ms, error}. */
function runExample(example, cwd, env = process.env) {
  const type = example.name.endsWith('.mjs') ? 'module' : 'commonjs';
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [`--input-type=${type}`, '-e', example.code], {
    cwd,
    env,
    encoding: 'utf8',
    timeout: 30000,
  });
  return { name: example.name, status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0, error: r.error };
}

/** What went wrong with a run, or null when it exited 0. */
function failure(r) {
  if (r.status === 0 && !r.error) return null;
  return `${r.name} exited ${r.status}${r.error ? ` (${r.error.message})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

if (require.main === module) {
  const examples = readmeExamples();
  if (examples.length === 0) {
    console.error(`no named js examples in ${README}`);
    process.exit(1);
  }
  let failed = 0;
  for (const ex of examples) {
    const r = runExample(ex, process.cwd());
    const why = failure(r);
    if (why) failed++;
    console.log(why || `${r.name}: ok (${r.ms} ms)\n${r.stdout}`);
  }
  process.exit(failed ? 1 : 0);
}

module.exports = { readmeExamples, runExample, failure };
