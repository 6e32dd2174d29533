"""Build of the optional native event ring (``bindings/``).

The ring is a plain C shared library (no Python C API, so no Python headers needed),
loaded with ctypes by :mod:`lean_p2p.native`. Its build is optional: where there is no
C compiler, or the platform has no eventfd (anything but Linux), the install still
succeeds with a clear message and the pure-Python paths keep working.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

RING_MODULE = "lean_p2p.native.liblean_p2p_ring"
RING_FILENAME = "liblean_p2p_ring.so"

NO_NATIVE_MESSAGE = """
lean_p2p: the native event ring (bindings/lean_p2p_ring.c) was NOT built: {reason}
lean_p2p: everything else is installed and the pure-Python paths work; to get the ring,
lean_p2p: install a C compiler (e.g. `apt-get install gcc`) and reinstall.
"""


class OptionalNativeBuild(build_ext):
    """Builds the ring as a plain shared library; a failed build is a warning."""

    def get_ext_filename(self, fullname: str) -> str:
        # Not a Python extension module: no ABI tag, a fixed name that ctypes looks for.
        # distutils asks with the dotted name or with its last component only.
        if fullname in (RING_MODULE, RING_MODULE.rsplit(".", 1)[1]):
            return os.path.join(*fullname.split(".")[:-1], RING_FILENAME)
        return str(super().get_ext_filename(fullname))

    def get_export_symbols(self, ext: Extension) -> list[str]:
        # There is no PyInit_* function to export; visibility attributes choose exports.
        return list(ext.export_symbols)

    def run(self) -> None:
        if not sys.platform.startswith("linux"):
            self._skip("the ring needs Linux (eventfd)")
            return
        try:
            super().run()
        except Exception as error:  # no compiler, or the compiler failed
            self._skip(f"{type(error).__name__}: {error}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            self._skip(f"{type(error).__name__}: {error}")

    def _skip(self, reason: str) -> None:
        sys.stderr.write(NO_NATIVE_MESSAGE.format(reason=reason))
        self.extensions = []


setup(
    ext_modules=[
        Extension(
            RING_MODULE,
            sources=["bindings/lean_p2p_ring.c"],
            include_dirs=["bindings"],
            depends=["bindings/lean_p2p.h"],
            extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalNativeBuild},
)
