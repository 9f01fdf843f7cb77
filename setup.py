"""Build of the native modules (the sinkhole's spool I/O thread, fast request reader, Arrow
block encoder and accept path); the rest of the package is described in pyproject.toml.

Each has a pure-Python fallback, so a machine without a C compiler still installs and runs the
package (slower, with a warning here and in the sinkhole's log); the test suite checks that the
native modules were built.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]


class OptionalBuildExt(build_ext):
    """Build each extension, or warn and go on without it."""

    def build_extensions(self) -> None:
        built = []
        for ext in self.extensions:
            try:
                self.build_extension(ext)
            except Exception as exc:  # no compiler, no Python headers: the fallback is used
                print(f"WARNING: {ext.name} not built ({exc}); using its pure-Python fallback")
            else:
                built.append(ext)
        self.extensions = built  # what is copied into the tree and listed as built


setup(
    ext_modules=[
        Extension(
            "takedown.sinkhole._commit", ["takedown/sinkhole/_commit.c"], extra_compile_args=FLAGS
        ),
        Extension(
            "takedown.sinkhole._scan", ["takedown/sinkhole/_scan.c"], extra_compile_args=FLAGS
        ),
        Extension(
            "takedown.sinkhole._ipc", ["takedown/sinkhole/_ipc.c"], extra_compile_args=FLAGS
        ),
        Extension(
            "takedown.sinkhole._accept", ["takedown/sinkhole/_accept.c"], extra_compile_args=FLAGS
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
