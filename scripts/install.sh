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
# and with --with-server (or --bindir-from) the server too:
#
#   PREFIX/bin/nim-signaling-server
#   SYSCONFDIR/nim-signaling/server.toml (deploy/server.toml), and env
#       (deploy/nim-signaling.env, mode 0600: the secrets); both kept when
#       they exist already, so a reinstall never overwrites a configuration
#   PREFIX/share/nim-signaling/systemd/nim-signaling-server.service (the
#       unit of deploy/, naming the paths above; link or copy it into
#       /etc/systemd/system to use it)
#   PREFIX/share/doc/nim-signaling/OPERATORS.md, CONFIG.md
#
#   scripts/install.sh [--prefix PREFIX] [--libdir-from DIR]
#                      [--with-server] [--bindir-from DIR] [--sysconfdir DIR]
#
#   --prefix PREFIX     where to install (default /usr/local)
#   --libdir-from DIR   install libnim_signaling.so and .a already built in
#                       DIR (e.g. target/debug) instead of running
#                       `cargo build --profile dist` (release, stripped,
#                       debug info split off) and taking target/dist
#   --with-server       install the server as well (off by default: a C or
#                       C++ developer wants the library, not a daemon's
#                       configuration)
#   --bindir-from DIR   the server binary already built in DIR (e.g.
#                       target/debug) instead of `cargo build --profile
#                       dist`; implies --with-server
#   --sysconfdir DIR    where the configuration goes (default PREFIX/etc;
#                       --sysconfdir /etc for /etc/nim-signaling)
#
# The version comes from Cargo.toml; the .pc and CMake files are made from
# the templates in packaging/. See docs/PACKAGING.md.
set -euo pipefail

usage() {
  echo "usage: $0 [--prefix PREFIX] [--libdir-from DIR] [--with-server] [--bindir-from DIR] [--sysconfdir DIR]" >&2
  exit 2
}

prefix=/usr/local
from=""
with_server=""
bin_from=""
sysconfdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --libdir-from) [ $# -ge 2 ] || usage; from=$2; shift 2 ;;
    --libdir-from=*) from=${1#--libdir-from=}; shift ;;
    --with-server) with_server=1; shift ;;
    --bindir-from) [ $# -ge 2 ] || usage; bin_from=$2; with_server=1; shift 2 ;;
    --bindir-from=*) bin_from=${1#--bindir-from=}; with_server=1; shift ;;
    --sysconfdir) [ $# -ge 2 ] || usage; sysconfdir=$2; shift 2 ;;
    --sysconfdir=*) sysconfdir=${1#--sysconfdir=}; shift ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
  esac
done
[ -n "$prefix" ] || usage
if [ -n "$sysconfdir" ] && [ -z "$with_server" ]; then
  echo "install.sh: --sysconfdir is for the server's configuration: add --with-server" >&2
  usage
fi

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
if [ -n "$with_server" ]; then
  if [ -z "$bin_from" ]; then
    echo "install.sh: cargo build --profile dist -p nim-signaling-server-bin"
    (cd "$root" && cargo build --profile dist -p nim-signaling-server-bin)
    bin_from="${CARGO_TARGET_DIR:-$root/target}/dist"
    case "$bin_from" in /*) ;; *) bin_from="$root/$bin_from" ;; esac
  fi
  if [ ! -x "$bin_from/nim-signaling-server" ]; then
    echo "install.sh: $bin_from/nim-signaling-server not found (build the server first: cargo build -p nim-signaling-server-bin)" >&2
    exit 1
  fi
fi

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

if [ -n "$with_server" ]; then
  sysconfdir=${sysconfdir:-$prefix/etc}
  mkdir -p "$sysconfdir"
  sysconfdir=$(cd "$sysconfdir" && pwd)
  conf="$sysconfdir/nim-signaling"
  install -d "$prefix/bin" "$conf" "$prefix/share/nim-signaling/systemd" \
    "$prefix/share/doc/nim-signaling"
  install -m 755 "$bin_from/nim-signaling-server" "$prefix/bin/"
  # A configuration already there is the operator's: kept, never replaced.
  keep_or_install() { # mode source target
    if [ -e "$3" ]; then
      echo "install.sh: kept the existing $3 (the new sample is $2)"
    else
      install -m "$1" "$2" "$3"
    fi
  }
  keep_or_install 644 "$root/deploy/server.toml" "$conf/server.toml"
  keep_or_install 600 "$root/deploy/nim-signaling.env" "$conf/env"
  # The unit of deploy/ with this installation's paths.
  unit="$prefix/share/nim-signaling/systemd/nim-signaling-server.service"
  # Its header (how to install it by hand) gives way to this one.
  {
    echo "# systemd unit for nim-signaling-server, installed by scripts/install.sh"
    echo "# in $prefix from deploy/nim-signaling-server.service, whose header says"
    echo "# more. To use it: ln -s $unit /etc/systemd/system/"
    echo "# && systemctl daemon-reload && systemctl enable --now nim-signaling-server"
    echo
    sed -n '/^\[Unit\]/,$p' "$root/deploy/nim-signaling-server.service" | sed -e "s|/usr/local/bin/nim-signaling-server|$(sed_escape "$prefix/bin/nim-signaling-server")|g" \
      -e "s|/usr/local/share/doc/|$(sed_escape "$prefix/share/doc/")|g" \
      -e "s|/etc/nim-signaling/|$(sed_escape "$conf/")|g"
  } >"$unit"
  chmod 644 "$unit"
  install -m 644 "$root/docs/OPERATORS.md" "$root/docs/CONFIG.md" "$prefix/share/doc/nim-signaling/"
fi

echo "install.sh: nim-signaling $version installed in $prefix"
echo "  pkg-config: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs nim-signaling"
echo "  CMake:      -DCMAKE_PREFIX_PATH=$prefix, find_package(NimSignaling), NimSignaling::nim_signaling"
if [ -n "$with_server" ]; then
  echo "  server:     $prefix/bin/nim-signaling-server --config $conf/server.toml"
  echo "  systemd:    ln -s $unit /etc/systemd/system/ && systemctl daemon-reload"
fi
