"""Build of the one native module (the sinkhole's spool I/O thread); the rest is pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "takedown.sinkhole._commit",
            ["takedown/sinkhole/_commit.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
