"""Build of the native modules (the sinkhole's spool I/O thread and fast request reader);
the rest of the package is described in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "takedown.sinkhole._commit",
            ["takedown/sinkhole/_commit.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        ),
        Extension(
            "takedown.sinkhole._scan",
            ["takedown/sinkhole/_scan.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        ),
    ]
)
