"""Builds a platform wheel of nim_signaling that carries the C library.

The metadata is in pyproject.toml; this file only adds the library:

- `build_py` puts `libnim_signaling.so` (`.dylib` on macOS) into the
  package. It takes the file named by $NIM_SIGNALING_PREBUILD when that is
  set, and otherwise runs `cargo build --profile dist -p nim-signaling
  --lib` (the release build stripped of symbols and debug info, as
  scripts/install.sh ships it) in the nim-signaling checkout this
  directory belongs to (`../..`) and takes the cdylib cargo reports,
  wherever its target directory is (CARGO_TARGET_DIR and .cargo/config are
  honoured). Without either it stops, saying so.
- the distribution says it has extension modules, so the wheel is not
  pure: bdist_wheel tags it for this platform (e.g. `linux_x86_64`), and
  as the library is loaded with ctypes, not imported, for any Python 3
  (`py3-none`).

An editable install (`pip install -e`) bundles nothing: the loader then
finds the library in target/ or through $NIM_SIGNALING_LIB.
"""

import importlib.util
import json
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 kept it in the wheel package
    from wheel.bdist_wheel import bdist_wheel

PREBUILD_VAR = "NIM_SIGNALING_PREBUILD"
PACKAGE = "nim_signaling"

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))


def _loader():
    """The package's _lib module (standard library only), read by path: the
    file name it looks for next to itself is the one to bundle."""
    spec = importlib.util.spec_from_file_location("_nim_signaling_lib", os.path.join(HERE, "src", PACKAGE, "_lib.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIB_FILE = _loader()._FILE_NAME


def _is_checkout(path):
    """Whether `path` holds the nim-signaling crate (its Cargo.toml)."""
    try:
        with open(os.path.join(path, "Cargo.toml"), encoding="utf-8") as f:
            return 'name = "nim-signaling"' in f.read()
    except OSError:
        return False


def _cargo_build():
    """Runs `cargo build --profile dist -p nim-signaling --lib` in the
    checkout; the path of the cdylib it built."""
    if not _is_checkout(CHECKOUT):
        raise SystemExit(
            "nim_signaling: no library to put in the wheel: %s is not a nim-signaling "
            "checkout, and %s is not set (the path of a built %s)" % (CHECKOUT, PREBUILD_VAR, LIB_FILE)
        )
    cargo = os.environ.get("CARGO", "cargo")
    cmd = [cargo, "build", "--profile", "dist", "-p", "nim-signaling", "--lib"]
    cmd.append("--message-format=json-render-diagnostics")  # the artifacts' paths on stdout
    print("nim_signaling: running %s in %s" % (" ".join(cmd), CHECKOUT), flush=True)
    try:
        out = subprocess.run(cmd, cwd=CHECKOUT, stdout=subprocess.PIPE, check=False)
    except OSError as e:
        raise SystemExit(
            "nim_signaling: cannot run %s (%s): the Rust toolchain is needed to build the library, "
            "or set %s to a built %s" % (cargo, e, PREBUILD_VAR, LIB_FILE)
        )
    if out.returncode != 0:
        raise SystemExit("nim_signaling: cargo build failed (exit status %d)" % out.returncode)
    found = None
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or "cdylib" not in msg.get("target", {}).get("kind", []):
            continue
        for f in msg.get("filenames", []):
            if os.path.basename(f) == LIB_FILE:
                found = f
    if found is None:
        raise SystemExit("nim_signaling: cargo built no %s" % LIB_FILE)
    return found


def library_to_bundle():
    """The built library that goes into the wheel."""
    given = os.environ.get(PREBUILD_VAR)
    if given:
        if not os.path.isfile(given):
            raise SystemExit("nim_signaling: %s=%s: no such file" % (PREBUILD_VAR, given))
        return given
    return _cargo_build()


class BuildPyWithLibrary(build_py):
    """build_py, then the library copied into the built package."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        src = library_to_bundle()
        dst = os.path.join(self.build_lib, PACKAGE, LIB_FILE)
        print("nim_signaling: bundling %s" % src, flush=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PACKAGE, LIB_FILE))
        return outputs


class BinaryDistribution(Distribution):
    """Not pure: the wheel carries a native library."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """This platform's tag, for any Python 3 (ctypes needs no ABI)."""

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
)
