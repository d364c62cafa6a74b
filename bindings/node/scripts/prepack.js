'use strict';
// `npm pack` / `npm publish` run this first (prepack): it puts the C
// library for this machine's platform and CPU into
// prebuilds/<platform>-<arch>/, and the repository's license files beside
// package.json, so that the package carries them. `--clean` (postpack)
// removes what it put there, so that a checkout goes on loading the
// library from ../../target.
//
// The library is built with `cargo build --profile dist --lib` (the
// release build, stripped: what scripts/install.sh ships) unless
// NIM_SIGNALING_PREBUILD names a library file to take instead (one built
// already, e.g. by the test that packs the package).

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { prebuildPath } = require('../libpath');

const pkg = path.resolve(__dirname, '..');
const repo = path.resolve(pkg, '..', '..');
const LICENSES = ['LICENSE-MIT', 'LICENSE-APACHE'];

function fail(message) {
  console.error(`nim-signaling prepack: ${message}`);
  process.exit(1);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.error) fail(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`\`${cmd} ${args.join(' ')}\` failed (${r.status})`);
  return r.stdout;
}

/** The library to bundle: NIM_SIGNALING_PREBUILD, or cargo's dist build of it. */
function library() {
  const given = process.env.NIM_SIGNALING_PREBUILD;
  if (given) {
    if (!fs.existsSync(given)) fail(`NIM_SIGNALING_PREBUILD=${given} does not exist`);
    return given;
  }
  if (!fs.existsSync(path.join(repo, 'Cargo.toml'))) {
    fail(`no Cargo.toml in ${repo}: pack from the repository's bindings/node, or set NIM_SIGNALING_PREBUILD`);
  }
  console.error('nim-signaling prepack: cargo build --profile dist --lib');
  run('cargo', ['build', '--profile', 'dist', '--lib']);
  const meta = JSON.parse(run('cargo', ['metadata', '--format-version', '1', '--no-deps']));
  return path.join(meta.target_directory, 'dist', path.basename(prebuildPath()));
}

function pack() {
  const from = library();
  const to = prebuildPath();
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  for (const name of LICENSES) fs.copyFileSync(path.join(repo, name), path.join(pkg, name));
  const mb = (fs.statSync(to).size / 1e6).toFixed(1);
  console.error(`nim-signaling prepack: ${path.relative(pkg, to)} (${mb} MB) from ${from}`);
}

function clean() {
  const lib = prebuildPath();
  fs.rmSync(lib, { force: true });
  // the folders too, when nothing else (another platform's copy) is in them
  for (let dir = path.dirname(lib); dir !== pkg && fs.existsSync(dir); dir = path.dirname(dir)) {
    if (fs.readdirSync(dir).length > 0) break;
    fs.rmdirSync(dir);
  }
  for (const name of LICENSES) fs.rmSync(path.join(pkg, name), { force: true });
}

if (process.argv.includes('--clean')) clean();
else pack();
