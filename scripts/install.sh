#!/usr/bin/env bash
# Installs nim-signaling for C and C++ programs:
#
#   PREFIX/include/nim_signaling.h, nim_signaling.hpp (C++17 wrapper)
#   PREFIX/lib/libnim_signaling.so.VERSION (with its SONAME link and
#   libnim_signaling.so), libnim_signaling.a
#   PREFIX/lib/pkgconfig/nim-signaling.pc
#   PREFIX/lib/cmake/NimSignaling/NimSignalingConfig.cmake,
#                                 NimSignalingConfigVersion.cmake
#
#   scripts/install.sh [--prefix PREFIX] [--libdir-from DIR]
#
#   --prefix PREFIX     where to install (default /usr/local)
#   --libdir-from DIR   install libnim_signaling.so and .a already built in
#                       DIR (e.g. target/debug) instead of running
#                       `cargo build --profile dist` (release, stripped,
#                       debug info split off) and taking target/dist
#
# The version comes from Cargo.toml; the .pc and CMake files are made from
# the templates in packaging/. See docs/PACKAGING.md.
set -euo pipefail

usage() {
  echo "usage: $0 [--prefix PREFIX] [--libdir-from DIR]" >&2
  exit 2
}

prefix=/usr/local
from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --libdir-from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
    --libdir-from=*) from=${1#--libdir-from=}; shift ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$prefix" ] || usage

root=$(cd "$(dirname "$0")/.." && pwd)

# The version of the workspace (its [workspace.package], which every crate
# inherits) in Cargo.toml.
version=$(awk '
  /^\[/ { in_pkg = ($0 == "[workspace.package]") }
  in_pkg && /^version[ \t]*=/ { sub(/^version[ \t]*=[ \t]*"/, ""); sub(/".*/, ""); print; exit }
' "$root/Cargo.toml")
if [ -z "$version" ]; then
  echo "install.sh: no version in the [workspace.package] of $root/Cargo.toml" >&2
  exit 1
fi

if [ -z "$from" ]; then
  echo "install.sh: cargo build --profile dist -p nim-signaling"
  (cd "$root" && cargo build --profile dist -p nim-signaling --lib)
  from="${CARGO_TARGET_DIR:-$root/target}/dist"
  case "$from" in /*) ;; *) from="$root/$from" ;; esac
fi
for f in libnim_signaling.so libnim_signaling.a; do
  if [ ! -f "$from/$f" ]; then
    echo "install.sh: $from/$f not found (build the library first: cargo build)" >&2
    exit 1
  fi
done

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

# sed replacement text: escape \, & and the | delimiter.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }
subst() { # template output
  sed -e "s|@PREFIX@|$(sed_escape "$prefix")|g" -e "s|@VERSION@|$(sed_escape "$version")|g" \
    -e "s|@SONAME_PROPERTY@|$(sed_escape "${soname_property:-}")|g" \
    "$root/packaging/$1" >"$2"
  chmod 644 "$2"
}

install -d "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/NimSignaling"
install -m 644 "$root/include/nim_signaling.h" "$root/include/nim_signaling.hpp" "$prefix/include/"
# The SONAME that build.rs gave the library (none in a build without it):
# the file is installed under its full version, with the SONAME link the
# loader follows and the plain name the linker's -lnim_signaling finds.
soname=$(objdump -p "$from/libnim_signaling.so" 2>/dev/null | awk '$1 == "SONAME" { print $2 }')
if [ -n "$soname" ]; then
  install -m 755 "$from/libnim_signaling.so" "$prefix/lib/libnim_signaling.so.$version"
  ln -sfn "libnim_signaling.so.$version" "$prefix/lib/$soname"
  ln -sfn "$soname" "$prefix/lib/libnim_signaling.so"
  soname_property="IMPORTED_SONAME \"$soname\""
else
  install -m 755 "$from/libnim_signaling.so" "$prefix/lib/"
  # Without a SONAME, programs must record "libnim_signaling.so", not the
  # absolute path CMake would otherwise link.
  soname_property="IMPORTED_NO_SONAME TRUE"
fi
install -m 644 "$from/libnim_signaling.a" "$prefix/lib/"
subst nim-signaling.pc.in "$prefix/lib/pkgconfig/nim-signaling.pc"
subst NimSignalingConfig.cmake.in "$prefix/lib/cmake/NimSignaling/NimSignalingConfig.cmake"
subst NimSignalingConfigVersion.cmake.in \
  "$prefix/lib/cmake/NimSignaling/NimSignalingConfigVersion.cmake"

echo "install.sh: nim-signaling $version installed in $prefix"
echo "  pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs nim-signaling"
echo "  CMake:      -DCMAKE_PREFIX_PATH=$prefix, find_package(NimSignaling), NimSignaling::nim_signaling"
