"""Build of the optional native event ring (``bindings/``).

The ring is a plain C shared library (no Python C API, so no Python headers needed),
loaded with ctypes by :mod:`lean_p2p.native`; beside it, ``lean_p2p.native._records``
is a Python extension module (it needs the Python headers) that decodes drained
records in C, and ``lean_p2p.runtime._publish`` one that makes the mailbox's publish
step a single call. Each build is optional: where there is no
C compiler, or the platform has no eventfd (anything but Linux), the install still
succeeds with a clear message and the pure-Python paths keep working.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: Plain shared libraries (not Python modules): dotted name -> file name.
LIBRARIES = {
    # The ring: what embedders push into.
    "lean_p2p.native.liblean_p2p_ring": "liblean_p2p_ring.so",
    # XMSS verification: what lean_p2p.crypto calls.
    "lean_p2p.crypto.liblean_p2p_xmss": "liblean_p2p_xmss.so",
    # The native producer driver used by `lean-p2p bench native` and `lean-p2p stress`.
    "lean_p2p.tools.liblean_p2p_producers": "liblean_p2p_producers.so",
}

NO_NATIVE_MESSAGE = """
lean_p2p: the native library {what} was NOT built: {reason}
lean_p2p: everything else is installed and the pure-Python paths work; to get it,
lean_p2p: install a C compiler (e.g. `apt-get install gcc`) and reinstall.
"""


class OptionalNativeBuild(build_ext):
    """Builds the native libraries as plain shared libraries; a failure is a warning."""

    def get_ext_filename(self, fullname: str) -> str:
        # Not a Python extension module: no ABI tag, a fixed name that ctypes looks for.
        # distutils asks with the dotted name or with its last component only.
        for module, filename in LIBRARIES.items():
            if fullname in (module, module.rsplit(".", 1)[1]):
                return os.path.join(*fullname.split(".")[:-1], filename)
        return str(super().get_ext_filename(fullname))

    def get_export_symbols(self, ext: Extension) -> list[str]:
        # There is no PyInit_* function to export; visibility attributes choose exports.
        return list(ext.export_symbols)

    def run(self) -> None:
        if not sys.platform.startswith("linux"):
            self._skip(list(self.extensions), "the ring needs Linux (eventfd)")
            return
        try:
            super().run()
        except Exception as error:  # no compiler at all, or the build machinery failed
            self._skip(list(self.extensions), f"{type(error).__name__}: {error}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # this library failed to compile or link
            self._skip([ext], f"{type(error).__name__}: {error}")

    def _skip(self, failed: list[Extension], reason: str) -> None:
        for ext in failed:
            sys.stderr.write(NO_NATIVE_MESSAGE.format(what=ext.sources[0], reason=reason))
        # Later steps (copying into the source tree, listing outputs) must not expect
        # the libraries that failed.
        self.extensions = [ext for ext in self.extensions if ext not in failed]


setup(
    ext_modules=[
        Extension(
            "lean_p2p.native.liblean_p2p_ring",
            sources=["bindings/lean_p2p_ring.c"],
            include_dirs=["bindings"],
            depends=["bindings/lean_p2p.h"],
            extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden"],
            optional=True,
        ),
        # A Python extension module: the mailbox's publish step, atomic under the GIL.
        # Without it a put brackets its publish with in-flight counters instead.
        Extension(
            "lean_p2p.runtime._publish",
            sources=["bindings/lean_p2p_publish.c"],
            extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden"],
            optional=True,
        ),
        # A Python extension module: the loop thread's batch decoder of drained ring
        # records. Without it the ring uses the pure-Python decoder.
        Extension(
            "lean_p2p.native._records",
            sources=["bindings/lean_p2p_records.c"],
            include_dirs=["bindings"],
            depends=["bindings/lean_p2p.h"],
            extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden"],
            optional=True,
        ),
        Extension(
            "lean_p2p.crypto.liblean_p2p_xmss",
            sources=["bindings/lean_p2p_xmss.c"],
            include_dirs=["bindings"],
            depends=["bindings/lean_p2p_xmss.h", "bindings/lean_p2p_xmss_constants.h"],
            extra_compile_args=["-std=c11", "-O3", "-fvisibility=hidden"],
            optional=True,
        ),
        Extension(
            "lean_p2p.tools.liblean_p2p_producers",
            sources=["bindings/testing/lean_p2p_producers.c"],
            include_dirs=["bindings"],
            depends=["bindings/lean_p2p.h"],
            extra_compile_args=["-std=c11", "-O2", "-fvisibility=hidden", "-pthread"],
            extra_link_args=["-pthread"],
            optional=True,
        ),
    ],
    cmdclass={"build_ext": OptionalNativeBuild},
)
