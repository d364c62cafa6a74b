#!/usr/bin/env bash
# Cross-builds libnim_signaling for mobile apps (see docs/MOBILE.md).
#
#   scripts/build-mobile.sh android [ABI ...]   .so per ABI into dist/android/jniLibs/<ABI>/
#                                               (arm64-v8a armeabi-v7a x86_64 by default)
#   scripts/build-mobile.sh ios                 dist/ios/NimSignaling.xcframework (on macOS)
#
# Android needs the NDK (ANDROID_NDK_HOME, r25 or newer), cargo-ndk
# (cargo install cargo-ndk) and the Rust targets (rustup target add
# aarch64-linux-android armv7-linux-androideabi x86_64-linux-android).
# iOS needs macOS with Xcode and the Rust targets aarch64-apple-ios,
# aarch64-apple-ios-sim and x86_64-apple-ios. Every build is --release;
# the header is include/nim_signaling.h for both.
#
# Phones are clients: the library is built client-only (no embedded server,
# no Redis, no HTTP stack). NIM_SIGNALING_EMBEDDED=1 builds it with the
# embedded server instead, for apps that host calls on the device.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist
features=(-p nim-signaling --no-default-features)
[ "${NIM_SIGNALING_EMBEDDED:-0}" = 1 ] && features=(-p nim-signaling)

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "build-mobile: $1 not found: $2" >&2; exit 2; }
}

android() {
  need cargo-ndk "cargo install cargo-ndk"
  [ -n "${ANDROID_NDK_HOME:-}" ] || { echo "build-mobile: set ANDROID_NDK_HOME to the NDK" >&2; exit 2; }
  local abis=("$@")
  [ ${#abis[@]} -gt 0 ] || abis=(arm64-v8a armeabi-v7a x86_64)
  local args=()
  for a in "${abis[@]}"; do args+=(-t "$a"); done
  # cargo-ndk picks the NDK's clang as compiler and linker for each ABI
  # (ring compiles C and assembly) and copies each .so into -o/<ABI>/.
  cargo ndk "${args[@]}" --platform 24 -o "$out/android/jniLibs" build --release --lib "${features[@]}"
  cp include/nim_signaling.h "$out/android/"
  echo "build-mobile: $out/android/jniLibs/{$(IFS=,; echo "${abis[*]}")}/libnim_signaling.so"
}

ios() {
  [ "$(uname -s)" = Darwin ] || { echo "build-mobile: iOS builds need macOS with Xcode" >&2; exit 2; }
  need xcodebuild "install Xcode"
  need lipo "install Xcode's command line tools"
  local t
  for t in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
    cargo build --release --lib "${features[@]}" --target "$t"
  done
  # The simulator slice holds both simulator architectures.
  mkdir -p "$out/ios/sim" "$out/ios/headers"
  lipo -create target/aarch64-apple-ios-sim/release/libnim_signaling.a \
    target/x86_64-apple-ios/release/libnim_signaling.a -output "$out/ios/sim/libnim_signaling.a"
  cp include/nim_signaling.h "$out/ios/headers/"
  rm -rf "$out/ios/NimSignaling.xcframework"
  xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libnim_signaling.a -headers "$out/ios/headers" \
    -library "$out/ios/sim/libnim_signaling.a" -headers "$out/ios/headers" \
    -output "$out/ios/NimSignaling.xcframework"
  echo "build-mobile: $out/ios/NimSignaling.xcframework"
}

case "${1:-}" in
  android) shift; android "$@" ;;
  ios) ios ;;
  *) echo "usage: $0 android [ABI ...] | ios" >&2; exit 2 ;;
esac
