'use strict';
// Where the C library is: its file name on each platform, and the folder
// of the package that holds the copy built for a platform and CPU
// (filled by scripts/prepack.js when the package is packed).

const path = require('path');

/** `libnim_signaling.so`, `libnim_signaling.dylib` or `nim_signaling.dll`. */
function libraryName(platform = process.platform) {
  if (platform === 'win32') return 'nim_signaling.dll';
  return platform === 'darwin' ? 'libnim_signaling.dylib' : 'libnim_signaling.so';
}

/** `<package>/prebuilds/<platform>-<arch>/<libraryName>`. */
function prebuildPath(platform = process.platform, arch = process.arch) {
  return path.join(__dirname, 'prebuilds', `${platform}-${arch}`, libraryName(platform));
}

module.exports = { libraryName, prebuildPath };
